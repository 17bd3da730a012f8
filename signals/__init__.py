"""commgraph.signals: vectorised signal providers, the engine-facing scorer, explain and the transformer.

The built-in providers compute the default signal set (:data:`DEFAULT_PROVIDERS`)
for a batch of validated messages of any tenants, each against its own
baseline snapshot; :class:`Scorer` serves the engine (batches, single
messages, hot reload); :func:`explain` shows the evidence behind each value.
"""

from ._provider import AGGREGATIONS, SignalProvider, SignalSpec, provider_registry, register_provider
from ._builtin_sender import SenderDomainSignals, SenderSignals  # registration order is column order
from ._builtin_pair import PairSignals, RecipientSignals
from ._builtin_identity import HabitSignals, IdentitySignals, LookalikeSignals
from ._signal_set import DEFAULT_PROVIDERS, LEVELS, SignalSet
from ._lookalike import skeleton
from ._freemail import freemail_domains
from ._scorer import Scorer
from ._explain import Explanation, explain
from ._backfill import MODES, backfill
from ._consistency import ConsistencyReport, consistency_report
from ._evaluate import alerts_within_budget, evaluate, suspicious_directions
from ._anomaly import directed_anomaly_score

__all__ = [
    "AGGREGATIONS", "SignalProvider", "SignalSpec", "provider_registry", "register_provider",
    "SenderSignals", "SenderDomainSignals", "PairSignals", "RecipientSignals", "IdentitySignals",
    "LookalikeSignals", "HabitSignals", "DEFAULT_PROVIDERS", "LEVELS", "SignalSet", "skeleton", "freemail_domains",
    "Scorer", "Explanation", "explain", "BaselineSignals", "backfill", "MODES",
    "consistency_report", "ConsistencyReport", "evaluate", "alerts_within_budget", "suspicious_directions",
    "directed_anomaly_score",
]


def __getattr__(name: str):
    # The scikit-learn transformer loads scikit-learn (about a second): the refresh job, the engine and the
    # command line import this package without it; ``from commgraph.signals import BaselineSignals`` loads it.
    if name == "BaselineSignals":
        from ._transformer import BaselineSignals

        return BaselineSignals
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
