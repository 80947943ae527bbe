"""The keras engine against Keras itself: the record must be what a bare `model.fit` reports."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import Collect, original_study_fit, small_splits
from reglab.config import FLOAT32_TINY, Arm, SweepConfig
from reglab.engines.keras_fit import train_arm


def run_arm(lam: float, seed: int = 0, epochs: int = 2, splits=None):
    splits = splits or small_splits()
    config = SweepConfig(lambdas=(lam,), seeds=1, epochs=epochs, batch_size=32, dataset="mnist-5k")
    listener = Collect()
    history = train_arm(config, splits, Arm(0, lam, seed), listener)
    return listener, history


@pytest.mark.slow
@pytest.mark.parametrize("lam", [0.0, 1e-3, 1e-2])
def test_record_equals_history_of_a_bare_fit(lam):
    splits = small_splits()
    listener, _ = run_arm(lam, seed=3, splits=splits)
    _, reference = original_study_fit(splits, lam, seed=3, epochs=2)
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        assert [getattr(r, key) for r in listener.records] == reference.history[key], key
    assert [r.epoch for r in listener.records] == [1, 2]
    assert listener.steps == 10  # 300 samples at batch 32: the last batch is partial
    assert listener.batches == 20


@pytest.mark.parametrize("lam", [0.0, 1e-4, 1e-2])
def test_val_loss_is_val_data_loss_plus_penalty(lam):
    listener, _ = run_arm(lam)
    for r in listener.records:
        assert r.val_loss == pytest.approx(r.val_data_loss + r.penalty, rel=2e-6, abs=1e-6)
        if lam == 0:
            assert r.penalty == 0.0 and r.data_loss == r.loss and r.val_data_loss == r.val_loss
        else:
            assert r.penalty > 0
            assert r.penalty == pytest.approx(lam * r.kernel_norm**2, rel=1e-5)
            # training loss is a running mean with changing weights: it includes some penalty, not exactly the end one
            assert r.loss > r.data_loss


def test_test_metrics_are_keras_evaluate():
    splits = small_splits()
    listener, history = run_arm(1e-3, splits=splits)
    (_, status, test), = listener.finished
    assert status == "completed"
    model = history.model
    ref = model.evaluate(splits.x_test, splits.y_test, batch_size=32, verbose=0, return_dict=True)
    assert test["accuracy"] == pytest.approx(float(ref["accuracy"]))
    assert test["loss"] == pytest.approx(float(ref["loss"]))
    assert test["data_loss"] <= test["loss"]


def test_kernel_norm_is_the_hidden_kernel_frobenius_norm():
    listener, history = run_arm(1e-3)
    kernel = np.asarray(history.model.layers[1].kernel, dtype=np.float64)
    assert listener.records[-1].kernel_norm == pytest.approx(np.linalg.norm(kernel), rel=1e-12)


def test_stronger_lambda_leaves_a_smaller_kernel_on_the_seed_grid():
    norms = [run_arm(lam)[0].records[-1].kernel_norm for lam in (0.0, 1e-4, 1e-3, 1e-2)]
    assert norms == sorted(norms, reverse=True) and len(set(norms)) == 4, norms


@pytest.mark.slow
@settings(max_examples=4, deadline=None, derandomize=True)
@given(
    small=st.one_of(st.just(0.0), st.floats(min_value=FLOAT32_TINY, max_value=1e-3)),  # what a config admits
    factor=st.floats(min_value=10.0, max_value=1000.0),
    seed=st.integers(min_value=0, max_value=50),
)
def test_alpha_property_larger_lambda_smaller_norm(small, factor, seed):
    """scikit-learn's test_alpha, for us: with the same seed, the larger λ leaves the smaller kernel."""
    big = max(small * factor, 1e-3)
    n_small = run_arm(small, seed=seed)[0].records[-1].kernel_norm
    n_big = run_arm(big, seed=seed)[0].records[-1].kernel_norm
    assert n_big < n_small


def test_a_diverging_arm_is_marked_and_stopped():
    listener, _ = run_arm(1e38, epochs=3)
    (_, status, _), = listener.finished
    assert status == "diverged"
    assert len(listener.records) == 1 and not math.isfinite(listener.records[0].loss)
