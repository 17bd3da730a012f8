"""derive_many: the tables of several tenants derived together are, column by column and byte for byte, the
tables each tenant's own derive gives (tenants never mix, whatever their sizes, order or batches)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import mail_frames

from commgraph.baselines import BaselineConfig, build_baselines
from commgraph.baselines import _tables
from commgraph.baselines._events import empty_events
from commgraph.baselines._state import TenantState
from commgraph.baselines._tables import TABLES, derive_many, derive_tables
from commgraph.graph import validate

START = pd.Timestamp("2024-03-01", tz="UTC")
TENANTS = ["acme", "beta", "gamma", "solo"]
ADDRESSES = ["ann@acme.com", "bob@acme.com", "eve@evil.com", "v@vendor.com", "w@vendor.com", "x@beta.org",
             "g@gamma.net"]
CONFIG = dict(windows=("1d", "3d"), half_life="1d", settle_delay="1d", top_display_names=1, known_contact_domains=1)
SECRETS = {t: f"{t}-secret-0123456789".encode() for t in TENANTS}


def _column_bytes(column) -> tuple:
    """What a column is, to the byte: an Arrow column as the IPC bytes of a one-column table, numpy as its
    dtype, shape and buffer."""
    if isinstance(column, (pa.Array, pa.ChunkedArray)):
        table = pa.table({"c": column})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return ("arrow", sink.getvalue().to_pybytes())
    column = np.asarray(column)
    return ("numpy", column.dtype.str, column.shape, np.ascontiguousarray(column).tobytes())


def _states(frame: pd.DataFrame, as_of: pd.Timestamp, privacy: bool) -> list[TenantState]:
    tenants = [{"tenant_id": t, "own_domains": [f"{t}.com"]} for t in TENANTS]
    m = validate(frame, tenants=tenants, strict=False)
    config = BaselineConfig(**CONFIG, privacy=privacy)
    snapshots = build_baselines(m, as_of=as_of, config=config, secrets=SECRETS if privacy else None)
    return [snapshot.tenant_state() for snapshot in snapshots.values()]


def _empty(tenant: str) -> TenantState:
    return TenantState.build(tenant, empty_events(), as_of=START.value, windows=(86_400 * 10**9, 3 * 86_400 * 10**9),
                             settle_delay=86_400 * 10**9, half_life=86_400 * 10**9, names=None, fingerprint=0)


def _solo() -> pd.DataFrame:
    """A tenant with one message to one recipient and no label."""
    return pd.DataFrame({"tenant_id": ["solo"], "message_id": ["s1"], "timestamp": [START + pd.Timedelta(hours=1)],
                         "sender": ["eve@evil.com"], "recipients": ["ann@solo.com"], "label": [None],
                         "labeled_at": [pd.NaT]})


@settings(max_examples=40, deadline=None)
@given(frame=mail_frames(start=START, tenants=["acme", "acme", "beta", "gamma"], addresses=ADDRESSES,
                         max_messages=40, step_minutes=60, labels=(None, None, None, "safe", "attack")),
       hours=st.integers(0, 9 * 24), privacy=st.sampled_from(["off", "on", "mixed"]), data=st.data(),
       batch_rows=st.sampled_from([0, 40, 10**9]))
def test_derive_many_is_each_tenants_own_derive(frame, hours, privacy, data, batch_rows) -> None:
    as_of = START + pd.Timedelta(hours=hours)
    frame = pd.concat([frame, _solo()], ignore_index=True)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["labeled_at"] = pd.to_datetime(frame["labeled_at"], utc=True)
    states = _states(frame, as_of, privacy == "on")
    if privacy == "mixed":  # strings for some tenants, none for others: derived apart, in one call
        states += [s for s in _states(frame, as_of, True) if s.tenant_id in ("beta", "solo")]
    states += [_empty("nobody"), _empty("none-either")]  # tenants with no mail at all
    states = data.draw(st.permutations(states))
    config = BaselineConfig(**CONFIG, privacy=privacy != "off")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_tables, "DERIVE_BATCH_ROWS", batch_rows)  # one batch, a few, or every tenant alone
        together = derive_many(states, config)
    assert len(together) == len(states)
    for state, tables in zip(states, together):
        alone = derive_tables(state, config)
        assert list(tables) == list(alone) == list(TABLES)
        for name in TABLES:
            assert list(tables[name]) == list(alone[name]), (state.tenant_id, name)
            for column in alone[name]:
                assert _column_bytes(tables[name][column]) == _column_bytes(alone[name][column]), \
                    (state.tenant_id, name, column)
        assert tables["tenant"]["tenant_id"].to_pylist() == [state.tenant_id]


def test_tenants_never_mix() -> None:
    # The same sender in two tenants, each with its own counts: each tenant reads only its own (a lookup that
    # ran past its segment's end would find the next tenant's row with the same key).
    def mail(tenant: str, n: int) -> pd.DataFrame:
        return pd.DataFrame({"tenant_id": tenant, "message_id": [f"{tenant}{i}" for i in range(n)],
                             "timestamp": [START + pd.Timedelta(hours=i) for i in range(n)],
                             "sender": "eve@evil.com", "recipients": f"ann@{tenant}.com"})

    frame = pd.concat([mail("acme", 3), mail("beta", 5)], ignore_index=True)
    tenants = [{"tenant_id": t, "own_domains": [f"{t}.com"]} for t in ("acme", "beta")]
    m = validate(frame, tenants=tenants)
    states = [s.tenant_state() for s in build_baselines(m, as_of=START + pd.Timedelta(days=1)).values()]
    acme, beta = derive_many(states, BaselineConfig())
    assert acme["sender"]["n_messages"].tolist() == [3] and beta["sender"]["n_messages"].tolist() == [5]
    assert acme["sender"]["active_days"].tolist() == [1] and beta["tenant"]["n_messages"].tolist() == [5]
    assert acme["recipient"]["recipient"].to_pylist() == ["ann@acme.com"]
    assert beta["pair"]["recipient"].to_pylist() == ["ann@beta.com"]


def test_no_states_derive_nothing() -> None:
    assert derive_many([], BaselineConfig()) == []


@given(data=st.data(), n_segments=st.integers(1, 5))
def test_segment_lookups_counts_and_unions_are_numpy_on_each_segment(data, n_segments) -> None:
    from commgraph.baselines._segments import Factorized, align, count_by, union

    keys = st.lists(st.integers(0, 12), max_size=8)
    a_parts = [sorted(set(data.draw(keys))) for _ in range(n_segments)]
    b_parts = [sorted(set(data.draw(keys))) for _ in range(n_segments)]
    m_parts = [data.draw(st.lists(st.integers(0, 12), max_size=10)) for _ in range(n_segments)]

    def stacked(parts: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        return np.array([x for p in parts for x in p], dtype=np.uint64), np.cumsum([0] + [len(p) for p in parts])

    (a, ab), (b, bb), (m, mb) = stacked(a_parts), stacked(b_parts), stacked(m_parts)
    merged, merged_bounds, rows = union(a, ab, b, bb)
    aligned = align(a, ab, b, bb, np.arange(len(b)) + 100, -1)
    counts = count_by(a, ab, m, mb)
    factorized = Factorized(m, mb)
    assert merged[rows].tolist() == a.tolist()
    for i in range(n_segments):
        assert merged[merged_bounds[i]:merged_bounds[i + 1]].tolist() == np.union1d(a_parts[i], b_parts[i]).tolist()
        seg = slice(ab[i], ab[i + 1])
        assert aligned[seg].tolist() == [bb[i] + b_parts[i].index(k) + 100 if k in b_parts[i] else -1
                                         for k in a_parts[i]]
        assert counts[seg].tolist() == [m_parts[i].count(k) for k in a_parts[i]]
        distinct = factorized.distinct[factorized.bounds[i]:factorized.bounds[i + 1]]
        assert distinct.tolist() == sorted(set(m_parts[i]))
        assert factorized.distinct[factorized.codes[mb[i]:mb[i + 1]]].tolist() == m_parts[i]


#: Each string column and list of strings, with the key column (or list of keys) its strings are the names of.
STRING_COLUMNS = {"sender": [("sender", "sender_key"), ("display_names", "display_name_keys")],
                  "sender_domain": [("sender_domain", "sender_domain_key")],
                  "pair": [("sender", "sender_key"), ("recipient", "recipient_key")],
                  "recipient": [("recipient", "recipient_key")],
                  "display_name": [("display_name", "display_name_key"), ("addresses", "address_keys")],
                  "tenant": [("known_contact_domains", "known_contact_domain_keys")]}


@settings(max_examples=25, deadline=None)
@given(frame=mail_frames(start=START, tenants=["acme", "acme", "beta", "gamma"], addresses=ADDRESSES,
                         max_messages=40, step_minutes=60, labels=(None, "safe")),
       hours=st.integers(0, 9 * 24), data=st.data(), drop_sender=st.booleans())
def test_every_string_is_the_name_of_its_key(frame, hours, data, drop_sender) -> None:
    # Strings are looked up once and reused by rows of other columns (a list's names, a table's): each one is
    # still the name of the key beside it, by a plain dict of the tenant's names. A pair's or display name's
    # sender takes the sender table's string; one without a row there (dropped here) is looked up.
    frame = pd.concat([frame, _solo()], ignore_index=True)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["labeled_at"] = pd.to_datetime(frame["labeled_at"], utc=True)
    states = data.draw(st.permutations(_states(frame, START + pd.Timedelta(hours=hours), False)))
    if drop_sender:
        senders = states[0].lifetime["sender"]
        kept = np.arange(len(senders)) != data.draw(st.integers(0, max(len(senders) - 1, 0)))
        states[0] = dataclasses.replace(states[0], lifetime={**states[0].lifetime, "sender": senders.take(kept)})
    for state, tables in zip(states, derive_many(states, BaselineConfig(**CONFIG))):
        name_of = dict(zip(state.names["key"].tolist(), state.names["value"].to_pylist()))
        for table, pairs in STRING_COLUMNS.items():
            for strings, keys in pairs:
                got, key_values = tables[table][strings].to_pylist(), tables[table][keys]
                key_values = key_values.to_pylist() if isinstance(key_values, pa.Array) else key_values.tolist()
                expected = [[name_of.get(k) for k in ks] if isinstance(ks, list) else name_of.get(ks)
                            for ks in key_values]
                assert got == expected, (state.tenant_id, table, strings)


@given(segments=st.lists(st.sets(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=25), max_size=5),
       plain_keys=st.booleans(), table_keys=st.sampled_from([0, 6, 10**9]))
def test_reverse_pairs_are_each_tenants_own(segments, plain_keys, table_keys) -> None:
    # Each pair's reverse, found by a look-up of one side of the address order among the other's, is the row a
    # plain dict of the tenant's own pairs gives (a pair of an address with itself is its own reverse), whether
    # tenants share a hash table or not. Plain keys (16 * sender + recipient) meet other tenants' once XOR-ed
    # with the tenant's number: looked up tenant by tenant then.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_tables, "REVERSE_TABLE_KEYS", table_keys)  # each tenant alone, a few together, or all
        if plain_keys:
            patch.setattr(_tables, "pair_keys", lambda s, r: (s * np.uint64(16) + r).astype(np.uint64))
        _check_reverse_pairs(segments)


def _check_reverse_pairs(segments: list[set[tuple[int, int]]]) -> None:
    parts = [sorted(pairs) for pairs in segments]
    ps = np.array([s for p in parts for s, _ in p], dtype=np.uint64)
    pr = np.array([r for p in parts for _, r in p], dtype=np.uint64)
    bounds = np.cumsum([0] + [len(p) for p in parts])
    expected = []
    for lo, part in zip(bounds, parts):
        row = {pair: lo + i for i, pair in enumerate(part)}
        expected += [row.get((r, s), -1) for s, r in part]
    assert _tables._reverse_pairs(_tables.pair_keys(ps, pr), ps, pr, bounds).tolist() == expected


def _ipc(array: pa.Array) -> bytes:
    return _column_bytes(array)[1]


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 9), min_size=1, max_size=6), data=st.data(),
       string_type=st.sampled_from([pa.string(), pa.large_string()]))
def test_column_parts_are_the_bytes_of_each_segments_own_arrays(sizes, data, string_type) -> None:
    # Each segment's array, put together from its share of buffers made once for all segments, has the IPC bytes
    # of the array made from that segment alone the plain way (one pa.array, take or from_arrays per segment).
    from commgraph.baselines._columns import Hours, Lists, Strings, Timestamps

    edges = np.cumsum([0] + sizes).tolist()
    n = edges[-1]
    names = pa.array(data.draw(st.lists(st.sampled_from(["", "a", "bc", "déf", None]), min_size=1, max_size=6)),
                     string_type)
    pos = np.array(data.draw(st.lists(st.integers(0, len(names) - 1), min_size=n, max_size=n)), np.int64)
    found = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    stamps = np.array(data.draw(st.lists(st.sampled_from([-1, 0, 5, 2**40]), min_size=n, max_size=n)), np.int64)
    hours = np.arange(n * 24, dtype=np.int64).reshape(n, 24)
    lengths = data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    offsets = np.cumsum([0] + lengths)
    counts = np.arange(offsets[-1], dtype=np.int32) * 3
    strings = Strings(names, np.resize(pos, offsets[-1]), np.resize(found, offsets[-1]))
    got = {"strings": Strings(names, pos, found).parts(edges), "stamps": Timestamps(stamps, -1).parts(edges),
           "hours": Hours(hours).parts(edges), "counts": Lists(offsets, counts, pa.int32()).parts(edges),
           "names": Lists(offsets, strings, pa.string()).parts(edges)}
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        start, end = offsets[lo], offsets[hi]
        list_offsets = pa.array((offsets[lo:hi + 1] - start).astype(np.int32))
        own = {"strings": names.take(pa.array(pos[lo:hi], mask=~found[lo:hi])),
               "stamps": pa.array(stamps[lo:hi], pa.timestamp("ns", tz="UTC"), mask=stamps[lo:hi] == -1),
               "hours": pa.FixedSizeListArray.from_arrays(pa.array(hours[lo:hi].astype(np.int32).ravel()), 24),
               "counts": pa.ListArray.from_arrays(list_offsets, pa.array(counts[start:end])),
               "names": pa.ListArray.from_arrays(list_offsets, strings.values.take(
                   pa.array(strings.pos[start:end], mask=~strings.found[start:end])))}
        for column, array in own.items():
            assert got[column][i].equals(array), (column, i)
            assert _ipc(got[column][i]) == _ipc(array), (column, i)
