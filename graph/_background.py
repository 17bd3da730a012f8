"""One background thread for numpy work that releases the GIL: the build's second core."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

__all__ = ["submit"]

_WORKER: dict[int, ThreadPoolExecutor] = {}  # process id -> executor

#: Below this many rows a job runs at once: handing it over would cost more than it saves.
MIN_ROWS = 1 << 16


def _worker() -> ThreadPoolExecutor:
    """The thread, started on first use.

    Keyed by process id: a forked child (tenants built in worker processes) has no
    copy of the parent's thread, and would wait forever on the parent's executor.
    """
    pid = os.getpid()
    if pid not in _WORKER:
        _WORKER.clear()
        _WORKER[pid] = ThreadPoolExecutor(1, thread_name_prefix="commgraph")
    return _WORKER[pid]


def submit(fn: Callable[..., Any], *args: Any, rows: int) -> Future:
    """Run ``fn(*args)`` on the background thread when ``rows`` is large, else now; its future either way.

    Jobs run one after another, in the order submitted. ``fn`` must only read
    arrays the caller does not change until it has the result.

    Examples
    --------
    >>> submit(sum, [1, 2, 3], rows=3).result()
    6
    >>> submit(sum, range(100_000), rows=100_000).result()
    4999950000
    """
    if rows < MIN_ROWS:
        future: Future = Future()
        future.set_result(fn(*args))
        return future
    return _worker().submit(fn, *args)
