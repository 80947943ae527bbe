"""Every arm of a sweep trained at once, in compiled JAX programs, with Keras's own numbers.

The driver (`train`) owns the epochs, each seed's shuffles, early stopping, checkpoints and records; a
`Strategy` (strategy.py) holds the arms' state and advances it. Which one trains a model is a rule
(`strategy_for`), named in run.json:
- `packed` (packed.py): Flatten/Dense stacks, a seed's arms in packed Keras models.
- `per-arm-steps` / `per-arm-chunks` (per_arm.py): any other model on a CPU, each arm Keras's own
  `train_step` compiled on its own, the arms shared out to one worker thread per core.
- `vmap` (vmap.py): any other model on an accelerator, Keras's `train_step` vmapped over every arm.

One compilation serves any strengths: each arm's L1 and L2 strengths and weight decay are inputs of the
program (`Coefficients`; `TracedPenalty` stands in for a kernel's Keras regularizer while tracing). Each
seed's initial weights (and Dropout's RNG state) and per-epoch shuffles are the ones
`keras.utils.set_random_seed(seed)` gives the `keras` engine, so both engines see the same batches and
the arms of a seed share them (common random numbers).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from reglab._keras import keras
from reglab.config import SweepConfig
from reglab.data.splits import Splits
from reglab.engines.base import (
    Listener,
    Resume,
    clipped_batch,
    steps_per_epoch,
)
from reglab.engines.keras_steps import KerasSteps
from reglab.engines.per_arm import PerArmStrategy, has_convolution
from reglab.engines.strategy import Coefficients, SeedStart, Strategy, regularized_variables
from reglab.engines.vmap import VmapStrategy
from reglab.errors import RunDirError
from reglab.model.build import build_model
from reglab.record.arrays import FinalWeights
from reglab.record.checkpoint import rng_from_arrays, rng_to_arrays
from reglab.record.schema import EpochRecord

#: About this many batches per compiled scan call: progress and Ctrl-C are handled between chunks.
CHUNK_STEPS = 128


def chunk_length(n_steps: int, target: int = CHUNK_STEPS) -> int:
    """A chunk length that divides the epoch's steps evenly, so one compilation serves every chunk:
    the divisor nearest `target` within [target/2, 2·target], else the smallest one up to 8·target
    (1,563 steps → 521), else `target` (and one more compilation for the rest)."""
    if n_steps <= 2 * target:
        return max(n_steps, 1)
    near = [d for d in range(target // 2, 2 * target + 1) if n_steps % d == 0]
    if near:
        return min(near, key=lambda d: abs(d - target))
    far = [d for d in range(2 * target + 1, 8 * target + 1) if n_steps % d == 0]
    return far[0] if far else target


def _initial_weights(shape: tuple[int, ...], seed: int, n_train: int, model_spec: str = "",
                     optimizer: str = "adam", n_classes: int = 10) -> tuple[Any, SeedStart, np.random.RandomState]:
    """What the keras engine starts from for this seed: the model built right after set_random_seed(seed),
    and numpy's global RNG in the state `fit` will shuffle with."""
    keras.utils.set_random_seed(seed)
    model = build_model(model_spec, shape, 0.0, optimizer=optimizer, n_classes=n_classes)  # L2(0) marks the kernels each arm's family acts on
    start = SeedStart([np.asarray(v.value) for v in model.trainable_variables],
                      [np.asarray(v.value) for v in model.non_trainable_variables])
    rng = np.random.RandomState()
    rng.set_state(np.random.get_state())
    rng.permutation(n_train)  # Keras's `fit` spends one shuffle building the model's metrics (_symbolic_build)
    return model, start, rng


#: The strategies, by the name run.json and checkpoints give them.
STRATEGIES = ("packed", "vmap", "per-arm-steps", "per-arm-chunks")


def strategy_for(model: Any, backend: str) -> str:
    """The strategy measured to win for this model here (a rule, never a timing: records must not depend
    on how busy the machine was). Flatten/Dense stacks pack (one wide product per layer); on an accelerator
    every other model is vmapped (one wide program for every arm); on a CPU each arm runs its own program
    on the worker threads, step by step when the model has convolutions (XLA's CPU backend runs them
    about 3× slower inside a loop body), in scanned chunks otherwise. See docs/engines.md."""
    from reglab.engines.packing import pack_model

    if pack_model(model, 1) is not None:
        return "packed"
    if backend != "cpu":
        return "vmap"
    return "per-arm-steps" if has_convolution(model) else "per-arm-chunks"


def make_strategy(model: Any, learning_rates: Sequence[float], n_seeds: int, sample: tuple[np.ndarray, np.ndarray],
                  strategy: str = "auto", flags: tuple[bool, bool] = (False, False)) -> Strategy:
    """The strategy named (`auto`: `strategy_for` this model on this backend), for settings at
    `learning_rates` (each setting's, in setting order). `flags`: whether any arm has an L1 term, any a
    weight decay."""
    from reglab.engines.packed import PackedStrategy

    name = strategy_for(model, jax.default_backend()) if strategy == "auto" else strategy
    if name == "packed":
        return PackedStrategy(model, learning_rates, n_seeds, flags)
    steps = KerasSteps(model, sample, flags)
    if name == "vmap":
        return VmapStrategy(steps, learning_rates)
    if name in ("per-arm-steps", "per-arm-chunks"):
        return PerArmStrategy(steps, learning_rates, n_seeds, stepwise=name == "per-arm-steps")
    raise ValueError(f"unknown strategy {strategy!r}")


class EarlyStopping:
    """Keras's `EarlyStopping(monitor="val_data_loss", patience=P)` for every arm at once, decision for
    decision: each epoch `wait` grows; a value below the best (the first one always) becomes the best
    and resets `wait`; otherwise the arm stops once `wait >= patience` (and not after its first epoch)."""

    def __init__(self, patience: int, shape: tuple[int, int]) -> None:
        self.patience = patience
        self.best = np.full(shape, np.inf)
        self.has_best = np.zeros(shape, dtype=bool)
        self.wait = np.zeros(shape, dtype=np.int64)
        self.best_epoch = np.zeros(shape, dtype=np.int64)  # 1-based, 0 = none yet
        self.stopped_epoch = np.zeros(shape, dtype=np.int64)  # 1-based, 0 = still going

    def update(self, epoch: int, current: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """After `epoch` (1-based): (improved, stop) masks for the active arms."""
        current = np.asarray(current, dtype=np.float64)
        self.wait = np.where(active, self.wait + 1, self.wait)
        improved = active & (~self.has_best | (current < self.best))
        self.best = np.where(improved, current, self.best)
        self.has_best |= improved
        self.best_epoch = np.where(improved, epoch, self.best_epoch)
        self.wait = np.where(improved, 0, self.wait)
        stop = active & ~improved & (self.wait >= self.patience) & (epoch > 1)
        self.stopped_epoch = np.where(stop, epoch, self.stopped_epoch)
        return improved, stop

    FIELDS = ("best", "has_best", "wait", "best_epoch", "stopped_epoch")

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {f"es_{k}": getattr(self, k) for k in self.FIELDS}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        for k in self.FIELDS:
            value = arrays[f"es_{k}"]
            if value.shape != self.best.shape:
                raise ValueError(f"early-stopping state of shape {value.shape}")
            setattr(self, k, value.astype(getattr(self, k).dtype))


def _checkpoint(strategy: Strategy, state: Any, rngs: list[np.random.RandomState], status: np.ndarray, epochs_done: np.ndarray,
                epoch: int, es: EarlyStopping | None = None, best_state: Any = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The whole training state after `epoch`: every leaf of the strategy's state, each seed's shuffling RNG,
    and with early stopping its per-arm state and the best-epoch weights kept for restoring."""
    leaves = jax.device_get(jax.tree_util.tree_leaves(state))
    arrays = {f"state{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    if es is not None:
        arrays.update(es.to_arrays())
    if best_state is not None:
        arrays.update({f"best{i}": np.asarray(leaf) for i, leaf in enumerate(jax.device_get(jax.tree_util.tree_leaves(best_state)))})
    rng_meta = []
    for i, rng in enumerate(rngs):
        a, m = rng_to_arrays(rng, f"rng{i}_")
        arrays.update(a)
        rng_meta.append(m)
    L = status.shape[1]
    meta = {
        "engine": "fused", "strategy": strategy.name, "epoch": epoch, "n_state": len(leaves), "rng": rng_meta,
        "status": status.tolist(),
        "epochs_done": {str(si * L + li): int(epochs_done[si, li]) for si in range(status.shape[0]) for li in range(L)},
    }
    return arrays, meta


def check_checkpoint(meta: dict[str, Any], config: SweepConfig) -> None:
    """Raises ValueError unless `meta` has this engine's layout for `config` (before anything is printed
    or repaired; its arrays are checked against the compiled state when training resumes)."""
    if not (0 <= int(meta["epoch"]) <= config.epochs and int(meta["n_state"]) >= 1
            and len(meta["rng"]) == config.seeds and len(meta["status"]) == config.seeds
            and all(len(row) == config.n_settings for row in meta["status"])):
        raise ValueError("its layout is not this run's")


def _leaves_like(arrays: dict[str, np.ndarray], prefix: str, like: Any) -> Any:
    leaves, treedef = jax.tree_util.tree_flatten(like)
    restored = []
    for i, leaf in enumerate(leaves):
        value = arrays[f"{prefix}{i}"]
        if value.shape != tuple(leaf.shape) or value.dtype != leaf.dtype:
            raise ValueError(f"{prefix} {i} has shape {value.shape}, expected {tuple(leaf.shape)}")
        restored.append(jnp.asarray(value))
    return jax.tree_util.tree_unflatten(treedef, restored)


class Progress(NamedTuple):
    """Where training stands: each seed's shuffling RNG, each arm's status and last epoch ([seeds,
    settings]), the last epoch done, and with `restore_best` each arm's best weights so far."""

    rngs: list[np.random.RandomState]
    status: np.ndarray
    epochs_done: np.ndarray
    epoch: int
    best_state: Any


def _restore(resume: Resume, strategy: Strategy, state: Any, S: int, L: int, es: EarlyStopping | None) -> tuple[Any, Progress]:
    """The state and progress (and early-stopping state) of a fused checkpoint, checked against this
    run's own layout and strategy."""
    arrays, meta = resume
    try:
        if meta.get("engine") != "fused":
            raise ValueError("it was not written by the fused engine")
        written_by = meta.get("strategy", strategy.name)  # checkpoints before strategies were named: n_state decides
        if written_by != strategy.name:
            raise ValueError(f"it was written by the {written_by} strategy; this run uses {strategy.name}")
        if int(meta["n_state"]) != len(jax.tree_util.tree_leaves(state)):
            raise ValueError("it was not written by the fused engine for this model")
        restored = _leaves_like(arrays, "state", state)
        best_state = _leaves_like(arrays, "best", state) if "best0" in arrays else None
        if es is not None:
            es.load(arrays)
        rngs = [rng_from_arrays(arrays, f"rng{i}_", meta["rng"][i]) for i in range(S)]
        status = np.array(meta["status"], dtype=object).reshape(S, L)
        epochs_done = np.array([[int(meta["epochs_done"][str(si * L + li)]) for li in range(L)] for si in range(S)])
        epoch = int(meta["epoch"])
    except (KeyError, ValueError, TypeError, IndexError) as e:
        raise RunDirError(f"the checkpoint does not match this run ({e})") from None
    return restored, Progress(rngs, status, epochs_done, epoch, best_state)


def _without_examples(results: dict[str, Any]) -> dict[str, Any]:
    """An evaluation's metrics without the per-example values a strategy may compute with them (not fetched)."""
    return {k: v for k, v in results.items() if not k.startswith("example_")}


def train(config: SweepConfig, splits: Splits, listener: Listener, strategy: str = "auto",
          resume: Resume | None = None) -> dict[int, FinalWeights]:
    """Train every arm at once; returns each arm's final weights (original layout). With `resume`
    (a checkpoint this engine wrote), training continues after the checkpoint's epoch, exactly."""
    arms = config.arms()
    seeds = config.seed_values
    S, L = len(seeds), config.n_settings
    shape = splits.x_train.shape[1:]
    n = len(splits.x_train)
    B = clipped_batch(config.batch_size, n)  # above n: Keras's one batch of every sample, without padding to the request
    steps = steps_per_epoch(n, B)

    check = listener.check_stop
    rngs, starts = [], []
    model = None
    for s in seeds:  # about 4 ms a seed: 10,000 seeds take a while, and a stop is heard here too
        check()
        model, start, rng = _initial_weights(shape, s, n, config.model, config.optimizer, splits.info.n_classes)
        starts.append(start)
        rngs.append(rng)
    regularized_variables(model)  # refuse unsupported regularizers before compiling anything
    coef, flags = Coefficients.of(config)  # each arm's (l1, l2, weight decay), an input of the compiled program
    strat = make_strategy(model, [s.learning_rate for s in config.settings()], S, (splits.x_val[:1], splits.y_val[:1]),
                          strategy, flags)
    strat.check = check
    state = strat.initial_state(starts)
    es = EarlyStopping(config.early_stopping, (S, L)) if config.early_stopping else None
    progress = Progress(rngs, np.full((S, L), "completed", dtype=object), np.zeros((S, L), dtype=int), 0, None)
    if resume is not None:
        state, progress = _restore(resume, strat, state, S, L, es)
    listener.strategy_chosen(strat.name)  # once the checkpoint, if any, is accepted: a refused resume leaves the record as it was
    rngs, status, epochs_done, best_state = progress.rngs, progress.status, progress.epochs_done, progress.best_state
    active = status == "completed"  # diverged and early-stopped arms train no more

    x_train, y_train = jnp.asarray(splits.x_train), jnp.asarray(splits.y_train)
    val_data = strat.eval_data(splits.x_val, splits.y_val, clipped_batch(B, len(splits.x_val)))
    send_values, n_val = listener.wants_values, len(splits.x_val)  # per-example validation values, when the listener takes them

    listener.arms_started(arms, steps)
    pad = strat.pads_last_batch
    n_full = n // B
    batched = steps if pad else n_full  # steps run as full-size batches (a padded last one included)
    n_valid = np.full(batched, B, dtype=np.int32)
    if pad and n % B:
        n_valid[-1] = n % B
    chunk = chunk_length(batched)
    for epoch in range(progress.epoch + 1, config.epochs + 1):
        if not active.any():
            break
        t0 = time.perf_counter()
        perms = np.stack([rng.permutation(n).astype(np.int32) for rng in rngs])  # (seeds, n): Keras's shuffle, per seed
        if pad and n % B:
            perms = np.concatenate([perms, np.zeros((S, B - n % B), dtype=perms.dtype)], axis=1)  # masked rows
        state = strat.reset_metrics(state)
        freeze = not active.all()
        done = 0
        logs = None
        while done < batched:
            k = min(chunk, batched - done)
            idx = perms[:, done * B:(done + k) * B].reshape(S, k, B).transpose(1, 0, 2)
            state, logs = strat.train_chunk(state, x_train, y_train, idx, n_valid[done:done + k] if pad else None, coef, active, freeze)
            done += k
            listener.batches_done(arms, epoch, done)
        if not pad and n % B:  # the partial last batch, in its own shape
            state, logs = strat.train_chunk(state, x_train, y_train, perms[:, n_full * B:][None], None, coef, active, freeze)
            listener.batches_done(arms, epoch, steps)
        val = strat.evaluate(state, val_data, coef, send_values)
        val = val if send_values else _without_examples(val)  # a strategy may compute them anyway: not fetched
        sumsq, penalty = strat.kernel_stats(state, coef)
        logs, val, sumsq, penalty = jax.device_get((logs, val, sumsq, penalty))  # one transfer for every arm
        seconds = time.perf_counter() - t0
        recorded, val_metrics = [], _without_examples(val)
        if listener.wants_kernels:
            weights = strat.final_weights(state)
            listener.epoch_kernels(epoch, {arm.index: weights[arm.index // L][arm.index % L].trainable for arm in arms
                                           if status[divmod(arm.index, L)] == "completed"})
        for arm in arms:
            si, li = divmod(arm.index, L)
            if status[si, li] != "completed":  # diverged or stopped early: no more epochs
                continue
            recorded.append(arm.index)
            arm_logs, arm_val = ({k: v[si, li] for k, v in d.items()} for d in (logs, val_metrics))
            record = EpochRecord.of(arm, epoch, arm_logs, arm_val, penalty[si, li], math.sqrt(float(sumsq[si, li])), seconds)
            listener.epoch_done(record)
            epochs_done[si, li] = epoch
            if not math.isfinite(record.loss):
                status[si, li] = "diverged"
                active[si, li] = False
        if send_values and recorded:  # arm index = si·L + li: the flattened [seeds, settings] grid
            each = [np.asarray(val[k]).reshape(S * L, -1)[recorded, :n_val] for k in ("example_loss", "example_correct")]
            listener.validation_values(epoch, recorded, each[0].astype(np.float32), each[1].astype(bool))
        if es is not None:
            improved, stop = es.update(epoch, val["data_loss"], active)
            if config.restore_best and improved.any():
                best_state = strat.select(improved, state, state if best_state is None else best_state)
            status[stop] = "stopped"
            active &= ~stop
        listener.checkpoint(*_checkpoint(strat, state, rngs, status, epochs_done, epoch, es, best_state))

    if config.restore_best and best_state is not None:  # as Keras's restore_best_weights at the end of fit
        assert es is not None  # restore_best needs early stopping (SweepConfig checks it)
        state = strat.select(es.has_best, best_state, state)
    test_data = strat.eval_data(splits.x_test, splits.y_test, clipped_batch(B, len(splits.x_test)))
    test = jax.device_get(_without_examples(strat.evaluate(state, test_data, coef, False)))
    weights = strat.final_weights(state)
    finished = [(arm, str(status[divmod(arm.index, L)]), {k: float(test[k][divmod(arm.index, L)]) for k in ("loss", "accuracy", "data_loss")})
                for arm in arms]
    listener.arms_finished(finished)  # every arm ends at once here: one call, so the record is rewritten once
    return {arm.index: weights[arm.index // L][arm.index % L] for arm in arms}
