"""Noise from both sources, for every comparison the analysis makes.

A final validation number moves for two independent reasons: the **seed** (initialization and batch
order) and **which examples happen to be in the validation set** (1,000 images measure an accuracy to
about ±0.9 points). Comparisons of two settings are paired on both: arms of one seed share
initialization and batches, and every arm is scored on the same validation examples.

`paired_difference` estimates A − B from the per-example differences D[seed, example] as the sum of
two variance components: the seeds' (the spread of each seed's mean difference, over S seeds) and the
examples' (the spread of each example's seed-averaged difference, over n examples), with a Student-t
interval whose degrees of freedom come from Welch–Satterthwaite. Why not a plain bootstrap: with the 3
seeds people run, resampling seeds has only 10 distinct outcomes and its percentile interval is far
too narrow, while the t quantile with 2 degrees of freedom (4.30) is honest about it; the example part
has thousands of values and a normal interval is accurate there. With one seed the seed component
cannot be measured: the interval covers validation sampling only, which still decides large effects,
and the analysis says so. Without per-example values (older runs) it falls back to the paired
t-interval over seeds, and says so too.

Where the best setting falls on a grid (`best_setting_interval`) is a question about an argmin, not a
mean, and is answered by a two-level bootstrap: seeds and validation examples resampled together.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .stats import Estimate, t_critical
from .stats import paired_difference as seed_paired_difference

#: Resamples of the best-setting bootstrap; its seed is fixed, so a rebuilt report gives the same intervals.
N_BOOT = 2000
BOOT_SEED = 0
#: How many resamples are drawn at a time (bounds memory: a block of example counts is BLOCK × n_val).
BLOCK = 250

METHOD = "seeds and validation examples (paired t, Welch–Satterthwaite)"
SAMPLING_ONLY = "validation examples only (one seed: seed noise not measured)"
T_OVER_SEEDS = "seeds only (paired t; no per-example values recorded)"


class Difference(NamedTuple):
    """A − B for one metric: the mean over seeds, a 95 % interval, and how it was obtained."""

    mean: float
    low: float
    high: float
    n_seeds: int
    method: str  # METHOD, SAMPLING_ONLY, T_OVER_SEEDS, or "" when there is no interval

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def excludes_zero(self) -> bool:
        return self.has_interval and (self.low > 0 or self.high < 0)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2 if self.has_interval else math.nan


NO_DIFFERENCE = Difference(math.nan, math.nan, math.nan, 0, "")


class Design:
    """The resampling plan of the best-setting bootstrap: seed counts and example counts, from a fixed seed
    (a rebuilt report gives the same interval); example counts are drawn block by block, never all at once."""

    def __init__(self, n_seeds: int, n_examples: int, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> None:
        self.n_seeds, self.n_examples, self.n_boot, self.seed = n_seeds, n_examples, n_boot, seed
        rng = np.random.default_rng([seed, 1])
        self.seed_counts = np.stack([np.bincount(rng.integers(0, n_seeds, n_seeds), minlength=n_seeds)
                                     for _ in range(n_boot)]).astype(np.float64)  # [B, S]

    def example_blocks(self):
        """Example counts [block, n_examples], the same sequence on every call."""
        rng = np.random.default_rng([self.seed, 2])
        for start in range(0, self.n_boot, BLOCK):
            size = min(BLOCK, self.n_boot - start)
            yield start, rng.multinomial(self.n_examples, np.full(self.n_examples, 1.0 / self.n_examples), size=size)



def paired_difference(a: np.ndarray, b: np.ndarray) -> Difference:
    """A − B, paired: rows of `a` and `b` are the same seeds, columns the same validation examples."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 2 or d.size == 0 or not np.isfinite(d).all():
        return NO_DIFFERENCE
    n_seeds, n = d.shape
    mean = float(d.mean())
    v_seed = float(d.mean(axis=1).var(ddof=1)) / n_seeds if n_seeds >= 2 else 0.0
    v_ex = float(d.mean(axis=0).var(ddof=1)) / n if n >= 2 else 0.0
    total = v_seed + v_ex
    if total == 0.0:  # identical arms: no noise, no difference
        return Difference(mean, mean, mean, n_seeds, METHOD if n_seeds >= 2 else SAMPLING_ONLY)
    denom = (v_seed ** 2 / (n_seeds - 1) if n_seeds >= 2 else 0.0) + (v_ex ** 2 / (n - 1) if n >= 2 else 0.0)
    df = total ** 2 / denom if denom > 0 else float("inf")
    half = t_quantile(df) * math.sqrt(total)
    return Difference(mean, mean - half, mean + half, n_seeds, METHOD if n_seeds >= 2 else SAMPLING_ONLY)


def t_quantile(df: float) -> float:
    """t(0.975, df) for a real df (Satterthwaite): the table below 30, the expansion above, z at infinity."""
    if not math.isfinite(df) or df > 1e6:
        return 1.959963984540054
    return t_critical(max(1, int(math.floor(df))))  # rounding df down: never narrower than the exact value


def best_setting_interval(values: np.ndarray, lower_is_better: bool, design: Design) -> tuple[int, int]:
    """values [settings, seeds, examples] → the 2.5 % and 97.5 % quantiles (as setting indices, in grid
    order) of the best setting when seeds and examples are resampled together."""
    lo, hi = np.quantile(best_setting_draws(values, lower_is_better, design), [0.025, 0.975], method="inverted_cdf")
    return int(lo), int(hi)


def best_setting_draws(values: np.ndarray, lower_is_better: bool, design: Design) -> np.ndarray:
    """values [settings, seeds, examples] → the best setting's index in each of the design's resamples [n_boot].
    One design resamples the same seeds and examples on every call: draws of several grids are joint."""
    x = np.asarray(values, dtype=np.float64)
    k, n_seeds, n = x.shape
    sign = 1.0 if lower_is_better else -1.0
    best = np.empty(design.n_boot, dtype=np.int64)
    flat = x.reshape(k * n_seeds, n)
    for start, counts in design.example_blocks():
        per_seed = (flat @ counts.T.astype(np.float64) / n).reshape(k, n_seeds, -1)  # [k, S, block]
        w = design.seed_counts[start:start + len(counts)]  # [block, S]
        means = np.einsum("bs,ksb->kb", w, per_seed) / n_seeds  # [k, block]
        best[start:start + len(counts)] = np.argmin(sign * means, axis=0)
    return best


def seed_only_difference(a: dict[int, float], b: dict[int, float]) -> Difference:
    """The fallback without per-example values: the paired t-interval over seeds (none with one seed)."""
    e: Estimate = seed_paired_difference(a, b)
    if e.n == 0:
        return NO_DIFFERENCE
    if not e.has_interval:
        return Difference(e.mean, math.nan, math.nan, e.n, "")
    return Difference(e.mean, e.low, e.high, e.n, T_OVER_SEEDS)


def sampling_half_width(values: np.ndarray) -> float:
    """1.96 standard errors of the mean of per-example values (one arm's validation sampling noise)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return math.nan
    return float(1.959963984540054 * v.std(ddof=1) / math.sqrt(v.size))
