"""The own-time walks (baselines._own_time) against brute force, and AsOfTables' columns through them against
the timelines they replace (each message asked at its own time, and at other instants)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commgraph.baselines import BaselineConfig
from commgraph.baselines._asof import _OWN, _WRITTEN, AsOfTables
from commgraph.baselines._events import HOUR_NS, INBOUND
from commgraph.baselines._own_time import (first_used, follow_top, own_hour_counts, own_pair_counts,
                                           standing_in_time)
from commgraph.baselines._pointintime import NAT, Timeline
from commgraph.baselines._sweeps import _ALL_KERNELS, warm_up

_rows = st.lists(st.tuples(st.integers(-3, 3), st.integers(0, 3), st.integers(-1, 2)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(_rows, st.integers(1, 4))
def test_own_hour_counts_equal_brute_force(rows, hour) -> None:
    times = np.array([r[0] for r in rows], dtype=np.int64)
    sender = np.array([r[1] for r in rows], dtype=np.int64)
    s, h, n = own_hour_counts(np.argsort(times, kind="stable"), times, sender, 4, hour)
    of_day = times // hour % 24
    for i in range(len(rows)):
        earlier = times < times[i]
        assert n[i] == earlier.sum()
        assert h[i] == (earlier & (of_day == of_day[i])).sum()
        assert s[i] == (earlier & (of_day == of_day[i]) & (sender == sender[i])).sum()


@settings(max_examples=150, deadline=None)
@given(_rows)
def test_own_pair_counts_equal_brute_force(rows) -> None:
    times = np.array([r[0] for r in rows], dtype=np.int64)
    second = np.array([r[1] for r in rows], dtype=np.int64)
    first = np.array([r[2] for r in rows], dtype=np.int64)
    counts = own_pair_counts(np.lexsort((times, second, first)), first, second, times)
    for i in range(len(rows)):
        expected = ((first == first[i]) & (second == second[i]) & (times < times[i])).sum() if first[i] >= 0 else 0
        assert counts[i] == expected


@settings(max_examples=100, deadline=None)
@given(_rows)
def test_first_used_equals_the_minimum_per_code(rows) -> None:
    times = np.array([r[0] for r in rows], dtype=np.int64)
    codes = np.array([r[2] for r in rows], dtype=np.int64)
    used = np.array([r[1] > 0 for r in rows], dtype=bool)
    out = first_used(codes, used, times, 3)
    for c in range(3):
        mine = times[(codes == c) & used]
        assert out[c] == (mine.min() if len(mine) else np.iinfo(np.int64).max)


def test_first_used_skips_negative_codes_whatever_their_times() -> None:
    # (The kernel stores at every row, a negative code's at code 0's place, unchanged.)
    assert first_used(np.array([-1, 0, -1]), np.ones(3, bool), np.array([1, 5, 0]), 1).tolist() == [5]
    assert first_used(np.array([-1, -1]), np.ones(2, bool), np.array([1, 2]), 0).shape == (0,)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3), st.booleans()), max_size=30),
       st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3), st.booleans()), max_size=30))
def test_standing_in_time_equals_the_scores_written_out(messages, edges) -> None:
    # The reference: the events stably sorted by time (messages first), each scored by brute force.
    times = np.array([m[0] for m in messages], dtype=np.int64)
    codes = np.array([m[1] for m in messages], dtype=np.int64)
    own = np.array([m[2] for m in messages], dtype=bool)
    edge_times = np.array([e[0] for e in edges], dtype=np.int64)
    edge_codes = np.array([e[1] for e in edges], dtype=np.int64)
    heads = np.array([e[2] for e in edges], dtype=bool)
    all_codes = np.concatenate([codes, edge_codes[heads]])
    all_times = np.concatenate([times, edge_times[heads]])
    order = np.argsort(all_times, kind="stable")
    all_codes, all_times = all_codes[order], all_times[order]
    all_own = np.concatenate([own, np.zeros(int(heads.sum()), bool)])[order]
    written = np.concatenate([np.zeros(len(times), bool), np.ones(int(heads.sum()), bool)])[order]
    # Each event's score written out: its domain's own and written flags so far, and its rank among the
    # domain's events; kept: below _WRITTEN, or the domain's first event at or above it.
    score, start, keep = np.zeros(len(order), np.int64), np.zeros(len(order), bool), np.zeros(len(order), bool)
    for j in range(len(order)):
        same = np.flatnonzero(all_codes[:j + 1] == all_codes[j])
        score[j] = _OWN * all_own[same].any() + _WRITTEN * written[same].any() + len(same)
        start[j] = len(same) == 1
        keep[j] = score[j] < _WRITTEN or not (score[same[:-1]] >= _WRITTEN).any()
    (c, t, s), (fc, ft) = standing_in_time(np.argsort(times, kind="stable"), codes, times, own,
                                           np.argsort(edge_times, kind="stable"), edge_codes, edge_times, heads, 4,
                                           _OWN, _WRITTEN)
    assert c.tolist() == all_codes[keep].tolist() and t.tolist() == all_times[keep].tolist()
    assert s.tolist() == score[keep].tolist()
    assert fc.tolist() == all_codes[start].tolist() and ft.tolist() == all_times[start].tolist()


def test_walks_reject_positions_and_codes_outside_their_rows() -> None:
    one = np.zeros(1, np.int64)
    with pytest.raises(ValueError, match="outside the rows"):
        own_hour_counts(np.array([1]), one, one, 1, 1)
    with pytest.raises(ValueError, match="sender codes"):
        own_hour_counts(one, one, np.array([1]), 1, 1)
    with pytest.raises(ValueError, match="outside the rows"):
        own_pair_counts(np.array([-1]), one, one, one)
    with pytest.raises(ValueError, match="codes up to"):
        first_used(np.array([3]), np.ones(1, bool), one, 3)
    with pytest.raises(ValueError, match="edge codes"):
        standing_in_time(one, one, one, np.ones(1, bool), one, np.array([2]), one, np.zeros(1, bool), 1, 2, 1)


def _tables(seed: int, limit: int) -> tuple[AsOfTables, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    ts = rng.integers(-30, 30, n) * (HOUR_NS // 7)
    m = {"timestamp": ts, "sender_key": rng.integers(1, 12, n).astype(np.uint64),
         "sender_domain_key": rng.integers(1, 15, n).astype(np.uint64),
         "display_name_key": rng.integers(0, 5, n).astype(np.uint64),
         "direction": rng.integers(0, 3, n).astype(np.int8),
         "label": np.full(n, -1, np.int8), "labeled_at": np.full(n, NAT), "spf": np.full(n, -1, np.int8),
         "dkim": np.full(n, -1, np.int8), "dmarc": np.full(n, -1, np.int8)}
    em = np.repeat(np.arange(n), rng.integers(1, 4, n))
    e = {"edge_message": em, "recipient_key": rng.integers(1, 12, len(em)).astype(np.uint64),
         "recipient_domain_key": rng.integers(1, 15, len(em)).astype(np.uint64)}
    return AsOfTables(m, e, BaselineConfig(known_contact_domains=limit)), ts


@pytest.mark.parametrize("seed", range(12))
def test_tables_at_own_times_equal_their_timelines_at_other_instants(seed) -> None:
    tables, ts = _tables(seed, 3)
    own_hours = tables.sender_hours(ts), *tables.tenant_hours(ts)
    named = tables.display_name(ts)
    # The timelines these walks replace, asked the same.
    hour = ts // HOUR_NS % 24
    sender_hour = Timeline(tables.s * 24 + hour, ts, tables.n_addr * 24)
    lo, hi = sender_hour.before(tables.s * 24 + hour, ts)
    tenant_hour = Timeline(hour, ts, 24)
    tlo, thi = tenant_hour.before(hour, ts)
    assert own_hours[0].tolist() == (hi - lo).tolist() and own_hours[1].tolist() == (thi - tlo).tolist()
    assert own_hours[2].tolist() == np.searchsorted(np.sort(ts), ts, side="left").tolist()
    codes, tl = tables._name_pairs
    plo, phi = tl.before(codes, ts)
    assert named["n_with_name"].tolist() == (phi - plo).tolist()
    assert named["n_with_name"].dtype == np.int64 and named["is_internal"].dtype == np.int8
    # Other instants: the timelines' way, and whether a name is internal read off its first internal use.
    later = ts + HOUR_NS
    internal = np.array([((tables.name == tables.name[i]) & (tables.direction != INBOUND) & (ts < later[i])).any()
                         and tables.name[i] >= 0 for i in range(len(ts))])
    assert tables.display_name(later)["is_internal"].tolist() == internal.astype(np.int8).tolist()


def test_own_time_kernels_are_warmed() -> None:
    from commgraph.baselines import _own_time
    from commgraph.signals import _backfill_signals

    warm_up()
    kernels = {_own_time._own_hours_kernel, _own_time._own_pairs_kernel, _own_time._first_used_kernel,
               _own_time._standing_kernel, _own_time._follow_kernel, _backfill_signals._auth_kernel,
               _backfill_signals._identity_kernel}
    assert kernels <= set(_ALL_KERNELS)
    assert all(kernel.dispatcher.signatures for kernel in kernels)


@pytest.mark.parametrize("rows, expected", [(None, True), (np.array([0, 1]), False), (np.array([1, 2]), False),
                                            (np.array([3]), True), (np.array([2, 4]), True), (np.array([4]), False)])
def test_names_may_hold_at_reads_the_span_of_the_batch_s_rows(rows, expected) -> None:
    # Two chunks, the first a slice (its offsets start past 0, an "@" before it): each row's bytes are its own.
    import pyarrow as pa
    from types import SimpleNamespace

    from commgraph.signals._backfill_signals import _names_may_hold_at

    first = pa.array(["a@b", "ann", "bo", "x"], pa.large_string())[1:]
    chunks = pa.chunked_array([first, pa.array(["c@d", "ed"], pa.large_string())])
    frame = pd.DataFrame({"sender_display_name": pd.arrays.ArrowStringArray(chunks)})
    assert frame["sender_display_name"].array.__arrow_array__().num_chunks == 2
    n = len(frame) if rows is None else len(rows)
    assert _names_may_hold_at(SimpleNamespace(frame=frame, message_rows=rows, n_messages=n)) is expected
    names = frame["sender_display_name"].astype(object)  # not Arrow strings: the names are read one by one
    assert _names_may_hold_at(SimpleNamespace(frame=pd.DataFrame({"sender_display_name": names}), message_rows=rows,
                                              n_messages=n)) is True


@pytest.mark.parametrize("seed", range(8))
def test_auth_columns_equal_the_numpy_formula_to_the_bit(seed) -> None:
    from commgraph.signals._backfill_signals import _AUTH, _IS_FAIL, _MIN_PASSES, _auth_columns

    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 400))
    cols = {f"{a}_{k}": rng.integers(0, rng.integers(1, 40), n) for a in _AUTH for k in ("pass", "fail")}
    codes = [rng.integers(-len(_IS_FAIL), len(_IS_FAIL), n).astype(np.int8) for _ in _AUTH]  # negative: from the end
    passes, fails = [cols[f"{a}_pass"] for a in _AUTH], [cols[f"{a}_fail"] for a in _AUTH]
    n_fail = sum(fails)
    n_all = n_fail + sum(passes)
    deviation = np.zeros(n, bool)
    for p, f, c in zip(passes, fails, codes):
        deviation |= (p >= _MIN_PASSES) & (p >= 9 * f) & _IS_FAIL[c]
    rate, flags = _auth_columns(cols, codes)
    expected = np.divide(n_fail, n_all, out=np.zeros(n), where=n_all > 0).astype(np.float32)
    assert rate.dtype == np.float32 and rate.tobytes() == expected.tobytes()
    assert flags.dtype == np.int8 and flags.tolist() == deviation.astype(np.int8).tolist()
    with pytest.raises(IndexError):
        _auth_columns({k: np.zeros(1, np.int64) for k in cols}, [np.array([len(_IS_FAIL)], np.int8)] * 3)


def _followed(codes, times, score, ranks, limit, written):
    """The reference: the list re-ranked from scratch after each instant's events (members for good, then the
    best ``limit`` others by (score, -rank)), its changes read off consecutive lists."""
    latest: dict[int, int] = {}
    members: set[int] = set()
    out = []
    j = 0
    while j < len(codes):
        end = j
        while end < len(codes) and times[end] == times[j]:
            end += 1
        for k in range(j, end):
            latest[int(codes[k])] = int(score[k])
        good = {c for c, s in latest.items() if s >= written}
        rest = sorted((c for c in latest if c not in good), key=lambda c: (-latest[c], ranks[c]))[:limit]
        now = good | set(rest)
        out += [(c, int(times[j]), -1) for c in sorted(members - now)]
        out += [(c, int(times[j]), 1) for c in sorted(now - members)]
        members, j = now, end
    return out


@pytest.mark.parametrize("seed", range(10))
def test_follow_top_ends_each_instant_with_the_ranked_list(seed) -> None:
    # Within an instant the walk may let a domain join and leave again (the order of its events): compared are
    # the members after each instant, the walk's changes netted per instant.
    rng = np.random.default_rng(seed)
    for _ in range(100):
        nd, n = int(rng.integers(1, 12)), int(rng.integers(1, 60))
        codes = rng.integers(0, nd, n)
        count, written = np.zeros(nd, np.int64), np.zeros(nd, bool)
        score = np.empty(n, np.int64)
        for j, c in enumerate(codes):
            count[c] += 1
            written[c] |= rng.random() < 0.08
            score[j] = count[c] + _WRITTEN * written[c]
        times, ranks, limit = np.sort(rng.integers(0, 25, n)), rng.permutation(nd), int(rng.integers(0, 5))
        got = follow_top(codes, times, score, ranks, limit, _WRITTEN)
        net: dict[tuple[int, int], int] = {}
        for c, t, s in zip(*(a.tolist() for a in got)):
            net[(t, c)] = net.get((t, c), 0) + s
        walked = sorted((c, t, s) for (t, c), s in net.items() if s)
        assert walked == sorted(_followed(codes, times, score, ranks, limit, _WRITTEN))


@pytest.mark.parametrize("seed", range(6))
def test_identity_kernel_equals_the_numpy_formula(seed) -> None:
    from commgraph.signals._backfill_signals import _INBOUND, _identity_kernel

    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 300))
    key = rng.integers(0, 3, n).astype(np.uint64)
    n_with, internal = rng.integers(0, 4, n), rng.integers(0, 2, n).astype(np.int8)
    direction, active = rng.integers(0, 3, n).astype(np.int8), rng.integers(0, 4, n)
    has_name = key != 0
    seen = (n_with > 0) & has_name
    matches, days, new = np.empty(n, np.int8), np.empty(n, np.int32), np.empty(n, np.int8)
    _identity_kernel(key, n_with, internal, direction, active, _INBOUND, matches, days, new)
    assert matches.tolist() == ((internal > 0) & has_name & ((direction == _INBOUND) | ~seen)).astype(np.int8).tolist()
    assert days.tolist() == np.where(seen, np.minimum(n_with, active), 0).astype(np.int32).tolist()
    assert new.tolist() == (has_name & ~seen).astype(np.int8).tolist()
