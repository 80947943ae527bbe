"""The coupling question: does a family's best strength move with the learning rate?

Loshchilov & Hutter (ICLR 2019, Figure 2) found that under Adam the best L2 factor depends on the learning
rate (a diagonal valley in the learning rate × factor heat map) while decoupled weight decay largely
frees the two; Wang & Aitchison (ICML 2025) argue that AdamW averages the weights over τ = 1/(lr·λ)
steps and that the best τ, in epochs, stays about constant. This module measures the first with this
run's numbers and checks the second for weight-decay arms. Pure functions over the per-series analyses.

The rule, stated in the report: for each learning rate, the best positive strength by mean final
validation data loss; the slope of log10(best λ) against log10(learning rate) by least squares; its 95 %
interval from resampling seeds and validation examples together (seeds alone without per-example
values), the same resamples for every learning rate. Verdict: "coupled" when the interval excludes 0;
"decoupled" when it lies within ±DECOUPLED_SLOPE (the best strength moves by less than half a decade per
decade of learning rate); "inconclusive" otherwise.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from reglab.analysis import noise
from reglab.analysis.families import by_family
from reglab.analysis.stats import mean_ci
from reglab.settings import Family

if TYPE_CHECKING:
    from reglab.analysis.results import FamilyAnalysis

MIN_RATES = 3
MIN_STRENGTHS = 3  # positive strengths: the slope is over log λ
DECOUPLED_SLOPE = 0.5
COUPLED, DECOUPLED, INCONCLUSIVE = "coupled", "decoupled", "inconclusive"
RULE = (f"slope of log10(best λ) against log10(learning rate), best λ among the positive strengths by mean final "
        f"validation data loss; 95 % interval from resampling seeds and validation examples together. Coupled: the "
        f"interval excludes 0. Decoupled: it lies within ±{DECOUPLED_SLOPE:g} (less than half a decade of strength per "
        "decade of learning rate). Otherwise inconclusive.")


class RateBest(NamedTuple):
    """One learning rate's best positive strength, its resampling interval, and for weight decay its τ."""

    learning_rate: float
    strength: float
    interval: tuple[float, float] | None  # 2.5 % and 97.5 % quantiles of the best strength under resampling
    tau_epochs: float | None  # weight decay: 1 / (lr · λ · steps per epoch), the averaging timescale in epochs


class Coupling(NamedTuple):
    family: Family
    per_rate: tuple[RateBest, ...]
    slope: float
    interval: tuple[float, float] | None
    verdict: str
    tau_spread: float | None  # weight decay: the largest best-arm τ over the smallest
    grid_step: float  # the largest ratio of neighbouring positive strengths: the grid's resolution

    @property
    def tau_shared(self) -> bool | None:
        """Whether the best arms' τ agree to within one step of the strength grid (weight decay only)."""
        return None if self.tau_spread is None else self.tau_spread < self.grid_step * (1 - 1e-9)


def slope(rates: np.ndarray, strengths: np.ndarray) -> np.ndarray:
    """Least-squares slope of log10(strengths) on log10(rates); `strengths` [..., rates]."""
    x = np.log10(rates)
    x = x - x.mean()
    y = np.log10(strengths)
    return (y - y.mean(axis=-1, keepdims=True)) @ x / (x @ x)


def verdict(interval: tuple[float, float] | None) -> str:
    if interval is None:
        return INCONCLUSIVE
    lo, hi = interval
    if lo > 0 or hi < 0:
        return COUPLED
    return DECOUPLED if -DECOUPLED_SLOPE <= lo and hi <= DECOUPLED_SLOPE else INCONCLUSIVE


def _draws(fa: FamilyAnalysis, lams: list[float], seeds: list[int], design: noise.Design | None) -> np.ndarray | None:
    """The best strength's index among `lams` in each resample (None when nothing can be resampled)."""
    values = fa.per_example
    if design is not None and values is not None:  # a design is made only where every series has its values
        x = np.stack([np.stack([values.loss[lam][s] for s in seeds]) for lam in lams])
        return noise.best_setting_draws(x, True, design)
    if len(seeds) < 2:
        return None
    t = np.array([[fa.finals["val_data_loss"][lam][s] for s in seeds] for lam in lams])
    picks = np.random.default_rng(noise.BOOT_SEED).integers(0, len(seeds), size=(noise.N_BOOT, len(seeds)))
    return np.argmin(t[:, picks].mean(axis=2), axis=0)


def coupling(series: list[FamilyAnalysis], steps_per_epoch: int) -> Coupling | None:
    """One family's series (one per learning rate) → the coupling measurement, or None when the grid is too
    small (fewer than MIN_RATES learning rates or MIN_STRENGTHS positive strengths with results at every rate)."""
    series = sorted(series, key=lambda fa: fa.learning_rate)
    if len(series) < MIN_RATES:
        return None
    lams = sorted(set.intersection(*({lam for lam, by_seed in fa.finals["val_data_loss"].items() if lam > 0 and by_seed}
                                     for fa in series)))
    seeds = sorted(set.intersection(*(set(fa.finals["val_data_loss"][lam]) for fa in series for lam in lams))) if lams else []
    if len(lams) < MIN_STRENGTHS or not seeds:
        return None
    complete = all(fa.per_example is not None and fa.per_example.complete
                   and all(s in fa.per_example.loss.get(lam, {}) for lam in lams for s in seeds) for fa in series)
    design, first = None, series[0].per_example
    if complete and first is not None:
        n = len(first.loss[lams[0]][seeds[0]])
        design = noise.Design(len(seeds), n)
    rates = np.array([fa.learning_rate for fa in series])
    grid = np.array(lams)
    decay = series[0].family.decay > 0
    best, per_rate, draws = [], [], []
    for fa in series:
        means = [mean_ci([fa.finals["val_data_loss"][lam][s] for s in seeds]).mean for lam in lams]
        b = lams[int(np.argmin(means))]
        d = _draws(fa, lams, seeds, design)
        draws.append(d)
        interval = None
        if d is not None:
            lo, hi = np.quantile(grid[d], [0.025, 0.975], method="inverted_cdf")
            interval = (float(lo), float(hi))
        tau = 1.0 / (fa.learning_rate * b * series[0].family.decay * steps_per_epoch) if decay else None
        per_rate.append(RateBest(fa.learning_rate, b, interval, tau))
        best.append(b)
    point = float(slope(rates, np.array(best)))
    interval = None
    drawn = [d for d in draws if d is not None]
    if len(drawn) == len(draws):  # every rate has its draws
        s = slope(rates, grid[np.stack(drawn, axis=1)])  # [n_boot]
        lo, hi = np.quantile(s, [0.025, 0.975])
        interval = (float(lo), float(hi))
    taus = [r.tau_epochs for r in per_rate if r.tau_epochs is not None]
    step = float(max(b / a for a, b in itertools.pairwise(lams)))
    return Coupling(series[0].family, tuple(per_rate), point, interval, verdict(interval),
                    max(taus) / min(taus) if taus else None, step)


def couplings(series: dict[str, FamilyAnalysis], steps_per_epoch: int) -> dict[str, Coupling]:
    """Family name → its coupling measurement, for the families whose grid is large enough."""
    out = {}
    for name, fas in by_family(series.values()).items():
        c = coupling(fas, steps_per_epoch)
        if c is not None:
            out[name] = c
    return out


def tau_text(c: Coupling) -> str:
    """The τ check in words (weight decay)."""
    if c.tau_spread is None:
        return ""
    taus = ", ".join(f"{r.tau_epochs:.3g}" for r in c.per_rate)
    shared = "share one τ" if c.tau_shared else "do not share one τ"
    return (f"the best arms' τ = 1/(lr·λ·steps per epoch) are {taus} epochs (largest over smallest ×{c.tau_spread:.3g}): "
            f"they {shared}, by the rule that τ agree to less than one step of the strength grid (×{c.grid_step:.3g})")


__all__ = ["COUPLED", "DECOUPLED", "INCONCLUSIVE", "RULE", "Coupling", "RateBest", "coupling", "couplings", "slope",
           "tau_text", "verdict"]
