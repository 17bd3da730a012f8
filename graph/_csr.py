"""Message x recipient rows -> CSR edges with per-edge count, first/last time and label counts.

The rows are put in (sender, recipient, row) order by two stable counting sorts
rather than a comparison sort: transposing a sparse matrix (CSR -> CSC) in
``scipy.sparse`` is exactly a counting sort of its entries by column, in time
linear in rows + nodes. It is stable: it visits the CSR row by row and each
row's entries in the order they are stored, which is why the CSC's row indices
come out sorted (``tests/test_graph_build.py`` holds it to ``np.lexsort``). One
pass by recipient, then one by sender, is the least-significant-digit radix sort
with a digit as wide as the node count: two linear passes whatever the number of
nodes. Each run of equal (sender, recipient) rows is then one edge.

Gathers are written ``values[positions]``: with 32-bit positions, ``np.take``
first copies them to 64-bit ones (a temporary twice their size, and slower),
which indexing does not.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy as sp

from ._schema import LABELS

__all__ = ["PairOrder", "PairGroups", "index_dtype", "pair_order", "group_pairs", "edge_times", "edge_label_counts"]


def index_dtype(size: int) -> type:
    """int32 when ids below ``size`` fit: half the memory traffic of int64 in gathers and sorts.

    Examples
    --------
    >>> index_dtype(10), index_dtype(2**31)
    (<class 'numpy.int32'>, <class 'numpy.int64'>)
    """
    return np.int32 if size < 2**31 else np.int64


class PairOrder(NamedTuple):
    """The rows in (sender, recipient, row) order, and in (recipient, row) order on the way."""

    #: Row numbers in (sender, recipient, row) order.
    order: np.ndarray
    #: The recipient of each row of ``order``.
    dst: np.ndarray
    #: ``order[src_indptr[i]:src_indptr[i + 1]]`` are the rows whose sender is ``i``.
    src_indptr: np.ndarray
    #: Row numbers in (recipient, row) order.
    dst_rows: np.ndarray
    #: ``dst_rows[dst_indptr[j]:dst_indptr[j + 1]]`` are the rows whose recipient is ``j``.
    dst_indptr: np.ndarray


def pair_order(src: np.ndarray, dst: np.ndarray, n_src: int, n_dst: int) -> PairOrder:
    """Stable order of rows by (``src``, ``dst``): ``np.lexsort((dst, src))``, in two linear passes.

    Each row becomes the one entry of a row of an ``n_rows x n_dst`` CSR
    matrix, holding its sender; the CSC form lists, recipient by recipient,
    the rows in increasing order and their senders (a stable counting sort by
    ``dst``). Read as the CSR form of a recipient x sender matrix, its
    transpose to CSC lists, sender by sender, the recipients in increasing
    order and the rows in increasing order within each recipient.

    Parameters
    ----------
    src, dst : numpy.ndarray of int
        Node ids of each row's sender in ``[0, n_src)`` and recipient in ``[0, n_dst)``.
    n_src, n_dst : int

    Returns
    -------
    PairOrder

    Examples
    --------
    >>> src, dst = np.array([1, 0, 1, 0, 1]), np.array([2, 2, 0, 2, 2])
    >>> p = pair_order(src, dst, 2, 3)
    >>> p.order.tolist(), p.dst.tolist(), p.src_indptr.tolist()
    ([1, 3, 2, 0, 4], [2, 2, 0, 2, 2], [0, 2, 5])
    >>> p.order.tolist() == np.lexsort((dst, src)).tolist()
    True
    >>> p.dst_rows.tolist(), p.dst_indptr.tolist()
    ([2, 0, 1, 3, 4], [0, 1, 1, 5])
    """
    n_rows = len(src)
    one_each = np.arange(n_rows + 1, dtype=index_dtype(max(n_rows, n_src, n_dst)))
    # By recipient: the CSC's row indices are the rows in (recipient, row) order, its data their senders.
    by_dst = sp.sparse.csr_array((src, dst, one_each), shape=(n_rows, n_dst)).tocsc()
    del one_each
    # The same arrays as a recipient x sender CSR (data: the row numbers), transposed: by sender.
    by_src = sp.sparse.csr_array((by_dst.indices, by_dst.data, by_dst.indptr), shape=(n_dst, n_src)).tocsc()
    return PairOrder(by_src.data, by_src.indices, by_src.indptr, by_dst.indices, by_dst.indptr)


class PairGroups(NamedTuple):
    """Rows grouped into edges by :func:`group_pairs`: the CSR structure, and per node its first and last rows."""

    indptr: np.ndarray
    indices: np.ndarray
    #: Rows (messages) per edge.
    count: np.ndarray
    #: Row numbers in (sender, recipient, row) order: edge ``e``'s rows are
    #: ``order[starts[e]:starts[e] + count[e]]``, in increasing order.
    order: np.ndarray
    starts: np.ndarray
    #: Per sender node: its first and last rows as a sender, -1 when it never is one.
    first_sent: np.ndarray
    last_sent: np.ndarray
    #: Per recipient node: its first and last rows as a recipient, -1 when it never is one.
    first_received: np.ndarray
    last_received: np.ndarray
    #: Per recipient node: rows where it is the recipient.
    received: np.ndarray


def group_pairs(src: np.ndarray, dst: np.ndarray, n_src: int, n_dst: int) -> PairGroups:
    """(src, dst) rows -> the CSR structure of their edges, rows per edge, and per node its first/last rows.

    Parameters
    ----------
    src, dst : numpy.ndarray of int
        Sender and recipient node ids of each row.
    n_src, n_dst : int
        Number of sender and recipient nodes (rows and columns of the adjacency).

    Returns
    -------
    PairGroups
        ``indptr`` and ``indices`` come as int32 when they fit (what scipy keeps).

    Examples
    --------
    >>> g = group_pairs(np.array([1, 0, 1, 1]), np.array([0, 1, 0, 1]), 2, 2)
    >>> g.indptr.tolist(), g.indices.tolist(), g.count.tolist()
    ([0, 1, 3], [1, 0, 1], [1, 2, 1])
    >>> g.order.tolist(), g.starts.tolist()
    ([1, 0, 2, 3], [0, 1, 3])
    >>> g.first_sent.tolist(), g.last_sent.tolist(), g.first_received.tolist(), g.last_received.tolist()
    ([1, 0], [1, 3], [0, 1], [2, 3])
    >>> g.received.tolist()
    [2, 2]
    """
    n_rows = len(src)
    none_src, none_dst = np.full(n_src, -1, dtype=np.int64), np.full(n_dst, -1, dtype=np.int64)
    if not n_rows:
        idx = index_dtype(max(n_src, n_dst))
        return PairGroups(np.zeros(n_src + 1, dtype=idx), np.zeros(0, dtype=idx), np.zeros(0, dtype=np.uint32),
                          np.zeros(0, dtype=idx), np.zeros(0, dtype=np.int64), none_src, none_src.copy(), none_dst,
                          none_dst.copy(), np.zeros(n_dst, dtype=np.int64))
    p = pair_order(src, dst, n_src, n_dst)
    # Each run of equal (sender, recipient) rows is one edge: it starts where the recipient changes
    # or a sender's rows start.
    new = np.empty(n_rows, dtype=bool)
    new[0] = True
    np.not_equal(p.dst[1:], p.dst[:-1], out=new[1:])
    sender_starts = p.src_indptr[:-1]
    new[sender_starts[sender_starts < n_rows]] = True
    starts = np.flatnonzero(new)
    m = len(starts)
    count = np.empty(m, dtype=np.uint32)
    np.subtract(starts[1:], starts[:-1], out=count[:-1], casting="unsafe")
    count[-1] = n_rows - starts[-1]
    idx = index_dtype(max(n_src, n_dst, m))
    indices = p.dst[starts].astype(idx, copy=False)
    # A sender's rows are one segment of the order: its edges are the edge starts in it.
    senders = np.flatnonzero(np.diff(p.src_indptr))
    sender_starts = p.src_indptr[senders]
    indptr = np.zeros(n_src + 1, dtype=idx)
    indptr[senders + 1] = np.add.reduceat(new.view(np.uint8), sender_starts, dtype=idx)
    np.cumsum(indptr, out=indptr)
    del new
    first_sent, last_sent = none_src, none_src.copy()
    first_sent[senders] = np.minimum.reduceat(p.order, sender_starts)
    last_sent[senders] = np.maximum.reduceat(p.order, sender_starts)
    # A recipient's rows are one segment of the recipient order, rows increasing.
    received = np.diff(p.dst_indptr).astype(np.int64)
    first_received, last_received = none_dst, none_dst.copy()
    has = received > 0
    first_received[has] = p.dst_rows[p.dst_indptr[:-1][has]]
    last_received[has] = p.dst_rows[p.dst_indptr[1:][has] - 1]
    return PairGroups(indptr, indices, count, p.order, starts, first_sent, last_sent, first_received, last_received,
                      received)


def edge_times(groups: PairGroups, ts: np.ndarray, ts_sorted: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """First and last time of each edge (``ts``: the time of each row, int64).

    ``ts_sorted`` says the rows are in time order (``ts`` non-decreasing): an
    edge's first and last rows then hold its first and last times.

    Examples
    --------
    >>> g = group_pairs(np.array([1, 0, 1, 1]), np.array([0, 1, 0, 1]), 2, 2)
    >>> [t.tolist() for t in edge_times(g, np.array([10, 20, 30, 40]), ts_sorted=True)]
    [[20, 10, 40], [20, 30, 40]]
    >>> [t.tolist() for t in edge_times(g, np.array([40, 20, 30, 10]))]
    [[20, 30, 10], [20, 40, 10]]
    """
    order, starts, count = groups.order, groups.starts, groups.count
    if not len(starts):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if ts_sorted:
        # An edge's rows come in increasing order: its first and last rows hold its first and last times.
        first = ts[order[starts]]
        # Most edges carry one message: their last time is their first, only the others are gathered.
        last = first.copy()
        several = np.flatnonzero(count > 1)
        last[several] = ts[order[starts[several] + count[several] - 1]]
        return first, last
    t = ts[order]
    return np.minimum.reduceat(t, starts), np.maximum.reduceat(t, starts)


def edge_label_counts(groups: PairGroups, label: np.ndarray | None) -> np.ndarray:
    """Rows of each edge labelled with each of :data:`LABELS`: ``(n_edges, 3)`` uint32.

    ``label`` holds, per row, an index into :data:`LABELS`, or -1 for none; None for no labels at all.

    Examples
    --------
    >>> g = group_pairs(np.array([1, 0, 1, 1]), np.array([0, 1, 0, 1]), 2, 2)
    >>> edge_label_counts(g, np.array([-1, 1, 1, 2], dtype=np.int8)).tolist()
    [[0, 1, 0], [0, 1, 0], [0, 0, 1]]
    """
    label_counts = np.zeros((len(groups.starts), len(LABELS)), dtype=np.uint32)
    if label is None or not len(label):
        return label_counts
    # Most mail carries no label: count only the labelled rows.
    labelled = label[groups.order]
    hit = np.flatnonzero(labelled >= 0)
    edge = np.searchsorted(groups.starts, hit, side="right") - 1
    # Values of the output's dtype keep ufunc.at on its fast path (a Python 1 is 20x slower).
    np.add.at(label_counts.reshape(-1), edge * len(LABELS) + labelled[hit], np.ones(len(hit), dtype=np.uint32))
    return label_counts
