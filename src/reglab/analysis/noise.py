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
chosen from K strengths on the same values: every strength − the baseline gets a t interval at the
per-comparison level that keeps all K of them true together (Šidák: 1 − level^(1/K), valid whatever their
correlation), so the chosen one's interval holds too, whichever is chosen.

Where the best setting falls on a grid (`best_setting_interval`) is a question about an argmin, not a
mean, and is answered by a two-level bootstrap: seeds and validation examples resampled together.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from reglab.analysis.stats import Z975, Estimate, seed_paired_difference, t_critical

#: Resamples of the best-setting bootstrap; its seed is fixed, so a rebuilt report gives the same intervals.
N_BOOT = 2000
BOOT_SEED = 0
#: How many resamples are drawn at a time (bounds memory: a block of example counts is BLOCK × n_val).
BLOCK = 250
#: The example counts of one design are kept for the next call (an analysis asks for the same design once per
#: metric and family; a simulation thousands of times) when they fit in this many counts (16 MB as uint16).
KEPT_COUNTS = 8_000_000

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
        self.seed_counts = _counts(rng.integers(0, n_seeds, (n_boot, n_seeds)), n_seeds).astype(np.float64)  # [B, S]

    def example_blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """Example counts [block, n_examples], the same sequence on every call."""
        if self.n_boot * self.n_examples <= KEPT_COUNTS and self.n_examples < 1 << 16:
            yield from _kept_example_blocks(self.seed, self.n_examples, self.n_boot)
        else:
            yield from _example_blocks(self.seed, self.n_examples, self.n_boot)


def _example_blocks(seed: int, n_examples: int, n_boot: int) -> Iterator[tuple[int, np.ndarray]]:
    rng = np.random.default_rng([seed, 2])
    for start in range(0, n_boot, BLOCK):
        size = min(BLOCK, n_boot - start)
        yield start, _counts(rng.integers(0, n_examples, (size, n_examples)), n_examples)


@functools.lru_cache(maxsize=2)
def _kept_example_blocks(seed: int, n_examples: int, n_boot: int) -> tuple[tuple[int, np.ndarray], ...]:
    """`_example_blocks`, drawn once and kept read-only (a count is at most n_examples < 2**16: uint16)."""
    kept = []
    for start, counts in _example_blocks(seed, n_examples, n_boot):
        block = counts.astype(np.uint16)
        block.flags.writeable = False
        kept.append((start, block))
    return tuple(kept)


def _counts(picks: np.ndarray, n: int) -> np.ndarray:
    """Rows of drawn indices [B, m] → how often each of n indices was drawn, per row [B, n] (one bincount)."""
    rows = picks.shape[0]
    return np.bincount((picks + n * np.arange(rows)[:, None]).ravel(), minlength=rows * n).reshape(rows, n)


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
    value = max(ms_s + ms_e - ms_se, ms_s, ms_e)
    # Satterthwaite's df of the whole combination, also where the bound lifts it: a seed mean square that came
    # out small by chance (with 2 seeds it has 1 df) must not pass for a precisely known variance
    terms = ((ms_s, n_seeds - 1), (ms_e, n - 1), (ms_se, (n_seeds - 1) * (n - 1)))
    denom = sum(m * m / df for m, df in terms)
    return Variance(value / cells, value ** 2 / denom if denom > 0 else math.inf)


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


#: The metrics a setting is chosen by, and which way is better (read by the analysis, heat maps and figures).
LOWER_IS_BETTER = {"val_data_loss": True, "val_accuracy": False}

SIMULTANEOUS = "simultaneous over {k} strengths against λ = 0 (Šidák), {over}"


class Simultaneous(NamedTuple):
    """Every strength − the baseline with intervals that hold together at the stated level: each interval is
    its own t interval at the per-comparison level `alpha` (Šidák)."""

    differences: tuple[Difference, ...]  # one per compared strength, in the order given
    alpha: float  # the two-sided per-comparison error rate that keeps all of them together at the level


def simultaneous_differences(values: np.ndarray, baseline: int = 0, level: float = 0.95) -> Simultaneous | None:
    """values [K settings, seeds, examples]: every setting − setting `baseline`, each with its own paired
    variance (`variance_of_mean`, Satterthwaite df) and a t interval at the Šidák level that keeps all K − 1
    true together with probability `level` (two-sided, whatever their correlation), so the one a reader cares
    about after choosing the best is covered too. Variances are not pooled over strengths: in real runs both
    their seed and their example parts grow with the strength (Fashion-MNIST, 3 seeds: seed part ≈ 0 at
    1e-4, 3e-5 at 1e-3, 5e-4 at 1e-2), and a pooled one would drown the quiet strengths the best sits among.
    One example per seed (a record without per-example values: each arm's final value) gives the paired
    t-interval over seeds at the same level. None without two settings and two seeds, or with values that
    are not finite; a comparison whose variance is 0 gets no interval."""
    x = np.asarray(values, dtype=np.float64)
    k, n_seeds, n = x.shape
    if k < 2 or n_seeds < 2 or n < 1 or not np.isfinite(x).all():
        return None
    alpha = sidak_level(k - 1, level)
    method = SIMULTANEOUS.format(k=k - 1, over="seeds and validation examples" if n > 1 else "seeds only")
    out = []
    for j in range(k):
        if j == baseline:
            continue
        d = x[j] - x[baseline]
        v, mean = variance_of_mean(d), float(d.mean())
        # two seeds measure the seed part with one degree of freedom, and Satterthwaite's df then runs far too
        # high whenever that one difference comes out small by chance (9 % false "Use" where seeds dominate):
        # the claim takes the seed part's own df
        df = min(v.df, 1.0) if n_seeds == 2 else v.df
        if v.value > 0:
            half = t_quantile_at(1 - alpha / 2, df) * math.sqrt(v.value)
            out.append(Difference(mean, mean - half, mean + half, n_seeds, method))
        else:
            out.append(Difference(mean, math.nan, math.nan, n_seeds, ""))
    return Simultaneous(tuple(out), alpha)


def t_quantile_at(p: float, df: float) -> float:
    """Student t's p-quantile for a real df (the normal's beyond 1e6)."""
    from scipy.special import ndtri, stdtrit  # heavy: imported where a claim is tested

    return float(ndtri(p)) if not math.isfinite(df) or df > 1e6 else float(stdtrit(df, p))


def sidak_level(k: int, level: float = 0.95) -> float:
    """The two-sided per-comparison error rate at which k tests wrongly reject none with probability at least
    `level`, whatever their correlation (Šidák): 1 − level^(1/k). Estimating the correlation instead (Dunnett)
    would gain a little, but with 2 or 3 seeds its estimate is too noisy to lean on."""
    return 1.0 - level ** (1.0 / k)


def within_margin(d: Difference, lower_is_better: bool, margin: float) -> bool:
    """`d` = a setting − the best: shown no worse than the best by more than `margin` (the interval's worse-side
    bound inside it). "Not shown different" is not enough: without an interval nothing is within the margin."""
    if not d.has_interval:
        return False
    return d.high < margin if lower_is_better else d.low > -margin


def t_quantile(df: float) -> float:
    """t(0.975, df) for a real df (Satterthwaite): the table below 30, the expansion above, z at infinity."""
    if not math.isfinite(df) or df > 1e6:
        return Z975
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
    return float(Z975 * v.std(ddof=1) / math.sqrt(v.size))
