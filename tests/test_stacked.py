"""Stacked merges: many tenants' aggregates merged in one splice give, byte for byte, each tenant's own merge."""

from __future__ import annotations

import bisect

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commgraph.baselines._aggregate import Decayed, KeyedAggregate, Splice
from commgraph.baselines import _stacked
from commgraph.baselines._stacked import Stacked, merge_many, merge_stacked, segment_positions
from commgraph.baselines._state import _merge_names, _merge_names_many
from commgraph.graph import CommGraphError

# A small key space: tenants share keys (the same sender in two tenants), and bases and updates overlap.
KEYS = st.integers(0, 12)


@st.composite
def aggregates(draw, two_keys: bool, columns: tuple[str, ...]) -> KeyedAggregate:
    """A keyed aggregate as a build makes one: sorted distinct keys, a sum, a min, a max, a float sum and a
    histogram, with its value columns in the order given (a stored table's order may differ from a built one's)."""
    if two_keys:
        keys = sorted(set(draw(st.lists(st.tuples(KEYS, KEYS), max_size=12))))
        key_columns = {"sender_key": np.array([k[0] for k in keys], np.uint64),
                       "recipient_key": np.array([k[1] for k in keys], np.uint64)}
    else:
        keys = sorted(set(draw(st.lists(KEYS, max_size=12))))
        key_columns = {"sender_key": np.array(keys, np.uint64)}
    n = len(keys)
    ints = st.integers(-5, 2**40)
    values = {
        "n_messages": np.array(draw(st.lists(ints, min_size=n, max_size=n)), np.int64),
        "first_seen": np.array(draw(st.lists(ints, min_size=n, max_size=n)), np.int64),
        "last_seen": np.array(draw(st.lists(ints, min_size=n, max_size=n)), np.int64),
        "decayed": np.array(draw(st.lists(st.floats(0, 1e6), min_size=n, max_size=n)), np.float64),
        "labels": np.array(draw(st.lists(st.lists(ints, min_size=3, max_size=3), min_size=n, max_size=n)),
                           np.int64).reshape(n, 3),
    }
    reducers = {"n_messages": "sum", "first_seen": "min", "last_seen": "max", "decayed": "sum", "labels": "sum"}
    return KeyedAggregate(key_columns, {c: values[c] for c in columns}, {c: reducers[c] for c in sorted(columns)})


def _same(a: KeyedAggregate, b: KeyedAggregate) -> None:
    """Same key and value columns, in the same order, with the same dtypes, shapes and bytes."""
    assert list(a.keys) == list(b.keys) and list(a.values) == list(b.values)
    assert a.reducers == b.reducers
    for name in a.keys:
        assert a.keys[name].dtype == b.keys[name].dtype and a.keys[name].tobytes() == b.keys[name].tobytes(), name
    for name in a.values:
        x, y = a.values[name], b.values[name]
        assert (x.dtype, x.shape) == (y.dtype, y.shape) and x.tobytes() == y.tobytes(), name


ORDERS = st.permutations(["n_messages", "first_seen", "last_seen", "decayed", "labels"])


@settings(max_examples=300, deadline=None)
@given(data=st.data(), two_keys=st.booleans(), n_tenants=st.integers(1, 5), decay=st.booleans(),
       sums_only=st.booleans(), join_rows=st.integers(1, 16))
def test_merge_many_is_each_tenants_own_merge(data, two_keys, n_tenants, decay, sums_only, join_rows) -> None:
    # Each tenant's base may come from a store (its columns in another order than its update's), be empty,
    # or be smaller than its update (the merge then keeps the update's column order). Decayed sums are float
    # columns (stacked); scaled integer columns would become floats (merged one by one, as Decayed does).
    # Small bases' pieces are joined into runs before their splice, large ones spliced alone: both, and both
    # in one merge, at a small JOIN_ROWS.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_stacked, "JOIN_ROWS", join_rows)
        _check_merge_many(data, two_keys, n_tenants, decay, sums_only)


def _check_merge_many(data, two_keys: bool, n_tenants: int, decay: bool, sums_only: bool) -> None:
    columns = (lambda: ("decayed",)) if sums_only else (lambda: tuple(data.draw(ORDERS)))
    bases = [data.draw(aggregates(two_keys, columns())) for _ in range(n_tenants)]
    updates = [data.draw(aggregates(two_keys, columns())) for _ in range(n_tenants)]
    if decay:  # decayed sums: each base brought to the update's anchor by its own factor, as Decayed.merge does
        anchors = data.draw(st.lists(st.integers(0, 10**15), min_size=n_tenants, max_size=n_tenants))
        half_life, anchor = 86_400 * 10**9, 10**15
        scale = [np.exp2(-(anchor - a) / float(half_life)) for a in anchors]
        expected = [Decayed(b, anchor=a, half_life=half_life).merge(Decayed(u, anchor=anchor, half_life=half_life))
                    .aggregate for b, u, a in zip(bases, updates, anchors)]
    else:
        scale = None
        expected = [b.merge(u) for b, u in zip(bases, updates)]
    got = merge_many(bases, updates, scale)
    assert len(got) == n_tenants
    for g, e in zip(got, expected):
        _same(g, e)
    with pytest.MonkeyPatch.context() as patch:  # large tables merge one by one: the same bytes
        patch.setattr(_stacked, "STACK_MAX_BYTES", -1)
        for g, e in zip(merge_many(bases, updates, scale), expected):
            _same(g, e)
    if len({tuple(u.values) for u in updates}) == 1:  # the updates stacked already (as a batch aggregates them)
        for g, e in zip(merge_many(bases, Stacked.of(updates), scale), expected):
            _same(g, e)


def test_tenants_never_mix() -> None:
    # Two tenants with the same keys: each tenant's counts are its own (a key looked up in the other
    # tenant's segment would add the other's counts, or be found where it should be inserted).
    agg = lambda keys, n: KeyedAggregate({"k": np.array(keys, np.uint64)}, {"n": np.array(n, np.int64)},  # noqa: E731
                                         {"n": "sum"})
    got = merge_many([agg([1, 5], [10, 50]), agg([5, 9], [500, 900])], [agg([5, 7], [1, 1]), agg([1, 5], [2, 2])])
    assert [(g.keys["k"].tolist(), g.values["n"].tolist()) for g in got] == [([1, 5, 7], [10, 51, 1]),
                                                                             ([1, 5, 9], [2, 502, 900])]
    merged = merge_stacked([agg([1, 5], [10, 50]), agg([], [])], Stacked.of([agg([], []), agg([3], [4])]))
    assert merged.bounds.tolist() == [0, 2, 3]
    assert [len(part) for part in merged.parts()] == [2, 1]


def test_layouts_that_cannot_stack_merge_one_by_one() -> None:
    ints = KeyedAggregate({"k": np.array([1], np.uint64)}, {"n": np.array([1], np.int64)}, {"n": "sum"})
    floats = KeyedAggregate({"k": np.array([1, 2], np.uint64)}, {"n": np.array([0.5, 1.0])}, {"n": "sum"})
    got = merge_many([ints, floats], [ints, ints])
    _same(got[0], ints.merge(ints))
    _same(got[1], floats.merge(ints))
    other = KeyedAggregate({"j": np.array([1], np.uint64)}, {"n": np.array([1], np.int64)}, {"n": "sum"})
    with pytest.raises(CommGraphError, match="different layouts"):
        merge_many([ints, other], [ints, ints])
    with pytest.raises(CommGraphError, match="2 bases and 1 updates"):
        merge_many([ints, ints], [ints])
    assert merge_many([], []) == []


@settings(max_examples=200, deadline=None)
@given(data=st.data(), two_keys=st.booleans(), n_segments=st.integers(1, 5))
def test_segment_positions_search_each_segment_alone(data, two_keys, n_segments) -> None:
    width = 2 if two_keys else 1
    key_parts, query_parts = [], []
    for _ in range(n_segments):
        key_parts.append(sorted(set(data.draw(st.lists(st.tuples(*[KEYS] * width), max_size=10)))))
        query_parts.append(data.draw(st.lists(st.tuples(*[KEYS] * width), max_size=6)))
    keys = [np.array([k[c] for part in key_parts for k in part], np.uint64) for c in range(width)]
    queries = [np.array([q[c] for part in query_parts for q in part], np.uint64) for c in range(width)]
    key_bounds = np.cumsum([0] + [len(p) for p in key_parts])
    query_bounds = np.cumsum([0] + [len(p) for p in query_parts])
    got = segment_positions(keys, queries, key_bounds, query_bounds)
    # Reference: Python's bisect over each segment's tuples, offset by where the segment starts.
    expected = [start + bisect.bisect_left(part, q) for part, start, qs in zip(key_parts, key_bounds, query_parts)
                for q in qs]
    assert got.tolist() == expected


def test_segment_positions_take_one_or_two_key_columns() -> None:
    one = np.zeros(1, np.uint64)
    with pytest.raises(CommGraphError, match="one or two key columns"):
        segment_positions([one] * 3, [one] * 3, np.array([0, 1]), np.array([0, 1]))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), width=st.sampled_from([0, 1, 3]), reducer=st.sampled_from([None, np.add, np.minimum]))
def test_splice_of_pieces_is_the_splice_of_their_concatenation(data, width, reducer) -> None:
    # A base column given in pieces (stacked tenants', copied each into place) splices to the bytes of the same
    # plan applied to the pieces concatenated: rows kept, updated and inserted, 1-D and 2-D, a float update
    # promoting an integer base.
    base_keys = np.array(sorted(set(data.draw(st.lists(KEYS, max_size=12)))), np.uint64)
    update_keys = np.array(sorted(set(data.draw(st.lists(KEYS, max_size=8)))), np.uint64)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(base_keys)), max_size=4)))
    shape = (lambda n: (n,)) if not width else (lambda n: (n, width))
    base = np.array(data.draw(st.lists(st.integers(-5, 2**40), min_size=int(np.prod(shape(len(base_keys)))),
                                       max_size=int(np.prod(shape(len(base_keys))))))).reshape(shape(len(base_keys)))
    update = np.arange(np.prod(shape(len(update_keys))), dtype=data.draw(st.sampled_from([np.int64, np.float64])))
    update = update.reshape(shape(len(update_keys)))
    plan = Splice.of([base_keys], [update_keys])
    expected = plan.apply(base, update, reducer)
    # Each piece's output rows: its base rows and the new rows inserted before each (those at a cut: the next's).
    edges = np.array([0, *cuts, len(base_keys)])
    bounds = edges + np.searchsorted(plan.insert, edges, side="left")
    bounds[-1] = plan.n_rows
    got = plan.apply(np.split(base, cuts), update, reducer, bounds=bounds)
    assert (got.dtype, got.shape) == (expected.dtype, expected.shape) and got.tobytes() == expected.tobytes()


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.integers(0, 40), max_size=12), join_rows=st.integers(1, 16))
def test_runs_join_small_pieces_and_leave_large_ones_alone(lengths, join_rows) -> None:
    # Reference: every piece in exactly one run, in order; a large piece alone; a run of small pieces starting
    # inside one block of JOIN_ROWS rows (so that no run of small pieces exceeds two blocks).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_stacked, "JOIN_ROWS", join_rows)
        runs = _stacked._runs(np.array(lengths, np.int64)).tolist()
    assert runs[0] == 0 and runs[-1] == len(lengths) and runs == sorted(set(runs))
    starts = np.cumsum([0] + lengths)
    for lo, hi in zip(runs[:-1], runs[1:]):
        assert hi - lo == 1 or all(n < join_rows for n in lengths[lo:hi])
        assert len({int(starts[i]) // join_rows for i in range(lo, hi)}) == 1
    # A cut between two small pieces only where a new block starts.
    for i in range(1, len(lengths)):
        small = lengths[i - 1] < join_rows and lengths[i] < join_rows
        if small and starts[i - 1] // join_rows == starts[i] // join_rows:
            assert i not in runs


def _names(keys: list[int], tag: str) -> dict:
    return {"key": np.array(keys, np.uint64), "value": pa.array([f"{tag}{k}-{i}" for i, k in enumerate(keys)])}


def _ipc(names: dict) -> bytes:
    table = pa.table({"key": pa.array(names["key"], pa.uint64()), "value": names["value"]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


OLD_NAMES = st.one_of(st.just({}), st.lists(KEYS, max_size=8, unique=True).map(lambda k: _names(sorted(k), "old")))
NEW_NAMES = st.one_of(st.none(), st.just({}), st.lists(KEYS, max_size=10).map(lambda k: _names(k, "new")))


@settings(max_examples=300, deadline=None)
@given(old=st.lists(OLD_NAMES, min_size=1, max_size=5), data=st.data())
def test_merge_names_many_is_each_tenants_own_merge(old, data) -> None:
    # Tenants with no names, no new ones, new ones repeating a key (the first row's string counts), new ones the
    # old ones have (the old string stays): each tenant's names the same keys, strings and Arrow IPC bytes as its
    # own _merge_names gives.
    more = data.draw(st.lists(NEW_NAMES, min_size=len(old), max_size=len(old)))
    got = _merge_names_many(old, more)
    assert len(got) == len(old)
    for g, o, m in zip(got, old, more):
        expected = _merge_names(o, m)
        if not expected:
            assert g == {}
            continue
        assert g["key"].dtype == expected["key"].dtype and g["key"].tolist() == expected["key"].tolist()
        assert g["value"].type == expected["value"].type and g["value"].to_pylist() == expected["value"].to_pylist()
        assert _ipc(g) == _ipc(expected)
