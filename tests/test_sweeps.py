"""The compiled sweeps against plain references: per-key binary searches, and brute force over every query.

Each kernel walks events sorted by (key, time) once; the references search
or scan each query on its own, so a pointer that skips or stops early shows.
Ties on equal timestamps follow the "strictly before" rule.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commgraph.baselines._events import domain_heads
from commgraph.baselines._pointintime import QueryOrder, Timeline
from commgraph.baselines._sweeps import (compress, counting_order, first_flagged, first_per_group, first_present_level,
                                         flagged_runs, kept_order, own_count_last, pairs_in_order, reverse_pairs,
                                         running_max, runs_before, segment_cumsum, sorted_run_differences,
                                         sorted_runs_before, sorted_sums_before, warm_up)


def _sorted_events(codes: np.ndarray, times: np.ndarray, n_codes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Events sorted by (code, time) through pandas (an independent sort), their order, and the key offsets."""
    frame = pd.DataFrame({"code": codes, "time": times}).sort_values(["code", "time"], kind="stable")
    starts = np.zeros(n_codes + 1, np.int64)
    np.cumsum(np.bincount(codes, minlength=n_codes), out=starts[1:])
    return frame["time"].to_numpy(np.int64), frame.index.to_numpy(np.int64), starts


def _reference_hi(times: np.ndarray, starts: np.ndarray, code: int, instant: int) -> int:
    if code < 0:
        return 0
    run = times[starts[code]:starts[code + 1]]
    return int(starts[code] + np.searchsorted(run, instant, side="left"))


events = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 60)), max_size=60)
queries = st.lists(st.tuples(st.integers(-1, 5), st.integers(-10, 80)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(events, queries, st.lists(st.integers(0, 70), min_size=1, max_size=4), st.booleans())
def test_runs_before_equals_a_search_per_key(ev, qs, shifts, sorted_queries) -> None:
    codes = np.array([e[0] for e in ev], dtype=np.int64)
    times = np.array([e[1] for e in ev], dtype=np.int64)
    sorted_times, _, starts = _sorted_events(codes, times, 6)
    qc = np.array([q[0] for q in qs], dtype=np.int64)
    qt = np.array([q[1] for q in qs], dtype=np.int64)
    # Sorted queries walk forward only; any other order restarts a key's walk and must agree.
    order = QueryOrder.of(qc, qt).by_key if sorted_queries else np.arange(len(qc))[::-1].copy()
    lo, his = runs_before(sorted_times, starts, qc, qt, order, shifts)
    assert his.shape == (len(shifts), len(qc))
    for i, (c, t) in enumerate(zip(qc.tolist(), qt.tolist())):
        assert lo[i] == (starts[c] if c >= 0 else 0)
        for k, s in enumerate(shifts):
            assert his[k, i] == _reference_hi(sorted_times, starts, c, t - s)
            mine = (codes == c) & (times < t - s)  # brute force: strictly before the shifted instant
            assert his[k, i] - lo[i] == mine.sum()


def test_runs_before_ties_empty_and_one_row() -> None:
    times, starts = np.array([5, 5, 5, 9]), np.array([0, 4])
    # Three events at the query's own instant: none of them is before it.
    lo, his = runs_before(times, starts, np.array([0, 0, 0]), np.array([5, 6, 9]), np.array([0, 1, 2]))
    assert (his[0] - lo).tolist() == [0, 3, 3]
    lo, his = runs_before(np.array([], np.int64), np.array([0, 0, 0]), np.array([], np.int64),
                          np.array([], np.int64), np.array([], np.int64), [0, 1])
    assert lo.shape == (0,) and his.shape == (2, 0)
    lo, his = runs_before(np.array([], np.int64), np.array([0, 0]), np.array([0]), np.array([3]), np.array([0]))
    assert lo.tolist() == [0] and his.tolist() == [[0]]  # a key with no events: an empty run
    lo, his = runs_before(np.array([3]), np.array([0, 1]), np.array([0]), np.array([4]), np.array([0]), [0, 1])
    assert his.tolist() == [[1], [0]]  # 3 < 4, but 3 is not before 4 - 1


def test_runs_before_of_the_events_themselves() -> None:
    # own=True reads shift 0 off the runs of equal times: the same answers as the searches; other queries refused.
    times, starts, codes = np.array([5, 5, 7, 2, 9, 9]), np.array([0, 3, 6]), np.array([0, 0, 0, 1, 1, 1])
    searched = sorted_runs_before(times, starts, codes, times, [0, 2])
    own = sorted_runs_before(times, starts, codes, times, [0, 2], own=True)
    assert own[1].tolist() == searched[1].tolist() == [[0, 0, 2, 3, 4, 4], [0, 0, 0, 3, 4, 4]]
    with pytest.raises(ValueError, match="own=True asks the events about themselves"):
        sorted_runs_before(times, starts, codes, times + 1, [0], own=True)


@pytest.mark.parametrize("walk", ["runs", "differences", "sums"])
@pytest.mark.parametrize("where", [0, 2, 4])
def test_walks_refuse_codes_and_positions_out_of_range_wherever_they_are(walk, where) -> None:
    # The walks check each code and position as they read it (no pass of their own): one out of range anywhere
    # among the queries is refused, as numpy checks them, before it is read through or written to.
    times, starts = np.array([1, 2, 3, 4, 5]), np.array([0, 2, 5])  # two keys
    codes, instants, order = np.array([0, 0, 1, 1, 1]), np.array([2, 3, 3, 4, 9]), np.array([4, 3, 2, 1, 0])

    def run(c: np.ndarray, o: np.ndarray) -> np.ndarray:
        if walk == "runs":
            return np.vstack(sorted_runs_before(times, starts, c, instants, [0, 1], o))
        if walk == "differences":
            return sorted_run_differences(times, starts, c, instants, [0], np.zeros((6, 1), np.int64),
                                          np.array([[-1, 1, 0], [0, 1, 0]]), o)
        return sorted_sums_before(times, starts, np.ones((5, 1), np.int8), c, instants, o)

    assert run(codes, order).shape[1] == 5
    for bad in (2, 7):
        wrong = codes.copy()
        wrong[where] = bad
        with pytest.raises(ValueError, match=f"key code {bad} is outside the code space 0 .. 1"):
            run(wrong, order)
    for bad in (-1, 5):
        wrong = order.copy()
        wrong[where] = bad
        with pytest.raises(ValueError, match=r"the order holds a position outside the queries \(0 .. 4\)"):
            run(codes, wrong)


def test_runs_before_rejects_a_code_outside_the_code_space() -> None:
    with pytest.raises(ValueError, match="key code 2 is outside the code space 0 .. 1"):
        runs_before(np.array([1, 2]), np.array([0, 1, 2]), np.array([2]), np.array([5]), np.array([0]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 12)), max_size=60),
       st.lists(st.integers(0, 14), max_size=3))
def test_events_at_their_own_times_equal_brute_force_and_a_search_per_query(ev, shifts) -> None:
    # A timeline's events asked about at their own times (ties: none of a run counts the others), in one walk.
    codes = np.array([e[0] for e in ev], dtype=np.int64)
    times = np.array([e[1] for e in ev], dtype=np.int64)
    tl = Timeline(codes, times, 5)
    lo, hi, his = tl.before_own_shifts(shifts)
    assert his.shape == (len(shifts), len(codes))
    sorted_times, _, starts = _sorted_events(codes, times, 5)
    for i, (c, t) in enumerate(zip(codes.tolist(), times.tolist())):
        assert lo[i] == starts[c]
        assert hi[i] - lo[i] == ((codes == c) & (times < t)).sum()
        assert hi[i] == _reference_hi(sorted_times, starts, c, t)
        for k, s in enumerate(shifts):
            assert his[k, i] - lo[i] == ((codes == c) & (times < t - s)).sum()
    # The answers in sorted order, as the walk finds them.
    lo_sorted, his_sorted = sorted_runs_before(tl.times, tl.starts, tl.codes, tl.times, [0, *shifts])
    assert np.array_equal(lo_sorted, lo[tl.order]) and np.array_equal(his_sorted[0], hi[tl.order])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 4), st.integers(0, 12), st.booleans()), max_size=60),
       st.lists(st.integers(0, 14), max_size=3))
def test_rows_at_their_own_times_equal_brute_force(rows, shifts) -> None:
    # A timeline of some rows (events), asked about every row at its own time, keys without events included.
    codes = np.array([r[0] for r in rows], dtype=np.int64)
    times = np.array([r[1] for r in rows], dtype=np.int64)
    events = np.array([r[2] for r in rows], dtype=bool) & (codes >= 0)  # rows of keys without events are none
    tl = Timeline.of_rows(codes, times, 5, QueryOrder.of(codes, times), events)
    lo, hi, his = tl.before_own_shifts(shifts)
    for i, (c, t) in enumerate(zip(codes.tolist(), times.tolist())):
        if c < 0:
            assert lo[i] == 0 and hi[i] == 0 and (his[:, i] == 0).all()
            continue
        assert lo[i] == tl.starts[c]
        assert hi[i] - lo[i] == (events & (codes == c) & (times < t)).sum()
        for k, s in enumerate(shifts):
            assert his[k, i] - lo[i] == (events & (codes == c) & (times < t - s)).sum()
    assert np.array_equal(his, tl.before_shifts(codes, times, shifts)[1])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 9), st.integers(-2, 2), st.booleans()), max_size=50),
       st.lists(st.tuples(st.integers(-1, 4), st.integers(-1, 11)), max_size=30), st.booleans())
def test_sums_before_equal_a_pandas_sum_per_query(ev, qs, sorted_queries) -> None:
    # Timeline.sums_before (one compiled walk) against prefix() differences at the run edges of before(), and a
    # plain pandas sum of the events strictly before each query; queries sorted or in any other order.
    codes = np.array([e[0] for e in ev], dtype=np.int64)
    times = np.array([e[1] for e in ev], dtype=np.int64)
    weights = [np.array([e[2] for e in ev], dtype=np.int64), np.array([e[3] for e in ev], dtype=bool)]
    tl = Timeline(codes, times, 5)
    qc = np.array([q[0] for q in qs], dtype=np.int64)
    qt = np.array([q[1] for q in qs], dtype=np.int64)
    order = QueryOrder.of(qc, qt) if sorted_queries else QueryOrder(np.arange(len(qc)), np.arange(len(qc))[::-1].copy())
    sums = tl.sums_before(qc, qt, tl.sorted_weights(weights), order)
    assert sums.shape == (2, len(qs))
    lo, hi = tl.before(qc, qt)
    for k, w in enumerate(weights):
        p = tl.prefix(w)
        assert np.array_equal(sums[k], p[hi] - p[lo])
    frame = pd.DataFrame({"code": codes, "time": times, "w0": weights[0], "w1": weights[1].astype(np.int64)})
    for i, (c, t) in enumerate(zip(qc.tolist(), qt.tolist())):
        before = frame[(frame["code"] == c) & (frame["time"] < t)]
        assert sums[:, i].tolist() == [int(before["w0"].sum()), int(before["w1"].sum())]
    # Weights already in sorted order (flags such as a new day per key) give the same rows.
    in_sorted = [w[tl.order] for w in weights]
    assert np.array_equal(tl.sorted_weights(in_sorted, [True, True]), tl.sorted_weights(weights))


def test_sums_before_rejects_mismatched_inputs() -> None:
    times, starts, one = np.array([3]), np.array([0, 1]), np.array([0])
    with pytest.raises(ValueError, match=r"weights of shape \(2, 1\) for 1 events"):
        sorted_sums_before(times, starts, np.zeros((2, 1), np.int64), one, one)
    with pytest.raises(ValueError, match="outside the queries"):
        sorted_sums_before(times, starts, np.ones((1, 1), np.int64), one, one, np.array([1]))
    with pytest.raises(ValueError, match="key code 1 is outside the code space 0 .. 0"):
        sorted_sums_before(times, starts, np.ones((1, 1), np.int64), np.array([1]), one)
    empty = np.array([], np.int64)
    assert sorted_sums_before(empty, np.zeros(1, np.int64), np.zeros((0, 2), np.int64), empty, empty).shape == (2, 0)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 5)), max_size=60))
def test_counting_order_equals_a_stable_sort_by_code_then_time(rows) -> None:
    codes = np.array([r[0] for r in rows], dtype=np.int64)
    times = np.array([r[1] for r in rows], dtype=np.int64)
    by_time = np.argsort(times, kind="stable")
    expected = np.lexsort((np.arange(len(rows)), times, codes))  # (code, time, position): the stable order
    assert np.array_equal(counting_order(codes, by_time, 7), expected)


def test_counting_order_rejects_what_is_not_a_code_space_or_a_time_order() -> None:
    with pytest.raises(ValueError, match="codes -1 .. 2 are outside the code space 0 .. 2"):
        counting_order(np.array([-1, 2]), np.array([0, 1]), 3)
    for codes in ([0, 1, 0], [0, 0, 1], [1, 0, 0]):  # (checked by the kernel as it counts: anywhere)
        with pytest.raises(ValueError, match="codes 0 .. 1 are outside the code space 0 .. 0"):
            counting_order(np.array(codes), np.array([2, 0, 1]), 1)
    with pytest.raises(IndexError):  # numpy's gather of the codes in time order checks the positions
        counting_order(np.array([0, 0]), np.array([0, 5]), 1)
    with pytest.raises(ValueError, match="2 codes and a time order of 1"):
        counting_order(np.array([0, 0]), np.array([0]), 1)
    assert counting_order(np.array([], np.int64), np.array([], np.int64), 0).shape == (0,)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(-2**63, 2**63 - 1)), max_size=40))
def test_compress_equals_numpy(rows) -> None:
    # The compiled copy (int64 and bool values) against numpy's, empty, all kept or none included.
    mask = np.array([r[0] for r in rows], dtype=bool)
    for values in (np.array([r[1] for r in rows], dtype=np.int64), np.array([r[1] % 3 == 0 for r in rows])):
        for flags in (mask, np.ones(len(mask), bool), np.zeros(len(mask), bool)):
            got = compress(flags, values)
            assert got.dtype == values.dtype and got.tolist() == np.compress(flags, values).tolist()


def test_compress_leaves_other_inputs_to_numpy() -> None:
    read_only = np.array([4, 5, 6])
    read_only.flags.writeable = False
    for mask, values in ((np.array([True, False, True]), read_only), (np.array([False, True]), np.array([1.5, 2.5])),
                         (np.array([True]), np.array([7, 8])), (np.array([1, 0, 1]), np.array([1, 2, 3]))):
        assert compress(mask, values).tolist() == np.compress(mask, values).tolist()
    for mask in (np.array(True), np.array([[True, False]])):  # (not one flag per value: numpy's own error)
        with pytest.raises(ValueError):
            compress(mask, np.array([1, 2]))


def test_compress_keeps_no_large_buffer_alive_for_few_values() -> None:
    values = np.arange(1000, dtype=np.int64)
    few, many = compress(values < 10, values), compress(values >= 10, values)
    assert few.tolist() == list(range(10)) and (few.base is None or few.base.nbytes <= few.nbytes)
    assert many.tolist() == list(range(10, 1000))  # (most kept: the buffer's view, no copy)


@settings(max_examples=150, deadline=None)
@given(st.permutations(list(range(12))), st.lists(st.booleans(), min_size=12, max_size=12))
def test_kept_order_equals_the_numpy_formula(order, mask) -> None:
    order, mask = np.array(order, dtype=np.int64), np.array(mask, dtype=bool)
    expected = (np.cumsum(mask) - 1)[order[mask[order]]]  # the numpy passes it replaces
    assert np.array_equal(kept_order(order, mask), expected)
    kept = np.flatnonzero(mask)  # and by hand: the kept rows' numbers, in the order's sequence
    assert kept_order(order, mask).tolist() == [int(np.searchsorted(kept, i)) for i in order if mask[i]]


def test_kept_order_rejects_an_order_that_is_not_a_permutation() -> None:
    with pytest.raises(ValueError, match="a position outside the rows"):
        kept_order(np.array([0, 7]), np.array([True, True]))
    with pytest.raises(ValueError, match="a kept row missing"):
        kept_order(np.array([0, 0]), np.array([False, True]))
    for order in ([1, 1, 0], [1, 0, 1], [0, 1, 1]):  # (wherever the second time comes: never past the spare place)
        with pytest.raises(ValueError, match="a kept row twice"):
            kept_order(np.array(order), np.array([False, True, False]))
    assert kept_order(np.array([1, 0]), np.array([False, False])).shape == (0,)
    with pytest.raises(ValueError, match="a mask of 1"):
        kept_order(np.array([0, 1]), np.array([True]))
    assert kept_order(np.array([], np.int64), np.array([], bool)).shape == (0,)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 2.0**500, allow_nan=False), st.booleans()), max_size=80))
def test_segment_cumsum_equals_pandas_groupby_cumsum_to_the_bit(rows) -> None:
    values = np.array([r[0] for r in rows], dtype=np.float64)
    new = np.array([r[1] for r in rows], dtype=bool)
    if len(new):
        new[0] = True
    expected = pd.Series(values).groupby(np.cumsum(new)).cumsum().to_numpy()
    assert segment_cumsum(values, new).tobytes() == expected.tobytes()


def test_segment_cumsum_compensates_like_pandas() -> None:
    # 1 + 2**-53 + 2**-53: a plain running sum loses both halves, a compensated one keeps them.
    values = np.array([1.0, 2.0**-53, 2.0**-53])
    out = segment_cumsum(values, np.array([True, False, False]))
    assert out[-1] == 1.0 + 2.0**-52
    assert out.tobytes() == pd.Series(values).groupby(np.zeros(3, int)).cumsum().to_numpy().tobytes()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(-5, 30)), max_size=60))
def test_running_max_equals_pandas_cummax_per_key(rows) -> None:
    codes = np.sort(np.array([r[0] for r in rows], dtype=np.int64))  # keys contiguous, as along a timeline
    values = np.array([r[1] for r in rows], dtype=np.int64)
    expected = pd.Series(values).groupby(codes).cummax().to_numpy(np.int64)
    assert np.array_equal(running_max(codes, values), expected)


def test_empty_and_one_row_inputs() -> None:
    empty = np.array([], np.int64)
    lo, his = sorted_runs_before(empty, np.zeros(1, np.int64), empty, empty, [0, 1])
    assert lo.shape == (0,) and his.shape == (2, 0)
    lo, his = sorted_runs_before(np.array([7]), np.array([0, 1]), np.array([0]), np.array([7]), [0, -1], np.array([0]))
    assert lo.tolist() == [0] and his.tolist() == [[0], [1]]  # itself: not before; before 7 + 1: yes
    with pytest.raises(ValueError, match="2 codes and 1 instants"):
        sorted_runs_before(np.array([7]), np.array([0, 1]), np.array([0, 0]), np.array([7]))
    assert running_max(empty, empty).shape == (0,) and running_max(np.array([3]), np.array([-4])).tolist() == [-4]
    with pytest.raises(ValueError, match="an order of 1 queries for 2"):
        runs_before(np.array([7]), np.array([0, 1]), np.array([0, 0]), np.array([7, 8]), np.array([0]))
    # The walk writes each answer at its query's place: an order that points outside the queries is refused.
    with pytest.raises(ValueError, match="outside the queries"):
        sorted_runs_before(np.array([7]), np.array([0, 1]), np.array([0, 0]), np.array([7, 8]), [0], np.array([0, 2]))
    with pytest.raises(ValueError, match="an order of 1 queries for 2"):
        sorted_runs_before(np.array([7]), np.array([0, 1]), np.array([0, 0]), np.array([7, 8]), [0], np.array([0]))


@st.composite
def level_lists(draw):
    n_rows, n_members, cap = draw(st.integers(1, 5)), draw(st.integers(1, 6)), draw(st.integers(1, 5))
    levels = np.array(draw(st.lists(st.integers(0, cap + 1), min_size=n_rows * n_members,
                                    max_size=n_rows * n_members)), np.int8).reshape(n_rows, n_members)
    # Members join and leave (also twice in a row: counts above one and below zero are summed as they come).
    n_changes = draw(st.integers(0, 15))
    member = np.array(draw(st.lists(st.integers(0, n_members - 1), min_size=n_changes, max_size=n_changes)), np.int64)
    sign = np.array(draw(st.lists(st.sampled_from([1, -1]), min_size=n_changes, max_size=n_changes)), np.int64)
    n_queries = draw(st.integers(0, 12))
    row = np.array(draw(st.lists(st.integers(0, n_rows - 1), min_size=n_queries, max_size=n_queries)), np.int64)
    done = np.array(draw(st.lists(st.integers(0, n_changes), min_size=n_queries, max_size=n_queries)), np.int64)
    return levels, member, sign, row, done, cap


@settings(max_examples=200, deadline=None)
@given(level_lists())
def test_first_present_level_equals_the_sums_per_level_of_each_query(case) -> None:
    levels, member, sign, row, done, cap = case
    expected = []
    for r, d in zip(row.tolist(), done.tolist()):  # the definition, query by query, level by level
        sums = [sum(int(s) for m, s in zip(member[:d], sign[:d]) if levels[r, m] == level) for level in range(cap)]
        expected.append(next((level for level, total in enumerate(sums) if total > 0), cap))
    got = first_present_level(levels, member, sign, row, done, cap)
    assert got.dtype == np.int32 and got.tolist() == expected


def test_first_present_level_rejects_changes_or_queries_outside_the_matrix() -> None:
    levels = np.zeros((2, 3), np.int8)
    one = np.array([1])
    with pytest.raises(ValueError, match="change members 3 .. 3"):
        first_present_level(levels, np.array([3]), one, one, one, 4)
    with pytest.raises(ValueError, match="query rows 2 .. 2"):
        first_present_level(levels, one, one, np.array([2]), one, 4)
    with pytest.raises(ValueError, match="counts of changes 2 .. 2"):
        first_present_level(levels, one, one, one, np.array([2]), 4)
    with pytest.raises(ValueError, match="one of each per change"):
        first_present_level(levels, one, np.array([1, 1]), one, one, 4)

def test_importing_commgraph_does_not_import_numba() -> None:
    # numba and LLVM load when a kernel first runs (a backfill), not for scoring mail.
    code = "import sys, commgraph.signals, commgraph.baselines._pointintime; print('numba' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_days_between_of_a_large_scored_batch_does_not_import_numba() -> None:
    # Scoring computes days with numpy at any batch size: only a backfill asks for the compiled pass.
    code = ("import sys, numpy as np; from commgraph.signals._builtin_sender import days_between; "
            "t = np.arange(1 << 18, dtype=np.int64); days_between(t, t - 5, never=0.0); print('numba' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_kernels_work_where_no_cache_can_be_written(tmp_path) -> None:
    # A read-only install without a writable home: numba finds no cache location, the kernels compile
    # in the process (every run) instead of failing at import or first call.
    import commgraph.baselines._sweeps as sweeps

    (tmp_path / "sweeps_copy.py").write_text(open(sweeps.__file__).read())
    (tmp_path / "__pycache__").write_text("")  # the in-tree cache directory cannot be made
    env = dict(os.environ, NUMBA_CACHE_DIR="/dev/null/numba", HOME="/dev/null", XDG_CACHE_HOME="/dev/null/cache")
    code = ("import sweeps_copy as s; done = s.warm_up(); "
            "print(done.compiled, len(s._ALL_KERNELS), type(s._ALL_KERNELS[0].dispatcher._cache).__name__, "
            "s.runs_before([1, 2], [0, 2], [0], [2], [0])[1].tolist())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path,
                          env=env)
    compiled, kernels, cache, answer = done.stdout.split()
    assert compiled == kernels != "0" and (cache, answer) == ("NullCache", "[[1]]")


def test_kernels_imported_by_their_path_leave_numba_s_cache_alone() -> None:
    # pytest --doctest-modules baselines/x.py imports the layer as 'baselines': numba cached the kernels under
    # that module's name, in the files an import of commgraph reads, which then failed (no module 'baselines').
    import commgraph.baselines._sweeps as sweeps

    root = Path(sweeps.__file__).parent.parent
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import baselines._sweeps as s; "
            "print(s.__name__, type(s._runs_before_kernel.dispatcher._cache).__name__)")
    done = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["baselines._sweeps", "NullCache"]
    assert type(sweeps._runs_before_kernel.dispatcher._cache).__name__ != "NullCache"  # (imported as commgraph's)


def test_warm_up_leaves_the_kernels_compiled() -> None:
    from commgraph.baselines import _beta_quantile, _priors_in_time, _sweeps
    from commgraph.signals import _backfill_signals

    warm_up()
    # Other modules' kernels too (the likelihoods' of backfill, the Beta quantile's, the priors'): a backfill's
    # first run paid for loading them, which the benchmark reports apart from the work.
    assert {_beta_quantile._taylor_kernel, _backfill_signals._mean_kernel, _priors_in_time._merge_kernel,
            _priors_in_time._number_kernel} <= set(_sweeps._ALL_KERNELS)
    for kernel in _sweeps._ALL_KERNELS:
        assert kernel.dispatcher.signatures, kernel  # compiled (or loaded) for the arguments the wrappers pass
    assert warm_up().compiled == warm_up().loaded == 0  # once per process


def test_a_backfill_after_warm_up_compiles_nothing() -> None:
    # Each kernel warmed for the arrays a backfill passes it: a tenant's columns are read-only views of the
    # batch (numba compiles those apart from writable ones), all signals, both modes, both levels.
    from commgraph.baselines import _sweeps
    from commgraph.graph import validate
    from commgraph.signals import backfill

    rows = []
    for tenant in ("t1", "t2"):
        for i in range(6):
            rows.append({"tenant_id": tenant, "message_id": f"{tenant}-{i}", "timestamp": f"2024-01-0{1 + i}T09:00Z",
                         "direction": "inbound" if i % 2 else "outbound",
                         "sender": f"v{i % 3}@vendor.com" if i % 2 else f"a@{tenant}.com",
                         "recipients": f"a@{tenant}.com" if i % 2 else f"v{i % 3}@vendor.com; b@{tenant}.com",
                         "sender_display_name": "Vendor" if i % 2 else "A", "spf": "pass", "dkim": "fail",
                         "dmarc": "none", "label": "safe" if i == 1 else None})
    messages = validate(pd.DataFrame(rows), tenants=[{"tenant_id": t, "own_domains": [f"{t}.com"]}
                                                     for t in ("t1", "t2")])
    warm_up()

    def signatures() -> dict[str, int]:
        return {k.py_func.__qualname__: len(k.dispatcher.signatures) for k in _sweeps._ALL_KERNELS}

    before = signatures()
    for kwargs in ({"prior_every": "1D"}, {}, {"mode": "as_deployed"}, {"level": "message"}):
        backfill(messages, **kwargs)
    assert signatures() == before


def test_sums_before_read_narrow_weights_as_int64() -> None:
    # Weights stored in the narrowest width that holds them (int8, int32, int64): the same sums from each.
    times, starts = np.array([1, 2, 3, 4], np.int64), np.array([0, 2, 4], np.int64)
    codes, instants = np.array([0, 0, 1, 1, -1]), np.array([2, 9, 4, 5, 9])
    wide = np.array([[1, -100], [1, 100], [0, 7], [1, -7]], np.int64)
    expected = sorted_sums_before(times, starts, wide, codes, instants)
    assert expected.tolist() == [[1, 2, 0, 1, 0], [-100, 0, 7, 0, 0]]
    for width in (np.int8, np.int32, np.uint8):
        assert np.array_equal(sorted_sums_before(times, starts, (wide % 128).astype(width), codes, instants),
                              sorted_sums_before(times, starts, wide % 128, codes, instants))
    assert np.array_equal(sorted_sums_before(times, starts, wide.astype(np.int32), codes, instants), expected)
    tl = Timeline(np.array([0, 0, 1, 1]), times, 2)
    for values, width in (([1, -128], np.int8), ([300, 0], np.int32), ([1 << 40, 0], np.int64)):
        w = tl.sorted_weights([np.ones(4, bool), np.array(values * 2)])
        assert w.dtype == width and w[:, 1].tolist() == values * 2


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 4), st.integers(0, 12), st.booleans(), st.integers(-2, 3)), max_size=60),
       st.lists(st.integers(0, 14), max_size=3), st.booleans())
def test_run_differences_equal_prefix_sums_gathered_at_the_run_edges(rows, shifts, of_rows) -> None:
    # The walk answering differences of prefix sums (and counts) equals the run edges' walk followed by gathers,
    # for a timeline's own events and for a timeline of some rows asked about every row.
    codes = np.array([r[0] for r in rows], dtype=np.int64)
    times = np.array([r[1] for r in rows], dtype=np.int64)
    if of_rows:
        events = np.array([r[2] for r in rows], dtype=bool) & (codes >= 0)
        tl = Timeline.of_rows(codes, times, 5, QueryOrder.of(codes, times), events)
    else:
        events = codes >= 0
        codes, times = codes[events], times[events]
        tl = Timeline(codes, times, 5)
    weights = np.array([r[3] for r in rows], dtype=np.int64)[events]
    prefixes = np.stack([tl.prefix(weights), tl.prefix(weights > 0)], axis=1)
    lo, hi, his = tl.before_own_shifts(shifts)
    edges = [lo, hi, *his]
    columns = [(-1, 1, 0), (0, 1, 0), (1, 0, 0), (-1, 0, -1), (-1, 1, -1), (0, 1, -1)]
    columns += [(k % 2, 1, k + 2) for k in range(len(shifts))]
    got = tl.differences_before_own(shifts, prefixes, np.array(columns))
    assert got.shape == (len(columns), len(codes))
    narrow = tl.differences_before_own(shifts, prefixes, np.array(columns), narrow=True)
    assert narrow.dtype == np.int32 and np.array_equal(narrow, got)
    for m, (column, a, b) in enumerate(columns):
        minus = edges[b] if b >= 0 else 0  # (b -1: nothing subtracted, the prefix sums' first row being 0)
        expected = edges[a] - minus if column < 0 else prefixes[edges[a], column] - prefixes[minus, column]
        assert np.array_equal(np.where(codes >= 0, expected, 0), got[m])


def test_run_differences_count_the_events_among_rows_and_stay_inside_a_key_whatever_the_flags() -> None:
    # Rows 0, 0, 1, 1 of key 0 at times 5, 5, 7, 9; its events those at 5 and 9 (every row asked at its own time).
    times, starts, prefixes = np.array([5, 9]), np.array([0, 2]), np.array([[0], [1], [3]])
    codes, instants, columns = np.zeros(4, np.int64), np.array([5, 5, 7, 9]), np.array([[-1, 1, 0], [0, 1, 0]])
    flags = np.array([True, False, False, True])
    searched = sorted_run_differences(times, starts, codes, instants, [0], prefixes, columns)
    assert sorted_run_differences(times, starts, codes, instants, [0], prefixes, columns, events=flags).tolist() == \
        searched.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1]]
    # Flags that are not the rows' events give wrong answers, never a position outside the key's events.
    wrong = sorted_run_differences(times, starts, codes, instants, [0], prefixes, columns, events=np.ones(4, bool))
    assert wrong[0].tolist() == [0, 0, 2, 2]
    for flags, own in ((np.ones(3, bool), False), (np.ones(4, bool), True)):
        with pytest.raises(ValueError, match="event flags for 4 queries"):
            sorted_run_differences(times, starts, codes, instants, [0], prefixes, columns, own=own, events=flags)


def test_run_differences_reject_columns_outside_the_prefixes_or_the_edges() -> None:
    times, starts, one = np.array([3]), np.array([0, 1]), np.array([0])
    prefixes = np.zeros((2, 1), np.int64)
    for columns in ([[1, 1, 0]], [[0, 2, 0]], [[-2, 1, 0]], [[0, 1, -2]], [[0, -1, 0]]):
        with pytest.raises(ValueError, match="columns ask for"):
            sorted_run_differences(times, starts, one, one, [0], prefixes, np.array(columns))
    with pytest.raises(ValueError, match="prefixes of shape"):
        sorted_run_differences(times, starts, one, one, [0], np.zeros((1, 1), np.int64), np.array([[0, 1, 0]]))


def test_narrow_sums_are_int32_where_they_surely_fit() -> None:
    times, starts = np.array([1, 2, 3], np.int64), np.array([0, 3], np.int64)
    codes, instants = np.zeros(2, np.int64), np.array([3, 9])
    weights = np.array([[127, -128], [127, -128], [1, 0]])
    for width, narrow, expected in ((np.int8, True, np.int32), (np.int8, False, np.int64), (np.int32, True, np.int64)):
        sums = sorted_sums_before(times, starts, weights.astype(width), codes, instants, narrow=narrow)
        assert sums.dtype == expected and sums.tolist() == [[254, 255], [-256, -256]]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 9)), max_size=50))
def test_pairs_in_order_equal_a_sort_of_the_pair_keys(rows) -> None:
    # Codes, (pair, time) order and keys as np.unique and a stable sort of (key, time) find them.
    senders = np.array([r[0] for r in rows], dtype=np.int64)
    recipients = np.array([r[1] for r in rows], dtype=np.int64)
    times = np.array([r[2] for r in rows], dtype=np.int64)
    by_key = np.lexsort((times, recipients))  # the rows' (recipient, time) order, stable
    codes, order, sorted_codes, sorted_times, keys = pairs_in_order(senders[by_key], by_key, recipients[by_key],
                                                                    times[by_key], 6)
    expected_keys, expected_codes = np.unique(senders * 6 + recipients, return_inverse=True)
    assert keys.tolist() == expected_keys.tolist() and codes.tolist() == expected_codes.reshape(-1).tolist()
    assert order.tolist() == np.lexsort((times, expected_codes.reshape(-1))).tolist()
    assert sorted_codes.tolist() == codes[order].tolist() and sorted_times.tolist() == times[order].tolist()
    with pytest.raises(ValueError, match="outside the code space"):
        pairs_in_order(np.array([6]), np.array([0]), np.array([0]), np.array([0]), 6)


def _flagged_rows(rows: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Codes, times and flags of (code, time, flag) rows, and their (code, time) order (stable)."""
    codes = np.array([r[0] for r in rows], dtype=np.int64)
    times = np.array([r[1] for r in rows], dtype=np.int64)
    return codes, times, np.array([r[2] for r in rows], dtype=bool), np.lexsort((times, codes))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 9), st.booleans()), max_size=40))
def test_first_flagged_equals_the_compresses_it_replaced(rows) -> None:
    codes, times, flags, order = _flagged_rows(rows)
    first, code = np.compress(flags[order], order), np.compress(flags[order], codes[order])
    keep = np.ones(len(first), bool)
    keep[1:] = code[1:] != code[:-1]
    got = first_flagged(order, codes[order], flags)
    assert got[0].tolist() == first[keep].tolist() and got[1].tolist() == code[keep].tolist()


@settings(max_examples=100, deadline=None)
@given(st.sets(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=30))
def test_reverse_pairs_find_each_pair_s_reverse(pairs) -> None:
    keys = np.array(sorted(s * 7 + r for s, r in pairs), dtype=np.int64)
    expected = [sorted(pairs).index((r, s)) if (r, s) in pairs else -1 for s, r in sorted(pairs)]
    assert reverse_pairs(keys, 7).tolist() == expected
    with pytest.raises(ValueError, match="increasing, distinct"):
        reverse_pairs(np.array([3, 3]), 7)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 9)), max_size=40))
def test_own_count_last_equals_the_run_edges_of_the_events_themselves(rows) -> None:
    codes = np.array([r[0] for r in rows], dtype=np.int64)
    times = np.array([r[1] for r in rows], dtype=np.int64)
    tl = Timeline(codes, times, 5)
    lo, hi = tl.before_own()
    count, last = own_count_last(tl.codes, tl.times, tl.order, -7)
    assert count.tolist() == (hi - lo).tolist() and last.tolist() == tl.at_last(tl.times, lo, hi, -7).tolist()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 9), st.booleans()), max_size=40))
def test_flagged_runs_equal_the_first_flagged_time_per_code(rows) -> None:
    codes, times, flags, order = _flagged_rows(rows)
    since = {c: min((t for c2, t, f in rows if c2 == c and f), default=None) for c in set(codes.tolist())}
    held, waits = flagged_runs(order, codes[order], times[order], flags)
    assert held.tolist() == [since[c] is not None for c in codes.tolist()]
    assert waits == any(since[c] is not None and t < since[c] for c, t, _ in rows)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 4), st.booleans()), max_size=40))
def test_first_per_group_equals_domain_heads(rows) -> None:
    rows = sorted(rows, key=lambda r: r[0])  # message by message
    group, codes = np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int64)
    flags = np.array([r[2] for r in rows], bool)
    assert first_per_group(group, flags, codes, 5).tolist() == domain_heads(group, flags, codes).tolist()
    if len(rows) > 1 and group[0] != group[-1]:
        with pytest.raises(ValueError, match="group by group"):
            first_per_group(group[::-1], flags, codes, 5)
