"""The build's row order and per-edge aggregates, against numpy's lexsort and plain pandas.

``build_graph`` orders rows by two counting sorts (``commgraph.graph._csr``);
these tests hold that order to ``np.lexsort`` and the aggregates to a pandas
groupby, on hypothesis-generated rows and past 65,536 nodes (where a key no
longer fits one 16-bit digit).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commgraph.graph import LABELS, build_graph, stable_keys
from commgraph.graph._csr import edge_label_counts, edge_times, group_pairs, pair_order


@st.composite
def rows(draw, max_nodes: int = 40, max_rows: int = 120):
    """Sender and recipient ids (repeats, self-loops, unused ids), times with ties, labels."""
    n_src = draw(st.integers(1, max_nodes))
    n_dst = draw(st.integers(1, max_nodes))
    n = draw(st.integers(0, max_rows))
    ids = st.lists(st.integers(0, n_src - 1), min_size=n, max_size=n)
    src = np.array(draw(ids), dtype=np.int32)
    dst = np.array(draw(st.lists(st.integers(0, n_dst - 1), min_size=n, max_size=n)), dtype=np.int32)
    ts = np.array(draw(st.lists(st.integers(0, 20), min_size=n, max_size=n)), dtype=np.int64)
    label = np.array(draw(st.lists(st.integers(-1, len(LABELS) - 1), min_size=n, max_size=n)), dtype=np.int8)
    return src, dst, n_src, n_dst, ts, label


def _check_order(src, dst, n_src, n_dst):
    p = pair_order(src, dst, n_src, n_dst)
    want = np.lexsort((dst, src))
    same = np.testing.assert_array_equal
    same(p.order, want)
    same(p.dst, dst[want])
    same(p.src_indptr, np.r_[0, np.cumsum(np.bincount(src, minlength=n_src))])
    same(p.dst_rows, np.argsort(dst, kind="stable"))
    same(p.dst_indptr, np.r_[0, np.cumsum(np.bincount(dst, minlength=n_dst))])


@settings(deadline=None)
@given(rows())
def test_pair_order_is_lexsort(case):
    src, dst, n_src, n_dst, _, _ = case
    _check_order(src, dst, n_src, n_dst)


def test_pair_order_past_65536_nodes():
    rng = np.random.default_rng(7)
    n_nodes, n = 300_000, 400_000
    # Zipf-heavy senders, so some senders hold many rows and many hold one.
    src = ((rng.zipf(1.3, n) - 1) % n_nodes).astype(np.int32)
    dst = rng.integers(0, n_nodes, n).astype(np.int32)
    _check_order(src, dst, n_nodes, n_nodes)


def _reference(src, dst, ts, label, n_src, n_dst) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The edges and the per-node facts with a pandas groupby."""
    frame = pd.DataFrame({"src": src, "dst": dst, "ts": ts, "row": np.arange(len(src))})
    for j, name in enumerate(LABELS):
        frame[name] = (label == j).astype(np.int64)
    edges = frame.groupby(["src", "dst"], sort=True).agg(
        count=("row", "size"), first=("ts", "min"), last=("ts", "max"), **{n: (n, "sum") for n in LABELS})
    everyone = range(max(n_src, n_dst))
    nodes = pd.DataFrame({
        "first_sent": frame.groupby("src")["row"].min().reindex(everyone, fill_value=-1),
        "last_sent": frame.groupby("src")["row"].max().reindex(everyone, fill_value=-1),
        "first_received": frame.groupby("dst")["row"].min().reindex(everyone, fill_value=-1),
        "last_received": frame.groupby("dst")["row"].max().reindex(everyone, fill_value=-1),
        "received": frame.groupby("dst").size().reindex(everyone, fill_value=0),
    })
    return edges, nodes


def _check_aggregates(src, dst, n_src, n_dst, ts, label, ts_sorted):
    g = group_pairs(src, dst, n_src, n_dst)
    first, last = edge_times(g, ts, ts_sorted=ts_sorted)
    label_counts = edge_label_counts(g, label)
    edges, nodes = _reference(src, dst, ts, label, n_src, n_dst)
    same = np.testing.assert_array_equal
    same(np.repeat(np.arange(n_src), np.diff(g.indptr)), edges.index.get_level_values("src"))
    same(g.indices, edges.index.get_level_values("dst"))
    assert g.indptr[-1] == len(g.indices) == len(g.count) == len(g.starts)
    same(g.count, edges["count"])
    same(first, edges["first"])
    same(last, edges["last"])
    same(label_counts, edges[list(LABELS)].to_numpy().reshape(-1, len(LABELS)))
    for side, n in (("sent", n_src), ("received", n_dst)):
        same(getattr(g, f"first_{side}"), nodes[f"first_{side}"].iloc[:n])
        same(getattr(g, f"last_{side}"), nodes[f"last_{side}"].iloc[:n])
    same(g.received, nodes["received"].iloc[:n_dst])
    # Each edge's rows, in increasing order, are the rows of that (src, dst) pair.
    rows_of_edge = np.split(g.order, g.starts[1:]) if len(g.starts) else []
    assert all((np.diff(r) > 0).all() for r in rows_of_edge)
    same([len(r) for r in rows_of_edge], g.count)


@settings(deadline=None)
@given(rows())
def test_aggregates_match_pandas(case):
    src, dst, n_src, n_dst, ts, label = case
    _check_aggregates(src, dst, n_src, n_dst, ts, label, ts_sorted=False)
    order = np.argsort(ts, kind="stable")  # the same rows in time order take the first/last-row shortcut
    _check_aggregates(src[order], dst[order], n_src, n_dst, ts[order], label[order], ts_sorted=True)


def test_aggregates_past_65536_nodes():
    rng = np.random.default_rng(11)
    n_nodes, n = 200_000, 300_000
    src = ((rng.zipf(1.3, n) - 1) % n_nodes).astype(np.int32)
    dst = ((rng.zipf(1.2, n) - 1 + rng.integers(0, n_nodes, n)) % n_nodes).astype(np.int32)
    ts = np.sort(rng.integers(0, 10**6, n))
    label = np.where(rng.random(n) < 0.05, rng.integers(0, len(LABELS), n), -1).astype(np.int8)
    _check_aggregates(src, dst, n_nodes, n_nodes, ts, label, ts_sorted=True)
    shuffled = rng.permutation(n)
    _check_aggregates(src[shuffled], dst[shuffled], n_nodes, n_nodes, ts[shuffled], label[shuffled], ts_sorted=False)


# --- the whole build ----------------------------------------------------------------------------


def _edges_frame(n_people: int, n_rows: int, seed: int) -> pd.DataFrame:
    """A one-tenant edges frame like ``Messages.edges()`` (categoricals over strings, uint64 keys)."""
    rng = np.random.default_rng(seed)
    addresses = pd.Series([f"p{i}@{'acme.com' if i % 3 else f'ext{i % 50}.org'}" for i in range(n_people)],
                          dtype="str")
    domains = addresses.str.split("@").str[1]
    keys = stable_keys(addresses)
    message = np.sort(rng.integers(0, n_rows * 2 // 3, n_rows))
    first = np.flatnonzero(np.r_[True, message[1:] != message[:-1]])
    s = np.repeat(((rng.zipf(1.3, len(first)) - 1) % n_people), np.diff(np.r_[first, n_rows]))
    r = ((rng.zipf(1.2, n_rows) - 1 + rng.integers(0, n_people, n_rows) * (rng.random(n_rows) < 0.5)) % n_people)
    ts = pd.Timestamp("2024-01-01", tz="UTC").value + message * 60_000_000_000
    internal_s, internal_r = (s % 3 > 0), (r % 3 > 0)
    direction = np.where(internal_s & internal_r, "internal", np.where(internal_s, "outbound", "inbound"))
    label = np.where(rng.random(n_rows) < 0.03, "attack", np.where(rng.random(n_rows) < 0.05, "spam", None))

    def categorical(values: pd.Series, codes: np.ndarray) -> pd.Categorical:
        return pd.Categorical.from_codes(codes, categories=pd.Index(values, dtype="str"))

    return pd.DataFrame({
        "tenant_id": pd.Categorical.from_codes(np.zeros(n_rows, dtype=np.int8), categories=["acme"]),
        "timestamp": pd.to_datetime(ts, utc=True).as_unit("ns"),
        "sender": categorical(addresses, s), "sender_domain": pd.Categorical(domains.to_numpy()[s]),
        "sender_key": keys[s],
        "recipient": categorical(addresses, r), "recipient_domain": pd.Categorical(domains.to_numpy()[r]),
        "recipient_key": keys[r],
        "direction": pd.Categorical(direction, categories=["inbound", "outbound", "internal"]),
        "message_index": message,
        "label": pd.Categorical(label, categories=list(LABELS)),
    })


def _values(column: pd.Series) -> np.ndarray:
    """A column as numpy values; UTC times as int64 nanoseconds (not an array of Timestamp objects)."""
    return column.array.asi8 if isinstance(column.dtype, pd.DatetimeTZDtype) else column.to_numpy()


@pytest.fixture(scope="module")
def big_edges() -> pd.DataFrame:
    return _edges_frame(n_people=150_000, n_rows=400_000, seed=3)


def test_build_past_65536_nodes_matches_pandas(big_edges):
    g = build_graph(big_edges, tenant_id="acme")
    assert g.n_nodes > 65_536
    e = big_edges.assign(sender=big_edges["sender"].astype(str), recipient=big_edges["recipient"].astype(str),
                         attack=(big_edges["label"] == "attack").astype(int), spam=(big_edges["label"] == "spam").astype(int))
    want = e.groupby(["sender", "recipient"]).agg(
        count=("timestamp", "size"), first_seen=("timestamp", "min"), last_seen=("timestamp", "max"),
        attack=("attack", "sum"), spam=("spam", "sum"))
    got = g.edges().set_index(["sender", "recipient"]).sort_index()
    assert got.index.equals(want.index)
    for column in ("count", "first_seen", "last_seen", "attack", "spam"):
        np.testing.assert_array_equal(_values(got[column]), _values(want[column]), err_msg=column)
    nodes = g.nodes.set_index("address")
    times = pd.concat([e[["sender", "timestamp"]].set_axis(["address", "t"], axis=1),
                       e[["recipient", "timestamp"]].set_axis(["address", "t"], axis=1)])
    span = times.groupby("address")["t"].agg(["min", "max"])
    assert nodes.index.sort_values().equals(span.index)
    np.testing.assert_array_equal(_values(nodes["first_seen"][span.index]), _values(span["min"]))
    np.testing.assert_array_equal(_values(nodes["last_seen"][span.index]), _values(span["max"]))
    received = e.groupby("recipient").size()
    np.testing.assert_array_equal(nodes["received"][received.index].to_numpy(), received.to_numpy())
    sent = e.drop_duplicates("message_index").groupby("sender").size()
    np.testing.assert_array_equal(nodes["sent"][sent.index].to_numpy(), sent.to_numpy())
    np.testing.assert_array_equal(g.nodes["key"].to_numpy(), np.sort(stable_keys(g.nodes["address"])))


def test_build_past_65536_nodes_any_row_order_or_column_type(big_edges):
    g = build_graph(big_edges, tenant_id="acme")
    shuffled = big_edges.sample(frac=1.0, random_state=5).reset_index(drop=True)
    assert build_graph(shuffled, tenant_id="acme").equals(g)
    plain = big_edges.assign(sender=big_edges["sender"].astype(str), recipient=big_edges["recipient"].astype(str))
    assert build_graph(plain, tenant_id="acme").equals(g)


def test_two_spellings_of_one_key_are_one_node():
    # Categories are distinct strings; two may carry one stable key (an address spelt twice upstream).
    # They are one node, named by its last row as a recipient, else its last row as a sender.
    cats = pd.Index(["ann@x.com", "ANN@x.com", "bob@x.com"], dtype="str")
    key = stable_keys(["ann@x.com", "bob@x.com"])
    sender = pd.Categorical.from_codes([0, 2, 1, 2], categories=cats)
    recipient = pd.Categorical.from_codes([2, 1, 2, 0], categories=cats)
    frame = pd.DataFrame({
        "timestamp": pd.to_datetime([1, 2, 3, 4], unit="D", utc=True).as_unit("ns"),
        "sender": sender, "sender_domain": "x.com", "sender_key": key[[0, 1, 0, 1]],
        "recipient": recipient, "recipient_domain": "x.com", "recipient_key": key[[1, 0, 1, 0]],
        "message_index": [0, 1, 2, 3], "direction": "internal",
    })
    g = build_graph(frame)
    assert g.n_nodes == 2
    assert g.nodes.set_index("key").loc[key[0], "address"] == "ann@x.com"  # row 3, its last as a recipient
    assert g.edge("ann@x.com", "bob@x.com")["count"] == 2
    assert g.edge("bob@x.com", "ann@x.com")["count"] == 2


def test_categories_that_disagree_with_keys_are_not_trusted(big_edges):
    # The categorical fast path reads one key per category; a row whose key is not its category's
    # (here: three messages' sender keys swapped for other addresses' keys) sends the build to the keys.
    edges = big_edges.copy()
    keys = edges["sender_key"].to_numpy().copy()
    message = edges["message_index"].to_numpy()
    for row, other in zip([5, 50_000, 300_000], [7, 8, 9]):
        keys[message == message[row]] = edges["recipient_key"].to_numpy()[other]  # one sender per message
    edges["sender_key"] = keys
    g = build_graph(edges, tenant_id="acme")
    plain = edges.assign(sender=edges["sender"].astype(str), recipient=edges["recipient"].astype(str))
    assert g.equals(build_graph(plain, tenant_id="acme"))
    assert g.n_nodes == len(np.unique(np.concatenate([keys, edges["recipient_key"].to_numpy()])))


# --- review fixes: messages of concatenated chunks, own domains ------------------------------


def _mail(senders: list[str], recipients: list[str], direction: str | None = "internal") -> pd.DataFrame:
    n = len(senders)
    df = pd.DataFrame({"tenant_id": "t", "message_id": [f"m{i}" for i in range(n)],
                       "timestamp": [f"2024-05-{1 + i % 28:02d}T09:00:00Z" for i in range(n)],
                       "sender": senders, "recipients": recipients})
    return df if direction is None else df.assign(direction=direction)


def _sent_reference(df: pd.DataFrame) -> dict:
    """Messages sent per sender, by plain pandas (distinct message ids)."""
    return df.groupby("sender")["message_id"].nunique().to_dict()


@settings(max_examples=40, deadline=None)
@given(senders=st.lists(st.sampled_from(["a@t.com", "b@t.com", "c@t.com"]), min_size=1, max_size=12),
       fanout=st.lists(st.integers(1, 3), min_size=12, max_size=12), chunksize=st.integers(1, 5))
def test_concatenated_chunk_edges_count_messages_like_messages_concat(senders, fanout, chunksize):
    # Before: message_index restarts in every chunk, so the concatenated edges of chunks merged unrelated
    # messages (f5: n_messages 2 instead of 6) while edge counts stayed right.
    from commgraph.graph import Messages, read_messages

    recipients = ["; ".join(f"r{j}@t.com" for j in range(k)) for k in fanout[:len(senders)]]
    df = _mail(senders, recipients)
    chunks = list(read_messages(df, chunksize=chunksize))
    edges = pd.concat([m.edges() for m in chunks], ignore_index=True)
    g = build_graph(edges)
    assert g.equals(build_graph(Messages.concat(chunks)))
    assert g.n_messages == len(df)
    sent = dict(zip(g.nodes["address"], g.nodes["sent"]))
    assert {a: s for a, s in sent.items() if s} == _sent_reference(df)


def test_message_index_shared_by_several_senders_is_refused():
    from commgraph.graph import SchemaError, read_messages

    df = _mail(["a@t.com", "b@t.com", "c@t.com", "b@t.com"], ["z@t.com"] * 4)
    edges = pd.concat([m.edges() for m in read_messages(df, chunksize=2)], ignore_index=True)
    with pytest.raises(SchemaError, match=r"column 'message_index'.*inconsistent_message.*rows 2.*Messages.concat"):
        build_graph(edges.drop(columns="message_id"))
    # One Messages' own edges (message_index exact) need no message_id.
    whole = next(iter([read_messages(df)]))
    assert build_graph(whole.edges().drop(columns="message_id")).n_messages == 4
    holes = edges.assign(message_id=edges["message_id"].where(edges.index != 3))
    with pytest.raises(SchemaError, match=r"column 'message_id'.*missing_value.*rows 3"):
        build_graph(holes)


def test_message_ids_number_messages_within_the_tenant_only():
    from commgraph.graph import read_messages

    df = pd.concat([_mail(["a@t.com", "b@t.com"], ["z@t.com"] * 2),
                    _mail(["a@u.com", "b@u.com"], ["z@u.com"] * 2).assign(tenant_id="u")], ignore_index=True)
    edges = pd.concat([m.edges() for m in read_messages(df, chunksize=1)], ignore_index=True)
    for tenant in ("t", "u"):
        g = build_graph(edges, tenant_id=tenant)
        assert g.n_messages == 2 and set(g.nodes.loc[g.nodes["sent"] > 0, "address"]) == {f"a@{tenant}.com",
                                                                                       f"b@{tenant}.com"}


def test_copies_of_a_message_validated_apart_are_refused_not_counted_twice():
    # Before: a message filed in two folders, its copies validated in two chunks apart, was counted twice by
    # build_graph over Messages.concat of the chunks (b sent 2, x and y received 2), and over their concatenated
    # edges its recipients twice but its sending once; validated together, the first copy is kept. Now both name
    # the copies, and each fix the error gives builds the graph of the whole.
    from commgraph.graph import Messages, SchemaError, read_messages, validate

    first = _mail(["a@t.com", "b@t.com"], ["x@t.com", "x@t.com; y@t.com"])
    second = pd.concat([first.iloc[[1]], _mail(["c@t.com"], ["z@t.com"]).assign(message_id="m9")],
                       ignore_index=True)  # (its row 0 is a copy of m1)
    whole = build_graph(validate(pd.concat([first, second], ignore_index=True), strict=False))
    assert dict(zip(whole.nodes["address"], whole.nodes["sent"])) == {
        "a@t.com": 1, "b@t.com": 1, "c@t.com": 1, "x@t.com": 0, "y@t.com": 0, "z@t.com": 0}
    assert whole.n_messages == 3 and whole.nodes["received"].sum() == 4
    parts = [validate(first), validate(second)]
    with pytest.raises(SchemaError, match=r"column 'message_id'.*duplicate_message_id \(rows 0; values 'm1'\).*"
                                          r"earlier part.*read_messages"):
        Messages.concat(parts)
    edges = pd.concat([p.edges() for p in parts], ignore_index=True)
    with pytest.raises(SchemaError, match=r"column 'message_id'.*duplicate_message_id \(rows 3, 4; values 'm1', "
                                          r"'m1'\).*recipient twice.*drop_duplicates"):
        build_graph(edges)
    assert build_graph(edges.drop_duplicates(["tenant_id", "message_id", "recipient_key"])).equals(whole)
    chunks = list(read_messages(pd.concat([first, second], ignore_index=True), chunksize=2, strict=False))
    assert build_graph(Messages.concat(chunks)).equals(whole)
    # A copy that disagrees (another time) cannot be one message either.
    later = pd.concat([p.edges() for p in (parts[0], validate(second.assign(timestamp="2024-05-20T09:00:00Z")))],
                      ignore_index=True)
    with pytest.raises(SchemaError, match=r"inconsistent_message \(rows 3, 4; .*differ in sender or timestamp"):
        build_graph(later)
    # Copies the caller means to join (the live overlay merges those it observes) are joined when asked.
    assert len(Messages.concat(parts, copies=True)) == 4



@pytest.mark.parametrize("as_of, window", [(None, None), ("2024-05-01T12:00Z", None), ("2024-05-02T12:00Z", None),
                                           ("2024-05-02T00:00Z", "36h")])
def test_copies_of_a_message_validated_apart_are_refused_with_as_of_and_window_too(as_of, window):
    # Before: with as_of or window, the rows left after the time filter (message_index 0, 0 for the two copies of
    # m0) looked like one Messages' edges, so message_index was trusted: 1 message, its edge counted twice. A part
    # holding one message gave the same without as_of. Now the number is trusted only if the whole frame agrees.
    from commgraph.graph import Messages, SchemaError, validate

    df = _mail(["a@t.com", "a@t.com", "b@t.com"], ["x@t.com", "x@t.com; y@t.com", "x@t.com"])
    twice = pd.concat([validate(df).edges(), validate(df).edges()], ignore_index=True)
    one_first = pd.concat([validate(df.iloc[:1]).edges(), validate(df).edges()], ignore_index=True)
    later = pd.concat([validate(df.iloc[:1].assign(timestamp="2024-05-01T10:00:00Z")).edges(), validate(df).edges()],
                      ignore_index=True)  # a copy that disagrees (another time)
    for edges, reason in ((twice, "duplicate_message_id"), (one_first, "duplicate_message_id"),
                          (later, "inconsistent_message")):  # (every as_of keeps both copies of m0)
        with pytest.raises(SchemaError, match=rf"column 'message_id'.*{reason}"):
            build_graph(edges, as_of=as_of, window=window)
    # One Messages' edges (or any rows of them) still count as the Messages do, and as plain pandas does.
    m = validate(df)
    start = None if as_of is None or window is None else pd.Timestamp(as_of) - pd.Timedelta(window)
    kept = df[[(as_of is None or pd.Timestamp(t) < pd.Timestamp(as_of)) and (start is None or pd.Timestamp(t) >= start)
               for t in df["timestamp"]]]
    for edges in (m.edges(), m.edges().iloc[1:]):
        g = build_graph(edges, as_of=as_of, window=window)
        want = kept[kept["message_id"].isin(edges["message_id"])]
        assert g.n_messages == len(want)
        assert int(g.edges()["count"].sum()) == int(edges["message_id"].isin(want["message_id"]).sum())
    assert build_graph(m.edges(), as_of=as_of, window=window).equals(build_graph(m, as_of=as_of, window=window))
    assert build_graph(Messages.concat([validate(df.iloc[:1]), validate(df.iloc[1:])]).edges(), as_of=as_of,
                       window=window).equals(build_graph(m, as_of=as_of, window=window))

def test_inbound_only_tenant_keeps_cc_partners_external():
    # Before: with all mail inbound, build_graph marked every recipient internal, partner@other.org included.
    from commgraph.graph import InferredOwnDomainsWarning, TenantConfig, validate

    df = _mail(["v@vendor.com", "eve@evil.io", "v@vendor.com"], ["ann@acme.com; partner@other.org",
                                                                 "ann@acme.com", "bob@acme.com"], direction=None)
    df["tenant_id"] = "acme"
    want = {"v@vendor.com": False, "eve@evil.io": False, "ann@acme.com": True, "bob@acme.com": True,
            "partner@other.org": False}
    configured = validate(df, tenants=[TenantConfig("acme", ("acme.com",))])
    assert configured.own_domains["acme"] == ("acme.com",)
    with pytest.warns(InferredOwnDomainsWarning, match=r"inferred \['acme.com'\]"):
        inferred = validate(df)
    assert inferred.own_domains["acme"] == ("acme.com",)
    for m in (configured, inferred, inferred.for_tenant("acme"), inferred.subset(np.ones(3, bool))):
        g = build_graph(m)
        assert dict(zip(g.nodes["address"], g.nodes["internal"])) == want
        assert g.own_domains == ("acme.com",)
        assert g.internal_subgraph().nodes["address"].tolist() == sorted(
            [a for a, v in want.items() if v], key=lambda a: g.nodes.set_index("address")["key"][a])
    # An edges frame does not know the own domains: the guess is the same, and is said.
    with pytest.warns(InferredOwnDomainsWarning, match=r"all inbound .* guessed \['acme.com'\]"):
        g = build_graph(configured.edges())
    assert dict(zip(g.nodes["address"], g.nodes["internal"])) == want
    # Direction given in full, no configuration: the Messages know no own domains either.
    given = validate(df.assign(direction="inbound"))
    assert given.own_domains == {}
    with pytest.warns(InferredOwnDomainsWarning, match="all inbound"):
        assert dict(zip(*build_graph(given).nodes[["address", "internal"]].to_numpy().T)) == want


def test_own_domains_are_normalised_like_tenant_configs():
    # Before: build_graph only lower-cased own_domains, so an IDN or a trailing dot made every node external.
    from commgraph.graph import ConfigError, TenantConfig, validate

    df = _mail(["a@bücher.de"], ["b@mail.bücher.de; x@y.org"], direction=None).assign(tenant_id="acme")
    m = validate(df, tenants=[{"tenant_id": "acme", "own_domains": ["bücher.de"]}])
    want = {"a@xn--bcher-kva.de": True, "b@mail.xn--bcher-kva.de": True, "x@y.org": False}
    for spelling in ("bücher.de", "BÜCHER.de", "xn--bcher-kva.de.", "xn--bcher-kva.de", "@bücher.de"):
        g = build_graph(m, own_domains=(spelling,))
        assert dict(zip(g.nodes["address"], g.nodes["internal"])) == want, spelling
        assert g.own_domains == TenantConfig.from_dict({"tenant_id": "x", "own_domains": [spelling.lstrip("@")]}
                                                       ).own_domains
    for bad, why in (("bü cher.de", "not a valid internationalised name"), ("co.uk", "public suffix"),
                     ("a_b..de", "not a host name")):
        with pytest.raises(ConfigError, match=rf"'own_domains' parameter of build_graph holds '{bad}'.*{why}"):
            build_graph(m, own_domains=(bad,))


def _hand_made_edges(**columns) -> pd.DataFrame:
    """Three rows of an edges frame as a user might build one (keys from the addresses)."""
    edges = pd.DataFrame({
        "tenant_id": ["acme", "acme", "acme"], "message_id": ["m1", "m2", "m3"],
        "timestamp": pd.to_datetime(["2024-05-01T09:00Z", "2024-05-02T09:00Z", "2024-05-03T09:00Z"], utc=True),
        "sender": ["ann@acme.com", "bob@vendor.com", "eve@other.org"],
        "sender_domain": ["acme.com", "vendor.com", "other.org"],
        "recipient": ["bob@vendor.com", "ann@acme.com", "ann@acme.com"],
        "recipient_domain": ["vendor.com", "acme.com", "acme.com"],
        "direction": ["outbound", "inbound", "inbound"]})
    edges["sender_key"], edges["recipient_key"] = stable_keys(edges["sender"]), stable_keys(edges["recipient"])
    return edges.assign(**columns)


def test_hand_made_edges_with_holes_are_refused_or_read_as_validation_would():
    from commgraph.graph import ConfigError, SchemaError

    # Keys alone (no addresses): accepted, then no node was internal and networkx merged every node into one.
    with pytest.raises(SchemaError, match=r"column 'sender': 3 rows missing_value .*give the addresses"):
        build_graph(_hand_made_edges(sender=None), own_domains=["acme.com"])
    # A missing direction was read as inbound: the tenant's own mailbox marked external, its domain guessed.
    with pytest.raises(SchemaError, match=r"column 'direction': 2 rows missing_value \(rows 0, 1\).*own_domains"):
        build_graph(_hand_made_edges(direction=[None, None, "inbound"]))
    # A row without a tenant was counted into the only tenant (but not with tenant_id=).
    holes = _hand_made_edges(tenant_id=["acme", "acme", None])
    assert build_graph(holes, own_domains=["acme.com"]).n_edges == 2 == build_graph(
        holes, tenant_id="acme", own_domains=["acme.com"]).n_edges
    # Integer tenant ids are compared as text (tenant '1' of an integer column matched no row: an empty graph).
    numbered = _hand_made_edges(tenant_id=[1, 1, 2])
    assert build_graph(numbered, tenant_id="1", own_domains=["acme.com"]).n_edges == 2
    with pytest.raises(ConfigError, match=r"'tenant_id' parameter of build_graph must be a tenant id as text, "
                                          r"such as '1'"):
        build_graph(numbered, tenant_id=1, own_domains=["acme.com"])
    # A number alone is no window (it was nanoseconds: an empty graph).
    for window in (30, "30", 86400.0):
        with pytest.raises(ConfigError, match="a number alone has no unit"):
            build_graph(_hand_made_edges(), as_of="2024-05-04T00:00Z", window=window)
    for window in ("2D", pd.offsets.Day(2), pd.Timedelta(days=2), np.timedelta64(2, "D")):
        assert build_graph(_hand_made_edges(), as_of="2024-05-04T00:00Z", window=window,
                           own_domains=["acme.com"]).n_edges == 2


def test_from_networkx_checks_label_counts_and_internal_flags_and_a_node_without_a_domain_has_a_view():
    import networkx as nx

    from commgraph.graph import ConfigError, from_networkx

    def graph(**edge):
        d = nx.DiGraph()
        d.add_edge("a@t.com", "b@x.org", count=2, **edge)
        return d

    for edge in ({"attack": -1}, {"spam": 7}, {"safe": 1.5}, {"safe": 1, "attack": 1, "spam": 1}):
        with pytest.raises(ConfigError, match="from_networkx"):  # -1 wrapped to 4294967295; 7 of 2 accepted
            from_networkx(graph(**edge), tenant_id="t")
    assert from_networkx(graph(safe=1, attack=1), tenant_id="t").edges()[["safe", "attack"]].values.tolist() == \
        [[1, 1]]
    flagged = graph()
    nx.set_node_attributes(flagged, "False", "internal")  # text: np.asarray(..., bool) made it True
    with pytest.raises(ConfigError, match="'internal' must be True or False"):
        from_networkx(flagged, tenant_id="t")
    nx.set_node_attributes(flagged, {"a@t.com": 1, "b@x.org": 0}, "internal")  # (as GML, which has no booleans)
    assert from_networkx(flagged, tenant_id="t").nodes["internal"].tolist() == [True, False]
    view = from_networkx(nx.DiGraph([("alice", "bob@x.com")]), tenant_id="t").domain_view()  # (crashed)
    assert view.edges()[["sender_domain", "recipient", "count"]].values.tolist() == [["", "bob@x.com", 1]]


def test_by_tenant_splits_as_for_tenant_does_each_tenant() -> None:
    # Scorer.observe split a batch with for_tenant once per tenant (every row compared once per tenant); by_tenant
    # splits it in one pass and must give each tenant exactly what for_tenant gives.
    from commgraph.graph import generate, validate

    mail = generate(tenants=4, days=3, scale=0.02, random_state=3)
    raw = mail.messages.copy()
    raw.loc[raw.index[::97], "sender"] = "not an address"  # some rejects, each its tenant's
    m = validate(raw.sample(frac=1.0, random_state=1), tenants=mail.tenants, strict=False)
    parts = m.by_tenant()
    assert list(parts) == m.tenants and len(m.rejects) > 0
    for tenant, part in parts.items():
        one = m.for_tenant(tenant)
        pd.testing.assert_frame_equal(part.frame, one.frame)
        pd.testing.assert_frame_equal(part.edges(), one.edges())
        pd.testing.assert_frame_equal(part.rejects, one.rejects)
        assert part.own_domains == one.own_domains
