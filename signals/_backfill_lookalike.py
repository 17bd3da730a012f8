"""Look-alike distances as of each message: the distance to the known-contact list its snapshot would hold.

The list changes when a domain joins or leaves it
(:meth:`commgraph.baselines._asof.AsOfTables.known_contacts`). Distances are
computed once, between the distinct sender domains asked about and the domains
ever on the list (one RapidFuzz ``cdist``, as the batch path computes them).
A message's answer depends only on its domain and on how many list changes
precede it, so each distinct (domain, changes applied) pair is answered once:
distance level by level from 0, a pair is settled at the first level where the
list members at that distance, counted through time, are present; only the
pairs still open reach the next level. Most domains have a close neighbour
that joins early, so the higher levels see few (domain, member) cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._lookalike import DISTANCE_CAP, distance_matrix, skeleton

__all__ = ["distances_as_of"]


def distances_as_of(domain: np.ndarray, instants: np.ndarray, names: np.ndarray,
                    changes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Per message, the capped skeleton distance from its sender domain to the known list as of its instant.

    Parameters
    ----------
    domain : ndarray of int64
        Domain code of each message's sender domain.
    instants : ndarray of int64
        Each message's instant (ns); list changes strictly before it count.
    names : ndarray of object
        The domain of each code (None where unknown).
    changes : (codes, times, signs)
        When domains join (+1) and leave (-1) the list, in the order they happen.

    Returns
    -------
    ndarray of int32

    Examples
    --------
    >>> names = np.array(["acme.com", "acrne.com", "other.org"], dtype=object)
    >>> changes = (np.array([0, 2, 0]), np.array([10, 10, 30]), np.array([1, 1, -1]))
    >>> distances_as_of(np.array([1, 1, 1]), np.array([5, 20, 40]), names, changes).tolist()
    [8, 0, 7]
    """
    n = len(domain)
    codes, times, signs = changes
    if not n or not len(codes):
        return np.full(n, DISTANCE_CAP, np.int32)
    # The first ``done`` changes (those strictly before the instant) are the list a message sees.
    stride = len(codes) + 1
    done = np.searchsorted(times, instants, side="left")
    query, distinct = pd.factorize(np.asarray(domain, dtype=np.int64) * stride + done)
    q_row, asked = pd.factorize(distinct // stride)
    column, members = pd.factorize(np.asarray(codes, dtype=np.int64))
    present = np.array([isinstance(names[c], str) and bool(names[c]) for c in members])
    known = [names[c] if ok else "" for c, ok in zip(members, present)]
    matrix = distance_matrix([str(names[c]) for c in asked], known,
                             [skeleton(k) if k else "" for k in known], dtype=np.int8)
    matrix[:, ~present] = DISTANCE_CAP  # a domain without a name is not on the list (as a snapshot drops it)
    answer = _first_present_level(matrix, column, np.asarray(signs, dtype=np.int64), q_row, distinct % stride,
                                  stride)
    return answer[query]


def _first_present_level(matrix: np.ndarray, column: np.ndarray, signs: np.ndarray, q_row: np.ndarray,
                         q_done: np.ndarray, stride: int) -> np.ndarray:
    """Per query (asked row, changes applied): the smallest distance at which a list member is present.

    A level is present when the signs of its members' changes among the first
    ``q_done`` sum above zero (as one running count per level would).
    """
    # The change positions of each member, grouped by member in order of position.
    by_member = np.argsort(column, kind="stable")
    n_changes = np.bincount(column, minlength=matrix.shape[1])
    first_change = np.concatenate([[0], np.cumsum(n_changes)[:-1]])
    answer = np.full(len(q_row), DISTANCE_CAP, np.int32)
    open_ = np.arange(len(q_row))
    levels = np.bincount(matrix.ravel(), minlength=DISTANCE_CAP + 1)[:DISTANCE_CAP]
    for level in np.flatnonzero(levels):  # (few pairs are at 0: equal skeletons)
        rows = np.unique(q_row[open_])
        sub, member = np.nonzero((matrix if len(rows) == len(matrix) else matrix[rows]) == level)
        if not len(sub):
            continue
        # One event per (asked row, member at this level, change of that member).
        per_cell = n_changes[member]
        cell = np.repeat(np.arange(len(sub)), per_cell)
        offset = np.arange(len(cell)) - np.repeat(np.cumsum(per_cell) - per_cell, per_cell)
        position = by_member[first_change[member[cell]] + offset]
        key = rows[sub[cell]].astype(np.int64) * stride + position
        order = np.argsort(key)
        key = key[order]
        running = np.concatenate([[0], np.cumsum(signs[position[order]])])
        asked_at = q_row[open_].astype(np.int64) * stride
        # Sum of the row's events before the query's position: changes strictly before it.
        count = running[np.searchsorted(key, asked_at + q_done[open_])] - running[np.searchsorted(key, asked_at)]
        hit = count > 0
        answer[open_[hit]] = level
        open_ = open_[~hit]
        if not len(open_):
            break
    return answer
