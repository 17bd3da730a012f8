"""Many tenants' keyed aggregates merged at once: one splice over the stacked tables, split into views.

A refresh of many tenants merges, per tenant, the aggregates of its new rows
into each of its lifetime tables, decayed sums and window counts: a few dozen
:meth:`KeyedAggregate.merge` calls per tenant, each a lookup and a splice of
every column, over arrays of a few thousand rows. The work follows the
tenants' rows, but the hundreds of small numpy calls per tenant cost more than
the rows do.

Stacked, the tenants' tables are one table keyed by (tenant, own keys): each
tenant's groups are a contiguous, sorted segment, so every tenant's update
lands inside its own segment. The lookup is one vectorised lexicographic
binary search bounded by each row's segment (tenants never mix: a row of one
tenant is never compared with another's), and the splice of each column one
:meth:`Splice.apply` for every tenant. Each tenant's result is a slice of the
stacked output, with the bytes its own merge gives (same dtypes, same values:
every reducer is applied to the same pairs of values).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from commgraph.graph import CommGraphError

from ._aggregate import _COMBINE, KeyedAggregate, Splice, bisect_runs

__all__ = ["Stacked", "STACK_MAX_BYTES", "merge_many", "merge_stacked", "merge_layouts", "segment_positions",
           "segment_splice", "stackable"]


def segment_positions(keys: list[np.ndarray], queries: list[np.ndarray], key_bounds: np.ndarray,
                      query_bounds: np.ndarray) -> np.ndarray:
    """For each query of segment ``i`` (rows ``query_bounds[i]:query_bounds[i + 1]``), the first row of the
    segment's keys (rows ``key_bounds[i]:key_bounds[i + 1]``, sorted by one or two key columns) not less
    than it, like ``np.searchsorted(side="left")`` inside each segment.

    A query is compared with its own segment's keys only. The first key column
    is looked up by one binary search per segment (C speed, a few microseconds
    each); the second, inside each run of equal first keys, by vectorised
    halving steps over every segment's open queries at once.

    Examples
    --------
    >>> keys = [np.array([3, 7, 1, 5], dtype=np.uint64)]  # two segments: [3, 7] and [1, 5]
    >>> segment_positions(keys, [np.array([7, 9, 2], dtype=np.uint64)], np.array([0, 2, 4]),
    ...                   np.array([0, 2, 3])).tolist()
    [1, 2, 3]
    """
    if len(keys) not in (1, 2) or len(queries) != len(keys):
        raise CommGraphError(f"segment_positions takes one or two key columns, as many in the queries; got "
                             f"{len(keys)} key and {len(queries)} query columns")
    key_bounds, query_bounds = np.asarray(key_bounds).tolist(), np.asarray(query_bounds).tolist()
    n = query_bounds[-1]
    lo = np.empty(n, np.int64)
    hi = np.empty(n, np.int64) if len(keys) == 2 else None
    first, wanted = keys[0], queries[0]
    for k0, k1, q0, q1 in zip(key_bounds[:-1], key_bounds[1:], query_bounds[:-1], query_bounds[1:]):
        if q0 == q1:
            continue
        run = first[k0:k1]
        lo[q0:q1] = np.searchsorted(run, wanted[q0:q1], side="left") + k0
        if hi is not None:
            hi[q0:q1] = np.searchsorted(run, wanted[q0:q1], side="right") + k0
    return lo if hi is None else bisect_runs(lo, hi, keys[1], queries[1])


def segment_splice(base_keys: list[np.ndarray], update_keys: list[np.ndarray], base_bounds: np.ndarray,
                   update_bounds: np.ndarray) -> tuple[Splice, np.ndarray]:
    """The plan that merges each segment of the update keys (rows ``update_bounds[i]:update_bounds[i + 1]``,
    sorted and unique, by one or two key columns) into the same segment of the base keys, and the bounds of
    the segments in its output.

    Examples
    --------
    >>> keys = [np.array([3, 7, 1, 5], dtype=np.uint64)]  # two segments: [3, 7] and [1, 5]
    >>> plan, bounds = segment_splice(keys, [np.array([7, 9, 2], dtype=np.uint64)], np.array([0, 2, 4]),
    ...                               np.array([0, 2, 3]))
    >>> plan.apply(keys[0], np.array([7, 9, 2], dtype=np.uint64)).tolist(), bounds.tolist()
    ([3, 7, 9, 1, 2, 5], [0, 3, 6])
    """
    owner = np.repeat(np.arange(len(base_bounds) - 1), np.diff(update_bounds))
    positions = segment_positions(base_keys, update_keys, base_bounds, update_bounds)
    found = positions < base_bounds[owner + 1]
    if len(base_keys[0]):
        clipped = np.minimum(positions, len(base_keys[0]) - 1)
        for base, keys in zip(base_keys, update_keys):
            found &= base[clipped] == keys
    # Every update row lands inside its own segment, and segments follow in order: the positions never
    # decrease, so one plan splices every segment.
    plan = Splice(len(base_keys[0]), positions, found)
    inserted = np.bincount(owner[plan.new], minlength=len(base_bounds) - 1)
    return plan, base_bounds + np.concatenate([[0], np.cumsum(inserted)])


def stackable(parts: Sequence[KeyedAggregate]) -> bool:
    """Whether every aggregate has the first one's layout, and each column its dtype and row shape (so that the
    stacked columns keep each tenant's dtypes: a merge of two dtypes promotes).

    Examples
    --------
    >>> agg = lambda n: KeyedAggregate({"k": np.array([1], dtype=np.uint64)}, {"n": n}, {"n": "sum"})
    >>> stackable([agg(np.array([1])), agg(np.array([2]))]), stackable([agg(np.array([1])), agg(np.array([2.0]))])
    (True, False)
    """
    first = parts[0]
    layout = {c: (v.dtype, v.shape[1:]) for c, v in first.values.items()}  # by name: column orders may differ
    key_types = [v.dtype for v in first.keys.values()]
    return all(list(p.keys) == list(first.keys) and p.reducers == first.reducers
               and [v.dtype for v in p.keys.values()] == key_types
               and {c: (v.dtype, v.shape[1:]) for c, v in p.values.items()} == layout for p in parts)


class Stacked(NamedTuple):
    """Several tenants' aggregates as one: tenant ``i``'s groups are rows ``bounds[i]:bounds[i + 1]``.

    Examples
    --------
    >>> agg = KeyedAggregate({"k": np.array([4, 2], dtype=np.uint64)}, {"n": np.array([1, 3])}, {"n": "sum"})
    >>> [len(part) for part in Stacked(agg, np.array([0, 0, 2])).parts()]
    [0, 2]
    """

    aggregate: KeyedAggregate
    bounds: np.ndarray

    @classmethod
    def of(cls, parts: Sequence[KeyedAggregate]) -> "Stacked":
        """Aggregates of one layout stacked in order (the first one's order of value columns).

        Examples
        --------
        >>> agg = KeyedAggregate({"k": np.array([4], dtype=np.uint64)}, {"n": np.array([1])}, {"n": "sum"})
        >>> Stacked.of([agg, agg]).bounds.tolist()
        [0, 1, 2]
        """
        first = parts[0]
        keys = {k: np.concatenate([p.keys[k] for p in parts]) for k in first.keys}
        values = {c: np.concatenate([p.values[c] for p in parts]) for c in first.values}
        return cls(KeyedAggregate(keys, values, first.reducers), np.cumsum([0] + [len(p) for p in parts]))

    @classmethod
    def by_tenant(cls, agg: KeyedAggregate, n_tenants: int) -> "Stacked":
        """An aggregate of stacked tenants (``tenant``, their numbers, its leading key), without that key (the
        tenant table keeps it, as 0: the key a tenant's own aggregate has).

        Examples
        --------
        >>> agg = KeyedAggregate({"tenant": np.array([0, 2], dtype=np.uint64), "k": np.array([9, 9], dtype=np.uint64)},
        ...                      {"n": np.array([1, 3])}, {"n": "sum"})
        >>> s = Stacked.by_tenant(agg, 3)
        >>> list(s.aggregate.keys), s.bounds.tolist()
        (['k'], [0, 1, 1, 2])
        """
        tenant = agg.keys["tenant"]
        bounds = np.searchsorted(tenant, np.arange(n_tenants + 1, dtype=np.uint64))
        own = {k: v for k, v in agg.keys.items() if k != "tenant"} or {"tenant": np.zeros(len(tenant), np.uint64)}
        return cls(KeyedAggregate(own, agg.values, agg.reducers), bounds)

    @property
    def lengths(self) -> np.ndarray:
        """How many groups each tenant has."""
        return np.diff(self.bounds)

    def parts(self, layouts: Sequence[tuple[list[str], dict[str, str]]] | None = None) -> list[KeyedAggregate]:
        """The aggregate of each tenant, as views; ``layouts``: per tenant, the order of the value columns and
        the reducers its part takes (see :func:`merge_layouts`)."""
        agg = self.aggregate
        edges = np.asarray(self.bounds).tolist()
        if layouts is None:
            layouts = [(list(agg.values), agg.reducers)] * (len(edges) - 1)
        return [KeyedAggregate({k: v[lo:hi] for k, v in agg.keys.items()},
                               {c: agg.values[c][lo:hi] for c in order}, reducers)
                for lo, hi, (order, reducers) in zip(edges[:-1], edges[1:], layouts)]


def merge_layouts(bases: Sequence[KeyedAggregate], updates: Sequence[KeyedAggregate] | Stacked
                  ) -> list[tuple[list[str], dict[str, str]]]:
    """Per pair, the order of value columns and the reducers ``base.merge(update)`` keeps (see
    :meth:`KeyedAggregate.merge`: the larger side's columns, the base's reducers unless it is empty).

    Examples
    --------
    >>> a = KeyedAggregate({"k": np.zeros(0, dtype=np.uint64)}, {"n": np.zeros(0), "m": np.zeros(0)},
    ...                    {"n": "sum", "m": "sum"})
    >>> b = KeyedAggregate({"k": np.ones(1, dtype=np.uint64)}, {"m": np.ones(1), "n": np.ones(1)},
    ...                    {"m": "sum", "n": "sum"})
    >>> [order for order, _ in merge_layouts([a, b], [b, a])]
    [['m', 'n'], ['m', 'n']]
    """
    if isinstance(updates, Stacked):
        lengths = updates.lengths.tolist()
        likes = [updates.aggregate] * len(lengths)
    else:
        lengths, likes = [len(u) for u in updates], list(updates)
    out = []
    for base, n, like in zip(bases, lengths, likes):
        if len(base) >= n or not n:
            out.append((list(base.values), base.reducers))
        else:
            out.append((list(like.values), like.reducers if not len(base) else base.reducers))
    return out


def merge_stacked(bases: Sequence[KeyedAggregate], updates: Stacked, scale: Sequence[float] | None = None
                  ) -> Stacked:
    """Each ``bases[i].merge(part i of updates)`` as one stacked aggregate (the first base's order of value
    columns: see :func:`merge_layouts` for each part's).

    ``scale``: per pair, a factor every value column of the base is multiplied
    by first (decayed sums brought to the updates' anchor). Tenants are the
    positions in ``bases`` and the parts of ``updates``; the stacked aggregate
    has no tenant column.

    Examples
    --------
    >>> agg = lambda k, n: KeyedAggregate({"k": np.array(k, dtype=np.uint64)}, {"n": np.array(n)}, {"n": "sum"})
    >>> merged = merge_stacked([agg([1, 5], [1, 1]), agg([5], [2])], Stacked.of([agg([5], [3]), agg([1], [4])]))
    >>> merged.aggregate.keys["k"].tolist(), merged.aggregate.values["n"].tolist(), merged.bounds.tolist()
    ([1, 5, 1, 5], [1, 4, 4, 2], [0, 2, 4])
    """
    n_base = np.array([len(b) for b in bases], dtype=np.int64)
    base_bounds = np.concatenate([[0], np.cumsum(n_base)])
    first, update = bases[0], updates.aggregate
    names = list(first.keys)
    base_keys = [np.concatenate([b.keys[k] for b in bases]) for k in names]
    update_keys = [update.keys[k] for k in names]
    plan, bounds = segment_splice(base_keys, update_keys, base_bounds, updates.bounds)
    keys = {k: plan.apply(b, u) for k, b, u in zip(names, base_keys, update_keys)}
    runs = _runs(n_base).tolist()
    values = {}
    for c in first.values:
        pieces = [b.values[c] for b in bases]
        if scale is not None:
            pieces = [piece * f for piece, f in zip(pieces, scale)]
        # Each run of small tenants' pieces joined (one piece: no copy), then copied into place as one.
        pieces = [np.concatenate(pieces[lo:hi]) if hi - lo > 1 else pieces[lo]
                  for lo, hi in zip(runs[:-1], runs[1:])]
        values[c] = plan.apply(pieces, update.values[c], _COMBINE[first.reducers[c]], bounds=bounds[runs])
    return Stacked(KeyedAggregate(keys, values, first.reducers), bounds)


#: Tenants' base columns shorter than this many rows are joined with their neighbours' before a stacked splice
#: copies them into place: each copy into place costs a few numpy calls whatever its size, a join of a run of
#: small pieces one copy of their few rows (100 tenants with bases of a few rows, the floor harness's: its
#: merges, captured and run alone, 66 ms -> 60 ms of CPU).
JOIN_ROWS = 1024


def _runs(lengths: np.ndarray) -> np.ndarray:
    """The first piece of each run of pieces (of ``lengths`` rows) spliced as one, and the number of pieces:
    runs of small pieces that start inside one block of :data:`JOIN_ROWS` rows, and each large piece alone.

    Examples
    --------
    >>> _runs(np.array([3, 2, 5000, 1, 1])).tolist()
    [0, 2, 3, 5]
    """
    starts = np.cumsum(lengths) - lengths
    cut = np.ones(len(lengths) + 1, bool)
    # (the piece after a large one starts in another block: cut there already)
    cut[1:-1] = (starts[1:] // JOIN_ROWS != starts[:-1] // JOIN_ROWS) | (lengths[1:] >= JOIN_ROWS)
    return np.flatnonzero(cut)


#: Above this many bytes per column of a base, on average per tenant, the bases merge one by one: each
#: merge is then a copy of its columns, whose fixed cost no longer shows, while a stacked column is one large
#: array mapped afresh (measured on 100 tenants of 10M edges, each result kept, so each run maps fresh memory:
#: the pair table, ~120 KB per column and tenant, merged in 77 ms one by one and in 99 ms stacked; the
#: sender_domain table, ~21 KB, in 32 ms and 29 ms; sender_domain_day, ~51 KB, in 21 ms and 9 ms. Still so with
#: the bases copied into place rather than concatenated first: advance_many stacking every table, pair and
#: sender_day too, took 0.61-0.64 s of CPU, 0.57-0.58 s with this bound).
STACK_MAX_BYTES = 96 * 1024


def _bytes_per_column(bases: Sequence[KeyedAggregate]) -> float:
    columns = len(bases[0].keys) + len(bases[0].values)
    return sum(v.nbytes for b in bases for v in (*b.keys.values(), *b.values.values())) / (columns * len(bases))


def _scaled(agg: KeyedAggregate, factor: float) -> KeyedAggregate:
    return KeyedAggregate(agg.keys, {c: v * factor for c, v in agg.values.items()}, agg.reducers)


def merge_many(bases: Sequence[KeyedAggregate], updates: Sequence[KeyedAggregate] | Stacked,
               scale: Sequence[float] | None = None) -> list[KeyedAggregate]:
    """``[b.merge(u) for b, u in zip(bases, updates)]``, each to the byte, in one stacked splice.

    ``updates``: one aggregate per base, or all of them stacked. ``scale``: per
    pair, a factor every value column of the base is multiplied by first (as
    :meth:`Decayed.decay_to` does; the stacked path takes float columns only,
    whose dtype scaling keeps). Aggregates whose layouts or dtypes differ merge
    one by one (a stacked column would promote them), and so do large ones
    (see :data:`STACK_MAX_BYTES`).

    Examples
    --------
    >>> agg = lambda k, n: KeyedAggregate({"k": np.array(k, dtype=np.uint64)}, {"n": np.array(n)}, {"n": "sum"})
    >>> merged = merge_many([agg([1], [1]), agg([2], [2])], [agg([1], [5]), agg([3], [1])])
    >>> [(m.keys["k"].tolist(), m.values["n"].tolist()) for m in merged]
    [([1], [6]), ([2, 3], [2, 1])]
    """
    n_updates = len(updates.bounds) - 1 if isinstance(updates, Stacked) else len(updates)
    if len(bases) != n_updates:
        raise CommGraphError(f"merge_many pairs each base with an update; got {len(bases)} bases and {n_updates} "
                             "updates")
    if not bases:
        return []
    stacked = updates if isinstance(updates, Stacked) else None
    if not stackable([*bases, *([stacked.aggregate] if stacked else updates)]) or (
            scale is not None and any(v.dtype != np.float64 for v in bases[0].values.values())) or (
            _bytes_per_column(bases) > STACK_MAX_BYTES):
        parts = stacked.parts() if stacked else updates
        if scale is None:
            return [b.merge(u) for b, u in zip(bases, parts)]
        # As Decayed.merge: both sides brought to the later anchor (the updates' factor is 1.0), then merged.
        return [_scaled(b, f).merge(_scaled(u, np.exp2(-0.0))) for b, u, f in zip(bases, parts, scale)]
    return merge_stacked(bases, stacked or Stacked.of(updates), scale).parts(merge_layouts(bases, updates))
