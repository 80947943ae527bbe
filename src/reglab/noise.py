"""Noise from both sources, for every comparison the analysis makes.

A final validation number moves for two independent reasons: the **seed** (initialization and batch
order) and **which examples happen to be in the validation set** (1,000 images measure an accuracy to
about ±0.9 points). Comparisons of two settings are paired on both: arms of one seed share
initialization and batches, and every arm is scored on the same validation examples.

`paired_difference` estimates A − B from the per-example differences D[seed, example], a crossed
design: D = μ + seed effect + example effect + their interaction. The variance of the grand mean is
(MS_seeds + MS_examples − MS_interaction) / (S·n) — the unbiased random-effects (ANOVA) estimate; the
sum of the two one-way variances counts the interaction twice (intervals 4–31 % too wide for a loss and
1.1–2.8× for an accuracy). It is bounded below by max(MS_seeds, MS_examples) / (S·n), each of which is
itself an underestimate-free part of the variance, and its Student-t degrees of freedom come from
Satterthwaite. Why not a plain bootstrap: with the 3 seeds people run, resampling seeds has only 10
distinct outcomes and its percentile interval is far too narrow, while the t quantile with about 2
degrees of freedom is honest about it. With one seed the seed component cannot be measured: the
interval covers validation sampling only, and no claim is made from it (see `analyze`). A difference
with no variance at all has no interval, so it is never "beyond noise". Without per-example values
(older runs) it falls back to the paired t-interval over seeds, and says so.

`simultaneous_differences` answers "does the best strength beat no regularization?" after the best was
chosen from K strengths on the same values: every strength − the baseline gets an interval with one
common critical value, the 95 % quantile of the largest |t| over the K comparisons (max-t, as Dunnett's
test), so that all K intervals hold together 95 % of the time and the chosen one's does too, whichever
is chosen. The quantile is simulated from the comparisons' estimated correlation with a fixed seed.

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



class Variance(NamedTuple):
    """The variance of a mean difference over a seeds × examples design, and its Satterthwaite df."""

    value: float
    df: float


def mean_squares(d: np.ndarray) -> tuple[float, float, float]:
    """MS_seeds, MS_examples, MS_interaction of a [seeds, examples] table (NaN where undefined)."""
    n_seeds, n = d.shape
    grand = d.mean()
    by_seed, by_example = d.mean(axis=1), d.mean(axis=0)
    ms_s = n * float(((by_seed - grand) ** 2).sum()) / (n_seeds - 1) if n_seeds >= 2 else math.nan
    ms_e = n_seeds * float(((by_example - grand) ** 2).sum()) / (n - 1) if n >= 2 else math.nan
    if n_seeds >= 2 and n >= 2:
        resid = d - by_seed[:, None] - by_example[None, :] + grand
        ms_se = float((resid ** 2).sum()) / ((n_seeds - 1) * (n - 1))
    else:
        ms_se = math.nan
    return ms_s, ms_e, ms_se


def variance_of_mean(d: np.ndarray) -> Variance:
    """Var(mean of d) for a crossed [seeds, examples] design: the unbiased random-effects estimate,
    bounded below by each one-way part, with Satterthwaite degrees of freedom (see the module's text)."""
    n_seeds, n = d.shape
    ms_s, ms_e, ms_se = mean_squares(d)
    cells = n_seeds * n
    if n_seeds < 2:  # one seed: validation sampling only
        return Variance(ms_e / cells, float(n - 1)) if n >= 2 else Variance(math.nan, math.nan)
    if n < 2:
        return Variance(ms_s / cells, float(n_seeds - 1))
    unbiased = ms_s + ms_e - ms_se
    if unbiased >= max(ms_s, ms_e):
        terms = ((ms_s, n_seeds - 1), (ms_e, n - 1), (ms_se, (n_seeds - 1) * (n - 1)))
        denom = sum(m * m / df for m, df in terms)
        return Variance(unbiased / cells, unbiased ** 2 / denom if denom > 0 else math.inf)
    if ms_s >= ms_e:
        return Variance(ms_s / cells, float(n_seeds - 1))
    return Variance(ms_e / cells, float(n - 1))


def paired_difference(a: np.ndarray, b: np.ndarray) -> Difference:
    """A − B, paired: rows of `a` and `b` are the same seeds, columns the same validation examples."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 2 or d.size == 0 or not np.isfinite(d).all():
        return NO_DIFFERENCE
    n_seeds = d.shape[0]
    mean = float(d.mean())
    v = variance_of_mean(d)
    method = METHOD if n_seeds >= 2 else SAMPLING_ONLY
    if not v.value > 0:  # no noise measured (identical arms, or a single value): no interval, never "beyond noise"
        return Difference(mean, math.nan, math.nan, n_seeds, "")
    half = t_quantile(v.df) * math.sqrt(v.value)
    return Difference(mean, mean - half, mean + half, n_seeds, method)


#: Draws that simulate the max-t critical value; its seed is fixed, so a rebuilt report gives the same intervals.
N_MAX_T = 50000
MAX_T_SEED = 0
SIMULTANEOUS = "simultaneous over {k} strengths (max-t), seeds and validation examples"


class Simultaneous(NamedTuple):
    """Every strength − the baseline with intervals that hold together at 95 % (`critical` is the max-t value)."""

    differences: tuple[Difference, ...]  # one per compared strength, in the order given
    critical: float
    df: float


def simultaneous_differences(others: np.ndarray, baseline: np.ndarray, level: float = 0.95) -> Simultaneous | None:
    """others [K, seeds, examples] − baseline [seeds, examples]: K intervals that all hold with probability
    `level` (two-sided), so the one a reader cares about after choosing the best is covered too. None when
    a difference has no variance or values are not finite (then no claim rests on it)."""
    x = np.asarray(others, dtype=np.float64)
    d = x - np.asarray(baseline, dtype=np.float64)[None]
    k, n_seeds, n = d.shape
    if k == 0 or not np.isfinite(d).all() or n_seeds < 2 or n < 2:
        return None
    variances = [variance_of_mean(d[j]) for j in range(k)]
    if not all(v.value > 0 for v in variances):
        return None
    corr = _correlation(d, np.array([v.value for v in variances]))
    df = min(v.df for v in variances)
    crit = max_t_critical(corr, df, level)
    method = SIMULTANEOUS.format(k=k)
    out = []
    for j, v in enumerate(variances):
        mean, half = float(d[j].mean()), crit * math.sqrt(v.value)
        out.append(Difference(mean, mean - half, mean + half, n_seeds, method))
    return Simultaneous(tuple(out), crit, df)


def _correlation(d: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """The correlation of the K mean differences: the random-effects cross-products (seed, example and
    interaction parts, as in `variance_of_mean`), scaled by the bounded variances, made positive semi-definite."""
    k, n_seeds, n = d.shape
    grand = d.mean(axis=(1, 2))
    by_seed = d.mean(axis=2) - grand[:, None]  # [K, S]
    by_example = d.mean(axis=1) - grand[:, None]  # [K, n]
    resid = d - d.mean(axis=2)[:, :, None] - d.mean(axis=1)[:, None, :] + grand[:, None, None]
    c_s = n * (by_seed @ by_seed.T) / (n_seeds - 1)
    c_e = n_seeds * (by_example @ by_example.T) / (n - 1)
    flat = resid.reshape(k, -1)
    c_se = (flat @ flat.T) / ((n_seeds - 1) * (n - 1))
    cov = (c_s + c_e - c_se) / (n_seeds * n)
    scale = np.sqrt(variances)
    corr = np.clip(cov / np.outer(scale, scale), -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    w, v = np.linalg.eigh((corr + corr.T) / 2)
    corr = (v * np.clip(w, 0.0, None)) @ v.T
    sd = np.sqrt(np.clip(np.diag(corr), 1e-12, None))
    return corr / np.outer(sd, sd)


def max_t_critical(corr: np.ndarray, df: float, level: float = 0.95, draws: int = N_MAX_T, seed: int = MAX_T_SEED) -> float:
    """The `level` quantile of max_k |T_k| for T multivariate t with correlation `corr` and `df` degrees of
    freedom (simulated; fixed seed). With one comparison it is the ordinary t quantile."""
    k = corr.shape[0]
    rng = np.random.default_rng(seed)
    w, v = np.linalg.eigh(corr)
    root = v * np.sqrt(np.clip(w, 0.0, None))
    z = rng.standard_normal((draws, k)) @ root.T
    if math.isfinite(df) and df < 1e6:
        z /= np.sqrt(rng.chisquare(max(df, 1.0), size=(draws, 1)) / max(df, 1.0))
    return float(np.quantile(np.abs(z).max(axis=1), level))


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
