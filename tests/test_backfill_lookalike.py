"""Look-alike distances as of each message against the live path's check on the list replayed to that instant.

The reference replays the known-contact list's changes strictly before each
message, one message at a time, and asks :func:`nearest_known` (what a
snapshot's look-alike check calls) for the distance to the members present
then. Hypothesis draws confusable names (``rn`` / ``m``, ``0`` / ``o``),
unnamed members, ties in time, members that leave and join again, and
messages before, between and after the changes.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from commgraph.signals._backfill_lookalike import distances_as_of
from commgraph.signals._lookalike import DISTANCE_CAP, nearest_known, skeleton


def replayed(domain, instants, names, changes, always=()) -> np.ndarray:
    codes, times, signs = changes
    out = []
    for d, t in zip(domain, instants):
        net: dict[int, int] = {}
        for c, s in zip(codes[times < t], signs[times < t]):
            net[int(c)] = net.get(int(c), 0) + int(s)
        known = [names[c] for c, v in net.items() if v > 0 and isinstance(names[c], str) and names[c]]
        known += [a for a in always if a not in known]  # (SnapshotView.comparison appends them so)
        out.append(int(nearest_known([str(names[d])], known, [skeleton(k) for k in known])[0][0]))
    return np.array(out, np.int32)


# Distinct domains (a code is one domain), some unknown (None).
names_st = st.lists(st.text("amnr0o1l", min_size=1, max_size=6), min_size=1, max_size=12, unique=True).flatmap(
    lambda labels: st.lists(st.booleans(), min_size=len(labels), max_size=len(labels)).map(
        lambda unknown: [None if u else label + ".com" for label, u in zip(labels, unknown)]))


@st.composite
def histories(draw):
    names = draw(names_st)
    k = len(names)
    # Per member: alternately joins and leaves the list (as AsOfTables.known_contacts reports), at times 0..20.
    events = []
    for code in draw(st.lists(st.integers(0, k - 1), max_size=10, unique=True)):
        moments = sorted(draw(st.lists(st.integers(0, 20), min_size=1, max_size=4)))
        events += [(t, code, 1 if i % 2 == 0 else -1) for i, t in enumerate(moments)]
    events.sort(key=lambda e: e[0])  # stable: a member's own changes keep their order at a tie
    changes = (np.array([e[1] for e in events], np.int64), np.array([e[0] for e in events], np.int64),
               np.array([e[2] for e in events], np.int64))
    n = draw(st.integers(0, 30))
    domain = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)), np.int64)
    instants = np.array(draw(st.lists(st.integers(-1, 22), min_size=n, max_size=n)), np.int64)
    return domain, instants, np.array(names, dtype=object), changes


@settings(max_examples=300, deadline=None)
@given(histories())
def test_distances_equal_the_live_check_on_the_replayed_list(history) -> None:
    domain, instants, names, changes = history
    ours = distances_as_of(domain, instants, names, changes)
    assert ours.dtype == np.int32
    assert np.array_equal(ours, replayed(domain, instants, names, changes))


@settings(max_examples=200, deadline=None)
@given(histories(), st.lists(st.text("amnr0o1l", min_size=1, max_size=6).map(lambda label: label + ".com"),
                             max_size=3, unique=True))
def test_domains_always_on_the_list_count_at_every_instant(history, always) -> None:
    """The tenant's own domains (``always``) are on the list throughout, as the scoring paths append them."""
    domain, instants, names, changes = history
    ours = distances_as_of(domain, instants, names, changes, always=always)
    assert ours.dtype == np.int32
    assert np.array_equal(ours, replayed(domain, instants, names, changes, always))


def test_levels_are_settled_in_order() -> None:
    # acme.com's closest member (distance 0 by skeleton) leaves; the next closest (1 edit) stays.
    names = np.array(["acme.com", "acrne.com", "acme.co", "zzzzzzzzzz.org"], dtype=object)
    changes = (np.array([1, 2, 3, 1]), np.array([10, 10, 10, 30]), np.array([1, 1, 1, -1]))
    got = distances_as_of(np.array([0, 0, 0, 3]), np.array([10, 11, 31, 31]), names, changes)
    assert got.tolist() == [DISTANCE_CAP, 0, 1, DISTANCE_CAP]


@settings(max_examples=60, deadline=None)
@given(asked=st.lists(st.sampled_from(["acme.com", "acrne.com", "vendor.net", "vend0r.net", "x.org", "rnicrosoft.com"]),
                      min_size=1, max_size=12, unique=True),
       known=st.lists(st.sampled_from(["acme.com", "vendor.net", "microsoft.com", "x.org", "acme.co"]),
                      min_size=1, max_size=5, unique=True))
def test_nearest_known_in_blocks_equals_one_matrix(asked, known) -> None:
    # The distances are computed in blocks of rows (a tenant that wrote to 20,000 domains needed 1.2 GB at once):
    # blocks of one row give what one matrix gives, ties included.
    import commgraph.signals._lookalike as lookalike

    skeletons = [skeleton(k) for k in known]
    whole = nearest_known(asked, known, skeletons)
    cells = lookalike._CELLS
    try:
        lookalike._CELLS = 1
        blocks = nearest_known(asked, known, skeletons)
    finally:
        lookalike._CELLS = cells
    matrix = lookalike.distance_matrix(asked, known, skeletons)
    assert whole[0].tolist() == blocks[0].tolist() == np.minimum(matrix.min(axis=1), DISTANCE_CAP).tolist()
    assert whole[1].tolist() == blocks[1].tolist()


@settings(max_examples=200, deadline=None)
@given(histories())
def test_distances_with_the_shared_block_in_blocks_equal_the_replayed_list(history) -> None:
    # The domains both asked about and on the list are compared once per pair (a symmetric block, in 4 x 4
    # blocks from _SYMMETRIC_FROM shared domains): from one shared domain on here.
    import commgraph.signals._lookalike as lookalike

    domain, instants, names, changes = history
    start = lookalike._SYMMETRIC_FROM
    try:
        lookalike._SYMMETRIC_FROM = 1
        ours = distances_as_of(domain, instants, names, changes)
    finally:
        lookalike._SYMMETRIC_FROM = start
    assert np.array_equal(ours, replayed(domain, instants, names, changes))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text("amnr0o1l.", min_size=1, max_size=8), min_size=1, max_size=14, unique=True),
       st.lists(st.text("amnr0o1l.", min_size=1, max_size=8), max_size=4, unique=True), st.integers(0, 14))
def test_distance_matrix_of_a_shared_block_equals_one_matrix(domains, more, shared) -> None:
    import commgraph.signals._lookalike as lookalike

    shared = min(shared, len(domains))
    known = domains[:shared] + [k for k in more if k not in domains[:shared]]
    skeletons = [skeleton(k) for k in known]
    start = lookalike._SYMMETRIC_FROM
    try:
        lookalike._SYMMETRIC_FROM = 1
        blocks = lookalike.distance_matrix(domains, known, skeletons, dtype=np.int8, shared=shared)
    finally:
        lookalike._SYMMETRIC_FROM = start
    assert blocks.tolist() == lookalike.distance_matrix(domains, known, skeletons, dtype=np.int8).tolist()


def _queries_by_numpy(domain, instants, times):
    # What _changing numbered its queries with before the compiled pass: a search and a factorize per message.
    import pandas as pd

    stride = len(times) + 1
    query, distinct = pd.factorize(domain * stride + np.searchsorted(times, instants, side="left"))
    return query, distinct // stride, distinct % stride


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(-3, 40)), max_size=40),
       st.lists(st.integers(-3, 40), max_size=12), st.booleans(), st.booleans())
def test_queries_numbered_as_pandas_numbers_them(messages, times, sort_messages, sort_times) -> None:
    from commgraph.signals._backfill_lookalike import _queries

    # Sorted instants and times take the compiled pass; others, and a domain beyond the names, the general way.
    if sort_messages:
        messages = sorted(messages, key=lambda m: m[1])
    times = np.array(sorted(times) if sort_times else times, np.int64)
    domain = np.array([d for d, _ in messages], np.int64).reshape(-1)
    instants = np.array([t for _, t in messages], np.int64).reshape(-1)
    for n_names in (6, 5):
        got = _queries(domain, instants, times, n_names)
        expected = _queries_by_numpy(domain, instants, times)
        assert [g.tolist() for g in got] == [e.tolist() for e in expected]


def test_queries_of_ties_and_repeats() -> None:
    from commgraph.signals._backfill_lookalike import _queries

    # Ties between instants and change times (a change at the instant does not count), a domain coming back
    # after a change, one message, none; changes out of time order (the general way's search, not a walk).
    cases = [(np.array([2, 2, 0, 2, 0]), np.array([5, 5, 7, 7, 9]), np.array([5, 7, 7, 8])),
             (np.array([0, 1]), np.array([5, 6]), np.array([10, 0])),
             (np.array([1]), np.array([3]), np.array([3])), (np.zeros(0, np.int64), np.zeros(0, np.int64),
                                                            np.array([1]))]
    for domain, instants, times in cases:
        got = _queries(domain, instants, times, 3)
        assert [g.tolist() for g in got] == [e.tolist() for e in _queries_by_numpy(domain, instants, times)]
