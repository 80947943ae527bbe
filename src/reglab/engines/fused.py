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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, Union

import jax
import jax.numpy as jnp
import numpy as np

from reglab._keras import keras
from reglab.config import Arm, SweepConfig
from reglab.data.splits import Splits
from reglab.engines.arm_status import ArmStatus, ArmStatuses
from reglab.engines.base import (
    Listener,
    Resume,
    clipped_batch,
    steps_per_epoch,
)
from reglab.engines.keras_steps import ArmState, KerasSteps
from reglab.engines.per_arm import EvalChunks, PerArmStrategy, has_convolution
from reglab.engines.strategy import Coefficients, SeedStart, Strategy, regularized_variables
from reglab.engines.vmap import KerasBatches, VmapStrategy
from reglab.errors import RunDirError
from reglab.model.build import build_model
from reglab.record.arrays import FinalWeights
from reglab.record.checkpoint import rng_from_arrays, rng_to_arrays
from reglab.record.schema import EpochRecord

if TYPE_CHECKING:
    from reglab.engines.packed import GroupState, PaddedChunks

#: Every arm's training state as its strategy holds it (the driver only passes it back): vmap's one `ArmState` of
#: [seeds, settings, ...] leaves, per-arm's `ArmState` per arm, packed's `GroupState` per group.
StrategyState = Union[ArmState, "list[ArmState]", "list[GroupState]"]
#: An evaluation set in its strategy's layout (`Strategy.eval_data`).
EvalData = Union[KerasBatches, EvalChunks, "PaddedChunks"]
#: A pytree of arrays (`_leaves_like` rebuilds one of the same structure).
Tree = TypeVar("Tree")

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


@dataclass
class Progress:
    """Where training stands, everything that changes from epoch to epoch (and all a checkpoint holds
    besides early stopping's state): the strategy's state, each seed's shuffling RNG, each arm's status and
    last epoch ([seeds, settings]), the last epoch done, and with `restore_best` each arm's best weights so far."""

    state: StrategyState
    rngs: list[np.random.RandomState]
    status: ArmStatuses
    epochs_done: np.ndarray
    epoch: int = 0
    best_state: StrategyState | None = None


def _checkpoint(strategy: Strategy, progress: Progress, es: EarlyStopping | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The whole training state after `progress.epoch`: every leaf of the strategy's state, each seed's shuffling
    RNG, and with early stopping its per-arm state and the best-epoch weights kept for restoring. Statuses are
    written as strings, as they always were (`ArmStatus.recorded`)."""
    leaves = jax.device_get(jax.tree_util.tree_leaves(progress.state))
    arrays = {f"state{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    if es is not None:
        arrays.update(es.to_arrays())
    if progress.best_state is not None:
        arrays.update({f"best{i}": np.asarray(leaf) for i, leaf in enumerate(jax.device_get(jax.tree_util.tree_leaves(progress.best_state)))})
    rng_meta = []
    for i, rng in enumerate(progress.rngs):
        a, m = rng_to_arrays(rng, f"rng{i}_")
        arrays.update(a)
        rng_meta.append(m)
    S, L = progress.status.shape
    meta = {
        "engine": "fused", "strategy": strategy.name, "epoch": progress.epoch, "n_state": len(leaves), "rng": rng_meta,
        "status": progress.status.to_recorded(),
        "epochs_done": {str(si * L + li): int(progress.epochs_done[si, li]) for si in range(S) for li in range(L)},
    }
    return arrays, meta


def check_checkpoint(meta: dict[str, Any], config: SweepConfig) -> None:
    """Raises ValueError unless `meta` has this engine's layout for `config` (before anything is printed
    or repaired; its arrays are checked against the compiled state when training resumes)."""
    if not (0 <= int(meta["epoch"]) <= config.epochs and int(meta["n_state"]) >= 1
            and len(meta["rng"]) == config.seeds and len(meta["status"]) == config.seeds
            and all(len(row) == config.n_settings for row in meta["status"])):
        raise ValueError("its layout is not this run's")


def _leaves_like(arrays: dict[str, np.ndarray], prefix: str, like: Tree) -> Tree:
    leaves, treedef = jax.tree_util.tree_flatten(like)
    restored = []
    for i, leaf in enumerate(leaves):
        value = arrays[f"{prefix}{i}"]
        if value.shape != tuple(leaf.shape) or value.dtype != leaf.dtype:
            raise ValueError(f"{prefix} {i} has shape {value.shape}, expected {tuple(leaf.shape)}")
        restored.append(jnp.asarray(value))
    return jax.tree_util.tree_unflatten(treedef, restored)



def _restore(resume: Resume, strategy: Strategy, state: StrategyState, S: int, L: int, es: EarlyStopping | None) -> Progress:
    """The progress (and early-stopping state) of a fused checkpoint, checked against this run's own layout
    and strategy; `state` is this run's initial state, the layout the checkpoint's leaves must have."""
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
        status = ArmStatuses.from_recorded(meta["status"], (S, L))
        epochs_done = np.array([[int(meta["epochs_done"][str(si * L + li)]) for li in range(L)] for si in range(S)])
        epoch = int(meta["epoch"])
    except (KeyError, ValueError, TypeError, IndexError) as e:
        raise RunDirError(f"the checkpoint does not match this run ({e})") from None
    return Progress(restored, rngs, status, epochs_done, epoch, best_state)


def _without_examples(results: dict[str, Any]) -> dict[str, Any]:
    """An evaluation's metrics without the per-example values a strategy may compute with them (not fetched)."""
    return {k: v for k, v in results.items() if not k.startswith("example_")}


@dataclass(frozen=True, eq=False)
class _Batches:
    """How each epoch's shuffled rows become steps of `size` rows: `batched` full-size steps in compiled calls
    of `chunk` steps (one compilation serves them all); a strategy that pads takes the partial last batch as a
    full one (`n_valid` counts each step's real rows), any other gets it in a call of its own shape."""

    n: int
    size: int
    steps: int
    pad: bool
    batched: int
    n_valid: np.ndarray
    chunk: int

    @classmethod
    def of(cls, n: int, size: int, pad: bool) -> _Batches:
        steps = steps_per_epoch(n, size)
        batched = steps if pad else n // size  # steps run as full-size batches (a padded last one included)
        n_valid = np.full(batched, size, dtype=np.int32)
        if pad and n % size:
            n_valid[-1] = n % size
        return cls(n, size, steps, pad, batched, n_valid, chunk_length(batched))

    def shuffled(self, rngs: list[np.random.RandomState]) -> np.ndarray:
        """(seeds, rows): Keras's shuffle, per seed, with masked rows after it to fill a padded last batch."""
        perms = np.stack([rng.permutation(self.n).astype(np.int32) for rng in rngs])
        if self.pad and self.n % self.size:
            perms = np.concatenate([perms, np.zeros((len(rngs), self.size - self.n % self.size), dtype=perms.dtype)], axis=1)
        return perms

    def chunks(self, perms: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray | None, int]]:
        """Each call's rows ([steps, seeds, batch]), its steps' real row counts (padding strategies only), and
        the steps done once it has run."""
        S, B, done = perms.shape[0], self.size, 0
        while done < self.batched:
            k = min(self.chunk, self.batched - done)
            yield perms[:, done * B:(done + k) * B].reshape(S, k, B).transpose(1, 0, 2), self.n_valid[done:done + k] if self.pad else None, done + k
            done += k
        if not self.pad and self.n % B:  # the partial last batch, in its own shape
            yield perms[:, self.n_full * B:][None], None, self.steps

    @property
    def n_full(self) -> int:
        return self.n // self.size


@dataclass(frozen=True, eq=False)
class _Run:
    """What a run trains with, fixed once it is set up (what changes is `Progress`)."""

    config: SweepConfig
    listener: Listener
    arms: list[Arm]
    strat: Strategy
    coef: Coefficients
    es: EarlyStopping | None
    batches: _Batches
    x_train: Any
    y_train: Any
    val_data: EvalData
    send_values: bool  # per-example validation values, when the listener takes them
    n_val: int

    def place(self, arm: Arm) -> tuple[int, int]:
        """The arm's (seed, setting) place on the grid: arm index = si·L + li."""
        return divmod(arm.index, self.config.n_settings)


class _EpochResults(NamedTuple):
    """An epoch's numbers, fetched from the device in one transfer: training logs, validation results,
    each arm's ΣW² and penalty."""

    logs: dict[str, np.ndarray]
    val: dict[str, np.ndarray]
    sumsq: np.ndarray
    penalty: np.ndarray


def _seed_starts(config: SweepConfig, splits: Splits, check: Callable[[], None]) -> tuple[Any, list[SeedStart], list[np.random.RandomState]]:
    """Each seed's initial weights and shuffling RNG as the keras engine has them, and a model (the last
    seed's) standing for every arm's. About 4 ms a seed: 10,000 seeds take a while, so a stop is heard here too."""
    shape, n = splits.x_train.shape[1:], len(splits.x_train)
    model, starts, rngs = None, [], []
    for s in config.seed_values:
        check()
        model, start, rng = _initial_weights(shape, s, n, config.model, config.optimizer, splits.info.n_classes)
        starts.append(start)
        rngs.append(rng)
    return model, starts, rngs


def _start(strat: Strategy, starts: list[SeedStart], rngs: list[np.random.RandomState], es: EarlyStopping | None,
           resume: Resume | None, shape: tuple[int, int]) -> Progress:
    """The progress before the first epoch, or the checkpoint's (refused before the listener hears anything)."""
    state = strat.initial_state(starts)
    if resume is None:
        return Progress(state, rngs, ArmStatuses.training(shape), np.zeros(shape, dtype=int))
    return _restore(resume, strat, state, *shape, es)


def _set_up(config: SweepConfig, splits: Splits, listener: Listener, strategy: str, resume: Resume | None) -> tuple[_Run, Progress]:
    """The strategy compiled for this run, its state (fresh or resumed) and the data on the device; tells the
    listener the strategy once the checkpoint, if any, is accepted (a refused resume leaves the record as it was)."""
    S, L, n = len(config.seed_values), config.n_settings, len(splits.x_train)
    B = clipped_batch(config.batch_size, n)  # above n: Keras's one batch of every sample, without padding to the request
    model, starts, rngs = _seed_starts(config, splits, listener.check_stop)
    regularized_variables(model)  # refuse unsupported regularizers before compiling anything
    coef, flags = Coefficients.of(config)  # each arm's (l1, l2, weight decay), an input of the compiled program
    strat = make_strategy(model, [s.learning_rate for s in config.settings()], S, (splits.x_val[:1], splits.y_val[:1]),
                          strategy, flags)
    strat.check = listener.check_stop
    es = EarlyStopping(config.early_stopping, (S, L)) if config.early_stopping else None
    progress = _start(strat, starts, rngs, es, resume, (S, L))
    listener.strategy_chosen(strat.name)
    x_train, y_train = jnp.asarray(splits.x_train), jnp.asarray(splits.y_train)
    val_data = strat.eval_data(splits.x_val, splits.y_val, clipped_batch(B, len(splits.x_val)))
    run = _Run(config, listener, config.arms(), strat, coef, es, _Batches.of(n, B, strat.pads_last_batch),
               x_train, y_train, val_data, listener.wants_values, len(splits.x_val))
    listener.arms_started(run.arms, run.batches.steps)
    return run, progress


def _train_chunks(run: _Run, p: Progress, epoch: int) -> dict[str, Any]:
    """The epoch's steps for every arm still training (the others keep their state), chunk by chunk so that
    progress and Ctrl-C are handled between compiled calls; returns the metrics' running values at its end."""
    perms = run.batches.shuffled(p.rngs)
    p.state = run.strat.reset_metrics(p.state)
    active = p.status.training_mask()
    freeze = not active.all()
    logs: Any = None
    for idx, n_valid, done in run.batches.chunks(perms):
        p.state, logs = run.strat.train_chunk(p.state, run.x_train, run.y_train, idx, n_valid, run.coef, active, freeze)
        run.listener.batches_done(run.arms, epoch, done)
    return logs


def _evaluate(run: _Run, p: Progress, logs: dict[str, Any]) -> _EpochResults:
    """Validation and kernel statistics for every arm, fetched with the training logs in one transfer; the
    per-example values only when the listener takes them (a strategy may compute them anyway: not fetched)."""
    val = run.strat.evaluate(p.state, run.val_data, run.coef, run.send_values)
    val = val if run.send_values else _without_examples(val)
    sumsq, penalty = run.strat.kernel_stats(p.state, run.coef)
    return _EpochResults(*jax.device_get((logs, val, sumsq, penalty)))


def _send_kernels(run: _Run, p: Progress, epoch: int) -> None:
    """Each training arm's trainable weights at the epoch's end, before its records (a transfer of every
    arm's weights: only for a listener that asks)."""
    weights = run.strat.final_weights(p.state)
    kernels = {}
    for arm in run.arms:
        si, li = run.place(arm)
        if p.status[si, li] is ArmStatus.TRAINING:
            kernels[arm.index] = weights[si][li].trainable
    run.listener.epoch_kernels(epoch, kernels)


def _record_epoch(run: _Run, p: Progress, epoch: int, r: _EpochResults, seconds: float) -> list[int]:
    """Each training arm's EpochRecord to the listener, in arm order; an arm whose loss is not finite has
    diverged and trains no more. Returns the indices of the arms recorded."""
    recorded, val_metrics = [], _without_examples(r.val)
    for arm in run.arms:
        si, li = run.place(arm)
        if p.status[si, li] is not ArmStatus.TRAINING:  # diverged or stopped early: no more epochs
            continue
        recorded.append(arm.index)
        arm_logs, arm_val = ({k: v[si, li] for k, v in d.items()} for d in (r.logs, val_metrics))
        record = EpochRecord.of(arm, epoch, arm_logs, arm_val, r.penalty[si, li], math.sqrt(float(r.sumsq[si, li])), seconds)
        run.listener.epoch_done(record)
        p.epochs_done[si, li] = epoch
        if not math.isfinite(record.loss):
            p.status.mark((si, li), ArmStatus.DIVERGED)
    return recorded


def _send_values(run: _Run, epoch: int, val: dict[str, np.ndarray], recorded: list[int]) -> None:
    """The recorded arms' per-example validation values: rows of the flattened [seeds, settings] grid
    (arm index = si·L + li), cut to the validation set (a strategy may pad past it)."""
    n_arms = len(run.config.seed_values) * run.config.n_settings
    each = [np.asarray(val[k]).reshape(n_arms, -1)[recorded, :run.n_val] for k in ("example_loss", "example_correct")]
    run.listener.validation_values(epoch, recorded, each[0].astype(np.float32), each[1].astype(bool))


def _stop_early(run: _Run, es: EarlyStopping, p: Progress, epoch: int, data_loss: np.ndarray) -> None:
    """Early stopping's decisions for the arms still training (diverged ones no longer count); with
    `restore_best`, keeps a copy of each improved arm's weights."""
    improved, stop = es.update(epoch, data_loss, p.status.training_mask())
    if run.config.restore_best and improved.any():
        p.best_state = run.strat.select(improved, p.state, p.state if p.best_state is None else p.best_state)
    p.status.mark(stop, ArmStatus.STOPPED_EARLY)


def _run_epoch(run: _Run, p: Progress, epoch: int) -> None:
    """One epoch, told to the listener in the order it expects: batches, kernels, records, per-example
    validation values, then (after early stopping's decisions) the checkpoint."""
    t0 = time.perf_counter()
    logs = _train_chunks(run, p, epoch)
    results = _evaluate(run, p, logs)
    seconds = time.perf_counter() - t0
    if run.listener.wants_kernels:
        _send_kernels(run, p, epoch)
    recorded = _record_epoch(run, p, epoch, results, seconds)
    if run.send_values and recorded:
        _send_values(run, epoch, results.val, recorded)
    if run.es is not None:
        _stop_early(run, run.es, p, epoch, results.val["data_loss"])
    p.epoch = epoch
    run.listener.checkpoint(*_checkpoint(run.strat, p, run.es))


def _finish(run: _Run, p: Progress, splits: Splits) -> dict[int, FinalWeights]:
    """Ends every arm at once: best weights restored (as Keras's restore_best_weights at the end of `fit`),
    test metrics and statuses told in one call (the record is rewritten once); each arm's final weights."""
    state = p.state
    if run.config.restore_best and p.best_state is not None:
        assert run.es is not None  # restore_best needs early stopping (SweepConfig checks it)
        state = run.strat.select(run.es.has_best, p.best_state, state)
    test_data = run.strat.eval_data(splits.x_test, splits.y_test, clipped_batch(run.batches.size, len(splits.x_test)))
    test = jax.device_get(_without_examples(run.strat.evaluate(state, test_data, run.coef, False)))
    weights = run.strat.final_weights(state)
    p.status.finish()
    finished = [(arm, p.status[run.place(arm)].recorded, {k: float(test[k][run.place(arm)]) for k in ("loss", "accuracy", "data_loss")})
                for arm in run.arms]
    run.listener.arms_finished(finished)
    return {arm.index: weights[arm.index // run.config.n_settings][arm.index % run.config.n_settings] for arm in run.arms}


def train(config: SweepConfig, splits: Splits, listener: Listener, strategy: str = "auto",
          resume: Resume | None = None) -> dict[int, FinalWeights]:
    """Train every arm at once; returns each arm's final weights (original layout). With `resume`
    (a checkpoint this engine wrote), training continues after the checkpoint's epoch, exactly."""
    run, progress = _set_up(config, splits, listener, strategy, resume)
    for epoch in range(progress.epoch + 1, config.epochs + 1):
        if not progress.status.training_mask().any():  # diverged and early-stopped arms train no more
            break
        _run_epoch(run, progress, epoch)
    return _finish(run, progress, splits)
