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

from typing import Sequence

import numpy as np

from commgraph.graph import CommGraphError

from ._aggregate import _COMBINE, KeyedAggregate, Splice, bisect_runs

__all__ = ["merge_many", "merge_stacked", "split_stacked", "segment_positions", "stackable", "merge_order"]


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


def merge_stacked(bases: Sequence[KeyedAggregate], updates: Sequence[KeyedAggregate],
                  scale: Sequence[float] | None = None) -> tuple[KeyedAggregate, np.ndarray]:
    """Each ``bases[i].merge(updates[i])`` as one stacked aggregate, and each result's row bounds in it.

    ``scale``: per pair, a factor every value column of the base is multiplied
    by first (decayed sums brought to the updates' anchor). Tenants are the
    positions in the sequences; the stacked aggregate has no tenant column.

    Examples
    --------
    >>> agg = lambda k, n: KeyedAggregate({"k": np.array(k, dtype=np.uint64)}, {"n": np.array(n)}, {"n": "sum"})
    >>> merged, bounds = merge_stacked([agg([1, 5], [1, 1]), agg([5], [2])], [agg([5], [3]), agg([1], [4])])
    >>> merged.keys["k"].tolist(), merged.values["n"].tolist(), bounds.tolist()
    ([1, 5, 1, 5], [1, 4, 4, 2], [0, 2, 4])
    """
    n_base = np.array([len(b) for b in bases], dtype=np.int64)
    n_update = np.array([len(u) for u in updates], dtype=np.int64)
    base_bounds = np.concatenate([[0], np.cumsum(n_base)])
    first = bases[0]
    names = list(first.keys)
    base_keys = [np.concatenate([b.keys[k] for b in bases]) for k in names]
    update_keys = [np.concatenate([u.keys[k] for u in updates]) for k in names]
    owner = np.repeat(np.arange(len(bases)), n_update)
    positions = segment_positions(base_keys, update_keys, base_bounds, np.concatenate([[0], np.cumsum(n_update)]))
    found = positions < base_bounds[owner + 1]
    if len(base_keys[0]):
        clipped = np.minimum(positions, len(base_keys[0]) - 1)
        for base, update in zip(base_keys, update_keys):
            found &= base[clipped] == update
    # Every update row lands inside its own tenant's segment, and segments follow the tenants' order:
    # the positions never decrease, so one plan splices every tenant.
    plan = Splice(len(base_keys[0]), positions, found)
    factor = None if scale is None else np.repeat(np.asarray(scale, dtype=np.float64), n_base)
    keys = {k: plan.apply(b, u) for k, b, u in zip(names, base_keys, update_keys)}
    values = {}
    for c in first.values:
        base = np.concatenate([b.values[c] for b in bases])
        if factor is not None:
            base = base * (factor if base.ndim == 1 else factor[:, None])
        values[c] = plan.apply(base, np.concatenate([u.values[c] for u in updates]), _COMBINE[first.reducers[c]])
    inserted = np.bincount(owner[plan.new], minlength=len(bases))
    bounds = base_bounds + np.concatenate([[0], np.cumsum(inserted)])
    return KeyedAggregate(keys, values, first.reducers), bounds


def split_stacked(stacked: KeyedAggregate, bounds: np.ndarray, like: Sequence[KeyedAggregate] | None = None
                  ) -> list[KeyedAggregate]:
    """The aggregate of each tenant (rows ``bounds[i]:bounds[i + 1]``), as views.

    ``like``: per tenant, the aggregate whose order of value columns and
    reducers the part takes (a merge keeps its larger side's: a stored
    table's columns come back in the order they were written).

    Examples
    --------
    >>> agg = KeyedAggregate({"k": np.array([4, 2], dtype=np.uint64)}, {"n": np.array([1, 3])}, {"n": "sum"})
    >>> [len(part) for part in split_stacked(agg, np.array([0, 0, 2]))]
    [0, 2]
    """
    edges = np.asarray(bounds).tolist()
    orders = [stacked] * (len(edges) - 1) if like is None else like
    return [KeyedAggregate({k: v[lo:hi] for k, v in stacked.keys.items()},
                           {c: stacked.values[c][lo:hi] for c in order.values}, order.reducers)
            for lo, hi, order in zip(edges[:-1], edges[1:], orders)]


def merge_order(base: KeyedAggregate, update: KeyedAggregate) -> KeyedAggregate:
    """The side whose order of value columns and reducers ``base.merge(update)`` keeps (see
    :meth:`KeyedAggregate.merge`: the larger side's columns, the base's reducers unless it is empty).

    Examples
    --------
    >>> a = KeyedAggregate({"k": np.zeros(0, dtype=np.uint64)}, {"n": np.zeros(0)}, {"n": "sum"})
    >>> b = KeyedAggregate({"k": np.ones(1, dtype=np.uint64)}, {"n": np.ones(1)}, {"n": "sum"})
    >>> merge_order(a, b) is b, merge_order(b, a) is b
    (True, True)
    """
    if len(base) >= len(update) or not len(update):
        return base
    if not len(base):
        return update
    return KeyedAggregate(update.keys, update.values, base.reducers)


def _scaled(agg: KeyedAggregate, factor: float) -> KeyedAggregate:
    return KeyedAggregate(agg.keys, {c: v * factor for c, v in agg.values.items()}, agg.reducers)


def merge_many(bases: Sequence[KeyedAggregate], updates: Sequence[KeyedAggregate],
               scale: Sequence[float] | None = None) -> list[KeyedAggregate]:
    """``[b.merge(u) for b, u in zip(bases, updates)]``, each to the byte, in one stacked splice.

    ``scale``: per pair, a factor every value column of the base is multiplied
    by first (as :meth:`Decayed.decay_to` does; the stacked path takes float
    columns only, whose dtype scaling keeps). Aggregates whose layouts or
    dtypes differ merge one by one (a stacked column would promote them).

    Examples
    --------
    >>> agg = lambda k, n: KeyedAggregate({"k": np.array(k, dtype=np.uint64)}, {"n": np.array(n)}, {"n": "sum"})
    >>> merged = merge_many([agg([1], [1]), agg([2], [2])], [agg([1], [5]), agg([3], [1])])
    >>> [(m.keys["k"].tolist(), m.values["n"].tolist()) for m in merged]
    [([1], [6]), ([2, 3], [2, 1])]
    """
    if len(bases) != len(updates):
        raise CommGraphError(f"merge_many pairs each base with an update; got {len(bases)} bases and {len(updates)} "
                         "updates")
    if not bases:
        return []
    if not stackable([*bases, *updates]) or (
            scale is not None and any(v.dtype != np.float64 for v in bases[0].values.values())):
        if scale is None:
            return [b.merge(u) for b, u in zip(bases, updates)]
        # As Decayed.merge: both sides brought to the later anchor (the updates' factor is 1.0), then merged.
        return [_scaled(b, f).merge(_scaled(u, np.exp2(-0.0))) for b, u, f in zip(bases, updates, scale)]
    return split_stacked(*merge_stacked(bases, updates, scale), [merge_order(b, u) for b, u in zip(bases, updates)])
