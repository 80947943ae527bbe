"""Pure functions over a run record: plain numbers for tables, figures and reports. No I/O, no plotting."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .config import DEFAULT_LEARNING_RATE
from .diagnose import Criteria, Trend
from .record import EpochRecord, RunRecord
from .settings import Setting, setting_of

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
    family: str = "l2"
    learning_rate: float = DEFAULT_LEARNING_RATE

    @property
    def setting(self) -> Setting:
        return Setting(self.family, self.lam, self.learning_rate)


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
        test_data_loss=float(test.get("data_loss", NAN)), family=str(meta.get("regularizer", "l2")),
        learning_rate=setting_of(meta).learning_rate,
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
    baseline = {(a.get("regularizer", "l2"), int(a["seed"])): norms.get(a["arm"]) for a in run.arms
                if float(a["lambda"]) == 0.0}  # each family against its own strength-0 arm
    out = []
    for a in run.arms:
        i = int(a["arm"])
        if i not in kernels:
            continue
        k = np.asarray(kernels[i])
        base = baseline.get((a.get("regularizer", "l2"), int(a["seed"])))
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


def validation_trends(run: RunRecord, criteria: Criteria = Criteria()) -> list[Trend]:
    """Every arm's diagnosis (`reglab.diagnose`), each family judged within itself; keyed by setting."""
    from .analyze import analyze

    analysis = analyze(run, criteria)
    trends = [t._replace(arm=fa.view.arm_ids[t.arm]) for fa in analysis.families.values() for t in fa.trends]
    return sorted(trends, key=lambda t: t.arm)  # the run's arm indices
