"""Look-alike domains: confusable skeletons (Unicode TS #39 data) and edit distances (RapidFuzz).

A domain is compared with the tenant's own and known-contact domains after
both are reduced to a *skeleton*: punycode labels decoded to Unicode, accents
stripped, every character that Unicode lists as confusable with an ASCII
letter or digit replaced by it (Cyrillic ``а`` -> ``a``), digits read as the
letters they imitate (``0`` -> ``o``, ``1`` -> ``l``) and ASCII sequences that
render like one letter folded (``rn`` -> ``m``, ``vv`` -> ``w``). The
confusables come from the Unicode ``confusables.txt`` as shipped by the
``confusable-homoglyphs`` package; the distance is RapidFuzz's Levenshtein,
computed for the batch's distinct domains against the known ones in one
``cdist`` call with a cutoff that bounds the work. The same name under
another public suffix (``acme.net``, ``acme.co.uk`` next to ``acme.com``) is
one edit away, however many characters the suffixes differ by: swapping the
suffix is how such look-alikes are registered.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import Collection, Iterable

import numpy as np
import pandas as pd

from commgraph.graph._addresses import _public_suffix_list
from commgraph.graph._confusables import confusable_tables
from commgraph.graph._freemail import freemail_domains

from ._freemail import _freemail_index  # (the providers as an index, made once per process)

__all__ = ["skeleton", "LookalikeCache", "nearest_known", "distance_matrix", "is_established", "never_close",
           "never_close_all", "compared_with", "DISTANCE_CAP", "CLOSE_DISTANCE", "ESTABLISHED_DAYS"]

#: Distances are capped: this value means "this far or farther, or nothing to compare with".
DISTANCE_CAP = 8
#: A domain at most this many edits from a known domain (after skeletons) is "close".
CLOSE_DISTANCE = 2
#: A domain that has sent mail on this many distinct days is an established correspondent,
#: not a look-alike in waiting: look-alikes are registered for an attack and are new.
#: (A long-known domain turned hostile is vendor compromise, which other signals cover.)
ESTABLISHED_DAYS = 14


def is_established(n_outbound_to: np.ndarray | int, n_internal: np.ndarray | int, n_outbound: np.ndarray | int,
                   active_days: np.ndarray | int) -> np.ndarray | bool:
    """Whether a sender domain is an established contact (so never flagged as a look-alike).

    The one definition behind ``lookalike_domain_is_close`` in the batch, single-message
    and backfill paths and behind ``explain``: the tenant wrote to the domain, or it
    sends internal or outbound mail (an own domain, as
    :meth:`SnapshotView.own_domain_mask <commgraph.signals._view.SnapshotView.own_domain_mask>`
    reads it, and on the known-contact list as one), or it sent mail on at least
    :data:`ESTABLISHED_DAYS` distinct days. Elementwise on numpy arrays; plain
    numbers give one bool.

    Parameters
    ----------
    n_outbound_to, n_internal, n_outbound, active_days : int or ndarray
        The sender-domain table's columns of those names (0 for an unknown domain).

    Returns
    -------
    bool or ndarray of bool

    Examples
    --------
    >>> is_established(np.array([0, 2, 0, 0, 0]), np.array([0, 0, 1, 0, 0]), np.array([0, 0, 0, 3, 0]),
    ...                np.array([3, 0, 0, 0, 14])).tolist()
    [False, True, True, True, True]
    >>> bool(is_established(0, 0, 0, ESTABLISHED_DAYS - 1))
    False
    """
    return (n_outbound_to > 0) | (n_internal > 0) | (n_outbound > 0) | (active_days >= ESTABLISHED_DAYS)


def never_close(domain: str, own: Collection[str] = ()) -> bool:
    """Whether a sender domain is never flagged as a look-alike, whatever its distance.

    The rule every path applies besides :func:`is_established`: a consumer mail
    provider's domain (the list behind ``domain_is_freemail``) is never close,
    since nobody can register ``gmx.com`` or ``mail.com`` to attack with it
    (a look-alike *of* a provider, ``gmaii.com``, is still flagged); nor is one
    of the tenant's own domains as configured (``own``), which counts as
    established even before it sends its first internal or outbound message.

    Parameters
    ----------
    domain : str
        The sender's registrable domain.
    own : collection of str
        The tenant's own domains the comparison list was given (:func:`compared_with`).

    Returns
    -------
    bool

    Examples
    --------
    >>> never_close("mail.com"), never_close("gmaii.com"), never_close("acme.co", ("acme.com", "acme.co"))
    (True, False, True)
    """
    return domain in freemail_domains() or domain in own


def never_close_all(domains: np.ndarray, own: Collection[str] = ()) -> np.ndarray:
    """:func:`never_close` of each of many domains (None where unknown: False), one hash lookup each.

    Examples
    --------
    >>> never_close_all(np.array(["mail.com", "gmaii.com", None, "acme.co"], dtype=object), ("acme.co",)).tolist()
    [True, False, False, True]
    """
    names = pd.Index(domains, dtype=object)
    never = np.asarray(names.isin(_freemail_index()), dtype=bool)
    own = [d for d in own if d]
    return never | np.asarray(names.isin(own), dtype=bool) if own else never


def compared_with(known: list[str], own: Iterable[str]) -> list[str]:
    """The domains a sender domain is compared with: the snapshot's known list, then the own domains not on it.

    The snapshot's list holds the own domains that sent internal or outbound
    mail; a configured own domain that never did (a gateway that sees only
    inbound mail, a receive-only brand domain) is a look-alike target all the
    same. Appended after the known ones, so each known domain keeps its position.

    Examples
    --------
    >>> compared_with(["acme.com", "globex.com"], ["acme.com", "acme-brand.com"])
    ['acme.com', 'globex.com', 'acme-brand.com']
    """
    listed = set(known)
    return [*known, *(d for d in dict.fromkeys(own) if d and d not in listed)]


# Digits that imitate letters (Unicode lists 0 ~ O and 1 ~ l); domains are lower case.
_DIGITS = {"0": "o", "1": "l"}
_DIGIT_TABLE = str.maketrans(_DIGITS)
#: (single character -> ASCII letter or digit, ASCII sequences -> one letter): the table display names share.
_tables = confusable_tables


def _decode(domain: str) -> str:
    if "xn--" not in domain:
        return domain
    labels = []
    for label in domain.split("."):
        if label.startswith("xn--"):
            try:
                label = label[4:].encode("ascii").decode("punycode")
            except UnicodeError:
                pass
        labels.append(label)
    return ".".join(labels)


def _characters(domain: str) -> str:
    """A domain's characters read one by one: punycode decoded, accents stripped, confusables and digits mapped."""
    chars = _tables()[0]
    out = []
    for ch in unicodedata.normalize("NFD", _decode(domain).lower()):
        if unicodedata.combining(ch):
            continue  # accents: 'é' reads as 'e'
        if not ch.isascii():
            ch = chars.get(ch, ch)
        out.append(_DIGITS.get(ch, ch))
    return "".join(out)


@functools.lru_cache(maxsize=65536)
def skeleton(domain: str) -> str:
    """The confusable skeleton of a domain (for comparison only, never for display).

    Parameters
    ----------
    domain : str
        A normalised domain (punycode labels allowed).

    Returns
    -------
    str

    Examples
    --------
    >>> skeleton("rnicrosoft.com")
    'microsoft.com'
    >>> skeleton("xn--pple-43d.com")  # Cyrillic 'а'
    'apple.com'
    >>> skeleton("paypa1.com")
    'paypal.com'
    """
    sequences = _tables()[1]
    if domain.isascii() and "xn--" not in domain:
        # Plain ASCII (most domains): nothing to decode, decompose, strip or map but the digits; the
        # character walk gives the same text, a lookup per character slower.
        text = domain.lower().translate(_DIGIT_TABLE)
    else:
        text = _characters(domain)
    for seq, letter in sequences:
        if seq in text:
            text = text.replace(seq, letter)
    return text


class LookalikeCache:
    """Sender domains already checked: each one's distance to the nearest known domain, and which that is.

    Two dictionaries of integers, not one of ``(distance, position)`` tuples: a
    dictionary holding only atoms is invisible to the cyclic garbage collector,
    so a domain checked inside a ``score_one`` call leaves nothing the collector
    must visit (a tuple per domain did, and the collections it triggered sat in
    the latency tail). ``nearest`` is written before ``distance``, so a reader
    that finds a distance also finds its position.

    The snapshot's own sender domains are :meth:`seed`-ed and kept for the
    view's life; domains met while serving are :meth:`add`-ed, and once more
    than ``limit`` of them are held they are forgotten together (the next
    lookups check them again), so a long-lived view's memory stays bounded
    whatever new domains the mail brings.

    Examples
    --------
    >>> cache = LookalikeCache(limit=3)
    >>> cache.seed(["rnicrosoft.com", "example.org"], [0, DISTANCE_CAP], [3, -1])
    >>> cache.distance.get("rnicrosoft.com"), cache.nearest_of("rnicrosoft.com"), cache.nearest_of("new.com")
    (0, 3, -1)
    >>> cache.add(["a.com", "b.com"], [8, 8], [-1, -1])
    >>> cache.add(["c.com", "d.com"], [8, 1], [-1, 0])
    >>> sorted(cache.distance), cache
    (['c.com', 'd.com', 'example.org', 'rnicrosoft.com'], LookalikeCache(4 domains checked))
    """

    __slots__ = ("distance", "nearest", "limit", "_added", "_names")

    def __init__(self, limit: int = 1 << 20) -> None:
        self.distance: dict[str, int] = {}
        self.nearest: dict[str, int] = {}
        self.limit = limit
        self._added: list[str] = []  # domains added while serving, in order (seeded ones are kept)
        self._names: tuple[list[str], dict[str, list[int]]] | None = None

    def names_of(self, known: list[str]) -> dict[str, list[int]]:
        """The name index (:func:`name_index`) of the known list this cache's domains were checked against,
        made on first use and kept with the cache: a first-seen domain on the single-message path then costs no
        pass over the list, however many tenants a process serves."""
        found = self._names
        if found is None or found[0] is not known:
            found = self._names = (known, name_index(known))
        return found[1]

    def seed(self, domains: list[str], distances: list[int], nearest: list[int]) -> None:
        """Record checked domains that stay for the cache's life (the snapshot's own sender domains)."""
        self.nearest.update(zip(domains, nearest))
        self.distance.update(zip(domains, distances))

    def add(self, domains: list[str], distances: list[int], nearest: list[int]) -> None:
        """Record domains checked while serving: their distances and nearest known domains (-1: none)."""
        if len(self._added) + len(domains) > self.limit:
            # Forget every domain added while serving (distance first: see the class notes), one pass
            # per ``limit`` new domains; a reader that misses one checks it again.
            for domain in self._added:
                self.distance.pop(domain, None)
            for domain in self._added:
                self.nearest.pop(domain, None)
            self._added.clear()
        self.seed(domains, distances, nearest)
        self._added.extend(domains)

    def nearest_of(self, domain: str) -> int:
        """Position of the known domain that ``domain`` resembles most, -1 when none or not checked."""
        return self.nearest.get(domain, -1)

    def __len__(self) -> int:
        return len(self.distance)

    def __repr__(self) -> str:
        return f"LookalikeCache({len(self)} domains checked)"


def nearest_known(domains: list[str], known: list[str], known_skeletons: list[str], *,
                  cap: int = DISTANCE_CAP) -> tuple[np.ndarray, np.ndarray]:
    """Smallest skeleton edit distance from each domain to a known domain other than itself.

    Parameters
    ----------
    domains : list of str
        Distinct domains to check.
    known, known_skeletons : list of str
        Known domains and their skeletons.
    cap : int
        Distances above ``cap`` are reported as ``cap``.

    Returns
    -------
    distance : ndarray of int32
    nearest : ndarray of int64
        Position in ``known`` of the nearest domain, -1 when none is within ``cap``.

    Examples
    --------
    >>> known = ["microsoft.com", "acme.com"]
    >>> d, i = nearest_known(["rnicrosoft.com", "acme.com", "example.org"], known, [skeleton(k) for k in known])
    >>> d.tolist(), i.tolist()
    ([0, 8, 8], [0, -1, -1])
    """
    n = len(domains)
    if not n or not known:
        return np.full(n, cap, np.int32), np.full(n, -1, np.int64)
    # Rows in blocks of at most _CELLS distances: a tenant that wrote to 20,000 domains, checked against its
    # 20,000 senders' domains at start, needed 1.2 GB at once (and a std::bad_alloc beyond); rows are independent.
    distance, nearest = np.empty(n, np.int32), np.empty(n, np.int64)
    rows = max(1, _CELLS // len(known))
    names = name_index(known)  # (once, not once per block)
    for lo in range(0, n, rows):
        matrix = distance_matrix(domains[lo:lo + rows], known, known_skeletons, cap=cap, dtype=np.int8,
                                 names=names)
        nearest[lo:lo + rows] = matrix.argmin(axis=1)
        distance[lo:lo + rows] = np.minimum(matrix[np.arange(len(matrix)), nearest[lo:lo + rows]], cap)
    return distance, np.where(distance < cap, nearest, -1).astype(np.int64)


#: Distances computed at once by :func:`nearest_known` (int8: 4 MB).
_CELLS = 1 << 22


def distance_matrix(domains: list[str], known: list[str], known_skeletons: list[str], *, cap: int = DISTANCE_CAP,
                    dtype: type = np.int32, names: dict[str, list[int]] | None = None, shared: int = 0) -> np.ndarray:
    """Skeleton edit distances from each domain to each known domain, above ``cap - 1`` read as ``cap``.

    A domain's distance to itself reads ``cap``: it is not a look-alike of itself; the same name under another
    public suffix reads 1. ``names``: the :func:`name_index` of ``known``, when the caller keeps it.
    ``shared``: the first ``shared`` domains are the first ``shared`` known ones, in the same order; the
    distance is symmetric, so their block is computed once per pair (backfill asks about its known domains).

    Examples
    --------
    >>> known = ["microsoft.com", "acme.com"]
    >>> distance_matrix(["rnicrosoft.com", "acme.com"], known, [skeleton(k) for k in known]).tolist()
    [[0, 8], [8, 8]]
    >>> distance_matrix(["acme.com", "acne.com"], ["acme.com", "acne.com"], ["acme.com", "acne.com"], shared=2).tolist()
    [[8, 1], [1, 8]]
    """
    skeletons = [skeleton(d) for d in domains]
    if shared and skeletons[:shared] != known_skeletons[:shared]:
        raise ValueError(f"distance_matrix: the first {shared} domains are not the first {shared} known domains")
    matrix = _levenshtein(skeletons, known_skeletons, cap - 1, dtype, shared)
    same_name = name_index(known) if names is None else names
    for row, d in enumerate(domains):
        for col in _swapped_suffix(d, known, same_name):  # (few: the known domains of this domain's name)
            matrix[row, col] = min(matrix[row, col], SUFFIX_SWAP)
    position = {k: i for i, k in enumerate(known)}
    for row, d in enumerate(domains):
        col = position.get(d)
        if col is not None:
            matrix[row, col] = cap
    return matrix


#: The distance of the same name under another public suffix: one edit.
SUFFIX_SWAP = 1
#: A shared block of fewer domains is computed whole (in blocks, a symmetric one saves a third from about 1,000).
_SYMMETRIC_FROM = 256


def _levenshtein(queries: list[str], choices: list[str], cutoff: int, dtype: type, shared: int) -> np.ndarray:
    """RapidFuzz's ``cdist`` of Levenshtein distances above ``cutoff`` read as ``cutoff + 1``; the block of the
    first ``shared`` queries and choices (the same strings) is symmetric: of its 4 x 4 blocks, those on and above
    the diagonal are computed, the others are their transposes (cdist of a list with itself computes the whole
    block, and slower)."""
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist

    def distances(rows: list[str], columns: list[str]) -> np.ndarray:
        return cdist(rows, columns, scorer=Levenshtein.distance, score_cutoff=cutoff, dtype=dtype, workers=1)

    if shared < _SYMMETRIC_FROM:
        return distances(queries, choices)
    out = np.empty((len(queries), len(choices)), dtype)
    bounds = [shared * k // 4 for k in range(5)]
    for i in range(4):
        for j in range(i, 4):
            block = distances(queries[bounds[i]:bounds[i + 1]], choices[bounds[j]:bounds[j + 1]])
            out[bounds[i]:bounds[i + 1], bounds[j]:bounds[j + 1]] = block
            if j > i:
                out[bounds[j]:bounds[j + 1], bounds[i]:bounds[i + 1]] = block.T
    if shared < len(choices):
        out[:shared, shared:] = distances(queries[:shared], choices[shared:])
    if shared < len(queries):
        out[shared:] = distances(queries[shared:], choices)
    return out


@functools.lru_cache(maxsize=65536)
def _name_and_suffix(domain: str) -> tuple[str, str]:
    """A registrable domain's name (its skeleton) and public suffix: ("acme", "co.uk") for acme.co.uk; ("", "")
    for one that has no name of its own (a public suffix)."""
    suffix = _public_suffix_list().publicsuffix(domain) or ""
    if not suffix or len(domain) <= len(suffix) + 1:
        return "", ""
    return skeleton(domain[:-len(suffix) - 1]), suffix


def name_index(known: list[str]) -> dict[str, list[int]]:
    """Positions of the known domains by name skeleton (:func:`nearest_known` makes it per call; the scalar
    path keeps it with its :class:`LookalikeCache`).

    Examples
    --------
    >>> name_index(["acme.com", "globex.com", "acme.co.uk"])
    {'acme': [0, 2], 'globex': [1]}
    """
    names: dict[str, list[int]] = {}
    for i, k in enumerate(known):
        name = _name_and_suffix(k)[0]
        if name:
            names.setdefault(name, []).append(i)
    return names


def _swapped_suffix(domain: str, known: list[str], same_name: dict[str, list[int]]) -> list[int]:
    """Positions of the known domains with the domain's name (as skeletons) under another public suffix."""
    name, suffix = _name_and_suffix(domain)
    if not name or name not in same_name:
        return []
    return [i for i in same_name[name] if _name_and_suffix(known[i])[1] != suffix]


def nearest_one(domain: str, known: list[str], known_skeletons: list[str], *,
                cap: int = DISTANCE_CAP, names: dict[str, list[int]] | None = None) -> tuple[int, int]:
    """:func:`nearest_known` for one domain, without numpy (the scalar path); same ties (lowest position).
    ``names``: the :func:`name_index` of ``known``, when the caller keeps it (else made here).

    Examples
    --------
    >>> known = ["microsoft.com", "acme.com"]
    >>> nearest_one("rnicrosoft.com", known, [skeleton(k) for k in known])
    (0, 0)
    """
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import extract

    if not known:
        return cap, -1
    best = (cap, -1)
    # The domain itself is at most one of the known ones: the best two suffice to skip it.
    for _, distance, where in extract(skeleton(domain), known_skeletons, scorer=Levenshtein.distance,
                                      score_cutoff=cap - 1, limit=2):
        if known[where] != domain:
            best = (int(distance), int(where))
            break
    swapped = _swapped_suffix(domain, known, name_index(known) if names is None else names)
    if swapped:  # (the lowest position on a tie, as nearest_known's argmin)
        best = min(best if best[1] >= 0 else (cap, len(known)), (SUFFIX_SWAP, swapped[0]))
    return best
