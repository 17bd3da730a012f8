"""The float32 Beta quantile against scipy's float64 one rounded: equal to the bit, for any shapes and level,
except where scipy's own value is off (very lopsided shapes), where ours is the nearer float32."""

from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

from commgraph.baselines import posterior_lower_bound
from commgraph.baselines._beta_density import log_density
from commgraph.baselines._beta_quantile import _halley, _neighbours, _runs, betaincinv_float32

shapes = st.floats(0.01, 5e6, allow_nan=False)


def scipy_rounded(a, b, p) -> bytes:
    return special.betaincinv(a, b, p).astype(np.float32).tobytes()


def assert_scipy_rounded_or_nearer(got: np.ndarray, a: np.ndarray, b: np.ndarray, p: float) -> None:
    """``got`` is scipy's value rounded to float32, except where scipy's own ``betaincinv`` is off by more than
    the margin (lopsided shapes: at Beta(1000, 4562393), p = 0.5625 its value is 3.5e-8 off, ``betainc`` of it
    4.4e-7 from p): there ``got`` must be nearer the quantile than scipy's, and than either float32 next to it,
    judged by ``betainc``."""
    want = special.betaincinv(a, b, p).astype(np.float32)
    differ = got.view(np.uint32) != want.view(np.uint32)
    if differ.any():
        g, w, ga, gb = got[differ], want[differ], a[differ], b[differ]

        def miss(x: np.ndarray) -> np.ndarray:
            return np.abs(special.betainc(ga, gb, x.astype(np.float64)) - p)

        assert (miss(g) < miss(w)).all(), (ga, gb, g, w)
        for side in (np.float32(0.0), np.float32(1.0)):
            assert (miss(g) <= miss(np.nextafter(g, side))).all(), (ga, gb, g)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(shapes, shapes), min_size=1, max_size=40), st.floats(1e-6, 1 - 1e-6))
def test_equals_scipy_rounded(pairs, p) -> None:
    a, b = np.array([x[0] for x in pairs]), np.array([x[1] for x in pairs])
    assert_scipy_rounded_or_nearer(betaincinv_float32(a, b, p), a, b, p)


def test_where_scipy_is_off_the_nearer_float32_is_given() -> None:
    # Found by the test above: scipy's betaincinv is 3.5e-8 off at the first, two float32 steps at the second;
    # ours is the float32 nearer the quantile.
    a, b, p = np.array([1000.0, 1000.0]), np.array([4562393.0, 3915752.0]), 0.5625
    for p in (0.5625, 0.9375):
        got = betaincinv_float32(a, b, p)
        assert got.tobytes() != scipy_rounded(a, b, p)
        assert_scipy_rounded_or_nearer(got, a, b, p)


@st.composite
def posteriors(draw):
    """Posteriors of a few priors, with counts that cluster (one sender's successive messages) or spread."""
    a, b = [], []
    for _ in range(draw(st.integers(1, 3))):
        alpha, beta = draw(st.floats(0.01, 1e4)), draw(st.floats(0.01, 1e4))
        trials = draw(st.integers(0, 3_000_000))
        failures = draw(st.integers(0, 3_000_000))
        spread = draw(st.sampled_from([1, 8, 100, 100_000]))
        for _ in range(draw(st.integers(1, 40))):
            k = trials + draw(st.integers(0, spread))
            m = failures + draw(st.integers(0, 2))
            a.append(k + alpha)
            b.append(m + beta)
    return np.array(a), np.array(b)


@settings(max_examples=300, deadline=None)
@given(posteriors(), st.sampled_from([0.05, 0.01, 0.1, 0.5, 0.9, 0.975]) | st.floats(1e-6, 1 - 1e-6))
def test_posteriors_of_one_prior_equal_scipy_rounded(shapes_, p) -> None:
    a, b = shapes_
    assert_scipy_rounded_or_nearer(betaincinv_float32(a, b, p), a, b, p)
    assert_scipy_rounded_or_nearer(betaincinv_float32(a[::-1], b[::-1], p), a[::-1], b[::-1], p)
    # Calls this small go to Halley: the neighbours' way, asked directly, where it answers.
    fit = (a >= 5) & (b >= 5)
    if fit.any():
        x, done = _neighbours(a[fit], b[fit], p)
        assert_scipy_rounded_or_nearer(x[done].astype(np.float32), a[fit][done], b[fit][done], p)


def test_equals_scipy_rounded_on_many_large_shapes() -> None:
    # Where the fast paths answer (both shapes >= 5): log-uniform shapes up to a million, the usual levels.
    rng = np.random.default_rng(7)
    a, b = np.exp(rng.uniform(np.log(5), np.log(1e6), (2, 200_000)))
    for p in (0.05, 0.01, 0.1, 0.5):
        exact = special.betaincinv(a, b, p)
        # Unrelated shapes are runs of their own: the neighbours' step starts from Cornish-Fisher, too far for
        # the most skewed shapes (Halley answers those); scipy is asked about the few left.
        for method, answered in ((_neighbours, 0.8), (_halley, 0.99)):
            x, done = method(a, b, p)
            assert done.mean() > answered
            assert (np.abs(x - exact) / exact)[done].max() < 1e-12  # far inside the margin to a rounding point
        assert np.array_equal(betaincinv_float32(a, b, p), exact.astype(np.float32))


def test_runs_of_neighbours_share_one_evaluation_and_equal_scipy() -> None:
    # Senders' posteriors under daily priors: successive messages add one to k (and sometimes to n - k).
    rng = np.random.default_rng(11)
    n_senders, per_sender = 20_000, 20
    alpha = rng.uniform(0.5, 40, 60)[rng.integers(0, 60, n_senders)]
    beta = rng.uniform(0.1, 5, 60)[rng.integers(0, 60, n_senders)]
    k0 = np.exp(rng.uniform(np.log(1e4), np.log(3e5), n_senders)).astype(np.int64)
    m0 = (k0 * rng.uniform(0.002, 0.02, n_senders)).astype(np.int64)  # mostly safe, as in the benchmark
    k = k0[:, None] + np.cumsum(rng.integers(1, 4, (n_senders, per_sender)), axis=1)
    m = m0[:, None] + (rng.random((n_senders, per_sender)) < 0.05).cumsum(axis=1)
    a, b = (k + alpha[:, None]).ravel(), (m + beta[:, None]).ravel()
    run, steps, member, a_run, b_run, terms = _runs(a, b)
    assert member.all() and len(a_run) < len(a) / 3  # most share a betainc with neighbours
    assert (b_run[run] == b).all() and (a_run[run] + steps == a).all() and (steps < terms[run]).all()
    assert (np.bincount(run, steps == 0) > 0).all()  # each run starts at a member
    for p in (0.05, 0.01):
        exact = special.betaincinv(a, b, p)
        x, done = _neighbours(a, b, p)
        assert done.mean() > 0.99
        assert (np.abs(x - exact) / exact)[done].max() < 1e-12
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


def _log_gamma(x: Decimal) -> Decimal:
    """log Gamma to 40 digits: shifted up to 60, then Stirling's series with its Bernoulli coefficients."""
    numbers = [Fraction(0)] * 40  # Bernoulli numbers B_0..B_39 (Akiyama-Tanigawa)
    row = [Fraction(0)] * 40
    for m in range(40):
        row[m] = Fraction(1, m + 1)
        for j in range(m, 0, -1):
            row[j - 1] = j * (row[j - 1] - row[j])
        numbers[m] = row[0]
    shift = Decimal(0)
    while x < 60:
        shift += x.ln()
        x += 1
    out = (x - Decimal("0.5")) * x.ln() - x + (2 * Decimal("3.14159265358979323846264338327950288")).ln() / 2
    for k in range(1, 19):
        coefficient = numbers[2 * k] / (2 * k * (2 * k - 1))
        out += Decimal(coefficient.numerator) / Decimal(coefficient.denominator) / x ** (2 * k - 1)
    return out - shift


def test_log_density_against_40_digit_arithmetic() -> None:
    # scipy's betaln is off by up to 1e-8 at shapes in the millions; the density used by the neighbours' step
    # must be good to 1e-13 there, from the tails to the middle.
    rng = np.random.default_rng(5)
    a, b = np.exp(rng.uniform(0.0, np.log(1e7), (2, 150)))
    x = special.betaincinv(a, b, rng.choice([1e-4, 0.01, 0.05, 0.5, 0.95], len(a)))
    with localcontext() as context:
        context.prec = 40
        exact = [float((Decimal(ai) - 1) * Decimal(xi).ln() + (Decimal(bi) - 1) * (1 - Decimal(xi)).ln()
                       - _log_gamma(Decimal(ai)) - _log_gamma(Decimal(bi)) + _log_gamma(Decimal(ai) + Decimal(bi)))
                 for ai, bi, xi in zip(a, b, x)]
    assert np.abs(log_density(a, b, x) - exact).max() < 1e-12
