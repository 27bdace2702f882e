"""Fleet statistics, pure: latency percentiles and help-request ratios.

Percentiles use linear interpolation between closest ranks (numpy's default, "type 7"), so
p50 of [1, 2, 3, 4] is 2.5 and p99 of a 2-element list lies 1% below the larger one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (q in [0, 100]) of `values`; None for no values."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must lie in [0, 100], got {q}")
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def ratio(part: int, whole: int) -> float | None:
    """part / whole, or None when nothing was counted (a ratio of 0 answers is undefined)."""
    return part / whole if whole else None
