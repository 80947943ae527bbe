"""Per-arm summaries of a run record: plain numbers for tables, figures and reports. No I/O, no plotting.

Everything measured across arms — weight statistics, diagnoses, recommendations — is in `reglab.analyze`."""

from __future__ import annotations

import math
from typing import NamedTuple

from reglab.record.reader import RunRecord
from reglab.record.schema import EpochRecord
from reglab.settings import DEFAULT_LEARNING_RATE, Setting

NAN = float("nan")


class ArmSummary(NamedTuple):
    """One arm's final and best metrics. `*_data_loss` excludes the L2 penalty; `loss`/`val_loss` include it."""

    arm: int
    strength: float
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
        return Setting(self.family, self.strength, self.learning_rate)


def _argbest(rows: list[EpochRecord], key: str, lowest: bool) -> tuple[float, int]:
    """The best finite value of `key` and the first epoch that reached it (NaN, 0 when none)."""
    sign = 1.0 if lowest else -1.0
    finite = [r for r in rows if math.isfinite(getattr(r, key))]
    if not finite:
        return NAN, 0
    pick = min(finite, key=lambda r: (sign * getattr(r, key), r.epoch))
    return getattr(pick, key), pick.epoch


def arm_summary(run: RunRecord, arm: int) -> ArmSummary:
    record = run.arm_records[arm]
    rows = sorted((r for r in run.epochs if r.arm == arm), key=lambda r: r.epoch)
    last = rows[-1] if rows else None
    test = record.test
    best_loss, best_loss_epoch = _argbest(rows, "val_data_loss", lowest=True)
    best_acc, best_acc_epoch = _argbest(rows, "val_accuracy", lowest=False)

    def final(name: str) -> float:
        return getattr(last, name) if last else NAN

    return ArmSummary(
        arm=arm, strength=record.strength, seed=record.seed, status=record.status,
        epochs_done=last.epoch if last else 0,
        final_loss=final("loss"), final_val_loss=final("val_loss"),
        final_accuracy=final("accuracy"), final_val_accuracy=final("val_accuracy"),
        final_data_loss=final("data_loss"), final_val_data_loss=final("val_data_loss"),
        best_val_data_loss=best_loss, best_val_data_loss_epoch=best_loss_epoch,
        best_val_accuracy=best_acc, best_val_accuracy_epoch=best_acc_epoch,
        final_kernel_norm=final("kernel_norm"), final_penalty=final("penalty"),
        test_loss=float(test.get("loss", NAN)), test_accuracy=float(test.get("accuracy", NAN)),
        test_data_loss=float(test.get("data_loss", NAN)), family=record.setting.family,
        learning_rate=record.setting.learning_rate,
    )


def arm_summaries(run: RunRecord) -> list[ArmSummary]:
    return [arm_summary(run, i) for i in range(len(run.arm_records))]


#: A weight counts as near zero below this magnitude (glorot_uniform starts the 784×128 kernel in ±0.08).
NEAR_ZERO = 1e-3
