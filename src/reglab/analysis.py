"""Pure functions over a run record: plain numbers for tables, figures and reports. No I/O, no plotting."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .record import EpochRecord, RunRecord

NAN = float("nan")


class ArmSummary(NamedTuple):
    """One arm's final and best metrics. `*_data_loss` excludes the L2 penalty; `loss`/`val_loss` include it."""

    arm: int
    lam: float
    seed: int
    status: str
    epochs_done: int
    final_loss: float
    final_val_loss: float
    final_accuracy: float
    final_val_accuracy: float
    final_data_loss: float
    final_val_data_loss: float
    best_val_data_loss: float
    best_val_data_loss_epoch: int
    best_val_accuracy: float
    best_val_accuracy_epoch: int
    final_kernel_norm: float
    final_penalty: float
    test_loss: float
    test_accuracy: float
    test_data_loss: float


def _argbest(rows: list[EpochRecord], key: str, lowest: bool) -> tuple[float, int]:
    """The best finite value of `key` and the first epoch that reached it (NaN, 0 when none)."""
    sign = 1.0 if lowest else -1.0
    finite = [r for r in rows if math.isfinite(getattr(r, key))]
    if not finite:
        return NAN, 0
    pick = min(finite, key=lambda r: (sign * getattr(r, key), r.epoch))
    return getattr(pick, key), pick.epoch


def arm_summary(run: RunRecord, arm: int) -> ArmSummary:
    meta = run.arms[arm]
    rows = sorted((r for r in run.epochs if r.arm == arm), key=lambda r: r.epoch)
    last = rows[-1] if rows else None
    test = meta.get("test") or {}
    best_loss, best_loss_epoch = _argbest(rows, "val_data_loss", lowest=True)
    best_acc, best_acc_epoch = _argbest(rows, "val_accuracy", lowest=False)

    def final(name: str) -> float:
        return getattr(last, name) if last else NAN

    return ArmSummary(
        arm=arm, lam=float(meta["lambda"]), seed=int(meta["seed"]), status=str(meta["status"]),
        epochs_done=last.epoch if last else 0,
        final_loss=final("loss"), final_val_loss=final("val_loss"),
        final_accuracy=final("accuracy"), final_val_accuracy=final("val_accuracy"),
        final_data_loss=final("data_loss"), final_val_data_loss=final("val_data_loss"),
        best_val_data_loss=best_loss, best_val_data_loss_epoch=best_loss_epoch,
        best_val_accuracy=best_acc, best_val_accuracy_epoch=best_acc_epoch,
        final_kernel_norm=final("kernel_norm"), final_penalty=final("penalty"),
        test_loss=float(test.get("loss", NAN)), test_accuracy=float(test.get("accuracy", NAN)),
        test_data_loss=float(test.get("data_loss", NAN)),
    )


def arm_summaries(run: RunRecord) -> list[ArmSummary]:
    return [arm_summary(run, i) for i in range(len(run.arms))]


#: A weight counts as near zero below this magnitude (glorot_uniform starts the 784×128 kernel in ±0.08).
NEAR_ZERO = 1e-3


class ArmWeights(NamedTuple):
    """One arm's final regularized kernel, summarized. `shrink` = its norm / the λ = 0 arm's (same seed)."""

    arm: int
    lam: float
    seed: int
    norm: float
    shrink: float
    near_zero_fraction: float
    max_abs: float


def weight_magnitudes(run: RunRecord, kernels: dict[int, Any]) -> list[ArmWeights]:
    """Per arm with a saved kernel: norm, shrink factor against the same seed's baseline, near-zero share."""
    import numpy as np

    norms = {i: float(np.linalg.norm(np.asarray(k, dtype=np.float64))) for i, k in kernels.items()}
    baseline = {int(a["seed"]): norms.get(a["arm"]) for a in run.arms if float(a["lambda"]) == 0.0}
    out = []
    for a in run.arms:
        i = int(a["arm"])
        if i not in kernels:
            continue
        k = np.asarray(kernels[i])
        base = baseline.get(int(a["seed"]))
        out.append(ArmWeights(
            arm=i, lam=float(a["lambda"]), seed=int(a["seed"]), norm=norms[i],
            shrink=norms[i] / base if base else NAN,
            near_zero_fraction=float(np.mean(np.abs(k) < NEAR_ZERO)) if k.size else NAN,
            max_abs=float(np.max(np.abs(k))) if k.size else NAN,
        ))
    return out


def norm_monotone_in_lambda(weights: list[ArmWeights]) -> dict[int, bool]:
    """Per seed: does the final kernel norm strictly fall as λ rises? (The first claim about L2.)"""
    by_seed: dict[int, list[ArmWeights]] = {}
    for w in weights:
        by_seed.setdefault(w.seed, []).append(w)
    result = {}
    for seed, ws in by_seed.items():
        norms = [w.norm for w in sorted(ws, key=lambda w: w.lam)]
        result[seed] = all(a > b for a, b in zip(norms, norms[1:]))
    return result


class Criteria(NamedTuple):
    """The stated thresholds behind each arm's diagnosis; the report prints them next to the verdicts."""

    overfit_rise: float = 0.10  # validation data loss ends > 10 % above its minimum → overfitting
    overfit_gap: float = 0.10  # or ends > 0.10 nats above the training data loss → overfitting
    underfit_points: float = 0.02  # training accuracy ends > 2 points below the seed's best arm → underfitting
    slope_epochs: int = 3  # the final slope is fitted over this many last epochs


class Trend(NamedTuple):
    """One arm's validation-data-loss trend and generalization gap, and the diagnosis they give."""

    arm: int
    lam: float
    seed: int
    best_epoch: int
    best_val_data_loss: float
    rise_after_best: float  # (final − minimum) / minimum
    final_slope: float  # per epoch, least squares over the last `slope_epochs`
    final_loss_gap: float  # val data loss − train data loss (both without penalty)
    final_accuracy_gap: float  # train accuracy − val accuracy
    diagnosis: str  # "overfitting", "underfitting", "good fit", or "no data"
    reason: str


def _slope(ys: list[float]) -> float:
    n = len(ys)
    if n < 2:
        return NAN
    mx, my = (n - 1) / 2, sum(ys) / n
    return sum((i - mx) * (y - my) for i, y in enumerate(ys)) / sum((i - mx) ** 2 for i in range(n))


def validation_trends(run: RunRecord, criteria: Criteria = Criteria()) -> list[Trend]:
    """Classify every arm by the stated `criteria`; underfitting compares arms of the same seed."""
    rows_by_arm: dict[int, list[EpochRecord]] = {}
    for r in run.epochs:
        rows_by_arm.setdefault(r.arm, []).append(r)
    for rows in rows_by_arm.values():
        rows.sort(key=lambda r: r.epoch)
    best_train_acc: dict[int, float] = {}
    for rows in rows_by_arm.values():
        if rows and math.isfinite(rows[-1].accuracy):
            best_train_acc[rows[-1].seed] = max(best_train_acc.get(rows[-1].seed, -1.0), rows[-1].accuracy)
    out = []
    for a in run.arms:
        i, lam, seed = int(a["arm"]), float(a["lambda"]), int(a["seed"])
        rows = [r for r in rows_by_arm.get(i, []) if math.isfinite(r.val_data_loss)]
        if not rows:
            out.append(Trend(i, lam, seed, 0, NAN, NAN, NAN, NAN, NAN, "no data", "no finite epoch recorded"))
            continue
        best = min(rows, key=lambda r: (r.val_data_loss, r.epoch))
        last = rows[-1]
        rise = (last.val_data_loss - best.val_data_loss) / best.val_data_loss if best.val_data_loss > 0 else 0.0
        gap = last.val_data_loss - last.data_loss
        behind = best_train_acc.get(seed, last.accuracy) - last.accuracy
        if behind > criteria.underfit_points:
            diagnosis = "underfitting"
            reason = f"training accuracy {last.accuracy:.4f} is {100 * behind:.1f} points below the best arm's"
        elif rise > criteria.overfit_rise or gap > criteria.overfit_gap:
            diagnosis = "overfitting"
            reason = (f"validation data loss ends {100 * rise:.1f} % above its minimum (epoch {best.epoch})"
                      if rise > criteria.overfit_rise else f"validation data loss ends {gap:.3f} above the training data loss")
        else:
            diagnosis = "good fit"
            reason = f"validation data loss {100 * rise:.1f} % above its minimum, gap {gap:.3f}"
        out.append(Trend(
            arm=i, lam=lam, seed=seed, best_epoch=best.epoch, best_val_data_loss=best.val_data_loss,
            rise_after_best=rise, final_slope=_slope([r.val_data_loss for r in rows[-criteria.slope_epochs:]]),
            final_loss_gap=gap, final_accuracy_gap=last.accuracy - last.val_accuracy,
            diagnosis=diagnosis, reason=reason,
        ))
    return out
