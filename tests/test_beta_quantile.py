"""The float32 Beta quantile against scipy's float64 one rounded: equal to the bit, for any shapes and level."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

from commgraph.baselines import posterior_lower_bound
from commgraph.baselines._beta_quantile import _halley, betaincinv_float32

shapes = st.floats(0.01, 5e6, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(shapes, shapes), min_size=1, max_size=40), st.floats(1e-6, 1 - 1e-6))
def test_equals_scipy_rounded(pairs, p) -> None:
    a, b = np.array([x[0] for x in pairs]), np.array([x[1] for x in pairs])
    assert betaincinv_float32(a, b, p).tobytes() == special.betaincinv(a, b, p).astype(np.float32).tobytes()


def test_equals_scipy_rounded_on_many_large_shapes() -> None:
    # Where the fast path answers (both shapes >= 5): log-uniform shapes up to a million, the usual levels.
    rng = np.random.default_rng(7)
    a, b = np.exp(rng.uniform(np.log(5), np.log(1e6), (2, 200_000)))
    for p in (0.05, 0.01, 0.1, 0.5):
        exact = special.betaincinv(a, b, p)
        x, done = _halley(a, b, p)
        assert done.mean() > 0.99  # scipy is asked about the few left
        assert (np.abs(x - exact) / exact)[done].max() < 1e-12  # far inside the margin to a rounding point
        assert np.array_equal(betaincinv_float32(a, b, p), exact.astype(np.float32))


def test_lower_bound_in_float32_is_the_float64_one_rounded() -> None:
    rng = np.random.default_rng(3)
    n = rng.integers(0, 50_000, 5_000)
    k = (n * rng.uniform(0.8, 1.0, len(n))).astype(np.int64)
    alpha, beta = rng.uniform(0.5, 30, len(n)), rng.uniform(0.1, 5, len(n))
    for a, b in ((alpha, beta), (2.5, 0.7)):
        wide = posterior_lower_bound(k, n, a, b, level=0.95)
        assert np.array_equal(posterior_lower_bound(k, n, a, b, level=0.95, dtype=np.float32),
                              wide.astype(np.float32))
