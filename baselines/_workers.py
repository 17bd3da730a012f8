"""Units of work run in worker processes, where a worker that dies fails its own unit only.

The refresh job runs tenants in a joblib (loky) pool. A worker killed from
outside (the kernel's out-of-memory killer, most likely, on the tenant that
needs the most memory) breaks the whole pool: every unit still queued would be
lost with it, and the night's job would end without a report. Here the units
not done when that happens run again, each in a process of its own (still
``jobs`` at a time), so the unit that kills its worker again fails alone, with
the reason, and every other unit completes.
"""

from __future__ import annotations

import re
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

__all__ = ["Unit", "run_units"]


@dataclass(frozen=True)
class Unit:
    """One unit of work: ``fn(*args, **kwargs)`` for some tenants.

    ``alone`` holds the units to run instead, one tenant each, when the unit's
    worker dies with several tenants in it (so that only the tenant that kills
    its worker fails).
    """

    fn: Callable[..., Any]
    args: tuple
    kwargs: dict = field(default_factory=dict)
    tenants: tuple[str, ...] = ()
    alone: tuple["Unit", ...] = ()


def _numbered(i: int, fn: Callable[..., Any], args: tuple, kwargs: dict) -> tuple[int, Any]:
    return i, fn(*args, **kwargs)


def death_cause(exc: BaseException) -> str:
    """What a broken pool says about its dead worker: ``'SIGKILL(-9)'``, or its message's first line.

    Examples
    --------
    >>> death_cause(RuntimeError("A worker ... was terminated. The exit codes of the workers are {SIGKILL(-9)}"))
    'SIGKILL(-9)'
    """
    found = re.search(r"exit codes of the workers are \{([^}]*)\}", str(exc))
    return found.group(1) if found else (str(exc).splitlines() or [type(exc).__name__])[0]


def run_units(units: list[Unit], jobs: int, died: Callable[[Unit, str], Any]) -> Iterator[Any]:
    """Each unit's result as it completes, ``jobs`` units at a time in worker processes.

    Parameters
    ----------
    units : list of Unit
    jobs : int
        Worker processes (at least 2: one unit at a time runs in the caller's process instead).
    died : callable
        ``died(unit, cause)``: the result to give for a unit whose worker died on it alone.

    Yields
    ------
    object
        What each unit returned, or ``died``'s answer for it, in order of completion.

    Notes
    -----
    A unit's function reports its own failures in what it returns (the refresh
    job's units catch every exception per tenant): an exception it raises ends
    the run, as it would in the caller's process. Only the death of a worker
    process, which no function can catch, is turned into ``died``'s answer.
    """
    from joblib import Parallel, delayed

    done: set[int] = set()
    try:
        for i, result in Parallel(n_jobs=jobs, return_as="generator_unordered")(
                delayed(_numbered)(i, u.fn, u.args, u.kwargs) for i, u in enumerate(units)):
            done.add(i)
            yield result
        return
    except BrokenProcessPool:
        # The pool is gone with the units it held; which of them killed its worker, it cannot say. Units
        # that finished before the break without being collected run again: publishing is idempotent.
        pass
    yield from _each_alone([u for i, u in enumerate(units) if i not in done], jobs, died)


def _each_alone(units: list[Unit], jobs: int, died: Callable[[Unit, str], Any]) -> Iterator[Any]:
    """The units, each in a process of its own (``jobs`` at a time): a death takes one unit with it."""
    from joblib.externals.loky import ProcessPoolExecutor

    queue = list(units)
    running: dict[Future, tuple[Unit, Any]] = {}
    try:
        while queue or running:
            while queue and len(running) < jobs:
                unit = queue.pop(0)
                pool = ProcessPoolExecutor(max_workers=1)
                running[pool.submit(unit.fn, *unit.args, **unit.kwargs)] = (unit, pool)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                unit, pool = running.pop(future)
                pool.shutdown(wait=False)
                try:
                    result = future.result()
                except BrokenProcessPool as exc:
                    if unit.alone:  # several tenants: each again alone, so only the one at fault fails
                        queue[:0] = list(unit.alone)
                        continue
                    yield died(unit, death_cause(exc))
                    continue
                yield result
    finally:
        for _, pool in running.values():
            pool.shutdown(wait=False, kill_workers=True)
