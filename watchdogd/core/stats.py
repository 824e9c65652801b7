"""Small statistics shared by the gates: confidence bounds and two-proportion tests.

Pure Python on purpose (no scipy): everything here is closed-form, and the daemon evaluates
these functions once a second per gate, so they must be cheap and dependency-free.

* :func:`wilson_bounds` is the Wilson score interval of one proportion (Wilson 1927), which
  stays inside [0, 1] and behaves with few or zero events, unlike the textbook Wald interval.
* :func:`ratio_margin_z` is the Farrington-Manning score statistic for "is ``p1`` more than
  ``margin`` times ``p0``?" (Farrington and Manning, Statistics in Medicine 1990; Miettinen and
  Nurminen 1985 without their small n/(n-1) factor). Its variance is taken at the maximum
  likelihood estimate *restricted* to the null hypothesis, so zero events on one side do not
  give a zero variance and a spurious certainty, which is what breaks the Wald test on rare
  errors.
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["ratio_margin_z", "restricted_rates", "wilson_bounds", "z_for"]

_NORMAL = NormalDist()


def z_for(confidence: float) -> float:
    """The one-sided normal quantile for ``confidence`` (0.995 gives 2.576)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return _NORMAL.inv_cdf(confidence)


def wilson_bounds(events: int, n: int, z: float) -> tuple[float, float]:
    """Lower and upper Wilson score bounds of ``events`` out of ``n``, each one-sided at ``z``."""
    if not 0 <= events <= n:
        raise ValueError(f"need 0 <= events <= n, got {events} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = events / n
    z2n = z * z / n
    centre = p + z2n / 2.0
    spread = z * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    lower = 0.0 if events == 0 else max(0.0, (centre - spread) / (1.0 + z2n))
    upper = 1.0 if events == n else min(1.0, (centre + spread) / (1.0 + z2n))
    return lower, upper


def restricted_rates(
    x1: float, n1: float, x0: float, n0: float, margin: float
) -> tuple[float, float]:
    """Maximum likelihood ``(p1, p0)`` for two binomial counts under ``p1 = margin * p0``.

    Counts may be expected (fractional) counts, for planning.

    Setting the derivative of the joint log-likelihood in ``p0`` to zero gives the quadratic
    ``margin*N*p0**2 - (margin*(n1 + x0) + x1 + n0)*p0 + (x1 + x0) = 0`` with ``N = n1 + n0``;
    its smaller root is the one inside [0, 1/margin].
    """
    total = x1 + x0
    if total == 0:
        return 0.0, 0.0
    a = margin * (n1 + n0)
    b = margin * (n1 + x0) + x1 + n0
    disc = max(0.0, b * b - 4.0 * a * total)
    # The numerically stable form of the smaller root: 2c / (b + sqrt(disc)).
    p0 = 2.0 * total / (b + math.sqrt(disc))
    p0 = min(p0, 1.0 / margin, 1.0)
    return margin * p0, p0


def ratio_margin_z(x1: int, n1: int, x0: int, n0: int, margin: float) -> float:
    """Score statistic of H0: ``p1 <= margin * p0`` against ``p1 > margin * p0``.

    ``x1`` of ``n1`` is the sample that may be worse (green), ``x0`` of ``n0`` the reference
    (blue). Large positive values mean ``p1`` is above the margin; compare with :func:`z_for`.
    With ``margin = 1`` it is the classic pooled two-proportion z statistic.
    """
    if n1 <= 0 or n0 <= 0:
        raise ValueError(f"need samples on both sides, got {n1} and {n0}")
    if not 0 <= x1 <= n1 or not 0 <= x0 <= n0:
        raise ValueError(f"need 0 <= events <= n, got {x1} of {n1} and {x0} of {n0}")
    if margin <= 0.0:
        raise ValueError(f"margin must be > 0, got {margin}")
    difference = x1 / n1 - margin * x0 / n0
    r1, r0 = restricted_rates(x1, n1, x0, n0, margin)
    variance = r1 * (1.0 - r1) / n1 + margin * margin * r0 * (1.0 - r0) / n0
    if variance <= 0.0:
        # No events anywhere (or all events everywhere): nothing says one side is worse.
        return 0.0
    return difference / math.sqrt(variance)
