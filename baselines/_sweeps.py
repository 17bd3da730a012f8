"""Compiled single passes over events sorted by (key, time): run edges of many queries in one walk.

The point-in-time tables (:mod:`._pointintime`) ask, for millions of (key,
instant) queries, where each key's events strictly before the instant end, and
the same again at instants shifted back by each window length and the settle
delay. Done with numpy, every such answer is a binary search or a merge by
sort, with its temporaries: a dozen full passes over the arrays per table.
Walked in the queries' (key, instant) order, each answer is instead a pointer
that only moves forward along the sorted events, so one compiled pass answers
every shift at once. Nothing in numpy, pandas or scipy sweeps per-key time
windows like this. The same module holds the other single passes of the
point-in-time tables: a stable counting sort by key, sums of weights before
each query (the same walk, carrying the sums), running
maxima and compensated running sums per key, the known-contact scores, and the
nearest level present on a list followed through its changes (look-alike distances).

Kernels read their inputs in order: the queries are gathered into sorted order
by numpy first (a kernel that reads through a permutation waits on a cache miss
at every branch; numpy keeps many loads in flight). Answers may be written
through a permutation: a store waits on nothing, so the walk puts each answer
straight in its query's own place.

The kernels are private (``_..._kernel``), compiled by numba with
``cache=True`` on their first call, when numba is imported (importing
commgraph does not load it): the machine code is kept in ``__pycache__``
beside this file, or under ``NUMBA_CACHE_DIR`` when that is set, or in the
user's cache directory when neither is writable; without any, each process
compiles them once. The public functions check their inputs (the kernels do
not check bounds) and allocate the outputs. They are plain functions of numpy
arrays, deterministic, single-threaded (no ``parallel``, no ``fastmath``).
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

__all__ = ["runs_before", "sorted_runs_before", "sorted_run_differences", "sorted_sums_before", "counting_order",
           "pairs_in_order", "first_flagged", "flagged_runs", "first_per_group", "reverse_pairs", "own_count_last",
           "kept_order", "compress", "segment_cumsum", "running_max", "first_present_level", "warm_up", "WarmUp"]


class _Kernel:
    """A function that numba compiles, ``njit(cache=True, nogil=True)``, on its first call.

    numba (and LLVM) are imported then, not when commgraph is: importing
    ``commgraph.signals`` to score mail stays as fast as before, and only a
    process that backfills pays for them. Without a writable cache directory,
    the kernel is compiled without caching.
    """

    __slots__ = ("py_func", "_dispatcher")

    def __init__(self, fn: Callable):
        self.py_func = fn
        self._dispatcher = None

    @property
    def dispatcher(self):
        """The numba dispatcher, made on first use."""
        if self._dispatcher is None:
            import numba

            if self.py_func.__module__.partition(".")[0] in ("graph", "baselines", "signals"):
                # Imported by its path (pytest --doctest-modules baselines/x.py): numba's cache files are named
                # after the source file, not the module, and what it stored would name a module 'baselines.x'
                # that an import of commgraph then fails to find. Such a process compiles without the cache.
                self._dispatcher = numba.njit(cache=False, nogil=True)(self.py_func)
                return self._dispatcher
            try:
                self._dispatcher = numba.njit(cache=True, nogil=True)(self.py_func)
            except RuntimeError:  # numba found no writable cache location (read-only install, no home directory)
                self._dispatcher = numba.njit(cache=False, nogil=True)(self.py_func)
        return self._dispatcher

    def __call__(self, *args):
        return self.dispatcher(*args)


#: Every kernel made (those of the modules imported so far), and the functions that call the other modules'
#: kernels on a tiny input, for :func:`warm_up`.
_ALL_KERNELS: list[_Kernel] = []
_WARMERS: list[Callable[[], Any]] = []


def _compiled(fn: Callable) -> _Kernel:
    kernel = _Kernel(fn)
    _ALL_KERNELS.append(kernel)
    return kernel


def warmed_by(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Register a function that calls a module's kernels on a tiny input: :func:`warm_up` calls it too."""
    _WARMERS.append(fn)
    return fn


@_compiled
def _runs_before_kernel(times, starts, codes, instants, shifts, order, own, out):  # pragma: no cover - compiled
    # Queries come sorted by (code, instant), negative codes anywhere: each shift's pointer moves on along
    # the key's sorted event times to the first one not strictly before ``instant - shift``. Inputs are
    # read in order: a load that a branch waits on never misses the cache. Answers go straight to their
    # query's own place, ``order[j]`` (or ``j`` when ``order`` is empty): a store waits on nothing. A
    # query's answers (lo, then hi per shift) are side by side in its row of ``out``: one cache line to
    # write, where a column per answer took one each (a fifth less time over 3-4 shifts of a million).
    # ``own``: the queries are the events themselves, in their sorted order: an event's hi at its own time
    # (shift 0) is the start of its run of equal times, known without a pointer (whose loop exit, a branch
    # mispredicted about once per query, cost more than half of such a walk).
    # Returns 0, or 1 at a code outside the code space, 2 at a position outside the queries (before reading or
    # writing through it: the caller raises; a check inside the walk, where a separate pass read every code and
    # position again).
    n_shifts = len(shifts)
    n = len(codes)
    n_codes = len(starts) - 1
    put = len(order) > 0
    pointer = np.zeros(n_shifts, np.int64)
    previous_code = -1
    previous_instant = 0
    run = 0
    for j in range(n):
        i = order[j] if put else j
        c = codes[j]
        if i < 0 or i >= n:
            return 2
        if c >= n_codes:
            return 1
        if c < 0:  # a key without events: an empty run
            for k in range(n_shifts + 1):
                out[i, k] = 0
            continue
        t = instants[j]
        begin = starts[c]
        if c != previous_code or t < previous_instant:  # a new key (or queries out of order): from its start
            for k in range(n_shifts):
                pointer[k] = begin
            run = j
        elif t != previous_instant:
            run = j
        end = starts[c + 1]
        out[i, 0] = begin
        for k in range(n_shifts):
            if own and shifts[k] == 0:  # (own events: the run of equal times starts at ``run``)
                out[i, k + 1] = run
                continue
            bound = t - shifts[k]
            p = pointer[k]
            if p < end:  # two steps without a branch (a pointer mostly moves 0 or 1), then the loop, rarely
                last = end - 1
                p += (times[p] < bound) & (p < end)
                p += (times[min(p, last)] < bound) & (p < end)
            while p < end and times[p] < bound:  # strictly before: an event at the bound itself stays out
                p += 1
            pointer[k] = p
            out[i, k + 1] = p
        previous_code = c
        previous_instant = t
    return 0


@_compiled
def _run_differences_kernel(times, starts, codes, instants, shifts, order, own, events, prefixes, columns,
                            out):  # pragma: no cover - compiled
    # _runs_before_kernel's walk, each query answered with differences of prefix sums at its run edges
    # (``columns``: prefix column, or -1 for the edges themselves, then edges a and b: 0 lo, k + 1 the hi
    # of shift k, b -1 nothing subtracted), read where the pointers stop, in the order they pass the prefixes.
    # Returns as _runs_before_kernel does (0, or 1 or 2 at a code or position out of range). ``events`` (when
    # given): which queries are the events, the queries being rows sorted by (code, time) that hold them (a
    # timeline of some rows): the hi at shift 0 is then the key's start plus its events among the rows ahead of
    # the run of equal times, counted as the walk passes them, with no pointer (whose loop exit is a branch
    # mispredicted about once per query); kept inside the key's events whatever the flags.
    n_shifts = len(shifts)
    n_codes = len(starts) - 1
    n = len(codes)
    n_columns = len(columns)
    counted = len(events) > 0
    seen, run_seen = 0, 0
    put = len(order) > 0
    pointer = np.zeros(n_shifts, np.int64)
    edge = np.zeros(n_shifts + 2, np.int64)  # the run edges, then position 0 (every prefix sum 0 there)
    column, a_at, b_at = columns[:, 0].copy(), columns[:, 1].copy(), columns[:, 2].copy()
    for m in range(n_columns):
        if b_at[m] < 0:
            b_at[m] = n_shifts + 1
    last_code, last_instant, run = -1, 0, 0
    for j in range(n):
        i = order[j] if put else j
        c = codes[j]
        if i < 0 or i >= n:
            return 2
        if c >= n_codes:
            return 1
        if c < 0:  # a key without events: nothing before it
            for m in range(n_columns):
                out[i, m] = 0
            continue
        t = instants[j]
        begin = starts[c]
        if c != last_code or t < last_instant:  # a new key (or queries out of order): from its start
            for k in range(n_shifts):
                pointer[k] = begin
            run = j
            seen, run_seen = 0, 0
        elif t != last_instant:
            run = j
            run_seen = seen
        end = starts[c + 1]
        edge[0] = begin
        for k in range(n_shifts):
            p = pointer[k]
            if own and shifts[k] == 0:  # (own events: the run of equal times starts at ``run``)
                p = run
            elif counted and shifts[k] == 0:  # (the key's events among the rows ahead of the run)
                p = min(begin + run_seen, end)
            else:
                stop = t - shifts[k]
                if p < end:  # two steps without a branch (a pointer mostly moves 0 or 1), then the loop, rarely
                    last = end - 1
                    p += (times[p] < stop) & (p < end)
                    p += (times[min(p, last)] < stop) & (p < end)
                while p < end and times[p] < stop:  # strictly before
                    p += 1
                pointer[k] = p
            edge[k + 1] = p
        for m in range(n_columns):
            a, b = edge[a_at[m]], edge[b_at[m]]
            out[i, m] = a - b if column[m] < 0 else prefixes[a, column[m]] - prefixes[b, column[m]]
        if counted and events[j]:
            seen += 1
        last_code, last_instant = c, t
    return 0


@_compiled
def _sums_before_kernel(times, starts, weights, codes, instants, order, out):  # pragma: no cover - compiled
    # The walk of _runs_before_kernel with one pointer, carrying each weight's sum over the key's events it
    # passes: a query's sums are read off as the pointer stops, written straight to the query's own place.
    # A kernel of its own: carrying the sums in that walk (a branch per event) slowed it by 15-20%. Returns as
    # _runs_before_kernel does (0, or 1 or 2 at a code or position out of range).
    n_weights = weights.shape[1]
    n = len(codes)
    n_codes = len(starts) - 1
    put = len(order) > 0
    total = np.zeros(n_weights, np.int64)
    p = 0
    previous_code = -1
    previous_instant = 0
    for j in range(n):
        i = order[j] if put else j
        c = codes[j]
        if i < 0 or i >= n:
            return 2
        if c >= n_codes:
            return 1
        if c < 0:  # a key without events: empty sums
            for k in range(n_weights):
                out[i, k] = 0
            continue
        t = instants[j]
        if c != previous_code or t < previous_instant:  # a new key (or queries out of order): from its start
            p = starts[c]
            for k in range(n_weights):
                total[k] = 0
        end = starts[c + 1]
        while p < end and times[p] < t:  # strictly before: an event at the instant itself stays out
            for k in range(n_weights):  # one row of the weights holds every column: one cache line or two
                total[k] += weights[p, k]
            p += 1
        for k in range(n_weights):  # a query's sums side by side: one cache line to write, not one per weight
            out[i, k] = total[k]
        previous_code = c
        previous_instant = t
    return 0


@_compiled
def _counting_order_kernel(codes_in_order, by_time, n_codes, out):  # pragma: no cover - compiled
    # False (before writing anything) at a code outside the code space: the caller raises, where a min and a max
    # of the codes in passes of their own checked them.
    offsets = np.zeros(n_codes + 1, np.int64)
    for j in range(len(codes_in_order)):
        c = codes_in_order[j]
        if c < 0 or c >= n_codes:
            return False
        offsets[c + 1] += 1
    for c in range(n_codes):
        offsets[c + 1] += offsets[c]
    for j in range(len(by_time)):  # in time order: each key's slots fill in time order (a stable sort)
        c = codes_in_order[j]
        out[offsets[c]] = by_time[j]
        offsets[c] += 1
    return True


@_compiled
def _pairs_kernel(senders, by_key, recipients, times, start, order, codes, sorted_codes, sorted_times,
                  keys):  # pragma: no cover - compiled
    # The rows in (recipient, time) order dealt stably into their senders' slots (``start``: where each sender's
    # begin; counting_order's pass), their recipients and times carried along (read in order, where gathers
    # through the order read at random).
    n_codes = len(start) - 1
    for j in range(len(senders)):
        p = start[senders[j]]
        order[p], sorted_codes[p], sorted_times[p] = by_key[j], recipients[j], times[j]
        start[senders[j]] = p + 1
    # Each sender's rows in recipient order: a pair starts where the recipient changes, numbered in order (its
    # recipient overwritten by its code), and each row's code written in its own place as well.
    pair = -1
    begin = 0
    for sender in range(n_codes):
        last = -1
        for p in range(begin, start[sender]):
            recipient = sorted_codes[p]
            if recipient != last:
                pair += 1
                keys[pair] = sender * n_codes + recipient
                last = recipient
            sorted_codes[p] = pair
            codes[order[p]] = pair
        begin = start[sender]
    return pair + 1


@_compiled
def _first_flagged_kernel(order, sorted_codes, flags, out_row, out_code):  # pragma: no cover - compiled
    # Along the rows in (code, time) order, the first flagged row of each code: the flags read through the
    # order (a byte each), nothing else written but the answers.
    m = 0
    last = -1
    for p in range(len(order)):
        c = sorted_codes[p]
        if c != last and flags[order[p]]:
            out_row[m], out_code[m] = order[p], c
            m += 1
            last = c
    return m


@_compiled
def _reverse_pairs_kernel(keys, n_codes, start, by_reverse, out):  # pragma: no cover - compiled
    # The pairs dealt by recipient (``start``: where each recipient's begin), senders in order within each: their
    # reverse keys r * n_codes + s come in increasing order, found by one pointer moving on along the keys.
    # (No division: the keys increase, so the sender moves on along them, and the reverse key is written then.)
    sender = 0
    for k in range(len(keys)):
        while keys[k] >= (sender + 1) * n_codes:
            sender += 1
        r = keys[k] - sender * n_codes
        by_reverse[start[r]] = k
        start[r] += 1
        out[k] = r * n_codes + sender
    p = 0
    for j in range(len(keys)):
        k = by_reverse[j]
        target = out[k]
        while p < len(keys) and keys[p] < target:
            p += 1
        out[k] = p if p < len(keys) and keys[p] == target else -1


@_compiled
def _own_count_last_kernel(codes, times, order, fill, count, last):  # pragma: no cover - compiled
    # Along the events in (code, time) order: a key's events before an event are those from the key's start to
    # its run of equal times, the last of them just ahead of that run; written in the event's own place.
    # (Selects, no branches: new keys and runs come at random along the pairs, and a branch on them mispredicts.)
    begin, run = 0, 0
    for p in range(len(codes)):
        previous = max(p - 1, 0)
        new_key = (p == 0) | (codes[p] != codes[previous])
        begin = p if new_key else begin
        run = p if new_key | (times[p] != times[previous]) else run
        i = order[p]
        count[i] = run - begin
        before = times[max(run - 1, 0)]
        last[i] = before if run > begin else fill


@_compiled
def _flagged_runs_kernel(order, sorted_codes, sorted_times, flags, out):  # pragma: no cover - compiled
    # Along the rows in (code, time) order, each code's rows at once: whether one is flagged (written to each
    # row's place, a byte), and whether a row comes before the first flagged one in time.
    waits = False
    n = len(order)
    p = 0
    while p < n:
        q, first = p, -1
        while q < n and sorted_codes[q] == sorted_codes[p]:
            first = q if (first < 0) & flags[order[q]] else first  # (a select: flags come at random)
            q += 1
        for k in range(p, q):
            out[order[k]] = first >= 0
        if first >= 0 and sorted_times[p] < sorted_times[first]:
            waits = True
        p = q
    return waits


@_compiled
def _first_per_group_kernel(group, flags, codes, n_codes, out):  # pragma: no cover - compiled
    # Rows come grouped (each group's rows side by side): a code is new to its group unless the group last seen
    # with it is this one.
    # (Selects, no branch on the flags or on whether a code is new: both come at random.)
    seen = np.full(n_codes, -1, np.int64)
    for i in range(len(group)):
        c, g, f = codes[i], group[i], flags[i]
        s = seen[c]
        out[i] = f & (s != g)
        seen[c] = g if f else s


@_compiled
def _kept_order_kernel(order, mask, position, out):  # pragma: no cover - compiled
    # ``position``: each kept row's number among the kept rows, -1 for the others (one read per row of the
    # order at random, not the flag's and the number's; int32 where it fits: half the bytes read at random).
    # No branch on the flags (kept and left rows mix at random: a branch on them mispredicted at every other
    # row): every row's number is written at the next place, ``out`` holding one spare place past the kept rows
    # for the rows left out, and the place moves on for a kept row.
    n = len(mask)
    kept = 0
    for i in range(n):
        position[i] = kept if mask[i] else -1
        kept += mask[i]
    m = 0
    spare = len(out) - 1
    for j in range(len(order)):
        i = order[j]
        if i < 0 or i >= n:
            raise ValueError("kept_order: the order holds a position outside the rows")
        k = position[i]
        out[m] = k
        m += k >= 0
        if m > spare:
            raise ValueError("kept_order: the order is not a permutation of the rows (a kept row twice)")
    return m


@_compiled
def _segment_cumsum_kernel(values, new_segment, out):  # pragma: no cover - compiled
    total = 0.0
    compensation = 0.0
    for i in range(len(values)):
        if new_segment[i]:
            total = 0.0
            compensation = 0.0
        # Kahan summation, step for step as pandas' groupby cumsum (so results agree to the bit).
        y = values[i] - compensation
        t = total + y
        compensation = t - total - y
        total = t
        out[i] = total


@_compiled
def _running_max_kernel(codes, values, out):  # pragma: no cover - compiled
    top = 0
    for j in range(len(codes)):
        if j == 0 or codes[j] != codes[j - 1] or values[j] > top:
            top = values[j]
        out[j] = top


@_compiled
def _first_present_kernel(levels, member, sign, row, done, by_done, cap, out):  # pragma: no cover - compiled
    # levels: (members, rows), each member's level for every row. Changes are applied in order as the
    # queries (taken by increasing ``done``) need them, each to every row's count at the member's level.
    n_rows = levels.shape[1]
    counts = np.zeros((n_rows, cap), np.int64)
    applied = 0
    for j in range(len(by_done)):
        q = by_done[j]
        while applied < done[q]:
            m = member[applied]
            s = sign[applied]
            for r in range(n_rows):
                level = levels[m, r]
                if level < cap:
                    counts[r, level] += s
            applied += 1
        answer = cap
        r = row[q]
        for level in range(cap):
            if counts[r, level] > 0:
                answer = level
                break
        out[q] = answer


def _c(values: np.ndarray) -> np.ndarray:
    # One array type per argument (contiguous int64): the signatures warm_up compiled, no new compile mid-run.
    return np.ascontiguousarray(values, dtype=np.int64)


_NO_ORDER = np.zeros(0, np.int64)  # the answers stay in sorted order
_NO_FLAGS = np.zeros(0, bool)  # no event flags: the differences' walk searches every shift
_NO_PREFIXES, _NO_COLUMNS = np.zeros((0, 0), np.int64), np.zeros((0, 3), np.int64)  # the walk answers run edges
#: The weight widths the sums' walk takes as they are (each a compiled signature, warmed by warm_up).
_WEIGHT_TYPES = (np.dtype(np.int8), np.dtype(np.int32), np.dtype(np.int64))


def _query_order(order: np.ndarray | None, n: int, what: str) -> np.ndarray:
    """Where each of ``n`` sorted queries' answers go (its positions checked by the walks, :func:`_refused`), or
    :data:`_NO_ORDER` for answers in sorted order."""
    if order is None:
        return _NO_ORDER
    order = _c(order)
    if len(order) != n:
        raise ValueError(f"{what}: an order of {len(order)} queries for {n}; pass where each sorted query belongs")
    return order


def _check_codes(codes: np.ndarray, n_codes: int, what: str) -> None:
    if len(codes) and int(codes.max()) >= n_codes:
        raise ValueError(f"{what}: key code {int(codes.max())} is outside the code space 0 .. {n_codes - 1}; "
                         "pass the n_codes the events were coded with")


def _refused(status: int, codes: np.ndarray, n_codes: int, order: np.ndarray, what: str) -> None:
    """Raise the error of a walk that stopped at a key code outside the code space (``status`` 1) or a position
    outside the queries (2); nothing for 0. The walks check both as they read them: no pass of their own."""
    if status == 1:
        _check_codes(codes, n_codes, what)
    if status:
        raise ValueError(f"{what}: the order holds a position outside the queries (0 .. {len(codes) - 1})")


def sorted_runs_before(times: np.ndarray, starts: np.ndarray, codes: np.ndarray, instants: np.ndarray,
                       shifts: np.ndarray | Sequence[int] = (0,), order: np.ndarray | None = None, *,
                       own: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """:func:`runs_before` for queries already sorted by (code, instant): answers in that order, or put back.

    One forward walk (per shift, a pointer along the key's events): the
    events of a timeline asked about at their own times (its sorted codes and
    times) need no gather at all. ``order``, when given, says where each
    sorted query belongs (query ``order[j]`` is sorted ``j``th): the walk
    then writes each answer in its query's own place. ``own``: the queries
    are the events themselves (``codes`` and ``instants`` their own sorted
    codes and times): the answers at shift 0 are read off the runs of equal
    times, with no search.

    Examples
    --------
    >>> times, starts = np.array([10, 20, 20, 30]), np.array([0, 4])  # one key
    >>> lo, his = sorted_runs_before(times, starts, np.array([0, 0, 0, 0]), times, [0, 10])
    >>> lo.tolist(), his.tolist()  # each event: the events strictly before it, and before it less 10
    ([0, 0, 0, 0], [[0, 1, 1, 3], [0, 0, 0, 1]])
    """
    out = _walk(times, starts, codes, instants, shifts, order, own, _NO_PREFIXES, _NO_COLUMNS, "sorted_runs_before")
    return out[:, 0], out[:, 1:].T


def sorted_run_differences(times: np.ndarray, starts: np.ndarray, codes: np.ndarray, instants: np.ndarray,
                           shifts: np.ndarray | Sequence[int], prefixes: np.ndarray, columns: np.ndarray,
                           order: np.ndarray | None = None, *, own: bool = False, narrow: bool = False,
                           events: np.ndarray | None = None) -> np.ndarray:
    """:func:`sorted_runs_before`'s walk answering with differences of prefix sums at each query's run edges.

    The run edges of a query are numbered ``0`` (``lo``) and ``k + 1`` (``hi``
    at ``instant - shifts[k]``); each row ``(column, a, b)`` of ``columns``
    asks for ``prefixes[edge a, column] - prefixes[edge b, column]``, or
    ``edge a - edge b`` (a count of events) for column -1; ``b`` -1 subtracts
    nothing (edge a itself, or the prefix sum there). The walk reads the
    prefixes where its pointers stop (in order along each key) and writes the
    differences in the query's place: no run edges to write out, and no random
    gathers of prefixes at them afterwards.

    Parameters
    ----------
    prefixes : ndarray of int64, shape (len(times) + 1, n_prefixes)
        Cumulative sums along the sorted events (0 first), one column each.
    columns : ndarray of int, shape (n_columns, 3)
    narrow : bool, default False
        Answers as int32, for callers whose prefix sums are counts of the events (every difference at most
        their number) when there are fewer than 2**31 events: half the memory written at random.
    events : ndarray of bool, optional
        The queries are rows sorted by (code, time), the events those of them where ``events`` holds (a
        timeline of some rows, asked about every row at its own time; ``own`` is for all of them): the hi at
        shift 0 is counted along the rows, with no search.

    Returns
    -------
    ndarray of int64 (int32, see ``narrow``), shape (n_columns, len(codes))
        One row per column of ``columns`` (views of the queries' answers side by side); 0 for a negative code.

    Examples
    --------
    >>> times, starts = np.array([10, 20, 20, 30]), np.array([0, 4])  # one key
    >>> flags = np.array([[0], [0], [1], [2], [2]])  # the two events at 20 flagged: the flags' prefix sums
    >>> columns = np.array([[-1, 1, 0], [-1, 1, 2], [0, 1, 0]])  # events before t, of them in [t - 10, t), flags
    >>> sorted_run_differences(times, starts, np.zeros(3, np.int64), np.array([20, 25, 31]), [0, 10], flags,
    ...                        columns).tolist()
    [[1, 3, 4], [1, 2, 1], [0, 2, 2]]
    """
    prefixes = np.ascontiguousarray(prefixes, dtype=np.int64)
    columns = _c(columns).reshape(-1, 3)
    n_edges = len(np.asarray(shifts).reshape(-1)) + 1
    if prefixes.ndim != 2 or len(prefixes) != len(times) + 1:
        raise ValueError(f"sorted_run_differences: prefixes of shape {prefixes.shape} for {len(times)} events; pass "
                         "one row per event and a first row of zeros")
    if len(columns) and (int(columns[:, 0].min()) < -1 or int(columns[:, 0].max()) >= prefixes.shape[1]
                         or int(columns[:, 1].min()) < 0 or int(columns[:, 2].min()) < -1
                         or int(columns[:, 1:].max()) >= n_edges):
        raise ValueError(f"sorted_run_differences: columns ask for prefix columns {columns[:, 0].tolist()} of "
                         f"{prefixes.shape[1]} or run edges {columns[:, 1:].ravel().tolist()} of {n_edges}")
    if narrow and len(times) >= 1 << 31:
        raise ValueError("sorted_run_differences: narrow answers of counts need fewer than 2**31 events")
    if events is not None and (own or len(events) != len(codes)):
        raise ValueError(f"sorted_run_differences: {len(events)} event flags for {len(codes)} queries (own "
                         f"{bool(own)}); pass a flag per query, and own=False")
    out = _walk(times, starts, codes, instants, shifts, order, own, prefixes, columns, "sorted_run_differences",
                np.int32 if narrow else np.int64, _NO_FLAGS if events is None else np.ascontiguousarray(events, bool))
    return out.T


def _walk(times: np.ndarray, starts: np.ndarray, codes: np.ndarray, instants: np.ndarray,
          shifts: np.ndarray | Sequence[int], order: np.ndarray | None, own: bool, prefixes: np.ndarray,
          columns: np.ndarray, what: str, width: type = np.int64, events: np.ndarray | None = None) -> np.ndarray:
    """The runs' walk over checked inputs: run edges (no ``columns``) or differences, a row per query."""
    codes = _c(codes)
    shifts = _c(np.asarray(shifts, dtype=np.int64).reshape(-1))
    instants = _c(instants)
    if len(instants) != len(codes):
        raise ValueError(f"{what}: {len(codes)} codes and {len(instants)} instants; pass one instant per query")
    order = _query_order(order, len(codes), what)
    times = _c(times)
    if own and not (len(codes) == len(times) and np.array_equal(instants, times)
                    and bool((codes[1:] >= codes[:-1]).all())):
        raise ValueError(f"{what}: own=True asks the events about themselves; pass the events' own sorted codes and "
                         "times as the queries")
    out = np.empty((len(codes), len(columns) if len(columns) else 1 + len(shifts)), width)
    # With an order, the walk writes each answer straight to its query's place: no answers in sorted order
    # to allocate, fill, and scatter again.
    starts = _c(starts)
    if len(columns):
        status = _run_differences_kernel(times, starts, codes, instants, shifts, order, bool(own),
                                         _NO_FLAGS if events is None else events, prefixes, columns, out)
    else:
        status = _runs_before_kernel(times, starts, codes, instants, shifts, order, bool(own), out)
    _refused(status, codes, len(starts) - 1, order, what)
    return out


def runs_before(times: np.ndarray, starts: np.ndarray, codes: np.ndarray, instants: np.ndarray, order: np.ndarray,
                shifts: np.ndarray | Sequence[int] = (0,)) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the sorted positions ``lo:hi`` of its key's events strictly before its instant, per shift.

    The queries are taken in ``order`` (numpy gathers), walked once
    (:func:`sorted_runs_before`: for a query of key ``c`` at instant ``t``
    and a shift ``s``, ``hi`` is the first position in
    ``starts[c]:starts[c + 1]`` whose time is not before ``t - s``, that is
    ``starts[c] + np.searchsorted(times[starts[c]:starts[c+1]], t - s)``),
    and the answers written in the queries' own order by the walk. A
    negative code (a key no event has) gives ``0:0``.

    Parameters
    ----------
    times : ndarray of int64
        Event times sorted by (key code, time).
    starts : ndarray of int64
        ``n_codes + 1`` offsets: key ``c``'s events are ``times[starts[c]:starts[c + 1]]``.
    codes, instants : ndarray of int64
        Each query's key code and instant (ns).
    order : ndarray of int64
        A permutation of the queries, best sorted by (code, instant) with
        negative codes read as 0 (then every pointer only moves forward: one
        pass). Any permutation gives the same answer; a query before the
        previous one in (code, instant) restarts its key's walk.
    shifts : sequence of int, default (0,)
        Look-back shifts (ns): ``hi`` is taken at ``instant - shift``.

    Returns
    -------
    lo : ndarray of int64
        ``starts[code]`` per query (0 for a negative code).
    his : ndarray of int64, shape (len(shifts), len(codes))
        ``hi`` per shift and query. Both are views of one matrix holding each
        query's answers side by side (as the walk writes them).

    Examples
    --------
    >>> times = np.array([10, 20, 20, 30, 5])  # key 0: 10, 20, 20, 30; key 1: 5
    >>> starts = np.array([0, 4, 5])
    >>> codes, instants = np.array([0, 0, 1, -1]), np.array([20, 31, 6, 9])
    >>> lo, his = runs_before(times, starts, codes, instants, np.array([0, 1, 3, 2]), shifts=[0, 15])
    >>> lo.tolist(), his.tolist()  # events strictly before 20: one; before 20 - 15 = 5: none
    ([0, 0, 4, 0], [[1, 4, 5, 0], [0, 1, 4, 0]])
    """
    order = _c(order)
    if len(order) != len(codes):
        raise ValueError(f"runs_before: an order of {len(order)} queries for {len(codes)}; pass a permutation of "
                         "the queries")
    return sorted_runs_before(times, starts, _c(codes)[order], _c(instants)[order], shifts, order)


def sorted_sums_before(times: np.ndarray, starts: np.ndarray, weights: np.ndarray, codes: np.ndarray,
                       instants: np.ndarray, order: np.ndarray | None = None, *, narrow: bool = False) -> np.ndarray:
    """Per query sorted by (code, instant), each weight summed over its key's events strictly before its instant.

    Equals the differences of the weights' cumulative sums at the run edges
    ``lo:hi`` that :func:`sorted_runs_before` finds, in one walk: no run
    edges or prefix sums to write and read back. ``order``, when given, says where each sorted query belongs (query
    ``order[j]`` is sorted ``j``th): the walk writes its sums there.

    Parameters
    ----------
    times : ndarray of int64
        Event times sorted by (key code, time).
    starts : ndarray of int64
        ``n_codes + 1`` offsets: key ``c``'s events are ``times[starts[c]:starts[c + 1]]``.
    weights : ndarray of int8, int32 or int64, shape (n_events, n_weights)
        Each event's weights, in the same sorted order (other dtypes are read as int64).
    codes, instants : ndarray of int64
        The queries' key codes (negative: a key without events) and instants (ns), sorted by (code, instant)
        (queries out of order are answered too, restarting their key's walk).
    order : ndarray of int64, optional
    narrow : bool, default False
        Sums as int32 where none can leave it (int8 weights over fewer than
        2**24 events): half the memory written at random, for callers that
        narrow the sums anyway.

    Returns
    -------
    ndarray of int64 (or int32, see ``narrow``), shape (n_weights, len(codes))
        One row per weight: a view of the queries' sums stored side by side
        (each query's in one cache line, written once).

    Examples
    --------
    >>> times, starts = np.array([10, 20, 20, 30]), np.array([0, 4])  # one key
    >>> weights = np.array([[1, 0], [1, 1], [0, 1], [1, 0]])
    >>> sorted_sums_before(times, starts, weights, np.array([0, 0, 0]), np.array([20, 21, 31])).tolist()
    [[1, 2, 3], [0, 2, 2]]
    """
    codes = _c(codes)
    instants = _c(instants)
    weights = np.asarray(weights)
    # Weights narrower than int64 are walked as they are (a row of flags in a byte each: an eighth of the reads),
    # in the widths the walk is compiled for (warm_up); any other is summed as int64.
    weights = np.ascontiguousarray(weights, dtype=weights.dtype if weights.dtype in _WEIGHT_TYPES else np.int64)
    if len(instants) != len(codes):
        raise ValueError(f"sorted_sums_before: {len(codes)} codes and {len(instants)} instants; pass one instant "
                         "per query")
    if weights.ndim != 2 or len(weights) != len(times):
        raise ValueError(f"sorted_sums_before: weights of shape {weights.shape} for {len(times)} events; pass one "
                         "row of weights per event")
    order = _query_order(order, len(codes), "sorted_sums_before")
    fits = narrow and weights.dtype == np.int8 and len(times) < 1 << 24  # |sum| < 128 * 2**24 = 2**31
    out = np.empty((len(codes), weights.shape[1]), np.int32 if fits else np.int64)
    starts = _c(starts)
    _refused(_sums_before_kernel(_c(times), starts, weights, codes, instants, order, out), codes, len(starts) - 1,
             order, "sorted_sums_before")
    return out.T


def counting_order(codes: np.ndarray, by_time: np.ndarray, n_codes: int) -> np.ndarray:
    """The argsort of (code, rank in time) for codes ``0 .. n_codes - 1``: a stable counting sort, one pass.

    ``by_time`` is a stable time order of the events (a permutation of
    ``0 .. len(codes) - 1``). Events are dealt, in time order, into their
    code's slots: the same permutation as a stable sort of the time-ordered
    codes (:func:`commgraph.baselines._pointintime.code_order`), without its
    radix passes and their temporaries. The codes are read in time order by
    one numpy gather first (the kernel then reads them in order, never waiting
    on a cache miss). Costs ``n_codes`` counters: for code spaces about as
    large as the events or smaller.

    Examples
    --------
    >>> counting_order(np.array([1, 0, 1, 0]), np.array([3, 2, 1, 0]), 2).tolist()
    [3, 1, 2, 0]
    """
    codes = _c(codes)
    by_time = _c(by_time)
    if len(by_time) != len(codes):
        raise ValueError(f"counting_order: {len(codes)} codes and a time order of {len(by_time)}; pass one time "
                         "order of all the events")
    out = np.empty(len(codes), np.int64)
    if not _counting_order_kernel(codes[by_time], by_time, int(n_codes), out):  # (it checks the codes)
        raise ValueError(f"counting_order: codes {int(codes.min())} .. {int(codes.max())} are outside the code space "
                         f"0 .. {n_codes - 1}; pass non-negative codes and their number")
    return out


def pairs_in_order(senders: np.ndarray, by_key: np.ndarray, recipients: np.ndarray, times: np.ndarray,
                   n_codes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(sender, recipient) pairs of rows given in (recipient, time) order, numbered, with their (pair, time) order.

    ``by_key`` is the rows' (recipient, time) order, and ``senders``,
    ``recipients`` and ``times`` the rows' values in that order (codes
    ``0 .. n_codes - 1``). Dealt stably by sender (:func:`counting_order`'s
    pass), the rows come in (sender, recipient, time) order: the (pair, time)
    order, with the recipients and times carried along instead of gathered
    through it, and the pairs numbered as they start (in the order of their
    keys ``sender * n_codes + recipient``), in one compiled pass more.

    Returns
    -------
    codes : ndarray of int64
        Each row's pair code, in row order.
    order : ndarray of int64
        The rows sorted by (pair, time).
    sorted_codes, sorted_times : ndarray of int64
        The pair codes and times in that order.
    keys : ndarray of int64
        Each pair's key, increasing.

    Examples
    --------
    >>> recipients, times, senders = np.array([0, 0, 1]), np.array([5, 7, 6]), np.array([1, 0, 1])
    >>> codes, order, sorted_codes, sorted_times, keys = pairs_in_order(senders, np.array([2, 0, 1]), recipients,
    ...                                                                 times, 2)
    >>> codes.tolist(), order.tolist(), sorted_times.tolist(), keys.tolist()
    ([0, 2, 1], [0, 2, 1], [7, 5, 6], [0, 2, 3])
    """
    senders, by_key, recipients, times = _c(senders), _c(by_key), _c(recipients), _c(times)
    n = len(by_key)
    if not len(senders) == len(recipients) == len(times) == n:
        raise ValueError(f"pairs_in_order: {len(senders)} senders, {n} rows in order, {len(recipients)} recipients "
                         f"and {len(times)} times; pass one of each per row")
    for name, values in (("senders", senders), ("recipients", recipients)):
        if n and (int(values.min()) < 0 or int(values.max()) >= n_codes):
            raise ValueError(f"pairs_in_order: {name} outside the code space 0 .. {n_codes - 1}")
    if n and (int(by_key.min()) < 0 or int(by_key.max()) >= n):
        raise ValueError(f"pairs_in_order: the order holds a position outside the rows (0 .. {n - 1})")
    order, codes, sorted_codes, sorted_times = (np.empty(n, np.int64) for _ in range(4))
    keys = np.empty(n, np.int64)
    start = np.zeros(n_codes + 1, np.int64)
    np.cumsum(np.bincount(senders, minlength=n_codes), out=start[1:])
    n_pairs = _pairs_kernel(senders, by_key, recipients, times, start, order, codes, sorted_codes, sorted_times,
                            keys)
    return codes, order, sorted_codes, sorted_times, keys[:n_pairs]


def first_flagged(order: np.ndarray, sorted_codes: np.ndarray, flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first row (in ``order``) where ``flags`` holds of each code that has one, and that code.

    ``order`` sorts the rows by (code, time) and ``sorted_codes`` are their
    codes in that order: one compiled pass, in place of a gather of the flags,
    four compresses and their temporaries.

    Examples
    --------
    >>> rows, codes = first_flagged(np.array([2, 0, 1, 3]), np.array([0, 0, 1, 1]), np.array([1, 0, 0, 1], bool))
    >>> rows.tolist(), codes.tolist()  # code 0: rows 2 then 0, row 0 flagged; code 1: rows 1 then 3
    ([0, 3], [0, 1])
    """
    order, sorted_codes = _c(order), _c(sorted_codes)
    flags = np.ascontiguousarray(flags, dtype=np.bool_)
    if len(order) != len(sorted_codes) or len(flags) != len(order):
        raise ValueError(f"first_flagged: an order of {len(order)} rows, {len(sorted_codes)} codes and "
                         f"{len(flags)} flags; pass one of each per row")
    if len(order) and (int(order.min()) < 0 or int(order.max()) >= len(order)):
        raise ValueError(f"first_flagged: the order holds a position outside the rows (0 .. {len(order) - 1})")
    rows, codes = np.empty(len(order), np.int64), np.empty(len(order), np.int64)
    found = _first_flagged_kernel(order, sorted_codes, flags, rows, codes)
    return rows[:found], codes[:found]


def reverse_pairs(keys: np.ndarray, n_codes: int) -> np.ndarray:
    """Per pair key ``s * n_codes + r`` (increasing, distinct), the position of ``r * n_codes + s`` among the keys,
    -1 where it is not one: the pairs sorted by (recipient, sender) by a counting pass, and their reverse keys,
    increasing then, merged with the keys, compiled (no sort of the reverse keys with the keys, no temporaries).

    Examples
    --------
    >>> reverse_pairs(np.array([1, 2, 3, 4]), 3).tolist()  # (0, 1), (0, 2), (1, 0), (1, 1)
    [2, -1, 0, 3]
    """
    keys = _c(keys)
    if len(keys) and (int(keys[0]) < 0 or int(keys[-1]) >= n_codes * n_codes or bool((keys[1:] <= keys[:-1]).any())):
        raise ValueError(f"reverse_pairs: pass increasing, distinct keys of pairs of codes 0 .. {n_codes - 1}")
    start = np.zeros(n_codes + 1, np.int64)
    np.cumsum(np.bincount(keys % n_codes, minlength=n_codes), out=start[1:])
    out = np.empty(len(keys), np.int64)
    _reverse_pairs_kernel(keys, int(n_codes), start, np.empty(len(keys), np.int64), out)
    return out


def own_count_last(codes: np.ndarray, times: np.ndarray, order: np.ndarray, fill: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per event (in event order), its key's events strictly before its time, and the last one's time (``fill``:
    none), from the events' codes and times sorted by (code, time) and their order: one compiled pass.

    :func:`sorted_runs_before` of the events themselves answers run edges ``lo``, ``hi``; their count and the
    time at ``hi - 1`` are what a table of counts and last times reads, here written straight to each event's
    place (no run edges, differences, clipped positions and gather of times at random after).

    Examples
    --------
    >>> count, last = own_count_last(np.array([0, 0, 0, 1]), np.array([10, 20, 20, 5]), np.array([3, 0, 1, 2]), -1)
    >>> count.tolist(), last.tolist()  # event 3 first of key 0; events 0 and 1 at 20 after it; event 2 of key 1
    ([1, 1, 0, 0], [10, 10, -1, -1])
    """
    codes, times, order = _c(codes), _c(times), _c(order)
    if not len(codes) == len(times) == len(order):
        raise ValueError(f"own_count_last: {len(codes)} codes, {len(times)} times and an order of {len(order)}; "
                         "pass one of each per event")
    if len(order) and (int(order.min()) < 0 or int(order.max()) >= len(order)):
        raise ValueError(f"own_count_last: the order holds a position outside the events (0 .. {len(order) - 1})")
    count, last = np.empty(len(codes), np.int64), np.empty(len(codes), np.int64)
    _own_count_last_kernel(codes, times, order, int(fill), count, last)
    return count, last


def flagged_runs(order: np.ndarray, sorted_codes: np.ndarray, sorted_times: np.ndarray, flags: np.ndarray
                 ) -> tuple[np.ndarray, bool]:
    """Per row, whether a row of its code is flagged; and whether some code has a row earlier in time than its
    first flagged row. One compiled pass along the rows in (code, time) order (``order``, with the codes and
    times in that order), the flags read through it.

    Examples
    --------
    >>> order, codes, times = np.array([1, 0, 2, 3]), np.array([0, 0, 1, 1]), np.array([5, 6, 7, 8])
    >>> held, waits = flagged_runs(order, codes, times, np.array([True, False, False, False]))
    >>> held.tolist(), waits  # code 0: rows 1 (at 5) and 0 (at 6, flagged); code 1: none flagged
    ([True, True, False, False], True)
    """
    order, sorted_codes, sorted_times = _c(order), _c(sorted_codes), _c(sorted_times)
    flags = np.ascontiguousarray(flags, dtype=np.bool_)
    if not len(order) == len(sorted_codes) == len(sorted_times) == len(flags):
        raise ValueError(f"flagged_runs: an order of {len(order)} rows, {len(sorted_codes)} codes, "
                         f"{len(sorted_times)} times and {len(flags)} flags; pass one of each per row")
    if len(order) and (int(order.min()) < 0 or int(order.max()) >= len(order)):
        raise ValueError(f"flagged_runs: the order holds a position outside the rows (0 .. {len(order) - 1})")
    out = np.empty(len(order), np.bool_)
    waits = _flagged_runs_kernel(order, sorted_codes, sorted_times, flags, out)
    return out, bool(waits)


def first_per_group(group: np.ndarray, flags: np.ndarray, codes: np.ndarray, n_codes: int) -> np.ndarray:
    """Per row, whether it is the first flagged row of its (group, code) pair, for rows given group by group
    (``group`` non-decreasing: a message's edges): one compiled pass with the last group seen per code, in place
    of a stable sort of packed keys (:func:`commgraph.baselines._events.domain_heads`).

    Examples
    --------
    >>> first_per_group(np.array([0, 0, 0, 1]), np.array([True, True, True, False]), np.array([1, 1, 0, 1]), 2).tolist()
    [True, False, True, False]
    """
    group, codes = _c(group), _c(codes)
    flags = np.ascontiguousarray(flags, dtype=np.bool_)
    if not len(group) == len(flags) == len(codes):
        raise ValueError(f"first_per_group: {len(group)} groups, {len(flags)} flags and {len(codes)} codes; pass one "
                         "of each per row")
    if len(group) and bool((group[1:] < group[:-1]).any()):
        raise ValueError("first_per_group: pass the rows group by group (non-decreasing groups)")
    if len(codes) and (int(codes.min()) < 0 or int(codes.max()) >= n_codes):
        raise ValueError(f"first_per_group: codes outside the code space 0 .. {n_codes - 1}")
    out = np.empty(len(group), np.bool_)
    _first_per_group_kernel(group, flags, codes, int(n_codes), out)
    return out


def kept_order(order: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``order`` with the rows where ``mask`` is False left out, the kept rows numbered among themselves.

    A sort order of all rows (a permutation) gives the same sort order of the
    kept rows: ``(np.cumsum(mask) - 1)[order[mask[order]]]`` in one pass and
    one small counter array, without the three temporaries.

    Examples
    --------
    >>> kept_order(np.array([3, 0, 2, 1]), np.array([True, False, True, True])).tolist()
    [2, 0, 1]
    """
    order = _c(order)
    mask = np.ascontiguousarray(mask, dtype=np.bool_)
    if len(order) != len(mask):
        raise ValueError(f"kept_order: an order of {len(order)} rows and a mask of {len(mask)}; pass one mask "
                         "value per row of the order")
    kept = int(np.count_nonzero(mask))
    out = np.empty(kept + 1, np.int64)  # (a spare place: see the kernel)
    position = np.empty(len(mask), np.int32 if len(mask) < 1 << 31 else np.int64)
    if _kept_order_kernel(order, mask, position, out) != kept:
        raise ValueError("kept_order: the order is not a permutation of the rows (a kept row missing)")
    return out[:kept]


@_compiled
def _compress_kernel(mask, values, out):  # pragma: no cover - compiled
    # No branch on the flags (kept and left rows mix at random: a branch on them mispredicted at every other
    # row): every value is written at the next place, ``out`` holding one spare place past the kept values, and
    # the place moves on for a kept one.
    m = 0
    for i in range(len(values)):
        out[m] = values[i]
        m += mask[i]
    return m


def compress(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``np.compress(mask, values)``: the values where ``mask`` holds, for a flag per value.

    int64 and bool values are copied by one compiled pass without a branch
    per flag (about twice as fast as numpy's on flags that mix at random);
    others, masks of another length, and read-only arrays (another compiled
    signature each) by numpy.

    Examples
    --------
    >>> compress(np.array([True, False, True]), np.array([5, 6, 7])).tolist()
    [5, 7]
    """
    mask, values = np.asarray(mask), np.asarray(values)
    if (mask.dtype != np.bool_ or mask.ndim != 1 or values.ndim != 1 or len(mask) != len(values)
            or values.dtype not in _COMPRESSED or not (mask.flags.writeable and values.flags.writeable)):
        return np.compress(mask, values)
    out = np.empty(len(values) + 1, values.dtype)  # (a spare place: see the kernel)
    kept = out[:_compress_kernel(np.ascontiguousarray(mask), np.ascontiguousarray(values), out)]
    # A few values kept of many are copied out: a view would hold the whole buffer as long as they live (the
    # tables cache some).
    return kept.copy() if len(kept) < len(out) // 2 else kept


#: The value types :func:`compress` copies by its kernel (each a compiled signature, warmed by warm_up).
_COMPRESSED = (np.dtype(np.int64), np.dtype(np.bool_))


def segment_cumsum(values: np.ndarray, new_segment: np.ndarray) -> np.ndarray:
    """Cumulative sums of float64 ``values`` restarted where ``new_segment`` is True, compensated (Kahan).

    Equals ``pd.Series(values).groupby(segment_id).cumsum()`` for contiguous
    segments, bit for bit (pandas compensates its running sums the same
    way), without factorising the segment ids. Values are finite.

    Examples
    --------
    >>> segment_cumsum(np.array([1.0, 2.0, 3.0, 4.0]), np.array([True, False, True, False])).tolist()
    [1.0, 3.0, 3.0, 7.0]
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    new_segment = np.ascontiguousarray(new_segment, dtype=np.bool_)
    if len(values) != len(new_segment):
        raise ValueError(f"segment_cumsum: {len(values)} values and {len(new_segment)} segment flags; pass one flag "
                         "per value")
    out = np.empty(len(values), np.float64)
    _segment_cumsum_kernel(values, new_segment, out)
    return out


def running_max(codes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per position, the maximum of ``values`` over its key's positions so far (codes sorted: keys contiguous).

    Examples
    --------
    >>> running_max(np.array([0, 0, 0, 1]), np.array([7, 5, 9, 6])).tolist()
    [7, 7, 9, 6]
    """
    codes = _c(codes)
    values = _c(values)
    if len(values) != len(codes):
        raise ValueError(f"running_max: {len(codes)} codes and {len(values)} values; pass one value per code")
    out = np.empty(len(values), np.int64)
    _running_max_kernel(codes, values, out)
    return out


def first_present_level(levels: np.ndarray, member: np.ndarray, sign: np.ndarray, row: np.ndarray, done: np.ndarray,
                        cap: int) -> np.ndarray:
    """Per query, the smallest level below ``cap`` whose members are present after its first ``done`` changes.

    ``levels[i, m]`` is the level (0 .. ``cap``; ``cap`` and above: never
    counted) of member ``m`` for row ``i``; changes ``member[k]``,
    ``sign[k]`` (+1 joins, -1 leaves) happen in order. A level is present for
    query ``(row[q], done[q])`` when the signs of the changes among the first
    ``done[q]`` whose member is at that level for the row sum above zero;
    ``cap`` when none is. One pass: the queries by increasing ``done``, each
    change applied once to every row's count at its member's level (what a
    level-by-level search over the (row, member) cells does in many passes).

    Returns
    -------
    ndarray of int32

    Examples
    --------
    >>> levels = np.array([[0, 3], [2, 1]], np.int8)  # row 0: member 0 at 0, member 1 at 3; row 1: 2 and 1
    >>> first_present_level(levels, np.array([1, 0, 1]), np.array([1, 1, -1]), np.array([0, 1, 0, 1]),
    ...                     np.array([1, 1, 3, 3]), 4).tolist()
    [3, 1, 0, 2]
    """
    levels = np.asarray(levels)
    if levels.ndim != 2:
        raise ValueError(f"first_present_level: levels must be a (rows, members) matrix; got shape {levels.shape}")
    member, sign, row, done = _c(member), _c(sign), _c(row), _c(done)
    if len(member) != len(sign) or len(row) != len(done):
        raise ValueError(f"first_present_level: {len(member)} change members and {len(sign)} signs, {len(row)} query "
                         f"rows and {len(done)} counts of changes; pass one of each per change and per query")
    if len(member) and (int(member.min()) < 0 or int(member.max()) >= levels.shape[1]):
        raise ValueError(f"first_present_level: change members {int(member.min())} .. {int(member.max())} are outside "
                         f"the matrix's {levels.shape[1]} columns")
    if len(row) and (int(row.min()) < 0 or int(row.max()) >= levels.shape[0]
                     or int(done.min()) < 0 or int(done.max()) > len(member)):
        raise ValueError(f"first_present_level: query rows {int(row.min())} .. {int(row.max())} or counts of changes "
                         f"{int(done.min())} .. {int(done.max())} are outside the matrix's {levels.shape[0]} rows or "
                         f"the {len(member)} changes")
    # Members by row in memory (each change reads its member's levels for every row in order), as int64 so
    # that one compiled signature serves every level dtype.
    by_member = np.ascontiguousarray(levels.T, dtype=np.int64)
    out = np.empty(len(row), np.int32)
    _first_present_kernel(by_member, member, sign, row, done, _c(np.argsort(done, kind="stable")), int(cap), out)
    return out


class WarmUp(NamedTuple):
    """What :func:`warm_up` did: seconds, and how many kernels it compiled or loaded from numba's cache."""

    seconds: float
    compiled: int  #: kernels compiled now (cache empty, stale, or not writable)
    loaded: int  #: kernels whose machine code came from the cache


def _cache_hits(kernel: _Kernel) -> int:
    try:
        return sum(kernel.dispatcher.stats.cache_hits.values())
    except AttributeError:  # compiled without a cache
        return 0


def warm_up() -> WarmUp:
    """Compile (or load from numba's cache) every kernel on a tiny input, once per process: this module's, and
    those of the modules imported so far that registered a function calling theirs (:func:`warmed_by`).

    The first call of a kernel in a process compiles it, or loads its machine
    code from the cache: callers that time the kernels' work (benchmarks) call
    this first and report its time apart. Later calls find nothing to do.

    Examples
    --------
    >>> done = warm_up()
    >>> done.seconds >= 0.0, warm_up().compiled + warm_up().loaded
    (True, 0)
    """
    cold = [k for k in _ALL_KERNELS if not k.dispatcher.signatures]
    hits = {id(k): _cache_hits(k) for k in cold}
    start = time.perf_counter()
    one = np.zeros(1, np.int64)
    runs_before(one, np.array([0, 1]), one, one, one)
    for narrow in (False, True):  # (int64 and int32 answers)
        sorted_run_differences(one, np.array([0, 1]), one, one, one, np.zeros((2, 1), np.int64), np.array([[0, 1, 0]]),
                               narrow=narrow)
    for width in _WEIGHT_TYPES:
        sorted_sums_before(one, np.array([0, 1]), np.zeros((1, 1), width), one, one, one)
    sorted_sums_before(one, np.array([0, 1]), np.zeros((1, 1), np.int8), one, one, one, narrow=True)  # int32 sums
    counting_order(one, one, 1)
    for values in (one, np.ones(1, bool)):
        compress(np.ones(1, bool), values)
    pairs_in_order(one, one, one, one, 1)
    first_flagged(one, one, np.ones(1, bool))
    reverse_pairs(one, 1)
    own_count_last(one, one, one, 0)
    flagged_runs(one, one, one, np.ones(1, bool))
    first_per_group(one, np.ones(1, bool), one, 1)
    kept_order(one, np.ones(1, bool))
    segment_cumsum(np.ones(1), np.ones(1, bool))
    running_max(one, one)
    first_present_level(np.zeros((1, 1), np.int8), one, one, one, one, 1)
    for warm in _WARMERS:  # (the kernels of other modules imported so far)
        warm()
    seconds = time.perf_counter() - start
    loaded = sum(_cache_hits(k) > hits[id(k)] for k in cold)
    return WarmUp(seconds, len(cold) - loaded, loaded)
