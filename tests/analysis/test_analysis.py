"""Per-arm summaries over hand-made records: the numbers the report and the terminal show; per-arm weight
statistics and diagnoses as `reglab.analyze` gives them."""

from __future__ import annotations

import math

import pytest

from helpers import hand_made_run, row
from reglab.analysis.analyze import analyze
from reglab.analysis.arms import arm_summaries
from reglab.config import SweepConfig

CONFIG = SweepConfig(lambdas=(0.0, 0.001), seeds=1, epochs=3, dataset="fake")


def test_final_and_best_values():
    rows = [
        row(0, 0.0, 1, val_data_loss=0.50, val_accuracy=0.80, kernel_norm=5.0),
        row(0, 0.0, 2, val_data_loss=0.40, val_accuracy=0.85, kernel_norm=6.0),
        row(0, 0.0, 3, val_data_loss=0.45, val_accuracy=0.85, kernel_norm=7.0, loss=0.2, penalty=0.0),
        row(1, 0.001, 1, val_data_loss=0.6, val_accuracy=0.7),
        row(1, 0.001, 2, val_data_loss=0.5, val_accuracy=0.75, penalty=0.03),
    ]
    tests = [{"loss": 0.5, "accuracy": 0.9, "data_loss": 0.45}, None]
    a, b = arm_summaries(hand_made_run(rows, CONFIG, statuses=["completed", "interrupted"], tests=tests))
    assert (a.epochs_done, a.final_loss, a.final_kernel_norm) == (3, 0.2, 7.0)
    assert (a.best_val_data_loss, a.best_val_data_loss_epoch) == (0.40, 2)
    assert (a.best_val_accuracy, a.best_val_accuracy_epoch) == (0.85, 2)  # first epoch reaching the best
    assert (a.test_accuracy, a.test_data_loss) == (0.9, 0.45)
    assert (b.status, b.epochs_done, b.final_penalty) == ("interrupted", 2, 0.03)
    assert math.isnan(b.test_accuracy)


def test_an_arm_without_epochs_or_with_nan_losses():
    rows = [row(1, 0.001, 1, val_data_loss=float("nan"), loss=float("nan"))]
    a, b = arm_summaries(hand_made_run(rows, CONFIG, statuses=["pending", "diverged"]))
    assert a.epochs_done == 0 and math.isnan(a.final_val_loss) and a.best_val_data_loss_epoch == 0
    assert b.epochs_done == 1 and math.isnan(b.best_val_data_loss) and b.best_val_data_loss_epoch == 0


def test_weight_statistics_against_the_baseline():
    import numpy as np

    from reglab.analysis.arms import NEAR_ZERO

    config = SweepConfig(lambdas=(0.0, 0.001, 0.01), seeds=2, epochs=1, dataset="fake")
    run = hand_made_run([], config)
    kernels = {
        0: np.full((4, 2), 2.0), 1: np.full((4, 2), 1.0), 2: np.array([[0.5, 0.0], [0.0, NEAR_ZERO / 2], [0, 0], [0, 0]]),
        3: np.full((4, 2), 1.0), 4: np.full((4, 2), 2.0),  # seed 1: λ = 0.001 grew the kernel; arm 5 has none
    }
    w = {x.arm: x for x in analyze(run, kernels=kernels).main.weights}
    assert sorted(w) == [0, 1, 2, 3, 4]
    assert w[0].norm == np.sqrt(32) and w[0].shrink == 1.0 and w[1].shrink == 0.5
    assert w[2].near_zero == 7 / 8 and w[2].exactly_zero == 6 / 8 and w[2].setting.strength == 0.01
    assert w[4].shrink == 2.0 and w[4].seed == 1


def test_diagnoses_classify_by_the_stated_criteria():
    """A record without per-example values: the trend test over the late window needs none (its noise is the
    residuals'); underfitting falls back to the stated accuracy threshold, and the reason says so."""
    # was 4 epochs judged by the rise from the minimum (chosen on the same data): now 8, a late window of 4
    config = SweepConfig(lambdas=(0.0, 0.001, 0.01), seeds=1, epochs=8, dataset="fake")
    curves = {  # arm: (val data loss by epoch, final train data loss, final train accuracy)
        0: ([0.50, 0.40, 0.38, 0.39, 0.42, 0.45, 0.47, 0.50], 0.1, 0.99),  # rises over the last 4 epochs
        1: ([0.50, 0.46, 0.44, 0.43, 0.42, 0.41, 0.40, 0.39], 0.36, 0.98),  # still falling: the recommended setting
        2: ([0.60, 0.58, 0.57, 0.57, 0.57, 0.57, 0.57, 0.57], 0.56, 0.95),  # flat, 3 points behind the recommended
    }
    rows = [
        row(arm, config.lambdas[arm], e + 1, val_data_loss=v, data_loss=train if e == 7 else 0.6,
            accuracy=acc if e == 7 else 0.5, val_accuracy=0.9)
        for arm, (vals, train, acc) in curves.items() for e, v in enumerate(vals)
    ]
    t = {x.arm: x for x in analyze(hand_made_run(rows, config)).main.trends}
    assert (t[0].diagnosis, t[0].best_epoch, t[0].window, t[0].test) == ("overfitting", 3, 4, "trend")
    assert t[0].rise == pytest.approx(0.078) and t[0].rise - t[0].rise_noise > 0 and "trend test" in t[0].reason
    assert t[0].final_loss_gap == pytest.approx(0.4) and t[0].final_accuracy_gap == pytest.approx(0.09)
    assert t[1].diagnosis == "still improving" and t[1].converged is False and t[1].recent_fall == pytest.approx(0.03)
    assert t[2].diagnosis == "underfitting" and "3.0 points below λ = 0.001's" in t[2].reason and "fallback" in t[2].reason
    assert t[2].trend == "good fit" and t[2].converged is True  # the underfitting arm's own trend: flat, shown settled


def test_diagnosis_without_data():
    config = SweepConfig(lambdas=(0.0,), seeds=1, epochs=2, dataset="fake")
    (t,) = analyze(hand_made_run([row(0, 0.0, 1, val_data_loss=float("nan"))], config)).main.trends
    assert t.diagnosis == "no data"
