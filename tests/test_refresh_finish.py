"""The finishing steps of a refresh (outcomes, priors, likelihoods, wrapping) against plain numpy references."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from commgraph.baselines._events import _grouped
from commgraph.baselines._smoothing import _distinct_pairs
from commgraph.baselines._snapshot import _split_at, to_numpy


def _unique_pairs(n: np.ndarray, k: np.ndarray) -> tuple[list, list, list, list]:
    """Distinct (n, k) in order, their counts and each row's pair, by numpy's sort."""
    width = int(k.max()) + 1 if len(k) else 1
    uniq, inverse, counts = np.unique(n * width + k, return_inverse=True, return_counts=True)
    return (uniq // width).tolist(), (uniq % width).tolist(), counts.tolist(), inverse.ravel().tolist()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), entities=st.sampled_from([0, 1, 2, 3, 17, 40, 300, 5000, 40000]),
       tail=st.sampled_from([0.0, 0.01, 0.3, 1.0]), top=st.sampled_from([1, 3, 40, 300, 70000]))
def test_distinct_pairs_match_numpy_unique(seed, entities, tail, top) -> None:
    # Entity tables as a refresh sees them: mostly few trials (the grid, sized by the rows and the largest
    # count), a tail of many (sorted apart, after the grid's pairs); every mix, from all grid to all tail.
    rng = np.random.default_rng(seed)
    n = np.minimum(rng.geometric(0.4, entities) - 1, top)
    many = rng.random(entities) < tail
    n[many] = rng.integers(0, top + 1, int(many.sum()))
    k = (rng.random(entities) * (n + 1)).astype(np.int64)
    n_u, k_u, counts, inverse = _distinct_pairs(n, k, inverse=True)
    assert n_u.dtype == k_u.dtype == np.float64 and counts.dtype == inverse.dtype == np.int64
    assert [n_u.tolist(), k_u.tolist(), counts.tolist(), inverse.tolist()] == list(_unique_pairs(n, k))
    assert all(np.array_equal(a, b) for a, b in zip(_distinct_pairs(n.astype(np.float64), k), (n_u, k_u, counts)))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), sizes=st.lists(st.integers(0, 70), min_size=1, max_size=3),
       start=st.integers(0, 17), nulls=st.booleans())
def test_bool_columns_unpacked_as_arrow_converts_them(seed, sizes, start, nulls) -> None:
    # Refresh state flags (bit-packed in Arrow) unpacked by numpy: chunks sliced at any bit, empty, or with
    # nulls (left to Arrow), one chunk or several, and split as the stored events are.
    rng = np.random.default_rng(seed)
    chunks = []
    for size in sizes:
        values = pa.array(rng.random(size + start) < 0.5, mask=(rng.random(size + start) < 0.2) if nulls else None)
        chunks.append(values.slice(start, size))
    column = pa.chunked_array(chunks, pa.bool_())
    expected = column.to_numpy()
    got = to_numpy(column)
    assert got.dtype == expected.dtype and got.tolist() == expected.tolist()
    if not column.null_count:
        at = int(rng.integers(0, len(column) + 1))
        assert [part.tolist() for part in _split_at(column, at)] == [expected[:at].tolist(), expected[at:].tolist()]
        if len(sizes) == 2:
            head, tail = _split_at(column, sizes[0])
            assert head.dtype == tail.dtype == bool and head.tolist() + tail.tolist() == expected.tolist()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), n_tenants=st.sampled_from([1, 2, 7, 40]), codes=st.integers(0, 400),
       key_range=st.sampled_from([3, 50, 2**64 - 1]))
@example(seed=1, n_tenants=2**15 + 3, codes=0, key_range=2**64 - 1)  # (too many tenants for the radix pass)
def test_grouped_orders_codes_by_tenant_then_key(seed, n_tenants, codes, key_range) -> None:
    # The extraction's grouping of codes (tenants stacked in order) against lexsort's (tenant, key) order; a
    # small key range gives one key to several codes of a tenant (grouped by the key itself, codes unread).
    rng = np.random.default_rng(seed)
    n_codes = max(codes, n_tenants if n_tenants > 2**15 else 0)
    tenant = np.sort(rng.integers(0, n_tenants, n_codes))
    keys = rng.integers(0, key_range, n_codes, dtype=np.uint64, endpoint=True)
    local = rng.integers(0, max(n_codes, 1), 3 * n_codes)
    strings = pa.array([f"s{i}" for i in range(n_codes)], pa.string())
    got = _grouped(local, tenant, keys, strings, n_tenants)
    order = np.lexsort((keys, tenant))
    rank = np.empty(n_codes, np.int64)
    rank[order] = np.arange(n_codes)
    blocks = np.searchsorted(tenant, np.arange(n_tenants + 1))
    codes_of = rank - blocks[tenant]
    assert got.row_keys.tolist() == keys[local].tolist()
    for i, (lo, hi) in enumerate(zip(blocks[:-1], blocks[1:])):
        mine = keys[lo:hi]
        if len(np.unique(mine)) < len(mine):
            assert got.tenant_keys[i] is None
            continue
        assert got.tenant_keys[i].tolist() == np.sort(mine).tolist()
        rows = (local >= lo) & (local < hi)
        assert got.codes[rows].tolist() == codes_of[local[rows]].tolist()
        assert got.names[i][0].tolist() == mine.tolist() and got.names[i][1].to_pylist() == strings[lo:hi].to_pylist()
