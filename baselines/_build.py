"""Build baselines from messages, and refresh a snapshot with only the new mail."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from commgraph.graph import ConfigError, Messages, stable_key
from commgraph.graph._addresses import DISPLAY_NAME_FORM, display_names_then
from commgraph.graph._timestamps import instant_problem, utc_instant

from ._config import BaselineConfig, duration_ns, prior_pair
from ._events import EventExtractor, TenantEvents, empty_events, tenant_events
from ._secrets import _secret
from ._smoothing import _distinct_pairs, beta_quantile, fit_summary_list, posterior_mean
from ._snapshot import Snapshot, _state_to_arrow, check_tenant
from ._state import TenantState, advance_many
from ._tables import ENTITY_KINDS, derive_many, to_arrow

__all__ = ["build_baselines", "refresh", "refresh_many", "DEFAULT_PRIOR"]

#: The prior of last resort: uniform, used when no tenant has enough labels to fit one.
DEFAULT_PRIOR = (1.0, 1.0)


def _windows(config: BaselineConfig) -> tuple[int, ...]:
    return tuple(duration_ns(w) for w in config.windows)


def _timestamp(value: Any, name: str, caller: str) -> pd.Timestamp:
    try:
        ts = utc_instant(value)
    except (TypeError, ValueError, OverflowError) as exc:
        why = instant_problem(exc)
        raise ConfigError(f"The {name!r} parameter of {caller} must be a timestamp (text in ISO 8601, such as "
                          f"2025-02-01T00:00Z). Got {value!r} instead{why}.") from None
    if pd.isna(ts):
        raise ConfigError(f"The {name!r} parameter of {caller} must be a timestamp. Got {value!r} instead.")
    return ts


def _config(config: BaselineConfig | Mapping | None, caller: str) -> BaselineConfig:
    if config is None:
        return BaselineConfig()
    if isinstance(config, Mapping):
        return BaselineConfig.from_dict(config)
    if not isinstance(config, BaselineConfig):
        raise ConfigError(f"The 'config' parameter of {caller} must be a BaselineConfig or a mapping. "
                          f"Got {type(config).__name__} instead.")
    return config


def _checked_secrets(secrets: Mapping[str, Any] | None, caller: str) -> dict[str, bytes]:
    """Each tenant's secret as bytes, checked as a secrets file's are (16 to 64 bytes, or hex text of them):
    a short secret keys nothing (an empty one is no key at all, a byte's is found in 256 tries)."""
    if secrets is None:
        return {}
    if not isinstance(secrets, Mapping):
        raise ConfigError(f"The 'secrets' parameter of {caller} must map tenant ids to their secrets. Got "
                          f"{type(secrets).__name__} instead.")
    return {tenant: _secret(tenant, value, f" given to {caller}") for tenant, value in secrets.items()}


def _secret_check(secret: bytes | None) -> str | None:
    # A keyed hash of a constant: proves a later refresh uses the same secret without storing it.
    return None if secret is None else f"{stable_key('commgraph:secret-check', secret=secret):016x}"


def _outcomes(columns: Mapping[str, Any], config: BaselineConfig) -> tuple[np.ndarray, np.ndarray]:
    safe = np.asarray(columns["n_safe"], np.int64)
    if config.label_policy == "presume_safe":
        safe = safe + np.maximum(np.asarray(columns["n_presumed_safe"], np.int64), 0)
    trials = safe + np.asarray(columns["n_attack"], np.int64) + np.asarray(columns["n_spam"], np.int64)
    return safe, trials


def _explicit_labels(columns: Mapping[str, Any]) -> int:
    return int(sum(np.asarray(columns[c], np.int64).sum() for c in ("n_safe", "n_attack", "n_spam")))


class _Outcomes:
    """Per entity of one table, safe and counted messages, and their distinct (n, k) pairs (found once).

    Entities far outnumber distinct pairs: the prior fit, the pooled summary and
    the credible bounds all work on the pairs, then map back with ``inverse``.
    """

    __slots__ = ("n_u", "k_u", "counts", "inverse")

    def __init__(self, columns: Mapping[str, Any], config: BaselineConfig):
        safe, trials = _outcomes(columns, config)
        self.n_u, self.k_u, self.counts, self.inverse = _distinct_pairs(trials, safe, inverse=True)

    def summary(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distinct (n, k) with n > 0 and how many entities have each (what pooling and fitting need)."""
        counted = self.n_u > 0
        return self.n_u[counted], self.k_u[counted], self.counts[counted]


#: The likelihood columns of one table to add: its columns, outcomes, prior (alpha, beta) and credible level.
_Likelihood = tuple[dict[str, Any], _Outcomes, float, float, float]


def _add_likelihoods(jobs: list[_Likelihood]) -> None:
    """The likelihood columns of several tables at once: ``(columns, outcomes, alpha, beta, level)`` each.

    Both columns are functions of (n, k) and the prior: solved per distinct pair
    of each table, then spread to its entities. The pairs of every table go
    through one call each, with the priors as arrays (elementwise: each value
    is the one a call of its own gives, so a tenant refreshed with others gets
    the bytes it gets alone). The pairs are distinct already, so the lower
    bound is the quantile itself (what posterior_lower_bound computes after
    finding the distinct pairs a second time), in the float32 the table stores
    (scipy's value rounded, as the backfill computes it too).
    """
    by_level: dict[float, list[_Likelihood]] = {}
    for job in jobs:  # (one level in practice: snapshots of one configuration)
        by_level.setdefault(job[4], []).append(job)
    for level, same in by_level.items():
        lengths = [len(outcomes.n_u) for _, outcomes, *_ in same]
        k_u = np.concatenate([outcomes.k_u for _, outcomes, *_ in same])
        n_u = np.concatenate([outcomes.n_u for _, outcomes, *_ in same])
        a = np.repeat(np.array([job[2] for job in same], np.float64), lengths)
        b = np.repeat(np.array([job[3] for job in same], np.float64), lengths)
        mean = posterior_mean(k_u, n_u, a, b).astype(np.float32)
        lower = beta_quantile(k_u + a, n_u - k_u + b, 1.0 - level, np.float32)
        starts = np.cumsum([0] + lengths)
        for (cols, outcomes, *_), lo, hi in zip(same, starts[:-1], starts[1:]):
            cols["likelihood_safe"] = mean[lo:hi][outcomes.inverse]
            cols["likelihood_safe_lower"] = lower[lo:hi][outcomes.inverse]


#: A prior fit a tenant asks for: its tables, the entity kind, the kind's outcomes, their (n, k) summary and
#: the credible level of the bound.
_Fit = tuple[dict[str, dict[str, Any]], str, _Outcomes, tuple[np.ndarray, np.ndarray, np.ndarray], float]


def _prior_requests(tables: dict[str, dict[str, Any]], config: BaselineConfig, *, summarise: bool,
                    keep: dict[str, _Outcomes] | None = None) -> tuple[dict[str, dict[str, Any]], list[_Fit]]:
    """Per entity kind, what pooling across tenants needs (distinct (n, k) with counts, and the explicit
    labels), and the fits of the kinds with enough labels for a prior of the tenant's own (not run yet)."""
    out: dict[str, dict[str, Any]] = {}
    fits: list[_Fit] = []
    for kind in ENTITY_KINDS:
        cols = tables[kind]
        outcomes = _Outcomes(cols, config)
        if keep is not None:
            keep[kind] = outcomes
        summary = outcomes.summary()
        info: dict[str, Any] = {"prior": None, "explicit": _explicit_labels(cols)}
        if summarise:
            info["summary"] = summary
        if int(summary[2].sum()) >= config.min_prior_entities and info["explicit"] >= config.min_prior_labels:
            # = fit_beta_prior(k, n), from the distinct pairs found once
            fits.append((tables, kind, outcomes, summary, config.credible_level))
        out[kind] = info
    return out, fits


def _fit_priors(requests: list[tuple[dict[str, dict[str, Any]], list[_Fit]]]) -> list[_Likelihood]:
    """Every requested prior fit in one batch (each fit's bits do not depend on the others: see
    :func:`fit_summaries`), recorded in its tenant's infos; returns the likelihood jobs they call for."""
    fits = [(infos, fit) for infos, asked in requests for fit in asked]
    jobs = []
    for (infos, (tables, kind, outcomes, _, level)), a, b in zip(
            fits, *_tolists(fit_summary_list([fit[3] for _, fit in fits]))):
        infos[kind]["prior"] = {"alpha": a, "beta": b, "source": "tenant"}
        jobs.append((tables[kind], outcomes, a, b, level))
    return jobs


def _tenant_priors(tables: dict[str, dict[str, Any]], config: BaselineConfig, *, summarise: bool,
                   keep: dict[str, _Outcomes] | None = None) -> dict[str, dict[str, Any]]:
    """Per entity kind, the tenant's own prior when it has enough labels (likelihood columns added),
    and what pooling across tenants needs: distinct (n, k) with counts, and the explicit labels.

    Runs where the tables were derived (a worker process), so only the small
    summaries travel and the parent fits the global priors from them. ``keep``
    (same process only) receives each kind's outcomes, for :func:`_finish`."""
    infos, fits = _prior_requests(tables, config, summarise=summarise, keep=keep)
    _add_likelihoods(_fit_priors([(infos, fits)]))
    return infos


def _tolists(fitted: tuple[np.ndarray, np.ndarray]) -> tuple[list[float], list[float]]:
    return fitted[0].tolist(), fitted[1].tolist()  # Python floats, as the priors are stored


def _global_priors(infos: list[dict[str, dict[str, Any]]], config: BaselineConfig) -> dict[str, Any]:
    """One prior per entity kind for cold-start tenants: configured, pooled over tenants, or uniform."""
    out: dict[str, Any] = {}
    pooled: list[tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] = []
    for kind in ENTITY_KINDS:
        if config.global_prior is not None:
            a, b = config.global_prior
            out[kind] = {"alpha": a, "beta": b, "source": "config"}
            continue
        parts = [info[kind]["summary"] for info in infos]
        n_u = np.concatenate([p[0] for p in parts] or [np.zeros(0)])
        k_u = np.concatenate([p[1] for p in parts] or [np.zeros(0)])
        weight = np.concatenate([p[2] for p in parts] or [np.zeros(0, np.int64)])
        explicit = sum(info[kind]["explicit"] for info in infos)
        if weight.sum() >= config.min_prior_entities and explicit >= config.min_prior_labels:
            # The same (n, k) from several tenants just adds weight: fit over the distinct pairs.
            n_u, k_u, _, inverse = _distinct_pairs(n_u, k_u, inverse=True)
            pooled.append((kind, (n_u, k_u, np.bincount(inverse, weights=weight, minlength=len(n_u)))))
        else:
            out[kind] = {"alpha": DEFAULT_PRIOR[0], "beta": DEFAULT_PRIOR[1], "source": "default"}
    for (kind, _), a, b in zip(pooled, *_tolists(fit_summary_list([summary for _, summary in pooled]))):
        out[kind] = {"alpha": a, "beta": b, "source": "pooled"}
    return {kind: out[kind] for kind in ENTITY_KINDS}


def _finish(state: "TenantState | _Shipped", tables: dict[str, dict[str, Any]], infos: dict[str, dict[str, Any]],
            config: BaselineConfig, global_priors: dict[str, Any], secret: bytes | None,
            outcomes: dict[str, _Outcomes] | None = None) -> Snapshot:
    """Borrow the global prior where the tenant has none of its own, and wrap it all up.

    ``outcomes``: per kind, the outcomes :func:`_tenant_priors` found (else found again here)."""
    priors, jobs = _borrow_global(tables, infos, config, global_priors, outcomes)
    _add_likelihoods(jobs)
    return _wrap(state, tables, priors, config, secret)


def _borrow_global(tables: dict[str, dict[str, Any]], infos: dict[str, dict[str, Any]], config: BaselineConfig,
                   global_priors: dict[str, Any], outcomes: dict[str, _Outcomes] | None
                   ) -> tuple[dict[str, Any], list[_Likelihood]]:
    """The tenant's priors per kind (its own, or the global one borrowed), recorded in its tenant table, and the
    likelihood jobs of the borrowed ones (for :func:`_add_likelihoods`)."""
    priors: dict[str, Any] = {"global": global_priors}
    tenant = tables["tenant"]
    jobs = []
    for kind in ENTITY_KINDS:
        if infos[kind]["prior"] is not None:
            priors[kind] = infos[kind]["prior"]
        else:
            g = global_priors[kind]
            priors[kind] = {"alpha": g["alpha"], "beta": g["beta"], "source": "global"}
            found = outcomes[kind] if outcomes is not None else _Outcomes(tables[kind], config)
            jobs.append((tables[kind], found, g["alpha"], g["beta"], config.credible_level))
        tenant[f"prior_alpha_{kind}"] = np.array([priors[kind]["alpha"]])
        tenant[f"prior_beta_{kind}"] = np.array([priors[kind]["beta"]])
        tenant[f"prior_source_{kind}"] = np.array([priors[kind]["source"]], dtype=object)
    return priors, jobs


def _wrap(state: "TenantState | _Shipped", tables: dict[str, dict[str, Any]], priors: dict[str, Any],
          config: BaselineConfig, secret: bytes | None) -> Snapshot:
    """The snapshot of finished tables (every likelihood column added)."""
    arrow = {name: to_arrow(cols) for name, cols in tables.items()}
    fingerprint = f"xsum64:{state.fingerprint % 2**64:016x}"
    shipped = isinstance(state, _Shipped)
    return Snapshot(tenant_id=state.tenant_id, as_of=pd.Timestamp(state.as_of, tz="UTC"), config=config,
                    tables=arrow, state=None if shipped else state, priors=priors, fingerprint=fingerprint,
                    secret_check=_secret_check(secret), state_tables=state.state_tables if shipped else None)


def _states(evs: Iterable[TenantEvents], as_of: int, config: BaselineConfig
            ) -> list[tuple[TenantState, dict[str, dict[str, Any]], dict[str, dict[str, Any]]]]:
    """Each tenant's state built from its events, its tables (derived together) and its own priors."""
    states = [TenantState.build(ev.tenant_id, ev.rows, as_of=as_of, windows=_windows(config),
                                settle_delay=duration_ns(config.settle_delay), half_life=duration_ns(config.half_life),
                                names=ev.names, fingerprint=ev.fingerprint, groupings=ev.groupings) for ev in evs]
    return [(state, tables, _tenant_priors(tables, config, summarise=config.global_prior is None))
            for state, tables in zip(states, derive_many(states, config))]


# Work shared with forked worker processes: they inherit it (copy-on-write), so
# the input is neither pickled nor copied; only the results travel back.
_SHARED: dict[str, Any] = {}


@dataclass
class _Shipped:
    """A tenant built in a worker process: its tables and state as Arrow IPC files, memory-mapped here."""

    tenant_id: str
    as_of: int
    fingerprint: int
    files: dict[str, str]
    infos: dict[str, dict[str, Any]]
    state_tables: dict[str, pa.Table] | None = None

    def open(self) -> dict[str, dict[str, Any]]:
        tables: dict[str, dict[str, Any]] = {}
        self.state_tables = {}
        for name, path in self.files.items():
            table = pa.ipc.open_file(pa.memory_map(path, "r")).read_all()
            os.unlink(path)  # the mapping keeps the pages; nothing is left behind
            kind, part = name.split(":", 1)
            if kind == "table":
                tables[part] = {c: table.column(c) for c in table.column_names}
            else:
                self.state_tables[part] = table
        return tables


def _work(job: tuple[str, int, list[str]]) -> list["_Shipped"]:
    # Results go back through files in shared memory (/dev/shm where there is
    # one), not through pickles: pickling the state costs ~2.5 s per 10M edges
    # each way, writing it ~0.3 s, and the parent maps it without copying.
    token, number, tenants = job
    extractor, as_of_ns, config, folder = _SHARED[token]
    out = []
    for i, t in enumerate(tenants):
        # (one tenant at a time: its files are written before the next one is built, which bounds memory)
        [(state, tables, infos)] = _states([extractor.extract(t)], as_of_ns, config)
        files = {}
        parts = [(f"table:{name}", to_arrow(cols)) for name, cols in tables.items()]
        parts += [(f"state:{part}", table) for part, table in _state_to_arrow(state).items()]
        for j, (name, table) in enumerate(parts):
            path = os.path.join(folder, f"{number}-{i}-{j}.arrow")
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
            files[name] = path
        out.append(_Shipped(t, state.as_of, state.fingerprint, files, infos))
    return out


def _parallel(extractor: EventExtractor, tenants: list[str], as_of_ns: int, config: BaselineConfig,
              workers: int) -> list[tuple[_Shipped, dict[str, dict[str, Any]], dict[str, dict[str, Any]]]]:
    # Longest first onto the least loaded bucket; a few buckets per worker so
    # sending results back overlaps with computing the next ones.
    n_buckets = min(len(tenants), workers * 4)
    buckets: list[list[str]] = [[] for _ in range(n_buckets)]
    load = np.zeros(n_buckets)
    for t in sorted(tenants, key=lambda t: (-extractor.size(t), t)):
        i = int(np.argmin(load))
        buckets[i].append(t)
        load[i] += extractor.size(t)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    folder = tempfile.mkdtemp(prefix="commgraph-build-", dir=shm)
    # The workers find the job under the call's own name (its folder's): calls in two threads each fork workers
    # that read their own job, never the other's (one shared name handed a call the other's snapshots).
    _SHARED[folder] = (extractor, as_of_ns, config, folder)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_work, [(folder, i, b) for i, b in enumerate(buckets)], chunksize=1)
        return [(item, item.open(), item.infos) for part in parts for item in part]
    finally:
        _SHARED.pop(folder, None)
        shutil.rmtree(folder, ignore_errors=True)


def build_baselines(messages: Messages, *, as_of: Any, config: BaselineConfig | Mapping | None = None,
                    secrets: Mapping[str, bytes] | None = None, n_jobs: int = 1) -> dict[str, Snapshot]:
    """Build every baseline of every tenant as of ``as_of``: one :class:`Snapshot` per tenant.

    Only messages strictly before ``as_of`` count, and only labels known before
    it (``labeled_at``, or the message time when that is missing).

    Parameters
    ----------
    messages : Messages
        Validated messages (:func:`commgraph.graph.validate`) of one or more tenants.
    as_of : timestamp-like
        The instant the snapshots describe (naive values are taken as UTC).
    config : BaselineConfig or mapping, optional
        Windows, half-life, label policy, privacy and limits (default
        ``BaselineConfig()``).
    secrets : mapping of str to bytes, optional
        Per-tenant secrets; required in privacy mode, where keys become keyed
        BLAKE2b hashes and no raw address or display name is kept.
    n_jobs : int, default 1
        Processes over which tenants are split (forked workers that share the
        input's memory; where fork is unavailable, one process); -1 uses every core.

    Returns
    -------
    dict of str to Snapshot
        Keyed by tenant id, sorted.

    Examples
    --------
    >>> from commgraph.graph import validate
    >>> m = validate(pd.DataFrame({"tenant_id": ["a", "a", "b"], "message_id": ["1", "2", "1"],
    ...     "timestamp": ["2024-05-01T09:00Z", "2024-05-03T09:00Z", "2024-05-01T10:00Z"],
    ...     "sender": ["x@out.com", "x@out.com", "y@out.com"], "recipients": ["u@a.com", "u@a.com", "v@b.com"],
    ...     "label": [None, "attack", None]}),
    ...     tenants=[{"tenant_id": "a", "own_domains": ["a.com"]}, {"tenant_id": "b", "own_domains": ["b.com"]}])
    >>> snaps = build_baselines(m, as_of="2024-05-02T00:00Z")
    >>> sorted(snaps), snaps["a"].table("sender")[["n_messages", "n_attack"]].values.tolist()
    (['a', 'b'], [[1, 0]])
    >>> build_baselines(m, as_of="2024-05-04")["a"].table("sender")[["n_messages", "n_attack"]].values.tolist()
    [[2, 1]]
    """
    config = _config(config, "build_baselines")
    as_of_ts = _timestamp(as_of, "as_of", "build_baselines")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        raise ConfigError(f"The 'n_jobs' parameter of build_baselines must be an int >= 1 or -1. Got {n_jobs!r} "
                          "instead.")
    secrets = _checked_secrets(secrets, "build_baselines")
    if secrets and not config.privacy:
        raise ConfigError("secrets were given to build_baselines but the configuration has privacy off, so the "
                          "snapshots would hold raw addresses and display names; pass config=BaselineConfig("
                          "privacy=True) with them, or no secrets")
    return _built(messages, as_of_ts, config, secrets, (os.cpu_count() or 1) if n_jobs == -1 else n_jobs, True)


def build_each(messages: Messages, *, as_of: pd.Timestamp, config: BaselineConfig,
               secrets: Mapping[str, bytes] | None = None) -> dict[str, Snapshot]:
    """Every tenant's snapshot as :func:`build_baselines` of that tenant's mail alone builds it, built together.

    A build of several tenants fits the global prior (what a tenant with too
    little labelled mail borrows) over all of them; here each tenant borrows
    the one fitted over its own mail, as when it is built alone. So the refresh
    job can read and build small tenants together (their reading, validation
    and derive each pay one fixed cost) and publish exactly what it publishes
    building each alone.

    Examples
    --------
    >>> from commgraph.graph import validate
    >>> m = validate(pd.DataFrame({"tenant_id": ["a", "a", "b"], "message_id": ["1", "2", "1"],
    ...     "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z", "2024-05-01T10:00Z"],
    ...     "sender": ["x@out.com", "x@out.com", "y@out.com"], "recipients": ["u@a.com", "u@a.com", "v@b.com"]}),
    ...     tenants=[{"tenant_id": "a", "own_domains": ["a.com"]}, {"tenant_id": "b", "own_domains": ["b.com"]}])
    >>> each = build_each(m, as_of=pd.Timestamp("2024-05-03", tz="UTC"), config=BaselineConfig())
    >>> alone = build_baselines(m.subset((m.frame["tenant_id"] == "a").to_numpy()), as_of="2024-05-03")
    >>> each["a"].equals(alone["a"]), sorted(each)
    (True, ['a', 'b'])
    """
    return _built(messages, as_of, config, _checked_secrets(secrets, "build_each"), 1, False)


def _built(messages: Messages, as_of: pd.Timestamp, config: BaselineConfig, secrets: dict[str, bytes],
           workers: int, pooled: bool) -> dict[str, Snapshot]:
    """Each tenant's snapshot; ``pooled``: cold-start tenants borrow one global prior fitted over every tenant
    (:func:`build_baselines`), else each its own (:func:`build_each`)."""
    extractor = EventExtractor(messages, as_of=as_of, secrets=secrets, privacy=config.privacy)
    as_of_ns = as_of.value
    tenants = extractor.tenant_names
    if workers == 1 or len(tenants) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        built = _states((extractor.extract(t) for t in tenants), as_of_ns, config)
    else:
        built = _parallel(extractor, tenants, as_of_ns, config, workers)
    built.sort(key=lambda item: item[0].tenant_id)  # pooled sums in one order: the same bytes with any n_jobs
    shared = _global_priors([infos for _, _, infos in built], config) if pooled else None
    snapshots = {}
    for (state, tables, infos) in built:
        secret = secrets.get(state.tenant_id) if (config.privacy and secrets) else None
        global_priors = shared if shared is not None else _global_priors([infos], config)
        snapshots[state.tenant_id] = _finish(state, tables, infos, config, global_priors, secret)
    return dict(sorted(snapshots.items()))


def refresh(snapshot: Snapshot, new_messages: Messages | None, *, as_of: Any, secret: bytes | None = None,
            global_prior: Mapping[str, Any] | None = None) -> Snapshot:
    """The snapshot as of a later ``as_of``, from the previous one plus only the new mail and labels.

    ``new_messages`` holds the mail of ``[snapshot.as_of, as_of)`` and, for
    older mail, rows whose label became known in that period (``labeled_at``);
    rows of other tenants are not read. Older rows whose label was already
    known, or that have none, are skipped, so passing the whole archive is
    correct, only slower. Mail that arrives late (sent before
    ``snapshot.as_of`` but never counted) needs a rebuild: refresh counts each
    message in the period it was sent. A message carries at most one label:
    when its label changes after the snapshot counted it (the row holds the
    new label with a later ``labeled_at``), the old label is retracted where
    it was counted (the snapshot's ledger of counted labels says which) and
    the new one counted; a label withdrawn (no label, ``labeled_at`` set to
    when) is retracted, and its message presumed safe again once it settles
    (a withdrawal that clears ``labeled_at`` looks like mail never labelled:
    only a rebuild drops its old label).

    The result equals :func:`build_baselines` over all the mail as of ``as_of``
    (on every table; the prior of a cold-start tenant is the global one carried
    in ``snapshot`` unless ``global_prior`` is given).

    Parameters
    ----------
    snapshot : Snapshot
        The previous snapshot (built, refreshed or loaded from a store).
    new_messages : Messages or None
        Validated messages; None when only time passes.
    as_of : timestamp-like
        The new instant, not before ``snapshot.as_of``.
    secret : bytes, optional
        The tenant's secret, required when the snapshot is in privacy mode (it
        must be the secret the snapshot was built with).
    global_prior : mapping, optional
        Per entity kind, ``{"alpha": .., "beta": ..}`` to borrow instead of the
        snapshot's global priors.

    Returns
    -------
    Snapshot

    Examples
    --------
    >>> from commgraph.graph import validate
    >>> rows = pd.DataFrame({"tenant_id": "a", "message_id": ["1", "2"],
    ...     "timestamp": ["2024-05-01T09:00Z", "2024-05-03T09:00Z"], "sender": "x@out.com",
    ...     "recipients": "u@a.com", "label": ["attack", None], "labeled_at": ["2024-05-03T12:00Z", None]})
    >>> m = validate(rows, tenants=[{"tenant_id": "a", "own_domains": ["a.com"]}])
    >>> first = build_baselines(m, as_of="2024-05-02")["a"]
    >>> first.table("sender")[["n_messages", "n_attack"]].values.tolist()
    [[1, 0]]
    >>> later = refresh(first, m, as_of="2024-05-04")
    >>> later.table("sender")[["n_messages", "n_attack"]].values.tolist()
    [[2, 1]]
    >>> later.equals(build_baselines(m, as_of="2024-05-04")["a"])
    True
    """
    if not isinstance(snapshot, Snapshot):
        raise ConfigError(f"The 'snapshot' parameter of refresh must be a Snapshot. Got {type(snapshot).__name__} "
                          "instead.")
    tenant = snapshot.tenant_id
    return _refresh_all({tenant: snapshot}, new_messages, as_of, {tenant: secret} if secret is not None else {},
                        global_prior, "refresh")[tenant]


def refresh_many(snapshots: Mapping[str, Snapshot], new_messages: Messages | None, *, as_of: Any,
                 secrets: Mapping[str, bytes] | None = None, global_prior: Mapping[str, Any] | None = None
                 ) -> dict[str, Snapshot]:
    """:func:`refresh` of several tenants' snapshots at once, from one input holding their new mail.

    Each result is the snapshot :func:`refresh` gives that tenant alone, to the
    byte, and so equals a rebuild; the work that does not depend on the tenant
    is done once for all of them: the new mail is read in one pass (per
    previous ``as_of``), every tenant's prior fits run as one batch and every
    likelihood and credible-bound column in one call. A refresh job's worker
    refreshes its tenants this way, so the fixed cost of a tenant (hundreds of
    small-array calls) is paid per batch. Tenants never mix: each snapshot
    reads only its own tenant's rows of ``new_messages``.

    Parameters
    ----------
    snapshots : mapping of str to Snapshot
        The previous snapshots, keyed by their tenant ids.
    new_messages : Messages or None
        Validated messages of any of the tenants (see :func:`refresh` for what
        they must hold); None when only time passes.
    as_of : timestamp-like
        The new instant, not before any snapshot's ``as_of``.
    secrets : mapping of str to bytes, optional
        Per-tenant secrets, required for the snapshots in privacy mode.
    global_prior : mapping, optional
        Per entity kind, ``{"alpha": .., "beta": ..}`` for cold-start tenants
        to borrow instead of their snapshots' global priors.

    Returns
    -------
    dict of str to Snapshot
        Keyed by tenant id, sorted.

    Raises
    ------
    ConfigError
        For bad parameters, naming the tenant; an error while refreshing one
        tenant carries a note naming it.

    Examples
    --------
    >>> from commgraph.graph import validate
    >>> rows = pd.DataFrame({"tenant_id": ["a", "a", "b", "b"], "message_id": ["1", "2", "1", "2"],
    ...     "timestamp": ["2024-05-01T09:00Z", "2024-05-03T09:00Z", "2024-05-01T10:00Z", "2024-05-03T10:00Z"],
    ...     "sender": "x@out.com", "recipients": ["u@a.com", "u@a.com", "v@b.com", "v@b.com"]})
    >>> m = validate(rows, tenants=[{"tenant_id": "a", "own_domains": ["a.com"]},
    ...                             {"tenant_id": "b", "own_domains": ["b.com"]}])
    >>> first = build_baselines(m, as_of="2024-05-02")
    >>> later = refresh_many(first, m, as_of="2024-05-04")
    >>> [s.table("sender")["n_messages"].tolist() for s in later.values()]
    [[2], [2]]
    >>> all(later[t].equals(refresh(first[t], m, as_of="2024-05-04")) for t in later)
    True
    """
    if not isinstance(snapshots, Mapping):
        raise ConfigError(f"The 'snapshots' parameter of refresh_many must be a mapping of tenant ids to Snapshots. "
                          f"Got {type(snapshots).__name__} instead.")
    for tenant, snapshot in snapshots.items():
        if not isinstance(snapshot, Snapshot):
            raise ConfigError(f"The 'snapshots' parameter of refresh_many must map tenant ids to Snapshots. Got "
                              f"{type(snapshot).__name__} for tenant {tenant!r} instead.")
        if snapshot.tenant_id != tenant:
            raise ConfigError(f"The 'snapshots' parameter of refresh_many must key each snapshot by its tenant id. "
                              f"Got the snapshot of tenant {snapshot.tenant_id!r} under {tenant!r} instead.")
    if secrets is not None and not isinstance(secrets, Mapping):
        raise ConfigError(f"The 'secrets' parameter of refresh_many must be a mapping of tenant ids to bytes. Got "
                          f"{type(secrets).__name__} instead.")
    refreshed = _refresh_all(snapshots, new_messages, as_of, secrets or {}, global_prior, "refresh_many")
    return dict(sorted(refreshed.items()))


@contextmanager
def _naming(tenant: str | list[str], many: bool) -> Iterator[None]:
    """Notes the tenant on an error raised while refreshing it among others (alone, the error is as it was);
    a list: the tenants whose batch was refreshing (a step that works on all of them at once)."""
    try:
        yield
    except Exception as exc:
        if many:
            exc.add_note(f"(while refreshing tenant {tenant!r})" if isinstance(tenant, str) or len(tenant) == 1
                         else f"(while refreshing tenants {', '.join(map(repr, tenant))} together)")
        raise


def _given_globals(snapshot: Snapshot, global_prior: Mapping[str, Any] | None, caller: str) -> dict[str, Any]:
    """The global priors a cold-start tenant borrows: its snapshot's, or the ones given."""
    globals_ = dict(snapshot.priors["global"])
    if global_prior is not None:
        unknown = sorted(set(global_prior) - set(globals_))
        if unknown:
            raise ConfigError(f"The 'global_prior' parameter of {caller} must map entity kinds "
                              f"({', '.join(map(repr, globals_))}) to priors. Got kinds {unknown} instead.")
        for kind, prior in global_prior.items():
            pair = prior_pair(prior)
            if pair is None:
                raise ConfigError(f"The 'global_prior' parameter of {caller} must give each kind a prior of finite "
                                  f"numbers > 0, as {{'alpha': 9.0, 'beta': 1.0}} or (9.0, 1.0). Got {prior!r} for "
                                  f"{kind!r} instead.")
            source = prior.get("source", "given") if isinstance(prior, Mapping) else "given"
            globals_[kind] = {"alpha": pair[0], "beta": pair[1], "source": source}
    return globals_


def refresh_observed(snapshot: Snapshot, new_messages: Messages | None, *, as_of: Any,
                     secret: bytes | None = None) -> Snapshot:
    """:func:`refresh` for the live overlay: a snapshot whose display names are of an earlier form (accents
    or invisible characters kept) is refreshed too, and the result keeps that form (a view of it warns; it is
    never published), where :func:`refresh` refuses it: an engine serving such snapshots must keep scoring the
    mail it observes."""
    tenant = snapshot.tenant_id
    out = _refresh_all({tenant: snapshot}, new_messages, as_of, {tenant: secret} if secret is not None else {},
                       None, "observe", any_names=True)[tenant]
    out.display_name_form = snapshot.display_name_form
    return out


def check_secret(snapshot: Snapshot, secret: bytes | None, caller: str) -> None:
    """Refuse a secret a snapshot was not keyed with: none for a privacy-mode one, another, or one for a plain one
    (checked already by :func:`_checked_secrets`)."""
    tenant = snapshot.tenant_id
    if not snapshot.config.privacy:
        if secret is not None:
            raise ConfigError(f"a secret was given to {caller} for tenant {tenant!r}, whose snapshot is not in "
                              "privacy mode (it holds raw addresses); give secrets for privacy-mode snapshots only")
        return
    if secret is None:
        raise ConfigError(f"snapshot of tenant {tenant!r} is in privacy mode: pass its secret to {caller}")
    if _secret_check(secret) != snapshot.secret_check:
        raise ConfigError(f"the secret given for tenant {tenant!r} is not the one its snapshot was built "
                          "with; check the secrets, or, to rotate the tenant's secret, build it in full "
                          "with the new one (commgraph refresh without --incremental, with --force)")


def _refresh_all(snapshots: Mapping[str, Snapshot], new_messages: Messages | None, as_of: Any,
                 secrets: Mapping[str, bytes], global_prior: Mapping[str, Any] | None, caller: str,
                 any_names: bool = False) -> dict[str, Snapshot]:
    """:func:`refresh` of each snapshot (checked: keyed by its tenant), the shared work done once."""
    as_of_ts = _timestamp(as_of, "as_of", caller)
    secrets = _checked_secrets(secrets, caller)
    many = len(snapshots) > 1
    for tenant, snapshot in snapshots.items():
        if snapshot.display_name_form != DISPLAY_NAME_FORM and not any_names:
            raise ConfigError(
                f"the snapshot of tenant {tenant!r} was built by an earlier commgraph, whose display names "
                f"{display_names_then(snapshot.display_name_form)}: a refresh would count one name under two keys. "
                "Build it again in full (build_baselines, or commgraph refresh, which does so by itself for such "
                "snapshots)")
        if as_of_ts < snapshot.as_of:
            whose = "the snapshot's" if not many else f"tenant {tenant!r}'s snapshot's"
            raise ConfigError(f"The 'as_of' parameter of {caller} must be a timestamp >= {whose} as_of "
                              f"({snapshot.as_of.isoformat()}). Got {as_of_ts.isoformat()!r} instead.")
        check_secret(snapshot, secrets.get(tenant), caller)
    globals_ = {tenant: _given_globals(snapshot, global_prior, caller) for tenant, snapshot in snapshots.items()}
    # The new rows: one extraction per previous as_of (and privacy mode), over every tenant that shares it.
    events: dict[str, TenantEvents] = {}
    if new_messages is not None:
        groups: dict[tuple[pd.Timestamp, bool], list[str]] = {}
        for tenant, snapshot in snapshots.items():
            groups.setdefault((snapshot.as_of, snapshot.config.privacy), []).append(tenant)
        for (since, privacy), tenants in groups.items():
            given = {t: secrets[t] for t in tenants if secrets.get(t) is not None}
            events.update(tenant_events(new_messages, as_of=as_of_ts, since=since, tenants=tenants,
                                        secrets=given or None, privacy=privacy))
    states = {}
    for tenant, snapshot in snapshots.items():
        with _naming(tenant, many):
            states[tenant] = snapshot.tenant_state()
            check_tenant(states[tenant].tenant_id, tenant, "refresh state")
    # The states advance in batches of one configuration each (as the tenants' mail was extracted): every
    # batch's new rows aggregated together.
    batches: dict[tuple[tuple[int, ...], int, int], list[str]] = {}
    for tenant, snapshot in snapshots.items():
        config = snapshot.config
        schedule = (_windows(config), duration_ns(config.settle_delay), duration_ns(config.half_life))
        batches.setdefault(schedule, []).append(tenant)
    advanced: dict[str, TenantState] = {}
    for (windows, settle_delay, half_life), tenants in batches.items():
        evs = [events.get(t) or TenantEvents(t, empty_events(), {}, 0) for t in tenants]
        if len(tenants) == 1:  # alone: the single-state path, which reuses the extraction's groupings
            with _naming(tenants[0], many):
                advanced[tenants[0]] = states[tenants[0]].advance(
                    evs[0].rows, as_of=as_of_ts.value, windows=windows, settle_delay=settle_delay,
                    half_life=half_life, names=evs[0].names, fingerprint=evs[0].fingerprint,
                    groupings=evs[0].groupings)
            continue
        with _naming(tenants, many):
            advanced.update(zip(tenants, advance_many(
                [states[t] for t in tenants], [ev.rows for ev in evs], as_of=as_of_ts.value, windows=windows,
                settle_delay=settle_delay, half_life=half_life, names=[ev.names for ev in evs],
                fingerprints=[ev.fingerprint for ev in evs])))
    # Every table of the tenants of one configuration derived together.
    derived: dict[str, dict[str, dict[str, Any]]] = {}
    by_config: dict[BaselineConfig, list[str]] = {}
    for tenant, snapshot in snapshots.items():
        by_config.setdefault(snapshot.config, []).append(tenant)
    for config, tenants in by_config.items():
        with _naming(tenants, many):
            derived.update(zip(tenants, derive_many([advanced[t] for t in tenants], config)))
    done = []
    for tenant, snapshot in snapshots.items():
        config = snapshot.config
        with _naming(tenant, many):
            new_state = advanced[tenant]
            tables = derived[tenant]
            outcomes: dict[str, _Outcomes] = {}
            infos, fits = _prior_requests(tables, config, summarise=False, keep=outcomes)
        done.append((tenant, new_state, tables, outcomes, infos, fits))
    # Every tenant's prior fits in one batch, then every likelihood column (own priors and borrowed) in one call.
    jobs = _fit_priors([(infos, fits) for *_, infos, fits in done])
    finished = []
    for tenant, new_state, tables, outcomes, infos, _ in done:
        priors, borrowed = _borrow_global(tables, infos, snapshots[tenant].config, globals_[tenant], outcomes)
        jobs += borrowed
        finished.append((tenant, new_state, tables, priors))
    _add_likelihoods(jobs)
    # A secret proves itself only for a privacy snapshot: recorded for a plain one, the manifest would differ
    # from the rebuild's (which records none).
    return {tenant: _wrap(new_state, tables, priors, snapshots[tenant].config,
                          secrets.get(tenant) if snapshots[tenant].config.privacy else None)
            for tenant, new_state, tables, priors in finished}
