"""Means with 95 % confidence intervals across seeds: the numbers behind every "±" in a report.

Seeds are independent replications of an arm, so a per-λ figure is a mean over seeds with a Student-t
interval. Arms of one seed share their initialization and batch order (common random numbers), so a
difference between two λ values is best judged per seed: `seed_paired_difference` gives the mean of the
per-seed differences with its own interval, which is far tighter than comparing two intervals (used
through `noise.seed_only_difference`).
"""

from __future__ import annotations

import math
from typing import Iterable, NamedTuple

#: Two-sided 95 % Student-t critical values t(0.975, df), df = 1…30 (to 6 decimals).
_T975 = (
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
    2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
    2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
)
#: z(0.975): the two-sided 95 % normal quantile (import it from here; define it nowhere else).
Z975 = 1.959963984540054


def t_critical(df: int) -> float:
    """t(0.975, df): the table up to 30 degrees of freedom, the Cornish-Fisher expansion beyond (error < 1e-4)."""
    if df < 1:
        raise ValueError("a t interval needs at least 1 degree of freedom")
    if df <= len(_T975):
        return _T975[df - 1]
    z, v = Z975, float(df)
    return (z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3))


class Estimate(NamedTuple):
    """A mean over `n` finite values with the half-width of its 95 % interval (NaN when n < 2)."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    @property
    def has_interval(self) -> bool:
        """An interval needs measured noise: two values at least, and some spread (none: never "beyond noise")."""
        return self.n >= 2 and math.isfinite(self.half_width) and self.half_width > 0

    def excludes_zero(self) -> bool:
        """True when the interval lies wholly above or wholly below 0 (False without an interval)."""
        return self.has_interval and (self.low > 0 or self.high < 0)


def mean_ci(values: Iterable[float]) -> Estimate:
    """Mean and 95 % t-interval of the finite values (a diverged seed's NaN is left out, and `n` says so)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(xs)
    if n == 0:
        return Estimate(math.nan, math.nan, 0)
    mean = math.fsum(xs) / n
    if n == 1:
        return Estimate(mean, math.nan, 1)
    var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1)
    return Estimate(mean, t_critical(n - 1) * math.sqrt(var / n), n)


def seed_paired_difference(a: dict[int, float], b: dict[int, float]) -> Estimate:
    """Mean of a[seed] − b[seed] over the seeds both have (finite), with its 95 % interval.

    The one seeds-only paired difference (no per-example values): callers use it through
    `noise.seed_only_difference`, which gives it as a `noise.Difference` like the per-example
    `noise.paired_difference`."""
    return mean_ci(a[s] - b[s] for s in sorted(set(a) & set(b)) if math.isfinite(a[s]) and math.isfinite(b[s]))
