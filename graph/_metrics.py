"""Graph metrics over a :class:`CommGraph`: pure functions, the graph first.

Every function returns a numpy array aligned with ``G.nodes`` (or with the pairs
it was given) or a plain Python number, and matches networkx on the same graph
(``G.to_networkx()``): degrees, reciprocity and hop distances exactly, PageRank
within 1e-8. They work on the CSR adjacency directly; networkx is used only by
:func:`communities`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy as sp

from ._commgraph import CommGraph, _binary
from ._errors import CommGraphError, ConfigError, checked_int

__all__ = [
    "in_degree", "out_degree", "reciprocity", "node_reciprocity", "pagerank", "communities",
    "hop_distance", "pairwise_hop_distance", "neighbourhood_overlap",
]

#: Hop distances are bounded: farther than this is "far", whatever the graph.
MAX_HOPS = 3


def _check_graph(G: Any, caller: str) -> CommGraph:
    if not isinstance(G, CommGraph):
        raise ConfigError(f"{caller} expects a CommGraph first (from build_graph); got {type(G).__name__}")
    return G


def _known_ids(G: CommGraph, values: Any, what: str, caller: str) -> np.ndarray:
    """Node ids of ``values``; an unknown one raises, naming it (an answer for it would look like a real one)."""
    ids = G.node_ids(values)
    unknown = np.flatnonzero(ids < 0)
    if len(unknown):
        given = np.asarray(values, dtype=object).reshape(-1) if not isinstance(values, str) else np.array([values])
        shown = ", ".join(repr(v) for v in given[unknown[:5]].tolist()) + (", ..." if len(unknown) > 5 else "")
        raise CommGraphError(f"{caller}: {len(unknown)} of the {what} {'is' if len(unknown) == 1 else 'are'} not "
                             f"a node of tenant {G.tenant_id!r} ({shown}); look addresses up in G.nodes['address'] "
                             "or check them with G.node_ids(...) >= 0 first")
    return ids


def out_degree(G: CommGraph, *, weighted: bool = False) -> np.ndarray:
    """Out-degree of every node: distinct recipients, or messages sent to them (``weighted``).

    A self-loop counts once. Equal to ``G.to_networkx().out_degree(weight="count" if weighted else None)``.

    Parameters
    ----------
    G : CommGraph
    weighted : bool, default False
        Sum message counts instead of counting edges.

    Returns
    -------
    numpy.ndarray of int64, aligned with ``G.nodes``

    Examples
    --------
    >>> from commgraph.graph import validate, build_graph, out_degree
    >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2"],
    ...     "timestamp": ["2024-01-01T00:00Z"] * 2, "sender": ["a@t.com", "a@t.com"],
    ...     "recipients": ["b@t.com; c@t.com", "b@t.com"], "direction": "internal"})))
    >>> dict(zip(g.nodes["address"], out_degree(g).tolist()))
    {'b@t.com': 0, 'a@t.com': 2, 'c@t.com': 0}
    >>> dict(zip(g.nodes["address"], out_degree(g, weighted=True).tolist()))
    {'b@t.com': 0, 'a@t.com': 3, 'c@t.com': 0}
    """
    G = _check_graph(G, "out_degree")
    a = G.adjacency
    if not weighted:
        return np.diff(a.indptr).astype(np.int64)
    cum = np.concatenate([[0], np.cumsum(a.data, dtype=np.int64)])
    return cum[a.indptr[1:]] - cum[a.indptr[:-1]]


def in_degree(G: CommGraph, *, weighted: bool = False) -> np.ndarray:
    """In-degree of every node: distinct senders, or messages received from them (``weighted``).

    A self-loop counts once. Equal to ``G.to_networkx().in_degree(weight="count" if weighted else None)``.

    Parameters
    ----------
    G : CommGraph
    weighted : bool, default False
        Sum message counts instead of counting edges.

    Returns
    -------
    numpy.ndarray of int64, aligned with ``G.nodes``

    Examples
    --------
    >>> from commgraph.graph import validate, build_graph, in_degree
    >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2"],
    ...     "timestamp": ["2024-01-01T00:00Z"] * 2, "sender": ["a@t.com", "a@t.com"],
    ...     "recipients": ["b@t.com; c@t.com", "b@t.com"], "direction": "internal"})))
    >>> dict(zip(g.nodes["address"], in_degree(g).tolist()))
    {'b@t.com': 1, 'a@t.com': 0, 'c@t.com': 1}
    >>> dict(zip(g.nodes["address"], in_degree(g, weighted=True).tolist()))
    {'b@t.com': 2, 'a@t.com': 0, 'c@t.com': 1}
    """
    G = _check_graph(G, "in_degree")
    a = G.adjacency
    if not weighted:
        return np.bincount(a.indices, minlength=G.n_nodes).astype(np.int64)
    out = np.zeros(G.n_nodes, dtype=np.int64)
    np.add.at(out, a.indices, a.data.astype(np.int64))
    return out


def _reciprocated(G: CommGraph) -> np.ndarray:
    """Per edge (CSR order): whether the reverse edge exists (a self-loop is its own reverse)."""
    rows = G._row_of_edge().astype(np.int64)
    cols = G.adjacency.indices.astype(np.int64)
    codes = G._pair_codes()
    if not len(codes):
        return np.zeros(0, dtype=bool)
    q = cols * G.n_nodes + rows
    pos = np.minimum(np.searchsorted(codes, q), len(codes) - 1)
    return codes[pos] == q


def reciprocity(G: CommGraph) -> float:
    """Share of edges whose reverse edge also exists (self-loops excluded from the numerator).

    Equal to ``networkx.overall_reciprocity(G.to_networkx())``; ``nan`` for a graph
    without edges (where networkx raises).

    Returns
    -------
    float

    Examples
    --------
    >>> from commgraph.graph import validate, build_graph, reciprocity
    >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2"],
    ...     "timestamp": ["2024-01-01T00:00Z"] * 2, "sender": ["a@t.com", "b@t.com"],
    ...     "recipients": ["b@t.com; c@t.com", "a@t.com"], "direction": "internal"})))
    >>> reciprocity(g)
    0.6666666666666666
    """
    G = _check_graph(G, "reciprocity")
    if not G.n_edges:
        return float("nan")
    rec = _reciprocated(G)
    loops = G._row_of_edge() == G.adjacency.indices
    # networkx: 2 * (edges - undirected edges) / edges; every reciprocated pair merges into one.
    n_overlap = int((rec & ~loops).sum())
    return float(n_overlap / G.n_edges)


def node_reciprocity(G: CommGraph) -> np.ndarray:
    """Per node: ``2 |predecessors & successors| / (|predecessors| + |successors|)``.

    Equal to ``networkx.reciprocity(G.to_networkx(), nodes)``, with ``nan`` where
    networkx gives ``None`` (a node without edges). A self-loop makes the node
    its own predecessor and successor, as in networkx.

    Returns
    -------
    numpy.ndarray of float64, aligned with ``G.nodes``

    Examples
    --------
    >>> from commgraph.graph import validate, build_graph, node_reciprocity
    >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2"],
    ...     "timestamp": ["2024-01-01T00:00Z"] * 2, "sender": ["a@t.com", "b@t.com"],
    ...     "recipients": ["b@t.com; c@t.com", "a@t.com"], "direction": "internal"})))
    >>> dict(zip(g.nodes["address"], node_reciprocity(g).round(3).tolist()))
    {'b@t.com': 1.0, 'a@t.com': 0.667, 'c@t.com': 0.0}
    """
    G = _check_graph(G, "node_reciprocity")
    rec = _reciprocated(G)
    overlap = np.bincount(G._row_of_edge()[rec], minlength=G.n_nodes).astype(np.int64)
    total = out_degree(G) + in_degree(G)
    out = np.full(G.n_nodes, np.nan)
    has = total > 0
    out[has] = 2 * overlap[has] / total[has]
    return out


def pagerank(G: CommGraph, *, alpha: float = 0.85, weighted: bool = True, max_iter: int = 100,
             tol: float = 1.0e-6) -> np.ndarray:
    """PageRank of every node by power iteration on the CSR adjacency.

    The same iteration as ``networkx.pagerank(G.to_networkx(), alpha, weight="count",
    max_iter=max_iter, tol=tol)`` (no personalisation; a dangling node, one that
    wrote to nobody, spreads its rank uniformly), so results agree to about 1e-12.

    Parameters
    ----------
    G : CommGraph
    alpha : float, default 0.85
        Damping factor.
    weighted : bool, default True
        Weight edges by message count (networkx ``weight="count"``); ``False`` gives
        every edge weight 1 (``weight=None``).
    max_iter : int, default 100
    tol : float, default 1e-6
        Stop when the l1 change is below ``n_nodes * tol``.

    Returns
    -------
    numpy.ndarray of float64, aligned with ``G.nodes``, summing to 1.

    Raises
    ------
    CommGraphError
        When the iteration has not converged after ``max_iter`` rounds.

    Examples
    --------
    >>> from commgraph.graph import validate, build_graph, pagerank
    >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2"],
    ...     "timestamp": ["2024-01-01T00:00Z"] * 2, "sender": ["a@t.com", "b@t.com"],
    ...     "recipients": ["b@t.com; c@t.com", "a@t.com"], "direction": "internal"})))
    >>> dict(zip(g.nodes["address"], pagerank(g).round(4).tolist()))
    {'b@t.com': 0.3032, 'a@t.com': 0.3936, 'c@t.com': 0.3032}
    """
    G = _check_graph(G, "pagerank")
    if not (0 < alpha < 1):
        raise ConfigError(f"The 'alpha' parameter of pagerank must be a float in (0, 1). Got {alpha!r} instead.")
    if not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ConfigError(f"The 'max_iter' parameter of pagerank must be an int >= 1. Got {max_iter!r} instead.")
    if not tol > 0:
        raise ConfigError(f"The 'tol' parameter of pagerank must be a float > 0. Got {tol!r} instead.")
    N = G.n_nodes
    if N == 0:
        return np.zeros(0)
    a = G.adjacency
    data = a.data.astype(np.float64) if weighted else np.ones(a.nnz)
    A = sp.sparse.csr_array((data, a.indices, a.indptr), shape=a.shape)
    S = A.sum(axis=1)
    S[S != 0] = 1.0 / S[S != 0]
    Q = sp.sparse.dia_array((S.T, 0), shape=A.shape).tocsr()
    # x @ (Q @ A) == (Q @ A).T @ x; a CSR transpose makes every round one CSR mat-vec.
    At = (Q @ A).T.tocsr()
    x = np.repeat(1.0 / N, N)
    p = np.repeat(1.0 / N, N)
    is_dangling = np.flatnonzero(S == 0)
    for _ in range(max_iter):
        xlast = x
        x = alpha * (At @ x + x[is_dangling].sum() * p) + (1 - alpha) * p
        err = np.absolute(x - xlast).sum()
        if err < N * tol:
            return x
    raise CommGraphError(f"pagerank did not converge in max_iter={max_iter} rounds (l1 change {err:.3g} >= "
                         f"n_nodes * tol = {N * tol:.3g}); raise max_iter or tol")


def communities(G: CommGraph, *, random_state: int = 0, resolution: float = 1.0,
                weighted: bool = True) -> np.ndarray:
    """Community of every node by Louvain modularity optimisation (seeded, so deterministic).

    Runs ``networkx.community.louvain_communities`` with ``seed=random_state`` on the
    directed graph (directed modularity), weighted by message count. Louvain was
    chosen over label propagation because its partitions are stable under a fixed
    seed and of higher modularity, which matters more to analysts than speed;
    the cost is networkx's speed (a few seconds per 100k edges).

    Parameters
    ----------
    G : CommGraph
    random_state : int, default 0
        Seed; the same graph and seed give the same communities.
    resolution : float, default 1.0
        Above 1 favours smaller communities.
    weighted : bool, default True
        Weight edges by message count.

    Returns
    -------
    numpy.ndarray of int64, aligned with ``G.nodes``
        Community ids ``0..k-1``, numbered by decreasing size (ties: lowest node id first).

    Examples
    --------
    >>> from commgraph.graph import validate, build_graph, communities
    >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2", "3", "4"],
    ...     "timestamp": ["2024-01-01T00:00Z"] * 4, "sender": ["a@t.com", "b@t.com", "c@t.com", "d@t.com"],
    ...     "recipients": ["b@t.com", "a@t.com", "d@t.com", "c@t.com"], "direction": "internal"})))
    >>> dict(zip(g.nodes["address"], communities(g).tolist()))
    {...}
    """
    import networkx as nx

    G = _check_graph(G, "communities")
    if not isinstance(random_state, (int, np.integer)) or isinstance(random_state, bool):
        raise ConfigError(f"The 'random_state' parameter of communities must be an int. Got {random_state!r} instead.")
    n = G.n_nodes
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    nxg = nx.DiGraph()
    nxg.add_nodes_from(range(n))
    rows = G._row_of_edge().tolist()
    cols = G.adjacency.indices.tolist()
    counts = G.adjacency.data.tolist()
    nxg.add_weighted_edges_from(zip(rows, cols, counts), weight="count")
    parts = nx.community.louvain_communities(nxg, weight="count" if weighted else None, resolution=resolution,
                                             seed=int(random_state))
    return _label_parts(parts, n)


def _label_parts(parts, n: int) -> np.ndarray:
    parts = [np.fromiter(p, dtype=np.int64, count=len(p)) for p in parts]
    order = sorted(range(len(parts)), key=lambda i: (-len(parts[i]), int(parts[i].min())))
    labels = np.full(n, -1, dtype=np.int64)
    for new, i in enumerate(order):
        labels[parts[i]] = new
    return labels


def _ranges(indptr: np.ndarray, starts_of: np.ndarray) -> np.ndarray:
    """Positions ``indptr[v]..indptr[v+1]`` for every v in ``starts_of``, concatenated."""
    lo = indptr[starts_of].astype(np.int64)
    hi = indptr[starts_of + 1].astype(np.int64)
    lengths = hi - lo
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(lo - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return offsets + np.arange(total)


def _bfs(adjacency: Any, sources: np.ndarray, max_hops: int) -> np.ndarray:
    """Multi-source BFS by frontier expansion over a CSR; -1 beyond ``max_hops``."""
    n = adjacency.shape[0]
    dist = np.full(n, -1, dtype=np.int64)
    frontier = np.unique(sources)
    dist[frontier] = 0
    indptr, indices = adjacency.indptr, adjacency.indices
    for hop in range(1, max_hops + 1):
        if not len(frontier):
            break
        nbrs = indices[_ranges(indptr, frontier)]
        nbrs = np.unique(nbrs[dist[nbrs] < 0])
        dist[nbrs] = hop
        frontier = nbrs
    return dist


def _check_hops(max_hops: Any, caller: str) -> int:
    return checked_int(max_hops, "max_hops", caller, 0, MAX_HOPS)


def hop_distance(G: CommGraph, sources: Any, targets: Any = None, *, max_hops: int = 3) -> np.ndarray:
    """Hops from the nearest of ``sources`` to each target, following sender -> recipient edges.

    Breadth-first search by frontier expansion over the CSR, stopped after
    ``max_hops``. For one source this equals
    ``networkx.single_source_shortest_path_length(G.to_networkx(), source, cutoff=max_hops)``.

    Parameters
    ----------
    G : CommGraph
    sources : addresses, uint64 stable keys or node ids
        Addresses are normalised (see :meth:`CommGraph.node_ids`).
    targets : addresses, uint64 stable keys or node ids, optional
        Default: every node.
    max_hops : int, default 3
        At most 3.

    Returns
    -------
    numpy.ndarray of int64
        Aligned with ``targets`` (or ``G.nodes``): 0 for a source, -1 when farther
        than ``max_hops`` or unreachable.

    Raises
    ------
    CommGraphError
        When a source or target is not a node of the graph (naming it): -1 for it
        would read as "unreachable".

    Examples
    --------
    >>> from commgraph.graph import validate, build_graph, hop_distance
    >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2", "3"],
    ...     "timestamp": ["2024-01-01T00:00Z"] * 3, "sender": ["a@t.com", "b@t.com", "c@t.com"],
    ...     "recipients": ["b@t.com", "c@t.com", "d@t.com"], "direction": "internal"})))
    >>> dict(zip(g.nodes["address"], hop_distance(g, ["a@t.com"]).tolist()))
    {'b@t.com': 1, 'a@t.com': 0, 'd@t.com': 3, 'c@t.com': 2}
    >>> hop_distance(g, ["A@T.com"], ["d@t.com", "a@t.com"], max_hops=2).tolist()
    [-1, 0]
    >>> hop_distance(g, ["typo@t.com"])
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.CommGraphError: hop_distance: 1 of the sources is not a node of tenant 't' ('typo@t.com'); look addresses up in G.nodes['address'] or check them with G.node_ids(...) >= 0 first
    """
    G = _check_graph(G, "hop_distance")
    hops = _check_hops(max_hops, "hop_distance")
    src = _known_ids(G, sources, "sources", "hop_distance")
    dist = _bfs(G.adjacency, src, hops)
    if targets is None:
        return dist
    tgt = _known_ids(G, targets, "targets", "hop_distance")
    return dist[tgt]


def pairwise_hop_distance(G: CommGraph, senders: Any, recipients: Any, *, max_hops: int = 3,
                          batch_size: int = 512) -> np.ndarray:
    """Hops from each sender to its own recipient (pairs aligned), following sender -> recipient edges.

    One bounded BFS per distinct sender, ``batch_size`` senders at a time, all in
    one frontier of (sender, node) codes.

    Parameters
    ----------
    G : CommGraph
    senders, recipients : addresses, uint64 stable keys or node ids
        Aligned with each other.
    max_hops : int, default 3
        At most 3.
    batch_size : int, default 512
        Distinct senders expanded together (bounds memory).

    Returns
    -------
    numpy.ndarray of int64, aligned with the pairs
        -1 when farther than ``max_hops``, unreachable, or either node unknown.

    Examples
    --------
    >>> from commgraph.graph import validate, build_graph, pairwise_hop_distance
    >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2"],
    ...     "timestamp": ["2024-01-01T00:00Z"] * 2, "sender": ["a@t.com", "b@t.com"],
    ...     "recipients": ["b@t.com", "c@t.com"], "direction": "internal"})))
    >>> pairwise_hop_distance(g, ["a@t.com", "c@t.com", "a@t.com"], ["c@t.com", "a@t.com", "a@t.com"]).tolist()
    [2, -1, 0]
    """
    G = _check_graph(G, "pairwise_hop_distance")
    hops = _check_hops(max_hops, "pairwise_hop_distance")
    batch_size = checked_int(batch_size, "batch_size", "pairwise_hop_distance", 1)
    s = G.node_ids(senders)
    r = G.node_ids(recipients)
    if len(s) != len(r):
        raise ConfigError(f"senders and recipients must have the same length (got {len(s)} and {len(r)})")
    out = np.full(len(s), -1, dtype=np.int64)
    ok = np.flatnonzero((s >= 0) & (r >= 0))
    if not len(ok):
        return out
    n = G.n_nodes
    indptr, indices = G.adjacency.indptr, G.adjacency.indices
    uniq, inverse = np.unique(s[ok], return_inverse=True)
    for start in range(0, len(uniq), batch_size):
        batch = uniq[start:start + batch_size]
        in_batch = (inverse >= start) & (inverse < start + len(batch))
        pairs = ok[in_batch]
        want = (inverse[in_batch] - start).astype(np.int64) * n + r[pairs]
        frontier = np.arange(len(batch), dtype=np.int64) * n + batch   # codes: slot * n + node
        visited = frontier
        found = np.isin(want, frontier)
        out[pairs[found]] = 0
        for hop in range(1, hops + 1):
            if not len(frontier) or found.all():
                break
            slot, node = np.divmod(frontier, n)
            pos = _ranges(indptr, node)
            reps = (indptr[node + 1] - indptr[node]).astype(np.int64)
            nxt = np.unique(np.repeat(slot, reps) * n + indices[pos])
            nxt = nxt[~np.isin(nxt, visited, assume_unique=True)]
            visited = np.union1d(visited, nxt)
            hit = ~found & np.isin(want, nxt)
            out[pairs[hit]] = hop
            found |= hit
            frontier = nxt
    return out


def neighbourhood_overlap(G: CommGraph, senders: Any, recipients: Any, *,
                          method: Literal["jaccard", "adamic_adar"] = "jaccard",
                          missing: Literal["raise", "nan"] = "raise") -> np.ndarray:
    """Overlap between each sender's recipients and its recipient's correspondents.

    For a pair (s, r): ``A`` = the nodes s wrote to, ``B`` = the nodes r wrote to
    or heard from (both without s or r themselves as centre: ``A`` excludes s,
    ``B`` excludes r). ``jaccard`` is ``|A & B| / |A | B|`` (0.0 when both are
    empty); ``adamic_adar`` is the sum over ``z`` in ``A & B`` of
    ``1 / log(deg(z))``, ``deg(z)`` being z's number of correspondents (other
    than z). On a symmetric graph without self-loops these are networkx's
    ``jaccard_coefficient`` and ``adamic_adar_index`` of the undirected graph.

    Parameters
    ----------
    G : CommGraph
    senders, recipients : addresses, uint64 stable keys or node ids
        Aligned with each other; addresses are normalised (see :meth:`CommGraph.node_ids`).
    method : {'jaccard', 'adamic_adar'}, default 'jaccard'
    missing : {'raise', 'nan'}, default 'raise'
        A sender or recipient that is not a node: raise :class:`CommGraphError`
        naming it, or (for a vectorised caller scoring mail from strangers) give
        NaN for its pair. Never 0.0, which would read as "no overlap".

    Returns
    -------
    numpy.ndarray of float64, aligned with the pairs

    Examples
    --------
    >>> from commgraph.graph import validate, build_graph, neighbourhood_overlap
    >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2"],
    ...     "timestamp": ["2024-01-01T00:00Z"] * 2, "sender": ["a@t.com", "d@t.com"],
    ...     "recipients": ["b@t.com; c@t.com", "b@t.com"], "direction": "internal"})))
    >>> neighbourhood_overlap(g, ["a@t.com"], ["d@t.com"]).tolist()
    [0.5]
    >>> neighbourhood_overlap(g, ["a@t.com"], ["d@t.com"], method="adamic_adar").round(4).tolist()
    [1.4427]
    >>> neighbourhood_overlap(g, ["a@t.com", "new@x.org"], ["d@t.com", "d@t.com"], missing="nan").tolist()
    [0.5, nan]
    """
    G = _check_graph(G, "neighbourhood_overlap")
    if method not in ("jaccard", "adamic_adar"):
        raise ConfigError(f"The 'method' parameter of neighbourhood_overlap must be 'jaccard' or 'adamic_adar'. "
                          f"Got {method!r} instead.")
    if missing not in ("raise", "nan"):
        raise ConfigError(f"The 'missing' parameter of neighbourhood_overlap must be 'raise' or 'nan'. "
                          f"Got {missing!r} instead.")
    if missing == "raise":
        s = _known_ids(G, senders, "senders", "neighbourhood_overlap")
        r = _known_ids(G, recipients, "recipients", "neighbourhood_overlap")
    else:
        s, r = G.node_ids(senders), G.node_ids(recipients)
    if len(s) != len(r):
        raise ConfigError(f"senders and recipients must have the same length (got {len(s)} and {len(r)})")
    out = np.full(len(s), np.nan)
    ok = np.flatnonzero((s >= 0) & (r >= 0))
    if not len(ok):
        return out
    out_adj, corr = _overlap_matrices(G)
    a_rows = out_adj[s[ok]]
    b_rows = corr[r[ok]]
    common = a_rows.multiply(b_rows).tocsr()
    if method == "jaccard":
        inter = np.asarray(common.sum(axis=1)).ravel().astype(np.int64)
        size_a = np.diff(out_adj.indptr)[s[ok]].astype(np.int64)
        size_b = np.diff(corr.indptr)[r[ok]].astype(np.int64)
        union = size_a + size_b - inter
        out[ok] = np.divide(inter, union, out=np.zeros(len(ok)), where=union > 0)
    else:
        deg = np.diff(corr.indptr).astype(np.float64)
        weight = np.zeros(G.n_nodes)
        many = deg >= 2
        weight[many] = 1.0 / np.log(deg[many])
        out[ok] = common @ weight
    return out


def _overlap_matrices(G: CommGraph):
    cached = G._cache.get("overlap")
    if cached is None:
        b = _binary(G.adjacency)
        no_loops = sp.sparse.csr_array(b - sp.sparse.diags_array(b.diagonal(), shape=b.shape, dtype=np.int8))
        no_loops.eliminate_zeros()
        corr = sp.sparse.csr_array(((no_loops + no_loops.T) > 0).astype(np.int8))
        corr.sort_indices()
        no_loops.sort_indices()
        cached = (no_loops, corr)
        G._cache["overlap"] = cached
    return cached
