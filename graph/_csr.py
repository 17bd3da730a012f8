"""Message x recipient rows -> a CSR adjacency with per-edge count, first/last time and label counts.

The rows are put in (sender, recipient, row) order by two stable counting sorts
rather than a comparison sort: transposing a sparse matrix (CSR -> CSC) in
``scipy.sparse`` is exactly a counting sort of its entries by column, stable
(the CSC's row indices come out sorted), in time linear in rows + nodes. One
pass by recipient, then one by sender, is the least-significant-digit radix sort
with a digit as wide as the node count: two linear passes whatever the number of
nodes. Each run of equal (sender, recipient) rows is then one edge.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy as sp

from ._background import submit
from ._schema import LABELS

__all__ = ["PairOrder", "EdgeAggregates", "index_dtype", "pair_order", "aggregate_pairs"]


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


class EdgeAggregates(NamedTuple):
    """The edges of :func:`aggregate_pairs` (aligned with ``indices``) and what it learnt about nodes."""

    indptr: np.ndarray
    indices: np.ndarray
    #: Rows (messages) per edge.
    count: np.ndarray
    #: First and last time of each edge (int64 nanoseconds).
    first: np.ndarray
    last: np.ndarray
    #: Per edge, rows labelled with each of :data:`LABELS`.
    label_counts: np.ndarray
    #: Per sender node: its first and last rows as a sender, -1 when it never is one.
    first_sent: np.ndarray
    last_sent: np.ndarray
    #: Per recipient node: its first and last rows as a recipient, -1 when it never is one.
    first_received: np.ndarray
    last_received: np.ndarray
    #: Per recipient node: rows where it is the recipient.
    received: np.ndarray


def aggregate_pairs(src: np.ndarray, dst: np.ndarray, n_src: int, n_dst: int, ts: np.ndarray,
                    label: np.ndarray | None, ts_sorted: bool = False) -> EdgeAggregates:
    """(src, dst) rows -> CSR arrays with per-edge count, first/last time and label counts.

    Parameters
    ----------
    src, dst : numpy.ndarray of int
        Sender and recipient node ids of each row.
    n_src, n_dst : int
        Number of sender and recipient nodes (rows and columns of the adjacency).
    ts : numpy.ndarray of int64
        Time of each row.
    label : numpy.ndarray of int8 or None
        Index into :data:`LABELS` of each row's label; -1 when it has none.
    ts_sorted : bool
        The rows are in time order (``ts`` non-decreasing): an edge's first
        and last rows then hold its first and last times.

    Returns
    -------
    EdgeAggregates
        ``indptr`` and ``indices`` come as int32 when they fit (what scipy keeps).

    Examples
    --------
    >>> a = aggregate_pairs(np.array([1, 0, 1, 1]), np.array([0, 1, 0, 1]), 2, 2,
    ...                     np.array([10, 20, 30, 40]), np.array([-1, 1, 1, -1], dtype=np.int8), ts_sorted=True)
    >>> a.indptr.tolist(), a.indices.tolist(), a.count.tolist()
    ([0, 1, 3], [1, 0, 1], [1, 2, 1])
    >>> a.first.tolist(), a.last.tolist(), a.label_counts.tolist()
    ([20, 10, 40], [20, 30, 40], [[0, 1, 0], [0, 1, 0], [0, 0, 0]])
    >>> a.first_sent.tolist(), a.last_sent.tolist(), a.first_received.tolist(), a.last_received.tolist()
    ([1, 0], [1, 3], [0, 1], [2, 3])
    >>> a.received.tolist()
    [2, 2]
    """
    n_rows = len(src)
    if not n_rows:
        idx = index_dtype(max(n_src, n_dst))
        none_src, none_dst = np.full(n_src, -1, dtype=np.int64), np.full(n_dst, -1, dtype=np.int64)
        return EdgeAggregates(np.zeros(n_src + 1, dtype=idx), np.zeros(0, dtype=idx), np.zeros(0, dtype=np.uint32),
                              np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64),
                              np.zeros((0, len(LABELS)), dtype=np.uint32), none_src, none_src.copy(), none_dst,
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
    # The times are random gathers, which numpy runs without the GIL: the second core fetches them
    # while this one counts the labels.
    times = submit(_edge_times, ts, p.order, starts, count, ts_sorted, rows=n_rows)
    label_counts = np.zeros((m, len(LABELS)), dtype=np.uint32)
    if label is not None and len(label):
        # Most mail carries no label: count only the labelled rows.
        labelled = np.take(label, p.order)
        hit = np.flatnonzero(labelled >= 0)
        edge = np.searchsorted(starts, hit, side="right") - 1
        # Values of the output's dtype keep ufunc.at on its fast path (a Python 1 is 20x slower).
        np.add.at(label_counts.reshape(-1), edge * len(LABELS) + labelled[hit], np.ones(len(hit), dtype=np.uint32))
    idx = index_dtype(max(n_src, n_dst, m))
    indices = np.take(p.dst, starts).astype(idx, copy=False)
    # A sender's rows are one segment of the order: its edges are the edge starts in it.
    senders = np.flatnonzero(np.diff(p.src_indptr))
    sender_starts = p.src_indptr[senders]
    indptr = np.zeros(n_src + 1, dtype=idx)
    indptr[senders + 1] = np.add.reduceat(new.view(np.uint8), sender_starts, dtype=idx)
    np.cumsum(indptr, out=indptr)
    del new
    first_sent, last_sent = np.full(n_src, -1, dtype=np.int64), np.full(n_src, -1, dtype=np.int64)
    first_sent[senders] = np.minimum.reduceat(p.order, sender_starts)
    last_sent[senders] = np.maximum.reduceat(p.order, sender_starts)
    # A recipient's rows are one segment of the recipient order, rows increasing.
    received = np.diff(p.dst_indptr).astype(np.int64)
    first_received, last_received = np.full(n_dst, -1, dtype=np.int64), np.full(n_dst, -1, dtype=np.int64)
    has = received > 0
    first_received[has] = np.take(p.dst_rows, p.dst_indptr[:-1][has])
    last_received[has] = np.take(p.dst_rows, p.dst_indptr[1:][has] - 1)
    first, last = times.result()
    return EdgeAggregates(indptr, indices, count, first, last, label_counts, first_sent, last_sent, first_received,
                          last_received, received)


def _edge_times(ts: np.ndarray, order: np.ndarray, starts: np.ndarray, count: np.ndarray,
                ts_sorted: bool) -> tuple[np.ndarray, np.ndarray]:
    """First and last time of each edge: rows ``order[starts[i]:starts[i] + count[i]]`` of ``ts``."""
    if ts_sorted:
        # Rows in time order stay so within an edge (the order is stable): an edge's first and last
        # rows hold its first and last times.
        first = np.take(ts, np.take(order, starts))
        # Most edges carry one message: their last time is their first, only the others are gathered.
        last = first.copy()
        several = np.flatnonzero(count > 1)
        last[several] = np.take(ts, np.take(order, starts[several] + count[several] - 1))
        return first, last
    t = np.take(ts, order)
    return np.minimum.reduceat(t, starts), np.maximum.reduceat(t, starts)
