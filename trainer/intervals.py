"""Confidence intervals for the reports: a rate over samples, a mean over seeds.

- `wilson_interval(k, n)`: 95% Wilson score interval of a proportion (the sampled help rate). It
  stays inside [0, 1] and is sensible at k = 0 or k = n, where the normal (Wald) interval collapses
  to a point. It treats the n responses as independent; K samples of one query are not, so with
  queries of different difficulty it is narrower than the interval over queries.
- `t_interval(values)`: mean and 95% Student-t half-width over seeds (n - 1 degrees of freedom),
  the cell of a results table; `within_share` is the share of seeds whose value lies within a
  tolerance of a target (realized help rate vs tau).
- `binomial_gap_floor(n, tau)`: E|K/n - tau| for K ~ Binomial(n, tau), the tracking gap of one step
  of n responses that a policy asking at exactly rate tau (independently per response) still shows:
  the sampling floor beside every measured gap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054  # standard normal quantile at 0.975


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """(low, high) of the Wilson score interval for k successes in n trials."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def t_central_prob(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer `df` (Abramowitz & Stegun 26.7.3-4, exact)."""
    theta = math.atan(t / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2 == 1:
        total, term = 0.0, math.cos(theta)  # cos(theta) * (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...)
        for j in range(1, (df - 1) // 2 + 1):
            total += term
            term *= c2 * (2 * j) / (2 * j + 1)
        return 2 / math.pi * (theta + s * total)
    total, term = 0.0, 1.0  # 1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...
    for j in range(1, df // 2 + 1):
        total += term
        term *= c2 * (2 * j - 1) / (2 * j)
    return s * total


def t_quantile(df: int, conf: float = 0.95) -> float:
    """The t with P(|T| < t) = conf (two-sided), by bisection on the exact CDF."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    lo, hi = 0.0, 1.0
    while t_central_prob(hi, df) < conf:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_central_prob(mid, df) < conf else (lo, mid)
    return (lo + hi) / 2


def t_interval(values: Sequence[float], conf: float = 0.95) -> tuple[float, float | None, int]:
    """(mean, half-width, n) over seeds; the half-width is None for a single seed."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = sum(values) / n
    if n == 1:
        return mean, None, 1
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t_quantile(n - 1, conf) * sd / math.sqrt(n), n


def within_share(values: Sequence[float], target: float, tol: float = 0.1) -> float:
    """Share of `values` within `tol` of `target` (inclusive)."""
    if not values:
        raise ValueError("no values")
    return sum(abs(v - target) <= tol + 1e-12 for v in values) / len(values)


def binomial_gap_floor(n: int, tau: float) -> float:
    """E|K/n - tau| for K ~ Binomial(n, tau) (exact sum over k)."""
    if n <= 0 or not 0.0 <= tau <= 1.0:
        raise ValueError(f"need n > 0 and 0 <= tau <= 1, got n={n}, tau={tau}")
    return sum(math.comb(n, k) * tau**k * (1 - tau) ** (n - k) * abs(k / n - tau) for k in range(n + 1))
