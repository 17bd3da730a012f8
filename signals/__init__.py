"""commgraph.signals: vectorised signal providers and the command line."""

__all__: list[str] = []
