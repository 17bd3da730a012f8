"""Keep numpy's huge-page requests from stalling a computation that fills fresh memory.

numpy asks the kernel for transparent huge pages (``madvise(MADV_HUGEPAGE)``)
on every array of 4 MiB or more. Where the kernel's defrag policy is
``madvise`` (or ``defer+madvise``), such a request makes each first touch of
the array wait for the kernel to compact memory into a huge page. A backfill
writes hundreds of fresh large arrays once each: on this project's machines its
first run spent 1.1 s of 3.4 s CPU in the kernel with the requests, 0.45 s
without them, for the same user time (``benchmarks/bench_backfill.py``). So
such computations run with the requests off, and restore numpy's setting after.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator

__all__ = ["no_hugepage_stalls", "DEFRAG_POLICY"]

#: Where Linux states its transparent-huge-page defrag policy (the chosen one in brackets).
DEFRAG_POLICY = "/sys/kernel/mm/transparent_hugepage/defrag"
# Policies under which a madvised region compacts memory synchronously on a page fault.
_STALLING = ("madvise", "defer+madvise")

_lock = threading.Lock()
_holders = 0
_previous = True


def _toggle() -> Callable[[bool], bool] | None:
    """numpy's switch for its huge-page requests (it returns the previous setting); None should a later
    numpy drop it (the block then runs as it is: the requests only cost time)."""
    from numpy._core import multiarray

    return getattr(multiarray, "_set_madvise_hugepage", None)


_switch = _toggle  # (tests substitute a recording switch)


def _stalls(policy_file: str) -> bool:
    try:
        with open(policy_file) as fh:
            text = fh.read()
    except OSError:  # not Linux, or no transparent huge pages: nothing to stall
        return False
    chosen = text[text.find("[") + 1:text.find("]")] if "[" in text else ""
    return chosen in _STALLING


@contextmanager
def no_hugepage_stalls(policy_file: str = DEFRAG_POLICY) -> Iterator[bool]:
    """Run the block with numpy's huge-page requests off where they would stall page faults.

    Yields whether the requests were turned off. Nested and concurrent blocks
    share one switch: the first turns the requests off, the last restores
    numpy's setting as it found it.

    Examples
    --------
    >>> import numpy as np
    >>> with no_hugepage_stalls(policy_file="/nonexistent") as off:
    ...     _ = np.zeros(1 << 20)
    >>> off
    False
    """
    global _holders, _previous
    toggle = _switch()
    if toggle is None or not _stalls(policy_file):
        yield False
        return
    with _lock:
        if _holders == 0:
            _previous = toggle(False)
        _holders += 1
    try:
        yield True
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                toggle(_previous)
