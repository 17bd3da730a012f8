"""commgraph.baselines: mergeable, windowed and decayed per-tenant baselines.

Baseline tables (sender, sender_domain, pair, recipient, display_name, tenant)
built from validated messages as of an instant, refreshed incrementally from
only the new mail, smoothed with empirical-Bayes Beta-binomial priors, and
published to a versioned, checksummed, memory-mapped snapshot store.
"""

from ._aggregate import REDUCERS, Decayed, KeyedAggregate, Windowed
from ._build import DEFAULT_PRIOR, build_baselines, refresh, refresh_many
from ._config import LABEL_POLICIES, BaselineConfig
from ._index import KeyIndex
from ._job import RefreshReport, TenantOutcome, list_input_tenants, run_refresh
from ._secrets import load_secrets
from ._smoothing import beta_binomial_loglik, fit_beta_prior, posterior_lower_bound, posterior_mean
from ._snapshot import SCHEMA_VERSION, Snapshot
from ._state import NoLabelLedgerWarning
from ._store import CorruptSnapshotError, SnapshotStore
from ._tables import ENTITY_KINDS, KEY_COLUMNS, TABLES, pair_keys

__all__ = [
    "BaselineConfig", "LABEL_POLICIES", "build_baselines", "refresh", "refresh_many", "DEFAULT_PRIOR", "Snapshot",
    "SCHEMA_VERSION", "TABLES", "ENTITY_KINDS", "KEY_COLUMNS", "pair_keys", "KeyIndex", "KeyedAggregate", "Decayed",
    "Windowed", "REDUCERS", "SnapshotStore", "CorruptSnapshotError", "fit_beta_prior", "posterior_mean",
    "posterior_lower_bound", "beta_binomial_loglik", "RefreshReport", "TenantOutcome", "list_input_tenants",
    "run_refresh", "load_secrets", "NoLabelLedgerWarning",
]
