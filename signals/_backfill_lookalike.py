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

from commgraph.baselines._sweeps import _compiled, first_present_level, warmed_by

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
    # Each message's answer is its query's (its domain and the changes before it), answered once: against the
    # list's changes, then the list ``always`` (by the queries' domains, not each message's).
    query = None
    if len(domain) and len(changes[0]):
        query, q_domain, q_done = _queries(domain, instants, changes[1], len(names))
        answer = _changing(q_domain, q_done, names, changes)
    else:
        q_domain, answer = np.asarray(domain, dtype=np.int64), np.full(len(domain), DISTANCE_CAP, np.int32)
    if len(always) and len(q_domain):
        # The smallest distance over the union of two lists is the smaller of the two (each skipping the domain
        # itself, as one list would).
        # Per domain code (dense: a count per code finds the distinct ones, no hashing).
        distinct = np.flatnonzero(np.bincount(q_domain, minlength=len(names)))
        fixed = np.full(len(names), DISTANCE_CAP, np.int32)
        fixed[distinct] = nearest_known([str(names[c]) for c in distinct], list(always),
                                        [skeleton(a) for a in always])[0]
        answer = np.minimum(answer, fixed[q_domain], out=answer)
    return answer if query is None else answer[query]


def _changing(q_domain: np.ndarray, q_done: np.ndarray, names: np.ndarray,
              changes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Per query (of :func:`_queries`: a domain, and how many of the list's changes it sees), the distance to
    the list's members then (of a list that changes at least once)."""
    codes, times, signs = changes
    q_row, asked = pd.factorize(q_domain)
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
    return _first_present_level(matrix, column, np.asarray(signs, dtype=np.int64), q_row, q_done)


def _queries(domain: np.ndarray, instants: np.ndarray, times: np.ndarray, n_names: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each message's query, numbered in order of first appearance, and each query's domain and count of list
    changes strictly before its instant (``np.searchsorted(times, instants, side="left")``): what
    ``pd.factorize`` of ``domain * stride + done`` numbers, to the same numbers.

    Messages in time order (a tenant's) with the changes in time order take one compiled pass
    (:func:`_queries_kernel`), with no search or hash per message; others, numpy and pandas.

    Examples
    --------
    >>> query, q_domain, q_done = _queries(np.array([1, 0, 1, 1]), np.array([5, 5, 8, 20]), np.array([6, 10]), 2)
    >>> query.tolist(), q_domain.tolist(), q_done.tolist()
    ([0, 1, 2, 3], [1, 0, 1, 1], [0, 0, 1, 2])
    """
    domain, instants = np.asarray(domain, np.int64), np.asarray(instants, np.int64)
    times = np.array(times, np.int64)  # (a writable copy, few: the signature warmed)
    n = len(domain)
    if len(instants) == n:
        query, q_domain, q_done = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
        seen = np.empty((max(n_names, 0), 2), np.int64)
        count = _queries_kernel(domain, instants, times, seen, query, q_domain, q_done)
        if count >= 0:
            return query, q_domain[:count], q_done[:count]
    stride = len(times) + 1
    query, distinct = pd.factorize(domain * stride + np.searchsorted(times, instants, side="left"))
    return query, distinct // stride, distinct % stride


@_compiled
def _queries_kernel(domain, instants, times, seen, query, q_domain, q_done):  # pragma: no cover - compiled
    # _queries' numbers in one pass: a pointer walks the changes as the instants grow, so each count of changes
    # only grows, and a (domain, count) pair, once its domain is seen with a larger count, never comes back:
    # the domain's last pair (``seen``: its count and number) is all to compare with. Returns how many
    # queries, or -1 at once where the instants or the changes' times go back, or a domain is outside ``seen``.
    for j in range(1, len(times)):
        if times[j] < times[j - 1]:
            return -1
    seen[:, 0] = -1
    done, count = 0, 0
    for i in range(len(domain)):
        t = instants[i]
        if i > 0 and t < instants[i - 1]:
            return -1
        while done < len(times) and times[done] < t:
            done += 1
        d = domain[i]
        if d < 0 or d >= len(seen):
            return -1
        if seen[d, 0] != done:
            seen[d, 0] = done
            seen[d, 1] = count
            q_domain[count] = d
            q_done[count] = done
            count += 1
        query[i] = seen[d, 1]
    return count


@warmed_by
def _warm() -> None:
    """:func:`_queries_kernel` on one message, its columns writable or read-only (numba compiles each kind
    apart; for :func:`commgraph.baselines._sweeps.warm_up`)."""
    for writable in (True, False):
        domain, instants = np.zeros(1, np.int64), np.ones(1, np.int64)
        domain.flags.writeable = instants.flags.writeable = writable
        _queries(domain, instants, np.zeros(1, np.int64), 1)


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
