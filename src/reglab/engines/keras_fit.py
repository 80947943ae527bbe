"""The reference engine: one plain Keras `model.fit` per arm, exactly the original study's code path.

Every later engine is checked against this one. The only additions to the original are a metric
(`data_loss`, the cross-entropy without penalty) and a callback that reads the end-of-epoch kernel and
scores each validation example with the end-of-epoch weights; none of them changes the training (see
tests/test_keras_fit.py, which compares with a bare `fit`).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from reglab._keras import keras
from reglab.config import Arm, SweepConfig
from reglab.data.splits import Splits
from reglab.engines.base import Listener, Resume, clipped_batch, steps_per_epoch
from reglab.errors import RunDirError
from reglab.model.build import build_model, penalty_and_norm
from reglab.record.arrays import FinalWeights
from reglab.record.checkpoint import rng_from_arrays, rng_to_arrays
from reglab.record.schema import EpochRecord


def train(config: SweepConfig, splits: Splits, listener: Listener, resume: Resume | None = None) -> dict[int, FinalWeights]:
    """Train arm after arm; returns each arm's final weights. With `resume` (a checkpoint this
    engine wrote), finished arms are not trained again and the arm in progress continues after its
    last recorded epoch, with its weights, optimizer state and numpy's shuffling RNG as they were."""
    progress = _Progress.restore(resume) if resume is not None else _Progress()
    for arm in config.arms():
        if arm.index in progress.finished:
            continue
        start = progress.current if progress.current and progress.current["arm"] == arm.index else None
        history = train_arm(config, splits, arm, listener, progress=progress, start=start)
        final = FinalWeights([np.asarray(v.value) for v in history.model.trainable_variables],
                             [np.asarray(v.value) for v in history.model.non_trainable_variables])
        progress.finished[arm.index] = (progress.status, final)
        progress.current = None
        listener.checkpoint(*progress.checkpoint(None))  # this arm is done: a resume never trains it again
    return {i: w for i, (_, w) in sorted(progress.finished.items())}


def check_checkpoint(meta: dict[str, Any], config: SweepConfig) -> None:
    """Raises ValueError unless `meta` has this engine's layout for `config`: finished arms and the arm in
    progress within the sweep (their arrays are checked when the arm's model is restored)."""
    n_arms = len(config.arms())
    if not isinstance(meta["finished"], dict) or not all(0 <= int(i) < n_arms for i in meta["finished"]):
        raise ValueError("its finished arms are not this run's")
    current = meta["current"]
    if current is not None and not (0 <= int(current["arm"]) < n_arms and 0 <= int(current["epoch"]) <= config.epochs):
        raise ValueError("its arm in progress is not this run's")


def train_arm(config: SweepConfig, splits: Splits, arm: Arm, listener: Listener, progress: _Progress | None = None,
              start: dict[str, Any] | None = None) -> Any:
    """Train one arm with `fit` (from a checkpoint's epoch with `start`); returns Keras's History."""
    progress = progress if progress is not None else _Progress()
    keras.utils.set_random_seed(arm.seed)  # initialization and fit's shuffling (numpy's global RNG)
    model = build_model(config.model, splits.x_train.shape[1:], arm.strength, arm.family, arm.learning_rate, config.optimizer,
                        splits.info.n_classes)
    initial_epoch, diverged = 0, False
    es_state = None
    if start is not None:
        initial_epoch, diverged = progress.restore_model(model, start, (splits.x_val[:1], splits.y_val[:1]))
        es_state = progress.early_stopping_state(start)
    batch = clipped_batch(config.batch_size, len(splits.x_train))  # the same batches as the requested size
    listener.arms_started([arm], steps_per_epoch(len(splits.x_train), batch))
    stopper = _EarlyStopping(config.early_stopping, config.restore_best, es_state) if config.early_stopping else None
    examples = (_ValidationExamples(splits.x_val, splits.y_val, clipped_batch(config.batch_size, len(splits.x_val)))
                if listener.wants_values else None)
    watcher = _EpochWatcher(arm, listener, progress, stopper, examples)
    watcher.diverged = diverged
    history = keras.callbacks.History()
    history.set_model(model)
    stopped = bool(es_state and es_state["stopped_epoch"])
    if initial_epoch < config.epochs and not diverged and not stopped:
        history = model.fit(
            splits.x_train, splits.y_train,
            epochs=config.epochs, initial_epoch=initial_epoch, batch_size=batch,
            validation_data=(splits.x_val, splits.y_val),
            validation_batch_size=clipped_batch(config.batch_size, len(splits.x_val)),  # fit's default: batch_size
            callbacks=([stopper] if stopper else []) + [watcher], verbose=0,  # the stopper decides before the record
        )
    elif stopper is not None and config.restore_best and stopper.best_weights is not None:
        model.set_weights(stopper.best_weights)  # what fit's on_train_end did before the interruption
    test = model.evaluate(splits.x_test, splits.y_test, batch_size=clipped_batch(config.batch_size, len(splits.x_test)),
                          verbose=0, return_dict=True)
    progress.status = "diverged" if watcher.diverged else "stopped" if stopper is not None and stopper.stopped_epoch else "completed"
    listener.arm_finished(
        arm, progress.status,
        {"loss": float(test["loss"]), "accuracy": float(test["accuracy"]), "data_loss": float(test["data_loss"])},
    )
    return history


class _Progress:
    """What a checkpoint of this engine holds: finished arms (status, final weights), the arm in progress
    (its epoch, weights, optimizer state, numpy's RNG), and every arm's recorded epochs."""

    def __init__(self) -> None:
        self.finished: dict[int, tuple[str, FinalWeights]] = {}
        self.current: dict[str, Any] | None = None
        self.epochs_done: dict[int, int] = {}
        self.status = "completed"
        self.arrays: dict[str, np.ndarray] = {}

    def checkpoint(self, model: Any, arm: int = -1, epoch: int = 0, diverged: bool = False,
                   stopper: _EarlyStopping | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {"engine": "keras", "finished": {}, "current": None,
                                "epochs_done": {str(a): e for a, e in sorted(self.epochs_done.items())}}
        for i, (status, weights) in sorted(self.finished.items()):
            meta["finished"][str(i)] = {"status": status, "n": len(weights.trainable)}
            if weights.non_trainable is not None:
                meta["finished"][str(i)]["n_non_trainable"] = len(weights.non_trainable)
                arrays.update({f"final{i}_n{k}": w for k, w in enumerate(weights.non_trainable)})
            arrays.update({f"final{i}_{k}": w for k, w in enumerate(weights.trainable)})
        if model is not None:
            groups = {"t": model.trainable_variables, "n": model.non_trainable_variables, "o": model.optimizer.variables}
            for g, variables in groups.items():
                arrays.update({f"cur_{g}{k}": np.asarray(v.value) for k, v in enumerate(variables)})
            rng_arrays, rng_meta = rng_to_arrays(_global_rng(), "rng_")
            arrays.update(rng_arrays)
            meta["current"] = {"arm": arm, "epoch": epoch, "diverged": diverged, "rng": rng_meta,
                               **{f"n_{g}": len(v) for g, v in groups.items()}}
            if stopper is not None:
                es_meta, es_arrays = stopper.state()
                meta["current"]["early_stopping"] = es_meta
                arrays.update(es_arrays)
        return arrays, meta

    def early_stopping_state(self, start: dict[str, Any]) -> dict[str, Any] | None:
        es = start.get("early_stopping")
        if es is None:
            return None
        try:
            weights = [self.arrays[f"es_w{k}"] for k in range(int(es["n_weights"]))]
        except (KeyError, TypeError, ValueError) as e:
            raise RunDirError(f"the checkpoint does not match this run ({e})") from None
        return {**es, "best_weights": weights or None}

    @classmethod
    def restore(cls, resume: Resume) -> _Progress:
        arrays, meta = resume
        p = cls()
        try:
            if meta.get("engine") != "keras":
                raise ValueError("it was not written by the keras engine")
            for i, f in meta["finished"].items():
                # a checkpoint from before non-trainable weights were kept: `FinalWeights.non_trainable` unknown (None)
                nt = [arrays[f"final{i}_n{k}"] for k in range(int(f["n_non_trainable"]))] if "n_non_trainable" in f else None
                p.finished[int(i)] = (str(f["status"]), FinalWeights([arrays[f"final{i}_{k}"] for k in range(int(f["n"]))], nt))
            p.epochs_done = {int(a): int(e) for a, e in meta["epochs_done"].items()}
            p.current = meta["current"]
            p.arrays = arrays
        except (KeyError, ValueError, TypeError) as e:
            raise RunDirError(f"the checkpoint does not match this run ({e})") from None
        return p

    def restore_model(self, model: Any, start: dict[str, Any], sample: tuple[np.ndarray, np.ndarray]) -> tuple[int, bool]:
        """Load the arm in progress into a freshly built `model`; returns (epochs done, diverged)."""
        # build the loss and metrics as `fit` would, without `fit`'s extra shuffle (numpy's RNG is set below)
        model.evaluate(*sample, verbose=0)
        model.optimizer.build(model.trainable_variables)
        groups = {"t": model.trainable_variables, "n": model.non_trainable_variables, "o": model.optimizer.variables}
        try:
            for g, variables in groups.items():
                if int(start[f"n_{g}"]) != len(variables):
                    raise ValueError(f"{len(variables)} variables where the checkpoint has {start[f'n_{g}']}")
                for k, v in enumerate(variables):
                    value = self.arrays[f"cur_{g}{k}"]
                    if tuple(value.shape) != tuple(v.shape):
                        raise ValueError(f"a variable of shape {value.shape}, expected {tuple(v.shape)}")
                    v.assign(value)
            np.random.set_state(rng_from_arrays(self.arrays, "rng_", start["rng"]).get_state())
        except (KeyError, ValueError, TypeError) as e:
            raise RunDirError(f"the checkpoint does not match this run ({e})") from None
        return int(start["epoch"]), bool(start["diverged"])


class _EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's own EarlyStopping on the penalty-free validation loss, whose state survives a resume
    (`fit` resets it in `on_train_begin`; a resumed fit gets it back right after)."""

    def __init__(self, patience: int, restore_best: bool, state: dict[str, Any] | None) -> None:
        super().__init__(monitor="val_data_loss", mode="min", patience=patience, restore_best_weights=restore_best)
        self._resumed = state
        if state is not None:
            self._load(state)

    def _load(self, state: dict[str, Any]) -> None:
        self.wait, self.best_epoch, self.stopped_epoch = int(state["wait"]), int(state["best_epoch"]), int(state["stopped_epoch"])
        self.best = None if state["best"] is None else float(state["best"])
        self.best_weights = state.get("best_weights")

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        if self._resumed is not None:
            self._load(self._resumed)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        weights = self.best_weights or []
        meta = {"wait": int(self.wait), "best": None if self.best is None else float(self.best),
                "best_epoch": int(self.best_epoch), "stopped_epoch": int(self.stopped_epoch), "n_weights": len(weights)}
        return meta, {f"es_w{k}": np.asarray(w) for k, w in enumerate(weights)}


def _global_rng() -> np.random.RandomState:
    rng = np.random.RandomState()
    rng.set_state(np.random.get_state())
    return rng


class _ValidationExamples:
    """Each validation example's data loss and correctness under a model's end-of-epoch weights: the model's
    own forward pass (`predict`, training=False, in `fit`'s validation batches) scored by Keras's
    `sparse_categorical_crossentropy` and `sparse_categorical_accuracy`, the functions behind the
    `val_data_loss` and `val_accuracy` metrics. It draws no random numbers and changes no variable, so the
    training (and a resume) is the same with it or without."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size

    def __call__(self, model: Any) -> tuple[np.ndarray, np.ndarray]:
        y_pred = model.predict(self.x, batch_size=self.batch_size, verbose=0)
        loss = np.asarray(keras.losses.sparse_categorical_crossentropy(self.y, y_pred), dtype=np.float32)
        correct = np.asarray(keras.metrics.sparse_categorical_accuracy(self.y, y_pred)) > 0.5
        return loss, correct


class _EpochWatcher(keras.callbacks.Callback):
    """Turns each epoch's logs into an `EpochRecord` (and, with `examples`, the epoch's per-example validation
    values); stops an arm whose loss is no longer finite. Called after `fit`'s validation, before the
    checkpoint of the epoch is taken."""

    def __init__(self, arm: Arm, listener: Listener, progress: _Progress, stopper: _EarlyStopping | None = None,
                 examples: _ValidationExamples | None = None) -> None:
        super().__init__()
        self.arm, self.listener, self.progress, self.stopper, self.examples = arm, listener, progress, stopper, examples
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
        penalty, norm = penalty_and_norm(self.model)  # λ·ΣW² as Keras adds it; ‖W‖ in float64
        val = {k[len("val_"):]: v for k, v in logs.items() if k.startswith("val_")}
        record = EpochRecord.of(self.arm, epoch + 1, logs, val, penalty, norm, seconds)
        if self.listener.wants_kernels:
            self.listener.epoch_kernels(epoch + 1, {self.arm.index: [np.asarray(v.value) for v in self.model.trainable_variables]})
        self.listener.epoch_done(record)
        if self.examples is not None:
            loss, correct = self.examples(self.model)
            self.listener.validation_values(epoch + 1, [self.arm.index], loss[None], correct[None])
        self.progress.epochs_done[self.arm.index] = epoch + 1
        if not math.isfinite(record.loss):
            self.diverged = True
            self.model.stop_training = True
        self.listener.checkpoint(*self.progress.checkpoint(self.model, self.arm.index, epoch + 1, self.diverged, self.stopper))
