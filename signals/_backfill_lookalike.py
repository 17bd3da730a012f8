"""Look-alike distances as of each message: the distance to the known-contact list its snapshot would hold.

The list changes when a domain joins or leaves it
(:meth:`commgraph.baselines._asof.AsOfTables.known_contacts`). Distances are
computed once, between the distinct sender domains asked about and the domains
ever on the list (one RapidFuzz ``cdist``, as the batch path computes them).
A message's answer depends only on its domain and on how many list changes
precede it, so each distinct (domain, changes applied) pair is answered once:
the smallest distance at which a list member is present then. All pairs are
answered in one compiled pass over the list's changes in order, each change
counted at its member's distance from every asked domain, each pair read off
its domain's counts once its changes are applied.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from commgraph.baselines._sweeps import first_present_level

from ._lookalike import DISTANCE_CAP, distance_matrix, nearest_known, skeleton

__all__ = ["distances_as_of"]


def distances_as_of(domain: np.ndarray, instants: np.ndarray, names: np.ndarray,
                    changes: tuple[np.ndarray, np.ndarray, np.ndarray], always: Sequence[str] = ()) -> np.ndarray:
    """Per message, the capped skeleton distance from its sender domain to the known list as of its instant.

    Domains in ``always`` (the tenant's own domains, a configuration rather
    than behaviour) are on the list at every instant, as the scoring paths
    append them to a snapshot's list (:meth:`SnapshotView.comparison`).

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
    always : sequence of str
        Domains on the list throughout.

    Returns
    -------
    ndarray of int32

    Examples
    --------
    >>> names = np.array(["acme.com", "acrne.com", "other.org"], dtype=object)
    >>> changes = (np.array([0, 2, 0]), np.array([10, 10, 30]), np.array([1, 1, -1]))
    >>> distances_as_of(np.array([1, 1, 1]), np.array([5, 20, 40]), names, changes).tolist()
    [8, 0, 7]
    >>> distances_as_of(np.array([1, 1, 1]), np.array([5, 20, 40]), names, changes, always=["acme.com"]).tolist()
    [0, 0, 0]
    """
    answer = _changing(domain, instants, names, changes)
    if len(always) and len(domain):
        # The smallest distance over the union of two lists is the smaller of the two (each skipping the domain
        # itself, as one list would).
        # Per domain code (dense: a count per code finds the distinct ones, no hashing of every message's).
        domain = np.asarray(domain, dtype=np.int64)
        distinct = np.flatnonzero(np.bincount(domain, minlength=len(names)))
        fixed = np.full(len(names), DISTANCE_CAP, np.int32)
        fixed[distinct] = nearest_known([str(names[c]) for c in distinct], list(always),
                                        [skeleton(a) for a in always])[0]
        answer = np.minimum(answer, fixed[domain], out=answer)
    return answer


def _changing(domain: np.ndarray, instants: np.ndarray, names: np.ndarray,
              changes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """:func:`distances_as_of` against the list's changes alone."""
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
    # The domains both asked about and on the list (most of either) first, in one order on both sides: their
    # distances are symmetric, computed once per pair (distance_matrix's ``shared``).
    member_at = pd.Index(members).get_indexer(asked)
    both = member_at >= 0
    both[both] = present[member_at[both]]
    rows = np.concatenate([np.flatnonzero(both), np.flatnonzero(~both)])
    columns = np.concatenate([member_at[both], np.flatnonzero(~np.isin(np.arange(len(members)), member_at[both]))])
    asked, members, present = asked[rows], members[columns], present[columns]
    q_row, column = _inverse(rows)[q_row], _inverse(columns)[column]
    known = [names[c] if ok else "" for c, ok in zip(members, present)]
    matrix = distance_matrix([str(names[c]) for c in asked], known,
                             [skeleton(k) if k else "" for k in known], dtype=np.int8, shared=int(both.sum()))
    matrix[:, ~present] = DISTANCE_CAP  # a domain without a name is not on the list (as a snapshot drops it)
    answer = _first_present_level(matrix, column, np.asarray(signs, dtype=np.int64), q_row, distinct % stride)
    return answer[query]


def _inverse(order: np.ndarray) -> np.ndarray:
    """The permutation that undoes ``order``: where each original position went."""
    out = np.empty(len(order), np.int64)
    out[order] = np.arange(len(order))
    return out


def _first_present_level(matrix: np.ndarray, column: np.ndarray, signs: np.ndarray, q_row: np.ndarray,
                         q_done: np.ndarray) -> np.ndarray:
    """Per query (asked row, changes applied): the smallest distance at which a list member is present.

    A level is present when the signs of its members' changes among the first
    ``q_done`` sum above zero (as one running count per level would): one
    compiled pass over the changes in order, the queries taken as their
    changes are applied (:func:`commgraph.baselines._sweeps.first_present_level`).
    """
    return first_present_level(matrix, column, signs, q_row, q_done, DISTANCE_CAP)
