"""Beta quantiles rounded to float32, to the bit of scipy's, at a fraction of its cost for large shapes.

A smoothed likelihood's credible bound is stored as float32, and backfill
needs it for hundreds of thousands of distinct posteriors ``Beta(k + alpha,
n - k + beta)``, most with large counts, where ``scipy.special.betaincinv``
costs about 2.8 us each and one ``betainc`` about 0.5 us. Float32 keeps 24
bits, so a float64 value known to well inside ``1e-10`` (relative) that is
``1e-10`` away from every point where float32 rounding changes rounds as
scipy's own value does (the two agree within 1.1e-12 on 15M posteriors from
tiny to millions, scipy's own error there); everywhere else (shapes below 5,
values next to a rounding point, unsettled estimates) scipy decides. Where
scipy's own value is off by more than that (very lopsided shapes: at
``Beta(1000, 4562393)``, ``p = 0.5625``, it is 3.5e-8 off, and ``betainc`` of
it 4.4e-7 from ``p``), the result is the float32 nearer the true quantile,
one step from scipy's rounded value.

Two ways reach such a value, both from the Cornish-Fisher expansion of the
quantile (skewness and kurtosis terms) as a start:

* **Neighbours** (most shapes, no ``betainc`` of their own). Posteriors of
  one prior whose second shape is equal and whose first shapes differ by
  integers (more safe outcomes) are grouped in runs spanning a hundredth of a
  standard deviation. One ``betainc`` at a point ``x`` in the run's middle
  gives, through ``I_x(a + 1, b) = I_x(a, b) - x^a (1 - x)^b / (a B(a, b))``,
  every member's distribution at ``x``; the Taylor series of the distribution
  about ``x`` (derivatives of the log-density are ``(a - 1) / x - (b - 1) / (1
  - x)`` and its own derivatives), inverted to fourth order, gives the quantile.
  The fifth-order term, ten times over, bounds what is left. The density at
  ``x`` comes from :func:`log_density` (``betaln`` is off by 1e-8 at a million).
* **Halley** (the others): one Halley step on ``betainc(a, b, x) - p`` from the
  start (a second where the first still moved far), kept where the last step
  was tiny against the standard deviation (Halley converges cubically).

The neighbours' runs, recurrence and per-shape series are compiled passes
(numba, through :mod:`._sweeps`: imported on the first call that has enough
shapes for neighbours, not with this module), the same float64 operations in
the same order as numpy's passes did: the same bits.
"""

from __future__ import annotations

import numpy as np

from ._beta_density import log_density
from ._sweeps import _compiled, warmed_by

__all__ = ["betaincinv_float32"]

_MIN_SHAPE = 5.0  # below, the distribution is too skewed for the expansion to start close
_CONVERGED = 1e-5  # a last Halley step below this many standard deviations leaves an error below 1e-14 of them
_MARGIN = 1e-10  # relative distance to a float32 rounding point under which scipy decides
_RUN_SD = 0.01  # a run of neighbours spans about this many standard deviations of the quantile
_RUN_TERMS = 64  # and at most this many steps of the first shape (terms of the recurrence)
_LEFT = 1e-3 * _MARGIN  # the bound on what the inverted series leaves, relative to the value
# Fewer shapes than this go to Halley directly: a snapshot's few distinct counts per table, where the
# neighbours' dozens of calls cost more than they save (twice the time over a build's 400 tables).
_NEIGHBOURS_FROM = 2048


def betaincinv_float32(a: np.ndarray, b: np.ndarray, p: float) -> np.ndarray:
    """``scipy.special.betaincinv(a, b, p).astype(np.float32)``, bit for bit, faster for large shapes.

    (Except where scipy's own value is off by more than 1e-10, relative: then
    the float32 nearer the true quantile; see the module's notes.)

    Parameters
    ----------
    a, b : ndarray of float64
        Shape parameters (same shape).
    p : float
        The probability, in (0, 1).

    Returns
    -------
    ndarray of float32

    Examples
    --------
    >>> from scipy import special
    >>> a, b = np.array([900.0, 3.0, 41.5, 901.0, 905.0]), np.array([12.0, 2.0, 7000.0, 12.0, 12.0])
    >>> bool((betaincinv_float32(a, b, 0.05) == special.betaincinv(a, b, 0.05).astype(np.float32)).all())
    True
    """
    from scipy import special

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = np.empty(a.shape, np.float32)
    flat = out.reshape(-1)
    fa, fb = a.ravel(), b.ravel()
    p = float(p)
    left = np.ones(flat.shape, bool)
    if 0.0 < p < 1.0 and len(fa) >= _NEIGHBOURS_FROM:
        # Compiled bookkeeping (numba is loaded for the neighbours anyway): the shapes for the fast ways and
        # their places, then each way's answers put in place and the shapes left to the next one.
        fast, sa, sb = np.empty(len(fa), np.int64), np.empty(len(fa)), np.empty(len(fa))
        n_fast = _fast_kernel(fa, fb, fast, sa, sb)
        fast, sa, sb = fast[:n_fast], sa[:n_fast], sb[:n_fast]
        for method in ((_neighbours, _halley) if n_fast >= _NEIGHBOURS_FROM else (_halley,)):
            if not len(fast):
                break
            x, done = method(sa, sb, p)
            kept = _answered_kernel(x, done, fast, sa, sb, flat, left)
            fast, sa, sb = fast[:kept], sa[:kept], sb[:kept]
    elif 0.0 < p < 1.0:  # a snapshot's few shapes: Halley's way alone, without numba
        fast = np.flatnonzero((fa >= _MIN_SHAPE) & (fb >= _MIN_SHAPE) & np.isfinite(fa) & np.isfinite(fb))
        if len(fast):
            x, done = _halley(fa[fast], fb[fast], p)
            flat[fast[done]] = x[done].astype(np.float32)
            left[fast[done]] = False
    if left.any():
        flat[left] = special.betaincinv(fa[left], fb[left], p).astype(np.float32)
    return out


@warmed_by
def _warm() -> None:
    """The neighbours' kernels on one shape (for :func:`commgraph.baselines._sweeps.warm_up`)."""
    _neighbours(np.array([900.0]), np.array([12.0]), 0.05)
    one = np.ones(1)
    _answered_kernel(one, np.ones(1, bool), np.zeros(1, np.int64), one, one, np.empty(1, np.float32),
                     np.ones(1, bool))
    _fast_kernel(one, one, np.empty(1, np.int64), np.empty(1), np.empty(1))


@_compiled
def _fast_kernel(a, b, fast, sa, sb):  # pragma: no cover - compiled
    # The shapes the fast ways take (both at least _MIN_SHAPE, finite), their places and values; how many.
    m = 0
    for i in range(len(a)):
        if a[i] >= _MIN_SHAPE and b[i] >= _MIN_SHAPE and np.isfinite(a[i]) and np.isfinite(b[i]):
            fast[m], sa[m], sb[m] = i, a[i], b[i]
            m += 1
    return m


@_compiled
def _answered_kernel(x, done, fast, sa, sb, out, left):  # pragma: no cover - compiled
    # A way's answers rounded to float32 (as astype does) into their places where done; the others kept,
    # in order, at the front of fast, sa and sb (returns how many).
    m = 0
    for i in range(len(x)):
        if done[i]:
            out[fast[i]] = np.float32(x[i])
            left[fast[i]] = False
        else:
            fast[m], sa[m], sb[m] = fast[i], sa[i], sb[i]
            m += 1
    return m


def _start(a: np.ndarray, b: np.ndarray, p: float) -> tuple[np.ndarray, np.ndarray]:
    """The Cornish-Fisher start (skewness and kurtosis terms) and the standard deviation."""
    from scipy import special

    s = a + b
    sd = np.sqrt(a * b / (s * s * (s + 1.0)))
    skew = 2.0 * (b - a) * np.sqrt(s + 1.0) / ((s + 2.0) * np.sqrt(a * b))
    kurt = 6.0 * ((a - b) ** 2 * (s + 1.0) - a * b * (s + 2.0)) / (a * b * (s + 2.0) * (s + 3.0))
    z = float(special.ndtri(p))
    zc = (z + (z * z - 1.0) * skew / 6.0 + (z ** 3 - 3.0 * z) * kurt / 24.0
          - (2.0 * z ** 3 - 5.0 * z) * skew * skew / 36.0)
    return np.clip(a / s + zc * sd, 1e-300, 1.0 - 1e-16), sd


def _settled(x: np.ndarray) -> np.ndarray:
    """Where float32 rounding of ``x`` is the same for every value within ``_MARGIN`` (relative) of it."""
    x32 = x.astype(np.float32)
    here = x32.astype(np.float64)
    below = (here + np.nextafter(x32, np.float32(0.0)).astype(np.float64)) / 2.0  # the rounding points
    above = (here + np.nextafter(x32, np.float32(1.0)).astype(np.float64)) / 2.0
    margin = _MARGIN * x
    return (x > 0.0) & (x < 1.0) & (x - below > margin) & (above - x > margin)


def _runs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                  np.ndarray]:
    """Runs of neighbouring shapes: ``(run, steps, member)`` per shape, ``(a, b, terms)`` per run.

    A run holds shapes of equal ``b`` and equal fractional part of ``a`` (one
    prior: the first shapes differ by integers) whose integer parts fall in one
    aligned block of ``width`` (a power of two up to ``_RUN_TERMS``) such that
    the block spans at most ``_RUN_SD`` standard deviations of the quantile,
    which moves about ``sqrt(b / (a (a + b)))`` of one per unit of ``a``: taken
    at the power of two below ``a``, so that every shape of a block (all in its
    binade) gets the same width. A run's ``a`` is its smallest member's, each
    shape's ``steps`` how many units of ``a`` above it (exact), and ``terms``
    the largest ``steps`` plus one. Runs are found through a hash of ``b`` and
    the block's start; ``member`` is False where a collision put a shape in a
    run that is not its own (its ``steps`` then read 0).
    """
    # The block's width per shape: numpy's log2 (its bits decide the floor next to a power of two), around
    # compiled passes for the rest (each a dozen of numpy's).
    exponent = np.empty(len(a))
    _run_scale_kernel(a, b, exponent)
    np.floor(np.log2(exponent, out=exponent), out=exponent)
    run, steps, member = np.empty(len(a), np.int64), np.empty(len(a), np.int64), np.empty(len(a), bool)
    in_block, a_run, b_run = np.empty(len(a), np.int64), np.empty(len(a)), np.empty(len(a))
    lowest, highest = np.empty(len(a), np.int64), np.empty(len(a), np.int64)
    n_runs = _runs_kernel(a, b, exponent, in_block, run, steps, member, a_run, b_run, lowest, highest)
    return run, steps, member, a_run[:n_runs], b_run[:n_runs], highest[:n_runs] - lowest[:n_runs] + 1


@_compiled
def _run_scale_kernel(a, b, out):  # pragma: no cover - compiled
    # Per shape, what _runs takes the log2 of: _RUN_SD * sqrt(low * (low + b) / b) clipped to [1, _RUN_TERMS],
    # ``low`` the power of two at or below a (a >= _MIN_SHAPE, finite: its exponent bits alone), the float64
    # operations of numpy's passes in their order.
    for i in range(len(a)):
        low = np.uint64(np.float64(a[i]).view(np.uint64) & np.uint64(0x7FF0000000000000)).view(np.float64)
        v = _RUN_SD * np.sqrt(low * (low + b[i]) / b[i])
        out[i] = min(max(v, 1.0), float(_RUN_TERMS))


@_compiled
def _runs_kernel(a, b, exponent, in_block, run, steps, member, a_run, b_run, lowest, highest):  # pragma: no cover
    # The runs of _runs in one compiled pass (and one for the steps) where numpy and pandas took a dozen: each
    # shape's block (``in_block``, its place in it, and the block's start, from the width 2^exponent), hashed
    # with its b; ``run`` numbers the distinct keys in order of first appearance (as pd.factorize did), a
    # shape a member where its b and start are the run's first shape's, ``lowest`` and ``highest`` the
    # members' smallest and largest in_block, ``a_run`` and ``b_run`` the run's smallest member's shapes.
    # Returns how many runs. A shape's run is found at random: what it reads of the run sits side by side
    # (two cache lines).
    n = len(a)
    bits = 4
    while (1 << bits) <= n:  # a power of two above the shapes: never full
        bits += 1
    mask = (1 << bits) - 1
    shift = np.uint64(64 - bits)
    table = np.zeros((1 << bits, 2), np.uint64)  # (key, run + 1), 0 where empty (calloc: zero pages as touched)
    shape = np.empty((n, 2))  # per run, its first shape's b and start
    span = np.empty((n, 2), np.int64)  # its members' lowest and highest in_block
    count = 0
    for i in range(n):
        # Integer parts exact and far from overflow: shapes beyond 2^31 stay runs of their own.
        width = np.int64(1) << np.int64(exponent[i])
        block = (np.int64(np.floor(a[i])) & (width - 1)) if a[i] < 2.0 ** 31 else np.int64(0)
        in_block[i] = block
        start = a[i] - float(block)  # exact: the same fractional part, a smaller integer part in the same binade
        k = np.uint64(np.float64(b[i]).view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ np.float64(start).view(
            np.uint64)
        slot = np.int64((k * np.uint64(0x9E3779B97F4A7C15)) >> shift)
        while True:
            c = np.int64(table[slot, 1]) - 1
            if c < 0:
                c = count
                table[slot, 0] = k
                table[slot, 1] = np.uint64(c + 1)
                shape[c, 0] = b[i]
                shape[c, 1] = start
                span[c, 0] = _RUN_TERMS
                span[c, 1] = 0
                count += 1
                break
            if table[slot, 0] == k:
                break
            slot = (slot + 1) & mask
        run[i] = c
        inside = shape[c, 0] == b[i] and shape[c, 1] == start
        member[i] = inside
        if inside:
            span[c, 0] = min(span[c, 0], block)
            span[c, 1] = max(span[c, 1], block)
    for c in range(count):
        lowest[c] = span[c, 0]
        highest[c] = span[c, 1]
        a_run[c] = shape[c, 1] + float(lowest[c])
        b_run[c] = shape[c, 0]
    for i in range(n):
        steps[i] = in_block[i] - lowest[run[i]] if member[i] else 0
    return count


def _neighbours(a: np.ndarray, b: np.ndarray, p: float) -> tuple[np.ndarray, np.ndarray]:
    """The quantile from one ``betainc`` per run of neighbours, and where float32 rounding of it is certain."""
    from scipy import special

    run, steps, member, a_c, b_c, terms = _runs(a, b)
    # Each run's distributions are evaluated at the start's quantile for its members' mean first shape.
    x_c = _start(np.bincount(run, a) / np.bincount(run), b_c, p)[0]
    with np.errstate(all="ignore"):
        at_c = special.betainc(a_c, b_c, x_c)
        term0 = np.exp(log_density(a_c, b_c, x_c)) * x_c * (1.0 - x_c) / a_c  # x^a (1 - x)^b / (a B(a, b))
        relative, before = _recurrence(a_c, b_c, x_c, terms, run, steps)
    x, done = np.empty(len(a)), np.empty(len(a), bool)
    _taylor_kernel(a, b, float(p), run, member, at_c, term0, x_c, relative, before, x, done)
    return x, done


@_compiled
def _taylor_kernel(a, b, p, run, member, at_c, term0, x_c, relative, before, x, done):  # pragma: no cover
    # Per shape, from its run's point x_c (where I_x is at_c and the first term term0) and its own place in
    # the recurrence: the quantile and whether its float32 rounding is certain. One compiled pass where
    # numpy took some forty over the shapes; the same float64 operations in the same order (no fastmath, so
    # no fused multiply-adds): the same bits. A zero density (a division numpy takes to inf or nan, and the
    # shape to Halley) leaves the shape not done here too, its x unused.
    for i in range(len(a)):
        r = run[i]
        xc = x_c[r]
        scale = term0[r]
        cdf = at_c[r] - scale * before[i]  # I_x(a, b) of the shape
        u = 1.0 / xc
        v = 1.0 / (1.0 - xc)
        density = scale * relative[i] * a[i] * u * v
        if density == 0.0:
            x[i] = np.nan
            done[i] = False
            continue
        # Derivatives of the log-density, g_k = (d/dx)^(k-1) ((a - 1) / x - (b - 1) / (1 - x)).
        am, bm = (a[i] - 1.0) * u, (b[i] - 1.0) * v
        g1 = am - bm
        am *= u
        bm *= v
        g2 = -(am + bm)
        am *= u
        bm *= v
        g3 = 2.0 * (am - bm)
        am *= u
        bm *= v
        g4 = -6.0 * (am + bm)
        # Invert the Taylor series, d = h + c2 h^2 + ... (d: the distance to p over the density, c_k = f^(k-1) /
        # (k! f), f^(k) / f the complete Bell polynomials of the g_k), for the step h = d + k2 d^2 + ...: to
        # fourth order, and the fifth-order term, ten times over, bounds what is left.
        g11 = g1 * g1
        k3 = (2.0 * g11 - g2) * (1.0 / 6.0)
        k4 = (g1 * (7.0 * g2 - 6.0 * g11) - g3) * (1.0 / 24.0)
        k5 = (g11 * (24.0 * g11 - 46.0 * g2) + 11.0 * g1 * g3 + 7.0 * g2 * g2 - g4) * (1.0 / 120.0)
        d = (p - cdf) / density
        dd = d * d
        xi = xc + d * (1.0 + d * (d * (k3 + d * k4) - 0.5 * g1))
        x[i] = xi
        # -1 / g2 is about the variance: the step stays within _RUN_SD standard deviations.
        ok = member[i] and 10.0 * np.abs(k5 * dd * dd * d) < _LEFT * xi and dd * -g2 < _RUN_SD * _RUN_SD
        if ok:  # _settled
            x32 = np.float32(xi)
            here = np.float64(x32)
            if np.float32(0.0) < x32 < np.float32(1.0):  # its neighbours one unit of its bits away (no libm call)
                bits = x32.view(np.int32)
                down = np.int32(bits - np.int32(1)).view(np.float32)
                up = np.int32(bits + np.int32(1)).view(np.float32)
            else:
                down, up = np.nextafter(x32, np.float32(0.0)), np.nextafter(x32, np.float32(1.0))
            below = (here + np.float64(down)) / 2.0  # the rounding points
            above = (here + np.float64(up)) / 2.0
            margin = _MARGIN * xi
            ok = 0.0 < xi < 1.0 and xi - below > margin and above - xi > margin
        done[i] = ok


def _recurrence(a: np.ndarray, b: np.ndarray, x: np.ndarray, terms: np.ndarray, run: np.ndarray,
                steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per shape, ``term_steps / term_0`` and ``sum_{i < steps} term_i / term_0`` of its run's recurrence.

    ``a``, ``b``, ``x`` and ``terms`` are per run (its base shapes, its point,
    how many terms), ``run`` and ``steps`` per shape.
    ``term_i = x^(a + i) (1 - x)^b / ((a + i) B(a + i, b))`` is what ``I_x`` loses
    from ``a + i`` to ``a + i + 1``; successive terms differ by the factor
    ``x (a + i + b) / (a + i + 1)``, computed as ``x (1 + (b - 1) / (a + i + 1))``,
    multiplied and summed in order of ``i`` (numpy's ``cumprod`` and ``cumsum``
    along each run, as this was written first: the same bits).
    """
    offset = np.zeros(len(terms) + 1, np.int64)
    np.cumsum(terms, out=offset[1:])
    ratio, sums = np.empty(int(offset[-1])), np.empty(int(offset[-1]))
    _recurrence_kernel(a, b, x, offset, ratio, sums)
    cell = offset[run] + steps
    return ratio[cell], sums[cell]


@_compiled
def _recurrence_kernel(a, b, x, offset, ratio, sums):  # pragma: no cover - compiled
    # Run r's terms relative to its first, and their sums before each, in ratio and sums[offset[r]:offset[r + 1]].
    for r in range(len(a)):
        term, total = 1.0, 1.0
        ratio[offset[r]] = 1.0
        sums[offset[r]] = 0.0
        for i in range(1, offset[r + 1] - offset[r]):
            term *= x[r] * (1.0 + (b[r] - 1.0) / (a[r] + float(i)))  # (a + i + 1: never zero, a >= _MIN_SHAPE)
            total += term
            ratio[offset[r] + i] = term
            sums[offset[r] + i] = total - term


def _halley(a: np.ndarray, b: np.ndarray, p: float) -> tuple[np.ndarray, np.ndarray]:
    """The quantile by Cornish-Fisher then Halley steps, and where float32 rounding of it is certain."""
    from scipy import special

    x, sd = _start(a, b, p)
    log_beta = special.betaln(a, b)
    moved = np.full(len(x), np.inf)
    todo = np.arange(len(x))
    with np.errstate(all="ignore"):
        for _ in range(2):  # one step; a second where the first still moved far
            xi, ai, bi = x[todo], a[todo], b[todo]
            u = (special.betainc(ai, bi, xi) - p) / np.exp(
                (ai - 1.0) * np.log(xi) + (bi - 1.0) * np.log1p(-xi) - log_beta[todo])
            step = u / (1.0 - 0.5 * u * ((ai - 1.0) / xi - (bi - 1.0) / (1.0 - xi)))
            x[todo] = xi - step
            moved[todo] = np.abs(step) / sd[todo]
            todo = todo[~(moved[todo] <= _CONVERGED)]
            if not len(todo):
                break
        done = (moved <= _CONVERGED) & _settled(x)
    return x, done
