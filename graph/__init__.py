"""commgraph.graph: mail metadata in, per-tenant communication graphs out.

The message contract (schema, validation with structured errors), address
normalisation, readers, tenant configuration, stable keys, the per-tenant
graph and the synthetic enterprise-mail generator.
"""

from ._errors import CommGraphError, ConfigError, Problem, ReasonCode, SchemaError
from ._keys import KEY_ALGORITHM, stable_key, stable_keys

__all__ = [
    "CommGraphError", "ConfigError", "Problem", "ReasonCode", "SchemaError",
    "KEY_ALGORITHM", "stable_key", "stable_keys",
]
from ._addresses import (
    normalise_address, normalise_display_name, normalise_display_names, parse_addresses, registrable_domains,
)
from ._messages import Messages
from ._schema import AUTH_RESULTS, DIRECTIONS, LABELS, RECIPIENT_TYPES, REQUIRED_COLUMNS
from ._tenants import InferredOwnDomainsWarning, TenantConfig, infer_own_domains, load_tenant_configs
from ._timestamps import DEFAULT_TIME_RANGE, parse_timestamps
from ._validate import apply_column_mapping, validate

__all__ += [
    "normalise_address", "normalise_display_name", "normalise_display_names", "parse_addresses",
    "registrable_domains", "Messages",
    "AUTH_RESULTS", "DIRECTIONS", "LABELS", "RECIPIENT_TYPES", "REQUIRED_COLUMNS",
    "InferredOwnDomainsWarning", "TenantConfig", "infer_own_domains", "load_tenant_configs",
    "DEFAULT_TIME_RANGE", "parse_timestamps", "apply_column_mapping", "validate",
]
from ._readers import list_sources, read_frame, read_messages

__all__ += ["list_sources", "read_frame", "read_messages"]
from ._generate import (
    ATTACK_SCENARIOS, GeneratedMail, TenantSpec, generate, generate_chunks, lookalike_domain, tenant_specs,
    write_generated,
)

__all__ += [
    "ATTACK_SCENARIOS", "GeneratedMail", "TenantSpec", "generate", "generate_chunks", "lookalike_domain",
    "tenant_specs", "write_generated",
]
from ._commgraph import EDGE_COLUMNS, GRAPH_INPUT_COLUMNS, NODE_COLUMNS, CommGraph, DomainView, build_graph
from ._convert import from_networkx, to_networkx, to_scipy
from ._metrics import (
    communities, hop_distance, in_degree, neighbourhood_overlap, node_reciprocity, out_degree, pagerank,
    pairwise_hop_distance, reciprocity,
)
from ._plot import plot_degree_distribution, plot_ego

__all__ += [
    "EDGE_COLUMNS", "GRAPH_INPUT_COLUMNS", "NODE_COLUMNS", "CommGraph", "DomainView", "build_graph",
    "from_networkx", "to_networkx", "to_scipy", "communities", "hop_distance", "in_degree",
    "neighbourhood_overlap", "node_reciprocity", "out_degree", "pagerank", "pairwise_hop_distance",
    "reciprocity", "plot_degree_distribution", "plot_ego",
]
