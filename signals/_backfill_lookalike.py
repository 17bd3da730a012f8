"""Look-alike distances as of each message: the distance to the known-contact list its snapshot would hold.

The list changes when a domain joins or leaves it
(:meth:`commgraph.baselines._asof.AsOfTables.known_contacts`). Distances are
computed once, between the distinct sender domains asked about and the domains
ever on the list (one RapidFuzz ``cdist``, as the batch path computes them);
then a sweep through time keeps, per asked domain, how many list members sit at
each distance, and answers each message with the smallest distance present.
"""

from __future__ import annotations

import numpy as np

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
    out = np.full(n, DISTANCE_CAP, np.int32)
    codes, times, signs = changes
    if not n or not len(codes):
        return out
    asked, row = np.unique(domain, return_inverse=True)
    members, column = np.unique(codes, return_inverse=True)
    present = np.array([isinstance(names[c], str) and bool(names[c]) for c in members])
    known = [names[c] if ok else "" for c, ok in zip(members, present)]
    matrix = distance_matrix([str(names[c]) for c in asked], known,
                             [skeleton(k) if k else "" for k in known], dtype=np.int8)
    matrix[:, ~present] = DISTANCE_CAP  # a domain without a name is not on the list (as a snapshot drops it)
    # Sweep: per asked domain, list members at each distance below the cap.
    count = np.zeros((len(asked), DISTANCE_CAP), np.int32)
    done = np.searchsorted(times, instants, side="left")  # changes strictly before each message
    order = np.argsort(done, kind="stable")
    bounds = np.flatnonzero(np.diff(done[order])) + 1
    applied = 0
    for group in np.split(order, bounds):
        upto = int(done[group[0]])
        if upto > applied:
            cols, sgn = column[applied:upto], signs[applied:upto]
            levels = matrix[:, cols].astype(np.int64)  # asked x changes
            rows, which = np.nonzero(levels < DISTANCE_CAP)
            # One bincount over the flat (asked, distance) cells: many times faster than np.add.at.
            cells = rows * DISTANCE_CAP + levels[rows, which]
            count += np.bincount(cells, weights=sgn[which], minlength=count.size).astype(np.int32).reshape(count.shape)
            applied = upto
        have = count[row[group]] > 0
        out[group] = np.where(have.any(axis=1), have.argmax(axis=1), DISTANCE_CAP)
    return out
