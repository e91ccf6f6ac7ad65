"""The statistics every stage shares, in one place: the normal quantile of a 95% interval, Wilson's interval of a
share, and the nearest-rank quantile. Stage-specific statistics build on these (engine.review.stats for ratings and
votes, engine.evaluate.scoring for the paired bootstrap, engine.monitor.tracking for production figures)."""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal: the half-width of a 95% interval in SEs


def wilson(successes: float, n: int) -> tuple[float, float]:
    """Wilson's 95% score interval of a share (statsmodels' proportion_confint(method="wilson") gives the same; its
    import costs most of a second, and the monitoring report computes dozens of these from the command line)."""
    if n == 0:
        return (0.0, 1.0)
    p, z = successes / n, Z95
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    """The q-quantile by the nearest-rank method: the smallest value with at least q of the values at or below it
    (a value that occurred, never an interpolation); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(q * len(ordered)) - 1)])
