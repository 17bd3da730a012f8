"""The log-density of the Beta distribution to about 1e-14 for shapes in the millions.

``scipy.special.betaln`` loses digits to cancellation when the shapes are large
(``lgamma(b) - lgamma(a + b)``: off by up to 1e-8 at a million), and so does any
log-density summed from terms of the order of the shapes. Here the density is
written around the mean, as Stirling's formula gives it, so that only terms of
the order of the distance to the mean remain (boost's ``ibeta_power_terms``
does the same with Lanczos sums).
"""

from __future__ import annotations

import numpy as np

__all__ = ["log_density"]

_HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


def _stirling_rest(x: np.ndarray) -> np.ndarray:
    """``lgamma(x) - ((x - 1/2) log x - x + log(2 pi) / 2)``, for ``x >= 1``, to about 1e-14."""
    from scipy import special

    r = 1.0 / x
    r2 = r * r
    series = r * (1.0 / 12 - r2 * (1.0 / 360 - r2 * (1.0 / 1260 - r2 * (1.0 / 1680 - r2 / 1188))))  # next: 1e-15
    small = x < 20.0
    direct = special.gammaln(x[small]) - ((x[small] - 0.5) * np.log(x[small]) - x[small] + _HALF_LOG_2PI)
    series[small] = direct
    return series


def log_density(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``log`` of the ``Beta(a, b)`` density at ``x`` to about 1e-14 absolute, for ``a, b >= 1``.

    ``(a - 1) log x + (b - 1) log(1 - x) - betaln(a, b)`` sums terms of the
    order of ``a + b`` (``betaln`` alone is off by up to 1e-8 at a million), so
    the density is written as Stirling's formula would, around the mean
    ``a / s`` (``s = a + b``): ``(a - 1) log1p(D / a) + (b - 1) log1p(-D / b) +
    log(s^3 / (2 pi a b)) / 2`` plus the rest of Stirling's series, where ``D
    = x s - a`` is formed exactly (``s`` and ``x s`` each as a sum of two
    floats), so that only terms of the order of the distance to the mean remain.

    Examples
    --------
    >>> from scipy import stats
    >>> a, b, x = np.array([5.0, 300.5]), np.array([7.0, 20.0]), np.array([0.4, 0.93])
    >>> bool(np.allclose(log_density(a, b, x), stats.beta.logpdf(x, a, b), rtol=0, atol=1e-12))
    True
    """
    s = a + b
    s_low = (a - (s - (s - a))) + (b - (s - a))  # a + b = s + s_low exactly (Knuth's two-sum)
    product = x * s
    x_hi, x_lo = _split(x)
    s_hi, s_lo = _split(s)
    product_low = ((x_hi * s_hi - product) + x_hi * s_lo + x_lo * s_hi) + x_lo * s_lo  # x s = product + low (Dekker)
    distance = ((product - a) + product_low) + x * s_low
    return ((a - 1.0) * np.log1p(distance / a) + (b - 1.0) * np.log1p(-distance / b)
            + 0.5 * np.log(s / (2.0 * np.pi) * (s / a) * (s / b)) - _stirling_rest(a) - _stirling_rest(b)
            + _stirling_rest(s))


def _split(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``v`` as two floats of 26 significant bits each (Veltkamp), whose products are exact."""
    c = 134217729.0 * v  # 2^27 + 1
    high = c - (c - v)
    return high, v - high
