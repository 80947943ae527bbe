"""The packed strategy, for Flatten/Dense networks: a seed's arms in packed Keras models (packing.py).

Each seed's settings are split into groups of `group_arms()` arms (one on a CPU, up to 25 on an
accelerator), each group one packed model; each group's call of one compiled program takes it through a
chunk of batches, and worker threads (workers.py), one per CPU core, take the groups' calls in turn.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from reglab._keras import keras
from reglab.engines.packing import PackedModel, PackedVariable, pack_model
from reglab.engines.strategy import Coefficients, Results, SeedStart, learning_rate_index, with_learning_rate
from reglab.engines.workers import on_workers, worker_count
from reglab.errors import ConfigError
from reglab.record.arrays import FinalWeights

#: Arms per packed group on a CPU: one. Each arm's state (first kernel, gradient and Adam moments,
#: ≈1.6 MB) then fits in one core's L2 cache (2 MB per core here) while the 521 steps of a chunk run,
#: and the cores train different arms side by side. Measured here, 30 arms on 2 cores: 5.5 s per epoch
#: in groups of 1, 6.0 in groups of 2, 6.5 in groups of 4 or 5, 7.9 as two groups of 15 sharing both
#: cores in every operation.
CPU_GROUP_ARMS = 1

#: Arms per packed group on an accelerator, where one wide matrix product for many arms is what pays.
ACCELERATOR_GROUP_ARMS = 25

#: Overrides the group size chosen by backend (tests use it to exercise several groups of several arms).
MAX_PACKED_ARMS: int | None = None

#: Rows per evaluation chunk (validation and test): at 100 arms the hidden activations of one chunk are
#: 1,000 × 12,800 floats (51 MB).
EVAL_ROWS = 1000


def group_arms() -> int:
    """How many arms share one packed model here (MAX_PACKED_ARMS when set, else by backend)."""
    if MAX_PACKED_ARMS is not None:
        return MAX_PACKED_ARMS
    return CPU_GROUP_ARMS if jax.default_backend() == "cpu" else ACCELERATOR_GROUP_ARMS


def split_evenly(n: int, most: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of near-equal sizes, none above `most`: 100, 25 → 4 × 25; 30, 25 → 15 + 15."""
    parts = -(-n // most)
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def same_value_runs(values: Sequence[float]) -> list[tuple[int, int]]:
    """[start, stop) ranges of equal neighbouring values: [a, a, b, b, b] → [(0, 2), (2, 5)]."""
    cuts = [0] + [i for i in range(1, len(values)) if values[i] != values[i - 1]] + [len(values)]
    return list(itertools.pairwise(cuts))


class GroupState(NamedTuple):
    """One packed group's state: Keras's four parts, the metrics as per-arm running sums ([A] each)."""

    trainable: list[Any]
    non_trainable: list[Any]
    optimizer: list[Any]
    metrics: dict[str, Any]


class Forward(NamedTuple):
    """A forward pass's per-arm loss and per-example values ([B, A]; padded rows 0)."""

    loss: Any
    ce_each: Any
    acc_each: Any
    count: Any
    non_trainable: list[Any]


METRIC_KEYS = ("loss_total", "loss_count", "acc_total", "acc_count", "ce_total", "ce_count")


class GroupProgram:
    """Keras's training and evaluation steps on one packed model of `n_arms` arms (groups of one size share it).

    The step is Keras's own pieces applied to the packed model: `stateless_call` for the forward pass,
    Keras's sparse categorical cross-entropy and accuracy, Keras's L1L2 formula per arm (its L2 formula
    alone when no arm has an L1 term), Keras's decoupled weight decay written out per arm (`W - W·wd·lr`,
    as `Optimizer._apply_weight_decay` does it, before the update), and the compiled optimizer's own
    `stateless_apply` (Adam acts element by element, so on packed variables it is exactly each arm's Adam).
    Metrics are Keras's running means, kept per arm. `coef`: each arm's strengths, [A] each.
    """

    def __init__(self, original: Any, packed: PackedModel, flags: tuple[bool, bool] = (False, False)) -> None:
        self.packed, self.n_arms = packed, packed.n_arms
        self.has_l1, self.has_wd = flags
        model = packed.model
        # weight decay is per arm here (`decay`), never the packed optimizer's own (it would decay every variable)
        self.optimizer = original.optimizer.__class__.from_config({**original.optimizer.get_config(), "weight_decay": None})
        self.optimizer.build(model.trainable_variables)
        self.lr_index = learning_rate_index(self.optimizer)
        slots = {}
        for name in ("_momentums", "_velocities", "momentums"):  # Adam's slots; SGD's
            for j, v in enumerate(getattr(self.optimizer, name, []) or []):
                slots[id(v)] = j
        self.opt_slot = [slots.get(id(v)) for v in self.optimizer.variables]  # the trainable variable a slot follows
        self.opt_init = [np.asarray(v.value) for v in self.optimizer.variables]
        self.non_trainable = [np.asarray(v.value) for v in model.non_trainable_variables]
        if len(model.trainable_variables) != len(packed.variables):  # pragma: no cover
            raise RuntimeError("packed model variables do not match the plan")

    def per_arm(self, coef_i: Any, value: Any, pv: PackedVariable) -> Any:
        """An [A] per-arm value broadcast to the packed variable's layout."""
        if pv.layout == "columns":
            return jnp.repeat(coef_i, pv.units, total_repeat_length=value.shape[-1])
        return coef_i.reshape((self.n_arms,) + (1,) * (value.ndim - 1))

    def penalties(self, trainable: list[Any], coef: Coefficients) -> Any:
        """Each arm's penalty, [A]."""
        total = jnp.zeros((self.n_arms,), jnp.float32)
        for value, pv in zip(trainable, self.packed.variables):
            if pv.regularized:
                l2_term = coef.l2 * self.packed.arm_sumsq(value, pv)
                total = total + (coef.l1 * self.packed.arm_sum(jnp.abs(value), pv) + l2_term if self.has_l1 else l2_term)
        return total

    def penalty_grads(self, trainable: list[Any], grads: list[Any], coef: Coefficients) -> list[Any]:
        """Add the penalty's gradient to each regularized kernel's: the l1·sign(W) + 2·l2·W that autodiff of
        Keras's formula gives (×2 and ×sign are exact in floats, so the bits are autodiff's), written out so
        that the step needs no reduction over the kernel before its update."""
        out = []
        for value, grad, pv in zip(trainable, grads, self.packed.variables):
            if pv.regularized:
                grad = grad + value * self.per_arm(2.0 * coef.l2, value, pv)
                if self.has_l1:
                    grad = grad + self.per_arm(coef.l1, value, pv) * jnp.sign(value)
            out.append(grad)
        return out

    def decay(self, trainable: list[Any], opt_vars: list[Any], coef: Coefficients) -> list[Any]:
        """Keras's decoupled weight decay on the regularized kernels, each arm at its own rate."""
        lr = opt_vars[self.lr_index].astype(jnp.float32)
        return [value - value * self.per_arm(coef.wd, value, pv) * lr if pv.regularized else value
                for value, pv in zip(trainable, self.packed.variables)]

    def forward(self, trainable: list[Any], non_trainable: list[Any], xb: Any, yb: Any, coef: Coefficients,
                training: bool, n_valid: Any = None, penalty: Any = None) -> Forward:
        """With `n_valid`, only the first n_valid rows are samples (a partial last batch padded to full
        size): the others count for nothing, exactly as if the batch had n_valid rows. `penalty`: the
        arms' penalty when already known (the training loop carries it from the previous update)."""
        y_pred, non_trainable = self.packed.model.stateless_call(trainable, non_trainable, xb, training=training)
        y_arms = jnp.broadcast_to(yb[:, None], y_pred.shape[:2])
        ce_each = keras.ops.sparse_categorical_crossentropy(y_arms, y_pred)  # [B, A]
        acc_each = jnp.reshape(keras.metrics.sparse_categorical_accuracy(y_arms, y_pred), ce_each.shape)  # Keras drops a unit arm axis
        if n_valid is None:
            count = jnp.float32(ce_each.shape[0])
        else:
            valid = (jnp.arange(ce_each.shape[0]) < n_valid)[:, None]
            ce_each, acc_each = jnp.where(valid, ce_each, 0.0), jnp.where(valid, acc_each, 0.0)
            count = n_valid.astype(jnp.float32)
        ce = jnp.sum(ce_each, axis=0) / count  # Keras's "sum_over_batch_size"
        loss = ce + (self.penalties(trainable, coef) if penalty is None else penalty)
        return Forward(loss, ce_each, acc_each, count, non_trainable)

    @staticmethod
    def update_metrics(m: dict[str, Any], f: Forward) -> dict[str, Any]:
        return {
            "loss_total": m["loss_total"] + f.loss * f.count, "loss_count": m["loss_count"] + f.count,
            "acc_total": m["acc_total"] + jnp.sum(f.acc_each, axis=0), "acc_count": m["acc_count"] + f.count,
            "ce_total": m["ce_total"] + jnp.sum(f.ce_each, axis=0), "ce_count": m["ce_count"] + f.count,
        }

    def train_step(self, state: GroupState, penalty: Any, xb: Any, yb: Any, coef: Coefficients,
                   n_valid: Any = None) -> tuple[GroupState, Any]:
        """One Keras training step. `penalty` is the arms' current penalty, computed from the weights as the
        previous update wrote them (it spares this step a separate pass over the kernel); returns the new
        state and the new weights' penalty."""
        def objective(trainable: list[Any]) -> tuple[Any, Forward]:
            f = self.forward(trainable, state.non_trainable, xb, yb, coef, True, n_valid, penalty=jnp.zeros((self.n_arms,), jnp.float32))
            return jnp.sum(f.loss), f

        (_, f), grads = jax.value_and_grad(objective, has_aux=True)(state.trainable)
        grads = self.penalty_grads(state.trainable, grads, coef)
        f = f._replace(loss=jnp.sum(f.ce_each, axis=0) / f.count + penalty)
        trainable = state.trainable
        if self.has_wd:  # as Keras's optimizer: decay first, then the update from the gradients taken before it
            trainable = self.decay(trainable, state.optimizer, coef)
        trainable, opt_vars = self.optimizer.stateless_apply(state.optimizer, grads, trainable)
        new = GroupState(trainable, f.non_trainable, opt_vars, self.update_metrics(state.metrics, f))
        return new, self.penalties(trainable, coef)

    def test_step(self, state: GroupState, metrics: dict[str, Any], xb: Any, yb: Any, coef: Coefficients,
                  n_valid: Any = None) -> tuple[dict[str, Any], Any, Any]:
        """Keras's evaluation step; also returns the per-example cross-entropy and correctness ([B, A] each,
        padded rows 0) that the metrics just summed."""
        f = self.forward(state.trainable, state.non_trainable, xb, yb, coef, False, n_valid)
        return self.update_metrics(metrics, f), f.ce_each, f.acc_each

    def freeze(self, active: Any, new: GroupState, old: GroupState) -> GroupState:
        """`new`'s arms where `active` ([A]), else `old`'s: weights and the optimizer slots that follow them."""
        pvs = self.packed.variables
        trainable = [jnp.where(self.packed.arm_mask(active, n, pv), n, o) for n, o, pv in zip(new.trainable, old.trainable, pvs)]
        opt_vars = [n if slot is None else jnp.where(self.packed.arm_mask(active, n, pvs[slot]), n, o)
                    for n, o, slot in zip(new.optimizer, old.optimizer, self.opt_slot)]
        return GroupState(trainable, new.non_trainable, opt_vars, new.metrics)

    def sumsq(self, trainable: list[Any]) -> Any:
        return sum((self.packed.arm_sumsq(v, pv) for v, pv in zip(trainable, self.packed.variables) if pv.regularized),
                   jnp.zeros((self.n_arms,), jnp.float32))

    def zero_metrics(self) -> dict[str, Any]:
        return {k: jnp.zeros((self.n_arms,), jnp.float32) for k in METRIC_KEYS}  # distinct buffers: donated

    def start(self, seed: SeedStart, learning_rate: float) -> GroupState:
        """The group's state before its first step; its arms share `learning_rate` (the optimizer's, a scalar)."""
        return GroupState([jnp.asarray(v) for v in self.packed.pack([seed.trainable] * self.n_arms)],
                          [jnp.asarray(v) for v in self.non_trainable],
                          [jnp.asarray(v) for v in with_learning_rate(self.opt_init, self.lr_index, learning_rate)],
                          self.zero_metrics())


def results(m: dict[str, Any]) -> dict[str, Any]:
    """Keras's metric results from the running sums (`divide_no_nan`, as its Mean metrics)."""
    def div(a: Any, b: Any) -> Any:
        return jnp.where(b == 0, 0.0, a / jnp.where(b == 0, 1.0, b))
    return {"loss": div(m["loss_total"], m["loss_count"]), "accuracy": div(m["acc_total"], m["acc_count"]),
            "data_loss": div(m["ce_total"], m["ce_count"])}


class Group(NamedTuple):
    """Where a group's arms sit in the sweep: its seed and its settings [start, stop)."""

    seed: int
    start: int
    stop: int


class PaddedChunks(NamedTuple):
    """An evaluation set as chunks of EVAL_ROWS rows, the last one padded: `n_valid` rows of each count."""

    x: Any
    y: Any
    n_valid: Any


class PackedStrategy:
    """Fused training with packed groups, each group its own call of one compiled program (groups of one
    size share its compilation); a pool of worker threads, one per CPU core, takes the groups' calls in
    order, each worker the next one as soon as it is free.

    Why, on a CPU: a step is dozens of small operations over one arm's state; splitting each of them
    across cores costs more in synchronization than it gains, and an arm's state streams from L3 on
    every step unless it fits in one core's L2. Whole arms on separate cores, one after another, avoid
    both (30 arms on 2 cores: 7.9 → 5.5 s per epoch). Taking the next arm when free, rather than a fixed
    share of them, keeps both cores busy when this shared machine slows one of them, and no group's
    state is ever copied to be stacked with others (peak memory at 100 arms: 2.1 → 1.2 GB)."""

    name = "packed"
    #: the epoch's partial last batch is padded to full size and masked, so one compiled chunk serves it
    pads_last_batch = True

    def __init__(self, original: Any, learning_rates: Sequence[float], n_seeds: int, flags: tuple[bool, bool] = (False, False)) -> None:
        # a group's arms share one optimizer, so one learning rate: groups split each run of settings at one rate
        self.learning_rates = list(learning_rates)
        self.groups = [Group(s, a + lo, b + lo) for s in range(n_seeds) for lo, hi in same_value_runs(self.learning_rates)
                       for a, b in split_evenly(hi - lo, group_arms())]
        self.programs: dict[int, GroupProgram] = {}
        for g in self.groups:
            if g.stop - g.start not in self.programs:
                packed = pack_model(original, g.stop - g.start)
                if packed is None:
                    raise ConfigError("this model cannot be packed (only Flatten and Dense layers can)")
                self.programs[g.stop - g.start] = GroupProgram(original, packed, flags)
        self.workers = worker_count()
        self.n_seeds, self.n_settings = n_seeds, len(self.learning_rates)
        #: raises KeyboardInterrupt once a stop is asked (the driver sets it): checked between groups
        self.check: Callable[[], None] = lambda: None
        self._starts = [jnp.asarray([g.seed, g.start], dtype=jnp.int32) for g in self.groups]
        # every program is one group's, compiled once per group size: a program over all groups grows with
        # the arms (300 groups: 0.7 GB and 5 s of compilation, superlinear; see docs/engine-memory.md)
        self._train = jax.jit(self._group_chunk, donate_argnums=(0,), static_argnums=(8, 9))
        self._evaluate = jax.jit(self._group_evaluate, static_argnums=(4,))
        self._stats = jax.jit(self._group_kernel_stats, static_argnums=(3,))
        self._zeros = jax.jit(lambda A: self.programs[A].zero_metrics(), static_argnums=(0,))
        self._select = jax.jit(self._group_select, static_argnums=(4,))

    def program(self, g: int) -> GroupProgram:
        return self.programs[self.size(g)]

    def size(self, g: int) -> int:
        return self.groups[g].stop - self.groups[g].start

    def _grid(self, per_group: list[Any]) -> Any:
        """Per-group [group arms, ...] values (or dicts of them), fetched → numpy [seeds, settings, ...] in arm
        order (groups are in arm order: seed by seed, settings in order)."""
        per_group = jax.device_get(per_group)
        if isinstance(per_group[0], dict):
            return {k: self._grid([d[k] for d in per_group]) for k in per_group[0]}
        values = np.concatenate(per_group)
        return values.reshape((self.n_seeds, self.n_settings) + values.shape[1:])

    # ---- the compiled programs: one call per group; where its arms sit (`start`: seed, first setting)
    # is an input, so every group of `A` arms shares one compilation

    def _group_chunk(self, st: GroupState, x_all: Any, y_all: Any, idx: Any, n_valid: Any, coef: Coefficients,
                     active: Any, start: Any, A: int, freeze: bool) -> tuple[GroupState, dict[str, Any]]:
        """One group through a chunk of batches."""
        program = self.programs[A]
        s, a = start[0], start[1]
        coef_g = Coefficients(*(jax.lax.dynamic_slice(c, (s, a), (1, A))[0] for c in coef))

        def body(carry: tuple[GroupState, Any], step: tuple[Any, Any]) -> tuple[tuple[GroupState, Any], None]:
            idx_t, n_t = step  # idx_t: [seeds, batch]; n_t: how many of the batch's rows are samples
            rows = jax.lax.dynamic_index_in_dim(idx_t, s, keepdims=False)
            return program.train_step(carry[0], carry[1], x_all[rows], y_all[rows], coef_g, n_t), None

        new = jax.lax.scan(body, (st, program.penalties(st.trainable, coef_g)), (idx, n_valid))[0][0]
        if freeze:  # only once an arm has diverged or stopped: keeping the old state costs memory traffic
            new = program.freeze(jax.lax.dynamic_slice(active, (s, a), (1, A))[0], new, st)
        return new, results(new.metrics)

    def _group_evaluate(self, st: GroupState, data: PaddedChunks, coef: Coefficients, start: Any, A: int) -> dict[str, Any]:
        """One group through all evaluation chunks: its metrics, and each arm's per-example values,
        [A, chunks·rows] (the examples in order, then the last chunk's padding). The values cost next to
        nothing here, and one compilation serves validation and test sets of one size whether their
        values are wanted or not (unwanted, they are never fetched)."""
        program = self.programs[A]
        coef_g = Coefficients(*(jax.lax.dynamic_slice(c, (start[0], start[1]), (1, A))[0] for c in coef))

        def step(metrics: dict[str, Any], xyn: tuple[Any, Any, Any]) -> tuple[dict[str, Any], tuple[Any, Any]]:
            metrics, ce_each, acc_each = program.test_step(st, metrics, *xyn[:2], coef_g, xyn[2])
            return metrics, (ce_each, acc_each > 0.5)

        metrics, each = jax.lax.scan(step, program.zero_metrics(), (data.x, data.y, data.n_valid))
        ce, ok = (jnp.reshape(a, (-1, A)).T for a in each)  # [chunks, rows, A] → [A, chunks·rows]
        return {**results(metrics), "example_loss": ce, "example_correct": ok}

    def _group_kernel_stats(self, trainable: list[Any], coef: Coefficients, start: Any, A: int) -> tuple[Any, Any]:
        """One group's (ΣW², penalty), [A] each."""
        coef_g = Coefficients(*(jax.lax.dynamic_slice(c, (start[0], start[1]), (1, A))[0] for c in coef))
        return self.programs[A].sumsq(trainable), self.programs[A].penalties(trainable, coef_g)

    def _group_select(self, mask: Any, a: GroupState, b: GroupState, start: Any, A: int) -> GroupState:
        """One group's arms from `a` where `mask` ([seeds, settings]), else from `b`."""
        return self.programs[A].freeze(jax.lax.dynamic_slice(mask, (start[0], start[1]), (1, A))[0], a, b)

    # ---- the Strategy interface

    def initial_state(self, starts: Sequence[SeedStart]) -> list[GroupState]:
        # the original model's non-trainable state: a Flatten/Dense stack has none to update, so each arm ends with its seed's
        self._non_trainable = [[np.array(v) for v in s.non_trainable] for s in starts]
        out: list[GroupState] = []
        for g, gr in enumerate(self.groups):  # about 1.5 ms a group: 10,000 of them take a while, and a stop is heard here
            self.check()
            out.append(self.program(g).start(starts[gr.seed], self.learning_rates[gr.start]))
        return out

    def train_chunk(self, state: list[GroupState], x_all: Any, y_all: Any, idx: np.ndarray, n_valid: np.ndarray | None,
                    coef: Coefficients, active: np.ndarray, freeze: bool) -> tuple[list[GroupState], Results]:
        idx_dev, n_valid_dev, active_dev = jnp.asarray(idx, dtype=jnp.int32), jnp.asarray(n_valid), jnp.asarray(active)
        outs = on_workers(lambda g: jax.block_until_ready(self._train(
            state[g], x_all, y_all, idx_dev, n_valid_dev, coef, active_dev, self._starts[g], self.size(g), freeze)),
            len(self.groups), self.workers, self.check)
        return [o[0] for o in outs], self._grid([o[1] for o in outs])

    def eval_data(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> PaddedChunks:
        """Chunks of EVAL_ROWS rows, the last one padded and masked: one compiled forward pass serves every
        chunk, and few large chunks run faster than Keras's batches of `batch_size`. The means are the same
        (sums of per-sample values over the same samples), up to the order of float additions."""
        n = len(x)
        rows = max(1, min(EVAL_ROWS, n))
        k = -(-n // rows)
        pad = k * rows - n
        xp = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
        yp = np.concatenate([y, np.zeros((pad,), y.dtype)]) if pad else y
        n_valid = np.full(k, rows, dtype=np.int32)
        if pad:
            n_valid[-1] = rows - pad
        return PaddedChunks(jnp.asarray(xp.reshape((k, rows) + x.shape[1:])), jnp.asarray(yp.reshape(k, rows)), jnp.asarray(n_valid))

    def evaluate(self, state: list[GroupState], data: PaddedChunks, coef: Coefficients, examples: bool) -> Results:
        outs = on_workers(lambda g: jax.block_until_ready(self._evaluate(
            state[g], data, coef, self._starts[g], self.size(g))), len(self.groups), self.workers, self.check)
        return self._grid(outs if examples else [{k: v for k, v in o.items() if not k.startswith("example_")} for o in outs])

    def kernel_stats(self, state: list[GroupState], coef: Coefficients) -> tuple[Any, Any]:
        stats = [self._stats(st.trainable, coef, self._starts[g], self.size(g)) for g, st in enumerate(state)]
        return self._grid([s[0] for s in stats]), self._grid([s[1] for s in stats])

    def reset_metrics(self, state: list[GroupState]) -> list[GroupState]:
        return [st._replace(metrics=self._zeros(self.size(g))) for g, st in enumerate(state)]  # fresh buffers: donated

    def select(self, mask: np.ndarray, a: list[GroupState], b: list[GroupState]) -> list[GroupState]:
        mask_dev = jnp.asarray(mask)
        return [self._select(mask_dev, a[g], b[g], self._starts[g], self.size(g)) for g in range(len(self.groups))]

    def final_weights(self, state: list[GroupState]) -> list[list[FinalWeights]]:
        out: list[list[FinalWeights]] = []
        for g, (gr, st) in enumerate(zip(self.groups, state)):
            if gr.seed == len(out):
                out.append([])
            out[gr.seed].extend(FinalWeights(w, [np.array(v) for v in self._non_trainable[gr.seed]])
                                for w in self.program(g).packed.unpack(st.trainable))
        return out
