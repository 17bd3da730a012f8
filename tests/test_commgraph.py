"""CommGraph: the build, point-in-time windows, lookups, views and the bridges to networkx/scipy."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commgraph.graph import (
    CommGraph, CommGraphError, ConfigError, SchemaError, build_graph, from_networkx, stable_keys, to_networkx,
    to_scipy, validate,
)

OWN = [{"tenant_id": "acme", "own_domains": ["acme.com"]}, {"tenant_id": "beta", "own_domains": ["beta.org"]}]


@pytest.fixture(scope="module")
def messages():
    return validate(pd.DataFrame({
        "tenant_id": ["acme"] * 6 + ["beta"],
        "message_id": ["m1", "m2", "m3", "m4", "m5", "m6", "m1"],
        "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z", "2024-05-10T09:00Z", "2024-05-20T09:00Z",
                      "2024-05-21T09:00Z", "2024-06-01T09:00Z", "2024-05-01T09:00Z"],
        "sender": ["ann@acme.com", "bob@vendor.com", "ann@acme.com", "eve@evil.io", "ann@mail.acme.com",
                   "bob@vendor.com", "x@beta.org"],
        "recipients": ["bob@vendor.com; cy@acme.com", "ann@acme.com", "bob@vendor.com", "ann@acme.com; cy@acme.com",
                       "ann@mail.acme.com", "cy@acme.com", "y@beta.org"],
        "label": [None, "safe", None, "attack", None, "spam", None],
        "labeled_at": [None, "2024-05-03T00:00Z", None, "2024-05-25T00:00Z", None, "2024-06-02T00:00Z", None],
    }), tenants=OWN)


def test_build_counts_times_labels(messages):
    g = build_graph(messages, tenant_id="acme")
    e = g.edges().set_index(["sender", "recipient"])
    assert e.loc[("ann@acme.com", "bob@vendor.com"), "count"] == 2
    assert e.loc[("ann@acme.com", "bob@vendor.com"), "first_seen"] == pd.Timestamp("2024-05-01T09:00Z")
    assert e.loc[("ann@acme.com", "bob@vendor.com"), "last_seen"] == pd.Timestamp("2024-05-10T09:00Z")
    assert e.loc[("eve@evil.io", "cy@acme.com"), "attack"] == 1
    assert e.loc[("bob@vendor.com", "ann@acme.com"), "safe"] == 1
    assert e.loc[("ann@mail.acme.com", "ann@mail.acme.com"), "count"] == 1  # a self-loop is an edge
    n = g.nodes.set_index("address")
    assert n.loc["ann@acme.com", "sent"] == 2 and n.loc["ann@acme.com", "received"] == 2
    assert n.loc["eve@evil.io", "sent"] == 1 and n.loc["cy@acme.com", "received"] == 3
    assert n.loc["ann@mail.acme.com", "domain"] == "acme.com"
    assert n.loc["cy@acme.com", "first_seen"] == pd.Timestamp("2024-05-01T09:00Z")
    assert n.loc["cy@acme.com", "last_seen"] == pd.Timestamp("2024-06-01T09:00Z")
    assert g.nodes["key"].tolist() == sorted(g.nodes["key"].tolist())
    assert g.nodes["key"].tolist() == stable_keys(g.nodes["address"]).tolist()
    assert g.n_messages == 6 and g.n_edges == int(g.adjacency.nnz) and g.adjacency.has_sorted_indices


def test_internal_from_own_domains_and_inferred(messages):
    inferred = build_graph(messages, tenant_id="acme").nodes.set_index("address")["internal"]
    given_ = build_graph(messages, tenant_id="acme", own_domains=("acme.com",)).nodes.set_index("address")["internal"]
    assert given_.to_dict() == {a: a.endswith("acme.com") for a in given_.index}  # subdomains count
    assert inferred.to_dict() == given_.to_dict()
    other = build_graph(messages, tenant_id="acme", own_domains=("vendor.com",)).nodes.set_index("address")
    assert other["internal"].to_dict() == {a: a == "bob@vendor.com" for a in other.index}


def test_as_of_and_window_are_point_in_time(messages):
    g = build_graph(messages, tenant_id="acme", as_of="2024-05-20T09:00Z")
    assert set(g.edges()["sender"]) == {"ann@acme.com", "bob@vendor.com"}  # strictly before as_of
    w = build_graph(messages, tenant_id="acme", as_of="2024-05-22T00:00Z", window="5D")
    assert sorted(zip(w.edges()["sender"], w.edges()["recipient"])) == [
        ("ann@mail.acme.com", "ann@mail.acme.com"), ("eve@evil.io", "ann@acme.com"), ("eve@evil.io", "cy@acme.com")]
    # The attack label became known on 05-25: not before.
    assert w.edges()["attack"].sum() == 0
    assert build_graph(messages, tenant_id="acme", as_of="2024-05-26T00:00Z").edges()["attack"].sum() == 2
    assert build_graph(messages, tenant_id="acme").edges()["spam"].sum() == 1
    assert "as of 2024-05-22 00:00 UTC, window 5d;" in repr(w)


def test_edges_frame_input_equals_messages_input(messages):
    edges = messages.edges().copy()
    frame = messages.frame.reset_index(drop=True)
    edges["label"] = frame["label"].take(edges["message_index"]).to_numpy()
    edges["labeled_at"] = frame["labeled_at"].take(edges["message_index"]).to_numpy()
    a = build_graph(messages, tenant_id="acme", as_of="2024-05-30T00:00Z")
    # Messages carry the own domains validation used; an edges frame is given them.
    b = build_graph(edges, tenant_id="acme", as_of="2024-05-30T00:00Z", own_domains=messages.own_domains["acme"])
    assert a.own_domains == ("acme.com",) and a.equals(b)
    # Without them the frame's direction decides internal, here to the same nodes.
    by_direction = build_graph(edges, tenant_id="acme", as_of="2024-05-30T00:00Z")
    assert by_direction.own_domains is None and by_direction.nodes.equals(a.nodes)


def test_plain_string_columns_equal_categorical_columns(messages):
    # build_graph has a fast path for Messages.edges()'s categoricals; plain columns must give the same graph.
    edges = messages.edges()
    plain = edges.assign(sender=edges.sender.astype(str), recipient=edges.recipient.astype(str))
    every = edges.assign(**{c: edges[c].astype(str) for c in
                            ("tenant_id", "sender", "recipient", "sender_domain", "recipient_domain", "direction")})
    for kwargs in ({}, {"as_of": "2024-05-22T00:00Z", "window": "30D"}, {"own_domains": ("acme.com",)}):
        expected = build_graph(edges, tenant_id="acme", **kwargs)
        assert build_graph(plain, tenant_id="acme", **kwargs).equals(expected)
        assert build_graph(every, tenant_id="acme", **kwargs).equals(expected)


@settings(max_examples=25, deadline=None)
@given(st.randoms(use_true_random=False))
def test_row_order_never_matters(messages, rnd):
    edges = messages.edges()
    order = list(range(len(edges)))
    rnd.shuffle(order)
    shuffled = edges.iloc[order].reset_index(drop=True)
    assert build_graph(shuffled, tenant_id="acme").equals(build_graph(edges, tenant_id="acme"))


def test_errors_name_what_was_expected_and_what_arrived(messages):
    with pytest.raises(ConfigError, match=r"2 tenants \['acme', 'beta'\]; pass tenant_id="):
        build_graph(messages)
    with pytest.raises(CommGraphError, match=r"tenant 'zeta' has no edges here; tenants present: \['acme', 'beta'\]"):
        build_graph(messages, tenant_id="zeta")
    edges = messages.edges()
    with pytest.raises(SchemaError, match=r"column 'recipient_key': .*missing_column.*columns present: \[") as err:
        build_graph(edges.drop(columns=["recipient_key"]), tenant_id="acme")
    assert err.value.reasons == ["missing_column"]
    with pytest.raises(SchemaError, match=r"sender_key.*expected uint64"):
        build_graph(edges.assign(sender_key=edges["sender_key"].astype("int64")), tenant_id="acme")
    with pytest.raises(ConfigError, match="without as_of"):
        build_graph(messages, tenant_id="acme", window="30D")
    with pytest.raises(ConfigError, match="'window' parameter of build_graph must be a timedelta > 0"):
        build_graph(messages, tenant_id="acme", as_of="2024-05-01T00:00Z", window="-1D")
    with pytest.raises(ConfigError, match="'own_domains' parameter of build_graph must be a sequence"):
        build_graph(messages, tenant_id="acme", own_domains="acme.com")
    with pytest.raises(ConfigError, match="own_domains=.* or a 'direction' column"):
        build_graph(edges.drop(columns=["direction"]), tenant_id="acme")
    with pytest.raises(SchemaError, match="phish"):
        build_graph(edges.assign(label="phish"), tenant_id="acme")
    with pytest.raises(ConfigError, match="Messages object or an edges DataFrame"):
        build_graph([1, 2], tenant_id="acme")
    # Counts that cannot be: refused, where they answered wrongly (a batch of -1 senders left every pair
    # unreachable, a node from itself too; top_correspondents(-1) listed all nodes but one).
    from commgraph.graph import pairwise_hop_distance

    g = build_graph(messages, tenant_id="acme")
    node = g.nodes["address"].iloc[0]
    assert pairwise_hop_distance(g, [node], [node], batch_size=1).tolist() == [0]
    for bad in (-1, 0, 1.5, True):
        with pytest.raises(ConfigError, match=r"'batch_size' parameter of pairwise_hop_distance must be an int >= 1"):
            pairwise_hop_distance(g, [node], [node], batch_size=bad)
    with pytest.raises(ConfigError, match=r"'n' parameter of top_correspondents must be an int >= 0. Got -1"):
        g.top_correspondents(-1)
    assert g.top_correspondents(0).empty and len(g.top_correspondents(2)) == 2


def test_naive_as_of_is_utc_as_baselines_and_scoring_read_it(messages):
    # Before: build_graph refused a naive as_of ('must carry a time zone') that build_baselines, the refresh
    # job and scoring all read as UTC.
    from commgraph.baselines import build_baselines

    naive = build_graph(messages, tenant_id="acme", as_of="2024-05-20T09:30", window="11D")
    assert naive.equals(build_graph(messages, tenant_id="acme", as_of="2024-05-20T09:30Z", window="11D"))
    assert naive.as_of == build_baselines(messages, as_of="2024-05-20T09:30")["acme"].as_of
    assert naive.n_messages == 2  # m3 and m4 (2024-05-10 and 2024-05-20 09:00 UTC)
    assert build_graph(messages, tenant_id="acme", as_of=pd.Timestamp("2024-05-20 09:30")).n_messages == 4


def test_lookups_by_address_key_and_id(messages):
    g = build_graph(messages, tenant_id="acme")
    i = g.node_id("cy@acme.com")
    assert g.node_id(np.uint64(g.nodes["key"].iat[i])) == i == g.node_id(i)
    assert g.node_ids(stable_keys(["cy@acme.com", "zz@acme.com"])).tolist() == [i, -1]
    assert g.edge_ids(["ann@acme.com", "cy@acme.com"], ["cy@acme.com", "ann@acme.com"]).tolist()[1] == -1
    assert g.wrote_back(["ann@acme.com", "eve@evil.io"], ["bob@vendor.com", "ann@acme.com"]).tolist() == [True, False]
    assert sorted(g.nodes["address"].iloc[g.predecessors("cy@acme.com")]) == [
        "ann@acme.com", "bob@vendor.com", "eve@evil.io"]
    # The reverse adjacency points at the same per-edge arrays.
    rev = g.reverse_adjacency
    e = g.edge_ids(["bob@vendor.com"], ["cy@acme.com"])[0]
    row = rev[[i], :]
    assert e in row.data.tolist()
    with pytest.raises(CommGraphError, match="no edge 'cy@acme.com' -> 'ann@acme.com'"):
        g.edge("cy@acme.com", "ann@acme.com")
    with pytest.raises(CommGraphError, match=r"node ids must be in \[0,"):
        g.node_ids([10**6])


def test_views(messages):
    g = build_graph(messages, tenant_id="acme")
    internal = g.internal_subgraph()
    assert sorted(internal.nodes["address"]) == ["ann@acme.com", "ann@mail.acme.com", "cy@acme.com"]
    assert set(internal.edges()["sender"]) == {"ann@acme.com", "ann@mail.acme.com"}
    d = g.domain_view().edges()
    raw = messages.edges()
    raw = raw[raw["tenant_id"] == "acme"]
    want = raw.groupby(["sender_domain", "recipient"], observed=True).size()
    got = d.set_index(["sender_domain", "recipient"])["count"]
    assert got.sort_index().to_dict() == want.sort_index().to_dict()


def test_repr_and_html(messages):
    g = build_graph(messages, tenant_id="acme")
    assert repr(g).startswith("CommGraph(tenant 'acme': 5 nodes (3 internal), 7 edges, 6 messages; "
                              "2024-05-01 .. 2024-06-01 UTC; top correspondents: ann@acme.com (4)")
    assert "<table" in g._repr_html_() and "cy@acme.com" in g._repr_html_()




@pytest.mark.parametrize("n", [1, 2])
def test_html_views_word_their_counts_as_the_reprs_do(n):
    # Before: the notebook views said "1 tenants" (Messages) and "1 nodes, 1 edges, 1 messages" (CommGraph)
    # where the reprs said "1 tenant".
    m = validate(pd.DataFrame({"tenant_id": "t", "message_id": [str(i) for i in range(n)], "direction": "internal",
                               "timestamp": "2024-05-01T09:00Z", "sender": [f"a{i}@t.com" for i in range(n)],
                               "recipients": [f"a{i}@t.com" for i in range(n)]}))  # (n self-loops)
    counts = ", ".join(f"{n} {word}{'s' if n != 1 else ''}" for word in ("message", "edge")) + ", 1 tenant"
    assert repr(m).startswith(f"Messages({counts}, 0 rejects;")
    assert m._repr_html_().startswith(f"<div><b>Messages</b>: {counts}, 0 rejects (")
    g = build_graph(m)
    counts = f"{n} node{'s' if n != 1 else ''} ({n} internal), {n} edge{'s' if n != 1 else ''}, {n} message" + \
        ("s" if n != 1 else "")
    assert repr(g).startswith(f"CommGraph(tenant 't': {counts}; ")
    assert g._repr_html_().startswith(f"<div><b>CommGraph</b> tenant &#x27;t&#x27;: {counts} (")

def test_subgraph_counts_the_messages_on_its_edges_as_pandas_does(messages):
    # Before: a subgraph's n_messages (and repr) was what its nodes sent to anyone in the whole tenant ("2 nodes,
    # 3 edges, 3,145 messages" on Enron) beside its own edges and times. Now the messages on its edges: exact
    # where a sender keeps all its correspondents or one; else between the truth and the edges' counts summed,
    # and said to be "at most".
    from itertools import combinations

    more = validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2", "3"],
                                  "timestamp": ["2024-01-01T00:00Z"] * 3, "sender": ["a@t.com"] * 3,
                                  "recipients": ["b@t.com; c@t.com", "d@t.com", "b@t.com"]}),
                    tenants=[{"tenant_id": "t", "own_domains": ["t.com"]}])
    inexact = 0
    for mail, tenant in ((messages, "acme"), (more, "t")):
        g = build_graph(mail, tenant_id=tenant)
        rows = mail.edges()
        rows = rows[rows["tenant_id"] == tenant]
        correspondents = rows.groupby("sender", observed=True)["recipient"].nunique()
        addresses = g.nodes["address"].tolist()
        subsets = [list(c) for k in range(len(addresses) + 1) for c in combinations(addresses, k)]
        views = [(g.subgraph(keep), keep) for keep in subsets]
        views.append((g.internal_subgraph(), g.nodes.loc[g.nodes["internal"], "address"].tolist()))
        views += [(g.ego(a, r), g.ego(a, r).nodes["address"].tolist()) for a in addresses for r in (0, 1)]
        for sub, keep in views:
            on = rows[rows["sender"].isin(keep) & rows["recipient"].isin(keep)]
            truth = on["message_id"].nunique()
            kept = on.groupby("sender", observed=True)["recipient"].nunique()
            exact = all(k == 1 or k == correspondents[s] for s, k in kept.items())
            assert (sub.n_messages == truth) if exact else (truth <= sub.n_messages <= len(on)), (keep, truth)
            assert sub.messages_exact == exact
            said = f" {'' if exact else 'at most '}{sub.n_messages} message"
            assert said in repr(sub) and said in sub._repr_html_()
            assert from_networkx(sub.to_networkx()).equals(sub) and pickle.loads(pickle.dumps(sub)).equals(sub)
            inexact += not exact
        assert g.subgraph(addresses).n_messages == g.n_messages == rows["message_id"].nunique()
    assert inexact  # (a, keeping b and c of its 3 correspondents: m1, to both, may count twice)

def test_pickle_round_trip(messages):
    g = build_graph(messages, tenant_id="acme")
    g.reverse_adjacency  # a cache must not break pickling
    assert pickle.loads(pickle.dumps(g)).equals(g)


# --- bridges ----------------------------------------------------------------------------------


def test_networkx_round_trip_is_lossless(messages):
    g = build_graph(messages, tenant_id="acme", as_of="2024-05-30T00:00Z", window="60D")
    nxg = to_networkx(g)
    assert nxg.graph["tenant_id"] == "acme"
    assert nxg["eve@evil.io"]["ann@acme.com"]["attack"] == 1
    assert nxg.nodes["ann@acme.com"]["first_seen"] == pd.Timestamp("2024-05-01T09:00Z")
    back = from_networkx(nxg)
    assert back.equals(g)
    assert CommGraph.from_networkx(g.to_networkx()).equals(g)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8), st.integers(1, 5)), max_size=30),
       st.lists(st.integers(9, 12), max_size=3))
def test_networkx_graph_round_trip(edges, isolated):
    d = nx.DiGraph()
    d.add_nodes_from(f"n{i}@x.com" for i in isolated)
    d.add_weighted_edges_from(((f"n{a}@x.com", f"n{b}@y.com" if b % 2 else f"n{b}@x.com", c)
                               for a, b, c in edges), weight="count")
    g = from_networkx(d, tenant_id="t", own_domains=["x.com"])
    back = g.to_networkx()
    assert set(back.nodes) == set(d.nodes)
    assert {(u, v, c) for u, v, c in back.edges(data="count")} == {(u, v, c) for u, v, c in d.edges(data="count")}
    assert from_networkx(back).equals(g)
    assert repr(g).startswith("CommGraph(tenant 't'")
    if not len(d):
        return
    nodelist = g.nodes["address"].tolist()
    want = nx.to_scipy_sparse_array(d, nodelist=nodelist, weight="count", dtype=np.int64)
    assert (to_scipy(g) != want).nnz == 0 and to_scipy(g).shape == want.shape


def test_from_networkx_refuses_what_it_cannot_represent():
    with pytest.raises(ConfigError, match="expects a networkx.DiGraph"):
        from_networkx(nx.Graph())
    with pytest.raises(ConfigError, match="positive integer message count"):
        from_networkx(nx.DiGraph([("a@x.com", "b@x.com", {"count": 0.5})]))


@pytest.mark.parametrize("undirected", [True, False])
@pytest.mark.parametrize("radius", [0, 1, 2])
def test_ego_matches_networkx(enron, undirected, radius):
    g = build_graph(enron, tenant_id="enron")
    nxg = g.to_networkx()
    for centre in g.top_correspondents(3)["address"]:
        ego = g.ego(centre, radius, undirected=undirected)
        want = nx.ego_graph(nxg, centre, radius=radius, undirected=undirected)
        assert set(ego.nodes["address"]) == set(want.nodes)
        got_edges = {(u, v, c) for u, v, c in ego.to_networkx().edges(data="count")}
        assert got_edges == {(u, v, c) for u, v, c in want.edges(data="count")}


# --- real data --------------------------------------------------------------------------------


def test_enron_graph_matches_the_messages(enron):
    g = build_graph(enron, tenant_id="enron")
    edges = enron.edges()
    counts = Counter(zip(edges["sender"], edges["recipient"]))
    got = g.edges()
    assert dict(zip(zip(got["sender"], got["recipient"]), got["count"])) == counts
    sent = enron.frame.groupby("sender").size()
    assert g.nodes.set_index("address")["sent"][sent.index].tolist() == sent.tolist()
    assert g.nodes["internal"].all()
    first = edges.groupby(["sender", "recipient"])["timestamp"].min()
    assert got.set_index(["sender", "recipient"])["first_seen"][first.index].tolist() == first.tolist()
    assert (to_scipy(g) != nx.to_scipy_sparse_array(g.to_networkx(), nodelist=g.nodes["address"].tolist(),
                                                    weight="count", dtype=np.int64)).nnz == 0
    # Edge structure within the memory budget.
    a = g.adjacency
    per_edge = (a.data.nbytes + a.indices.nbytes + g.edge_first_seen.nbytes + g.edge_last_seen.nbytes
                + g.edge_label_counts.nbytes) / g.n_edges
    assert per_edge <= 48
