"""The point-in-time helpers of the baselines against plain references and against snapshots.

Timelines against brute force over every (key, instant); outcome changes
against the snapshot's definition of label and presumption counts written out
directly; the known-contact list and the priors through time against the
snapshots ``build_baselines`` makes as of each instant.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from commgraph.baselines import BaselineConfig, build_baselines
from commgraph.baselines._asof import AsOfTables
from commgraph.baselines._pointintime import (NAT, QueryOrder, Timeline, code_order, merge_search, outcome_changes,
                                             outcome_events)
from commgraph.baselines._priors_in_time import priors_at, priors_at_kinds
from commgraph.graph import validate
from commgraph.signals._backfill import _columns, _tenant
from commgraph.signals._batch import SignalBatch

events = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3000)), min_size=1, max_size=60)
queries = st.lists(st.tuples(st.integers(-1, 5), st.integers(-10, 3100)), min_size=1, max_size=30)


def _running_decay_reference(codes: np.ndarray, times: np.ndarray, half_life: int) -> np.ndarray:
    """Timeline._running_decay's general way, every step (epochs, segments, carries) whatever the times."""
    n, h = len(times), float(half_life)
    span = min(512 * half_life, int(times.max() - times.min()) + 1)
    epoch = (times - times.min()) // span
    seg_start = np.ones(n, dtype=bool)
    seg_start[1:] = (codes[1:] != codes[:-1]) | (epoch[1:] != epoch[:-1])
    seg_id = np.cumsum(seg_start) - 1
    starts = np.flatnonzero(seg_start)
    rel = (times - (times.min() + epoch[starts] * span)[seg_id]) / h
    local = pd.Series(np.exp2(rel)).groupby(seg_id).cumsum().to_numpy() * np.exp2(-rel)
    ends = np.concatenate([starts[1:] - 1, [n - 1]])
    carry, end_value = np.zeros(len(starts)), local[ends].copy()
    for s in range(1, len(starts)):
        if codes[starts[s]] == codes[starts[s - 1]]:
            carry[s] = end_value[s - 1] * np.exp2(-(times[starts[s]] - times[ends[s - 1]]) / h)
            end_value[s] = local[ends[s]] + carry[s] * np.exp2(-(times[ends[s]] - times[starts[s]]) / h)
    return local + carry[seg_id] * np.exp2(-(times - times[starts[seg_id]]) / h)


@settings(max_examples=80, deadline=None)
@given(events, st.sampled_from([1, 3, 700, 10**6]))
def test_running_decay_to_the_bit(ev, half_life) -> None:
    # One epoch (700, 10**6: no segment ids, no carries), several with keys across them (1, 3), to the bit; times
    # of ~1 ms steps, as nanoseconds (not small integers, whose ratios to a half-life round alike whatever way).
    scale = 1_000_003
    tl = Timeline(np.array([e[0] for e in ev]), np.array([e[1] for e in ev], dtype=np.int64) * scale, 6)
    assert np.array_equal(tl._running_decay(half_life * scale),
                          _running_decay_reference(tl.codes, tl.times, half_life * scale))
    # Several epochs (512 ns), a key across them (its value carried on), and keys each inside one (nothing carried).
    for codes, times in (([0, 0, 0, 0, 0, 1], [500, 505, 510, 515, 1030, 0]),
                         ([0, 0, 1, 1, 2], [0, 7, 2000, 2011, 2900])):
        tl = Timeline(np.array(codes), np.array(times), 3)
        assert np.array_equal(tl._running_decay(1), _running_decay_reference(tl.codes, tl.times, 1))


@settings(max_examples=80, deadline=None)
@given(events, queries, st.sampled_from([1, 3, 700]), st.integers(1, 400))
def test_timeline_against_brute_force(ev, qs, half_life, window) -> None:
    codes, times = np.array([e[0] for e in ev]), np.array([e[1] for e in ev], dtype=np.int64)
    values = (times * 7919) % 101
    qc, qt = np.array([q[0] for q in qs]), np.array([q[1] for q in qs], dtype=np.int64)
    tl = Timeline(codes, times, 6)
    # Given its codes and times in key order already (as the pair table has them), the same timeline.
    again = Timeline(tl.codes, tl.times, 6, key_order=tl.order, presorted=True)
    assert all(np.array_equal(getattr(again, a), getattr(tl, a)) for a in ("order", "codes", "times", "starts"))
    lo, hi = tl.before(qc, qt)
    last_value = tl.at_last(tl.running_max(values), lo, hi, -1)
    decayed = tl.decayed(lo, hi, qt, half_life)
    since = tl.count_since(qc, qt - window, hi)
    days = tl.sorted_flags(tl.new_run(times // 100))
    assert np.array_equal(tl.new_period(100), tl.new_run(times // 100))  # read off the sorted times
    weights = (times % 5 == 0, (times % 7).astype(np.int8), (times % 3).astype(np.uint8))  # flags, narrow ints
    assert np.array_equal(tl.sorted_weights(weights), np.stack([w.astype(np.int64)[tl.order] for w in weights], axis=1))
    assert np.array_equal(tl.prefix(weights[1]), np.concatenate([[0], np.cumsum(weights[1][tl.order].astype(int))]))
    for i, (c, t) in enumerate(zip(qc, qt)):
        mine = (codes == c) & (times < t)  # strictly before: an event at the instant itself does not count
        assert hi[i] - lo[i] == mine.sum()
        assert since[i] == (mine & (times >= t - window)).sum()
        assert days[hi[i]] - days[lo[i]] == len(np.unique(times[mine] // 100))
        assert tl.first(lo, hi)[i] == (times[mine].min() if mine.any() else NAT)
        assert tl.last(lo, hi)[i] == (times[mine].max() if mine.any() else NAT)
        assert last_value[i] == (values[mine].max() if mine.any() else -1)
        expected = np.exp2(-(t - times[mine]) / half_life).sum()
        assert np.isclose(decayed[i], expected, rtol=1e-12, atol=0) or (expected < 1e-300 and decayed[i] < 1e-290)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 1, 7, 65535, 65536, 70000, 2**32 - 1, 2**32 + 5, 2**40]),
                          st.integers(0, 50)), max_size=80), st.booleans())
def test_code_order_sorts_by_code_then_time(rows, negative) -> None:
    # The radix passes (one per 16 bits of the largest code) against a comparison sort of (code, time, position);
    # negative codes (not a code space) take a comparison sort.
    codes = np.array([r[0] for r in rows], dtype=np.int64) * (-1 if negative else 1)
    times = np.array([r[1] for r in rows], dtype=np.int64)
    by_time = np.argsort(times, kind="stable")
    expected = np.lexsort((np.arange(len(rows)), times, codes))
    assert code_order(codes, by_time).tolist() == expected.tolist()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 70_000), st.integers(1, 20_000), st.sampled_from([3, 1000, 10**15]),
       st.sampled_from(["sorted", "shuffled", "uint64"]))
def test_merge_search_equals_searchsorted(seed, n_values, n_needles, span, case) -> None:
    # Sizes on both sides of the merge's thresholds (4096 needles, a sixteenth of the values); small spans make
    # ties between needles and values, which must land left of the equal values.
    rng = np.random.default_rng(seed)
    values = np.sort(rng.integers(0, span, n_values))
    needles = np.sort(rng.integers(-1, span + 1, n_needles))
    if case == "shuffled":  # out of order: the binary search, not a (wrong) merge
        rng.shuffle(needles)
    if case == "uint64":  # another dtype than the values': no concatenation into floats
        needles = needles.clip(0).astype(np.uint64)
    assert merge_search(values, needles).tolist() == np.searchsorted(values, needles, side="left").tolist()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 4), st.integers(0, 40), st.booleans()), min_size=1, max_size=60),
       st.booleans())
def test_timeline_of_rows_answers_each_row_at_its_own_time(rows, keep) -> None:
    # Rows asked about at their own (code, time), events among them or not (ties, keys without events),
    # against brute force and against the binary searches of the same timeline; with the rows' order
    # keeping the rows gathered (read as they are) or not (gathered by each walk).
    codes = np.array([r[0] for r in rows], dtype=np.int64)
    times = np.array([r[1] for r in rows], dtype=np.int64)
    events = np.array([r[2] for r in rows]) & (codes >= 0)
    tl = Timeline.of_rows(codes, times, 5, QueryOrder.of(codes, times, keep=keep), events)
    lo, hi = tl.before_own()
    assert np.array_equal(np.stack((lo, hi)), np.stack(tl.before(codes, times)))
    for i, (c, t) in enumerate(zip(codes, times)):
        mine = events & (codes == c) & (times < t)
        assert hi[i] - lo[i] == mine.sum()
        assert tl.last(lo, hi)[i] == (times[mine].max() if mine.any() else NAT)
    ordinary = Timeline(codes[events], times[events], 5)
    assert np.array_equal(tl.order, ordinary.order) and np.array_equal(tl.codes, ordinary.codes)
    assert np.array_equal(tl.times, ordinary.times) and np.array_equal(tl.starts, ordinary.starts)


@settings(max_examples=80, deadline=None)
@given(events, queries, st.integers(0, 400), st.booleans())
def test_timeline_with_a_query_order_against_brute_force(ev, qs, window, keep) -> None:
    # The sorted-query path: one QueryOrder reused for the instants and for window starts shifted from them
    # (an order keeping its queries gathered reads them for these instants, and gathers the shifted ones).
    codes, times = np.array([e[0] for e in ev]), np.array([e[1] for e in ev], dtype=np.int64)
    qc, qt = np.array([q[0] for q in qs], dtype=np.int64), np.array([q[1] for q in qs], dtype=np.int64)
    tl = Timeline(codes, times, 6)
    order = QueryOrder.of(qc, qt, keep=keep)
    if keep:  # kept for these very codes, and instants equal to these
        assert order.gathered(qc, qt.copy())[0] is order.queries[2]
        assert order.gathered(qc.copy(), qt)[0] is not order.queries[2]
        assert np.array_equal(order.gathered(qc, qt - window)[1], (qt - window)[order.by_key])
    assert sorted(order.by_time.tolist()) == list(range(len(qt)))
    lo, hi = tl.before(qc, qt, order)
    since = tl.count_since(qc, qt - window, hi, order)
    for i, (c, t) in enumerate(zip(qc, qt)):
        mine = (codes == c) & (times < t)
        assert hi[i] - lo[i] == mine.sum()
        assert since[i] == (mine & (times >= t - window)).sum()
    assert np.array_equal(np.stack(tl.before(qc, qt)), np.stack((lo, hi)))  # the same runs as without an order
    # Any permutation gives these answers; the order's job is speed: sorting the queries by (code, instant),
    # for the instants and every constant shift of them, lets one walk move each pointer forward only.
    lo2, his = tl.before_shifts(qc, qt, [0, window], order)
    assert np.array_equal(lo2, lo) and np.array_equal(his[0], hi) and np.array_equal(hi - his[1], since)
    for shift in (0, window):
        by_key = pd.DataFrame({"c": np.maximum(qc, 0)[order.by_key], "t": (qt - shift)[order.by_key]})
        assert by_key.equals(by_key.sort_values(["c", "t"], kind="stable"))
        assert (np.diff((qt - shift)[order.by_time]) >= 0).all()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.sampled_from([-1, 0, 1, 2]), st.sampled_from([None, 0, 3, 20])),
                min_size=1, max_size=25),
       st.lists(st.integers(0, 90), min_size=1, max_size=10), st.sampled_from(["presume_safe", "ignore"]))
def test_outcome_events_count_as_a_snapshot_does(rows, instants, policy) -> None:
    ts = np.array([r[0] for r in rows], dtype=np.int64)
    label = np.array([r[1] for r in rows], dtype=np.int8)
    labeled_at = np.array([NAT if r[2] is None else r[0] + r[2] for r in rows], dtype=np.int64)
    settle = 10
    ev = outcome_events(ts, label, labeled_at, settle_delay=settle, label_policy=policy)
    for q in instants:
        seen = ev["time"] < q
        # The snapshot's definitions (baselines/_events.py and _state.py), written out.
        known = (label >= 0) & (np.where(labeled_at == NAT, ts, labeled_at) < q) & (ts < q)
        presumed = (ts < q - settle) & ~known if policy == "presume_safe" else np.zeros(len(ts), bool)
        safe = ((label == 0) & known).sum() + presumed.sum()
        trials = known.sum() + presumed.sum()
        assert ev["safe"][seen].sum() == safe
        assert ev["trials"][seen].sum() == trials
        assert ev["explicit"][seen].sum() == known.sum()



@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.sampled_from([-1, 0, 1, 2]), st.sampled_from([None, 0, 3, 20])),
                max_size=25), st.sampled_from(["presume_safe", "ignore"]))
def test_outcome_events_are_the_changes_written_out_row_by_row(rows, policy) -> None:
    # Each column, dtype and order against the docstring's three kinds of change, listed row by row: the
    # labels, then the presumptions, then their withdrawals, each in row order.
    ts = np.array([r[0] for r in rows], dtype=np.int64)
    label = np.array([r[1] for r in rows], dtype=np.int8)
    labeled_at = np.array([NAT if r[2] is None else r[0] + r[2] for r in rows], dtype=np.int64)
    settle = 10
    labels, presumptions, withdrawals = [], [], []
    for i, (t, c, delay) in enumerate(rows):
        lt = t if delay is None else t + delay
        if c >= 0:
            labels.append((i, max(t, lt), int(c == 0), 1, c, 1))
        if policy == "presume_safe":
            if c < 0 or lt > t + settle:
                presumptions.append((i, t + settle, 1, 1, -1, 0))
            if c >= 0 and lt > t + settle:
                withdrawals.append((i, lt, -1, -1, -1, 0))
    expected = labels + presumptions + withdrawals
    ev = outcome_events(ts, label, labeled_at, settle_delay=settle, label_policy=policy)
    dtypes = {"row": np.int64, "time": np.int64, "safe": np.int64, "trials": np.int64, "label": np.int8,
              "explicit": np.int64}
    assert list(ev) == list(dtypes)
    for k, (name, dtype) in enumerate(dtypes.items()):
        assert ev[name].dtype == dtype
        assert ev[name].tolist() == [e[k] for e in expected], name

@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.sampled_from([-1, 0, 1, 2]), st.sampled_from([None, 0, 3, 20])),
                max_size=25), st.lists(st.tuples(st.integers(0, 30), st.booleans()), max_size=40))
def test_outcome_changes_are_outcome_events_of_the_kept_rows(rows, edges) -> None:
    # The same changes as outcome_events of the rows' messages (presume_safe), labels and withdrawals first,
    # each with its row's entity; the presumptions started flagged per row.
    ts = np.array([r[0] for r in rows], dtype=np.int64)
    label = np.array([r[1] for r in rows], dtype=np.int8)
    labeled_at = np.array([NAT if r[2] is None else r[0] + r[2] for r in rows], dtype=np.int64)
    edges = [(m % len(rows), kept) for m, kept in edges] if rows else []
    message = np.array([m for m, _ in edges], dtype=np.int64)
    keep = np.array([k for _, k in edges], dtype=bool)
    for msg, flags in ((None, None), (message, keep)):
        of_row = np.arange(len(rows)) if msg is None else np.compress(flags, msg)
        entity = 100 + 3 * np.arange(len(of_row) if msg is None else len(msg))
        ch = outcome_changes(ts, label, labeled_at, entity, settle_delay=10, message=msg, keep=flags, rows=True)
        ev = outcome_events(ts[of_row], label[of_row], labeled_at[of_row], settle_delay=10,
                            label_policy="presume_safe")
        cols = ch.columns
        assert all(cols[c].dtype == np.int8 for c in ("safe", "trials", "label", "explicit"))
        kept_entity = entity if msg is None else np.compress(flags, entity)
        assert cols["entity"].tolist() == kept_entity[cols["row"]].tolist()
        names = ("row", "time", "safe", "trials", "label", "explicit")
        assert sorted(zip(*(cols[c].tolist() for c in names))) == sorted(zip(*(ev[c].tolist() for c in names)))
        presumption = (cols["label"] < 0) & (cols["safe"] > 0)
        assert not presumption[:ch.few].any() and presumption[ch.few:].all()
        assert ch.started.tolist() == np.isin(np.arange(len(of_row)), cols["row"][ch.few:]).tolist()


# --------------------------------------------------------------------------- against snapshots

DOMAINS = ["acme.com", "vendor.com", "vendr.com", "globex.com", "initech.com", "gmail.com", "umbrella.org",
           "hooli.io", "stark.com", "wayne.com"]


@st.composite
def mail(draw) -> pd.DataFrame:
    n = draw(st.integers(3, 30))
    rows = []
    for i in range(n):
        outside = draw(st.sampled_from(DOMAINS[1:]))
        inbound = draw(st.booleans())
        rows.append({"tenant_id": draw(st.sampled_from(["a", "b", "c"])), "message_id": f"m{i}",
                     "timestamp": pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=draw(st.integers(0, 60))),
                     "sender": f"x{draw(st.integers(0, 2))}@{outside}" if inbound else "me@acme.com",
                     "recipients": "me@acme.com" if inbound else f"y{draw(st.integers(0, 2))}@{outside}",
                     "direction": "inbound" if inbound else draw(st.sampled_from(["outbound", "internal"])),
                     "label": draw(st.sampled_from([None, None, "safe", "attack", "spam"]))})
    return pd.DataFrame(rows)


TENANTS = [{"tenant_id": t, "own_domains": ["acme.com"]} for t in ("a", "b", "c")]


def _tenants(messages, config):
    batch = SignalBatch.from_messages(messages)
    columns = _columns(messages)
    return [_tenant(p, columns, config, "fresh", 1) for p in sorted(batch.by_tenant(), key=lambda p: p[0])]


@settings(max_examples=20, deadline=None)
@given(mail(), st.integers(1, 5))
def test_known_contacts_follow_the_snapshots(raw, limit) -> None:
    config = BaselineConfig(known_contact_domains=limit)
    messages = validate(raw, tenants=TENANTS)
    tenants = _tenants(messages, config)
    changes = [t.tables.known_contacts() for t in tenants]
    # Just after each message: the list with that message (and any tied with it) counted.
    instants = np.unique(np.concatenate([t.instants + 1 for t in tenants]))
    for instant in instants:
        snaps = build_baselines(messages, as_of=pd.Timestamp(int(instant), tz="UTC"), config=config)
        for t, (codes, times, signs) in zip(tenants, changes):
            expected = set(snaps[t.tenant_id].table("tenant")["known_contact_domains"].iloc[0])
            before = times < instant
            last = pd.DataFrame({"c": codes[before], "s": signs[before]}).groupby("c")["s"].last()
            assert {t.domain_names[c] for c in last.index[last.to_numpy() > 0]} == expected


@settings(max_examples=15, deadline=None)
@given(mail(), st.sampled_from(["presume_safe", "ignore"]))
def test_priors_follow_the_snapshots(raw, policy) -> None:
    # Thresholds low enough that some tenants fit their own prior and others borrow the pooled one.
    config = BaselineConfig(min_prior_entities=2, min_prior_labels=2, settle_delay="1d", label_policy=policy)
    messages = validate(raw, tenants=TENANTS)
    tenants = _tenants(messages, config)
    instants = np.unique(np.concatenate([t.instants for t in tenants]))
    kinds = ("sender", "sender_domain", "recipient")
    # At every message's instant; then at fewer instants, where the changes between them are merged per
    # entity: every third instant, and one nanosecond after every other one (between events).
    for j, asked in enumerate((instants, instants[::3], instants[1::2] + 1)):
        # Kinds fitted one batch each, and all in one batch (as the backfill asks): the same bits.
        outcomes = {k: [t.tables.outcomes(k) for t in tenants] for k in kinds}
        fitted = priors_at_kinds(outcomes, [asked] * len(tenants), config) if j % 2 else {
            k: priors_at(outcomes[k], [asked] * len(tenants), config) for k in kinds}
        for i, instant in enumerate(asked):
            snaps = build_baselines(messages, as_of=pd.Timestamp(int(instant), tz="UTC"), config=config)
            for kind in kinds:
                for t, (alpha, beta) in zip(tenants, fitted[kind]):
                    prior = snaps[t.tenant_id].priors[kind]
                    assert (alpha[i], beta[i]) == (prior["alpha"], prior["beta"]), (kind, t.tenant_id, instant)


def test_asof_tables_value_each_message_at_its_own_instant() -> None:
    raw = pd.DataFrame({"tenant_id": "a", "message_id": ["1", "2", "3", "4"],
                        "timestamp": ["2024-01-01T09:00Z", "2024-01-01T09:00Z", "2024-01-02T09:00Z",
                                      "2024-01-05T09:00Z"],
                        "sender": ["x@out.com", "x@out.com", "me@acme.com", "x@out.com"],
                        "recipients": ["me@acme.com", "you@acme.com", "x@out.com", "me@acme.com"]})
    messages = validate(raw, tenants=TENANTS)
    (t,) = _tenants(messages, BaselineConfig())
    assert isinstance(t.tables, AsOfTables)
    sender = t.tables.sender(t.instants)
    assert sender["n_messages"].tolist() == [0, 0, 0, 2]  # messages 1 and 2 tie: neither sees the other
    assert sender["n_distinct_recipients"].tolist() == [0, 0, 0, 2]
    counts, last = t.tables.written_to(t.instants)
    assert counts.tolist() == [0, 0, 0, 1] and last[3] == pd.Timestamp("2024-01-02T09:00Z").value
    assert t.tables.pair(t.instants)["n_reverse"].tolist() == [0, 0, 1, 1]  # me@acme.com wrote to x on day 2
    assert t.tables.replied(t.instants).tolist() == [False, False, True, True]
    assert "n_reverse" not in t.tables.pair(t.instants, reverse=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.lists(st.integers(0, 4), min_size=1, max_size=3, unique=True),
                          st.integers(0, 6), st.sampled_from([0, 1, 2])), min_size=1, max_size=25),
       st.integers(0, 3))
def test_pair_columns_against_brute_force(rows, shift) -> None:
    # Pairs numbered by sorting (sender, recipient) and reverse pairs found by a merge, against a direct count over
    # the edges; at each message's own instant (no search) and at instants shifted back (searches).
    ts = np.array([r[2] for r in rows], dtype=np.int64)
    addresses = np.array([11, 7, 3, 29, 5], dtype=np.uint64)  # keys in another order than their codes
    m = {"timestamp": ts, "sender_key": addresses[[r[0] for r in rows]],
         "sender_domain_key": np.ones(len(rows), np.uint64), "display_name_key": np.zeros(len(rows), np.uint64),
         "direction": np.array([r[3] for r in rows], dtype=np.int8), "label": np.full(len(rows), -1, np.int8),
         "labeled_at": np.full(len(rows), NAT),
         **{a: np.full(len(rows), -1, np.int8) for a in ("spf", "dkim", "dmarc")}}
    edge_message = np.array([i for i, r in enumerate(rows) for _ in r[1]])
    recipient = np.array([a for r in rows for a in r[1]])
    e = {"edge_message": edge_message, "recipient_key": addresses[recipient],
         "recipient_domain_key": np.ones(len(recipient), np.uint64)}
    tables = AsOfTables(m, e, BaselineConfig())
    sender = np.array([r[0] for r in rows])[edge_message]
    ets = ts[edge_message]
    for instants in (ts, ts - shift):
        q = instants[edge_message]
        cols = tables.pair(instants)
        replied = tables.replied(instants)
        for j in range(len(ets)):
            same = (sender == sender[j]) & (recipient == recipient[j]) & (ets < q[j])
            reverse = (sender == recipient[j]) & (recipient == sender[j]) & (ets < q[j])
            assert cols["n_messages"][j] == same.sum()
            assert cols["last_seen"][j] == (ets[same].max() if same.any() else NAT)
            assert cols["n_reverse"][j] == reverse.sum()
            assert replied[j] == reverse.any()


def test_rows_count_as_asked_at_their_own_times_only_when_every_instant_is_theirs() -> None:
    # The shortcut (first and last rows compared before the whole) answers as the whole comparison does.
    own = lambda instants, times: AsOfTables._own(None, instants, times)  # noqa: E731 (no state of the tables)
    times = np.array([5, 7, 7, 9, 12], np.int64)
    assert own(times, times) and own(times.copy(), times) and own(times[:0], times[:0].copy())
    for at in range(len(times)):  # one instant off, wherever it is (the middle: the whole comparison finds it)
        instants = times.copy()
        instants[at] -= 1
        assert not own(instants, times), at
    assert not own(times[:4], times) and not own(times, times[::-1].copy())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.lists(st.integers(0, 4), min_size=1, max_size=3, unique=True),
                          st.integers(0, 40), st.sampled_from([0, 1, 2])), min_size=1, max_size=30),
       st.integers(1, 15), st.booleans())
def test_query_orders_along_the_rows_own_time_order_sort_and_answer_as_a_sort_of_the_instants(rows, grid,
                                                                                                 shuffled) -> None:
    # Instants that never decrease with the rows' times (refresh boundaries, as deployed) are sorted by the rows'
    # own time order, not by a sort of their own: the queries still come out in (code, instant) order, and every
    # table answers as with the sort. Instants that do decrease (shuffled) take the sort.
    ts = np.array([r[2] for r in rows], dtype=np.int64)
    addresses = np.array([11, 7, 3, 29, 5], dtype=np.uint64)
    m = {"timestamp": ts, "sender_key": addresses[[r[0] for r in rows]],
         "sender_domain_key": np.array([r[0] % 2 for r in rows], np.uint64),
         "display_name_key": np.zeros(len(rows), np.uint64), "direction": np.array([r[3] for r in rows], np.int8),
         "label": np.full(len(rows), -1, np.int8), "labeled_at": np.full(len(rows), NAT),
         **{a: np.full(len(rows), -1, np.int8) for a in ("spf", "dkim", "dmarc")}}
    edge_message = np.array([i for i, r in enumerate(rows) for _ in r[1]])
    recipient = np.array([a for r in rows for a in r[1]])
    e = {"edge_message": edge_message, "recipient_key": addresses[recipient],
         "recipient_domain_key": np.ones(len(recipient), np.uint64)}
    instants = (ts // grid) * grid
    if shuffled:
        instants = instants[np.random.default_rng(len(rows)).permutation(len(rows))]
    tables, sorted_ = AsOfTables(m, e, BaselineConfig()), AsOfTables(m, e, BaselineConfig())
    sorted_._time_order = lambda instants: None  # (every order by a sort of the instants, as before)
    monotone = not shuffled or bool((instants[tables._by_time][1:] >= instants[tables._by_time][:-1]).all())
    assert (tables._time_order(instants) is not None) == monotone
    for codes in (tables.s, tables.d):
        by_key = tables._order(codes, instants).by_key
        assert sorted(by_key.tolist()) == list(range(len(rows)))
        keys = list(zip(codes[by_key].tolist(), instants[by_key].tolist()))
        assert keys == sorted(keys)
    for table in ("sender", "sender_domain", "recipient", "pair"):
        got, want = getattr(tables, table)(instants), getattr(sorted_, table)(instants)
        assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in got), table
