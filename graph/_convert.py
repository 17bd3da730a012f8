"""Bridges between :class:`CommGraph` and networkx / scipy.sparse.

``to_networkx`` and ``from_networkx`` are lossless together: a graph sent to
networkx and back equals the original (:meth:`CommGraph.equals`). networkx is a
dependency but is imported inside the functions, so importing commgraph stays cheap.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import scipy as sp

from ._commgraph import NODE_COLUMNS, CommGraph, _check_own_domains, _is_own, _NAT, _ts_series
from ._errors import ConfigError
from ._keys import stable_keys
from ._schema import LABELS, STRING_DTYPE

__all__ = ["to_networkx", "from_networkx", "to_scipy"]

_EDGE_WEIGHTS = ("count", *LABELS)


def to_networkx(G: CommGraph) -> Any:
    """The graph as a ``networkx.DiGraph`` keyed by address, with every attribute.

    Node attributes: ``key`` (int), ``domain``, ``internal``, ``first_seen``,
    ``last_seen`` (``pandas.Timestamp``, UTC), ``sent``, ``received``. Edge
    attributes: ``count``, ``first_seen``, ``last_seen``, ``safe``, ``attack``,
    ``spam``. Graph attributes: ``tenant_id``, ``as_of``, ``window``,
    ``own_domains``, ``messages_exact``. Nodes and edges are added in CommGraph order, so
    ``networkx.pagerank(nxg, weight="count")`` iterates the same matrix.

    Parameters
    ----------
    G : CommGraph

    Returns
    -------
    networkx.DiGraph

    Examples
    --------
    >>> from commgraph.graph import validate, build_graph, to_networkx
    >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1"],
    ...     "timestamp": ["2024-01-01T00:00Z"], "sender": ["a@t.com"], "recipients": ["b@t.com"],
    ...     "direction": "internal"})))
    >>> nxg = to_networkx(g)
    >>> list(nxg.edges(data="count"))
    [('a@t.com', 'b@t.com', 1)]
    >>> nxg.nodes["a@t.com"]["sent"], nxg.graph["tenant_id"]
    (1, 't')
    """
    import networkx as nx

    nxg = nx.DiGraph(tenant_id=G.tenant_id, as_of=G.as_of, window=G.window, own_domains=G.own_domains,
                     messages_exact=G.messages_exact)
    nodes = G.nodes
    address = nodes["address"].astype(object).tolist()
    columns = {
        "key": [int(k) for k in nodes["key"].to_numpy()],
        "domain": nodes["domain"].astype(object).where(nodes["domain"].notna(), None).tolist(),
        "internal": nodes["internal"].astype(bool).tolist(),
        "first_seen": list(nodes["first_seen"]),
        "last_seen": list(nodes["last_seen"]),
        "sent": nodes["sent"].astype(np.int64).tolist(),
        "received": nodes["received"].astype(np.int64).tolist(),
    }
    names = list(columns)
    nxg.add_nodes_from((a, dict(zip(names, vals))) for a, vals in zip(address, zip(*columns.values())))
    rows = G._row_of_edge().tolist()
    cols = G.adjacency.indices.tolist()
    first = list(_ts_series(G.edge_first_seen))
    last = list(_ts_series(G.edge_last_seen))
    counts = G.adjacency.data.tolist()
    labels = G.edge_label_counts.tolist()
    nxg.add_edges_from(
        (address[i], address[j], {"count": c, "first_seen": f, "last_seen": l_, **dict(zip(LABELS, lab))})
        for i, j, c, f, l_, lab in zip(rows, cols, counts, first, last, labels))
    return nxg


def _label_counts(given: np.ndarray, count: np.ndarray, label: str, weight: str, edge_list: list) -> np.ndarray:
    """An edge attribute of label counts, checked: a whole number of messages from 0 to the edge's count."""
    bad = ~np.isfinite(given) | (given < 0) | (given != np.floor(given)) | (given > count)
    if bad.any():
        shown = [(u, v, d.get(label)) for (u, v, d), b in zip(edge_list, bad) if b][:5]
        raise ConfigError(f"from_networkx: edge attribute {label!r} must be a whole number of messages from 0 to "
                          f"the edge's {weight!r}; got {shown}")
    return given.astype(np.uint32)


def from_networkx(graph: Any, *, tenant_id: str | None = None, weight: str = "count",
                  own_domains: Sequence[str] | None = None) -> CommGraph:
    """A CommGraph from a ``networkx.DiGraph`` whose nodes are addresses.

    Attributes written by :func:`to_networkx` are read back, so the round trip is
    lossless. For a plain DiGraph the missing attributes are derived: ``key``
    from the address (:func:`stable_keys`), ``domain`` from the text after ``@``,
    ``internal`` from ``own_domains`` (else False), ``sent``/``received`` as the
    weighted out/in-degree, times as missing (NaT), label counts as 0.
    Isolated nodes are kept.

    Parameters
    ----------
    graph : networkx.DiGraph
        Nodes are addresses (other node types are turned into strings).
    tenant_id : str, optional
        Default: ``graph.graph["tenant_id"]``.
    weight : str, default 'count'
        Edge attribute holding the message count (missing: 1). Must be a
        positive integer.
    own_domains : sequence of str, optional
        Marks nodes without an ``internal`` attribute (default:
        ``graph.graph["own_domains"]``).

    Returns
    -------
    CommGraph

    Examples
    --------
    >>> import networkx as nx
    >>> from commgraph.graph import from_networkx
    >>> d = nx.DiGraph([("a@t.com", "b@t.com"), ("b@t.com", "c@x.org")])
    >>> d.add_node("lonely@t.com")
    >>> g = from_networkx(d, tenant_id="t", own_domains=("t.com",))
    >>> g.nodes[["address", "internal", "sent", "received"]].sort_values("address").to_string(index=False)
    '     address  internal  sent  received\\n     a@t.com      True     1         0\\n     b@t.com      True     1         1\\n     c@x.org     False     0         1\\nlonely@t.com      True     0         0'
    """
    import networkx as nx

    if not isinstance(graph, nx.DiGraph) or graph.is_multigraph():
        raise ConfigError(f"from_networkx expects a networkx.DiGraph (got {type(graph).__name__}); "
                          "for an undirected graph use graph.to_directed(), for a multigraph aggregate it "
                          "into a DiGraph with a 'count' edge attribute first")
    meta = graph.graph
    tenant_id = tenant_id if tenant_id is not None else meta.get("tenant_id")
    own = _check_own_domains(own_domains if own_domains is not None else meta.get("own_domains"))

    node_list = list(graph.nodes)
    n = len(node_list)
    address = pd.Series([str(v) for v in node_list], dtype=STRING_DTYPE)
    attrs = [graph.nodes[v] for v in node_list]

    def column(name: str) -> list | None:
        if n and all(name in a for a in attrs):
            return [a[name] for a in attrs]
        return None

    key = column("key")
    key = (np.array([int(k) for k in key], dtype=np.uint64) if key is not None
           else stable_keys(address).astype(np.uint64))
    order = np.argsort(key, kind="stable")
    if len(np.unique(key)) != n:
        raise ConfigError("from_networkx: two nodes share a stable key (the same address written twice?)")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    position = {v: int(rank[i]) for i, v in enumerate(node_list)}

    # Edges, in CSR order.
    edge_list = list(graph.edges(data=True))
    m = len(edge_list)
    src = np.fromiter((position[u] for u, _, _ in edge_list), dtype=np.int64, count=m)
    dst = np.fromiter((position[v] for _, v, _ in edge_list), dtype=np.int64, count=m)
    count = np.fromiter((d.get(weight, 1) for _, _, d in edge_list), dtype=np.float64, count=m)
    if m and ((count < 1) | (count != np.floor(count)) | (count >= 2**32)).any():
        bad = [(u, v, d.get(weight)) for (u, v, d), c in zip(edge_list, count)
               if c < 1 or c != np.floor(c) or c >= 2**32][:5]
        raise ConfigError(f"from_networkx: edge attribute {weight!r} must be a positive integer message count; "
                          f"got {bad}")
    e_order = np.lexsort((dst, src))
    src, dst, count = src[e_order], dst[e_order], count[e_order].astype(np.uint32)
    edge_list = [edge_list[i] for i in e_order]
    first = _times([d.get("first_seen") for _, _, d in edge_list])
    last = _times([d.get("last_seen") for _, _, d in edge_list])
    labels = np.zeros((m, len(LABELS)), dtype=np.uint32)
    for j, lab in enumerate(LABELS):
        given = np.fromiter((d.get(lab, 0) for _, _, d in edge_list), dtype=np.float64, count=m)
        labels[:, j] = _label_counts(given, count, lab, weight, edge_list)
    over = labels.sum(axis=1, dtype=np.int64) > count
    if over.any():
        bad = [(u, v) for (u, v, _), o in zip(edge_list, over) if o][:5]
        raise ConfigError(f"from_networkx: the label counts of an edge ({', '.join(map(repr, LABELS))}) add up to "
                          f"more than its {weight!r} (a message has one label); edges {bad}")
    idx_dtype = np.int32 if max(n, m) < 2**31 else np.int64
    indptr = np.zeros(n + 1, dtype=idx_dtype)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    adjacency = sp.sparse.csr_array((count, dst.astype(idx_dtype), indptr), shape=(n, n))

    # Nodes, ordered by key.
    address = address.take(order).reset_index(drop=True)
    domain = column("domain")
    domain = (pd.Series(domain, dtype=STRING_DTYPE).take(order).reset_index(drop=True) if domain is not None
              else address.str.extract(r"@([^@]*)$", expand=False).astype(STRING_DTYPE))
    internal = column("internal")
    if internal is not None:
        # True/False, or 1/0 (GML has no booleans; a DataFrame column gives numpy integers); np.asarray(..., bool)
        # made the text 'False' True.
        odd = [v for v in internal if not (isinstance(v, (bool, np.bool_)) or (
            isinstance(v, (int, np.integer)) and v in (0, 1)))]
        if odd:
            raise ConfigError(f"from_networkx: node attribute 'internal' must be True or False (or 1 or 0); got "
                              f"{odd[:5]}")
        internal = np.asarray(internal, dtype=bool)[order]
    elif own is not None:
        internal = _is_own(address, own)
    else:
        internal = np.zeros(n, dtype=bool)
    sent, received = column("sent"), column("received")
    sent = (np.asarray(sent, dtype=np.int64)[order] if sent is not None
            else np.bincount(src, weights=count, minlength=n).astype(np.int64))
    received = (np.asarray(received, dtype=np.int64)[order] if received is not None
                else np.bincount(dst, weights=count, minlength=n).astype(np.int64))
    node_first, node_last = column("first_seen"), column("last_seen")
    if node_first is None or node_last is None:
        node_first = np.full(n, _NAT, dtype=np.int64)
        node_last = np.full(n, _NAT, dtype=np.int64)
        ef, el = first.view(np.int64), last.view(np.int64)
        has = ef != _NAT
        big = np.where(has, ef, np.iinfo(np.int64).max)
        tmp = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        for ends in (src, dst):
            np.minimum.at(tmp, ends, big)
            np.maximum.at(node_last, ends, el)
        node_first = np.where(tmp == np.iinfo(np.int64).max, _NAT, tmp).view("M8[ns]")
        node_last = node_last.view("M8[ns]")
    else:
        node_first = _times(node_first)[order]
        node_last = _times(node_last)[order]
    nodes = pd.DataFrame({
        "key": key[order], "address": address, "domain": domain, "internal": internal,
        "first_seen": _ts_series(node_first), "last_seen": _ts_series(node_last), "sent": sent,
        "received": received,
    }, columns=list(NODE_COLUMNS))
    return CommGraph(nodes, adjacency, first, last, labels, tenant_id=tenant_id, as_of=meta.get("as_of"),
                     window=meta.get("window"), own_domains=own, messages_exact=bool(meta.get("messages_exact", True)))


def _times(values: list) -> np.ndarray:
    """Timestamps (or None/NaT) -> datetime64[ns] UTC (naive), NaT for missing."""
    if not values:
        return np.zeros(0, dtype="M8[ns]")
    idx = pd.DatetimeIndex([pd.NaT if v is None else pd.Timestamp(v) for v in values])
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.as_unit("ns").to_numpy(dtype="M8[ns]")


def to_scipy(G: CommGraph, weight: str | None = "count") -> Any:
    """The adjacency as a new ``scipy.sparse.csr_array`` (rows senders, columns recipients).

    Rows and columns follow ``G.nodes``; the result equals
    ``networkx.to_scipy_sparse_array(G.to_networkx(), nodelist=G.nodes["address"], weight=weight)``.

    Parameters
    ----------
    G : CommGraph
    weight : {'count', 'safe', 'attack', 'spam'} or None, default 'count'
        The edge value; ``None`` gives 1 per edge.

    Returns
    -------
    scipy.sparse.csr_array of int64

    Examples
    --------
    >>> from commgraph.graph import validate, build_graph, to_scipy
    >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2"],
    ...     "timestamp": ["2024-01-01T00:00Z"] * 2, "sender": ["a@t.com"] * 2,
    ...     "recipients": ["b@t.com", "b@t.com"], "direction": "internal"})))
    >>> g.nodes["address"].tolist()
    ['b@t.com', 'a@t.com']
    >>> to_scipy(g).toarray()
    array([[0, 0],
           [2, 0]])
    """
    a = G.adjacency
    if weight is None:
        data = np.ones(a.nnz, dtype=np.int64)
    elif weight == "count":
        data = a.data.astype(np.int64)
    elif weight in LABELS:
        data = G.edge_label_counts[:, LABELS.index(weight)].astype(np.int64)
    else:
        raise ConfigError(f"The 'weight' parameter of to_scipy must be one of {[*_EDGE_WEIGHTS, None]}. "
                          f"Got {weight!r} instead.")
    return sp.sparse.csr_array((data, a.indices.copy(), a.indptr.copy()), shape=a.shape)
