"""How backfill writes its output: the fast paths of tenant-ordered input against the general ones.

Tenant-ordered input (each tenant's rows one run) has message values gathered
straight into the output rows; shuffled input goes through the general
scatter. Both must give the very same values, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from commgraph.graph import generate, validate
from commgraph.signals import SignalSet, backfill


@pytest.fixture(scope="module")
def history():
    g = generate(tenants=3, days=12, scale=0.01, random_state=7)
    return g.messages, g.tenants


@pytest.mark.parametrize("level", ["edge", "message"])
def test_tenant_ordered_and_shuffled_input_give_the_same_signals_bit_for_bit(history, level) -> None:
    raw, tenants = history
    ordered = backfill(validate(raw, tenants=tenants), level=level, prior_every="1D")
    shuffled = backfill(validate(raw.sample(frac=1.0, random_state=3), tenants=tenants), level=level,
                        prior_every="1D")
    keys = ["tenant_id", "message_id", "recipient"][:3 if level == "edge" else 2]
    assert list(ordered.columns) == list(shuffled.columns) == keys + SignalSet().names
    assert (ordered.dtypes == shuffled.dtypes).all()
    a = ordered.sort_values(keys, ignore_index=True)
    b = shuffled.sort_values(keys, ignore_index=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    # Not a trivial history: broadcast message values differ between edges of different messages.
    assert a["sender_messages_30d"].nunique() > 5 and a["sender_safe_likelihood"].nunique() > 5


def test_message_values_reach_every_edge_of_their_message(history) -> None:
    raw, tenants = history
    messages = validate(raw, tenants=tenants)
    edges = backfill(messages, prior_every="1D")
    per_message = backfill(messages, level="message", prior_every="1D")
    # Signals of message-level providers are the same at both levels, broadcast to each recipient.
    message_level = [s.name for p in SignalSet().providers if p.level == "message" for s in p.signals]
    joined = edges.merge(per_message, on=["tenant_id", "message_id"], suffixes=("", "_message"))
    assert len(joined) == len(edges)
    for name in message_level:
        assert np.array_equal(joined[name].to_numpy(), joined[f"{name}_message"].to_numpy(), equal_nan=True), name


def test_a_tenant_run_is_taken_as_views_equal_to_the_general_take(history) -> None:
    # Tenant-ordered input: each tenant's sub-batch is views of the batch's columns (no copies), with the
    # very values the general take (positions, edges found through a remap) gives.
    from commgraph.signals._batch import SignalBatch

    raw, tenants = history
    batch = SignalBatch.from_messages(validate(raw, tenants=tenants))
    parts = batch.by_tenant()
    assert len(parts) == 3
    for tenant, msgs, eds, sub in parts:
        general = batch.take(msgs, tenant=tenant)  # edges not given: found through the remap
        assert np.shares_memory(sub.timestamp, batch.timestamp) and np.shares_memory(sub.recipient_key,
                                                                                     batch.recipient_key)
        assert not np.shares_memory(general.timestamp, batch.timestamp)
        for name in ("timestamp", "sender_key", "sender_domain_key", "sender_domain_code", "display_name_key",
                     "direction", "spf", "dkim", "dmarc", "tenant_code", "edge_message", "recipient_key",
                     "message_rows"):
            assert np.array_equal(getattr(sub, name), getattr(general, name)), name
        assert sub.tenants == general.tenants == [tenant]


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.float32, np.float64])
def test_the_compiled_spread_gives_np_take_s_values(dtype) -> None:
    from commgraph.signals._backfill import _spread

    rng = np.random.default_rng(5)
    values = (rng.normal(size=50) * 40).astype(dtype)
    values[::7] = 0 if np.issubdtype(dtype, np.integer) else np.nan
    message = np.sort(rng.integers(0, 50, 300)).astype(np.int64)
    out = np.empty((2, 300), dtype)[1]  # a row of a block, as the output columns are
    _spread(values, message, out)
    assert out.tobytes() == np.take(values, message).tobytes()
    with pytest.raises(ValueError):
        _spread(values, message[1:], out)


def test_tenants_per_edge_by_runs_are_the_strings_taken(history) -> None:
    from commgraph.signals._signal_set import _per_edge

    raw, tenants = history
    for m in (validate(raw, tenants=tenants), validate(raw.sample(frac=1.0, random_state=3), tenants=tenants)):
        edges = m.edges(message_columns=())
        values, positions = m.frame["tenant_id"].array, edges["message_index"].to_numpy()
        taken, runs = values.take(positions), _per_edge(values, edges["tenant_id"].array, positions, min_rows=0)
        assert type(runs) is type(taken) and runs.dtype == taken.dtype
        assert runs._pa_array.type == taken._pa_array.type and runs._pa_array.equals(taken._pa_array)


@pytest.mark.parametrize("source,target", [(np.int64, np.int32), (np.float64, np.float32), (np.bool_, np.int8)])
def test_the_spread_casts_as_astype_does(source, target) -> None:
    from commgraph.signals._backfill import _spread

    rng = np.random.default_rng(9)
    if source is np.float64:
        values = np.concatenate([rng.normal(size=40) * 10.0 ** rng.integers(-45, 45, 40),
                                 [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300, 3.4028235677973366e38, 1e-320]])
    elif source is np.bool_:
        values = rng.random(48) < 0.5
    else:
        values = np.concatenate([rng.integers(-2**40, 2**40, 44), [2**31, -2**31 - 1, 2**63 - 1, -2**63]])
    message = rng.integers(0, len(values), 200).astype(np.int64)
    for given in (values, np.repeat(values, 2)[::2]):  # contiguous, and strided as a column of a block
        out = np.empty(200, target)
        _spread(given, message, out)
        with np.errstate(over="ignore"):  # (1e300 to float32: inf either way)
            assert out.tobytes() == given[message].astype(target).tobytes()


def test_message_codes_read_off_first_edges_equal_those_of_every_edge(history) -> None:
    from commgraph.signals._batch import _first_edges, _from_edges

    raw, tenants = history
    m = validate(raw.sample(frac=1.0, random_state=3), tenants=tenants)
    edges = m.edges(message_columns=())
    edge_message, n = edges["message_index"].to_numpy().astype(np.int64), len(m.frame)
    first = _first_edges(edge_message, n)
    assert first is not None and _first_edges(edge_message[::-1].copy(), n) is None
    assert _first_edges(edge_message[edge_message != 3], n) is None  # (a message without edges)
    for column in ("tenant_id", "sender_domain"):
        by_first, by_all = (_from_edges(edges[column].array, edge_message, n, f) for f in (first, None))
        assert by_first[0].tolist() == by_all[0].tolist() and list(by_first[1]) == list(by_all[1])


@pytest.mark.parametrize("never", [0.0, float("nan")])
def test_the_compiled_days_between_gives_numpy_s_bits(never) -> None:
    from commgraph.signals._builtin_sender import _days_between_numpy, days_between

    nat, top = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    rng = np.random.default_rng(11)
    ts = rng.integers(-10**18, 10**18, 500)
    then = ts - rng.integers(-10**15, 10**17, 500)  # earlier, and later (0 days)
    then[rng.random(500) < 0.3] = nat
    then[:5] = ts[:5]  # ties: 0 days
    edge = np.array([[0, nat], [nat, 0], [nat, nat], [top, nat + 1], [top, -1], [nat + 1, top], [1, 0], [0, 1],
                     [86_400 * 10**9 - 1, 0], [3 * 86_400 * 10**9 + 1, 0]], np.int64)
    cases = [(ts, then), (ts[:0], then[:0]), (ts[5:6], then[5:6]), (edge[:, 0].copy(), edge[:, 1].copy()),
             (ts[::2], then[::2])]  # (strided)
    for a, b in cases:
        expected = _days_between_numpy(a, b, never=never)
        got = days_between(a, b, never=never, compiled=True)
        assert got.dtype == np.float32 and got.tobytes() == expected.tobytes(), (a, b)


def test_tenants_of_ordered_input_are_told_by_bounds_as_the_stable_sorts_tell_them(history) -> None:
    # Tenant-ordered input skips the sorts: the same positions and bounds as stable sorts by tenant give.
    import dataclasses

    from commgraph.signals._batch import SignalBatch

    raw, tenants = history
    for m in (validate(raw, tenants=tenants), validate(raw.sample(frac=1.0, random_state=3), tenants=tenants)):
        batch = SignalBatch.from_messages(m)
        for b in (batch, dataclasses.replace(batch, tenant_code=np.zeros_like(batch.tenant_code)),
                  dataclasses.replace(batch, edge_message=batch.edge_message[::-1].copy()),
                  batch.take(np.arange(batch.n_messages)[::-1].copy())):
            codes, edge_tenant = b.tenant_code, b.tenant_code[b.edge_message]
            m_order, e_order = np.argsort(codes, kind="stable"), np.argsort(edge_tenant, kind="stable")
            expected = (m_order, np.searchsorted(codes[m_order], np.arange(len(b.tenants) + 1)), e_order,
                        np.searchsorted(edge_tenant[e_order], np.arange(len(b.tenants) + 1)))
            for got, want in zip(b._tenant_order(), expected):
                assert got.dtype == want.dtype and np.array_equal(got, want)


def test_the_compiled_last_rows_give_numpy_s_scatter() -> None:
    from commgraph.signals._backfill import _last_rows

    def scattered(codes, n):
        row = np.full(n, -1, np.int64)
        row[codes] = np.arange(len(codes))
        return row

    rng = np.random.default_rng(13)
    codes = rng.integers(0, 50, 2000)  # ties: each code's last position kept
    read_only = codes.copy()
    read_only.flags.writeable = False
    for given, n in ((codes, 50), (codes, 80), (codes[:0], 5), (codes[:0], 0), (codes[7:8], 50), (read_only, 50),
                     (codes[::3], 50), (codes.astype(np.int32), 50), (np.array([3, -1, 0, -2, 3]), 4)):
        got = _last_rows(given, n)
        assert got.dtype == np.int64 and np.array_equal(got, scattered(given, n)), (given, n)
    for bad in (np.array([0, 5, 1]), np.array([0, -6])):  # out of range: numpy's error
        with pytest.raises(IndexError):
            _last_rows(bad, 5)
