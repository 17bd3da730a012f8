"""Point-in-time statistics: what a snapshot built as of any instant would hold, for many instants at once.

A snapshot as of ``as_of`` counts the events strictly before it. Asked for
many (key, instant) pairs at once, the answer needs no snapshot: sort the
events by (key, time) once, and each query's events are one contiguous run,
found by one compiled walk of the queries in (key, instant) order
(:mod:`._sweeps`), which also finds where each window (an instant shifted
back) starts. Sums of several weights are carried along the same kind of
walk (or read as differences of cumulative sums), first and last times are the
run's ends, and decayed sums a running value carried along each
key's events. Equal timestamps follow the snapshots' rule: an event at the
query's own instant is not before it.

:func:`outcome_events` states when each label and each presumption of safety
starts to count, as :func:`build_baselines` counts them, so that smoothed
likelihoods can be followed through time the same way.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Sequence

import numpy as np
import pandas as pd

from ._sweeps import (_WEIGHT_TYPES, _compiled, compress, counting_order, kept_order, running_max, segment_cumsum,
                      sorted_run_differences, sorted_runs_before, sorted_sums_before, warmed_by)

__all__ = ["Timeline", "QueryOrder", "code_order", "subset_order", "dense_codes", "outcome_events",
           "outcome_changes", "OutcomeChanges", "merge_search", "NAT"]

#: Missing timestamps, as int64 nanoseconds (numpy's NaT).
NAT = np.iinfo(np.int64).min
# Decayed sums are carried along each key in epochs of this many half-lives:
# 2**512 stays far inside float64, so a cumulative sum of 2**((t - start) / h)
# inside one epoch neither overflows nor loses relative precision.
_EPOCH_HALF_LIVES = 512


def merge_search(sorted_values: np.ndarray, sorted_needles: np.ndarray) -> np.ndarray:
    """``np.searchsorted(sorted_values, sorted_needles, side="left")`` for sorted needles: a merge when they are many.

    A stable sort of the needles followed by the values is one timsort merge
    of two runs (linear, galloping through long stretches of either); each
    needle lands ahead of the values equal to it, so its merged position minus
    its own index is its left insertion point. 1.5-3.5x faster than binary
    searches once the needles are more than a sixteenth of the values; fewer
    needles keep the binary search (a merge touches every value), and so do
    needles out of order (checked: the merge would be wrong for them).

    Examples
    --------
    >>> merge_search(np.array([1, 3, 3, 5]), np.array([0, 3, 4, 9])).tolist()
    [0, 1, 3, 4]
    """
    m = len(sorted_needles)
    if (m < 4096 or 16 * m < len(sorted_values) or sorted_values.dtype != sorted_needles.dtype
            or not bool((sorted_needles[1:] >= sorted_needles[:-1]).all())):
        return np.searchsorted(sorted_values, sorted_needles, side="left")
    merged = np.argsort(np.concatenate([sorted_needles, sorted_values]), kind="stable")
    return np.flatnonzero(merged < m) - np.arange(m)


def code_order(codes: np.ndarray, by_time: np.ndarray) -> np.ndarray:
    """The argsort of (code, rank in time): ``by_time`` reordered stably by code.

    ``codes`` are integers (non-negative ones take the fast paths) and
    ``by_time`` a stable time order of them. Sorting the time-ordered codes
    stably keeps time order within a code. A code space up to about twice
    the events is sorted by one compiled counting pass (4-5x faster)
    (:func:`commgraph.baselines._sweeps.counting_order`); larger ones by
    numpy's stable radix sort of 16-bit integers, one pass per 16 bits of the
    largest code. Both give the very same permutation as a comparison sort of
    packed (code, rank) keys (the packed keys are distinct).

    Examples
    --------
    >>> code_order(np.array([1, 0, 1, 0]), np.array([3, 2, 1, 0])).tolist()
    [3, 1, 2, 0]
    """
    codes = np.asarray(codes, dtype=np.int64)
    by_time = np.asarray(by_time)
    if len(codes) == len(by_time) and len(codes):
        low, high = int(codes.min()), int(codes.max())
        # A code space not much larger than the events: one counting pass (compiled) instead of radix passes;
        # past about twice the events its counters cost more than the radix passes save.
        if low >= 0 and high < 2 * len(codes) + 65536:
            return counting_order(codes, by_time, high + 1)
    return by_time[_stable_code_sort(codes[by_time])]


def _stable_code_sort(c: np.ndarray) -> np.ndarray:
    """``np.argsort(c, kind="stable")`` for int64 codes, by 16-bit radix passes when they are non-negative."""
    if len(c) and int(c.min()) < 0:  # not a code space: a stable comparison sort, as correct, slower
        return np.argsort(c, kind="stable")
    perm: np.ndarray | None = None
    top = int(c.max()) if len(c) else 0
    shift = 0
    while True:  # least significant digit first: each stable pass keeps the order of the ones before
        digit = ((c if perm is None else c[perm]) >> shift) & 0xFFFF
        step = np.argsort(digit.astype(np.uint16), kind="stable")
        perm = step if perm is None else perm[step]
        shift += 16
        if top >> shift == 0:
            return perm


def subset_order(order: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A sort order of the rows where ``mask`` holds (numbered among themselves), from a sort order of all rows.

    Dropping rows from a sorted sequence leaves it sorted: stable time orders
    and (code, time) orders of a subset come from the whole set's without a sort
    (one compiled pass, :func:`commgraph.baselines._sweeps.kept_order`).

    Examples
    --------
    >>> subset_order(np.array([3, 0, 2, 1]), np.array([True, False, True, True])).tolist()
    [2, 0, 1]
    """
    return kept_order(order, mask)


class QueryOrder(NamedTuple):
    """Two sort orders of a set of (key code, instant) queries, for :meth:`Timeline.before` to reuse.

    Many timelines are asked about the same queries (a message's sender in its
    message counts, its labels, its distinct recipients...), or about the same
    codes at instants shifted by a constant (window starts): both orders hold
    for all of them, so they are sorted once instead of once per search.
    ``queries``, when given, holds the codes and instants the order was made
    of with both gathered into ``by_key`` order: every walk over these very
    queries then reads them as they are, instead of gathering them again (a
    random gather of each array per walk).

    Examples
    --------
    >>> o = QueryOrder.of(np.array([1, 0, 1]), np.array([30, 20, 10]))
    >>> o.by_time.tolist(), o.by_key.tolist()
    ([2, 1, 0], [1, 2, 0])
    >>> codes, instants = np.array([1, 0, 1]), np.array([30, 20, 10])
    >>> o = QueryOrder.of(codes, instants, keep=True)
    >>> [a.tolist() for a in o.gathered(codes, instants)]  # from o.queries: no gather
    [[0, 1, 1], [20, 10, 30]]
    """

    #: a time order of the queries: a stable argsort of the instants (:meth:`of`), or any permutation along which
    #: they never decrease (the rows' own time order, for refresh boundaries: ``AsOfTables._time_order``)
    by_time: np.ndarray
    by_key: np.ndarray  #: an argsort of (code, instant), negative codes as 0 (as :meth:`Timeline.before` reads them)
    #: (codes, instants, codes[by_key], instants[by_key]) of the queries the order was made of, or None
    queries: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    @classmethod
    def of(cls, codes: np.ndarray, instants: np.ndarray, keep: bool = False) -> "QueryOrder":
        """The orders of these queries (``keep``: with the queries gathered in ``by_key`` order, for reuse)."""
        instants = np.asarray(instants, dtype=np.int64)
        by_time = np.argsort(instants, kind="stable")
        order = cls(by_time, code_order(np.maximum(np.asarray(codes, dtype=np.int64), 0), by_time))
        return order.keeping(codes, instants) if keep else order

    def keeping(self, codes: np.ndarray, instants: np.ndarray, sorted_codes: np.ndarray | None = None,
                sorted_instants: np.ndarray | None = None) -> "QueryOrder":
        """This order with ``queries`` set: ``codes`` and ``instants`` gathered in ``by_key`` order (or given so)."""
        codes = np.asarray(codes, dtype=np.int64)
        instants = np.asarray(instants, dtype=np.int64)
        return self._replace(queries=(codes, instants, codes[self.by_key] if sorted_codes is None else sorted_codes,
                                      instants[self.by_key] if sorted_instants is None else sorted_instants))

    def gathered(self, codes: np.ndarray, instants: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``codes[by_key]`` and ``instants[by_key]`` (int64): kept ones when these are the queries the order was
        made of (the very codes array, and equal instants), else gathered now."""
        q = self.queries
        if q is not None and codes is q[0] and (instants is q[1] or (
                len(instants) == len(q[1]) and np.array_equal(instants, q[1]))):
            return q[2], q[3]
        return (np.asarray(codes, dtype=np.int64)[self.by_key], np.asarray(instants, dtype=np.int64)[self.by_key])


def dense_codes(*keys: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """One code space for several uint64 key arrays: the codes of each array, and the key of each code.

    Examples
    --------
    >>> (a, b), uniques = dense_codes(np.array([7, 9, 7], dtype=np.uint64), np.array([9, 4], dtype=np.uint64))
    >>> a.tolist(), b.tolist(), uniques.tolist()
    ([0, 1, 0], [1, 2], [7, 9, 4])
    """
    sizes = [len(k) for k in keys]
    values = np.concatenate([np.asarray(k, dtype=np.uint64) for k in keys])
    # The hash table starts at a sixteenth of the values (it grows as keys come), not at all of them: a tenant's
    # keys repeat (addresses ~3% distinct, domains far fewer), and a table sized for every value (32 MiB for a
    # million) is fresh memory, out of cache: 11.6 -> 5.1 ms for the largest tenant's 1.27M addresses.
    codes, uniques = pd.factorize(values, sort=False, size_hint=max(1 << 16, len(values) // 16))
    bounds = np.cumsum([0] + sizes)
    return ([codes[bounds[i]:bounds[i + 1]].astype(np.int64, copy=False) for i in range(len(keys))],
            np.asarray(uniques, dtype=np.uint64))


def _sorted_queries(codes: np.ndarray, instants: np.ndarray, order: QueryOrder | None, what: str
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The queries' codes and instants in (code, instant) order, and where each belongs (``order.by_key``);
    ``order`` is sorted now when not given."""
    codes = np.asarray(codes, dtype=np.int64)
    instants = np.asarray(instants, dtype=np.int64)
    if order is None:
        order = QueryOrder.of(codes, instants)
    elif len(order.by_key) != len(codes):
        raise ValueError(f"{what}: an order of {len(order.by_key)} queries for {len(codes)}; pass the QueryOrder "
                         "of these queries")
    return (*order.gathered(codes, instants), order.by_key)


def _summable(weights: np.ndarray) -> np.ndarray:
    """Weights as they are when flags or signed integers, else as int64: gathered in their own width (a flag
    is one byte, not eight) and summed into int64, as numpy sums narrower integers and flags anyway.

    Examples
    --------
    >>> out = np.empty(3, np.int64)
    >>> np.cumsum(_summable(np.array([100, 100, 100], np.int8)), out=out).tolist()  # no int8 overflow
    [100, 200, 300]
    """
    weights = np.asarray(weights)
    return weights if weights.dtype.kind in "bi" else weights.astype(np.int64)


def _narrowest(weights: Sequence[np.ndarray]) -> np.dtype:
    """The narrowest width the sums' walk is compiled for (int8, int32, int64) holding every value of the weights.

    A row of flags and small counts in a byte each, not eight: the matrix is
    filled, and read by the sums' walk, in an eighth of the memory traffic.

    Examples
    --------
    >>> str(_narrowest([np.ones(2, bool), np.array([-3, 100])])), str(_narrowest([np.array([1 << 40])]))
    ('int8', 'int64')
    """
    low = min((int(w.min()) for w in weights if w.dtype.kind == "i" and len(w)), default=0)
    high = max((int(w.max()) for w in weights if w.dtype.kind == "i" and len(w)), default=1)
    for width in _WEIGHT_TYPES:
        if np.iinfo(width).min <= low and high <= np.iinfo(width).max:
            return width
    return np.dtype(np.int64)


class Timeline:
    """Events of many keys, sorted by (key, time): what the events strictly before any instant add up to.

    Parameters
    ----------
    codes : ndarray of int
        Dense key code of each event (``0 .. n_codes - 1``).
    times : ndarray of int64
        Event times, nanoseconds since the epoch (UTC).
    n_codes : int
        Size of the code space (queries may use codes no event has).
    time_order : ndarray of int, optional
        A stable argsort of ``times``, when the caller has one (timelines over
        the same events share it).
    key_order : ndarray of int, optional
        ``code_order(codes, time_order)``, when the caller has it.
    presorted : bool, default False
        ``codes`` and ``times`` are given in ``key_order`` already (the caller
        has them so): they are kept, not gathered again.

    Examples
    --------
    >>> tl = Timeline(np.array([0, 0, 1, 0]), np.array([10, 20, 20, 30]), 2)
    >>> lo, hi = tl.before(np.array([0, 0, 1, 1]), np.array([20, 31, 20, 21]))
    >>> (hi - lo).tolist()  # events strictly before: an event at the instant itself is not
    [1, 3, 0, 1]
    >>> tl.first(lo, hi).tolist()
    [10, 10, -9223372036854775808, 20]
    """

    __slots__ = ("order", "codes", "times", "starts", "_rows")

    def __init__(self, codes: np.ndarray, times: np.ndarray, n_codes: int, time_order: np.ndarray | None = None,
                 key_order: np.ndarray | None = None, presorted: bool = False):
        codes = np.asarray(codes, dtype=np.int64)
        times = np.asarray(times, dtype=np.int64)
        if key_order is None:
            # Sorting the time-ordered codes stably (radix) keeps time order within a key. Mail comes
            # nearly in time order, which a stable sort (timsort) handles in linear time.
            by_time = np.argsort(times, kind="stable") if time_order is None else np.asarray(time_order)
            self.order = code_order(codes, by_time)
        else:
            self.order = np.asarray(key_order)
        presorted = presorted and key_order is not None
        self.codes = codes if presorted else codes[self.order]  #: the key code of each sorted event
        self.times = times if presorted else times[self.order]
        self.starts = np.zeros(n_codes + 1, np.int64)
        np.cumsum(np.bincount(codes, minlength=n_codes), out=self.starts[1:])
        self._rows: tuple[np.ndarray, np.ndarray, QueryOrder, np.ndarray] | None = None

    @classmethod
    def of_rows(cls, codes: np.ndarray, times: np.ndarray, n_codes: int, rows: QueryOrder, events: np.ndarray
                ) -> "Timeline":
        """The timeline of the rows where ``events`` holds, whose :meth:`before_own` answers for every row.

        ``rows`` is the :class:`QueryOrder` of all rows (``codes``, ``times``;
        negative codes: keys without events). The events' orders are taken
        from it, and a row asked about at its own code and time needs no
        search: the events ahead of its (code, time) run in the rows' order.

        Examples
        --------
        >>> codes, times = np.array([0, 0, 1, 0, -1]), np.array([10, 20, 20, 30, 30])
        >>> tl = Timeline.of_rows(codes, times, 2, QueryOrder.of(codes, times), np.array([1, 0, 1, 1, 0], bool))
        >>> lo, hi = tl.before_own()
        >>> (hi - lo).tolist()  # events of each row's code strictly before its time
        [0, 1, 0, 1, 0]
        """
        codes = np.asarray(codes, dtype=np.int64)
        times = np.asarray(times, dtype=np.int64)
        events = np.asarray(events, dtype=bool)
        # The (code, time) order of the events is the rows' with the other rows left out (no sort, and no
        # time order needed); their sorted codes and times are the rows' sorted ones (kept with the order, or
        # gathered once for every use) with the other rows left out: one gather of flags, no gather of int64
        # (compress: numpy's boolean indexing branches on every flag, several times slower).
        sorted_codes, sorted_times = rows.gathered(codes, times)
        sorted_events = events[rows.by_key]
        tl = cls(compress(sorted_events, sorted_codes), compress(sorted_events, sorted_times), n_codes,
                 key_order=subset_order(rows.by_key, events), presorted=True)
        tl._rows = (codes, times, rows, sorted_events)
        return tl

    def __len__(self) -> int:
        return len(self.order)

    def before(self, codes: np.ndarray, instants: np.ndarray, order: QueryOrder | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Per query, the sorted positions ``lo:hi`` of its key's events strictly before its instant.

        A negative code (a key no event has) gives an empty run. ``order``: the
        queries' :class:`QueryOrder` (of these codes and these instants, or
        instants shifted by a constant), when the caller has one.
        """
        lo, his = self.before_shifts(codes, instants, (0,), order)
        return lo, his[0]

    def before_shifts(self, codes: np.ndarray, instants: np.ndarray, shifts: Sequence[int],
                      order: QueryOrder | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`before` at ``instants - shift`` for each shift (one row of ``his`` each), in one walk.

        Window starts and the settle delay ask the same queries at instants
        shifted back by constants: one compiled pass in the queries' (code,
        instant) order moves a pointer per shift forward along each key's
        events (:func:`commgraph.baselines._sweeps.runs_before`).

        Examples
        --------
        >>> tl = Timeline(np.array([0, 0, 1, 0]), np.array([10, 20, 20, 30]), 2)
        >>> lo, his = tl.before_shifts(np.array([0, 0]), np.array([31, 25]), [0, 15])
        >>> (his - lo).tolist()  # before 31 and 25; before 16 and 10
        [[3, 2], [1, 0]]
        """
        sorted_codes, sorted_instants, by_key = _sorted_queries(codes, instants, order, "Timeline.before")
        return sorted_runs_before(self.times, self.starts, sorted_codes, sorted_instants, shifts, by_key)

    def sums_before(self, codes: np.ndarray, instants: np.ndarray, sorted_weights: np.ndarray,
                    order: QueryOrder | None = None, *, narrow: bool = False) -> np.ndarray:
        """Per query, each weight summed over its key's events strictly before its instant: one row per weight.

        ``sorted_weights`` (from :meth:`sorted_weights`) holds the events'
        weights in sorted order. Equals ``p[hi] - p[lo]`` for ``lo, hi`` from
        :meth:`before` and ``p`` each weight's :meth:`prefix`, in one compiled walk
        (:func:`commgraph.baselines._sweeps.sorted_sums_before`), with no run
        edges or prefix sums in between; ``narrow``: int32 sums where they
        surely fit (for callers that narrow them anyway).

        Examples
        --------
        >>> tl = Timeline(np.array([1, 0, 0]), np.array([5, 6, 7]), 2)
        >>> w = tl.sorted_weights([np.array([1, 0, 1]), np.array([0, 1, 1])])
        >>> tl.sums_before(np.array([0, 1, -1]), np.array([8, 9, 9]), w).tolist()
        [[1, 1, 0], [2, 0, 0]]
        """
        sorted_codes, sorted_instants, by_key = _sorted_queries(codes, instants, order, "Timeline.sums_before")
        return sorted_sums_before(self.times, self.starts, sorted_weights, sorted_codes, sorted_instants, by_key,
                                  narrow=narrow)

    def before_own(self) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`before` for each event's own key and time (in event order), without a binary search.

        The events strictly before an event of its key are those ahead of its
        run of equal times in sorted order. A timeline made :meth:`of_rows`
        answers for each of its rows (in row order), events or not.
        """
        lo, hi, _ = self.before_own_shifts(())
        return lo, hi

    def before_own_shifts(self, shifts: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`before_own`, and in the same walk the ``hi`` of each event (or row) at its time less each shift.

        ``his[k]`` equals ``before(codes, times - shifts[k])[1]`` for the
        events' (or the rows') own codes and times: window starts and the
        settle delay found with no pass of their own.

        Examples
        --------
        >>> tl = Timeline(np.array([0, 0, 0]), np.array([10, 20, 30]), 1)
        >>> lo, hi, his = tl.before_own_shifts([10])
        >>> (hi - lo).tolist(), (his[0] - lo).tolist()  # before 10, 20, 30; before 0, 10, 20
        ([0, 1, 2], [0, 0, 1])
        """
        # The events strictly before a row's own time are those of its key ahead of that time (shift 0).
        codes, times, order, own = self._own_queries()
        lo, his = sorted_runs_before(self.times, self.starts, codes, times, (0, *shifts), order, own=own)
        return lo, his[0], his[1:]

    def differences_before_own(self, shifts: Sequence[int], prefixes: np.ndarray, columns: np.ndarray, *,
                               narrow: bool = False) -> np.ndarray:
        """:meth:`before_own_shifts`' walk answering differences of prefix sums at the run edges instead.

        Run edges: 0 ``lo``, 1 ``hi``, ``k + 2`` the hi at the time less
        ``shifts[k]``; ``prefixes`` and ``columns`` as for
        :func:`commgraph.baselines._sweeps.sorted_run_differences` (one row of
        the result per column, in event or row order; ``narrow``: int32, for
        prefix sums of counts).

        Examples
        --------
        >>> tl = Timeline(np.array([0, 0, 0]), np.array([10, 20, 30]), 1)
        >>> flags = tl.prefix(np.array([1, 0, 1]))[:, None]
        >>> tl.differences_before_own([10], flags, np.array([[-1, 1, 0], [-1, 1, 2], [0, 1, 0]])).tolist()
        [[0, 1, 2], [0, 1, 1], [0, 1, 1]]
        """
        codes, times, order, own = self._own_queries()
        # (a timeline of some rows: its events' flags among the sorted rows count the hi at shift 0, no search)
        return sorted_run_differences(self.times, self.starts, codes, times, (0, *shifts), prefixes, columns, order,
                                      own=own, narrow=narrow, events=None if own else self._rows[3])

    def _own_queries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """The own queries' codes and times in (code, time) order, where each belongs, and whether they are the
        events themselves (a timeline made :meth:`of_rows`: its rows)."""
        if self._rows is not None:
            codes, times, rows, _ = self._rows
            return (*rows.gathered(codes, times), rows.by_key, False)
        return self.codes, self.times, self.order, True  # the events themselves, already in (code, time) order

    def count_since(self, codes: np.ndarray, start: np.ndarray, hi: np.ndarray, order: QueryOrder | None = None
                    ) -> np.ndarray:
        """Events of each query's key in ``[start, instant)``, given ``hi`` from :meth:`before`."""
        return hi - self.before(codes, start, order)[1]

    def prefix(self, weights: np.ndarray) -> np.ndarray:
        """Cumulative sums of integer weights (given in event order) along the sorted events, 0 first."""
        out = np.zeros(len(self.order) + 1, dtype=np.int64)
        np.cumsum(_summable(weights)[self.order], out=out[1:])
        return out

    def sorted_weights(self, weights: Sequence[np.ndarray], sorted_order: Sequence[bool] | None = None
                       ) -> np.ndarray:
        """Integer weights side by side in sorted order, one row per event, for :meth:`sums_before`.

        Each weight is given in event order or, where ``sorted_order`` says
        so, already in sorted order (as :meth:`new_period` makes them). The
        matrix is of the narrowest of int8, int32 and int64 that holds every
        weight (the sums are int64 whatever it is).
        """
        weights = [_summable(w) for w in weights]
        out = np.empty((len(self.order), len(weights)), dtype=_narrowest(weights))
        for k, w in enumerate(weights):
            out[:, k] = w if sorted_order is not None and sorted_order[k] else w[self.order]
        return out

    def sorted_flags(self, flags: np.ndarray) -> np.ndarray:
        """Integer weights given in sorted order, as cumulative sums (see :meth:`prefix`)."""
        out = np.zeros(len(self.order) + 1, dtype=np.int64)
        np.cumsum(np.asarray(flags, dtype=np.int64), out=out[1:])
        return out

    def first(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Time of the first event of each run, NaT (int64 min) where the run is empty."""
        return self.at_first(self.times, lo, hi, NAT)

    def last(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Time of the last event of each run, NaT (int64 min) where the run is empty."""
        return self.at_last(self.times, lo, hi, NAT)

    def at_first(self, sorted_values: np.ndarray, lo: np.ndarray, hi: np.ndarray, fill) -> np.ndarray:
        """``sorted_values`` at each run's first event, ``fill`` where the run is empty."""
        if not len(self):
            return np.full(len(lo), fill, dtype=np.asarray(sorted_values).dtype)
        return np.where(hi > lo, sorted_values.take(lo, mode="clip"), fill)

    def new_run(self, values: np.ndarray | None = None) -> np.ndarray:
        """In sorted order, True where an event starts its key (or a new value of ``values`` within its key).

        ``values`` (in event order) must be non-decreasing in time within a key,
        as a day number is: then the cumulative count of these flags is the
        number of distinct values seen.
        """
        codes = self.codes
        new = np.ones(len(codes), dtype=bool)
        new[1:] = codes[1:] != codes[:-1]
        if values is not None:
            v = np.asarray(values)[self.order]
            new[1:] |= v[1:] != v[:-1]
        return new

    def new_period(self, length: int) -> np.ndarray:
        """:meth:`new_run` of the events' own times cut into periods of ``length`` ns (days): read off the sorted
        times, with no gather of per-event values.

        Examples
        --------
        >>> tl = Timeline(np.array([0, 0, 0, 1]), np.array([5, 9, 12, 12]), 2)
        >>> tl.new_period(10).tolist(), tl.new_run(np.array([5, 9, 12, 12]) // 10).tolist()
        ([True, False, True, True], [True, False, True, True])
        """
        new = self.new_run()
        period = self.times // length
        new[1:] |= period[1:] != period[:-1]
        return new

    def running_max(self, values: np.ndarray) -> np.ndarray:
        """In sorted order, the maximum of ``values`` (int64, in event order) over each key's events so far.

        One compiled pass along the sorted events, restarting at each key
        (:func:`commgraph.baselines._sweeps.running_max`).

        Examples
        --------
        >>> tl = Timeline(np.array([0, 0, 1]), np.array([1, 2, 3]), 2)
        >>> tl.running_max(np.array([7, 5, 6])).tolist()
        [7, 7, 6]
        """
        return running_max(self.codes, np.asarray(values, dtype=np.int64)[self.order])

    def at_last(self, sorted_values: np.ndarray, lo: np.ndarray, hi: np.ndarray, fill) -> np.ndarray:
        """``sorted_values`` at each run's last event, ``fill`` where the run is empty."""
        if not len(self):
            return np.full(len(lo), fill, dtype=np.asarray(sorted_values).dtype)
        last = hi - 1
        np.maximum(last, 0, out=last)  # (in place: one query-sized array fewer)
        return np.where(hi > lo, sorted_values.take(last, mode="clip"), fill)

    def decayed(self, lo: np.ndarray, hi: np.ndarray, instants: np.ndarray, half_life: int) -> np.ndarray:
        """Per query, the sum over its run's events of ``2 ** (-(instant - t) / half_life)``.

        Equals :class:`commgraph.baselines.Decayed` anchored at each query's
        instant (to rounding): along each key, ``V_j = V_{j-1} * 2 ** (-(t_j - t_{j-1}) / h) + 1``
        is carried in closed form, as cumulative sums of ``2 ** ((t - s) / h)``
        inside epochs of 512 half-lives (start ``s``), then decayed from the
        run's last event to the instant.

        Examples
        --------
        >>> day = 86_400 * 10**9
        >>> tl = Timeline(np.array([0, 0]), np.array([0, day]), 1)
        >>> lo, hi = tl.before(np.array([0]), np.array([2 * day]))
        >>> tl.decayed(lo, hi, np.array([2 * day]), day).tolist()  # 1/4 + 1/2
        [0.75]
        """
        if not len(self):
            return np.zeros(len(lo))
        running = self._running_decay(half_life)
        # Every query read at its run's last event (an empty run at event 0, its value discarded below): the
        # same arithmetic per query as on the queries that have a run, without compressing four arrays to
        # them and scattering back; the discarded values may overflow.
        last = hi - 1
        np.maximum(last, 0, out=last)
        age = (np.asarray(instants, dtype=np.int64) - self.times.take(last)) / float(half_life)
        with np.errstate(over="ignore", invalid="ignore"):
            value = running.take(last) * np.exp2(-age)
        return np.where(hi > lo, value, 0.0)

    def _running_decay(self, half_life: int) -> np.ndarray:
        n = len(self.times)
        running = np.zeros(n)
        if not n:
            return running
        h = float(half_life)
        codes = self.codes
        # (capped at the times' range: one epoch then holds them all, and 512 half-lives of a long half-life,
        # 209 days or more, would not fit an int64 of nanoseconds)
        first, final = int(self.times.min()), int(self.times.max())
        span = min(_EPOCH_HALF_LIVES * int(half_life), final - first + 1)
        if span > final - first:
            # One epoch holds every time (the usual case: 512 half-lives of 14 days are 19 years): a segment per
            # key, all starting at the first time; no epoch numbers, segment ids or starts gathered per event.
            seg_start = self.new_run()
            rel = (self.times - first) / h
            return segment_cumsum(np.exp2(rel), seg_start) * np.exp2(-rel)  # (no key to carry into another)
        epoch = (self.times - first) // span
        # Segments: one key inside one epoch; contiguous in sorted order.
        seg_start = np.ones(n, dtype=bool)
        seg_start[1:] = (codes[1:] != codes[:-1]) | (epoch[1:] != epoch[:-1])
        seg_id = np.cumsum(seg_start) - 1
        starts = np.flatnonzero(seg_start)
        base = first + epoch[starts] * span  # epoch start of each segment
        rel = (self.times - base[seg_id]) / h
        # A cumulative sum restarted at each segment (a running total across segments would
        # swamp a small segment after a large one), compensated as pandas' groupby cumsum is.
        cum = segment_cumsum(np.exp2(rel), seg_start)
        local = cum * np.exp2(-rel)  # the segment's own events, valued at t_j
        # Carry the value at each segment's end into the next segment of the same key.
        ends = np.concatenate([starts[1:] - 1, [n - 1]])
        same_key_as_previous = np.zeros(len(starts), dtype=bool)
        same_key_as_previous[1:] = codes[starts[1:]] == codes[starts[:-1]]
        if not same_key_as_previous.any():  # no key spans two epochs: nothing to carry (local + 0.0 is local)
            return local
        carry = np.zeros(len(starts))
        end_value = local[ends].copy()
        # A key spans few epochs: loop over a segment's rank within its key, vectorised over keys.
        run_id = np.cumsum(~same_key_as_previous) - 1
        first_of_run = np.flatnonzero(~same_key_as_previous)
        rank = np.arange(len(starts)) - first_of_run[run_id]
        for r in range(1, int(rank.max()) + 1):
            now = np.flatnonzero(rank == r)
            prev = now - 1
            carry[now] = end_value[prev] * np.exp2(-(self.times[starts[now]] - self.times[ends[prev]]) / h)
            end_value[now] = local[ends[now]] + carry[now] * np.exp2(
                -(self.times[ends[now]] - self.times[starts[now]]) / h)
        running = local + carry[seg_id] * np.exp2(-(self.times - self.times[starts[seg_id]]) / h)
        return running


def outcome_events(timestamp: np.ndarray, label: np.ndarray, label_time: np.ndarray, *, settle_delay: int,
                   label_policy: Literal["presume_safe", "ignore"]) -> dict[str, np.ndarray]:
    """When each message's label and presumption of safety start to count, as :func:`build_baselines` counts them.

    A snapshot as of ``as_of`` counts a label when both the message and the
    label were known before it (``max(timestamp, label_time) < as_of``), and,
    under ``presume_safe``, an unlabelled message as safe once it is older than
    the settle delay (``timestamp + settle_delay < as_of``) unless a label was
    known by then. So every message gives at most three step changes of its
    entity's outcome counts:

    * its label, at ``max(timestamp, label_time)``: ``+1`` safe or ``+1`` trial;
    * the presumption, at ``timestamp + settle_delay``: ``+1`` safe and trial;
    * the presumption withdrawn when a label arrives, at
      ``max(timestamp + settle_delay, label_time)``: ``-1`` safe and trial.

    Parameters
    ----------
    timestamp, label_time : ndarray of int64
        Message and label times (ns); a missing label time (NaT) means the label
        was known when the message arrived.
    label : ndarray of int8
        0 safe, 1 attack, 2 spam, -1 none.
    settle_delay : int
        Nanoseconds.
    label_policy : {"presume_safe", "ignore"}

    Returns
    -------
    dict of str to ndarray
        ``row`` (the message each change belongs to), ``time``, ``safe`` and
        ``trials`` (the changes of the smoothed likelihood's successes and
        trials), ``label`` (the class of an explicit label, -1 for the
        presumption's changes) and ``explicit`` (1 where an explicit label starts to count).

    Examples
    --------
    >>> ev = outcome_events(np.array([0, 0]), np.array([-1, 1], dtype=np.int8), np.array([NAT, 50]),
    ...                     settle_delay=10, label_policy="presume_safe")
    >>> [(int(r), int(t), int(s), int(n)) for r, t, s, n in zip(ev["row"], ev["time"], ev["safe"], ev["trials"])]
    [(1, 50, 0, 1), (0, 10, 1, 1), (1, 10, 1, 1), (1, 50, -1, -1)]
    """
    ts = np.asarray(timestamp, dtype=np.int64)
    label = np.asarray(label, dtype=np.int8)
    lt = np.asarray(label_time, dtype=np.int64)
    lt = np.where(lt == NAT, ts, lt)
    labelled = label >= 0
    # Three segments (labels, presumptions, withdrawals) written straight into the output columns: no
    # per-segment arrays to allocate, fill and concatenate again.
    segments = [(labelled, np.maximum(ts, lt), None)]
    if label_policy == "presume_safe":
        presumed = ts + int(settle_delay)
        # A label known before the presumption starts cancels it at once: leave both out.
        withdrawn = labelled & (lt > presumed)
        segments += [(~labelled | withdrawn, presumed, 1), (withdrawn, lt, -1)]
    sizes = [int(np.count_nonzero(mask)) for mask, _, _ in segments]
    total = sum(sizes)
    out = {"row": np.empty(total, np.int64), "time": np.empty(total, np.int64), "safe": np.empty(total, np.int64),
           "trials": np.empty(total, np.int64), "label": np.empty(total, np.int8),
           "explicit": np.empty(total, np.int64)}
    end = 0
    for (mask, time, sign), size in zip(segments, sizes):
        part = slice(end, end + size)
        end += size
        out["row"][part] = np.flatnonzero(mask)
        np.compress(mask, time, out=out["time"][part])
        if sign is None:  # explicit labels: +1 safe or +1 trial
            np.compress(mask, label, out=out["label"][part])
            np.equal(out["label"][part], 0, out=out["safe"][part], casting="unsafe")
            out["trials"][part] = 1
            out["explicit"][part] = 1
        else:
            out["safe"][part] = sign
            out["trials"][part] = sign
            out["label"][part] = -1
            out["explicit"][part] = 0
    return out


class OutcomeChanges(NamedTuple):
    """:func:`outcome_events`' changes under ``presume_safe``, each with its entity, as :func:`outcome_changes`
    writes them: the explicit labels, then the withdrawals, then the presumptions started."""

    columns: dict[str, np.ndarray]  #: entity, time (int64); safe, trials, label, explicit (int8); row (int64) if asked
    few: int  #: the changes ahead of the presumptions started (labels and withdrawals): ``[:few]`` of each column
    started: np.ndarray  #: per row (bool), whether it starts a presumption


def outcome_changes(timestamp: np.ndarray, label: np.ndarray, label_time: np.ndarray, entity: np.ndarray, *,
                    settle_delay: int, message: np.ndarray | None = None, keep: np.ndarray | None = None,
                    rows: bool = False) -> OutcomeChanges:
    """:func:`outcome_events` under ``presume_safe`` in two compiled passes, for rows of messages (or their edges).

    The same changes, in another order: explicit labels, then withdrawals, then
    the presumptions started (each in row order), so that the few changes a
    timeline of labels needs are a prefix and the presumptions started are
    flags per row; the changes' steps in int8 (they are -1, 0 or 1). A row is
    ``message[i]``'s (message ``i`` when None) where ``keep`` holds (every one
    when None), numbered among the kept rows, its entity ``entity[i]``;
    ``rows``: with each change's row number too. In place of a dozen numpy
    passes and their arrays (int64 gathers per row, masks, six int64 columns).

    Examples
    --------
    >>> ts, label = np.array([0, 0]), np.array([-1, 1], dtype=np.int8)
    >>> ch = outcome_changes(ts, label, np.array([NAT, 50]), np.array([7, 8]), settle_delay=10, rows=True)
    >>> ev = outcome_events(ts, label, np.array([NAT, 50]), settle_delay=10, label_policy="presume_safe")
    >>> sorted(zip(ch.columns["row"].tolist(), ch.columns["time"].tolist(), ch.columns["safe"].tolist()))
    [(0, 10, 1), (1, 10, 1), (1, 50, -1), (1, 50, 0)]
    >>> sorted(zip(ev["row"].tolist(), ev["time"].tolist(), ev["safe"].tolist()))
    [(0, 10, 1), (1, 10, 1), (1, 50, -1), (1, 50, 0)]
    >>> ch.few, ch.columns["entity"].tolist(), ch.started.tolist()
    (2, [8, 8, 7, 8], [True, True])
    """
    ts = np.ascontiguousarray(timestamp, dtype=np.int64)
    label = np.ascontiguousarray(label, dtype=np.int8)
    lt = np.ascontiguousarray(label_time, dtype=np.int64)
    entity = np.ascontiguousarray(entity, dtype=np.int64)
    message = _NO_ROWS if message is None else np.ascontiguousarray(message, dtype=np.int64)
    keep = _NO_FLAGS if keep is None else np.ascontiguousarray(keep, dtype=bool)
    n = len(entity)
    if not n:  # (no rows; an empty message array would read as 'the messages themselves' in the kernels)
        ts, label, lt, message, keep = ts[:0], label[:0], lt[:0], _NO_ROWS, _NO_FLAGS
    if len(message) not in (0, n) or len(keep) not in (0, n) or (not len(message) and len(ts) != n):
        raise ValueError(f"outcome_changes: {n} entities for {len(message)} messages of rows, {len(keep)} flags and "
                         f"{len(ts)} timestamps; pass one entity per row")
    if len(message) and n and (int(message.min()) < 0 or int(message.max()) >= len(ts)):
        raise ValueError(f"outcome_changes: message positions outside 0 .. {len(ts) - 1}")
    if len(label) != len(ts) or len(lt) != len(ts):
        raise ValueError("outcome_changes: one label and label time per message")
    # The kept rows' positions (numpy finds them without a branch per row), walked by the kernels: kept and
    # left rows mix at random (a mailbox's inbound edges among all), and a branch on each flag mispredicts.
    filtered = len(keep) > 0
    kept_rows = np.flatnonzero(keep) if filtered else _NO_ROWS
    kept, labels, withdrawn = _outcome_counts_kernel(ts, label, lt, message, filtered, kept_rows, int(settle_delay))
    total = labels + withdrawn + (kept - labels + withdrawn)  # the presumptions: unlabelled rows and withdrawn
    columns = {"entity": np.empty(total, np.int64), "time": np.empty(total, np.int64)}
    columns |= {c: np.empty(total, np.int8) for c in ("safe", "trials", "label", "explicit")}
    row = np.empty(total if rows else 0, np.int64)
    started = np.empty(kept, bool)
    _outcome_changes_kernel(ts, label, lt, message, filtered, kept_rows, int(settle_delay), entity, labels,
                            labels + withdrawn, *columns.values(), row, started)
    if rows:
        columns["row"] = row
    return OutcomeChanges(columns, labels + withdrawn, started)


_NO_ROWS, _NO_FLAGS = np.zeros(0, np.int64), np.zeros(0, bool)


@_compiled
def _outcome_counts_kernel(ts, label, lt, message, filtered, kept_rows, delay):  # pragma: no cover - compiled
    # The rows kept, the explicit labels and the withdrawn presumptions (outcome_events' masks, counted).
    # ``kept_rows``: the kept rows' positions when ``filtered``, else every row is kept.
    n = len(kept_rows) if filtered else len(message) if len(message) else len(ts)
    kept, labels, withdrawn = 0, 0, 0
    for x in range(n):
        i = kept_rows[x] if filtered else x
        m = message[i] if len(message) else i
        kept += 1
        if label[m] >= 0:
            labels += 1
            t = ts[m]
            known = t if lt[m] == -9223372036854775808 else lt[m]
            if known > t + delay:
                withdrawn += 1
    return kept, labels, withdrawn


@_compiled
def _outcome_changes_kernel(ts, label, lt, message, filtered, kept_rows, delay, entity, at_withdrawn, at_presumed,
                            out_entity, out_time, out_safe, out_trials, out_label, out_explicit, out_row,
                            started):  # pragma: no cover - compiled
    # Each kept row's changes written at three pointers (labels from 0, withdrawals, presumptions), as
    # outcome_events defines them: a label at max(ts, label time); a presumption at ts + delay unless the label
    # was known by then; withdrawn at the label time.
    n = len(kept_rows) if filtered else len(entity)
    rows = len(out_row) > 0
    a, b, c = 0, at_withdrawn, at_presumed
    r = 0
    for x in range(n):
        i = kept_rows[x] if filtered else x
        m = message[i] if len(message) else i
        t = ts[m]
        presumed = t + delay
        known = t if lt[m] == -9223372036854775808 else lt[m]
        cls = label[m]
        e = entity[i]
        presume = True
        if cls >= 0:
            out_entity[a], out_time[a], out_label[a] = e, max(t, known), cls
            out_safe[a], out_trials[a], out_explicit[a] = 1 if cls == 0 else 0, 1, 1
            if rows:
                out_row[a] = r
            a += 1
            presume = known > presumed
            if presume:
                out_entity[b], out_time[b], out_label[b] = e, known, -1
                out_safe[b], out_trials[b], out_explicit[b] = -1, -1, 0
                if rows:
                    out_row[b] = r
                b += 1
        if presume:
            out_entity[c], out_time[c], out_label[c] = e, presumed, -1
            out_safe[c], out_trials[c], out_explicit[c] = 1, 1, 0
            if rows:
                out_row[c] = r
            c += 1
        started[r] = presume
        r += 1


@warmed_by
def _warm() -> None:
    """The outcome changes' kernels on two rows (for :func:`._sweeps.warm_up`)."""
    two = np.zeros(2, np.int64)
    outcome_changes(two, np.array([-1, 0], np.int8), np.full(2, NAT), two, settle_delay=1)
    outcome_changes(two, np.array([-1, 0], np.int8), np.full(2, NAT), two, settle_delay=1, message=two,
                    keep=np.ones(2, bool), rows=True)
