"""Per-arm diagnoses, each a stated test with a stated error rate, so that a verdict is a finding and
"nothing shown" is never read as "not so".

For one arm: its rows in epoch order (E epochs with a finite validation loss) and, where recorded, its
per-example validation data losses. All losses are penalty-free cross-entropies (nats).

**The trend** (overfitting, still improving, good fit = converged, can't tell). Question: late in training,
is the validation data loss still moving, and which way? Test: the least-squares slope of the per-epoch
mean validation data loss (`EpochRecord.val_data_loss`) on the epoch number over a late window fixed in
advance, the last W = max(`Criteria.window`, ⌈E/2⌉) epochs. No epoch is chosen by its loss (choosing the
best epoch and testing the rise from it on the same validation examples called flat plateaus
"overfitting" in 12–58 % of arms). The slope's standard error comes from the regression's residuals, so
epoch-to-epoch jitter (a shift of one epoch's mean loss common to all examples) is part of the noise; the
change over the window, slope × (its last − first epoch), gets a 95 % Student-t interval with W − 2
degrees of freedom (`stats.t_critical`).

- *overfitting*: null "the loss is not rising" (slope ≤ 0), rejected when the interval lies wholly above 0:
  a one-sided test at 2.5 %.
- *good fit* (converged): null "the loss still changes by at least `Criteria.trend_margin` an epoch
  over the window", rejected when the interval lies wholly inside ±margin (two one-sided tests, each at 2.5 %): an
  arm whose loss truly moves by the margin or more is called converged at most 2.5 % of the time. A fall
  beyond noise but shown smaller than the margin is converged too (more epochs would change little).
- *still improving*: null "the loss is not falling" (slope ≥ 0), rejected when the interval lies wholly
  below 0 (one-sided, 2.5 %), and the fall is not shown within the margin: not converged.
- *can't tell*: none of these (no trend beyond noise, nor shown within the margin): not read as converged.

These rates assume the window's per-epoch means scatter independently about a straight line; a curve
that bends inside the window inflates the residuals and makes every verdict rarer, not more frequent.
Measured on simulated plateaus (tests/test_analyze.py): false "overfitting" ≤ 5 % at 8, 20 and 50 epochs,
with and without jitter.

With fewer than `Criteria.window` epochs (at least `min_epochs`) the same three rules apply to the paired
per-example difference, last − first epoch, with a 95 % t interval over the validation examples (neither
epoch chosen by its loss); its error rate covers example sampling only, as with two or three epochs jitter
cannot be told from a trend. Without per-example values at both epochs, or with fewer than `min_epochs`
epochs: *too few epochs to tell*. The reason names the test that decided.

**underfitting**. Question: does the arm fit its training data less well than the family's recommended
setting (lowest mean validation data loss) in the same seed? Null: its final training accuracy is at
least the reference's; rejected when the deficit exceeds `Criteria.z` binomial standard errors of a
difference of two accuracies over the training set (one-sided, 2.5 %). A higher training data loss with
training accuracy within noise is a *less confident* model, not an underfit one: the reason says so
(`Trend.less_confident`) and the arm keeps its trend diagnosis. Without per-example values (older
records) no noise is estimated: an accuracy deficit over `Criteria.fallback_points` decides, and the reason
says so. Underfitting takes precedence over the trend; the arm's `converged` and `trend` still give it.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from reglab.analysis.stats import Z975, t_critical
from reglab.formatting import lam_label
from reglab.record.schema import EpochRecord
from reglab.settings import Setting

Z = Z975
NAN = float("nan")

TOO_FEW, UNDERFITTING, OVERFITTING, IMPROVING, GOOD, NO_DATA = (
    "too few epochs to tell", "underfitting", "overfitting", "still improving", "good fit", "no data")
UNSETTLED = "can't tell"  # no trend beyond noise, nor shown within the margin: not read as converged
LESS_CONFIDENT = "less confident"  # higher training loss, training accuracy within noise: not underfitting


class Criteria(NamedTuple):
    """The stated rules behind each diagnosis; the report prints them next to the verdicts.

    `trend_margin` (nats of validation data loss per epoch): an arm is converged only when its change over
    the trend window is shown inside ±margin × the window's span in epochs, i.e. its slope inside ±margin.
    0.001 by default: a tenth of the answer's loss margin each epoch, so ten more epochs at that pace would
    still not move the loss by the margin that decides between strengths. Set per epoch rather than per
    window, so that a loss still falling 0.002 an epoch is never called converged, however short the window.
    """

    z: float = Z  # underfitting: a deficit is beyond noise when it exceeds z standard errors (one-sided 2.5 %)
    min_epochs: int = 2  # fewer epochs: too few to tell
    window: int = 4  # the trend test regresses over the last max(window, ⌈E/2⌉) epochs; fewer: the paired fallback
    trend_margin: float = 0.001  # converged: the 95 % interval of the slope lies inside ±this (nats per epoch)
    fallback_points: float = 0.02  # without per-example values: underfitting = training accuracy > 2 points below
    # equivalence margins of the answer: differences smaller than these are of no practical importance
    loss_margin: float = 0.01  # validation data loss (nats): the flat region, "no measurable benefit"
    accuracy_margin: float = 0.005  # validation accuracy (a fraction: half a point)

    def margin(self, metric: str) -> float:
        """The equivalence margin of "val_data_loss" or "val_accuracy"."""
        return self.accuracy_margin if "accuracy" in metric else self.loss_margin


class ArmValidation(NamedTuple):
    """One arm's per-example validation data losses: at its last epoch, and where recorded, after any epoch
    (`at(epoch)`, epochs counting from 1), so that with too few epochs for the trend test the last and first
    epochs are compared example by example."""

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
    best_epoch: int  # the epoch of the lowest validation data loss: described, never tested against
    best_val_data_loss: float
    final_val_data_loss: float
    rise: float  # the tested change of the validation data loss (positive: rising; NaN: no test): over the trend
    # window, slope × (its last − first epoch); in the paired fallback, the mean per-example last − first epoch
    rise_noise: float  # the half-width of the 95 % interval of `rise` (NaN: no test)
    recent_fall: float  # −rise: the tested fall
    fall_noise: float  # = rise_noise
    final_loss_gap: float  # val − train data loss at the end
    final_accuracy_gap: float  # train − val accuracy at the end
    diagnosis: str
    converged: bool | None  # True: more epochs would not lower the loss materially — shown within the margin (good
    # fit) or rising (overfitting); False: still improving; None: can't tell (too few epochs, no data, not shown)
    reason: str
    window: int = 0  # the epochs the trend test used (2 in the paired fallback; 0: no test)
    margin: float = NAN  # Criteria.trend_margin, that "converged" was shown within
    test: str = ""  # the test that decided the trend: "trend" (regression over the window), "paired", or ""
    trend: str = ""  # the trend's own verdict (OVERFITTING, IMPROVING, GOOD, UNSETTLED, TOO_FEW), also under UNDERFITTING
    less_confident: bool = False  # higher training data loss than the reference beyond noise, accuracy within noise

    @property
    def strength(self) -> float:
        return self.setting.strength


class _Test(NamedTuple):
    """A tested change of the validation data loss over `first`…`last` epoch, with its 95 % half-width."""

    change: float
    half: float
    first: int
    last: int
    window: int
    kind: str  # "trend" or "paired"
    words: str  # how the reason names the test


def _trend_test(rows: Sequence[EpochRecord], criteria: Criteria) -> _Test:
    """Least-squares slope of the per-epoch mean validation data loss on the epoch number over the last
    max(window, ⌈E/2⌉) epochs; its standard error from the residuals; t with W − 2 degrees of freedom."""
    w = max(criteria.window, 3, math.ceil(len(rows) / 2))
    late = rows[-w:]
    x = np.array([r.epoch for r in late], dtype=np.float64)
    y = np.array([r.val_data_loss for r in late], dtype=np.float64)
    xc, yc = x - x.mean(), y - y.mean()
    sxx = float(xc @ xc)
    slope = float(xc @ yc) / sxx
    residuals = yc - slope * xc
    se = math.sqrt(float(residuals @ residuals) / (len(x) - 2) / sxx)
    span = float(x[-1] - x[0])
    # the recorded losses are float32: a change below a millionth of the loss is rounding, not a trend
    half = max(t_critical(len(x) - 2) * se * span, 1e-6 * max(1.0, float(np.abs(y).max())))
    return _Test(slope * span, half, late[0].epoch, late[-1].epoch, len(late), "trend",
                 f"trend test: least-squares slope over the last {len(late)} epochs, t with {len(late) - 2} df")


def _paired_test(rows: Sequence[EpochRecord], values: ArmValidation, need: int) -> _Test | None:
    """With too few epochs for the trend test: the per-example difference last − first epoch, paired over
    the validation examples (neither epoch chosen by its loss); None without per-example values at both."""
    first, last = rows[0], rows[-1]
    a = values.at(first.epoch)
    b = values.at(last.epoch)
    if b is None:
        b = values.final
    if a is None or b is None or len(a) != len(b) or len(a) < 2:
        return None
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if not np.isfinite(d).all():
        return None
    half = t_critical(len(d) - 1) * float(d.std(ddof=1)) / math.sqrt(len(d))
    return _Test(float(d.mean()), half, first.epoch, last.epoch, 2, "paired",
                 f"paired test: per-example loss at epoch {last.epoch} − epoch {first.epoch} over {len(d)} validation "
                 f"examples: the trend test needs {need} epochs")


def _verdict(test: _Test, margin: float) -> tuple[str, bool | None, str]:
    """The trend's diagnosis, `converged`, and the reason, from the 95 % interval of the change."""
    lo, hi = test.change - test.half, test.change + test.half
    what = (f"{test.change:+.4f} over epochs {test.first}–{test.last} (95 % interval {lo:+.4f} … {hi:+.4f}; "
            f"{test.words})")
    margin = margin * max(1, test.last - test.first)  # per epoch → over the window's span
    if lo > 0:
        return OVERFITTING, True, f"validation data loss rising: {what}"
    if -margin < lo and hi < margin:
        slight = ", still falling beyond noise but by less than the margin" if hi < 0 else ""
        return GOOD, True, f"converged: the change is shown inside ±{margin:g}{slight}: {what}"
    if hi < 0:
        return IMPROVING, False, f"still falling: {what}"
    return UNSETTLED, None, f"can't tell: no trend beyond noise, nor shown inside ±{margin:g}: {what}"


def diagnose(arm: int, setting: Setting, seed: int, rows: Sequence[EpochRecord], values: ArmValidation,
             reference: Reference | None, n_train: int, criteria: Criteria = Criteria()) -> Trend:
    """The diagnosis of one arm (see the module's rules); `rows` are its epochs in order."""
    rows = [r for r in rows if math.isfinite(r.val_data_loss)]
    if not rows:
        return Trend(arm, setting, seed, 0, 0, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NO_DATA, None,
                     "no epoch with a finite validation loss was recorded", margin=criteria.trend_margin, trend=NO_DATA)
    last = rows[-1]
    best = min(rows, key=lambda r: (r.val_data_loss, r.epoch))
    common: dict[str, Any] = dict(arm=arm, setting=setting, seed=seed, epochs=len(rows), best_epoch=best.epoch,
                  best_val_data_loss=best.val_data_loss, final_val_data_loss=last.val_data_loss,
                  final_loss_gap=last.val_data_loss - last.data_loss, final_accuracy_gap=last.accuracy - last.val_accuracy,
                  margin=criteria.trend_margin)
    untested: dict[str, Any] = dict(rise=NAN, rise_noise=NAN, recent_fall=NAN, fall_noise=NAN)
    if len(rows) < criteria.min_epochs:
        return Trend(**common, **untested, diagnosis=TOO_FEW, converged=None, trend=TOO_FEW,
                     reason=f"{len(rows)} epoch recorded: a trend needs at least {criteria.min_epochs}")
    need = max(criteria.window, 3)
    test = _trend_test(rows, criteria) if len(rows) >= need else _paired_test(rows, values, need)
    if test is None:
        trend: dict[str, Any] = dict(common, **untested, trend=TOO_FEW)
        verdict, converged = TOO_FEW, None
        why = (f"{len(rows)} epochs: the trend test needs at least {need}, and no per-example validation values at "
               f"epochs {rows[0].epoch} and {last.epoch} to pair")
    else:
        verdict, converged, why = _verdict(test, criteria.trend_margin)
        trend = dict(common, rise=test.change, rise_noise=test.half, recent_fall=-test.change, fall_noise=test.half,
                     window=test.window, test=test.kind, trend=verdict)
    # underfitting: against the recommended setting's arm of the same seed
    under, shy = (_underfitting(last, reference, values.final, n_train, criteria)
                  if reference and reference.setting != setting else (None, None))
    if under:
        return Trend(**trend, diagnosis=UNDERFITTING, converged=converged, less_confident=False,
                     reason=f"{under}; trend: {why}")
    return Trend(**trend, diagnosis=verdict, converged=converged, less_confident=shy is not None,
                 reason=why if shy is None else f"{why}; {shy}")


def _underfitting(last: EpochRecord, ref: Reference, final: np.ndarray | None, n_train: int,
                  criteria: Criteria) -> tuple[str | None, str | None]:
    """(why the arm underfits against the recommended setting's arm, or None;
    why it is only less confident — higher training loss, accuracy within noise — or None)."""
    deficit = ref.accuracy - last.accuracy
    at = f"λ = {lam_label(ref.setting.strength)}'s"
    if final is not None and n_train > 0:
        p1, p2 = min(max(ref.accuracy, 0.0), 1.0), min(max(last.accuracy, 0.0), 1.0)
        acc_noise = criteria.z * math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n_train)
        spread = float(np.std(np.asarray(final, dtype=np.float64), ddof=1)) if len(final) > 1 else NAN
        loss_noise = criteria.z * math.sqrt(2) * spread / math.sqrt(n_train)
        excess = last.data_loss - ref.data_loss
        if deficit > acc_noise and deficit > 0:
            return f"train accuracy {100 * deficit:.2f} points below {at} (noise ±{100 * acc_noise:.2f})", None
        if math.isfinite(loss_noise) and excess > loss_noise:
            return None, (f"{LESS_CONFIDENT} than {at} fit, not underfitting: train data loss {excess:.4f} above it "
                          f"(noise ±{loss_noise:.4f}) while train accuracy is within noise of it "
                          f"({-100 * deficit:+.2f} points, noise ±{100 * acc_noise:.2f})")
        return None, None
    if deficit > criteria.fallback_points:
        return (f"train accuracy {100 * deficit:.1f} points below {at} "
                "(no per-example values recorded: the fallback threshold decides)"), None
    return None, None


def criteria_text(criteria: Criteria) -> list[str]:
    """The rules, as the report states them."""
    w, m = criteria.window, criteria.trend_margin
    return [
        f"trend: the least-squares slope of the per-epoch validation data loss over the last max({w}, ⌈E/2⌉) of "
        "the E epochs (a window fixed in advance: no epoch is chosen by its loss), with a 95 % Student-t interval "
        "for the change over the window from the regression's residuals (epoch-to-epoch jitter counts as noise);",
        "overfitting: the interval lies wholly above 0 (rising; a one-sided test at 2.5 %);",
        f"good fit (converged): the interval lies wholly inside ±{m:g} nats per epoch of the window's span, the "
        "stated margin (two one-sided tests at 2.5 %);",
        "still improving: the interval lies wholly below 0 and not inside the margin (not converged);",
        "can't tell: none of these — no trend beyond noise, but not shown within the margin either;",
        f"with fewer than {max(w, 3)} epochs: the same rules on the paired per-example difference last − first "
        f"epoch; without per-example values there, or with fewer than {criteria.min_epochs} epochs: too few epochs "
        "to tell;",
        "underfitting: training accuracy below the recommended strength's (same seed) beyond binomial noise "
        f"({criteria.z:.2f} standard errors; one-sided 2.5 %); a higher training data loss with accuracy within "
        f"noise is only {LESS_CONFIDENT} and keeps its trend diagnosis. Losses are penalty-free.",
    ]
