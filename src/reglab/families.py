"""Regularizer families compared: each family's arms seen as a run of their own, and what matters per family.

Pure functions over a `RunRecord`. A sweep with several families (`--regularizer l2,weight_decay`) is
analysed family by family with the single-family machinery (`family_view`), then side by side: each
family's best strength and how sure that is, how sensitive the result is to the strength, validation and
test numbers at the best, and what the family does to the weights (L2 and weight decay: shrink; L1: how
many weights end up at or next to zero).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

from .aggregate import Choice, Optimum, PerSeed, choose_lambda, final_values, locate_optimum
from .analysis import NEAR_ZERO
from .config import SweepConfig
from .record import RunRecord, read_kernels
from .stats import Estimate, mean_ci, paired_difference


@dataclasses.dataclass(frozen=True)
class FamilyRun(RunRecord):
    """The arms of one family as a run of their own: arms renumbered from 0 (in the run's order), records
    and kernels renumbered with them; the config's grid is the family's."""

    family: str = "l2"
    arm_ids: tuple[int, ...] = ()
    sweep: SweepConfig | None = None  # the whole sweep's configuration, every family in it

    def kernels(self) -> dict[int, Any]:
        return self.own(read_kernels(self.run_dir))

    def own(self, kernels: dict[int, Any]) -> dict[int, Any]:
        """The whole run's kernels (by its arm index) → this family's, by the view's arm index."""
        return {new: kernels[old] for new, old in enumerate(self.arm_ids) if old in kernels}


def family_view(run: RunRecord, family: str) -> FamilyRun:
    """`run` restricted to `family`'s arms (see FamilyRun)."""
    ids = tuple(int(a["arm"]) for a in run.arms if a.get("regularizer", "l2") == family)
    new_index = {old: new for new, old in enumerate(ids)}
    arms = [{**run.arms[old], "arm": new} for new, old in enumerate(ids)]
    epochs = tuple(dataclasses.replace(r, arm=new_index[r.arm]) for r in run.epochs if r.arm in new_index)
    config = run.config.replace(regularizers=[family], strengths={}, lambdas=list(run.config.grid(family)))
    return FamilyRun(run.run_dir, config, run.data, {**run.meta, "arms": arms}, epochs, family=family, arm_ids=ids,
                     sweep=run.config)


def sweep_config(run: RunRecord) -> SweepConfig:
    """The configuration of the whole sweep, also when `run` is one family's view of it."""
    return run.sweep if isinstance(run, FamilyRun) and run.sweep is not None else run.config


def primary_family(run: RunRecord) -> str:
    """The family the report's single-family sections analyse: L2 when the sweep has it, else the first."""
    return "l2" if "l2" in run.config.regularizers else run.config.regularizers[0]


def sparsity(kernels: list[Any]) -> tuple[float, float]:
    """(fraction of weights exactly 0, fraction within NEAR_ZERO of 0) over the given kernels. Both: Adam moves
    a weight by about its learning rate (0.001) per step, so an L1-pinned weight hovers within ±0.001 of 0
    rather than landing on it."""
    import numpy as np

    if not kernels:
        return math.nan, math.nan
    w = np.concatenate([np.abs(np.asarray(k, dtype=np.float64)).ravel() for k in kernels])
    return float(np.mean(w == 0.0)), float(np.mean(w < NEAR_ZERO))


class FamilySummary(NamedTuple):
    """One family's sweep, summarized for the side-by-side comparison."""

    family: str
    n_arms: int
    optimum: Optimum | None  # best strength by validation data loss, bootstrap interval, flat region
    choice: Choice | None  # the same best, with its test metrics and its neighbours compared per seed
    val_accuracy: Estimate | None  # at the best strength
    loss_range: float  # worst − best mean final validation data loss over the grid: sensitivity to the strength
    shrink_at_max: Estimate | None  # ‖W‖ at the largest strength over the same seed's strength-0 arm's
    zeros_at_best: tuple[float, float]  # sparsity() of the best strength's kernels (all its seeds)
    zeros_at_max: tuple[float, float]  # … and of the largest strength's
    best_per_seed: dict[int, float]  # seed → final validation data loss at the best strength


def summarize_family(run: RunRecord, family: str, kernels: dict[int, Any] | None = None) -> FamilySummary:
    view = family_view(run, family)
    finals = final_values(view)
    optimum = locate_optimum(view, finals=finals)
    choice = choose_lambda(view, finals=finals)
    per: PerSeed = finals["val_data_loss"]
    means = [mean_ci(v.values()).mean for v in per.values() if v]
    loss_range = max(means) - min(means) if means else math.nan
    grid = sorted(per)
    top = grid[-1] if grid else None
    shrink = finals["shrink"].get(top) if top is not None else None
    view_kernels = view.kernels() if kernels is None else view.own(kernels)

    def kernels_at(lam: float | None) -> list[Any]:
        return [view_kernels[int(a["arm"])] for a in view.arms
                if lam is not None and float(a["lambda"]) == lam and int(a["arm"]) in view_kernels]

    best = choice.lam if choice else None
    return FamilySummary(
        family, len(view.arms), optimum, choice,
        mean_ci(finals["val_accuracy"][best].values()) if best is not None else None,
        loss_range, mean_ci(shrink.values()) if shrink else None,
        sparsity(kernels_at(best)), sparsity(kernels_at(top)),
        dict(per[best]) if best is not None else {},
    )


def compare_families(run: RunRecord, kernels: dict[int, Any] | None = None) -> list[FamilySummary]:
    """Every family of the sweep, in the order given (kernels read once)."""
    kernels = run.kernels() if kernels is None else kernels
    return [summarize_family(run, f, kernels) for f in run.config.regularizers]


class BestAgainstBest(NamedTuple):
    """One family's best strength against another's, per seed: final validation data loss a − b."""

    a: str
    b: str
    difference: Estimate


def best_against_best(summaries: list[FamilySummary], a: str, b: str) -> BestAgainstBest | None:
    """Paired over seeds: family a at its best strength against family b at its best (validation data loss)."""
    by_family = {s.family: s for s in summaries}
    if not (by_family.get(a) and by_family[a].best_per_seed and by_family.get(b) and by_family[b].best_per_seed):
        return None
    return BestAgainstBest(a, b, paired_difference(by_family[a].best_per_seed, by_family[b].best_per_seed))
