"""The per-tenant communication graph: a node table and a CSR sender -> recipient adjacency.

``build_graph`` turns the edges of one tenant (message x recipient rows) into a
:class:`CommGraph` without any per-row Python: addresses are interned through
their stable keys, (sender, recipient) pairs are aggregated with numpy, and the
result is held in ``scipy.sparse`` arrays. networkx is used only at the edge
(:meth:`CommGraph.to_networkx`).
"""

from __future__ import annotations

import html
import warnings
from concurrent.futures import Future
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import scipy as sp

from ._addresses import parse_addresses
from ._background import submit
from ._csr import PairGroups, edge_label_counts, edge_times, group_pairs, index_dtype
from ._errors import CommGraphError, ConfigError, Problem, ReasonCode, SchemaError, checked_int, plural
from ._messages import Messages
from ._schema import LABELS, STRING_DTYPE, TIMESTAMP_DTYPE
from ._tenants import InferredOwnDomainsWarning, infer_own_domains, normalise_own_domain
from ._timestamps import duration, instant_problem, utc_instant

__all__ = ["CommGraph", "DomainView", "build_graph", "EDGE_COLUMNS", "NODE_COLUMNS", "GRAPH_INPUT_COLUMNS"]

#: Columns of the node table (:attr:`CommGraph.nodes`), in order.
NODE_COLUMNS: tuple[str, ...] = (
    "key", "address", "domain", "internal", "first_seen", "last_seen", "sent", "received",
)
#: Columns of :meth:`CommGraph.edges`, in order.
EDGE_COLUMNS: tuple[str, ...] = (
    "sender", "recipient", "sender_id", "recipient_id", "count", "first_seen", "last_seen", *LABELS,
)
#: Columns an edges frame must have for :func:`build_graph`.
GRAPH_INPUT_COLUMNS: tuple[str, ...] = (
    "timestamp", "sender", "sender_domain", "sender_key", "recipient", "recipient_domain", "recipient_key",
)

_NAT = np.iinfo(np.int64).min  # the int64 value of NaT
_INT64_MAX = np.iinfo(np.int64).max


# --- the graph -------------------------------------------------------------------------------


def _short(window: pd.Timedelta) -> str:
    """A window as people write it: ``30d``, ``36h``, ``90min`` (else pandas' own text).

    Examples
    --------
    >>> _short(pd.Timedelta("30D")), _short(pd.Timedelta("36h")), _short(pd.Timedelta("90min"))
    ('30d', '36h', '90min')
    """
    seconds = pd.Timedelta(window).total_seconds()
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return str(window)


class CommGraph:
    """The communication graph of one tenant: who wrote to whom, how often, when, with which labels.

    Built by :func:`build_graph` (or :meth:`from_networkx`), not directly.
    Nodes are addresses; node ``i`` is row ``i`` of :attr:`nodes`, and nodes are
    ordered by stable key, so the same mail gives the same graph whatever the
    order of its rows. Algorithms live in module-level functions that take the
    graph first (:func:`pagerank`, :func:`hop_distance`, ...) and return arrays
    aligned with :attr:`nodes`.

    Parameters
    ----------
    nodes : pandas.DataFrame
        The node table, columns :data:`NODE_COLUMNS`, indexed by node id ``0..n-1``.
    adjacency : scipy.sparse.csr_array
        ``n x n``, sender rows, recipient columns, sorted indices; ``data`` holds
        the message count of each edge (``uint32``).
    edge_first_seen, edge_last_seen : numpy.ndarray of datetime64[ns]
        Per edge (aligned with ``adjacency.data``): first and last message, UTC.
    edge_label_counts : numpy.ndarray of uint32, shape (n_edges, 3)
        Per edge: messages labelled ``safe``, ``attack``, ``spam`` (columns in
        the order of :data:`LABELS`).
    tenant_id : str or None
    as_of : pandas.Timestamp or None
        Only messages strictly before it were counted.
    window : pandas.Timedelta or None
        Only messages in ``[as_of - window, as_of)`` were counted.
    own_domains : tuple of str or None
        The tenant's own domains used to mark nodes internal (given, those
        validation used, or guessed for a tenant whose mail is all inbound);
        ``None`` when internal was inferred from ``direction``.
    messages_exact : bool, default True
        Whether :attr:`n_messages` is exact: False for a subgraph where a sender
        keeps some but not all of several correspondents (see :attr:`n_messages`).

    Attributes
    ----------
    nodes : pandas.DataFrame
        ``key`` (uint64 stable key), ``address``, ``domain`` (registrable),
        ``internal`` (bool), ``first_seen``/``last_seen`` (UTC, over messages sent
        or received), ``sent`` (messages sent), ``received`` (messages received:
        one per (message, recipient)). In a subgraph (:meth:`subgraph`,
        :meth:`ego`, :meth:`internal_subgraph`) these describe the node in the
        whole tenant graph.
    adjacency : scipy.sparse.csr_array
    edge_first_seen, edge_last_seen, edge_label_counts : numpy.ndarray

    Examples
    --------
    >>> from commgraph.graph import validate, build_graph
    >>> m = validate(pd.DataFrame({
    ...     "tenant_id": "acme", "message_id": ["m1", "m2", "m3", "m4"],
    ...     "timestamp": ["2024-05-01T09:00Z", "2024-05-02T09:00Z", "2024-05-03T09:00Z", "2024-05-04T09:00Z"],
    ...     "sender": ["ann@acme.com", "bob@vendor.com", "ann@acme.com", "eve@evil.io"],
    ...     "recipients": ["bob@vendor.com; cy@acme.com", "ann@acme.com", "bob@vendor.com", "ann@acme.com"],
    ...     "label": [None, None, None, "attack"]}),
    ...     tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}])
    >>> g = build_graph(m, tenant_id="acme")
    >>> g
    CommGraph(tenant 'acme': 4 nodes (2 internal), 4 edges, 4 messages; 2024-05-01 .. 2024-05-04 UTC; top correspondents: ann@acme.com (4), bob@vendor.com (3), cy@acme.com (1))
    >>> g.edge("ann@acme.com", "bob@vendor.com")["count"]
    2
    >>> g.edge("eve@evil.io", "ann@acme.com")["attack"]
    1
    >>> bool(g.wrote_back(["ann@acme.com"], ["bob@vendor.com"])[0])
    True
    """

    __slots__ = ("nodes", "adjacency", "edge_first_seen", "edge_last_seen", "edge_label_counts",
                 "tenant_id", "as_of", "window", "own_domains", "messages_exact", "_cache")

    def __init__(self, nodes: pd.DataFrame, adjacency: Any, edge_first_seen: np.ndarray,
                 edge_last_seen: np.ndarray, edge_label_counts: np.ndarray, *, tenant_id: str | None = None,
                 as_of: pd.Timestamp | None = None, window: pd.Timedelta | None = None,
                 own_domains: tuple[str, ...] | None = None, messages_exact: bool = True):
        self.nodes = nodes
        self.adjacency = adjacency
        self.edge_first_seen = edge_first_seen
        self.edge_last_seen = edge_last_seen
        self.edge_label_counts = edge_label_counts
        self.tenant_id = tenant_id
        self.as_of = as_of
        self.window = window
        self.own_domains = own_domains
        self.messages_exact = messages_exact
        self._cache: dict[str, Any] = {}

    def __getstate__(self) -> dict:
        return {s: getattr(self, s) for s in self.__slots__ if s != "_cache"}

    def __setstate__(self, state: dict) -> None:
        self.messages_exact = True  # (a graph pickled before the attribute was a whole tenant's)
        for k, v in state.items():
            setattr(self, k, v)
        self._cache = {}

    # -- sizes ---------------------------------------------------------------------------------

    @property
    def n_nodes(self) -> int:
        """Number of nodes (addresses)."""
        return int(self.adjacency.shape[0])

    @property
    def n_edges(self) -> int:
        """Number of distinct (sender, recipient) edges."""
        return int(self.adjacency.nnz)

    @property
    def n_messages(self) -> int:
        """Number of messages on the graph's edges (each message counted once, whatever its recipients).

        Per sender, its messages sent (``nodes['sent']``), but no more than its edges
        carry (the sum of their counts): in a graph from :func:`build_graph` the two
        agree, while in a subgraph (:meth:`subgraph`, :meth:`ego`,
        :meth:`internal_subgraph`), whose nodes keep their whole-tenant ``sent``,
        only the messages on the kept edges count. That is exact for a sender that
        keeps all its correspondents or one of them; one that keeps some of several
        may count a message it sent to several kept nodes more than once (the graph
        holds no message ids), never more than it sent: then :attr:`messages_exact`
        is False and the repr says "at most".

        Examples
        --------
        >>> from commgraph.graph import validate, build_graph
        >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2"],
        ...     "timestamp": ["2024-01-01T00:00Z"] * 2, "sender": ["a@t.com"] * 2,
        ...     "recipients": ["b@t.com; c@t.com", "c@t.com"], "direction": "internal"})))
        >>> g.n_messages, g.subgraph(["a@t.com", "b@t.com"]).n_messages, g.ego("c@t.com").n_messages
        (2, 1, 2)
        >>> g.subgraph(["a@t.com", "b@t.com"]).messages_exact
        True
        """
        on_edges = np.bincount(self._row_of_edge(), weights=self.adjacency.data, minlength=self.n_nodes)
        return int(np.minimum(self.nodes["sent"].to_numpy(dtype=np.int64), on_edges).sum())

    @property
    def nbytes(self) -> int:
        """Bytes held by the adjacency, the per-edge arrays and the node table (strings included)."""
        a = self.adjacency
        edge = (a.data.nbytes + a.indices.nbytes + a.indptr.nbytes + self.edge_first_seen.nbytes
                + self.edge_last_seen.nbytes + self.edge_label_counts.nbytes)
        return int(edge + self.nodes.memory_usage(index=False, deep=True).sum())

    # -- lookups -------------------------------------------------------------------------------

    def _row_of_edge(self) -> np.ndarray:
        rows = self._cache.get("rows")
        if rows is None:
            rows = np.repeat(np.arange(self.n_nodes, dtype=self.adjacency.indices.dtype),
                             np.diff(self.adjacency.indptr))
            self._cache["rows"] = rows
        return rows

    def _pair_codes(self) -> np.ndarray:
        codes = self._cache.get("pairs")
        if codes is None:
            # CSR with sorted indices: row * n + col is increasing, so lookups are a binary search.
            codes = self._row_of_edge().astype(np.int64) * self.n_nodes + self.adjacency.indices
            self._cache["pairs"] = codes
        return codes

    def node_ids(self, values: Any) -> np.ndarray:
        """Node ids (rows of :attr:`nodes`) of addresses, stable keys or node ids; -1 where unknown.

        Parameters
        ----------
        values : str, sequence of str, uint64 array, or integers
            Strings are addresses, in any form validation accepts: an address not
            found as given is normalised as validation does (``Ann@Acme.COM`` and
            ``"Ann" <ann@acme.com>`` find ``ann@acme.com``); ``numpy.uint64`` values
            are stable keys; other integers are node ids and are returned as they
            are (after a range check).

        Returns
        -------
        numpy.ndarray of int64

        Examples
        --------
        >>> from commgraph.graph import validate, build_graph, stable_keys
        >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1"],
        ...     "timestamp": ["2024-01-01T00:00Z"], "sender": ["a@t.com"], "recipients": ["b@t.com"],
        ...     "direction": "internal"})))
        >>> g.nodes["address"].tolist()
        ['b@t.com', 'a@t.com']
        >>> g.node_ids(["b@t.com", "nobody@t.com", "B@T.com"]).tolist()
        [0, -1, 0]
        >>> g.node_ids(stable_keys(["a@t.com"])).tolist() == g.node_ids(["a@t.com"]).tolist()
        True
        """
        arr = _as_array(values)
        n = self.n_nodes
        if not len(arr):
            return np.zeros(0, dtype=np.int64)
        if arr.dtype.kind in "OUT" or isinstance(arr.dtype, pd.StringDtype):
            index = self._cache.get("address_index")
            if index is None:
                index = pd.Index(self.nodes["address"].astype(STRING_DTYPE))
                self._cache["address_index"] = index
            query = pd.Index(arr, dtype=STRING_DTYPE)
            ids = index.get_indexer(query).astype(np.int64)
            miss = np.flatnonzero(ids < 0)
            if len(miss):
                # Only the addresses not found as given are normalised (most lookups are already normal).
                normal = parse_addresses(pd.Series(query[miss], dtype=STRING_DTYPE)).address
                ids[miss] = index.get_indexer(pd.Index(normal, dtype=STRING_DTYPE))
            return ids
        if arr.dtype == np.uint64:
            keys = self.nodes["key"].to_numpy()
            pos = np.searchsorted(keys, arr)
            pos_c = np.minimum(pos, max(n - 1, 0))
            found = (pos < n) & (keys[pos_c] == arr) if n else np.zeros(len(arr), dtype=bool)
            return np.where(found, pos_c, -1).astype(np.int64)
        if arr.dtype.kind in "iu":
            ids = arr.astype(np.int64)
            bad = (ids < -1) | (ids >= n)
            if bad.any():
                raise CommGraphError(f"node ids must be in [0, {n}) or -1 (got {ids[bad][:5].tolist()}); "
                                     "pass stable keys as numpy.uint64 and addresses as strings")
            return ids
        raise ConfigError(f"nodes must be given as addresses (str), stable keys (uint64) or node ids (int); "
                          f"got an array of dtype {arr.dtype}")

    def node_id(self, node: str | int | np.integer) -> int:
        """The node id of one address, stable key (``numpy.uint64``) or node id; raises when unknown.

        Addresses are normalised as in :meth:`node_ids`.

        Examples
        --------
        >>> from commgraph.graph import validate, build_graph
        >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1"],
        ...     "timestamp": ["2024-01-01T00:00Z"], "sender": ["a@t.com"], "recipients": ["b@t.com"],
        ...     "direction": "internal"})))
        >>> g.node_id("a@t.com"), g.node_id("A@T.com")
        (1, 1)
        >>> g.node_id("z@t.com")
        Traceback (most recent call last):
        ...
        commgraph.graph._errors.CommGraphError: 'z@t.com' is not a node of tenant 't' (2 nodes); look addresses up in g.nodes['address']
        """
        i = int(self.node_ids([node] if not isinstance(node, np.ndarray) else node)[0])
        if i < 0:
            raise CommGraphError(f"{node!r} is not a node of tenant {self.tenant_id!r} ({self.n_nodes:,} nodes); "
                                 "look addresses up in g.nodes['address']")
        return i

    def edge_ids(self, senders: Any, recipients: Any) -> np.ndarray:
        """Positions of (sender, recipient) edges in the per-edge arrays; -1 where there is no edge.

        Parameters
        ----------
        senders, recipients : addresses, stable keys or node ids (see :meth:`node_ids`)
            Aligned with each other.

        Returns
        -------
        numpy.ndarray of int64
            Index into ``adjacency.data``, ``edge_first_seen``, ...

        Examples
        --------
        >>> from commgraph.graph import validate, build_graph
        >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1"],
        ...     "timestamp": ["2024-01-01T00:00Z"], "sender": ["a@t.com"], "recipients": ["b@t.com"],
        ...     "direction": "internal"})))
        >>> g.edge_ids(["a@t.com", "b@t.com"], ["b@t.com", "a@t.com"]).tolist()
        [0, -1]
        """
        s = self.node_ids(senders)
        r = self.node_ids(recipients)
        if len(s) != len(r):
            raise ConfigError(f"senders and recipients must have the same length (got {len(s)} and {len(r)})")
        codes = self._pair_codes()
        out = np.full(len(s), -1, dtype=np.int64)
        ok = (s >= 0) & (r >= 0)
        if not ok.any() or not len(codes):
            return out
        q = s[ok] * self.n_nodes + r[ok]
        pos = np.searchsorted(codes, q)
        pos_c = np.minimum(pos, len(codes) - 1)
        out[ok] = np.where(codes[pos_c] == q, pos_c, -1)
        return out

    def edge(self, sender: str | int | np.integer, recipient: str | int | np.integer) -> dict:
        """The attributes of one edge: count, first/last seen and counts by label.

        Raises :class:`CommGraphError` when either node or the edge does not exist.

        Examples
        --------
        >>> from commgraph.graph import validate, build_graph
        >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1"],
        ...     "timestamp": ["2024-01-01T00:00Z"], "sender": ["a@t.com"], "recipients": ["b@t.com"],
        ...     "direction": "internal"})))
        >>> g.edge("a@t.com", "b@t.com")
        {'count': 1, 'first_seen': Timestamp('2024-01-01 00:00:00+0000', tz='UTC'), 'last_seen': Timestamp('2024-01-01 00:00:00+0000', tz='UTC'), 'safe': 0, 'attack': 0, 'spam': 0}
        """
        s, r = self.node_id(sender), self.node_id(recipient)
        e = int(self.edge_ids(np.array([s]), np.array([r]))[0])
        if e < 0:
            raise CommGraphError(f"no edge {self.nodes['address'].iat[s]!r} -> {self.nodes['address'].iat[r]!r} "
                                 f"in tenant {self.tenant_id!r}")
        return self._edge_attrs(e)

    def _edge_attrs(self, e: int) -> dict:
        attrs = {"count": int(self.adjacency.data[e]),
                 "first_seen": _ts(self.edge_first_seen[e]), "last_seen": _ts(self.edge_last_seen[e])}
        attrs.update({lab: int(self.edge_label_counts[e, j]) for j, lab in enumerate(LABELS)})
        return attrs

    def wrote_back(self, senders: Any, recipients: Any) -> np.ndarray:
        """Whether each recipient ever wrote to its sender (the reverse edge exists).

        Examples
        --------
        >>> from commgraph.graph import validate, build_graph
        >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2"],
        ...     "timestamp": ["2024-01-01T00:00Z"] * 2, "sender": ["a@t.com", "b@t.com"],
        ...     "recipients": ["b@t.com; c@t.com", "a@t.com"], "direction": "internal"})))
        >>> g.wrote_back(["a@t.com", "a@t.com"], ["b@t.com", "c@t.com"]).tolist()
        [True, False]
        """
        return self.edge_ids(recipients, senders) >= 0

    @property
    def reverse_adjacency(self) -> Any:
        """Recipient -> sender CSR (``n x n``) whose ``data`` are edge positions in the per-edge arrays.

        Computed once from :attr:`adjacency` (a transpose, not a rebuild) and cached.

        Examples
        --------
        >>> from commgraph.graph import validate, build_graph
        >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1"],
        ...     "timestamp": ["2024-01-01T00:00Z"], "sender": ["a@t.com"], "recipients": ["b@t.com; c@t.com"],
        ...     "direction": "internal"})))
        >>> r = g.reverse_adjacency
        >>> c, a = g.node_id("c@t.com"), g.node_id("a@t.com")
        >>> r[[c], :].indices.tolist() == [a]
        True
        >>> g.edge_ids(["a@t.com"], ["c@t.com"]).tolist() == r[[c], :].data.tolist()
        True
        """
        rev = self._cache.get("reverse")
        if rev is None:
            a = self.adjacency
            pos_dtype = np.int32 if a.nnz < 2**31 else np.int64
            rev = sp.sparse.csr_array((np.arange(a.nnz, dtype=pos_dtype), a.indices, a.indptr),
                                      shape=a.shape).T.tocsr()
            rev.sort_indices()
            self._cache["reverse"] = rev
        return rev

    def successors(self, node: str | int | np.integer) -> np.ndarray:
        """Node ids the node wrote to, ascending.

        Examples
        --------
        >>> from commgraph.graph import validate, build_graph
        >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1"],
        ...     "timestamp": ["2024-01-01T00:00Z"], "sender": ["a@t.com"], "recipients": ["b@t.com; c@t.com"],
        ...     "direction": "internal"})))
        >>> g.nodes["address"].iloc[g.successors("a@t.com")].tolist()
        ['b@t.com', 'c@t.com']
        """
        i = self.node_id(node)
        a = self.adjacency
        return a.indices[a.indptr[i]:a.indptr[i + 1]].astype(np.int64)

    def predecessors(self, node: str | int | np.integer) -> np.ndarray:
        """Node ids that wrote to the node, ascending.

        Examples
        --------
        >>> from commgraph.graph import validate, build_graph
        >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1"],
        ...     "timestamp": ["2024-01-01T00:00Z"], "sender": ["a@t.com"], "recipients": ["b@t.com; c@t.com"],
        ...     "direction": "internal"})))
        >>> g.nodes["address"].iloc[g.predecessors("c@t.com")].tolist()
        ['a@t.com']
        """
        i = self.node_id(node)
        r = self.reverse_adjacency
        return r.indices[r.indptr[i]:r.indptr[i + 1]].astype(np.int64)

    # -- tables --------------------------------------------------------------------------------

    def edges(self) -> pd.DataFrame:
        """One row per distinct (sender, recipient) edge, in CSR order.

        Columns :data:`EDGE_COLUMNS`: addresses, node ids, message ``count``,
        ``first_seen``/``last_seen`` (UTC) and message counts by label.

        Examples
        --------
        >>> from commgraph.graph import validate, build_graph
        >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2"],
        ...     "timestamp": ["2024-01-01T00:00Z", "2024-01-03T00:00Z"], "sender": ["a@t.com"] * 2,
        ...     "recipients": ["b@t.com", "b@t.com"], "direction": "internal"})))
        >>> g.edges()[["sender", "recipient", "count", "first_seen", "last_seen"]]
            sender recipient  count                first_seen                 last_seen
        0  a@t.com   b@t.com      2 2024-01-01 00:00:00+00:00 2024-01-03 00:00:00+00:00
        """
        rows = self._row_of_edge()
        cols = self.adjacency.indices
        address = self.nodes["address"].reset_index(drop=True)
        out = {
            "sender": address.take(rows).reset_index(drop=True),
            "recipient": address.take(cols).reset_index(drop=True),
            "sender_id": rows.astype(np.int64),
            "recipient_id": cols.astype(np.int64),
            "count": self.adjacency.data.astype(np.int64),
            "first_seen": _ts_series(self.edge_first_seen),
            "last_seen": _ts_series(self.edge_last_seen),
        }
        for j, lab in enumerate(LABELS):
            out[lab] = self.edge_label_counts[:, j].astype(np.int64)
        return pd.DataFrame(out)

    # -- views ---------------------------------------------------------------------------------

    def subgraph(self, nodes: Any) -> "CommGraph":
        """The sub-graph induced by some nodes (every edge among them), as a new CommGraph.

        Node rows keep their whole-tenant attributes (``sent``, ``first_seen``, ...);
        :attr:`n_messages` counts the messages on the kept edges.

        Examples
        --------
        >>> from commgraph.graph import validate, build_graph
        >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1"],
        ...     "timestamp": ["2024-01-01T00:00Z"], "sender": ["a@t.com"], "recipients": ["b@t.com; c@t.com"],
        ...     "direction": "internal"})))
        >>> g.subgraph(["a@t.com", "c@t.com"]).edges()[["sender", "recipient"]]
            sender recipient
        0  a@t.com   c@t.com
        """
        ids = self.node_ids(nodes)
        if (ids < 0).any():
            raise CommGraphError(f"subgraph: {int((ids < 0).sum())} of the nodes are not in tenant "
                                 f"{self.tenant_id!r}")
        keep = np.zeros(self.n_nodes, dtype=bool)
        keep[ids] = True
        return self._induced(keep)

    def _induced(self, keep: np.ndarray) -> "CommGraph":
        new_id = np.cumsum(keep) - 1
        rows = self._row_of_edge()
        cols = self.adjacency.indices
        em = keep[rows] & keep[cols]
        m = int(keep.sum())
        idx_dtype = np.int32 if m < 2**31 and em.sum() < 2**31 else np.int64
        new_rows = new_id[rows[em]]
        indptr = np.zeros(m + 1, dtype=idx_dtype)
        np.cumsum(np.bincount(new_rows, minlength=m), out=indptr[1:])
        adjacency = sp.sparse.csr_array((self.adjacency.data[em], new_id[cols[em]].astype(idx_dtype), indptr),
                                        shape=(m, m))
        nodes = self.nodes.iloc[np.flatnonzero(keep)].reset_index(drop=True)
        # A sender keeping some of several correspondents may have sent one message to two of them: n_messages
        # (without message ids) counts it twice.
        kept_degree, degree = np.diff(indptr), np.diff(self.adjacency.indptr)[keep]
        exact = self.messages_exact and not ((kept_degree >= 2) & (kept_degree < degree)).any()
        return CommGraph(nodes, adjacency, self.edge_first_seen[em], self.edge_last_seen[em],
                         self.edge_label_counts[em], tenant_id=self.tenant_id, as_of=self.as_of,
                         window=self.window, own_domains=self.own_domains, messages_exact=bool(exact))

    def internal_subgraph(self) -> "CommGraph":
        """Only internal nodes and the edges among them.

        Examples
        --------
        >>> from commgraph.graph import validate, build_graph
        >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1"],
        ...     "timestamp": ["2024-01-01T00:00Z"], "sender": ["a@t.com"], "recipients": ["b@t.com; x@y.org"]}),
        ...     tenants=[{"tenant_id": "t", "own_domains": ["t.com"]}]))
        >>> sorted(g.internal_subgraph().nodes["address"])
        ['a@t.com', 'b@t.com']
        """
        return self._induced(self.nodes["internal"].to_numpy(dtype=bool))

    def ego(self, address: str | int | np.integer, radius: int = 1, *, undirected: bool = True) -> "CommGraph":
        """The neighbourhood of one node: nodes within ``radius`` hops and every edge among them.

        Parameters
        ----------
        address : str, numpy.uint64 or int
            The centre, as an address, stable key or node id.
        radius : int, default 1
            Hops from the centre.
        undirected : bool, default True
            Follow edges both ways (correspondents); with ``False`` only follow
            sender -> recipient, as ``networkx.ego_graph`` does on a DiGraph.

        Returns
        -------
        CommGraph
            Equal to ``networkx.ego_graph(g.to_networkx(), address, radius, undirected=undirected)``.

        Examples
        --------
        >>> from commgraph.graph import validate, build_graph
        >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2"],
        ...     "timestamp": ["2024-01-01T00:00Z"] * 2, "sender": ["a@t.com", "c@t.com"],
        ...     "recipients": ["b@t.com", "d@t.com"], "direction": "internal"})))
        >>> sorted(g.ego("b@t.com").nodes["address"])
        ['a@t.com', 'b@t.com']
        >>> g.ego("b@t.com", undirected=False).nodes["address"].tolist()
        ['b@t.com']
        """
        radius = checked_int(radius, "radius", "ego", 0)
        centre = self.node_id(address)
        from ._metrics import _bfs

        adjacency = self.adjacency
        if undirected:
            adjacency = _binary(self.adjacency) + _binary(self.adjacency).T.tocsr()
            adjacency = adjacency.tocsr()
        dist = _bfs(adjacency, np.array([centre]), int(radius))
        return self._induced(dist >= 0)

    def domain_view(self) -> "DomainView":
        """The sender-domain view: one row per sender domain, columns are recipient nodes.

        Examples
        --------
        >>> from commgraph.graph import validate, build_graph
        >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2"],
        ...     "timestamp": ["2024-01-01T00:00Z"] * 2, "sender": ["a@x.com", "b@x.com"],
        ...     "recipients": ["c@t.com", "c@t.com"]}), tenants=[{"tenant_id": "t", "own_domains": ["t.com"]}]))
        >>> d = g.domain_view()
        >>> d.edges()[["sender_domain", "recipient", "count"]]
          sender_domain recipient  count
        0         x.com   c@t.com      2
        """
        dv = self._cache.get("domain_view")
        if dv is None:
            dv = _domain_view(self)
            self._cache["domain_view"] = dv
        return dv

    # -- bridges -------------------------------------------------------------------------------

    def to_networkx(self) -> Any:
        """A ``networkx.DiGraph`` with node and edge attributes (see :func:`to_networkx`)."""
        from ._convert import to_networkx

        return to_networkx(self)

    def to_scipy(self, weight: str | None = "count") -> Any:
        """The adjacency as a new ``scipy.sparse.csr_array`` (see :func:`to_scipy`)."""
        from ._convert import to_scipy

        return to_scipy(self, weight=weight)

    @classmethod
    def from_networkx(cls, graph: Any, **kwargs: Any) -> "CommGraph":
        """A CommGraph from a ``networkx.DiGraph`` (see :func:`from_networkx`)."""
        from ._convert import from_networkx

        return from_networkx(graph, **kwargs)

    # -- comparison and display ----------------------------------------------------------------

    def equals(self, other: "CommGraph") -> bool:
        """Whether two graphs hold the same nodes, edges, attributes and metadata.

        Examples
        --------
        >>> from commgraph.graph import validate, build_graph
        >>> m = validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1"],
        ...     "timestamp": ["2024-01-01T00:00Z"], "sender": ["a@t.com"], "recipients": ["b@t.com"],
        ...     "direction": "internal"}))
        >>> build_graph(m).equals(build_graph(m))
        True
        """
        if not isinstance(other, CommGraph):
            return False
        a, b = self.adjacency, other.adjacency
        if a.shape != b.shape or a.nnz != b.nnz:
            return False
        same_meta = (self.tenant_id == other.tenant_id and _same(self.as_of, other.as_of)
                     and _same(self.window, other.window) and self.own_domains == other.own_domains
                     and self.messages_exact == other.messages_exact)
        return bool(same_meta
                    and np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
                    and np.array_equal(a.data, b.data)
                    and np.array_equal(self.edge_first_seen.view(np.int64), other.edge_first_seen.view(np.int64))
                    and np.array_equal(self.edge_last_seen.view(np.int64), other.edge_last_seen.view(np.int64))
                    and np.array_equal(self.edge_label_counts, other.edge_label_counts)
                    and self.nodes.reset_index(drop=True).equals(other.nodes.reset_index(drop=True)))

    def _span(self) -> str:
        if not self.n_edges:
            return "empty"
        first = self.edge_first_seen[~np.isnat(self.edge_first_seen)]
        last = self.edge_last_seen[~np.isnat(self.edge_last_seen)]
        if not len(first):
            return "no times"
        return f"{_ts(first.min()):%Y-%m-%d} .. {_ts(last.max()):%Y-%m-%d} UTC"

    def top_correspondents(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` nodes with the most messages sent plus received.

        Examples
        --------
        >>> from commgraph.graph import validate, build_graph
        >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1"],
        ...     "timestamp": ["2024-01-01T00:00Z"], "sender": ["a@t.com"], "recipients": ["b@t.com; c@t.com"],
        ...     "direction": "internal"})))
        >>> g.top_correspondents(2)[["address", "sent", "received", "messages"]]
           address  sent  received  messages
        0  b@t.com     0         1         1
        1  a@t.com     1         0         1
        """
        total = self.nodes["sent"].to_numpy(dtype=np.int64) + self.nodes["received"].to_numpy(dtype=np.int64)
        n = checked_int(n, "n", "top_correspondents", 0)
        order = np.lexsort((np.arange(len(total)), -total))[:n]
        top = self.nodes.iloc[order][["address", "domain", "internal", "sent", "received"]]
        return top.assign(messages=total[order]).reset_index(drop=True)

    def _sizes(self) -> str:
        """``1 node (1 internal), 0 edges, 0 messages``: each count singular at 1 ("at most" where not exact)."""
        n_int = int(self.nodes["internal"].sum()) if self.n_nodes else 0
        return (f"{plural(self.n_nodes, 'node')} ({n_int:,} internal), {plural(self.n_edges, 'edge')}, "
                f"{'' if self.messages_exact else 'at most '}{plural(self.n_messages, 'message')}")

    def __repr__(self) -> str:
        top = self.top_correspondents(3)
        shown = ", ".join(f"{a} ({m:,})" for a, m in zip(top["address"], top["messages"]))
        extra = ""
        if self.as_of is not None:
            extra = f"; as of {self.as_of:%Y-%m-%d %H:%M} UTC" + (f", window {_short(self.window)}" if self.window
                                                                     else "")
        return (f"CommGraph(tenant {self.tenant_id!r}: {self._sizes()}; {self._span()}{extra}"
                + (f"; top correspondents: {shown}" if shown else "") + ")")

    def _repr_html_(self) -> str:
        as_of = "" if self.as_of is None else f", as of {html.escape(str(self.as_of))}" + (
            f", window {_short(self.window)}" if self.window else "")
        return (f"<div><b>CommGraph</b> tenant {html.escape(repr(self.tenant_id))}: {self._sizes()} "
                f"({html.escape(self._span())}{as_of})"
                f"<p>Top correspondents:</p>{self.top_correspondents(10).to_html(index=False)}</div>")


class DomainView:
    """Sender domain -> recipient: the tenant's graph with senders grouped by registrable domain.

    Built by :meth:`CommGraph.domain_view`.

    Attributes
    ----------
    domains : pandas.Index
        Sender domains, sorted; row ``i`` of :attr:`adjacency` is ``domains[i]``.
    recipients : pandas.DataFrame
        The graph's node table; column ``j`` of :attr:`adjacency` is its row ``j``.
    adjacency : scipy.sparse.csr_array
        ``n_domains x n_nodes`` message counts (``uint32``).
    edge_first_seen, edge_last_seen, edge_label_counts : numpy.ndarray
        Aligned with ``adjacency.data``, as in :class:`CommGraph`.

    Examples
    --------
    >>> from commgraph.graph import validate, build_graph
    >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2"],
    ...     "timestamp": ["2024-01-01T00:00Z"] * 2, "sender": ["a@x.com", "b@mail.x.com"],
    ...     "recipients": ["c@t.com", "c@t.com"]}), tenants=[{"tenant_id": "t", "own_domains": ["t.com"]}]))
    >>> g.domain_view()
    DomainView(tenant 't': 1 sender domain -> 3 nodes, 1 edge)
    """

    __slots__ = ("tenant_id", "domains", "recipients", "adjacency", "edge_first_seen", "edge_last_seen",
                 "edge_label_counts")

    def __init__(self, tenant_id, domains, recipients, adjacency, edge_first_seen, edge_last_seen,
                 edge_label_counts):
        self.tenant_id = tenant_id
        self.domains = domains
        self.recipients = recipients
        self.adjacency = adjacency
        self.edge_first_seen = edge_first_seen
        self.edge_last_seen = edge_last_seen
        self.edge_label_counts = edge_label_counts

    def edges(self) -> pd.DataFrame:
        """One row per (sender domain, recipient): count, first/last seen, counts by label.

        Examples
        --------
        >>> from commgraph.graph import validate, build_graph
        >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1"],
        ...     "timestamp": ["2024-01-01T00:00Z"], "sender": ["a@x.com"], "recipients": ["c@t.com"]}),
        ...     tenants=[{"tenant_id": "t", "own_domains": ["t.com"]}]))
        >>> g.domain_view().edges().columns.tolist()
        ['sender_domain', 'recipient', 'recipient_id', 'count', 'first_seen', 'last_seen', 'safe', 'attack', 'spam']
        """
        a = self.adjacency
        rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
        out = {
            "sender_domain": pd.Series(self.domains.take(rows), dtype=STRING_DTYPE),
            "recipient": self.recipients["address"].reset_index(drop=True).take(a.indices).reset_index(drop=True),
            "recipient_id": a.indices.astype(np.int64),
            "count": a.data.astype(np.int64),
            "first_seen": _ts_series(self.edge_first_seen),
            "last_seen": _ts_series(self.edge_last_seen),
        }
        for j, lab in enumerate(LABELS):
            out[lab] = self.edge_label_counts[:, j].astype(np.int64)
        return pd.DataFrame(out)

    def __repr__(self) -> str:
        d, n, e = len(self.domains), self.adjacency.shape[1], self.adjacency.nnz
        return (f"DomainView(tenant {self.tenant_id!r}: {d:,} sender domain{'s' if d != 1 else ''} -> "
                f"{n:,} node{'s' if n != 1 else ''}, {e:,} edge{'s' if e != 1 else ''})")


# --- building ---------------------------------------------------------------------------------


def build_graph(
    messages_or_edges: Messages | pd.DataFrame,
    *,
    tenant_id: str | None = None,
    as_of: str | pd.Timestamp | None = None,
    window: str | pd.Timedelta | None = None,
    own_domains: Sequence[str] | None = None,
) -> CommGraph:
    """Build one tenant's communication graph from its messages or edges.

    Parameters
    ----------
    messages_or_edges : Messages or pandas.DataFrame
        The output of :func:`validate`/``read_messages``, or an edges frame like
        ``Messages.edges()``. An edges frame needs the columns
        :data:`GRAPH_INPUT_COLUMNS` (``timestamp`` as UTC datetimes, ``*_key`` as
        uint64 stable keys), plus ``message_id`` or ``message_index`` (to count
        messages sent: with ``message_id``, rows of one tenant with one id are
        one message, so edges of chunks concatenated count right, and rows of one
        id that differ in sender or time or name a recipient twice, copies of a
        message validated apart, are refused; ``message_index`` alone numbers the
        messages of one :class:`Messages`' edges, in any order or subset of its
        rows: an index shared by several senders or times is refused, but rows
        of two chunks sharing an index, a sender and a time cannot be told from
        one message's, so edges of chunks need ``message_id``, or
        :meth:`Messages.concat` before the build). Optional: ``tenant_id``,
        ``direction`` (needed unless ``own_domains`` is given), ``label`` and
        ``labeled_at``. With a :class:`Messages`, ``label`` and ``labeled_at``
        come from its frame.
    tenant_id : str, optional
        The tenant to build. Required when the input holds several tenants.
    as_of : str or Timestamp, optional
        Only messages strictly before it count; a label counts only if it was
        known (``labeled_at`` missing or before ``as_of``). Text in ISO 8601; a
        naive instant is UTC, as :func:`~commgraph.baselines.build_baselines` reads it.
    window : str or Timedelta, optional
        With ``as_of``: only messages in ``[as_of - window, as_of)`` count (``"30D"``).
    own_domains : sequence of str, optional
        The tenant's own domains (normalised as :class:`TenantConfig` does: IDN to
        punycode, trailing dot dropped; an invalid one or a public suffix is an
        error); a node is internal when its address's domain is one of them or a
        subdomain of one. Without it, a :class:`Messages` input uses the own
        domains validation decided ``direction`` by (:attr:`Messages.own_domains`:
        configured, or inferred). Failing both, internal is inferred from
        ``direction``: the sender of outbound or internal mail and the recipient
        of internal mail are internal, and so is every node of the same registrable
        domain as one of those (a colleague who only received outbound mail is
        still internal). Inbound mail alone cannot tell an internal recipient from
        a partner in Cc: when the tenant's mail is all inbound, the own domains are
        guessed as validation infers them (the recipients' domains that receive most
        messages, never a consumer provider) and an
        :class:`InferredOwnDomainsWarning` says so.

    Returns
    -------
    CommGraph

    Raises
    ------
    SchemaError
        When a needed column is missing or has the wrong type (the error names it
        and the columns present).
    ConfigError
        When a parameter is invalid, or the input holds several tenants and
        ``tenant_id`` is not given (the error lists them).
    CommGraphError
        When ``tenant_id`` is not in the input.

    Examples
    --------
    >>> from commgraph.graph import validate, build_graph
    >>> m = validate(pd.DataFrame({
    ...     "tenant_id": ["acme", "acme", "beta"], "message_id": ["m1", "m2", "m1"],
    ...     "timestamp": ["2024-05-01T09:00Z", "2024-06-01T09:00Z", "2024-05-01T09:00Z"],
    ...     "sender": ["ann@acme.com", "bob@vendor.com", "x@beta.org"],
    ...     "recipients": ["bob@vendor.com", "ann@acme.com", "y@beta.org"],
    ...     "direction": ["outbound", "inbound", "internal"]}))
    >>> build_graph(m)
    Traceback (most recent call last):
    ...
    commgraph.graph._errors.ConfigError: the input holds 2 tenants ['acme', 'beta']; pass tenant_id= to choose one
    >>> g = build_graph(m, tenant_id="acme", as_of="2024-05-15T00:00Z", window="30D")
    >>> g.edges()[["sender", "recipient", "count"]]
             sender       recipient  count
    0  ann@acme.com  bob@vendor.com      1
    >>> g.nodes[["address", "internal", "sent", "received"]].sort_values("address")
              address  internal  sent  received
    0    ann@acme.com      True     1         0
    1  bob@vendor.com     False     0         1
    """
    as_of_ts, window_td = _check_time_params(as_of, window)
    own = _check_own_domains(own_domains)
    validated_own: dict[str, tuple[str, ...]] = {}
    if isinstance(messages_or_edges, Messages):
        validated_own = messages_or_edges.own_domains
        frame = messages_or_edges.frame
        edges = messages_or_edges.edges()
        if "label" in frame.columns and "message_index" in edges.columns:
            labels = _label_codes(frame["label"], "label")
            labeled_at = _optional_ns(frame, "labeled_at")
        else:
            labels, labeled_at = None, None
        per_message = True
    elif isinstance(messages_or_edges, pd.DataFrame):
        edges = messages_or_edges
        labels = _label_codes(edges["label"], "label") if "label" in edges.columns else None
        labeled_at = _optional_ns(edges, "labeled_at")
        per_message = False
    else:
        raise ConfigError(f"build_graph expects a Messages object or an edges DataFrame "
                          f"(got {type(messages_or_edges).__name__})")
    _require(edges, GRAPH_INPUT_COLUMNS)
    if "message_index" not in edges.columns and "message_id" not in edges.columns:
        _require(edges, ("message_index",), detail="give message_index or message_id, to count messages sent")
    if own is None and "direction" not in edges.columns:
        raise ConfigError("build_graph needs own_domains=(...) or a 'direction' column to decide which nodes are "
                          f"internal; columns present: {list(edges.columns)}")

    mask, tenant_id = _tenant_mask(edges, tenant_id)
    if own is None and validated_own.get(tenant_id):
        # The domains validation decided direction by: a node is internal exactly when they say so.
        own = tuple(sorted(validated_own[tenant_id]))
    ts = _ns(edges["timestamp"], "timestamp")
    sender_key = _keys(edges["sender_key"], "sender_key")
    recipient_key = _keys(edges["recipient_key"], "recipient_key")
    # Decided on the rows as given: the tenant and time masks may leave copies of a message validated apart
    # looking like one Messages' edges (a number each, in order), and each copy would count.
    index_exact = per_message or _index_matches_ids(edges, sender_key, recipient_key, ts)
    if as_of_ts is not None:
        in_time = ts < as_of_ts.value
        if window_td is not None:
            in_time &= ts >= (as_of_ts - window_td).value
        mask = in_time if mask is None else (mask & in_time)

    def take(values: np.ndarray) -> np.ndarray:
        return values if mask is None else values[mask]

    sender_key, recipient_key, ts = take(sender_key), take(recipient_key), take(ts)
    message = _message_numbers(edges, mask, per_message, index_exact, sender_key, recipient_key, ts)

    # Labels of the edges: per message (Messages) or per row (edges frame); -1 = none or not yet known.
    label = None
    if labels is not None:
        if per_message:
            label = labels[message]
            known_at = labeled_at[message] if labeled_at is not None else None
        else:
            label = take(labels)
            known_at = take(labeled_at) if labeled_at is not None else None
        if as_of_ts is not None and known_at is not None:
            label = np.where((known_at == _NAT) | (known_at < as_of_ts.value), label, -1)

    kept = edges.index if mask is None else edges.index[mask]
    for column in ("sender", "recipient"):  # keys alone (a privacy-mode frame) name no node, domain or address
        _no_missing(take(edges[column].isna().to_numpy()), kept, column,
                    "give the addresses: the graph's nodes are addresses (keys alone, as a privacy-mode frame "
                    "holds, tell neither the node's name nor its domain)")
    direction = None
    if own is None:
        direction = take(_direction_codes(edges["direction"]))
        # A missing direction read as inbound marked the tenant's own mailboxes external (and guessed its domain).
        _no_missing(direction == -1, kept, "direction", "give each row's direction, or pass own_domains (the "
                    "tenant's domains tell internal from external)")

    rows = np.flatnonzero(mask) if mask is not None else None
    return _assemble(edges, rows, sender_key, recipient_key, ts, message, label, direction, own,
                     tenant_id=tenant_id, as_of=as_of_ts, window=window_td)


def _assemble(edges, rows, sender_key, recipient_key, ts, message, label, direction, own, *,
              tenant_id, as_of, window, trust_categories=True) -> CommGraph:
    # 1. Intern keys to node ids ordered by key (order of input rows never matters).
    src, dst, keys, checks = _intern(edges, rows, sender_key, recipient_key, trust_categories)
    n = len(keys)
    # Messages sent and internal seeds need only the rows: the second core counts them meanwhile.
    facts = submit(_row_facts, src, dst, message, direction if own is None else None, n, rows=len(src))

    # 2. Group the rows into (sender, recipient) edges, in CSR order.
    groups = group_pairs(src, dst, n, n)
    ts_sorted = len(ts) < 2 or bool((ts[1:] >= ts[:-1]).all())
    # The second core gathers the edges' times and reads the nodes' strings while this one counts labels.
    times = submit(edge_times, groups, ts, ts_sorted, rows=len(src))
    strings = submit(_node_strings, edges, rows, groups.last_sent, groups.last_received, rows=len(src))
    label_counts = edge_label_counts(groups, label)
    first, last = times.result()
    address, domain, domain_codes = strings.result()

    # 3. Node table.
    first_node, last_node = _node_times(ts, groups, first, last, ts_sorted, n)
    sent, seed = facts.result()
    if own is None and not seed.any() and len(dst):
        own = _guess_own_domains(domain, dst, message, tenant_id)
    internal = _is_own(address, own) if own is not None else _infer_internal(domain, seed, domain_codes)
    nodes = pd.DataFrame({
        "key": keys, "address": address, "domain": domain, "internal": internal,
        "first_seen": _ts_series(first_node.view("M8[ns]")), "last_seen": _ts_series(last_node.view("M8[ns]")),
        # One received message per (message, recipient) row: the rows' recipients, not the edges, are counted.
        "sent": sent, "received": groups.received,
    })
    if not all(check.result() for check in checks):
        # Some row's key is not its category's: build again from the keys alone.
        return _assemble(edges, rows, sender_key, recipient_key, ts, message, label, direction, own,
                         tenant_id=tenant_id, as_of=as_of, window=window, trust_categories=False)
    adjacency = sp.sparse.csr_array((groups.count, groups.indices, groups.indptr), shape=(n, n))
    return CommGraph(nodes, adjacency, first.view("M8[ns]"), last.view("M8[ns]"), label_counts,
                     tenant_id=tenant_id, as_of=as_of, window=window, own_domains=own)


def _node_times(ts: np.ndarray, groups: PairGroups, first: np.ndarray, last: np.ndarray, ts_sorted: bool,
                n: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last time of each node, over the rows where it sends or receives (int64 nanoseconds).

    ``first`` and ``last`` are the edges' first and last times.
    """
    if ts_sorted:
        # In time order, a node's first and last rows (as sender or recipient) hold its first and last times.
        first_node = np.minimum(_at(ts, groups.first_sent, _INT64_MAX), _at(ts, groups.first_received, _INT64_MAX))
        last_node = np.maximum(_at(ts, groups.last_sent, _NAT), _at(ts, groups.last_received, _NAT))
    else:
        first_node = np.full(n, _INT64_MAX, dtype=np.int64)
        sends = np.flatnonzero(np.diff(groups.indptr))  # a node's out-edges are one CSR row: a segment
        if len(first):
            first_node[sends] = np.minimum.reduceat(first, groups.indptr[sends])
        np.minimum.at(first_node, groups.indices, first)
        last_node = np.full(n, _NAT, dtype=np.int64)
        edge_rows = np.repeat(np.arange(n, dtype=groups.indices.dtype), np.diff(groups.indptr))
        for ends in (edge_rows, groups.indices):
            np.maximum.at(last_node, ends, last)
    first_node[first_node == _INT64_MAX] = _NAT
    return first_node, last_node


def _at(values: np.ndarray, rows: np.ndarray, fill: int) -> np.ndarray:
    """``values[rows]``, and ``fill`` where the row is -1 (none)."""
    return np.where(rows >= 0, values[rows], fill)


def _intern(edges: pd.DataFrame, rows: np.ndarray | None, sender_key: np.ndarray, recipient_key: np.ndarray,
            trust_categories: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Future]]:
    """Node ids of the senders and recipients, ordered by stable key.

    ``Messages.edges()`` gives sender and recipient as categoricals: their codes
    already name the distinct addresses, so only the categories' keys need a
    hash table, not every row's. Other inputs, or ``trust_categories=False``,
    factorise the keys themselves.

    Returns
    -------
    src, dst : numpy.ndarray of int32 (int64 past 2**31 nodes)
        Node id of each row's sender and recipient.
    keys : numpy.ndarray of uint64
        The sorted distinct keys: node ``i`` has key ``keys[i]``.
    checks : list of Future
        Whether every row's key is its category's (the second core checks
        while the build goes on); the ids are wrong unless all hold True.
    """
    sender, recipient = edges["sender"], edges["recipient"]
    n_rows = len(sender_key)
    if trust_categories and isinstance(sender.dtype, pd.CategoricalDtype) \
            and isinstance(recipient.dtype, pd.CategoricalDtype):
        positions = np.arange(n_rows, dtype=index_dtype(n_rows))
        # The senders' categories on the second core while this one reads the recipients'.
        sender_job = submit(_category_keys, sender, sender_key, rows, positions, rows=n_rows)
        parts = [_category_keys(recipient, recipient_key, rows, positions)]
        parts.insert(0, sender_job.result())
        del positions
        if parts[0] is not None and parts[1] is not None:
            # Several categories may share a key (the same address spelt twice): they become one node.
            node_of_used, node_keys = _rank_keys(np.concatenate([key_of[used] for _, used, key_of in parts]))
            to_node, offset = [], 0
            for _, used, _ in parts:
                to_node.append(np.zeros(len(used) and int(used[-1]) + 1, dtype=node_of_used.dtype))
                to_node[-1][used] = node_of_used[offset:offset + len(used)]
                offset += len(used)
            # Indexing, not np.take: it reads the 32-bit codes as they are (np.take copies them to 64 bits).
            src_job = submit(to_node[0].__getitem__, parts[0][0], rows=n_rows)
            # Do categories and keys agree on every row? The second core checks after its gather,
            # while this one orders the rows.
            checks = [submit(_agree, key_of, cat, keys, rows=n_rows)
                      for (cat, _, key_of), keys in zip(parts, (sender_key, recipient_key))]
            dst = to_node[1][parts[1][0]]
            return src_job.result(), dst, node_keys, checks
    node, node_keys = _rank_keys(np.concatenate([sender_key, recipient_key]))
    return node[:len(sender_key)], node[len(sender_key):], node_keys, []


def _category_keys(column: pd.Series, keys: np.ndarray, rows: np.ndarray | None,
                   positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A categorical column's codes (of the kept ``rows``), the categories in use, and each one's key.

    A category's key is read at one of its rows (its last); ``keys`` is aligned
    with the kept rows and ``positions`` is ``arange`` over them. None when a
    value is missing (code -1).
    """
    cat = _codes(column)
    cat = cat if rows is None else cat[rows]
    if len(cat) and cat.min() < 0:
        return None
    # ufunc.at with matching dtypes runs a tight loop, about twice as fast as ``row_of[cat] = positions``.
    row_of = np.full(len(column.cat.categories), -1, dtype=positions.dtype)
    np.maximum.at(row_of, cat, positions)
    used = np.flatnonzero(row_of >= 0)
    key_of = np.zeros(len(row_of), dtype=np.uint64)
    key_of[used] = keys[row_of[used]]
    return cat, used, key_of


def _rank_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The node id of each key, nodes numbered in key order, and the sorted distinct keys.

    The keys are hashed to their distinct values first, so only those are sorted.
    """
    codes, uniques = pd.factorize(keys)
    uniques = np.asarray(uniques, dtype=np.uint64)
    order = np.argsort(uniques)  # distinct keys: every sort gives this order
    rank = np.empty(len(uniques), dtype=index_dtype(len(uniques)))
    rank[order] = np.arange(len(uniques), dtype=rank.dtype)
    return rank[codes], uniques[order]


def _agree(key_of: np.ndarray, cat: np.ndarray, keys: np.ndarray, chunk: int = 1 << 18) -> bool:
    """Whether every row's key is the key of its category.

    In chunks that stay in cache, rather than a gather the size of the input.
    """
    return all(np.array_equal(key_of[cat[start:start + chunk]], keys[start:start + chunk])
               for start in range(0, len(cat), chunk))


def _node_strings(edges: pd.DataFrame, rows: np.ndarray | None, last_sent: np.ndarray,
                  last_received: np.ndarray) -> tuple[pd.Series, pd.Series, np.ndarray | None]:
    """Address and domain of each node, read from one input row of it (a key names one address).

    The row is the node's last as a recipient, else its last as a sender. Also
    returned: codes of the domains (equal codes for equal domains) when they
    come from categories, else None.
    """
    n = len(last_sent)
    from_recipient = last_received >= 0
    sender_rows = last_sent if rows is None else rows[np.maximum(last_sent, 0)]
    recipient_rows = last_received if rows is None else rows[np.maximum(last_received, 0)]
    found = [_shared_strings(edges[a], edges[b], from_recipient, sender_rows, recipient_rows)
             for a, b in (("sender", "recipient"), ("sender_domain", "recipient_domain"))]
    if found[0] is not None and found[1] is not None:
        return found[0][0], found[1][0], found[1][1]
    address_parts, domain_parts, ids = [], [], []
    for column, dom_column, pick, last in (("sender", "sender_domain", ~from_recipient, last_sent),
                                           ("recipient", "recipient_domain", from_recipient, last_received)):
        pos = last[pick]
        if rows is not None:
            pos = rows[pos]
        address_parts.append(_strings_at(edges[column], pos))
        domain_parts.append(_strings_at(edges[dom_column], pos))
        ids.append(np.flatnonzero(pick))
    perm = np.empty(n, dtype=np.int64)
    perm[np.concatenate(ids)] = np.arange(n)
    address = pd.concat(address_parts, ignore_index=True).take(perm).reset_index(drop=True)
    domain = pd.concat(domain_parts, ignore_index=True).take(perm).reset_index(drop=True)
    return address, domain, None


def _shared_strings(sender: pd.Series, recipient: pd.Series, from_recipient: np.ndarray, sender_rows: np.ndarray,
                    recipient_rows: np.ndarray) -> tuple[pd.Series, np.ndarray] | None:
    """Per node, the string of its recipient row where it has one, else of its sender row.

    Only for two categoricals over the same categories (as ``Messages.edges()`` gives them)
    and no missing value: one take of the categories (returned with the codes); else None.
    """
    if not (isinstance(sender.dtype, pd.CategoricalDtype) and isinstance(recipient.dtype, pd.CategoricalDtype)):
        return None
    categories = sender.cat.categories
    if not (categories is recipient.cat.categories or categories.equals(recipient.cat.categories)):
        return None
    codes = np.where(from_recipient, _codes(recipient)[recipient_rows],
                     _codes(sender)[sender_rows])
    if len(codes) and codes.min() < 0:
        return None
    return pd.Series(categories.take(codes)).astype(STRING_DTYPE), codes


def _strings_at(column: pd.Series, pos: np.ndarray) -> pd.Series:
    """``column.take(pos).astype(STRING_DTYPE)``; from a categorical, through its categories (no NA case)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = _codes(column)[pos]
        if not len(codes) or codes.min() >= 0:
            return pd.Series(column.cat.categories.take(codes)).astype(STRING_DTYPE)
    return column.take(pos).astype(STRING_DTYPE).reset_index(drop=True)


def _domain_view(g: CommGraph) -> DomainView:
    rows = g._row_of_edge()
    # A node without a domain (a name that is no address, from networkx) is grouped under the empty domain.
    node_domain = g.nodes["domain"].astype(STRING_DTYPE).fillna("").reset_index(drop=True)
    dom_codes, domains = pd.factorize(node_domain.take(rows), sort=True)
    domains = pd.Index(domains, dtype=STRING_DTYPE)
    src = dom_codes.astype(np.int64)
    dst = g.adjacency.indices.astype(np.int64)
    # Expand each graph edge to its weight only through the aggregates: counts add, times take min/max.
    pair = src * g.n_nodes + dst
    codes, uniques = pd.factorize(pair, sort=True)
    uniques = np.asarray(uniques, dtype=np.int64)
    m = len(uniques)
    count = np.bincount(codes, weights=g.adjacency.data, minlength=m).astype(np.uint32)
    first = np.full(m, _INT64_MAX, dtype=np.int64)
    last = np.full(m, _NAT, dtype=np.int64)
    f, l_ = g.edge_first_seen.view(np.int64), g.edge_last_seen.view(np.int64)
    np.minimum.at(first, codes, np.where(f == _NAT, _INT64_MAX, f))
    np.maximum.at(last, codes, l_)
    first[first == _INT64_MAX] = _NAT
    labels = np.zeros((m, len(LABELS)), dtype=np.uint32)
    for j in range(len(LABELS)):
        labels[:, j] = np.bincount(codes, weights=g.edge_label_counts[:, j], minlength=m).astype(np.uint32)
    n_dom = len(domains)
    r = uniques // g.n_nodes if g.n_nodes else uniques
    c = uniques - r * g.n_nodes
    indptr = np.zeros(n_dom + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n_dom), out=indptr[1:])
    adjacency = sp.sparse.csr_array((count, c.astype(np.int32 if m < 2**31 else np.int64),
                                     indptr.astype(np.int32 if m < 2**31 else np.int64)), shape=(n_dom, g.n_nodes))
    return DomainView(g.tenant_id, domains, g.nodes, adjacency, first.view("M8[ns]"), last.view("M8[ns]"), labels)


# --- helpers ----------------------------------------------------------------------------------


def _internal_seeds(src: np.ndarray, dst: np.ndarray, direction: np.ndarray, n: int) -> np.ndarray:
    """Nodes the rows' ``direction`` (codes 0 inbound, 1 outbound, 2 internal) shows to be internal.

    Senders of outbound or internal mail and recipients of internal mail. Inbound
    mail shows none: an external partner in Cc receives it as the tenant does.
    """
    # ufunc.at over uint8 flags with matching dtypes is about 3x faster than ``seed[src[mask]] = True``.
    seed = np.zeros(n, dtype=np.uint8)
    np.maximum.at(seed, src, (direction >= 1).view(np.uint8))  # codes are -1 (missing), 0, 1, 2
    np.maximum.at(seed, dst, (direction == 2).view(np.uint8))
    return seed.view(bool)


def _guess_own_domains(domain: pd.Series, dst: np.ndarray, message: np.ndarray, tenant_id: str | None
                       ) -> tuple[str, ...]:
    """The tenant's mail is all inbound and its own domains are unknown: guess them, with a warning.

    The recipients' domains that receive most messages, as validation infers them
    (:func:`infer_own_domains`): not every recipient, since partners in Cc receive
    the tenant's inbound mail too.
    """
    codes, uniques = pd.factorize(domain)
    row_domain = codes.astype(np.int64)[dst]
    pairs = np.unique(message * (len(uniques) + 1) + row_domain)  # a message counts once per domain
    pair_domain = pairs % (len(uniques) + 1)
    pair_domain = pair_domain[pair_domain < len(uniques)]  # code -1 (no domain) wraps to len(uniques)
    names = pd.Series(np.asarray(uniques, dtype=object)[pair_domain], dtype=object)
    guessed = infer_own_domains(pd.Series(["t"] * len(names), dtype=object), names).get("t", ())
    warnings.warn(
        f"build_graph: the mail of tenant {tenant_id!r} is all inbound and its own domains are unknown (an edges "
        f"frame, or Messages whose direction was given without a tenant configuration); guessed {list(guessed)} "
        "from the domains that receive most of its messages to mark nodes internal. Pass own_domains=(...) to "
        "set them.", InferredOwnDomainsWarning, stacklevel=4)
    return guessed


def _infer_internal(domain: pd.Series, seed: np.ndarray, domain_codes: np.ndarray | None = None) -> np.ndarray:
    """Internal nodes: the ``seed`` nodes and every node sharing a registrable domain with one of them.

    A colleague who only ever received outbound mail is still a colleague.
    ``domain_codes``, when given, code the domains already (no missing one).
    """
    codes = domain_codes if domain_codes is not None else pd.factorize(domain)[0]
    own = np.zeros(int(codes.max()) + 2 if len(codes) else 1, dtype=bool)
    own[codes[seed]] = True
    own[-1] = False  # code -1: missing domain
    return own[codes]


def _row_facts(src: np.ndarray, dst: np.ndarray, message: np.ndarray, direction: np.ndarray | None,
               n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Per node, from the rows alone: messages sent, and the internal seeds when ``direction`` is given."""
    sent = np.bincount(src[_first_of_each(message)], minlength=n).astype(np.int64)
    return sent, (_internal_seeds(src, dst, direction, n) if direction is not None else None)


def _message_numbers(edges: pd.DataFrame, mask: np.ndarray | None, per_message: bool, index_exact: bool,
                     sender_key: np.ndarray, recipient_key: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Each kept row's message as an int64 number: rows of one message, and only they, share one.

    From :class:`Messages`, ``message_index`` (the message's row) is exact. An edges
    frame may be a concatenation of ``Messages.edges()`` of chunks, where
    ``message_index`` restarts in every chunk: with ``message_id`` the messages are
    numbered by it (the tenant's rows only, so ids of other tenants never merge),
    ``message_index`` serving only when ``index_exact`` (it agrees with the ids on the
    whole frame, :func:`_index_matches_ids`), and rows of one id that cannot be one
    message's (copies validated apart) refused; without ``message_id``, a
    ``message_index`` shared by rows of several senders or timestamps is refused.
    """
    def take(column: str) -> pd.Series:
        values = edges[column]
        return values if mask is None else values[mask]

    has_index, has_id = "message_index" in edges.columns, "message_id" in edges.columns
    if has_index:
        message = take("message_index").to_numpy(dtype=np.int64)
        if per_message:
            return message
        if not has_id:
            _check_message_index(message, sender_key, ts, take("message_index").index)
            return message
    ids = take("message_id")
    if ids.isna().any():
        rows = ids.index[ids.isna().to_numpy()][:5].tolist()
        raise SchemaError([Problem("message_id", ReasonCode.MISSING_VALUE, rows=rows,
                                   fix="fill message_id (it numbers the messages sent), or build from Messages")])
    if has_index and index_exact:
        return message  # the common case (one Messages' edges): no hashing of the ids
    message = pd.factorize(ids)[0].astype(np.int64)
    _check_message_ids(message, sender_key, recipient_key, ts, ids)
    return message


def _index_matches_ids(edges: pd.DataFrame, sender_key: np.ndarray, recipient_key: np.ndarray,
                       ts: np.ndarray) -> bool:
    """Whether an edges frame's ``message_index`` numbers its messages as ``message_id`` does (no id hashing).

    The frame's rows as given (``sender_key``, ``recipient_key``, ``ts`` aligned with
    them): the numbers must be sorted and change exactly where the adjacent ids change,
    and the rows of each number must have one sender and time and name each recipient
    once. Concatenated edges of parts restart their numbers, so are out of order, except
    where a part holds one message: the next part's first message shares its number,
    and with it its id when it is a copy, whose rows then name its recipients twice (or
    differ in sender or time). Any rows of a frame that passes are numbered right too.
    """
    if "message_index" not in edges.columns or "message_id" not in edges.columns:
        return False
    message = edges["message_index"].to_numpy(dtype=np.int64)
    if len(message) < 2:
        return True
    if (message[1:] < message[:-1]).any():
        return False
    same = message[1:] == message[:-1]
    ids = edges["message_id"]
    same_id = ids.iloc[1:].reset_index(drop=True).eq(ids.iloc[:-1].reset_index(drop=True))
    if not np.array_equal(same_id.to_numpy(dtype=bool, na_value=False), same):
        return False
    if (same & ((sender_key[1:] != sender_key[:-1]) | (ts[1:] != ts[:-1]))).any():
        return False
    # A recipient named twice by one number: equal (number, recipient) pairs have equal fingerprints (a
    # collision only sends the frame to the ids' exact check), and sorting integers is cheaper than hashing ids.
    fingerprint = np.sort(recipient_key ^ (message.view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)))
    return not bool((fingerprint[1:] == fingerprint[:-1]).any())


def _check_message_index(message: np.ndarray, sender_key: np.ndarray, ts: np.ndarray, index: pd.Index) -> None:
    """Refuse a ``message_index`` shared by rows of different senders or times: several messages share it."""
    if len(message) < 2:
        return
    order = None if not (message[1:] < message[:-1]).any() else np.argsort(message, kind="stable")
    m, k, t = (message, sender_key, ts) if order is None else (message[order], sender_key[order], ts[order])
    clash = (m[1:] == m[:-1]) & ((k[1:] != k[:-1]) | (t[1:] != t[:-1]))
    if clash.any():
        pos = np.flatnonzero(clash)[:5] + 1
        pos = pos if order is None else order[pos]
        raise SchemaError([Problem(
            "message_index", ReasonCode.INCONSISTENT_MESSAGE, rows=index[pos].tolist(),
            values=message[pos].tolist(),
            detail="rows of different senders or timestamps share a message_index, so several messages would "
                   "count as one (message_index restarts in every chunk: edges of chunks were concatenated?)",
            fix="add the message_id column (messages are then numbered by it), or join chunks with "
                "Messages.concat before build_graph")])


# Copies of one message validated apart (in two chunks) reach an edges frame with one id; validated together,
# the first copy is kept. Each copy counted, a message's recipients would count twice.
_COPIES_FIX = ("read the chunks with read_messages(..., chunksize=...), which rejects a copy of a message kept from "
               "an earlier chunk, or validate them together; to keep one copy of each message's rows, "
               "edges.drop_duplicates(['tenant_id', 'message_id', 'recipient_key'])")


def _check_message_ids(message: np.ndarray, sender_key: np.ndarray, recipient_key: np.ndarray, ts: np.ndarray,
                       ids: pd.Series) -> None:
    """Refuse rows of one message id that cannot be one message's: of different senders or times, or naming one
    recipient twice (validation gives a message each recipient once). Both are copies of a message validated
    apart, in different chunks, or an id given to several messages."""
    if len(message) < 2:
        return
    lead = np.unique(message, return_index=True)[1][message]  # each row's message's first row (input order)
    problems = []
    for found, reason, detail in (
            ((sender_key != sender_key[lead]) | (ts != ts[lead]), ReasonCode.INCONSISTENT_MESSAGE,
             "rows of one message_id differ in sender or timestamp: copies of a message that disagree, validated "
             "apart (edges of chunks concatenated?), or an id given to several messages"),
            (pd.DataFrame({"message": message, "recipient": recipient_key}).duplicated().to_numpy(),
             ReasonCode.DUPLICATE_MESSAGE_ID,
             "rows of one message_id name one recipient twice: copies of a message validated apart (edges of "
             "chunks concatenated?) would count its recipients twice")):
        if found.any():
            pos = np.flatnonzero(found)
            problems.append(Problem("message_id", reason, rows=ids.index[pos].tolist(),
                                    values=ids.iloc[pos].tolist(), detail=detail, fix=_COPIES_FIX))
    if problems:
        raise SchemaError(problems)


def _first_of_each(message: np.ndarray) -> np.ndarray:
    """Whether each row is the first of its message (edges of one message are usually contiguous)."""
    if len(message) and (message[1:] >= message[:-1]).all():
        new = np.empty(len(message), dtype=bool)
        new[0] = True
        np.not_equal(message[1:], message[:-1], out=new[1:])
        return new
    return ~pd.Series(message).duplicated().to_numpy()


def _is_own(address: pd.Series, own: tuple[str, ...]) -> np.ndarray:
    dom = address.astype(STRING_DTYPE).str.extract(r"@([^@]*)$", expand=False).astype(STRING_DTYPE)
    out = np.zeros(len(address), dtype=bool)
    for d in own:
        out |= (dom == d).to_numpy(dtype=bool, na_value=False)
        out |= dom.str.endswith("." + d).to_numpy(dtype=bool, na_value=False)
    return out


def _check_own_domains(own_domains) -> tuple[str, ...] | None:
    """The domains normalised as :class:`TenantConfig` does (punycode, no trailing dot), sorted, distinct."""
    if own_domains is None:
        return None
    if isinstance(own_domains, str) or not all(isinstance(d, str) for d in own_domains):
        raise ConfigError(f"The 'own_domains' parameter of build_graph must be a sequence of domains such as "
                          f"('acme.com',). Got {own_domains!r} instead.")
    own = tuple(sorted({normalise_own_domain(d, "The 'own_domains' parameter of build_graph")
                        for d in own_domains if d.strip()}))
    if not own:
        raise ConfigError("The 'own_domains' parameter of build_graph must name at least one domain. "
                          f"Got {own_domains!r} instead.")
    return own


def _check_time_params(as_of, window) -> tuple[pd.Timestamp | None, pd.Timedelta | None]:
    as_of_ts = None
    if as_of is not None:
        try:
            as_of_ts = utc_instant(as_of)  # (text in ISO 8601 only; naive is UTC, as build_baselines reads it)
        except (ValueError, TypeError) as exc:
            why = instant_problem(exc)
            raise ConfigError(f"The 'as_of' parameter of build_graph must be a timestamp. Got {as_of!r} "
                              f"instead{why}.") from exc
        if as_of_ts is pd.NaT or pd.isna(as_of_ts):
            raise ConfigError(f"The 'as_of' parameter of build_graph must be a timestamp. Got {as_of!r} instead.")
        as_of_ts = as_of_ts.as_unit("ns")
    window_td = None
    if window is not None:
        if as_of_ts is None:
            raise ConfigError(f"build_graph got window={window!r} without as_of; a window looks back from as_of")
        if (isinstance(window, (int, float, np.integer, np.floating))
                and not isinstance(window, (bool, np.timedelta64))) or (
                isinstance(window, str) and window.strip().lstrip("+-").replace(".", "", 1).isdigit()):
            raise ConfigError(f"The 'window' parameter of build_graph must be a timedelta such as '30D' (a number "
                              f"alone has no unit). Got {window!r} instead.")
        try:
            window_td = duration(window)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"The 'window' parameter of build_graph must be a timedelta such as '30D'. "
                              f"Got {window!r} instead.") from exc
        if pd.isna(window_td) or window_td <= pd.Timedelta(0):
            raise ConfigError(f"The 'window' parameter of build_graph must be a timedelta > 0. Got {window!r} "
                              "instead.")
    return as_of_ts, window_td


def _no_missing(missing: np.ndarray, index: pd.Index, column: str, fix: str) -> None:
    """Refuse the rows (of ``index``, the rows kept) where ``missing`` says ``column`` has no value."""
    if missing.any():
        raise SchemaError([Problem(column, ReasonCode.MISSING_VALUE, rows=index[np.flatnonzero(missing)].tolist(),
                                   fix=fix)])


def _require(frame: pd.DataFrame, columns: Iterable[str], detail: str = "") -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError([Problem(c, ReasonCode.MISSING_COLUMN,
                                   detail=f"build_graph needs it; columns present: {list(frame.columns)}"
                                          + (f"; {detail}" if detail else ""),
                                   fix="pass Messages from validate()/read_messages(), or Messages.edges()")
                           for c in missing])


def _wrong_type(column: str, expected: str, got: Any) -> SchemaError:
    return SchemaError([Problem(column, ReasonCode.INVALID_VALUE, detail=f"expected {expected}, got dtype {got}",
                                fix="pass the output of validate()/read_messages() or Messages.edges()")])


def _ns(series: pd.Series, column: str) -> np.ndarray:
    if not isinstance(series.dtype, pd.DatetimeTZDtype):
        raise _wrong_type(column, "datetime64[ns, UTC]", series.dtype)
    if series.dtype != TIMESTAMP_DTYPE:  # already UTC nanoseconds: no conversion
        series = series.dt.tz_convert("UTC").dt.as_unit("ns")
    values = series.array.asi8
    if (values == _NAT).any():
        rows = series.index[np.flatnonzero(values == _NAT)[:5]].tolist()
        raise SchemaError([Problem(column, ReasonCode.MISSING_VALUE, rows=rows,
                                   fix="drop or fill missing timestamps before build_graph")])
    return np.asarray(values)


def _optional_ns(frame: pd.DataFrame, column: str) -> np.ndarray | None:
    if column not in frame.columns:
        return None
    series = frame[column]
    if not isinstance(series.dtype, pd.DatetimeTZDtype):
        if series.isna().all():
            return None
        raise _wrong_type(column, "datetime64[ns, UTC]", series.dtype)
    return np.asarray(series.dt.tz_convert("UTC").dt.as_unit("ns").array.asi8)


def _keys(series: pd.Series, column: str) -> np.ndarray:
    if series.dtype != np.uint64:
        raise _wrong_type(column, "uint64 stable keys (commgraph.graph.stable_keys)", series.dtype)
    return series.to_numpy()


def _label_codes(series: pd.Series, column: str) -> np.ndarray:
    """Codes into LABELS (-1 for missing); unknown labels are an error, never dropped."""
    cat = series if isinstance(series.dtype, pd.CategoricalDtype) else series.astype("category")
    lut = np.array([LABELS.index(c) if c in LABELS else -2 for c in cat.cat.categories] + [-1], dtype=np.int8)
    codes = _translate(_codes(cat), lut)
    bad = codes == -2 if (lut == -2).any() else None
    if bad is not None and bad.any():
        pos = np.flatnonzero(bad)
        raise SchemaError([Problem(column, ReasonCode.INVALID_VALUE, rows=series.index[pos].tolist(),
                                   values=series.iloc[pos].tolist(),
                                   fix=f"use one of {', '.join(map(repr, LABELS))} or leave it empty")])
    return codes


def _direction_codes(series: pd.Series) -> np.ndarray:
    from ._schema import DIRECTIONS

    cat = series if isinstance(series.dtype, pd.CategoricalDtype) else series.astype("category")
    lut = np.array([DIRECTIONS.index(c) if c in DIRECTIONS else -2 for c in cat.cat.categories] + [-1],
                   dtype=np.int8)
    codes = _translate(_codes(cat), lut)
    if (lut == -2).any() and (codes == -2).any():
        pos = np.flatnonzero(codes == -2)
        raise SchemaError([Problem("direction", ReasonCode.INVALID_VALUE, rows=series.index[pos].tolist(),
                                   values=series.iloc[pos].tolist(),
                                   fix=f"use one of {', '.join(map(repr, DIRECTIONS))}, or pass own_domains")])
    return codes


def _translate(codes: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``lut[codes]`` (code -1, missing, picks the last entry); the codes themselves when ``lut`` maps each to itself.

    Categories usually come in the canonical order, so a pass over the rows is saved.
    """
    if np.array_equal(lut[:-1], np.arange(len(lut) - 1)) and lut[-1] == -1 and codes.dtype.itemsize <= 1:
        return codes
    return lut[codes]


def _tenant_mask(edges: pd.DataFrame, tenant_id: str | None) -> tuple[np.ndarray | None, str | None]:
    if tenant_id is not None and not isinstance(tenant_id, str):
        raise ConfigError(f"The 'tenant_id' parameter of build_graph must be a tenant id as text, such as "
                          f"{str(tenant_id)!r}. Got {tenant_id!r} instead.")
    if "tenant_id" not in edges.columns:
        return None, tenant_id
    col = edges["tenant_id"]
    one = _only_category(col)
    if one is not None and (tenant_id is None or tenant_id == one):
        return None, one  # one tenant, no missing values: nothing to mask
    present = sorted(str(t) for t in pd.unique(col.dropna()))
    if tenant_id is None:
        if len(present) > 1:
            raise ConfigError(f"the input holds {len(present)} tenants {present[:20]}"
                              f"{' ...' if len(present) > 20 else ''}; pass tenant_id= to choose one")
        if not present:
            return None, None
        tenant_id = present[0]
    elif tenant_id not in present:
        raise CommGraphError(f"tenant {tenant_id!r} has no edges here; tenants present: {present[:20]}")
    if len(present) == 1 and not col.isna().any():
        return None, tenant_id
    # Ids compared as text (as listed above: tenant 1 of an integer column is '1'); a row without one is no
    # tenant's, whether one tenant is present or several.
    return (col.astype("string") == tenant_id).to_numpy(dtype=bool, na_value=False), tenant_id


def _only_category(col: pd.Series) -> str | None:
    """The value of a categorical column holding one value and no missing ones (else None), from its codes."""
    if not isinstance(col.dtype, pd.CategoricalDtype) or not len(col):
        return None
    codes = _codes(col)
    lo, hi = codes.min(), codes.max()
    return str(col.cat.categories[lo]) if lo == hi and lo >= 0 else None


def _codes(categorical: pd.Series) -> np.ndarray:
    """The codes of a categorical column, read-only and without a copy (``.cat.codes`` copies them)."""
    return categorical.array.codes


def _as_array(values: Any) -> np.ndarray:
    if isinstance(values, (str, bytes, int, np.integer)):
        values = [values]
    if isinstance(values, pd.Series | pd.Index):
        if isinstance(values.dtype, pd.StringDtype) or values.dtype == object:
            return values.astype(object).to_numpy()
        return values.to_numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    return arr


def _binary(a: Any) -> Any:
    return sp.sparse.csr_array((np.ones(a.nnz, dtype=np.int8), a.indices, a.indptr), shape=a.shape)


def _ts(value: np.datetime64) -> pd.Timestamp:
    return pd.Timestamp(value).tz_localize("UTC") if not pd.isna(value) else pd.NaT


def _ts_series(values: np.ndarray) -> pd.Series:
    return pd.Series(pd.DatetimeIndex(values.astype("M8[ns]")).tz_localize("UTC"), dtype=TIMESTAMP_DTYPE)


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(a == b)
