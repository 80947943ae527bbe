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
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple, TypeVar

import numpy as np

from reglab.analysis import noise
from reglab.analysis.aggregate import PerSeed
from reglab.analysis.arms import NEAR_ZERO
from reglab.analysis.stats import Estimate, mean_ci
from reglab.config import SweepConfig
from reglab.record.arrays import read_kernels
from reglab.record.reader import RunRecord
from reglab.settings import DEFAULT_LEARNING_RATE

if TYPE_CHECKING:
    from reglab.analysis.results import FamilyAnalysis, Recommendation

#: A kernel as the caller holds it (`FamilyRun.own` keeps whatever the whole run's mapping holds).
K = TypeVar("K")


@dataclasses.dataclass(frozen=True)
class FamilyRun(RunRecord):
    """The arms of one family as a run of their own: arms renumbered from 0 (in the run's order), records
    and kernels renumbered with them; the config's grid is the family's."""

    family: str = "l2"
    arm_ids: tuple[int, ...] = ()
    sweep: SweepConfig | None = None  # the whole sweep's configuration, every family in it
    learning_rate: float = DEFAULT_LEARNING_RATE  # the series' (one family at one learning rate)

    def kernels(self) -> dict[int, np.ndarray]:
        return self.own(read_kernels(self.run_dir))

    def own(self, kernels: dict[int, K]) -> dict[int, K]:
        """The whole run's kernels (by its arm index) → this family's, by the view's arm index."""
        return {new: kernels[old] for new, old in enumerate(self.arm_ids) if old in kernels}


def family_view(run: RunRecord, family: str, learning_rate: float | None = None) -> FamilyRun:
    """`run` restricted to `family`'s arms at `learning_rate` (see FamilyRun): a series of strengths. The
    learning rate may be left out when the sweep has one."""
    if learning_rate is None:
        if run.config.several_learning_rates:
            raise ValueError("a sweep of several learning rates has one series per family and learning rate")
        learning_rate = run.config.learning_rates[0]
    ids = tuple(a.index for a in run.arm_records
                if a.setting.family == family and a.setting.learning_rate == learning_rate)
    new_index = {old: new for new, old in enumerate(ids)}
    arms = [{**run.arms[old], "arm": new} for new, old in enumerate(ids)]
    epochs = tuple(dataclasses.replace(r, arm=new_index[r.arm]) for r in run.epochs if r.arm in new_index)
    config = run.config.replace(regularizers=[family], strengths={}, lambdas=list(run.config.grid(family)),
                                learning_rates=[learning_rate])
    return FamilyRun(run.run_dir, config, run.data, {**run.meta, "arms": arms}, epochs, family=family, arm_ids=ids,
                     sweep=run.config, learning_rate=learning_rate)


def by_family(series: Iterable[FamilyAnalysis]) -> dict[str, list[FamilyAnalysis]]:
    """A run's series analyses (`RunAnalysis.families` values) grouped by family name, in order."""
    out: dict[str, list[FamilyAnalysis]] = {}
    for fa in series:
        out.setdefault(fa.family.name, []).append(fa)
    return out


def series_key(family: str, learning_rate: float, config: SweepConfig) -> str:
    """How a run's analyses are keyed: the family's name, with `@lr=RATE` in a sweep of several learning rates."""
    return f"{family}@lr={learning_rate!r}" if config.several_learning_rates else family


def sweep_config(run: RunRecord) -> SweepConfig:
    """The configuration of the whole sweep, also when `run` is one family's view of it."""
    return run.sweep if isinstance(run, FamilyRun) and run.sweep is not None else run.config


def primary_family(run: RunRecord) -> str:
    """The family the report's single-family sections analyse: L2 when the sweep has it, else the first."""
    return "l2" if "l2" in run.config.regularizers else run.config.regularizers[0]


def sparsity(kernels: list[np.ndarray]) -> tuple[float, float]:
    """(fraction of weights exactly 0, fraction within NEAR_ZERO of 0) over the given kernels. Both: Adam moves
    a weight by about its learning rate (0.001) per step, so an L1-pinned weight hovers within ±0.001 of 0
    rather than landing on it."""
    if not kernels:
        return math.nan, math.nan
    w = np.concatenate([np.abs(np.asarray(k, dtype=np.float64)).ravel() for k in kernels])
    return float(np.mean(w == 0.0)), float(np.mean(w < NEAR_ZERO))


class FamilySummary(NamedTuple):
    """One family's sweep, summarized for the side-by-side comparison (from its `FamilyAnalysis`)."""

    family: str
    label: str
    n_arms: int
    recommended: Recommendation | None  # by validation data loss
    val_accuracy: Estimate | None  # at the recommended strength
    loss_range: float  # worst − best mean final validation data loss over the grid: sensitivity to the strength
    shrink_at_max: Estimate | None  # ‖W‖ at the largest strength over the same seed's strength-0 arm's
    zeros_at_best: tuple[float, float]  # (exactly 0, within NEAR_ZERO of 0) over live inputs, recommended strength
    zeros_at_max: tuple[float, float]  # … and at the largest strength
    best_per_seed: dict[int, float]  # seed → final validation data loss at the recommended strength


def _zeros(fa: FamilyAnalysis, lam: float | None) -> tuple[float, float]:
    ws = [w for w in fa.weights if lam is not None and w.setting.strength == lam]
    if not ws:
        return math.nan, math.nan
    return float(sum(w.exactly_zero for w in ws) / len(ws)), float(sum(w.near_zero for w in ws) / len(ws))


def summarize_analysis(fa: FamilyAnalysis) -> FamilySummary:
    """A family's line in the comparison, read from its analysis (nothing recomputed but means)."""
    per: PerSeed = fa.finals["val_data_loss"]
    means = [mean_ci(v.values()).mean for v in per.values() if v]
    grid = sorted(per)
    top = grid[-1] if grid else None
    shrink = fa.finals["shrink"].get(top) if top is not None else None
    rec = fa.recommended
    best = rec.strength if rec else None
    return FamilySummary(
        fa.name, fa.label, len(fa.view.arms), rec,
        mean_ci(fa.finals["val_accuracy"][best].values()) if best is not None else None,
        max(means) - min(means) if means else math.nan, mean_ci(shrink.values()) if shrink else None,
        _zeros(fa, best), _zeros(fa, top), dict(per[best]) if best is not None else {},
    )


def compare_analyses(analyses: list[FamilyAnalysis]) -> list[FamilySummary]:
    return [summarize_analysis(fa) for fa in analyses]


class BestAgainstBest(NamedTuple):
    """One family's recommended strength against another's: final validation data loss a − b, paired on seeds
    (and on validation examples where recorded)."""

    a: str
    b: str
    difference: noise.Difference


def best_against_best(a: FamilyAnalysis, b: FamilyAnalysis) -> BestAgainstBest | None:
    """Family analyses `a` and `b`, each at its recommended strength."""
    if a.recommended is None or b.recommended is None or a.per_example is None or b.per_example is None:
        return None
    la, lb = a.per_example.loss.get(a.recommended.strength, {}), b.per_example.loss.get(b.recommended.strength, {})
    seeds = sorted(set(la) & set(lb))
    if a.per_example.complete and b.per_example.complete and seeds:
        d = noise.paired_difference(np.stack([la[s] for s in seeds]), np.stack([lb[s] for s in seeds]))
    else:
        d = noise.seed_only_difference(a.finals["val_data_loss"][a.recommended.strength], b.finals["val_data_loss"][b.recommended.strength])
    return BestAgainstBest(a.name, b.name, d)
