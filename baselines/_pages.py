"""Keep huge-page requests from stalling a computation that fills fresh memory.

numpy asks the kernel for transparent huge pages (``madvise(MADV_HUGEPAGE)``)
on every array of 4 MiB or more, and so does pyarrow's default allocator
(mimalloc) on the memory it reserves for Arrow buffers. Where the kernel's
defrag policy is ``madvise`` (or ``defer+madvise``), such a request makes each
first touch of the memory wait for the kernel to compact memory into a huge
page. A backfill writes hundreds of fresh large arrays once each: on this
project's machines its first run spent 1.1 s of 3.4 s CPU in the kernel with
numpy's requests, 0.45 s without them, for the same user time; and its output
frame's Arrow string columns (built last, gathered from the input's) then
spent 0.04-0.37 s in the kernel on their 2 MiB pages, 0.01 s from the
system allocator (``benchmarks/bench_backfill.py``). So such computations run
with numpy's requests off and Arrow allocating from the system allocator
(``malloc``, no requests; Arrow buffers keep the pool they came from, so
buffers made before or after the block are freed as usual), and restore both
settings after. The price: memory mimalloc still holds from earlier Arrow work
(validating the history just before, say) is not reused inside the block, so
such a process peaks higher (the benchmark's, which validates a million
messages first: 1.55 GiB before, 1.97-2.01 GiB with the system allocator; a
process that loads validated messages: the same peak).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

__all__ = ["no_hugepage_stalls", "DEFRAG_POLICY"]

#: Where Linux states its transparent-huge-page defrag policy (the chosen one in brackets).
DEFRAG_POLICY = "/sys/kernel/mm/transparent_hugepage/defrag"
# Policies under which a madvised region compacts memory synchronously on a page fault.
_STALLING = ("madvise", "defer+madvise")

_lock = threading.Lock()
_holders = 0
_previous: bool | None = True  # numpy's setting before the outermost block (None: no switch)
_previous_pool: Any = None  # pyarrow's default memory pool before it (None: no switch)


def _toggle() -> Callable[[bool], bool] | None:
    """numpy's switch for its huge-page requests (it returns the previous setting); None should a later
    numpy drop it (the block then runs as it is: the requests only cost time)."""
    from numpy._core import multiarray

    return getattr(multiarray, "_set_madvise_hugepage", None)


def _pool_toggle() -> Callable[[Any], Any] | None:
    """pyarrow's default memory pool as a switch: given a pool (None: the system allocator's), makes it the
    default and returns the previous default; None without pyarrow."""
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - pyarrow is a dependency; the block then leaves Arrow as it is
        return None

    def swap(pool: Any) -> Any:
        previous = pa.default_memory_pool()
        pa.set_memory_pool(pa.system_memory_pool() if pool is None else pool)
        return previous

    return swap


_switch = _toggle  # (tests substitute recording switches)
_pool_switch = _pool_toggle


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
    """Run the block with numpy's huge-page requests off, and Arrow's allocations from the system allocator,
    where huge-page requests would stall page faults.

    Yields whether they were turned off. Nested and concurrent blocks share
    the switches: the first turns the requests off, the last restores numpy's
    setting and pyarrow's default memory pool as it found them.

    Examples
    --------
    >>> import numpy as np
    >>> with no_hugepage_stalls(policy_file="/nonexistent") as off:
    ...     _ = np.zeros(1 << 20)
    >>> off
    False
    """
    global _holders, _previous, _previous_pool
    toggle, pools = _switch(), _pool_switch()
    if (toggle is None and pools is None) or not _stalls(policy_file):
        yield False
        return
    with _lock:
        if _holders == 0:
            _previous = toggle(False) if toggle is not None else None
            _previous_pool = pools(None) if pools is not None else None
        _holders += 1
    try:
        yield True
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                if toggle is not None:
                    toggle(_previous)
                if pools is not None:
                    pools(_previous_pool)
                _previous_pool = None  # no reference kept to a pool past the block
