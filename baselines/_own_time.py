"""Compiled walks for :class:`commgraph.baselines._asof.AsOfTables` columns that need no timeline.

A message asked about at its own instant (fresh backfill) sees the messages of
earlier instants: walking the messages once in time order, the counts carried
so far are its answer, read before the messages of its instant are counted.
Hour-of-day counts need no (key, time) sort then, nor a binary search per
message; a (name, address) count needs one stable sort of an order the tables
already have. The known-contact scores follow each domain's events in time
order the same way, with no sort by domain, and the first internal use of a
display name is one pass for any instants.

Kernels as in :mod:`._sweeps` (``_compiled``, warmed by :func:`._sweeps.warm_up`):
the public functions check their inputs and allocate the outputs.
"""

from __future__ import annotations

import heapq

import numpy as np

from ._sweeps import _compiled, warmed_by

__all__ = ["own_hour_counts", "own_pair_counts", "first_used", "standing_in_time", "follow_top"]


def own_hour_counts(by_time: np.ndarray, times: np.ndarray, sender: np.ndarray, n_senders: int, hour: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per message at its own time: its sender's messages at its hour of day, all messages at it, all messages.

    Each counts the messages strictly before the message's time (``hour``: its
    length in ns; the hour of day of a time ``t`` is ``t // hour % 24``).

    Parameters
    ----------
    by_time : ndarray of int64
        A stable time order of the messages.
    times, sender : ndarray of int64
        Each message's time and sender code (``0 <= sender < n_senders``).

    Returns
    -------
    sender_at_hour, at_hour, before : ndarray of int64

    Examples
    --------
    >>> times = np.array([0, 5, 5, 30, 25])  # hours of length 10: 0, 0, 0, 3, 2
    >>> s, h, n = own_hour_counts(np.argsort(times, kind="stable"), times, np.array([0, 0, 1, 0, 0]), 2, 10)
    >>> s.tolist(), h.tolist(), n.tolist()
    ([0, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 1, 1, 4, 3])
    """
    by_time, times, sender = _c(by_time), _c(times), _c(sender)
    n = len(times)
    if len(by_time) != n or len(sender) != n or hour <= 0:
        raise ValueError(f"own_hour_counts: {len(by_time)} positions, {n} times and {len(sender)} senders, hour "
                         f"{hour}; pass one of each per message and a positive hour")
    if n and (int(sender.min()) < 0 or int(sender.max()) >= n_senders):
        raise ValueError(f"own_hour_counts: sender codes {int(sender.min())} .. {int(sender.max())} outside "
                         f"0 .. {n_senders - 1}")
    _check_order(by_time, n, "own_hour_counts")
    out = np.empty((3, n), np.int64)
    # (int32 counters below 2**31 rows: half the bytes of a table read and written at random, 24 per sender)
    counts = np.zeros(max(n_senders, 1) * 24, np.int32 if n < 1 << 31 else np.int64)
    _own_hours_kernel(by_time, times, sender, counts, int(hour), out)
    return out[0], out[1], out[2]


@_compiled
def _own_hours_kernel(by_time, times, sender, counts, hour, out):  # pragma: no cover - compiled
    # The messages of one instant (a run of equal times) read the counts of the instants before, then are
    # counted: a message never sees one of its own instant. An instant has one hour of day.
    tenant = np.zeros(24, np.int64)
    n = len(by_time)
    j = 0
    h = 0
    start = 1  # the current hour is [start, end): a division only when the times leave it (not once per time)
    end_hour = 0
    while j < n:
        t = times[by_time[j]]
        end = j + 1
        while end < n and times[by_time[end]] == t:
            end += 1
        if t < start or t >= end_hour:
            q = t // hour  # (floor division and modulo as numpy's, for times before 1970 too)
            h = q % 24
            start = q * hour
            end_hour = start + hour if start <= np.iinfo(np.int64).max - hour else np.iinfo(np.int64).max
        for k in range(j, end):
            i = by_time[k]
            out[0, i] = counts[sender[i] * 24 + h]
            out[1, i] = tenant[h]
            out[2, i] = j
        for k in range(j, end):
            counts[sender[by_time[k]] * 24 + h] += 1
        tenant[h] += end - j
        j = end


def own_pair_counts(order: np.ndarray, first: np.ndarray, second: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Per row, the rows of its (``first``, ``second``) key strictly before its own time (0 where ``first < 0``).

    ``order`` sorts the rows by (first, second, time): the rows before a row's
    time are those of its key ahead of its run of equal times.

    Examples
    --------
    >>> first, second, times = np.array([1, 1, 1, -1, 1]), np.array([0, 0, 2, 0, 0]), np.array([1, 3, 3, 4, 3])
    >>> order = np.lexsort((times, second, first))
    >>> own_pair_counts(order, first, second, times).tolist()
    [0, 1, 0, 0, 1]
    """
    order, first, second, times = _c(order), _c(first), _c(second), _c(times)
    n = len(times)
    if not len(order) == len(first) == len(second) == n:
        raise ValueError(f"own_pair_counts: {len(order)} positions for {len(first)}, {len(second)} and {n} values; "
                         "pass one of each per row")
    _check_order(order, n, "own_pair_counts")
    out = np.empty(n, np.int64)
    _own_pairs_kernel(order, first, second, times, out)
    return out


@_compiled
def _own_pairs_kernel(order, first, second, times, out):  # pragma: no cover - compiled
    run = 0  # where the row's key starts in the order
    tie = 0  # where its run of equal times starts
    p = -1
    for j in range(len(order)):
        i = order[j]
        if p < 0 or first[i] != first[p] or second[i] != second[p]:
            run = j
            tie = j
        elif times[i] != times[p]:
            tie = j
        out[i] = tie - run if first[i] >= 0 else 0
        p = i


def first_used(codes: np.ndarray, used: np.ndarray, times: np.ndarray, n_codes: int) -> np.ndarray:
    """Per code, the earliest time of a row of it where ``used`` holds (int64 max: none; negative codes skipped).

    Examples
    --------
    >>> first_used(np.array([0, 1, 0, -1]), np.array([True, True, True, True]), np.array([9, 4, 7, 1]), 3).tolist()
    [7, 4, 9223372036854775807]
    """
    codes, times = _c(codes), _c(times)
    used = np.ascontiguousarray(used, dtype=np.bool_)
    if not len(codes) == len(used) == len(times):
        raise ValueError(f"first_used: {len(codes)} codes, {len(used)} flags and {len(times)} times; pass one of each "
                         "per row")
    if len(codes) and int(codes.max()) >= n_codes:
        raise ValueError(f"first_used: codes up to {int(codes.max())} for {n_codes} codes")
    out = np.full(max(n_codes, 1), np.iinfo(np.int64).max, np.int64)  # (a place for the kernel's no-op stores)
    _first_used_kernel(codes, used, times, out)
    return out[:n_codes]


@_compiled
def _first_used_kernel(codes, used, times, out):  # pragma: no cover - compiled
    # (A select and a store at every row, no branch on the flags: used and unused rows come at random.)
    for i in range(len(codes)):
        c = max(codes[i], 0)
        now = out[c]
        out[c] = times[i] if used[i] & (codes[i] >= 0) & (times[i] < now) else now


def standing_in_time(by_time: np.ndarray, codes: np.ndarray, times: np.ndarray, own: np.ndarray,
                     edges_by_time: np.ndarray, edge_codes: np.ndarray, edge_times: np.ndarray,
                     heads: np.ndarray, n_codes: int, own_weight: int, written_weight: int
                     ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The known-contact events in time order, each with its domain's standing score after it.

    The events: each message (its domain, time, ``own``), and each edge where
    ``heads`` holds (written to), merged in time order, a message ahead of an
    edge at the same time (as a stable sort of the messages, then the edges,
    orders them). A domain's score after an event is ``own_weight`` once any of
    its events so far was own, plus ``written_weight`` once any was written to,
    plus its events so far (the score only grows). Every edge's code must be a domain's
    (``0 <= code < n_codes``), a head's or not.

    Returns
    -------
    (codes, times, scores)
        The events whose score is below ``written_weight``, and each domain's
        first one at or above it, in time order.
    (codes, times)
        Each domain's first event, in time order.

    Examples
    --------
    >>> (c, t, s), (fc, ft) = standing_in_time(np.array([0, 1]), np.array([0, 1]), np.array([5, 7]),
    ...     np.array([False, False]), np.array([0, 1]), np.array([1, 1]), np.array([5, 9]), np.array([True, True]),
    ...     2, 1000, 100)
    >>> c.tolist(), t.tolist(), s.tolist(), fc.tolist(), ft.tolist()  # (domain 1 at 7: written to already)
    ([0, 1], [5, 5], [1, 101], [0, 1], [5, 5])
    """
    by_time, codes, times, edges_by_time = _c(by_time), _c(codes), _c(times), _c(edges_by_time)
    edge_codes, edge_times = _c(edge_codes), _c(edge_times)
    own = np.ascontiguousarray(own, dtype=np.bool_)
    heads = np.ascontiguousarray(heads, dtype=np.bool_)
    n, m = len(codes), len(edge_codes)
    if not len(by_time) == len(times) == len(own) == n or not len(edges_by_time) == len(edge_times) == len(heads) == m:
        raise ValueError(f"standing_in_time: {n} messages and {m} edges with {len(by_time)}, {len(times)}, {len(own)} "
                         f"and {len(edges_by_time)}, {len(edge_times)}, {len(heads)} values; pass one of each per row")
    for what, values in (("message", codes), ("edge", edge_codes)):  # (every edge's: no gather of the heads')
        if len(values) and (int(values.min()) < 0 or int(values.max()) >= n_codes):
            raise ValueError(f"standing_in_time: {what} codes {int(values.min())} .. {int(values.max())} outside "
                             f"0 .. {n_codes - 1}")
    _check_order(by_time, n, "standing_in_time")
    _check_order(edges_by_time, m, "standing_in_time")
    size = n + int(heads.sum()) + 1  # (+1: each walk step writes its event before counting it)
    kept = np.empty((3, size), np.int64)
    firsts = np.empty((2, size), np.int64)
    n_kept, n_first = _standing_kernel(by_time, codes, times, own, edges_by_time, edge_codes, edge_times, heads,
                                       max(n_codes, 1), int(own_weight), int(written_weight), kept, firsts)
    return (kept[0, :n_kept], kept[1, :n_kept], kept[2, :n_kept]), (firsts[0, :n_first], firsts[1, :n_first])


@_compiled
def _standing_kernel(by_time, codes, times, own, edges_by_time, edge_codes, edge_times, heads, n_codes,
                     own_weight, written_weight, kept, firsts):  # pragma: no cover - compiled
    # The messages and the heads are laid out side by side in time order first, so that the merge reads
    # consecutive values (a chain of loads through the orders, each waiting on the last comparison, took most
    # of the walk); then no branch per event: selects, and outputs written at every event but counted only
    # where they hold.
    n = len(by_time)
    message_code = np.empty(n + 1, np.int64)
    message_time = np.empty(n + 1, np.int64)
    message_own = np.empty(n + 1, np.int64)
    for j in range(n):
        r = by_time[j]
        message_code[j] = codes[r]
        message_time[j] = times[r]
        message_own[j] = own[r]
    head_code = np.empty(len(edges_by_time) + 1, np.int64)
    head_time = np.empty(len(edges_by_time) + 1, np.int64)
    m = 0
    for k in range(len(edges_by_time)):
        e = edges_by_time[k]
        head_code[m] = edge_codes[e]
        head_time[m] = edge_times[e]
        m += heads[e]
    big = np.iinfo(np.int64).max
    message_time[n] = big  # (sentinels: an exhausted side never comes next)
    head_time[m] = big
    message_code[n] = head_code[m] = message_own[n] = 0
    count = np.zeros(n_codes, np.int64)
    has_own = np.zeros(n_codes, np.int64)
    has_written = np.zeros(n_codes, np.int64)
    reached_before = np.zeros(n_codes, np.int64)
    i = 0  # next message (in time order)
    k = 0  # next head (in time order)
    n_kept = 0
    n_first = 0
    for _ in range(n + m):
        tm = message_time[i]
        te = head_time[k]
        message = i < n and tm <= te  # a message first at a tie
        c = message_code[i] if message else head_code[k]
        t = tm if message else te
        has_own_now = message_own[i] if message else 0
        i += message
        k += 1 - message
        count[c] += 1
        firsts[0, n_first] = c
        firsts[1, n_first] = t
        n_first += count[c] == 1
        has_own[c] |= has_own_now
        has_written[c] |= 1 - message
        value = own_weight * has_own[c] + written_weight * has_written[c] + count[c]
        reached = value >= written_weight
        kept[0, n_kept] = c
        kept[1, n_kept] = t
        kept[2, n_kept] = value
        n_kept += (not reached) | (reached_before[c] == 0)  # below the threshold, or its first event at or above it
        reached_before[c] = reached
    return n_kept, n_first


def follow_top(codes: np.ndarray, times: np.ndarray, score: np.ndarray, key_rank: np.ndarray, limit: int,
               written_weight: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Membership changes (code, time, +1 or -1) of a list of the domains whose score reached ``written_weight``,
    for good, and the best ``limit`` others (ties: smaller key rank), under scores that only grow.

    The events come in time order (:func:`standing_in_time`'s kept ones). A domain that reaches
    ``written_weight`` leaves the others' ranking, and the best waiting domain takes its place at that
    instant. Two lazy heaps (the others' weakest member, the best waiting domain; stale entries skipped),
    compiled.

    Examples
    --------
    >>> code, time, sign = follow_top(np.array([0, 1, 1, 2]), np.array([1, 2, 3, 4]), np.array([1, 1, 2, 100]),
    ...                               np.arange(3), 1, 100)
    >>> code.tolist(), time.tolist(), sign.tolist()  # 1 overtakes 0 at its second event; 2 is written to
    ([0, 0, 1, 2], [1, 3, 3, 4], [1, -1, 1, 1])
    """
    codes, times, score, key_rank = _c(codes), _c(times), _c(score), _c(key_rank)
    n = len(codes)
    if not len(times) == len(score) == n:
        raise ValueError(f"follow_top: {n} codes, {len(times)} times and {len(score)} scores; pass one per event")
    if n and (int(codes.min()) < 0 or int(codes.max()) >= len(key_rank)):
        raise ValueError(f"follow_top: codes {int(codes.min())} .. {int(codes.max())} without a key rank")
    out = np.empty((3, 2 * n), np.int64)  # at most a leave and a join per event
    size = _follow_kernel(codes, times, score, key_rank, int(limit), int(written_weight), out)
    return out[0, :size].copy(), out[1, :size].copy(), out[2, :size].copy()


@_compiled
def _follow_kernel(codes, times, score, ranks, limit, written_weight, out):  # pragma: no cover - compiled
    # The heaps hold (score, -rank, code) of the others' members (weakest on top) and (-score, rank, code) of
    # the waiting ones (best on top); an entry is stale once its domain's state or score moved on.
    n_domains = len(ranks)
    others = [(np.int64(0), np.int64(0), np.int64(0))]
    others.pop()
    waiting = [(np.int64(0), np.int64(0), np.int64(0))]
    waiting.pop()
    state = np.zeros(n_domains, np.int8)  # 0 not a member, 1 member among the others, 2 member for good
    latest = np.full(n_domains, -1, np.int64)
    n_others = 0
    size = 0
    for j in range(len(codes)):
        c, t, s = codes[j], times[j], score[j]
        latest[c] = s
        if state[c] == 2:
            continue
        if s >= written_weight:
            if state[c] == 0:
                out[0, size], out[1, size], out[2, size] = c, t, 1
                size += 1
            else:
                n_others -= 1  # its heap entry is skipped from now on
            state[c] = 2
            while n_others < limit and len(waiting) > 0:  # the best waiting domain takes the free place
                ns, nr, nc = heapq.heappop(waiting)
                if state[nc] != 0:
                    continue
                if -ns != latest[nc]:
                    heapq.heappush(waiting, (-latest[nc], nr, nc))
                    continue
                heapq.heappush(others, (latest[nc], -ranks[nc], nc))
                state[nc] = 1
                n_others += 1
                out[0, size], out[1, size], out[2, size] = nc, t, 1
                size += 1
            continue
        if state[c] == 1:
            continue
        if n_others < limit:
            heapq.heappush(others, (s, -ranks[c], c))
            state[c] = 1
            n_others += 1
            out[0, size], out[1, size], out[2, size] = c, t, 1
            size += 1
            continue
        if limit == 0:
            heapq.heappush(waiting, (-s, ranks[c], c))
            continue
        while True:  # the top entry must be a current member carrying its current score
            ws, wr, wc = others[0]
            if state[wc] != 1:
                heapq.heappop(others)
            elif latest[wc] != ws:
                heapq.heapreplace(others, (latest[wc], wr, wc))
            else:
                break
        if s > ws or (s == ws and -ranks[c] > wr):
            heapq.heappop(others)
            state[wc] = 0
            n_others -= 1
            heapq.heappush(waiting, (-ws, -wr, wc))
            out[0, size], out[1, size], out[2, size] = wc, t, -1
            size += 1
            heapq.heappush(others, (s, -ranks[c], c))
            state[c] = 1
            n_others += 1
            out[0, size], out[1, size], out[2, size] = c, t, 1
            size += 1
        else:
            heapq.heappush(waiting, (-s, ranks[c], c))
    return size


def _check_order(order: np.ndarray, n: int, what: str) -> None:
    # An order of the rows (a permutation) reads and writes through its positions: the kernels check no bounds.
    if n and (int(order.min()) < 0 or int(order.max()) >= n):
        raise ValueError(f"{what}: an order holds a position outside the rows (0 .. {n - 1})")


def _c(values: np.ndarray) -> np.ndarray:
    # One array type per argument (contiguous int64): the signatures warm_up compiled, no new compile mid-run.
    return np.ascontiguousarray(values, dtype=np.int64)


@warmed_by
def _warm() -> None:
    """Each kernel on one row (for :func:`._sweeps.warm_up`)."""
    one, zero, yes = np.ones(1, np.int64), np.zeros(1, np.int64), np.ones(1, bool)
    own_hour_counts(zero, one, zero, 1, 1)
    own_pair_counts(zero, zero, zero, one)
    first_used(zero, yes, one, 1)
    standing_in_time(zero, zero, one, yes, zero, zero, one, yes, 1, 2, 1)
    follow_top(np.zeros(2, np.int64), np.ones(2, np.int64), np.array([1, 2]), np.zeros(1, np.int64), 0, 2)
