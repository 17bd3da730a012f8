"""The mergeable core: keyed aggregates, and the decay and window wrappers around them.

Every baseline statistic is a column of a :class:`KeyedAggregate`: a table of
groups (one or two uint64 key columns) whose value columns each merge by one
reducer, ``sum``, ``min`` or ``max``. Merging two aggregates reduces the groups
they share and keeps the others, so ``merge`` is associative and commutative
and equals the aggregate over the union of the rows (a monoid, as river's
``Mean.__iadd__`` or datasketch's ``HyperLogLog.merge``). Groups are kept
sorted, so a merge is a lookup of the smaller side in the larger one and one
splice (:class:`Splice`): a small update costs a copy of the large side, never
a re-grouping. Distinct counts stay
exact by keeping the set itself as a keyed aggregate (``(sender, recipient)``
pairs, ``(sender, day)`` days) and counting groups.

Time enters through two wrappers rather than inside each statistic (river's
``TimeRolling``): :class:`Decayed` holds sums anchored at an instant and merges
by rescaling both sides to the later anchor, ``D(t2) = D(t1) * 2**(-(t2 - t1) / h)``;
:class:`Windowed` keeps the event-time rows of its period and sums the ones in
``[as_of - period, as_of)`` when asked.

Groups are always returned sorted by key, so equal inputs give equal arrays in
any row order.
"""

from __future__ import annotations

import functools
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from commgraph.graph import CommGraphError

__all__ = ["KeyedAggregate", "Decayed", "Windowed", "Histogram", "Grouping", "REDUCERS", "group_codes", "reduce_groups",
           "sorted_positions", "bisect_runs", "Splice"]

#: How a value column merges.
REDUCERS: tuple[str, ...] = ("sum", "min", "max")

_COMBINE = {"sum": np.add, "min": np.minimum, "max": np.maximum}
_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min


# --------------------------------------------------------------------------- vector helpers

def group_codes(keys: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Dense group codes of rows keyed by one or two uint64 columns, groups sorted by key.

    Returns the code of each row and the key columns of the groups.

    Examples
    --------
    >>> codes, (k,) = group_codes([np.array([9, 3, 9], dtype=np.uint64)])
    >>> codes.tolist(), k.tolist()
    ([1, 0, 1], [3, 9])
    """
    if len(keys) == 1:
        # pd.factorize uses a hash table on uint64 (np.unique sorts: 1.6-3.5x slower).
        codes, uniques = pd.factorize(keys[0], sort=False)
        uniques = np.asarray(uniques, dtype=np.uint64)
        order = np.argsort(uniques, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return rank[codes].astype(np.int64, copy=False), [uniques[order]]
    if len(keys) != 2:
        raise CommGraphError(f"group_codes takes one or two key columns; got {len(keys)}")
    c0, u0 = pd.factorize(keys[0], sort=False)
    c1, u1 = pd.factorize(keys[1], sort=False)
    combined = c0.astype(np.int64) * max(len(u1), 1) + c1
    codes, uniques = pd.factorize(combined, sort=False)
    uniques = np.asarray(uniques, dtype=np.int64)
    k0 = np.asarray(u0, dtype=np.uint64)[uniques // max(len(u1), 1)]
    k1 = np.asarray(u1, dtype=np.uint64)[uniques % max(len(u1), 1)]
    order = np.lexsort((k1, k0))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[codes].astype(np.int64, copy=False), [k0[order], k1[order]]


def reduce_groups(codes: np.ndarray, n: int, values: np.ndarray, how: str) -> np.ndarray:
    """Reduce ``values`` per group code with ``sum``, ``min`` or ``max`` (no per-row Python).

    Integer sums stay integers; empty groups get 0 (sum) or the dtype's extreme.

    Examples
    --------
    >>> reduce_groups(np.array([0, 1, 0]), 2, np.array([5, 7, 2]), "min").tolist()
    [2, 7]
    """
    values = np.asarray(values)
    if values.ndim == 2:  # a histogram per row: sum each bin
        if how != "sum":
            raise CommGraphError(f"2-D value columns (histograms) merge by 'sum' only; got {how!r}")
        bins = values.shape[1]
        flat = (codes[:, None] * bins + np.arange(bins)).ravel()
        summed = np.bincount(flat, weights=values.ravel(), minlength=n * bins).reshape(n, bins)
        return summed if values.dtype.kind == "f" else np.rint(summed).astype(np.int64)
    if how == "sum":
        if values.dtype.kind == "f":
            return np.bincount(codes, weights=values, minlength=n)
        if values.dtype == np.bool_:  # flags as weights: no gather of the flagged rows' codes
            return np.bincount(codes, weights=values, minlength=n).astype(np.int64)
        # bincount sums in float64: exact for counts below 2**53.
        return np.rint(np.bincount(codes, weights=values, minlength=n)).astype(np.int64)
    if how in ("min", "max"):
        out = np.full(n, _identity(how, values.dtype), dtype=values.dtype)
        (np.minimum if how == "min" else np.maximum).at(out, codes, values)
        return out
    raise CommGraphError(f"unknown reducer {how!r}; use one of {', '.join(map(repr, REDUCERS))}")


@functools.lru_cache(maxsize=64)
def _identity(how: str, dtype: np.dtype) -> "int | float":
    """The value a ``min`` or ``max`` starts from (looked up once per dtype: ``np.iinfo`` is slow to make)."""
    if dtype.kind == "f":
        return np.inf if how == "min" else -np.inf
    if dtype.kind == "u":
        return np.iinfo(dtype).max if how == "min" else 0
    return np.iinfo(dtype).max if how == "min" else np.iinfo(dtype).min


def sorted_positions(keys: list[np.ndarray], queries: list[np.ndarray]) -> np.ndarray:
    """Where each query key would go in sorted ``keys`` (lexicographic for two columns; the first
    row not less than it), like ``np.searchsorted(side="left")``.

    Examples
    --------
    >>> keys = [np.array([1, 1, 2], dtype=np.uint64), np.array([5, 9, 0], dtype=np.uint64)]
    >>> sorted_positions(keys, [np.array([1, 1, 3], dtype=np.uint64), np.array([7, 9, 0], dtype=np.uint64)]).tolist()
    [1, 1, 3]
    """
    lo = np.searchsorted(keys[0], queries[0], side="left")
    if len(keys) == 1:
        return lo
    return bisect_runs(lo, np.searchsorted(keys[0], queries[0], side="right"), keys[1], queries[1])


def bisect_runs(lo: np.ndarray, hi: np.ndarray, second: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """For each query, the first row of ``second[lo:hi]`` (its run of equal first keys, sorted by the second)
    not less than ``wanted``; ``lo`` is updated in place and returned.

    One vectorised step per halving of the longest run, over the queries still open.

    Examples
    --------
    >>> bisect_runs(np.array([0, 0]), np.array([3, 3]), np.array([2, 4, 6]), np.array([4, 9])).tolist()
    [1, 3]
    """
    open_ = (lo < hi).nonzero()[0]
    while len(open_):
        left, right = lo[open_], hi[open_]
        mid = (left + right) >> 1
        less = second[mid] < wanted[open_]
        lo[open_] = np.where(less, mid + 1, left)
        hi[open_] = np.where(less, right, mid)
        open_ = open_[lo[open_] < hi[open_]]
    return lo


class Splice:
    """Sorted rows updated and sorted new rows inserted in one pass: the plan of a sorted merge.

    ``found`` rows of the update side land on rows ``at`` of the base; the
    others are inserted at ``insert`` (base positions, non-decreasing). Applied
    to each column, the plan costs a copy of the base, not a re-grouping.

    Examples
    --------
    >>> plan = Splice.of([np.array([2, 5], dtype=np.uint64)], [np.array([1, 5, 9], dtype=np.uint64)])
    >>> plan.apply(np.array([20, 50]), np.array([10, 51, 90]), np.add).tolist()
    [10, 20, 101, 90]
    """

    __slots__ = ("n_base", "found", "at", "new", "insert", "_kept", "_new_rows", "_at_rows")

    def __init__(self, n_base: int, positions: np.ndarray, found: np.ndarray):
        self.n_base = n_base
        self.found = found.nonzero()[0]  # (1-D: flatnonzero's ravel and wrapping cost more than the scan here)
        self.at = positions[self.found]
        self.new = (~found).nonzero()[0]
        self.insert = positions[self.new]
        self._kept: np.ndarray | None = None
        self._new_rows: np.ndarray | None = None
        self._at_rows: np.ndarray | None = None

    @classmethod
    def of(cls, base_keys: list[np.ndarray], update_keys: list[np.ndarray]) -> "Splice":
        """The plan for merging sorted, unique ``update_keys`` into sorted, unique ``base_keys``."""
        n = len(base_keys[0])
        positions = sorted_positions(base_keys, update_keys)
        if not n:
            return cls(0, positions, np.zeros(len(positions), bool))
        clipped = np.minimum(positions, n - 1)
        found = positions < n
        for base, update in zip(base_keys, update_keys):
            found &= base[clipped] == update
        return cls(n, positions, found)

    @property
    def n_rows(self) -> int:
        return self.n_base + len(self.new)

    def output_rows(self, base_rows: np.ndarray) -> np.ndarray:
        """Where rows of the base end up (each moves down by the insertions before it)."""
        return base_rows + np.searchsorted(self.insert, base_rows, side="right")

    def apply(self, base: np.ndarray | Sequence[np.ndarray], update: np.ndarray, combine=None, *,
              bounds: np.ndarray | None = None) -> np.ndarray:
        """One column: the base values, combined with the update where keys match (``combine``
        a ufunc such as ``np.add``; None: the update replaces), and the update's new rows inserted.

        ``base``: the column, or its pieces in order, piece ``i`` the base rows of output rows
        ``bounds[i]:bounds[i + 1]`` (stacked tenants: each piece copied into place, never concatenated first).

        Examples
        --------
        >>> plan = Splice.of([np.array([2, 5, 7], dtype=np.uint64)], [np.array([3, 5], dtype=np.uint64)])
        >>> plan.apply([np.array([20]), np.array([50, 70])], np.array([30, 51]), np.add,
        ...            bounds=np.array([0, 2, 4])).tolist()
        [20, 30, 101, 70]
        """
        pieces = [base] if isinstance(base, np.ndarray) else list(base)
        first = pieces[0]
        dtype = first.dtype if combine is None or first.dtype == update.dtype else np.result_type(first, update)
        if not len(self.new):
            out = np.concatenate(pieces, dtype=dtype)
            rows = self.at
        else:
            out = np.empty((self.n_rows,) + first.shape[1:], dtype=dtype)
            if self._kept is None:  # one mask and one set of rows for every column
                self._new_rows = self.insert + np.arange(len(self.insert))
                self._kept = np.ones(self.n_rows, bool)
                self._kept[self._new_rows] = False
                self._at_rows = self.output_rows(self.at)
            out_rows = _as_rows(out)
            if len(pieces) == 1:
                out_rows[self._kept] = _as_rows(first.astype(dtype, copy=False))
            else:
                edges = np.asarray(bounds).tolist()
                for piece, lo, hi in zip(pieces, edges[:-1], edges[1:]):
                    out_rows[lo:hi][self._kept[lo:hi]] = _as_rows(piece.astype(dtype, copy=False))
            out[self._new_rows] = update[self.new]
            rows = self._at_rows
        matched = update[self.found]
        # (the base values of the matched rows are in place already: read from the output, whatever the pieces)
        out[rows] = matched if combine is None else combine(out[rows], matched)
        return out


def _as_rows(a: np.ndarray) -> np.ndarray:
    """A 2-D array as one opaque item per row (copying whole rows is many times faster than by element)."""
    if a.ndim == 1:
        return a
    a = np.ascontiguousarray(a)
    return a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).reshape(len(a))


class Histogram:
    """Row contributions to a per-group histogram: the bin of each row, counted where ``weight`` is true
    (or ``weight`` times, for an integer weight).

    A value of :meth:`KeyedAggregate.from_rows` that becomes one 2-D ``(groups, n_bins)``
    column in a single pass (rather than ``n_bins`` columns of flags).

    Examples
    --------
    >>> h = Histogram(np.array([0, 2, 2]), 3)
    >>> KeyedAggregate.from_rows({"k": np.zeros(3, dtype=np.uint64)}, {"h": h}, {"h": "sum"}).values["h"].tolist()
    [[1, 0, 2]]
    """

    __slots__ = ("bins", "n_bins", "weight")

    def __init__(self, bins: np.ndarray, n_bins: int, weight: np.ndarray | None = None):
        self.bins = np.asarray(bins, dtype=np.int64)
        self.n_bins = int(n_bins)
        self.weight = weight

    def reduce(self, codes: np.ndarray, n: int) -> np.ndarray:
        flat = codes * self.n_bins + self.bins
        weight = None if self.weight is None else np.asarray(self.weight)
        if weight is not None and weight.dtype != bool:  # signed counts (a retracted label counts -1)
            counts = np.bincount(flat, weights=weight, minlength=n * self.n_bins)
            return np.rint(counts).astype(np.int64).reshape(n, self.n_bins)
        if weight is not None:
            flat = flat[weight]
        return np.bincount(flat, minlength=n * self.n_bins).reshape(n, self.n_bins).astype(np.int64)


class Grouping:
    """Rows mapped to groups sorted by key: factorise once, then aggregate many columns and subsets.

    Parameters
    ----------
    keys : dict of str to ndarray
        The key columns of the groups, sorted (lexicographically for two).
    codes : ndarray of int64
        The group of each row.

    Examples
    --------
    >>> g = Grouping.of({"k": np.array([7, 3, 7], dtype=np.uint64)})
    >>> g.codes.tolist(), g.keys["k"].tolist()
    ([1, 0, 1], [3, 7])
    >>> g.aggregate({"n": np.array([1, 1, 1])}, {"n": "sum"}).to_frame()
       k  n
    0  3  1
    1  7  2
    """

    __slots__ = ("keys", "codes")

    def __init__(self, keys: Mapping[str, np.ndarray], codes: np.ndarray):
        self.keys = dict(keys)
        self.codes = codes

    @classmethod
    def of(cls, keys: Mapping[str, np.ndarray]) -> "Grouping":
        """Group rows by one or two uint64 key columns."""
        names = list(keys)
        codes, uniques = group_codes([np.asarray(keys[k], dtype=np.uint64) for k in names])
        return cls(dict(zip(names, uniques)), codes)

    @property
    def n_groups(self) -> int:
        return len(next(iter(self.keys.values())))

    def subset(self, mask: np.ndarray) -> "Grouping":
        """The rows where ``mask`` is true (groups unchanged; empty ones vanish on aggregation)."""
        return Grouping(self.keys, self.codes[mask])

    def combine(self, other: "Grouping") -> "Grouping":
        """Group the same rows by both groupings' keys (this one first)."""
        n_other = max(other.n_groups, 1)
        combined = self.codes * n_other + other.codes
        cells = self.n_groups * n_other
        if cells <= max(4 * len(combined), 1 << 16):
            # A small key space (senders x days): mark the cells in use instead of
            # hashing; the cells come out sorted and no factorise is needed.
            present = np.zeros(cells, bool)
            present[combined] = True
            uniques = np.flatnonzero(present)
            rank = np.cumsum(present, dtype=np.int64) - 1
            keys = {**{k: v[uniques // n_other] for k, v in self.keys.items()},
                    **{k: v[uniques % n_other] for k, v in other.keys.items()}}
            return Grouping(keys, rank[combined])
        codes, uniques = pd.factorize(combined, sort=False)
        uniques = np.asarray(uniques, dtype=np.int64)
        order = np.argsort(uniques, kind="stable")  # ranks preserve key order: sorted codes are sorted keys
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        uniques = uniques[order]
        keys = {**{k: v[uniques // n_other] for k, v in self.keys.items()},
                **{k: v[uniques % n_other] for k, v in other.keys.items()}}
        return Grouping(keys, rank[codes].astype(np.int64, copy=False))

    def aggregate(self, values: Mapping[str, "np.ndarray | Histogram"], reducers: Mapping[str, str]
                  ) -> "KeyedAggregate":
        """Reduce each value column per group; groups without rows are left out."""
        n = self.n_groups
        out = {c: v.reduce(self.codes, n) if isinstance(v, Histogram) else reduce_groups(self.codes, n,
                                                                                         np.asarray(v), reducers[c])
               for c, v in values.items()}
        present = np.bincount(self.codes, minlength=n) > 0
        keys = self.keys
        if not present.all():
            keys = {k: v[present] for k, v in keys.items()}
            out = {c: v[present] for c, v in out.items()}
        return KeyedAggregate(keys, out, reducers)


# --------------------------------------------------------------------------- keyed aggregate

class KeyedAggregate:
    """Groups keyed by uint64 columns, each value column merging by sum, min or max.

    Parameters
    ----------
    keys : dict of str to ndarray
        One or two uint64 key columns, sorted and unique together (as made by
        :meth:`from_rows` or :meth:`merge`).
    values : dict of str to ndarray
        Value columns aligned with the keys.
    reducers : dict of str to str
        The reducer of each value column, one of :data:`REDUCERS`.

    Examples
    --------
    >>> a = KeyedAggregate.from_rows({"sender": np.array([1, 2, 1], dtype=np.uint64)},
    ...     {"n": np.array([1, 1, 1]), "first": np.array([30, 10, 20])}, {"n": "sum", "first": "min"})
    >>> b = KeyedAggregate.from_rows({"sender": np.array([2, 3], dtype=np.uint64)},
    ...     {"n": np.array([1, 1]), "first": np.array([5, 40])}, {"n": "sum", "first": "min"})
    >>> m = a.merge(b)
    >>> m.to_frame()
       sender  n  first
    0       1  2     20
    1       2  2      5
    2       3  1     40
    >>> m.equals(b + a)
    True
    """

    __slots__ = ("keys", "values", "reducers")

    def __init__(self, keys: Mapping[str, np.ndarray], values: Mapping[str, np.ndarray],
                 reducers: Mapping[str, str]):
        self.keys = dict(keys)
        self.values = dict(values)
        self.reducers = dict(reducers)

    @classmethod
    def from_rows(cls, keys: Mapping[str, np.ndarray], values: Mapping[str, np.ndarray],
                  reducers: Mapping[str, str]) -> "KeyedAggregate":
        """Aggregate rows: one group per distinct key, each value reduced by its reducer.

        Examples
        --------
        >>> KeyedAggregate.from_rows({"k": np.array([5, 5], dtype=np.uint64)}, {"n": np.array([1, 2])},
        ...                          {"n": "sum"}).to_frame()
           k  n
        0  5  3
        """
        unknown = sorted(set(values) ^ set(reducers))
        if unknown:
            raise CommGraphError(f"every value column needs exactly one reducer; mismatched: {unknown}")
        bad = {c: r for c, r in reducers.items() if r not in REDUCERS}
        if bad:
            raise CommGraphError(f"unknown reducers {bad}; use one of {', '.join(map(repr, REDUCERS))}")
        return Grouping.of(keys).aggregate(values, reducers)

    def __len__(self) -> int:
        return len(next(iter(self.keys.values())))

    def _check_compatible(self, other: "KeyedAggregate") -> None:
        if list(self.keys) != list(other.keys) or self.reducers != other.reducers:
            raise CommGraphError(
                f"cannot merge aggregates with different layouts: keys {list(self.keys)} vs {list(other.keys)}, "
                f"reducers {self.reducers} vs {other.reducers}")

    def merge(self, other: "KeyedAggregate") -> "KeyedAggregate":
        """The aggregate over the union of both inputs' rows.

        Both sides are sorted, so the smaller one is looked up in the larger
        one and spliced in: the cost follows the larger side's size once, as a
        copy, plus the smaller one's lookups (no re-grouping).

        Examples
        --------
        >>> a = KeyedAggregate.from_rows({"k": np.array([1], dtype=np.uint64)}, {"n": np.array([2])}, {"n": "sum"})
        >>> a.merge(a).values["n"].tolist()
        [4]
        """
        self._check_compatible(other)
        if not len(other):
            return self
        if not len(self):
            return other
        if len(self) == len(other) and all(np.array_equal(v, other.keys[k]) for k, v in self.keys.items()):
            # The same groups on both sides (a tenant's one row, a window whose mailboxes all had mail
            # again): combine the columns row by row, no plan.
            return KeyedAggregate(self.keys, {c: _COMBINE[self.reducers[c]](v, other.values[c])
                                              for c, v in self.values.items()}, self.reducers)
        big, small = (self, other) if len(self) >= len(other) else (other, self)  # every reducer commutes
        plan = Splice.of(list(big.keys.values()), list(small.keys.values()))
        keys = {k: plan.apply(v, small.keys[k]) for k, v in big.keys.items()}
        values = {c: plan.apply(v, small.values[c], _COMBINE[self.reducers[c]]) for c, v in big.values.items()}
        return KeyedAggregate(keys, values, self.reducers)

    __add__ = merge

    def take(self, mask: np.ndarray) -> "KeyedAggregate":
        """The groups where ``mask`` is true (still sorted)."""
        return KeyedAggregate({k: v[mask] for k, v in self.keys.items()},
                              {c: v[mask] for c, v in self.values.items()}, self.reducers)

    def to_frame(self) -> pd.DataFrame:
        """Keys and values as a DataFrame, one row per group.

        Examples
        --------
        >>> KeyedAggregate.from_rows({"k": np.array([2], dtype=np.uint64)}, {"n": np.array([1])},
        ...                          {"n": "max"}).to_frame().columns.tolist()
        ['k', 'n']
        """
        return pd.DataFrame({**self.keys, **self.values})

    def equals(self, other: "KeyedAggregate", *, rtol: float = 1e-9) -> bool:
        """Same layout, keys and values (floats within ``rtol``).

        Examples
        --------
        >>> a = KeyedAggregate.from_rows({"k": np.array([1], dtype=np.uint64)}, {"x": np.array([1.0])}, {"x": "sum"})
        >>> a.equals(a), a.equals(a.merge(a))
        (True, False)
        """
        if list(self.keys) != list(other.keys) or self.reducers != other.reducers or len(self) != len(other):
            return False
        if not all(np.array_equal(self.keys[k], other.keys[k]) for k in self.keys):
            return False
        for c, v in self.values.items():
            w = other.values[c]
            if v.dtype.kind == "f":
                if not np.allclose(v, w, rtol=rtol, atol=0.0, equal_nan=True):
                    return False
            elif not np.array_equal(v, w):
                return False
        return True

    def __repr__(self) -> str:
        return f"KeyedAggregate({len(self):,} groups; keys {list(self.keys)}; values {self.reducers})"


# --------------------------------------------------------------------------- decay wrapper

class Decayed:
    """Exponentially decayed sums per key, anchored at one instant, mergeable exactly.

    The value at ``anchor`` is ``sum(w * 2**(-(anchor - t) / half_life))`` over
    the rows before the anchor. Decay is exact and composes:
    ``D(t2) = D(t1) * 2**(-(t2 - t1) / half_life) + new``, so merging rescales
    both sides to the later anchor and adds.

    Parameters
    ----------
    aggregate : KeyedAggregate
        Sums (reducer ``sum``) of decayed weights, valued at ``anchor``.
    anchor : int
        Nanoseconds since the epoch (UTC).
    half_life : int
        Nanoseconds.

    Examples
    --------
    >>> day = 86_400 * 10**9
    >>> k = np.array([1, 1], dtype=np.uint64)
    >>> d = Decayed.from_rows({"k": k}, {"n": np.ones(2)}, times=np.array([0, day]), anchor=2 * day,
    ...                       half_life=day)
    >>> d.aggregate.values["n"].tolist()  # 1/4 + 1/2
    [0.75]
    >>> d.decay_to(3 * day).aggregate.values["n"].tolist()
    [0.375]
    """

    __slots__ = ("aggregate", "anchor", "half_life")

    def __init__(self, aggregate: KeyedAggregate, *, anchor: int, half_life: int):
        self.aggregate = aggregate
        self.anchor = int(anchor)
        self.half_life = int(half_life)

    @classmethod
    def from_rows(cls, keys: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray], *, times: np.ndarray,
                  anchor: int, half_life: int) -> "Decayed":
        """Decay each row's weights from its time to ``anchor``, then sum per key.

        Examples
        --------
        >>> Decayed.from_rows({"k": np.array([3], dtype=np.uint64)}, {"n": np.ones(1)}, times=np.array([0]),
        ...                   anchor=10, half_life=10).aggregate.values["n"].tolist()
        [0.5]
        """
        factor = np.exp2(-(int(anchor) - np.asarray(times, dtype=np.int64)) / float(half_life))
        values = {c: np.asarray(w, dtype=np.float64) * factor for c, w in weights.items()}
        return cls(KeyedAggregate.from_rows(keys, values, {c: "sum" for c in values}), anchor=anchor,
                   half_life=half_life)

    def decay_to(self, anchor: int) -> "Decayed":
        """The same sums valued at a later instant.

        Examples
        --------
        >>> d = Decayed.from_rows({"k": np.array([3], dtype=np.uint64)}, {"n": np.ones(1)}, times=np.array([0]),
        ...                       anchor=0, half_life=10)
        >>> d.decay_to(20).aggregate.values["n"].tolist()
        [0.25]
        """
        anchor = int(anchor)
        if anchor < self.anchor:
            raise CommGraphError(f"decay only runs forward: anchor {anchor} is before {self.anchor}")
        factor = np.exp2(-(anchor - self.anchor) / float(self.half_life))
        agg = self.aggregate
        values = {c: v * factor for c, v in agg.values.items()}
        return Decayed(KeyedAggregate(agg.keys, values, agg.reducers), anchor=anchor, half_life=self.half_life)

    def merge(self, other: "Decayed") -> "Decayed":
        """Rescale both to the later anchor and add.

        Examples
        --------
        >>> one = lambda t: Decayed.from_rows({"k": np.array([1], dtype=np.uint64)}, {"n": np.ones(1)},
        ...                                   times=np.array([t]), anchor=t, half_life=10)
        >>> one(0).merge(one(10)).aggregate.values["n"].tolist()
        [1.5]
        """
        if self.half_life != other.half_life:
            raise CommGraphError(f"cannot merge decayed sums with different half-lives: "
                                 f"{self.half_life} ns vs {other.half_life} ns")
        anchor = max(self.anchor, other.anchor)
        a, b = self.decay_to(anchor), other.decay_to(anchor)
        return Decayed(a.aggregate.merge(b.aggregate), anchor=anchor, half_life=self.half_life)

    __add__ = merge

    def __repr__(self) -> str:
        return f"Decayed({len(self.aggregate):,} groups at {pd.Timestamp(self.anchor, tz='UTC')})"


# --------------------------------------------------------------------------- window wrapper

class Windowed:
    """Event-time rows of one period; sums over ``[as_of - period, as_of)`` on demand.

    Keeping the rows (rather than day buckets) makes windows exact for an
    ``as_of`` in the middle of a day. Merging concatenates the rows;
    :meth:`expire` drops the ones no window can reach any more.

    Parameters
    ----------
    keys : dict of str to ndarray
        One or two uint64 key columns, one entry per row.
    weights : dict of str to ndarray
        Values summed per key.
    times : ndarray of int64
        Event times, nanoseconds since the epoch (UTC).
    period : int
        Window length, nanoseconds.

    Examples
    --------
    >>> w = Windowed({"k": np.array([1, 1, 2], dtype=np.uint64)}, {"n": np.ones(3, dtype=np.int64)},
    ...              times=np.array([1, 5, 9]), period=5)
    >>> w.get(10).to_frame()
       k  n
    0  1  1
    1  2  1
    """

    __slots__ = ("keys", "weights", "times", "period")

    def __init__(self, keys: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray], *, times: np.ndarray,
                 period: int):
        self.keys = dict(keys)
        self.weights = dict(weights)
        self.times = np.asarray(times, dtype=np.int64)
        self.period = int(period)

    def get(self, as_of: int) -> KeyedAggregate:
        """Sums per key of the rows in ``[as_of - period, as_of)``.

        Examples
        --------
        >>> Windowed({"k": np.array([4], dtype=np.uint64)}, {"n": np.array([1])}, times=np.array([0]),
        ...          period=10).get(10).to_frame()
           k  n
        0  4  1
        """
        mask = (self.times >= as_of - self.period) & (self.times < as_of)
        return KeyedAggregate.from_rows({k: v[mask] for k, v in self.keys.items()},
                                        {c: v[mask] for c, v in self.weights.items()},
                                        {c: "sum" for c in self.weights})

    def merge(self, other: "Windowed") -> "Windowed":
        """Both inputs' rows.

        Examples
        --------
        >>> w = Windowed({"k": np.array([4], dtype=np.uint64)}, {"n": np.array([1])}, times=np.array([0]), period=10)
        >>> w.merge(w).get(5).values["n"].tolist()
        [2]
        """
        if self.period != other.period or list(self.keys) != list(other.keys):
            raise CommGraphError(f"cannot merge windows of {self.period} ns and {other.period} ns "
                                 f"(keys {list(self.keys)} vs {list(other.keys)})")
        return Windowed({k: np.concatenate([v, other.keys[k]]) for k, v in self.keys.items()},
                        {c: np.concatenate([v, other.weights[c]]) for c, v in self.weights.items()},
                        times=np.concatenate([self.times, other.times]), period=self.period)

    __add__ = merge

    def expire(self, as_of: int) -> "Windowed":
        """Drop rows that no window ending at ``as_of`` or later can reach.

        Examples
        --------
        >>> w = Windowed({"k": np.array([4, 4], dtype=np.uint64)}, {"n": np.array([1, 1])}, times=np.array([0, 8]),
        ...              period=5)
        >>> len(w.expire(10).times)
        1
        """
        keep = self.times >= as_of - self.period
        return Windowed({k: v[keep] for k, v in self.keys.items()}, {c: v[keep] for c, v in self.weights.items()},
                        times=self.times[keep], period=self.period)

    def __repr__(self) -> str:
        return f"Windowed({len(self.times):,} rows, period {pd.Timedelta(self.period)})"
