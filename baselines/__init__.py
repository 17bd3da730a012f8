"""commgraph.baselines: mergeable, windowed and decayed per-tenant baselines."""

__all__: list[str] = []
