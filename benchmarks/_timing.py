"""Time spent inside chosen functions during a run, by wrapping them for its duration."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Callable


class PhaseTimer:
    """Seconds per phase (``clock``: wall by default, or ``time.process_time`` for CPU), by wrapping
    module-level functions and methods until :meth:`restore`.

    Examples
    --------
    >>> import json
    >>> timer = PhaseTimer()
    >>> timer.wrap(json, "dumps", "encode")
    >>> _ = json.dumps([1, 2])
    >>> timer.restore()
    >>> sorted(timer.seconds), json.dumps.__name__
    (['encode'], 'dumps')
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._clock = clock
        self._undo: list[tuple[Any, str, Callable]] = []

    def wrap(self, owner: Any, name: str, label: str | None = None) -> None:
        original = getattr(owner, name)  # bound, for classmethods
        seconds, clock = self.seconds, self._clock

        def timed(*args, **kwargs):
            start = clock()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[label or name] += clock() - start

        # Restored as it was defined (a classmethod stays one), not as the bound method called above.
        self._undo.append((owner, name, vars(owner)[name]))
        setattr(owner, name, timed)

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()
