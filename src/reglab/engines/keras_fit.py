"""The reference engine: one plain Keras `model.fit` per arm, exactly the original study's code path.

Every later engine is checked against this one. The only additions to the original are a metric
(`data_loss`, the cross-entropy without penalty) and a callback that reads the end-of-epoch kernel;
neither changes the training (see tests/test_keras_fit.py, which compares with a bare `fit`).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from .._keras import keras
from ..config import Arm, SweepConfig
from ..datasets import Splits
from ..models import REGULARIZED_LAYER, build_seed_model, regularized_kernel
from ..record import EpochRecord
from . import Listener, steps_per_epoch


def train(config: SweepConfig, splits: Splits, listener: Listener) -> dict[int, list[np.ndarray]]:
    """Train arm after arm; returns each arm's final trainable weights."""
    weights = {}
    for arm in config.arms():
        history = train_arm(config, splits, arm, listener)
        weights[arm.index] = [np.asarray(v.value) for v in history.model.trainable_variables]
    return weights


def train_arm(config: SweepConfig, splits: Splits, arm: Arm, listener: Listener) -> Any:
    """Train one arm with `fit`; returns Keras's History (for tests that compare with it)."""
    keras.utils.set_random_seed(arm.seed)  # initialization and fit's shuffling (numpy's global RNG)
    model = build_seed_model(splits.x_train.shape[1:], arm.lam)
    listener.arms_started([arm], steps_per_epoch(len(splits.x_train), config.batch_size))
    watcher = _EpochWatcher(arm, listener)
    history = model.fit(
        splits.x_train, splits.y_train,
        epochs=config.epochs, batch_size=config.batch_size,
        validation_data=(splits.x_val, splits.y_val),
        callbacks=[watcher], verbose=0,
    )
    test = model.evaluate(splits.x_test, splits.y_test, batch_size=config.batch_size, verbose=0, return_dict=True)
    listener.arm_finished(
        arm, "diverged" if watcher.diverged else "completed",
        {"loss": float(test["loss"]), "accuracy": float(test["accuracy"]), "data_loss": float(test["data_loss"])},
    )
    return history


def kernel_stats(model: Any) -> tuple[float, float]:
    """(penalty, kernel_norm): λ·ΣW² exactly as Keras adds it (float32), and ‖W‖_F in float64."""
    layer = model.get_layer(REGULARIZED_LAYER)
    kernel = regularized_kernel(model)
    penalty = float(np.asarray(layer.kernel_regularizer(kernel)))
    w = np.asarray(kernel, dtype=np.float64)
    return penalty, float(np.sqrt(np.sum(w * w)))


class _EpochWatcher(keras.callbacks.Callback):
    """Turns each epoch's logs into an `EpochRecord`; stops an arm whose loss is no longer finite."""

    def __init__(self, arm: Arm, listener: Listener) -> None:
        super().__init__()
        self.arm, self.listener = arm, listener
        self.diverged = False
        self._t0 = 0.0
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._t0 = time.perf_counter()
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.listener.batches_done([self.arm], self._epoch, batch + 1)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        seconds = time.perf_counter() - self._t0
        penalty, norm = kernel_stats(self.model)
        record = EpochRecord(
            arm=self.arm.index, lam=self.arm.lam, seed=self.arm.seed, epoch=epoch + 1,
            loss=float(logs["loss"]), val_loss=float(logs["val_loss"]),
            accuracy=float(logs["accuracy"]), val_accuracy=float(logs["val_accuracy"]),
            data_loss=float(logs["data_loss"]), val_data_loss=float(logs["val_data_loss"]),
            penalty=penalty, kernel_norm=norm, seconds=seconds,
        )
        self.listener.epoch_done(record)
        if not math.isfinite(record.loss):
            self.diverged = True
            self.model.stop_training = True
