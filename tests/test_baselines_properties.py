"""Properties: merge of halves equals the whole, refresh equals rebuild, order never matters, bytes are stable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ipc_bytes, mail_frames

from commgraph.baselines import BaselineConfig, Decayed, KeyedAggregate, Windowed, build_baselines, refresh
from commgraph.graph import validate

START = pd.Timestamp("2024-03-01", tz="UTC")
CONFIG = BaselineConfig(windows=("1d", "3d"), half_life="1d", settle_delay="1d", global_prior=(2.0, 1.0))
TENANTS = [{"tenant_id": "acme", "own_domains": ["acme.com"]}, {"tenant_id": "beta", "own_domains": ["beta.org"]}]
ADDRESSES = ["ann@acme.com", "bob@acme.com", "cy@acme.com", "eve@evil.com", "v@vendor.com", "w@vendor.com",
             "x@beta.org", "y@beta.org"]


# --------------------------------------------------------------------------- the mergeable core

keys_st = st.lists(st.integers(0, 6), min_size=0, max_size=40)


@given(keys=keys_st, data=st.data())
def test_keyed_aggregate_merge_of_halves_equals_the_whole(keys, data) -> None:
    n = len(keys)
    values = {"n": np.array(data.draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n)), dtype=np.int64),
              "lo": np.array(data.draw(st.lists(st.integers(0, 99), min_size=n, max_size=n)), dtype=np.int64)}
    values["hi"] = values["lo"].copy()
    reducers = {"n": "sum", "lo": "min", "hi": "max"}
    k = np.array(keys, dtype=np.uint64)
    split = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    mask = np.array(split, dtype=bool)
    whole = KeyedAggregate.from_rows({"k": k}, values, reducers)
    a = KeyedAggregate.from_rows({"k": k[mask]}, {c: v[mask] for c, v in values.items()}, reducers)
    b = KeyedAggregate.from_rows({"k": k[~mask]}, {c: v[~mask] for c, v in values.items()}, reducers)
    assert a.merge(b).equals(whole)
    assert b.merge(a).equals(whole)  # commutative
    empty = KeyedAggregate.from_rows({"k": k[:0]}, {c: v[:0] for c, v in values.items()}, reducers)
    assert a.merge(empty).merge(b).equals(a.merge(empty.merge(b)))  # associative, with an identity


@given(times=st.lists(st.integers(0, 10**6), min_size=1, max_size=30), cut=st.integers(0, 10**6),
       later=st.integers(0, 10**6))
def test_decayed_merge_is_exact(times, cut, later) -> None:
    t = np.array(times, dtype=np.int64)
    keys = {"k": (t % 3).astype(np.uint64)}
    anchor = 10**6 + later
    direct = Decayed.from_rows(keys, {"n": np.ones(len(t))}, times=t, anchor=anchor, half_life=50_000)
    early, late = t < cut, t >= cut
    a = Decayed.from_rows({"k": keys["k"][early]}, {"n": np.ones(early.sum())}, times=t[early], anchor=cut,
                          half_life=50_000)
    b = Decayed.from_rows({"k": keys["k"][late]}, {"n": np.ones(late.sum())}, times=t[late], anchor=10**6,
                          half_life=50_000)
    assert a.merge(b).decay_to(anchor).aggregate.equals(direct.aggregate, rtol=1e-9)


@given(times=st.lists(st.integers(0, 100), min_size=1, max_size=30), as_of=st.integers(0, 120))
def test_windowed_matches_a_filter(times, as_of) -> None:
    t = np.array(times, dtype=np.int64)
    k = (t % 4).astype(np.uint64)
    got = Windowed({"k": k}, {"n": np.ones(len(t), np.int64)}, times=t, period=30).get(as_of).to_frame()
    keep = (t >= as_of - 30) & (t < as_of)
    expected = pd.Series(k[keep]).value_counts().sort_index()
    assert got["n"].tolist() == expected.tolist() and got["k"].tolist() == expected.index.tolist()


# --------------------------------------------------------------------------- build and refresh

def mail():
    return mail_frames(start=START, tenants=["acme", "beta"], addresses=ADDRESSES)


def _validate(frame: pd.DataFrame):
    return validate(frame, tenants=TENANTS, strict=False)


def _assert_same(a, b) -> None:
    from commgraph.baselines._snapshot import table_differences

    assert a.tenant_id == b.tenant_id and a.as_of == b.as_of
    assert table_differences(a, b) == []
    assert a.fingerprint == b.fingerprint


@settings(max_examples=40)
@given(frame=mail(), hours=st.lists(st.integers(0, 9 * 24), min_size=2, max_size=4, unique=True),
       whole=st.booleans())
def test_incremental_refresh_equals_a_full_rebuild(frame, hours, whole) -> None:
    m = _validate(frame)
    times = [START + pd.Timedelta(hours=h) for h in sorted(hours)]
    snaps = build_baselines(m, as_of=times[0], config=CONFIG)
    for prev, now in zip(times, times[1:]):
        if whole:
            new = m
        else:  # only the new mail and the labels that became known since prev
            f = frame
            sent = (f["timestamp"] >= prev) & (f["timestamp"] < now)
            labelled = f["label"].notna() & (f["labeled_at"].fillna(f["timestamp"]) >= prev)
            new = _validate(f[sent | labelled]) if (sent | labelled).any() else None
        snaps = {t: refresh(s, new, as_of=now) for t, s in snaps.items()}
    full = build_baselines(m, as_of=times[-1], config=CONFIG)
    for tenant, snap in full.items():
        _assert_same(snaps[tenant], snap)


@settings(max_examples=25)
@given(frame=mail(), seed=st.integers(0, 2**16), hours=st.integers(0, 9 * 24))
def test_input_order_never_matters_and_bytes_are_stable(frame, seed, hours) -> None:
    as_of = START + pd.Timedelta(hours=hours)
    a = build_baselines(_validate(frame), as_of=as_of, config=CONFIG)
    shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    b = build_baselines(_validate(shuffled), as_of=as_of, config=CONFIG)
    assert sorted(a) == sorted(b)
    for tenant in a:
        for name, table in a[tenant].tables.items():
            assert ipc_bytes(table) == ipc_bytes(b[tenant].tables[name]), name
        for name, table in a[tenant].state_tables().items():
            assert ipc_bytes(table) == ipc_bytes(b[tenant].state_tables()[name]), name


def test_refresh_refuses_going_back_in_time() -> None:
    frame = pd.DataFrame({"tenant_id": ["acme"], "message_id": ["1"], "timestamp": [START],
                          "sender": ["ann@acme.com"], "recipients": ["bob@acme.com"]})
    snap = build_baselines(_validate(frame), as_of=START + pd.Timedelta(days=1))["acme"]
    with pytest.raises(Exception, match="'as_of' parameter of refresh"):
        refresh(snap, None, as_of=START)


def test_refresh_reads_only_its_own_tenant() -> None:
    frame = pd.DataFrame({"tenant_id": ["acme", "beta"], "message_id": ["1", "1"],
                          "timestamp": [START, START + pd.Timedelta(hours=2)],
                          "sender": ["ann@acme.com", "x@beta.org"], "recipients": ["bob@acme.com", "y@beta.org"]})
    m = _validate(frame)
    empty = build_baselines(m, as_of=START)  # tenants exist, but no mail yet: empty snapshots
    assert sorted(empty) == ["acme", "beta"] and empty["acme"].table("tenant")["n_messages"].iloc[0] == 0
    assert empty["acme"].table("sender").empty
    acme = build_baselines(_validate(frame.iloc[:1]), as_of=START + pd.Timedelta(hours=1))["acme"]
    later = refresh(acme, m, as_of=START + pd.Timedelta(hours=3))
    assert later.table("tenant")["n_messages"].iloc[0] == 1
    assert later.table("sender")["sender"].tolist() == ["ann@acme.com"]


def test_a_subset_of_one_tenant_builds_that_tenant_alone() -> None:
    # Messages.for_tenant keeps the other tenants as unused categories of the
    # tenant column: they have no mail here, so no (empty) snapshot and no secret.
    frame = pd.DataFrame({"tenant_id": ["acme", "beta", "beta"], "message_id": ["1", "1", "2"],
                          "timestamp": [START] * 3, "sender": ["ann@acme.com", "x@beta.org", "x@beta.org"],
                          "recipients": ["bob@acme.com", "y@beta.org", "y@beta.org"]})
    m = _validate(frame)
    beta = m.for_tenant("beta")
    assert list(beta.edges()["tenant_id"].dtype.categories) == ["acme", "beta"]
    later = START + pd.Timedelta(hours=1)
    snaps = build_baselines(beta, as_of=later)
    assert list(snaps) == ["beta"] and snaps["beta"].table("tenant")["n_messages"].iloc[0] == 2
    assert snaps["beta"].equals(build_baselines(m, as_of=later)["beta"])
    private = build_baselines(beta, as_of=later, config=BaselineConfig(privacy=True), secrets={"beta": b"s" * 32})
    assert list(private) == ["beta"]


def test_worker_processes_give_the_same_snapshots() -> None:
    from commgraph.graph import generate

    g = generate(tenants=3, days=6, random_state=2, scale=0.1)
    m = validate(g.messages, tenants=g.tenants)
    one = build_baselines(m, as_of="2025-01-10T12:00Z", config=CONFIG)
    two = build_baselines(m, as_of="2025-01-10T12:00Z", config=CONFIG, n_jobs=2)
    assert sorted(one) == sorted(two)
    for tenant in one:
        _assert_same(one[tenant], two[tenant])
        for name, table in one[tenant].state_tables().items():
            assert ipc_bytes(table) == ipc_bytes(two[tenant].state_tables()[name]), name
    later = "2025-01-12T00:00Z"
    for tenant in one:  # a snapshot built in a worker refreshes like any other
        _assert_same(refresh(two[tenant], m, as_of=later), refresh(one[tenant], m, as_of=later))


def test_builds_with_workers_in_two_threads_each_get_their_own_snapshots(monkeypatch) -> None:
    # The workers read their job from one module-wide name: a second thread's build replaced it, so a call
    # as of 8 January could return snapshots as of the 11th (its future) or fail on the other's files.
    import multiprocessing
    import threading

    from commgraph.baselines import _build
    from commgraph.graph import generate

    g = generate(tenants=3, days=6, random_state=2, scale=0.02)
    m = validate(g.messages, tenants=g.tenants)
    instants = ("2025-01-08T00:00Z", "2025-01-11T00:00Z")
    expected = {at: build_baselines(m, as_of=at, config=CONFIG) for at in instants}
    both_ready, get_context = threading.Barrier(2, timeout=60), multiprocessing.get_context

    def together(method: str):  # each call forks its workers only once both have handed over their jobs
        both_ready.wait()
        return get_context(method)

    monkeypatch.setattr(_build.multiprocessing, "get_context", together)
    got: dict = {}

    def build(at: str) -> None:
        got[at] = build_baselines(m, as_of=at, config=CONFIG, n_jobs=2)

    threads = [threading.Thread(target=build, args=(at,)) for at in instants]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(instants)  # (an exception in a thread leaves its result out)
    for at, snapshots in got.items():
        for tenant, snapshot in snapshots.items():
            assert snapshot.as_of == expected[at][tenant].as_of
            _assert_same(snapshot, expected[at][tenant])
