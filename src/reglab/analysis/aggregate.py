"""Across seeds, within one family: per-λ final values and means with 95 % intervals, per-epoch bands,
and which arms may be compared — the inputs `reglab.analyze` builds its analysis from.

Pure functions over a `RunRecord`. Only arms that completed every epoch enter comparisons: an
interrupted arm stopped early and a diverged one has no finite loss, so mixing them in would compare
unlike things; `excluded_arms` lists them for the report. The best setting, its neighbours, the flat
region and the bootstrap interval of the best are computed once, in `reglab.analyze` (`Recommendation`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from reglab.analysis.stats import Estimate, mean_ci
from reglab.record.reader import RunRecord
from reglab.record.schema import EpochRecord

NAN = float("nan")

#: The per-arm final quantities every per-λ figure is built from ("final" = the last epoch).
METRICS = (
    "val_data_loss", "val_accuracy", "data_loss", "accuracy", "val_loss", "loss",
    "loss_gap", "accuracy_gap", "kernel_norm", "shrink", "best_val_data_loss",
    "test_accuracy", "test_data_loss",
)

PerSeed = dict[float, dict[int, float]]  # λ → seed → value


def one_family(run: RunRecord) -> None:
    """These functions key results by λ, which means something only within one regularizer family: a run
    that compares several is analysed family by family (`reglab.analyze`, or `reglab.family_view`)."""
    families = run.config.regularizers
    if len(families) > 1:
        raise ValueError(f"this run compares {', '.join(families)}: a λ means something only within one family; "
                         "use reglab.analyze(run).families[...] or reglab.family_view(run, family)")
    if run.config.several_learning_rates:
        raise ValueError("this run sweeps learning rates: a λ means something only at one of them; "
                         "use reglab.analyze(run).families[...] or reglab.family_view(run, family, learning_rate)")


def _rows_by_arm(run: RunRecord) -> dict[int, list[EpochRecord]]:
    out: dict[int, list[EpochRecord]] = {}
    for r in run.epochs:
        out.setdefault(r.arm, []).append(r)
    for rows in out.values():
        rows.sort(key=lambda r: r.epoch)
    return out


def comparable_arms(run: RunRecord) -> list[int]:
    """Arms that completed every configured epoch (or were stopped early by the run's early stopping)
    with finite losses."""
    rows = _rows_by_arm(run)
    out = []
    for a in run.arm_records:
        i = a.index
        r = rows.get(i, [])
        done = (a.status == "completed" and len(r) == run.config.epochs) or (a.status == "stopped" and r)
        if done and all(math.isfinite(x.loss) for x in r):
            out.append(i)
    return out


def excluded_arms(run: RunRecord) -> list[tuple[int, float, int, str]]:
    """(arm, λ, seed, why) for every arm left out of the comparisons."""
    keep = set(comparable_arms(run))
    rows = _rows_by_arm(run)
    out = []
    for a in run.arm_records:
        i = a.index
        if i not in keep:
            done = len(rows.get(i, []))
            out.append((i, a.strength, a.seed, f"{a.status} after {done} of {run.config.epochs} epochs"))
    return out


def final_values(run: RunRecord) -> dict[str, PerSeed]:
    """metric → λ → seed → the arm's final value, for the comparable arms. `shrink` is the kernel norm
    over the same seed's λ = 0 arm's (absent without a baseline); gaps are val − train data loss and
    train − val accuracy, both without the penalty. One family only (`one_family`)."""
    one_family(run)
    rows = _rows_by_arm(run)
    out: dict[str, PerSeed] = {m: {} for m in METRICS}
    baseline_norm: dict[int, float] = {}
    for i in comparable_arms(run):
        arm = run.arm_records[i]
        lam, seed = arm.strength, arm.seed
        last = rows[i][-1]
        test = arm.test
        values = {
            "val_data_loss": last.val_data_loss, "val_accuracy": last.val_accuracy,
            "data_loss": last.data_loss, "accuracy": last.accuracy, "val_loss": last.val_loss, "loss": last.loss,
            "loss_gap": last.val_data_loss - last.data_loss, "accuracy_gap": last.accuracy - last.val_accuracy,
            "kernel_norm": last.kernel_norm, "best_val_data_loss": min(r.val_data_loss for r in rows[i]),
            "test_accuracy": float(test.get("accuracy", NAN)), "test_data_loss": float(test.get("data_loss", NAN)),
        }
        for m, v in values.items():
            out[m].setdefault(lam, {})[seed] = v
        if lam == 0.0:
            baseline_norm[seed] = last.kernel_norm
    for lam, by_seed in out["kernel_norm"].items():
        for seed, norm in by_seed.items():
            if baseline_norm.get(seed):
                out["shrink"].setdefault(lam, {})[seed] = norm / baseline_norm[seed]
    return out


class LambdaStats(NamedTuple):
    """Every final metric of one λ as a mean over its seeds with a 95 % interval."""

    strength: float
    seeds: tuple[int, ...]
    values: dict[str, Estimate]

    def __getitem__(self, metric: str) -> Estimate:  # type: ignore[override]
        return self.values[metric]


def lambda_stats(run: RunRecord, finals: dict[str, PerSeed] | None = None) -> list[LambdaStats]:
    """One row per λ (ascending) that has at least one comparable arm: what `FamilyAnalysis.stats` holds
    (read it there: `reglab.analyze(run).main.stats`)."""
    finals = final_values(run) if finals is None else finals
    out = []
    for lam in sorted(finals["val_data_loss"]):
        seeds = tuple(sorted(finals["val_data_loss"][lam]))
        out.append(LambdaStats(lam, seeds, {m: mean_ci(finals[m].get(lam, {}).values()) for m in METRICS}))
    return out


class Band(NamedTuple):
    """One λ's curve over epochs: per epoch the mean over seeds and its 95 % interval (NaN with one seed)."""

    strength: float
    epochs: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]
    n: int


#: Per-epoch quantities derived from two columns (both without the penalty).
DERIVED = {
    "loss_gap": lambda r: r.val_data_loss - r.data_loss,
    "accuracy_gap": lambda r: r.accuracy - r.val_accuracy,
}


def epoch_value(r: EpochRecord, column: str) -> float:
    """A metrics.csv column, or a derived one: `loss_gap` (val − train data loss), `accuracy_gap` (train − val)."""
    return DERIVED[column](r) if column in DERIVED else float(getattr(r, column))


def epoch_bands(run: RunRecord, column: str) -> list[Band]:
    """Per λ, the mean and 95 % band of `column` (see `epoch_value`) at each epoch, over the comparable arms' seeds."""
    one_family(run)
    rows = _rows_by_arm(run)
    by_lam: dict[float, list[list[EpochRecord]]] = {}
    for i in comparable_arms(run):
        by_lam.setdefault(run.arm_records[i].strength, []).append(rows[i])
    out = []
    for lam in sorted(by_lam):
        arms = [{r.epoch: r for r in rows_of_arm} for rows_of_arm in by_lam[lam]]
        epochs = sorted(set().union(*arms))  # arms stopped early contribute to the epochs they ran
        est = [mean_ci(epoch_value(a[e], column) for a in arms if e in a) for e in epochs]
        out.append(Band(lam, epochs, [x.mean for x in est], [x.low for x in est], [x.high for x in est], len(arms)))
    return out


class GapNorm(NamedTuple):
    """The generalization gap against the kernel norm across comparable arms, and how they relate."""

    points: list[tuple[float, int, float, float]]  # (λ, seed, final ‖W‖, final loss gap)
    correlation: float  # Pearson r over the arms (NaN with fewer than 3 arms or no spread)


def gap_against_norm(run: RunRecord, finals: dict[str, PerSeed] | None = None) -> GapNorm:
    finals = final_values(run) if finals is None else finals
    pts = [(lam, seed, finals["kernel_norm"][lam][seed], gap)
           for lam, by_seed in sorted(finals["loss_gap"].items()) for seed, gap in sorted(by_seed.items())]
    return GapNorm(pts, _pearson([p[2] for p in pts], [p[3] for p in pts]))


def _pearson(xs: list[float], ys: list[float]) -> float:
    pairs = [(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 3:
        return NAN
    n = len(pairs)
    mx, my = sum(p[0] for p in pairs) / n, sum(p[1] for p in pairs) / n
    sxx = sum((p[0] - mx) ** 2 for p in pairs)
    syy = sum((p[1] - my) ** 2 for p in pairs)
    if sxx == 0 or syy == 0:
        return NAN
    return sum((p[0] - mx) * (p[1] - my) for p in pairs) / math.sqrt(sxx * syy)


class Histogram(NamedTuple):
    """Final kernel weights of one λ (all its comparable seeds pooled) on bin edges shared by every λ."""

    strength: float
    edges: list[float]
    counts: list[int]
    n_weights: int


def weight_histograms(run: RunRecord, kernels: dict[int, object], bins: int = 81) -> list[Histogram]:
    """Fixed bins, symmetric about 0 and wide enough for the largest |w| of any arm, so shapes compare."""
    one_family(run)

    keep = [i for i in comparable_arms(run) if i in kernels]
    if not keep:
        return []
    top = max(float(np.max(np.abs(np.asarray(kernels[i])))) if np.asarray(kernels[i]).size else 0.0 for i in keep)
    top = top if top > 0 else 1.0
    edges = np.linspace(-top, top, bins + 1)
    by_lam: dict[float, list[np.ndarray]] = {}
    for i in keep:
        by_lam.setdefault(run.arm_records[i].strength, []).append(np.asarray(kernels[i]).ravel())
    out = []
    for lam in sorted(by_lam):
        w = np.concatenate(by_lam[lam])
        counts, _ = np.histogram(w, bins=edges)
        out.append(Histogram(lam, [float(e) for e in edges], [int(c) for c in counts], int(w.size)))
    return out
