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
