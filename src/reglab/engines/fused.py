"""Every arm of a sweep trained at once, in compiled JAX programs, with Keras's own numbers.

The driver (`train`) is shared; a strategy holds the arms' state and the compiled step:
- `PackedStrategy` (packing.py), for Flatten/Dense networks: a seed's arms in packed Keras models
  (one arm per group on a CPU, up to 25 on an accelerator), each group a call of one compiled program,
  taken in turn by one worker thread per core. The fast path.
- `VmapStrategy` (here), for any model: Keras's own `train_step`/`test_step`, `jax.vmap`ped over a
  (seeds × settings) grid; the outer vmap runs over seeds (each with its own batches), the inner one over
  the seed's (regularizer, λ) settings (arms of one seed share the batch).

One compilation serves any strengths: each arm's L1 and L2 strengths and weight decay are inputs of the
program (`Coefficients`; `TracedPenalty` stands in for a kernel's Keras regularizer while tracing). Each seed's initial weights and per-epoch shuffles are
the ones `keras.utils.set_random_seed(seed)` gives the `keras` engine, so both engines see the same
batches and the same arms share them (common random numbers).
"""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._keras import keras
from ..checkpoint import rng_from_arrays, rng_to_arrays
from ..config import Arm, SweepConfig, parse_family
from ..datasets import Splits
from ..errors import ConfigError, RunDirError
from .. import models
from ..models import build_model
from ..record import EpochRecord
from . import Listener, Resume, clipped_batch, steps_per_epoch, wants_values

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


class Coefficients(NamedTuple):
    """Each arm's regularization as three [seeds, settings] float32 arrays: the L1 and L2 strengths of its
    penalty and its decoupled weight decay (see config.parse_family), and which of them the sweep uses
    at all (static: a pure L2 sweep compiles no L1 or decay arithmetic)."""

    l1: Any
    l2: Any
    wd: Any

    @staticmethod
    def of(config: SweepConfig) -> tuple["Coefficients", tuple[bool, bool]]:
        parts = [parse_family(family)[1:] for family, _ in config.settings()]
        lams = [lam for _, lam in config.settings()]
        S = len(config.seed_values)
        # the Python-float products Keras's regularizers and optimizer hold, cast to float32 as they cast them
        grid = [np.broadcast_to(np.asarray([m[i] * lam for m, lam in zip(parts, lams)], dtype=np.float32), (S, len(lams))).copy()
                for i in range(3)]
        flags = (any(m[0] > 0 for m in parts), any(m[2] > 0 for m in parts))
        return Coefficients(*(jnp.asarray(g) for g in grid)), flags


class TracedPenalty:
    """Keras's `L1L2` formula (`l1 * sum(abs(x)) + l2 * sum(square(x))`; `L2`'s alone when the sweep has
    no L1 term), with the strengths set to traced per-arm values while tracing."""

    def __init__(self, has_l1: bool) -> None:
        self.has_l1 = has_l1
        self.l1: Any = None
        self.l2: Any = None

    def __call__(self, x: Any) -> Any:
        l2_term = self.l2 * keras.ops.sum(keras.ops.square(x))
        return self.l1 * keras.ops.sum(keras.ops.absolute(x)) + l2_term if self.has_l1 else l2_term


def regularized_variables(model: Any) -> list[Any]:
    """The model's regularized variables, checked: L1, L2 or L1L2 (the sweep sets their strengths)."""
    found = models.regularized_variables(model)
    for v in found:
        if not isinstance(v.regularizer, (keras.regularizers.L2, keras.regularizers.L1, keras.regularizers.L1L2, TracedPenalty)):
            raise ConfigError(f"the fused engine sweeps L1, L2 and L1L2 regularizers; {v.path} has {type(v.regularizer).__name__}")
    if not found:
        raise ConfigError("the model declares no kernel_regularizer: nothing for λ to act on")
    return found


class VmapStrategy:
    """The general path: Keras's own `train_step`/`test_step`, vmapped over (seed, λ) arms.

    Works for any Keras model whose regularizers are L2; slower than packing on a CPU because the
    vmapped products become batched matmuls with layout copies (see packing.py).
    """

    def __init__(self, model: Any, n_lams: int, sample: tuple[np.ndarray, np.ndarray], flags: tuple[bool, bool] = (False, False)) -> None:
        reg_vars = regularized_variables(model)
        self.has_l1, self.has_wd = flags
        if self.has_wd:  # decay the regularized kernels only, as the keras engine's AdamW arms do
            ids = {id(v) for v in reg_vars}
            model.optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if id(v) not in ids])
        # build the model's metrics and optimizer state as `fit` would, before its regularizers are swapped
        model.evaluate(*sample, verbose=0)
        model.optimizer.build(model.trainable_variables)
        self.penalties = []
        for v in reg_vars:
            p = TracedPenalty(self.has_l1)
            v.regularizer = p
            self.penalties.append(p)
        self.model, self.n_lams = model, n_lams
        self._reg_index = [i for i, v in enumerate(model.trainable_variables) if any(v is r for r in reg_vars)]
        model.reset_metrics()
        self._metric_zeros = [np.asarray(v.value) for v in model.metrics_variables]
        self._non_trainable = [np.asarray(v.value) for v in model.non_trainable_variables]
        self._opt_init = [np.asarray(v.value) for v in model.optimizer.variables]

    def final_weights(self, state: tuple) -> list[list[list[np.ndarray]]]:
        trainable = [np.asarray(v) for v in state[0]]
        S, L = trainable[0].shape[:2]
        return [[[np.array(v[s, l]) for v in trainable] for l in range(L)] for s in range(S)]

    def _grid(self, values: list[Any], n_seeds: int) -> list[Any]:
        return [jnp.asarray(np.broadcast_to(np.asarray(v), (n_seeds, self.n_lams) + np.shape(v)).copy()) for v in values]

    def initial_state(self, per_seed_values: list[list[np.ndarray]]) -> tuple:
        S = len(per_seed_values)
        trainable = [jnp.asarray(np.broadcast_to(np.stack(leaves)[:, None], (S, self.n_lams) + leaves[0].shape).copy())
                     for leaves in zip(*per_seed_values)]
        return (trainable, self._grid(self._non_trainable, S), self._grid(self._opt_init, S), self._grid(self._metric_zeros, S))

    def make_functions(self) -> dict[str, Any]:
        model = self.model

        def set_coef(coef: Any) -> None:
            for p in self.penalties:
                p.l1, p.l2 = coef[0], coef[1]
            if self.has_wd:  # Keras's optimizer reads it while applying the update (`_apply_weight_decay`)
                model.optimizer.weight_decay = coef[2]

        def one_train_step(state, x, y, coef):
            set_coef(coef)
            return model.train_step(state, (x, y))

        def one_test_step(state, x, y, coef):
            set_coef(coef)
            return model.test_step(state, (x, y))

        # inner vmap: arms of one seed share the batch; outer vmap: seeds, each with its own batch
        train_step = jax.vmap(jax.vmap(one_train_step, in_axes=(0, None, None, 0)), in_axes=(0, 0, 0, 0))
        test_step = jax.vmap(jax.vmap(one_test_step, in_axes=(0, None, None, 0)), in_axes=(0, None, None, 0))
        metric_zeros = self._metric_zeros

        def freeze(active, new, old):
            def pick(n, o):
                return jnp.where(active.reshape(active.shape + (1,) * (n.ndim - active.ndim)), n, o)
            return jax.tree_util.tree_map(pick, new, old)

        def train_chunk(state, x_all, y_all, idx, coef, active, do_freeze):
            def body(state, idx_t):
                logs, new_state = train_step(state, x_all[idx_t], y_all[idx_t], coef)
                return new_state, logs
            new_state, logs = jax.lax.scan(body, state, idx)
            if do_freeze:
                new_state = freeze(active, new_state, state)
            return new_state, jax.tree_util.tree_map(lambda a: a[-1], logs)

        def evaluate(state, x_batches, y_batches, x_last, y_last, coef):
            zeros = [jnp.broadcast_to(z, coef[0].shape + z.shape) for z in metric_zeros]
            st = (state[0], state[1], zeros)

            def body(st, xy):
                logs, st = test_step(st, xy[0], xy[1], coef)
                return st, logs
            st, logs = jax.lax.scan(body, st, (x_batches, y_batches))
            logs = jax.tree_util.tree_map(lambda a: a[-1], logs)
            if x_last is not None:
                logs, st = test_step(st, x_last, y_last, coef)
            return logs

        def one_examples(trainable, non_trainable, x, y):
            """One arm's per-example values on one batch, from the forward pass `test_step` makes (training=False):
            the cross-entropy its `data_loss` metric averages and whether the prediction is right."""
            y_pred, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return (keras.losses.sparse_categorical_crossentropy(y, y_pred),
                    keras.metrics.sparse_categorical_accuracy(y, y_pred) > 0.5)

        examples_step = jax.vmap(jax.vmap(one_examples, in_axes=(0, 0, None, None)), in_axes=(0, 0, None, None))

        def evaluate_examples(state, x_batches, y_batches, x_last, y_last, coef, n_examples):
            """`evaluate`'s metrics, and each arm's per-example values: `example_loss` and `example_correct`,
            [seeds, settings, n_examples] (a second forward pass: `test_step` keeps no per-example values)."""
            logs = dict(evaluate(state, x_batches, y_batches, x_last, y_last, coef))
            _, each = jax.lax.scan(lambda c, xy: (c, examples_step(state[0], state[1], xy[0], xy[1])), None,
                                   (x_batches, y_batches))
            parts = [jnp.reshape(jnp.moveaxis(a, 0, 2), a.shape[1:3] + (-1,)) for a in each]  # [S, L, batches·B]
            if x_last is not None:
                parts = [jnp.concatenate([p, q], axis=2) for p, q in zip(parts, examples_step(state[0], state[1], x_last, y_last))]
            logs.update(example_loss=parts[0], example_correct=parts[1])
            return logs

        def kernel_stats(state, coef):
            def total(f):
                return sum(jnp.sum(f(state[0][i]), axis=tuple(range(2, state[0][i].ndim))) for i in self._reg_index)
            sumsq = total(jnp.square)
            penalty = (coef[0] * total(jnp.abs) + coef[1] * sumsq) if self.has_l1 else coef[1] * sumsq
            return sumsq, penalty

        def reset_metrics(state):
            return (state[0], state[1], state[2], [jnp.broadcast_to(z, state[0][0].shape[:2] + z.shape) for z in metric_zeros])

        return {
            "train_chunk": jax.jit(train_chunk, donate_argnums=(0,), static_argnums=(6,)),
            "evaluate": jax.jit(evaluate),
            "evaluate_examples": jax.jit(evaluate_examples, static_argnums=(6,)),  # (…, coef, n_examples)
            "kernel_stats": jax.jit(kernel_stats),
            "reset_metrics": jax.jit(reset_metrics, donate_argnums=(0,)),
            "select": jax.jit(freeze),  # (mask [S, L], a, b): a's arms where mask, else b's
        }


def _initial_weights(shape: tuple[int, ...], seed: int, n_train: int, model_spec: str = "") -> tuple[Any, list[np.ndarray], np.random.RandomState]:
    """What the keras engine starts from for this seed: the model built right after set_random_seed(seed),
    and numpy's global RNG in the state `fit` will shuffle with."""
    keras.utils.set_random_seed(seed)
    model = build_model(model_spec, shape, 0.0)  # L2(0) marks the kernels each arm's family acts on
    values = [np.asarray(v.value) for v in model.trainable_variables]
    rng = np.random.RandomState()
    rng.set_state(np.random.get_state())
    rng.permutation(n_train)  # Keras's `fit` spends one shuffle building the model's metrics (_symbolic_build)
    return model, values, rng


def _batches(x: np.ndarray, batch_size: int) -> tuple[Any, Any]:
    n_full = len(x) // batch_size
    full = x[: n_full * batch_size].reshape((n_full, batch_size) + x.shape[1:])
    rest = x[n_full * batch_size:]
    return jnp.asarray(full), (jnp.asarray(rest) if len(rest) else None)


def _eval_data(strat: Any, x: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[Any, ...]:
    """The arguments of the strategy's `evaluate` for one evaluation set: its own layout where it has one,
    else Keras's batches of `batch_size` (at most the set's size) and the partial last batch."""
    batch_size = clipped_batch(batch_size, len(x))
    if hasattr(strat, "eval_data"):
        return strat.eval_data(x, y, batch_size)
    x_full, x_last = _batches(x, batch_size)
    y_full, y_last = _batches(y, batch_size)
    return (x_full, y_full, x_last, y_last)


def make_strategy(model: Any, n_lams: int, n_seeds: int, sample: tuple[np.ndarray, np.ndarray],
                  strategy: str = "auto", flags: tuple[bool, bool] = (False, False)) -> Any:
    """`packed` when the model is a Flatten/Dense stack (fast), else `vmap` (general). `flags`: whether
    any arm has an L1 term, any a weight decay."""
    from .packing import PackedStrategy

    if strategy in ("auto", "packed"):
        packed = PackedStrategy.create(model, n_lams, n_seeds, flags)
        if packed is not None:
            return packed
        if strategy == "packed":
            raise ConfigError("this model cannot be packed (only Flatten and Dense layers can)")
    return VmapStrategy(model, n_lams, sample, flags)


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


def _checkpoint(state: Any, rngs: list[np.random.RandomState], status: np.ndarray, epochs_done: np.ndarray,
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
        "engine": "fused", "epoch": epoch, "n_state": len(leaves), "rng": rng_meta, "status": status.tolist(),
        "epochs_done": {str(si * L + li): int(epochs_done[si, li]) for si in range(status.shape[0]) for li in range(L)},
    }
    return arrays, meta


def _leaves_like(arrays: dict[str, np.ndarray], prefix: str, like: Any) -> Any:
    leaves, treedef = jax.tree_util.tree_flatten(like)
    restored = []
    for i, leaf in enumerate(leaves):
        value = arrays[f"{prefix}{i}"]
        if value.shape != tuple(leaf.shape) or value.dtype != leaf.dtype:
            raise ValueError(f"{prefix} {i} has shape {value.shape}, expected {tuple(leaf.shape)}")
        restored.append(jnp.asarray(value))
    return jax.tree_util.tree_unflatten(treedef, restored)


def _restore(resume: Resume, state: Any, S: int, L: int, es: EarlyStopping | None) -> tuple[Any, list[np.random.RandomState], np.ndarray, np.ndarray, int, Any]:
    """The state, RNGs, statuses, epochs (and early-stopping state, best weights) of a fused checkpoint,
    checked against this run's own layout."""
    arrays, meta = resume
    try:
        if meta.get("engine") != "fused" or int(meta["n_state"]) != len(jax.tree_util.tree_leaves(state)):
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
    return restored, rngs, status, epochs_done, epoch, best_state


def _without_examples(results: dict[str, Any]) -> dict[str, Any]:
    """An evaluation's metrics without the per-example values a strategy may compute with them (not fetched)."""
    return {k: v for k, v in results.items() if not k.startswith("example_")}


def train(config: SweepConfig, splits: Splits, listener: Listener, strategy: str = "auto",
          resume: Resume | None = None) -> dict[int, list[np.ndarray]]:
    """Train every arm at once; returns each arm's final trainable weights (original layout). With `resume`
    (a checkpoint this engine wrote), training continues after the checkpoint's epoch, exactly."""
    arms = config.arms()
    seeds = config.seed_values
    S, L = len(seeds), len(config.settings())
    shape = splits.x_train.shape[1:]
    n = len(splits.x_train)
    B = clipped_batch(config.batch_size, n)  # above n: Keras's one batch of every sample, without padding to the request
    steps = steps_per_epoch(n, B)

    rngs, inits = [], []
    model = None
    for s in seeds:
        model, values, rng = _initial_weights(shape, s, n, config.model)
        inits.append(values)
        rngs.append(rng)
    regularized_variables(model)  # refuse unsupported regularizers before compiling anything
    coef, flags = Coefficients.of(config)  # each arm's (l1, l2, weight decay), an input of the compiled program
    strat = make_strategy(model, L, S, (splits.x_val[:1], splits.y_val[:1]), strategy, flags)
    fns = strat.make_functions()
    state = strat.initial_state(inits)
    status = np.full((S, L), "completed", dtype=object)
    epochs_done = np.zeros((S, L), dtype=int)
    start = 0
    es = EarlyStopping(config.early_stopping, (S, L)) if config.early_stopping else None
    best_state = None  # with restore_best: each arm's weights at its best epoch so far
    if resume is not None:
        state, rngs, status, epochs_done, start, best_state = _restore(resume, state, S, L, es)
    active = status == "completed"  # diverged and early-stopped arms train no more

    x_train, y_train = jnp.asarray(splits.x_train), jnp.asarray(splits.y_train)

    def train_chunk(state: Any, idx: np.ndarray, n_valid: np.ndarray | None, active_dev: Any, freeze: bool) -> Any:
        idx = jnp.asarray(idx, dtype=jnp.int32)
        if n_valid is None:  # strategies that do not pad: the partial batch has its own shape
            return fns["train_chunk"](state, x_train, y_train, idx, coef, active_dev, freeze)
        return fns["train_chunk"](state, x_train, y_train, idx, jnp.asarray(n_valid), coef, active_dev, freeze)

    val_data = _eval_data(strat, splits.x_val, splits.y_val, B)
    send_values, n_val = wants_values(listener), len(splits.x_val)  # per-example validation values, when the listener takes them

    listener.arms_started(arms, steps)
    pad = getattr(strat, "pads_last_batch", False)
    n_full = n // B
    batched = steps if pad else n_full  # steps run as full-size batches (a padded last one included)
    n_valid = np.full(batched, B, dtype=np.int32)
    if pad and n % B:
        n_valid[-1] = n % B
    chunk = chunk_length(batched)
    for epoch in range(start + 1, config.epochs + 1):
        if not active.any():
            break
        t0 = time.perf_counter()
        perms = np.stack([rng.permutation(n) for rng in rngs])  # (seeds, n): Keras's shuffle, per seed
        if pad and n % B:
            perms = np.concatenate([perms, np.zeros((S, B - n % B), dtype=perms.dtype)], axis=1)  # masked rows
        state = fns["reset_metrics"](state)
        active_dev = jnp.asarray(active)
        freeze = not active.all()
        done = 0
        logs = None
        while done < batched:
            k = min(chunk, batched - done)
            idx = perms[:, done * B:(done + k) * B].reshape(S, k, B).transpose(1, 0, 2)
            state, logs = train_chunk(state, idx, n_valid[done:done + k] if pad else None, active_dev, freeze)
            done += k
            listener.batches_done(arms, epoch, done)
        if not pad and n % B:
            state, logs = train_chunk(state, perms[:, n_full * B:][None], None, active_dev, freeze)
            listener.batches_done(arms, epoch, steps)
        val = fns["evaluate_examples"](state, *val_data, coef, n_val) if send_values else fns["evaluate"](state, *val_data, coef)
        val = val if send_values else _without_examples(val)
        sumsq, penalty = fns["kernel_stats"](state, coef)
        logs, val, sumsq, penalty = jax.device_get((logs, val, sumsq, penalty))  # one transfer for every arm
        seconds = time.perf_counter() - t0
        recorded = []
        for arm in arms:
            si, li = divmod(arm.index, L)
            if status[si, li] != "completed":  # diverged or stopped early: no more epochs
                continue
            recorded.append(arm.index)
            record = EpochRecord(
                arm=arm.index, lam=arm.lam, seed=arm.seed, epoch=epoch,
                loss=float(logs["loss"][si, li]), val_loss=float(val["loss"][si, li]),
                accuracy=float(logs["accuracy"][si, li]), val_accuracy=float(val["accuracy"][si, li]),
                data_loss=float(logs["data_loss"][si, li]), val_data_loss=float(val["data_loss"][si, li]),
                penalty=float(penalty[si, li]), kernel_norm=math.sqrt(float(sumsq[si, li])), seconds=seconds,
                regularizer=arm.family,
            )
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
                mask = jnp.asarray(improved)
                best_state = fns["select"](mask, state, state if best_state is None else best_state)
            status[stop] = "stopped"
            active &= ~stop
        listener.checkpoint(*_checkpoint(state, rngs, status, epochs_done, epoch, es, best_state))

    if config.restore_best and best_state is not None:  # as Keras's restore_best_weights at the end of fit
        state = fns["select"](jnp.asarray(es.has_best), best_state, state)
    test = jax.device_get(_without_examples(fns["evaluate"](state, *_eval_data(strat, splits.x_test, splits.y_test, B), coef)))
    weights = strat.final_weights(state)
    for arm in arms:
        si, li = divmod(arm.index, L)
        listener.arm_finished(arm, str(status[si, li]), {k: float(test[k][si, li]) for k in ("loss", "accuracy", "data_loss")})
    return {arm.index: weights[arm.index // L][arm.index % L] for arm in arms}
