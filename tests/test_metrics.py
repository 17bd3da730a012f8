"""Graph metrics against networkx as an independent reference.

The reference graphs are built here from the raw (sender, recipient) rows with
plain Python counting, never through CommGraph, so a bug in the build shows up
as a mismatch too. Hypothesis graphs have self-loops, duplicate edges and
isolated nodes; the real corpora are Enron (JHU) and the EU-core departments.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commgraph.graph import (
    CommGraphError, build_graph, communities, from_networkx, hop_distance, in_degree, neighbourhood_overlap,
    node_reciprocity, out_degree, pagerank, pairwise_hop_distance, reciprocity, stable_keys, validate,
)



# --- building blocks --------------------------------------------------------------------------


def address(i: int) -> str:
    return f"u{i}@d{i % 3}.com"


def edge_frame(pairs, times=None, labels=None) -> pd.DataFrame:
    """An edges frame (the Messages.edges() layout), one message per pair."""
    s = [address(a) for a, _ in pairs]
    r = [address(b) for _, b in pairs]
    n = len(pairs)
    times = list(range(n)) if times is None else times
    frame = pd.DataFrame({
        "tenant_id": ["t"] * n,
        "message_id": [f"m{i}" for i in range(n)],
        "timestamp": pd.to_datetime(pd.Series(times, dtype="int64") + 1_700_000_000, unit="s", utc=True),
        "sender": pd.Series(s, dtype="str"),
        "sender_domain": pd.Series([x.split("@")[1] for x in s], dtype="str"),
        "sender_key": stable_keys(pd.Series(s, dtype="str")),
        "recipient": pd.Series(r, dtype="str"),
        "recipient_domain": pd.Series([x.split("@")[1] for x in r], dtype="str"),
        "recipient_key": stable_keys(pd.Series(r, dtype="str")),
        "message_index": np.arange(n),
    })
    if labels is not None:
        frame["label"] = pd.Categorical(labels, categories=["safe", "attack", "spam"])
    return frame


def reference(pairs, isolated=()) -> nx.DiGraph:
    """networkx DiGraph with a message count per edge, by plain counting."""
    ref = nx.DiGraph()
    ref.add_nodes_from(address(i) for i in isolated)
    for (a, b), c in Counter(pairs).items():
        ref.add_edge(address(a), address(b), count=c)
    return ref


def aligned(g, mapping: dict, default=None) -> list:
    return [mapping.get(a, default) for a in g.nodes["address"]]


def check_against_networkx(g, ref: nx.DiGraph, sources=None) -> None:
    """Every metric of g equals networkx's on ref (the same graph, built independently)."""
    assert sorted(g.nodes["address"]) == sorted(ref.nodes)
    for weighted in (False, True):
        w = "count" if weighted else None
        assert out_degree(g, weighted=weighted).tolist() == aligned(g, dict(ref.out_degree(weight=w)))
        assert in_degree(g, weighted=weighted).tolist() == aligned(g, dict(ref.in_degree(weight=w)))
    if ref.number_of_edges():
        assert reciprocity(g) == nx.overall_reciprocity(ref)
    else:
        assert math.isnan(reciprocity(g))
    expected = [np.nan if v is None else v for v in aligned(g, nx.reciprocity(ref, ref.nodes))]
    np.testing.assert_array_equal(node_reciprocity(g), np.array(expected, dtype=float))
    if len(ref):
        for weighted in (True, False):
            got = pagerank(g, weighted=weighted)
            want = np.array(aligned(g, nx.pagerank(ref, weight="count" if weighted else None)))
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-8)
    addresses = g.nodes["address"].tolist()
    for src in (addresses if sources is None else sources):
        for cutoff in (1, 3):
            want = nx.single_source_shortest_path_length(ref, src, cutoff=cutoff)
            assert hop_distance(g, [src], max_hops=cutoff).tolist() == aligned(g, want, -1)


def overlap_reference(ref: nx.DiGraph, s: str, r: str) -> tuple[float, float]:
    if s not in ref or r not in ref:
        return math.nan, math.nan  # not a node: no answer (missing="nan")

    def corr(z):
        return (set(ref.predecessors(z)) | set(ref.successors(z))) - {z}

    a = set(ref.successors(s)) - {s}
    b = corr(r)
    union = a | b
    common = a & b
    jac = len(common) / len(union) if union else 0.0
    aa = sum(1 / math.log(len(corr(z))) for z in common if len(corr(z)) >= 2)
    return jac, aa


# --- hypothesis graphs ------------------------------------------------------------------------

pairs_strategy = st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11)), min_size=1, max_size=60)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(pairs=pairs_strategy, isolated=st.lists(st.integers(12, 15), max_size=3, unique=True))
def test_metrics_match_networkx_on_random_graphs(pairs, isolated):
    g = build_graph(edge_frame(pairs), own_domains=("d0.com",))
    check_against_networkx(g, reference(pairs))
    # Isolated nodes only arrive through networkx (mail always has two ends).
    ref = reference(pairs, isolated)
    g2 = from_networkx(ref, tenant_id="t")
    check_against_networkx(g2, ref)


@FAST
@given(pairs=pairs_strategy, queries=st.lists(st.tuples(st.integers(0, 13), st.integers(0, 13)), min_size=1,
                                               max_size=20))
def test_pairwise_hops_and_overlap_match_reference(pairs, queries):
    g = build_graph(edge_frame(pairs), own_domains=("d0.com",))
    ref = reference(pairs)
    s = [address(a) for a, _ in queries]
    r = [address(b) for _, b in queries]
    hops = pairwise_hop_distance(g, s, r, batch_size=3)
    for i, (a, b) in enumerate(zip(s, r)):
        want = nx.single_source_shortest_path_length(ref, a, cutoff=3).get(b, -1) if a in ref else -1
        assert hops[i] == want
    jac = neighbourhood_overlap(g, s, r, missing="nan")
    aa = neighbourhood_overlap(g, s, r, method="adamic_adar", missing="nan")
    for i, (a, b) in enumerate(zip(s, r)):
        want_j, want_aa = overlap_reference(ref, a, b)
        if math.isnan(want_j):
            assert math.isnan(jac[i]) and math.isnan(aa[i])
            continue
        assert jac[i] == want_j
        assert math.isclose(aa[i], want_aa, rel_tol=1e-12, abs_tol=1e-12)
    if any(a not in ref or b not in ref for a, b in zip(s, r)):
        with pytest.raises(CommGraphError, match="not a node of tenant 't'"):
            neighbourhood_overlap(g, s, r)


@FAST
@given(pairs=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)).filter(lambda p: p[0] != p[1]),
                      min_size=1, max_size=40))
def test_overlap_equals_networkx_link_prediction_on_symmetric_graphs(pairs):
    sym = pairs + [(b, a) for a, b in pairs]
    g = build_graph(edge_frame(sym), own_domains=("d0.com",))
    und = nx.Graph(reference(sym))
    ebunch = [(u, v) for u in und for v in und if u != v]
    jac = neighbourhood_overlap(g, [u for u, _ in ebunch], [v for _, v in ebunch])
    aa = neighbourhood_overlap(g, [u for u, _ in ebunch], [v for _, v in ebunch], method="adamic_adar")
    for i, (_, _, p) in enumerate(nx.jaccard_coefficient(und, ebunch)):
        assert jac[i] == p
    for i, (_, _, p) in enumerate(nx.adamic_adar_index(und, ebunch)):
        assert math.isclose(aa[i], p, rel_tol=1e-12, abs_tol=1e-12)


@FAST
@given(pairs=pairs_strategy, sources=st.lists(st.integers(0, 13), min_size=1, max_size=4))
def test_multi_source_hop_distance_is_min_over_sources(pairs, sources):
    g = build_graph(edge_frame(pairs), own_domains=("d0.com",))
    ref = reference(pairs)
    srcs = [address(i) for i in sources if address(i) in ref]
    want = {}
    for s in srcs:
        for node, d in nx.single_source_shortest_path_length(ref, s, cutoff=3).items():
            want[node] = min(d, want.get(node, 99))
    assert hop_distance(g, srcs).tolist() == aligned(g, want, -1)
    with pytest.raises(CommGraphError, match=r"1 of the targets is not a node .*'nobody@x.com'"):
        hop_distance(g, srcs, ["nobody@x.com"])
    with pytest.raises(CommGraphError, match=r"1 of the sources is not a node .*'nobody@x.com'"):
        hop_distance(g, srcs + ["nobody@x.com"])


# --- behaviour --------------------------------------------------------------------------------


def test_results_are_plain_types_and_aligned():
    g = build_graph(edge_frame([(0, 1), (1, 0), (1, 2), (2, 2)]), own_domains=("d0.com",))
    assert type(reciprocity(g)) is float
    for arr in (out_degree(g), in_degree(g), pagerank(g), node_reciprocity(g), communities(g), hop_distance(g, [0])):
        assert isinstance(arr, np.ndarray) and len(arr) == g.n_nodes
    assert math.isclose(pagerank(g).sum(), 1.0)


def test_empty_graph():
    g = from_networkx(nx.DiGraph(), tenant_id="t")
    assert math.isnan(reciprocity(g))
    assert pagerank(g).tolist() == [] and communities(g).tolist() == [] and hop_distance(g, []).tolist() == []


def test_pagerank_reports_non_convergence():
    g = build_graph(edge_frame([(0, 1), (1, 2), (2, 0), (0, 3)]), own_domains=("d0.com",))
    with pytest.raises(Exception, match="did not converge in max_iter=1"):
        pagerank(g, max_iter=1, tol=1e-15)
    with pytest.raises(ValueError, match="'alpha' parameter of pagerank"):
        pagerank(g, alpha=1.5)


def test_max_hops_is_bounded():
    g = build_graph(edge_frame([(0, 1)]), own_domains=("d0.com",))
    with pytest.raises(ValueError, match=r"'max_hops' parameter of hop_distance must be an int in \[0, 3\]"):
        hop_distance(g, [0], max_hops=4)
    assert hop_distance(g, [address(0)], max_hops=0).tolist() == [0 if a == address(0) else -1
                                                                  for a in g.nodes["address"]]


def test_unknown_nodes_never_look_like_answers():
    # Before: hop_distance from an unknown source was -1 everywhere ("unreachable") and the overlap of
    # an unknown sender 0.0 ("no overlap"). Now they raise naming the address, or give NaN on request.
    g = build_graph(edge_frame([(0, 1), (1, 2)]), own_domains=("d0.com",))
    assert pairwise_hop_distance(g, ["x@y.com", address(0)], [address(1), "x@y.com"]).tolist() == [-1, -1]
    with pytest.raises(CommGraphError, match=r"neighbourhood_overlap: 1 of the senders is not a node of tenant "
                                             r"'t' \('x@y.com'\)"):
        neighbourhood_overlap(g, ["x@y.com"], [address(1)])
    with pytest.raises(CommGraphError, match=r"2 of the recipients are not .*\('a@y.com', 'b@y.com'\)"):
        neighbourhood_overlap(g, [address(0)] * 3, ["a@y.com", address(1), "b@y.com"])
    got = neighbourhood_overlap(g, ["x@y.com", address(0)], [address(1), address(1)], missing="nan")
    assert math.isnan(got[0]) and got[1] == overlap_reference(reference([(0, 1), (1, 2)]), address(0), address(1))[0]
    with pytest.raises(ValueError, match="'missing' parameter of neighbourhood_overlap must be 'raise' or 'nan'"):
        neighbourhood_overlap(g, [address(0)], [address(1)], missing="zero")
    with pytest.raises(CommGraphError, match=r"hop_distance: 1 of the sources is not a node .*'x@y.com'"):
        hop_distance(g, ["x@y.com"])


def test_lookups_normalise_addresses_as_validation_does():
    # Before: "U0@D0.com" was "not a node" although u0@d0.com is one.
    g = build_graph(edge_frame([(0, 1), (1, 2)]), own_domains=("d0.com",))
    want = g.node_ids([address(0), address(1)]).tolist()
    assert min(want) >= 0
    queries = [address(0).upper(), f'"U Zero" <{address(1).title()}>']
    assert g.node_ids(queries).tolist() == want
    assert g.node_id(address(0).upper()) == want[0]
    assert g.node_ids(pd.Series(queries, dtype="str")).tolist() == want
    assert g.node_ids(["not an address", None]).tolist() == [-1, -1]
    assert hop_distance(g, [address(0).upper()], [f" {address(2)} "]).tolist() == [2]
    assert g.edge(address(0).upper(), address(1))["count"] == 1


def test_communities_are_seeded_and_match_networkx_louvain():
    pairs = [(a, b) for a in range(5) for b in range(5) if a != b] + \
            [(a, b) for a in range(5, 10) for b in range(5, 10) if a != b] + [(0, 5)]
    g = build_graph(edge_frame(pairs), own_domains=("d0.com",))
    labels = communities(g, random_state=7)
    assert labels.tolist() == communities(g, random_state=7).tolist()
    groups = {frozenset(np.flatnonzero(labels == c)) for c in np.unique(labels)}
    clique = {frozenset(g.node_ids([address(i) for i in range(5)]).tolist()),
              frozenset(g.node_ids([address(i) for i in range(5, 10)]).tolist())}
    assert groups == clique
    # Same partition as networkx's Louvain with the same seed on the same graph.
    nxg = nx.DiGraph()
    nxg.add_nodes_from(range(g.n_nodes))
    e = g.edges()
    nxg.add_weighted_edges_from(zip(e["sender_id"].tolist(), e["recipient_id"].tolist(), e["count"].tolist()),
                                weight="count")
    want = {frozenset(c) for c in nx.community.louvain_communities(nxg, weight="count", seed=7)}
    assert groups == want


# --- real corpora -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eu_core(real_data):
    raw = pd.read_csv(real_data / "eu_core_temporal" / "dept_messages.csv.gz")
    raw = raw.rename(columns={"tenant": "tenant_id"})
    tenant = raw["tenant_id"].astype(str)
    raw["sender"] = "n" + raw["sender"].astype(str) + "@" + tenant + ".example"
    raw["recipients"] = [";".join(f"n{r}@{t}.example" for r in str(rs).split(";"))
                         for rs, t in zip(raw["recipients"], tenant)]
    raw["direction"] = "internal"
    with pytest.warns(UserWarning, match="replaces the input's 'n_recipients'"):  # (the corpus counts its own)
        return validate(raw, strict=False, timestamp_origin="2000-01-01", time_range=None)


def reference_from_edges(edges: pd.DataFrame) -> nx.DiGraph:
    ref = nx.DiGraph()
    for (s, r), c in Counter(zip(edges["sender"].tolist(), edges["recipient"].tolist())).items():
        ref.add_edge(s, r, count=c)
    return ref


def test_enron_matches_networkx(enron):
    g = build_graph(enron, tenant_id="enron")
    ref = reference_from_edges(enron.edges())
    assert g.n_edges == ref.number_of_edges()
    check_against_networkx(g, ref)
    # The exported graph iterates the very same matrix.
    np.testing.assert_allclose(pagerank(g), aligned(g, nx.pagerank(g.to_networkx(), weight="count")),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("tenant", ["eu-dept1", "eu-dept2", "eu-dept3", "eu-dept4"])
def test_eu_core_departments_match_networkx(eu_core, tenant):
    g = build_graph(eu_core, tenant_id=tenant)
    edges = eu_core.edges()
    ref = reference_from_edges(edges[edges["tenant_id"] == tenant])
    sources = g.nodes["address"].tolist()[::7]
    check_against_networkx(g, ref, sources=sources)
    s = edges.loc[edges["tenant_id"] == tenant, "sender"].tolist()[:300]
    r = edges.loc[edges["tenant_id"] == tenant, "recipient"].tolist()[::-1][:300]
    hops = pairwise_hop_distance(g, s, r)
    for i in range(0, 300, 15):
        assert hops[i] == nx.single_source_shortest_path_length(ref, s[i], cutoff=3).get(r[i], -1)
    jac = neighbourhood_overlap(g, s, r)
    for i in range(0, 300, 15):
        assert jac[i] == overlap_reference(ref, s[i], r[i])[0]
