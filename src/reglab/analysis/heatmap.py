"""Learning rate × strength: one family's sweep as a grid of cells, for a sweep of several learning rates.

Pure functions over the per-series analyses (`analyze.FamilyAnalysis`, one per family and learning rate):
each cell is a setting's final value averaged over seeds; the best cell is the lowest validation data
loss (highest validation accuracy); a cell is marked as equivalent to the best by the very rule of the
text's flat region: the 95 % interval of its difference from the best is shown to lie within the metric's
stated margin on the worse side (noise from `noise`: seeds and validation examples together where
per-example values were recorded, seeds alone otherwise). A cell whose interval is wide (2 seeds: t with
one degree of freedom) is therefore never marked, and cells without an interval never are.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from reglab.analysis import families, noise
from reglab.analysis.noise import LOWER_IS_BETTER
from reglab.analysis.stats import mean_ci
from reglab.settings import Family, Setting

if TYPE_CHECKING:
    from reglab.analysis.results import FamilyAnalysis



class Cell(NamedTuple):
    """One setting of the grid: its mean over seeds, and its difference from the best cell."""

    setting: Setting
    mean: float  # NaN: no arm of this setting completed
    n_seeds: int
    difference: noise.Difference | None  # this cell − the best (None for the best itself, or no values)
    within_margin: bool = False  # shown no worse than the best by more than the metric's margin


class Grid(NamedTuple):
    """One metric over learning rates (columns, ascending) × strengths (rows, ascending, λ = 0 first)."""

    metric: str
    learning_rates: tuple[float, ...]
    strengths: tuple[float, ...]
    cells: tuple[tuple[Cell, ...], ...]  # [strength][learning rate]
    best: Setting | None

    def cell(self, setting: Setting) -> Cell:
        return self.cells[self.strengths.index(setting.strength)][self.learning_rates.index(setting.learning_rate)]


class HeatMap(NamedTuple):
    """A family's learning rate × strength grids, one per metric."""

    family: Family
    grids: dict[str, Grid]


def _per_seed(fa: FamilyAnalysis, metric: str, lam: float) -> dict[int, float]:
    return dict(fa.finals[metric].get(lam, {}))


def _examples(fa: FamilyAnalysis, metric: str, lam: float) -> dict[int, np.ndarray] | None:
    values = fa.per_example
    if values is None or not values.complete:
        return None
    table = values.loss if metric == "val_data_loss" else values.correct
    return table.get(lam)


def cell_difference(a: FamilyAnalysis, lam_a: float, b: FamilyAnalysis, lam_b: float, metric: str) -> noise.Difference:
    """(a at λ_a) − (b at λ_b) for `metric`, paired on seeds, and on validation examples where both have them."""
    ea, eb = _examples(a, metric, lam_a), _examples(b, metric, lam_b)
    if ea is not None and eb is not None:
        seeds = sorted(set(ea) & set(eb))
        if seeds:
            return noise.paired_difference(np.stack([ea[s] for s in seeds]), np.stack([eb[s] for s in seeds]))
    return noise.seed_only_difference(_per_seed(a, metric, lam_a), _per_seed(b, metric, lam_b))


def grid(series: list[FamilyAnalysis], metric: str, margin: float) -> Grid:
    """One family's series (one per learning rate) as a grid of `metric`; `margin`: the metric's equivalence margin."""
    by_rate = {fa.learning_rate: fa for fa in series}
    rates = tuple(sorted(by_rate))
    strengths = tuple(sorted({lam for fa in series for lam in fa.view.config.lambdas}))
    means: dict[tuple[float, float], float] = {}
    for lr in rates:
        for lam in strengths:
            values = list(_per_seed(by_rate[lr], metric, lam).values())
            means[(lr, lam)] = mean_ci(values).mean if values else math.nan
    scored = [k for k, m in means.items() if math.isfinite(m)]
    sign = 1.0 if LOWER_IS_BETTER[metric] else -1.0
    best = min(scored, key=lambda k: (sign * means[k], k[1], k[0])) if scored else None
    cells = []
    for lam in strengths:
        row = []
        for lr in rates:
            fa = by_rate[lr]
            n = len(fa.finals[metric].get(lam, {}))
            diff = (cell_difference(fa, lam, by_rate[best[0]], best[1], metric)
                    if best is not None and (lr, lam) != best and n else None)
            equivalent = diff is not None and n >= 2 and noise.within_margin(diff, LOWER_IS_BETTER[metric], margin)
            row.append(Cell(Setting(fa.family.name, lam, lr), means[(lr, lam)], n, diff, equivalent))
        cells.append(tuple(row))
    return Grid(metric, rates, strengths, tuple(cells),
                Setting(series[0].family.name, best[1], best[0]) if best is not None else None)


def heat_maps(series: dict[str, Any], margins: dict[str, float]) -> dict[str, HeatMap]:
    """Family name → its heat map, for the families of a sweep of several learning rates (else empty);
    `margins`: metric → its equivalence margin."""
    by_family = families.by_family(series.values())
    if all(len(v) < 2 for v in by_family.values()):
        return {}
    return {name: HeatMap(fas[0].family, {m: grid(fas, m, margins[m]) for m in LOWER_IS_BETTER}) for name, fas in by_family.items()}
