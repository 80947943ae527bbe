"""Per-arm diagnoses a practitioner accepts: each verdict is a comparison with the noise it has to beat.

For one arm (rows in epoch order, its per-example validation losses where recorded):

- *too few epochs to tell*: fewer than `Criteria.min_epochs` epochs, so no trend can be seen.
- *underfitting*: its final training accuracy or training data loss is worse, beyond noise, than that
  of the family's recommended setting (lowest mean validation data loss) in the same seed: it fits the
  training data less than the setting that generalizes best. Noise: the binomial sampling error of an
  accuracy over the training set; for the loss, the arm's per-example validation-loss spread over the
  training set's size (the best available stand-in for the training losses' spread).
- *overfitting*: the validation data loss has risen from its minimum by more than its noise. Noise: the
  paired difference of per-example losses (final − best epoch) where both were recorded; else, from
  the final per-example losses alone, √2 × their standard error (as if the two epochs were independent:
  conservative, it calls fewer arms overfitting).
- *still improving*: the minimum is at the last epoch and the loss fell over the last `window` epochs by
  more than its noise (measured the same way): training was stopped before it converged, so settings
  are compared as unconverged models.
- *good fit*: none of these; training converged without a rise beyond noise.

Without any per-example values (older records) the noise is unknown: the rule falls back to the stated
relative thresholds of `Criteria` and says so in the reason. All losses are penalty-free.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import numpy as np

from .formatting import lam_label
from .record import EpochRecord
from .settings import Setting

Z = 1.959963984540054
NAN = float("nan")

TOO_FEW, UNDERFITTING, OVERFITTING, IMPROVING, GOOD, NO_DATA = (
    "too few epochs to tell", "underfitting", "overfitting", "still improving", "good fit", "no data")


class Criteria(NamedTuple):
    """The stated rules behind each diagnosis; the report prints them next to the verdicts."""

    z: float = Z  # a difference is beyond noise when it exceeds z standard errors (95 %)
    min_epochs: int = 2  # fewer epochs: too few to tell
    window: int = 3  # "still improving" looks at the fall over this many last epochs
    fallback_rise: float = 0.10  # without per-example values: overfitting = ends > 10 % above the minimum
    fallback_points: float = 0.02  # … underfitting = training accuracy > 2 points below the recommended setting's


class ArmValidation(NamedTuple):
    """One arm's per-example validation data losses: at its last epoch, and where recorded, after any epoch
    (`at(epoch)`, epochs counting from 1), so the rise from the best epoch and the recent fall are paired."""

    final: np.ndarray | None = None
    by_epoch: Callable[[int], np.ndarray | None] | None = None

    def at(self, epoch: int) -> np.ndarray | None:
        return self.by_epoch(epoch) if self.by_epoch is not None else None


class Reference(NamedTuple):
    """The recommended setting's arm of the same seed: what underfitting is measured against."""

    setting: Setting
    accuracy: float
    data_loss: float


class Trend(NamedTuple):
    """One arm's validation trend, its fit to the training data, and the diagnosis they give."""

    arm: int
    setting: Setting
    seed: int
    epochs: int
    best_epoch: int
    best_val_data_loss: float
    final_val_data_loss: float
    rise: float  # final − minimum validation data loss
    rise_noise: float  # what the rise has to exceed (NaN: unknown)
    recent_fall: float  # loss at the window's start − final loss (NaN when the minimum is not at the end)
    fall_noise: float
    final_loss_gap: float  # val − train data loss at the end
    final_accuracy_gap: float  # train − val accuracy at the end
    diagnosis: str
    converged: bool | None  # False: still improving; None: cannot tell
    reason: str

    @property
    def lam(self) -> float:
        return self.setting.strength


def _paired_noise(a: np.ndarray | None, b: np.ndarray | None, criteria: Criteria) -> float:
    if a is None or b is None or len(a) != len(b) or len(a) < 2:
        return NAN
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if not np.isfinite(d).all():
        return NAN
    return float(criteria.z * d.std(ddof=1) / math.sqrt(len(d)))


def _unpaired_noise(final: np.ndarray | None, criteria: Criteria) -> float:
    if final is None or len(final) < 2 or not np.isfinite(final).all():
        return NAN
    return float(criteria.z * math.sqrt(2) * np.asarray(final, dtype=np.float64).std(ddof=1) / math.sqrt(len(final)))


def diagnose(arm: int, setting: Setting, seed: int, rows: Sequence[EpochRecord], values: ArmValidation,
             reference: Reference | None, n_train: int, criteria: Criteria = Criteria()) -> Trend:
    """The diagnosis of one arm (see the module's rules); `rows` are its epochs in order."""
    rows = [r for r in rows if math.isfinite(r.val_data_loss)]
    if not rows:
        return Trend(arm, setting, seed, 0, 0, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NO_DATA, None,
                     "no epoch with a finite validation loss was recorded")
    last = rows[-1]
    best = min(rows, key=lambda r: (r.val_data_loss, r.epoch))
    common = dict(arm=arm, setting=setting, seed=seed, epochs=len(rows), best_epoch=best.epoch,
                  best_val_data_loss=best.val_data_loss, final_val_data_loss=last.val_data_loss,
                  final_loss_gap=last.val_data_loss - last.data_loss, final_accuracy_gap=last.accuracy - last.val_accuracy)
    rise = last.val_data_loss - best.val_data_loss
    if len(rows) < criteria.min_epochs:
        return Trend(**common, rise=rise, rise_noise=NAN, recent_fall=NAN, fall_noise=NAN, diagnosis=TOO_FEW,
                     converged=None, reason=f"{len(rows)} epoch recorded: a trend needs at least {criteria.min_epochs}")
    measured = values.final is not None
    # overfitting: the rise from the minimum, against its noise
    at_best = values.at(best.epoch)
    if at_best is not None:
        rise_noise = _paired_noise(values.final, at_best, criteria)
    else:
        rise_noise = _unpaired_noise(values.final, criteria)
    # still improving: the fall over the window, when the minimum is the last epoch
    start = rows[max(0, len(rows) - criteria.window)]
    at_end = best.epoch == last.epoch
    fall = start.val_data_loss - last.val_data_loss if at_end else NAN
    at_start = values.at(start.epoch)
    if at_start is not None:
        fall_noise = _paired_noise(at_start, values.final, criteria)
    else:
        fall_noise = _unpaired_noise(values.final, criteria)
    # underfitting: against the recommended setting's arm of the same seed
    under = _underfitting(last, reference, values.final, n_train, criteria) if reference and reference.setting != setting else None
    trend = dict(common, rise=rise, rise_noise=rise_noise, recent_fall=fall, fall_noise=fall_noise)
    if under:
        return Trend(**trend, diagnosis=UNDERFITTING, converged=None, reason=under)
    if measured:
        if rise > rise_noise:
            return Trend(**trend, diagnosis=OVERFITTING, converged=True,
                         reason=f"rose {rise:.4f} after epoch {best.epoch} (noise ±{rise_noise:.4f})")
        if at_end and fall > fall_noise:
            return Trend(**trend, diagnosis=IMPROVING, converged=False,
                         reason=f"still falling: {fall:.4f} over the last {last.epoch - start.epoch + 1} epochs "
                                f"(noise ±{fall_noise:.4f})")
        return Trend(**trend, diagnosis=GOOD, converged=True,
                     reason="no rise and no recent fall beyond noise")
    relative = rise / best.val_data_loss if best.val_data_loss > 0 else 0.0
    unknown = " (no per-example values recorded: noise unknown, the fallback threshold decides)"
    if relative > criteria.fallback_rise:
        return Trend(**trend, diagnosis=OVERFITTING, converged=True,
                     reason=f"validation data loss ends {100 * relative:.1f} % above its minimum at epoch {best.epoch}" + unknown)
    if at_end and start.epoch != last.epoch:
        return Trend(**trend, diagnosis=IMPROVING, converged=False,
                     reason="validation data loss is lowest at the last epoch" + unknown)
    return Trend(**trend, diagnosis=GOOD, converged=True, reason=f"ends {100 * relative:.1f} % above its minimum" + unknown)


def _underfitting(last: EpochRecord, ref: Reference, final: np.ndarray | None, n_train: int, criteria: Criteria) -> str | None:
    """Why the arm underfits against the recommended setting's arm, or None."""
    deficit = ref.accuracy - last.accuracy
    if final is not None and n_train > 0:
        p1, p2 = min(max(ref.accuracy, 0.0), 1.0), min(max(last.accuracy, 0.0), 1.0)
        acc_noise = criteria.z * math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n_train)
        spread = float(np.std(np.asarray(final, dtype=np.float64), ddof=1)) if len(final) > 1 else NAN
        loss_noise = criteria.z * math.sqrt(2) * spread / math.sqrt(n_train)
        excess = last.data_loss - ref.data_loss
        if deficit > acc_noise and deficit > 0:
            return (f"train accuracy {100 * deficit:.2f} points below λ = {lam_label(ref.setting.strength)}'s "
                    f"(noise ±{100 * acc_noise:.2f})")
        if math.isfinite(loss_noise) and excess > loss_noise:
            return (f"train data loss {excess:.4f} above λ = {lam_label(ref.setting.strength)}'s "
                    f"(noise ±{loss_noise:.4f})")
        return None
    if deficit > criteria.fallback_points:
        return (f"train accuracy {100 * deficit:.1f} points below λ = {lam_label(ref.setting.strength)}'s "
                "(no per-example values recorded: the fallback threshold decides)")
    return None


def criteria_text(criteria: Criteria) -> list[str]:
    """The rules, as the report states them."""
    return [
        "underfitting: training accuracy or data loss worse than the recommended strength's (same seed) beyond noise;",
        "overfitting: validation data loss rose from its minimum beyond noise (paired over validation examples);",
        f"still improving: lowest at the last epoch and still falling beyond noise over the last {criteria.window} "
        "epochs (not converged);",
        f"good fit: none of these; too few epochs to tell: fewer than {criteria.min_epochs} epochs.",
        f"Beyond noise: more than {criteria.z:.2f} standard errors (95 %). Losses are penalty-free.",
    ]
