"""Pack A arms of a Dense network into one Keras model whose matrix products serve every arm at once.

Why: vmapping a Dense layer over arms turns each step's products into many small batched matmuls plus
layout copies; XLA on a CPU runs those far below its matmul speed. Packing lays the first kernel of
every arm side by side, `[in, A·units]`, so the first layer (nearly all of the work) is one plain
matrix product, `x @ [W₁ | W₂ | … | W_A]`; later layers are per-arm `EinsumDense("bai,aio->bao")`.
Columns of one arm never mix with another's, so each arm computes exactly what its own model would
(up to the summation order inside the product, ~1e-7).

The packed model is built from the user's model layer by layer; a model with a layer this module
does not know returns `None`, and the fused engine falls back to vmapping Keras's own `train_step`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._keras import keras


@dataclass(frozen=True)
class PackedVariable:
    """How one trainable variable of the packed model holds the arms' copies of an original variable."""

    source: int  # index in the original model's trainable_variables
    layout: str  # "columns": [in, A·units] / [A·units];  "leading": [A, ...]
    units: int  # for "columns": the original last-axis size
    regularized: bool


@dataclass(frozen=True)
class PackedModel:
    model: Any
    n_arms: int
    variables: tuple[PackedVariable, ...]

    def pack(self, per_arm: list[list[np.ndarray]]) -> list[np.ndarray]:
        """Per-arm values of the original trainable variables → values of the packed variables."""
        out = []
        for pv in self.variables:
            leaves = np.stack([np.asarray(arm[pv.source]) for arm in per_arm])  # [A, ...]
            if pv.layout == "columns":
                moved = np.moveaxis(leaves, 0, -2)  # [..., A, units]
                out.append(moved.reshape(moved.shape[:-2] + (-1,)))
            else:
                out.append(leaves)
        return out

    def unpack(self, values: list[Any]) -> list[list[np.ndarray]]:
        """The inverse of `pack`: packed values → per arm, the original trainable variables' values."""
        n_original = max(pv.source for pv in self.variables) + 1
        arms: list[list[Any]] = [[None] * n_original for _ in range(self.n_arms)]
        for value, pv in zip(values, self.variables):
            value = np.asarray(value)
            if pv.layout == "columns":
                value = np.moveaxis(value.reshape(value.shape[:-1] + (self.n_arms, pv.units)), -2, 0)
            for a in range(self.n_arms):
                arms[a][pv.source] = np.array(value[a])
        return arms

    def arm_sumsq(self, value: Any, pv: PackedVariable) -> Any:
        """ΣW² of each arm's copy: [A]."""
        import jax.numpy as jnp

        return self.arm_sum(jnp.square(value), pv)

    def arm_sum(self, value: Any, pv: PackedVariable) -> Any:
        """Σ over each arm's copy: [A]. Columns are summed down the rows first (a contiguous reduction;
        reducing a strided [in, A, units] view instead costs a whole extra pass per step)."""
        import jax.numpy as jnp

        if pv.layout == "columns":
            per_column = jnp.sum(value, axis=tuple(range(value.ndim - 1)))
            return jnp.sum(per_column.reshape(self.n_arms, pv.units), axis=1)
        return jnp.sum(value, axis=tuple(range(1, value.ndim)))

    def arm_mask(self, active: Any, value: Any, pv: PackedVariable) -> Any:
        """`active` ([A] booleans) broadcast to the packed value's shape."""
        import jax.numpy as jnp

        if pv.layout == "columns":
            return jnp.repeat(active, pv.units, total_repeat_length=value.shape[-1])
        return active.reshape((self.n_arms,) + (1,) * (value.ndim - 1))


def pack_model(model: Any, n_arms: int) -> PackedModel | None:
    """The packed equivalent of a Sequential of Flatten/Dense layers, or None for anything else."""
    if not isinstance(model, keras.Sequential):
        return None
    index = {id(v): i for i, v in enumerate(model.trainable_variables)}
    inputs = keras.Input(shape=model.input_shape[1:])
    h = inputs
    packed = False
    plan: list[tuple[Any, Any, str]] = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Flatten) and not packed:
            h = keras.layers.Flatten()(h)
        elif isinstance(layer, keras.layers.Dense) and not packed:
            if len(h.shape) != 2:
                return None
            # zeros: the arms' own weights replace these at once (and random initializers compile per shape)
            dense = keras.layers.Dense(n_arms * layer.units, use_bias=layer.use_bias, kernel_initializer="zeros")
            h = keras.layers.Activation(layer.activation)(keras.layers.Reshape((n_arms, layer.units))(dense(h)))
            plan.append((layer, dense, "columns"))
            packed = True
        elif isinstance(layer, keras.layers.Dense):
            dense = keras.layers.EinsumDense(
                "bai,aio->bao", output_shape=(n_arms, layer.units),
                bias_axes="ao" if layer.use_bias else None, activation=layer.activation, kernel_initializer="zeros",
            )
            h = dense(h)
            plan.append((layer, dense, "leading"))
        else:
            return None
    if not packed:
        return None
    packed_model = keras.Model(inputs, h)
    variables = []
    for layer, dense, layout in plan:
        pairs = [(layer.kernel, dense.kernel)] + ([(layer.bias, dense.bias)] if layer.use_bias else [])
        for original, _ in pairs:
            variables.append(PackedVariable(
                source=index[id(original)], layout=layout, units=layer.units,
                regularized=original is layer.kernel and getattr(original, "regularizer", None) is not None,
            ))
    order = [id(v) for v in packed_model.trainable_variables]
    expected = [id(p) for _, dense, _ in plan for p in ([dense.kernel] + ([dense.bias] if dense.bias is not None else []))]
    if order != expected:  # pragma: no cover - Keras orders variables by layer, then kernel before bias
        return None
    return PackedModel(packed_model, n_arms, tuple(variables))


#: Arms per packed group on a CPU: one. Each arm's state (first kernel, gradient and Adam moments,
#: ≈1.6 MB) then fits in one core's L2 cache (2 MB per core here) while the 521 steps of a chunk run,
#: and the cores train different arms side by side (see `PackedStrategy`). Measured here, 30 arms on
#: 2 cores: 5.5 s per epoch in groups of 1, 6.0 in groups of 2, 6.5 in groups of 4 or 5, 7.9 as two
#: groups of 15 sharing both cores in every operation.
CPU_GROUP_ARMS = 1

#: Arms per packed group on an accelerator, where one wide matrix product for many arms is what pays.
ACCELERATOR_GROUP_ARMS = 25

#: Overrides the group size chosen by backend (tests use it to exercise several groups of several arms).
MAX_PACKED_ARMS: int | None = None


def group_arms() -> int:
    """How many arms share one packed model here (MAX_PACKED_ARMS when set, else by backend)."""
    import jax

    if MAX_PACKED_ARMS is not None:
        return MAX_PACKED_ARMS
    return CPU_GROUP_ARMS if jax.default_backend() == "cpu" else ACCELERATOR_GROUP_ARMS

#: Rows per evaluation chunk (validation and test): at 100 arms the hidden activations of one chunk are
#: 1,000 × 12,800 floats (51 MB).
EVAL_ROWS = 1000


class _GroupKernel:
    """The compiled-step pieces for one packed model of `n_arms` arms (groups of equal size share it).

    The step is Keras's own pieces applied to the packed model: `stateless_call` for the forward
    pass, Keras's sparse categorical cross-entropy and accuracy, Keras's L1L2 formula per arm (its L2
    formula alone when no arm has an L1 term), Keras's decoupled weight decay written out per arm
    (`W - W·wd·lr`, as `Optimizer._apply_weight_decay` does it, before the update), and the compiled
    optimizer's own `stateless_apply` (Adam acts element by element, so on packed variables it is
    exactly each arm's Adam). Metrics are Keras's running means, kept per arm. `coef` arguments are each
    arm's (l1, l2, wd) strengths, [A] each.
    """

    def __init__(self, original: Any, packed: PackedModel, flags: tuple[bool, bool] = (False, False)) -> None:
        import jax
        import jax.numpy as jnp

        self.packed, self.n_arms = packed, packed.n_arms
        has_l1, has_wd = flags
        model = packed.model
        # weight decay is per arm here (below), never the packed optimizer's own (it would decay every variable)
        optimizer = original.optimizer.__class__.from_config({**original.optimizer.get_config(), "weight_decay": None})
        optimizer.build(model.trainable_variables)
        lr_index = next(i for i, v in enumerate(optimizer.variables) if v.path.endswith("learning_rate")) if has_wd else None
        slots = {}
        for name in ("_momentums", "_velocities"):
            for j, v in enumerate(getattr(optimizer, name, []) or []):
                slots[id(v)] = j
        opt_slot = [slots.get(id(v)) for v in optimizer.variables]
        self.opt_init = [np.asarray(v.value) for v in optimizer.variables]
        self.non_trainable = [np.asarray(v.value) for v in model.non_trainable_variables]
        loss_fn = keras.ops.sparse_categorical_crossentropy
        accuracy_fn = keras.metrics.sparse_categorical_accuracy
        pvs = packed.variables
        A = self.n_arms
        if len(model.trainable_variables) != len(pvs):  # pragma: no cover
            raise RuntimeError("packed model variables do not match the plan")

        def per_arm(coef_i, value, pv):
            """An [A] per-arm value broadcast to the packed variable's layout."""
            if pv.layout == "columns":
                return jnp.repeat(coef_i, pv.units, total_repeat_length=value.shape[-1])
            return coef_i.reshape((A,) + (1,) * (value.ndim - 1))

        def penalties(trainable, coef):
            total = jnp.zeros((A,), jnp.float32)
            for value, pv in zip(trainable, pvs):
                if pv.regularized:
                    l2_term = coef[1] * packed.arm_sumsq(value, pv)
                    total = total + (coef[0] * packed.arm_sum(jnp.abs(value), pv) + l2_term if has_l1 else l2_term)
            return total

        def penalty_grads(trainable, grads, coef):
            """Add the penalty's gradient to each regularized kernel's: the l1·sign(W) + 2·l2·W that autodiff
            of Keras's formula gives (×2 and ×sign are exact in floats, so the bits are autodiff's), written
            out so that the step needs no reduction over the kernel before its update."""
            out = []
            for value, grad, pv in zip(trainable, grads, pvs):
                if pv.regularized:
                    grad = grad + value * per_arm(2.0 * coef[1], value, pv)
                    if has_l1:
                        grad = grad + per_arm(coef[0], value, pv) * jnp.sign(value)
                out.append(grad)
            return out

        def decay(trainable, opt_vars, coef):
            """Keras's decoupled weight decay on the regularized kernels, each arm at its own rate."""
            lr = opt_vars[lr_index].astype(jnp.float32)
            return [value - value * per_arm(coef[2], value, pv) * lr if pv.regularized else value
                    for value, pv in zip(trainable, pvs)]

        def forward(trainable, non_trainable, xb, yb, coef, training, n_valid=None, penalty=None):
            """Per-arm loss (with penalty), and per-sample cross-entropy and accuracy. With `n_valid`, only
            the first n_valid rows are samples (a partial last batch padded to full size): the others
            count for nothing, exactly as if the batch had n_valid rows. `penalty`: the arms' λ·ΣW² when
            already known (the training loop carries it from the previous update)."""
            y_pred, non_trainable = model.stateless_call(trainable, non_trainable, xb, training=training)
            y_arms = jnp.broadcast_to(yb[:, None], y_pred.shape[:2])
            ce_each = loss_fn(y_arms, y_pred)  # [B, A]
            acc_each = jnp.reshape(accuracy_fn(y_arms, y_pred), ce_each.shape)  # Keras drops a unit arm axis
            if n_valid is None:
                count = jnp.float32(ce_each.shape[0])
            else:
                valid = (jnp.arange(ce_each.shape[0]) < n_valid)[:, None]
                ce_each, acc_each = jnp.where(valid, ce_each, 0.0), jnp.where(valid, acc_each, 0.0)
                count = n_valid.astype(jnp.float32)
            ce = jnp.sum(ce_each, axis=0) / count  # Keras's "sum_over_batch_size"
            loss = ce + (penalties(trainable, coef) if penalty is None else penalty)
            return loss, ce_each, acc_each, count, non_trainable

        def update_metrics(m, loss, ce_each, acc_each, b):
            return {
                "loss_total": m["loss_total"] + loss * b, "loss_count": m["loss_count"] + b,
                "acc_total": m["acc_total"] + jnp.sum(acc_each, axis=0), "acc_count": m["acc_count"] + b,
                "ce_total": m["ce_total"] + jnp.sum(ce_each, axis=0), "ce_count": m["ce_count"] + b,
            }

        def train_step(state, xb, yb, coef, n_valid=None):
            """One Keras training step. `state` carries, after Keras's own (trainable, non-trainable,
            optimizer, metrics), the arms' current penalty λ·ΣW²: computed from the weights as each
            update writes them, it spares the next step a separate pass over the kernel."""
            trainable, non_trainable, opt_vars, metrics, penalty = state

            def objective(trainable):
                loss, ce_each, acc_each, count, nt = forward(trainable, non_trainable, xb, yb, coef, True, n_valid,
                                                             penalty=jnp.zeros((A,), jnp.float32))
                return jnp.sum(loss), (ce_each, acc_each, count, nt)

            (_, (ce_each, acc_each, count, nt)), grads = jax.value_and_grad(objective, has_aux=True)(trainable)
            grads = penalty_grads(trainable, grads, coef)
            loss = jnp.sum(ce_each, axis=0) / count + penalty
            if has_wd:  # as Keras's optimizer: decay first, then the update from the gradients taken before it
                trainable = decay(trainable, opt_vars, coef)
            trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
            metrics = update_metrics(metrics, loss, ce_each, acc_each, count)
            return (trainable, nt, opt_vars, metrics, penalties(trainable, coef))

        def test_step(trainable, non_trainable, metrics, xb, yb, coef, n_valid=None):
            """Keras's evaluation step; also returns the per-example cross-entropy and correctness ([B, A]
            each, padded rows 0) that the metrics just summed."""
            loss, ce_each, acc_each, count, _ = forward(trainable, non_trainable, xb, yb, coef, False, n_valid)
            return update_metrics(metrics, loss, ce_each, acc_each, count), ce_each, acc_each

        def freeze(active, new, old):
            trainable = [jnp.where(packed.arm_mask(active, n, pv), n, o) for n, o, pv in zip(new[0], old[0], pvs)]
            opt_vars = [
                n if slot is None else jnp.where(packed.arm_mask(active, n, pvs[slot]), n, o)
                for n, o, slot in zip(new[2], old[2], opt_slot)
            ]
            return (trainable, new[1], opt_vars, new[3])

        def sumsq(trainable):
            return sum((packed.arm_sumsq(v, pv) for v, pv in zip(trainable, pvs) if pv.regularized), jnp.zeros((A,), jnp.float32))

        self.train_step, self.test_step, self.freeze, self.penalties, self.sumsq = train_step, test_step, freeze, penalties, sumsq

    def zero_metrics(self) -> dict[str, Any]:
        import jax.numpy as jnp

        keys = ("loss_total", "loss_count", "acc_total", "acc_count", "ce_total", "ce_count")
        return {k: jnp.zeros((self.n_arms,), jnp.float32) for k in keys}  # distinct buffers: donated


def split_evenly(n: int, most: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of near-equal sizes, none above `most`: 100, 25 → 4 × 25; 30, 25 → 15 + 15."""
    parts = -(-n // most)
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def worker_count() -> int:
    """Threads that train groups side by side: one per usable CPU core; 1 on an accelerator, where the
    device, not the host's cores, does the work."""
    import os

    import jax

    if jax.default_backend() != "cpu":
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _worker_pool(n: int) -> ThreadPoolExecutor:
    """A process-wide pool of `n` worker threads (kept: one sweep after another reuses them)."""
    if n not in _POOLS:
        _POOLS[n] = ThreadPoolExecutor(n, thread_name_prefix="reglab-worker")
    return _POOLS[n]


class PackedStrategy:
    """Fused training with packed groups: each seed's λ arms in groups of `group_arms()` (one arm on a
    CPU), each group one packed model. Each group is its own call of one compiled program (groups of
    one size share its compilation) that takes the group through a chunk of batches; a pool of worker
    threads, one per CPU core, takes the groups' calls in order, each worker the next one as soon as it
    is free.

    Why, on a CPU: a step is dozens of small operations over one arm's state; splitting each of them
    across cores costs more in synchronization than it gains, and an arm's state streams from L3 on
    every step unless it fits in one core's L2. Whole arms on separate cores, one after another, avoid
    both (30 arms on 2 cores: 7.9 → 5.5 s per epoch). Taking the next arm when free, rather than a fixed
    share of them, keeps both cores busy when this shared machine slows one of them (3–4 % faster than
    fixed shares in two of three A/B comparisons here, within the noise in the third), and no group's
    state is ever copied to be stacked with others (peak memory at 100 arms: 2.1 → 1.2 GB)."""

    #: the epoch's partial last batch is padded to full size and masked, so one compiled chunk serves it
    pads_last_batch = True

    def __init__(self, original: Any, n_lams: int, n_seeds: int, flags: tuple[bool, bool] = (False, False),
                 workers: int | None = None) -> None:
        self.groups = [(s, a, b) for s in range(n_seeds) for a, b in split_evenly(n_lams, group_arms())]
        self.kernels: dict[int, _GroupKernel] = {}
        for _, a, b in self.groups:
            if b - a not in self.kernels:
                packed = pack_model(original, b - a)
                if packed is None:
                    raise ValueError("model cannot be packed")
                self.kernels[b - a] = _GroupKernel(original, packed, flags)
        self.workers = worker_count() if workers is None else workers

    @classmethod
    def create(cls, original: Any, n_lams: int, n_seeds: int, flags: tuple[bool, bool] = (False, False)) -> "PackedStrategy | None":
        """The strategy, or None when the model cannot be packed (the caller falls back to vmap)."""
        try:
            return cls(original, n_lams, n_seeds, flags)
        except ValueError:
            return None

    def _kernel(self, g: int) -> _GroupKernel:
        _, a, b = self.groups[g]
        return self.kernels[b - a]

    def eval_data(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[Any, ...]:
        """Evaluation data as chunks of EVAL_ROWS rows, the last one padded and masked (`n_valid` rows
        count): one compiled forward pass serves every chunk, and few large chunks run faster than
        Keras's batches of `batch_size`. The means are the same (sums of per-sample values over the
        same samples), up to the order of float additions."""
        import jax.numpy as jnp

        n = len(x)
        rows = max(1, min(EVAL_ROWS, n))
        k = -(-n // rows)
        pad = k * rows - n
        xp = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
        yp = np.concatenate([y, np.zeros((pad,), y.dtype)]) if pad else y
        n_valid = np.full(k, rows, dtype=np.int32)
        if pad:
            n_valid[-1] = rows - pad
        return (jnp.asarray(xp.reshape((k, rows) + x.shape[1:])), jnp.asarray(yp.reshape(k, rows)), jnp.asarray(n_valid))

    @staticmethod
    def results(m: dict[str, Any]) -> dict[str, Any]:
        import jax.numpy as jnp

        div = lambda a, b: jnp.where(b == 0, 0.0, a / jnp.where(b == 0, 1.0, b))  # noqa: E731 (divide_no_nan)
        return {"loss": div(m["loss_total"], m["loss_count"]), "accuracy": div(m["acc_total"], m["acc_count"]),
                "data_loss": div(m["ce_total"], m["ce_count"])}

    def _grid(self, per_group: list[Any]) -> Any:
        """Per-group [group arms] vectors (or dicts of them) → [seeds, λ] arrays, in arm order."""
        import jax.numpy as jnp

        if isinstance(per_group[0], dict):
            return {k: self._grid([d[k] for d in per_group]) for k in per_group[0]}
        n_seeds = self.groups[-1][0] + 1
        rows = [jnp.concatenate([v for (s, _, _), v in zip(self.groups, per_group) if s == seed]) for seed in range(n_seeds)]
        return jnp.stack(rows)

    def final_weights(self, states: list[tuple]) -> list[list[list[np.ndarray]]]:
        """[seed][λ] → the arm's trainable weights, in the original model's layout and order."""
        out: list[list[list[np.ndarray]]] = []
        for g, ((s, _, _), st) in enumerate(zip(self.groups, states)):
            if s == len(out):
                out.append([])
            out[s].extend(self._kernel(g).packed.unpack(st[0]))
        return out

    def initial_state(self, per_seed_values: list[list[np.ndarray]]) -> list[tuple]:
        import jax.numpy as jnp

        states = []
        for g, (s, a, b) in enumerate(self.groups):
            k = self._kernel(g)
            states.append(([jnp.asarray(v) for v in k.packed.pack([per_seed_values[s]] * (b - a))],
                           [jnp.asarray(v) for v in k.non_trainable], [jnp.asarray(v) for v in k.opt_init],
                           k.zero_metrics()))
        return states

    # the jitted pieces the fused driver calls; the arrays it passes and receives are [seeds, λ]
    def make_functions(self) -> dict[str, Any]:
        import jax
        import jax.numpy as jnp

        groups = list(enumerate(self.groups))

        def group_chunk(st, x_all, y_all, idx, n_valid, coef, active, start, A, freeze):
            """One group through a chunk of batches. Where its arms sit in the sweep (`start`: seed, first
            λ) is an input, so every group of `A` arms shares one compilation."""
            kernel = self.kernels[A]
            s, a = start[0], start[1]
            coef_g = tuple(jax.lax.dynamic_slice(c, (s, a), (1, A))[0] for c in coef)

            def body(carry, step):  # idx_t: [seeds, batch]; n_t: how many of the batch's rows are samples
                idx_t, n_t = step
                rows = jax.lax.dynamic_index_in_dim(idx_t, s, keepdims=False)
                return kernel.train_step(carry, x_all[rows], y_all[rows], coef_g, n_t), None

            carry = tuple(st) + (kernel.penalties(st[0], coef_g),)
            new = jax.lax.scan(body, carry, (idx, n_valid))[0][:4]
            if freeze:  # only once an arm has diverged or stopped: keeping the old state costs memory traffic
                new = kernel.freeze(jax.lax.dynamic_slice(active, (s, a), (1, A))[0], new, st)
            return new, self.results(new[3])

        def group_evaluate(p, x_chunks, y_chunks, n_valid, coef, start, A):
            """One group through all evaluation chunks: its metrics, and each arm's per-example values,
            [A, chunks·rows] (the examples in order, then the last chunk's padding): `example_loss` (the
            cross-entropy the `data_loss` metric sums) and `example_correct` (what `accuracy` counts).
            The values cost next to nothing here, and one compilation serves validation and test sets of
            one size whether their values are wanted or not."""
            kernel = self.kernels[A]
            coef_g = tuple(jax.lax.dynamic_slice(c, (start[0], start[1]), (1, A))[0] for c in coef)

            def step(metrics, xyn):
                xb, yb, n = xyn
                metrics, ce_each, acc_each = kernel.test_step(p[0], p[1], metrics, xb, yb, coef_g, n)
                return metrics, (ce_each, acc_each > 0.5)

            metrics, each = jax.lax.scan(step, kernel.zero_metrics(), (x_chunks, y_chunks, n_valid))
            ce, ok = (jnp.reshape(a, (-1, A)).T for a in each)  # [chunks, rows, A] → [A, chunks·rows]
            return {**self.results(metrics), "example_loss": ce, "example_correct": ok}

        group_train_fn = jax.jit(group_chunk, donate_argnums=(0,), static_argnums=(8, 9))
        group_eval_fn = jax.jit(group_evaluate, static_argnums=(6,))
        starts = [jnp.asarray([s, a], dtype=jnp.int32) for s, a, _ in self.groups]
        sizes = [b - a for _, a, b in self.groups]
        grid = jax.jit(self._grid)
        pool = _worker_pool(self.workers) if self.workers > 1 and len(self.groups) > 1 else None

        def on_workers(call):
            """`call(g)` for every group, in group order; with a pool, each worker takes the next group as soon
            as it is free and waits for its result (the work done on that thread, beside the others)."""
            if pool is None:  # one worker (an accelerator): dispatch every group, then wait once
                return jax.block_until_ready([call(g) for g in range(len(self.groups))])
            return list(pool.map(lambda g: jax.block_until_ready(call(g)), range(len(self.groups))))

        def train_chunk(states, x_all, y_all, idx, n_valid, coef, active, freeze):
            outs = on_workers(lambda g: group_train_fn(states[g], x_all, y_all, idx, n_valid, coef, active,
                                                       starts[g], sizes[g], freeze))
            return [o[0] for o in outs], grid([o[1] for o in outs])

        def evaluate(states, x_chunks, y_chunks, n_valid, coef):
            """Every arm's metrics ([seeds, settings] each) and per-example values (`example_loss`,
            `example_correct`: [seeds, settings, chunks·rows], padded past the set's examples)."""
            return grid(on_workers(lambda g: group_eval_fn((states[g][0], states[g][1]), x_chunks, y_chunks, n_valid,
                                                           coef, starts[g], sizes[g])))

        def kernel_stats(states, coef):
            """(ΣW², the penalty) of every arm's regularized kernels: [seeds, settings] each."""
            sumsq = [self._kernel(g).sumsq(states[g][0]) for g, _ in groups]
            penalty = [self._kernel(g).penalties(states[g][0], tuple(c[s, a:b] for c in coef)) for g, (s, a, b) in groups]
            return self._grid(sumsq), self._grid(penalty)

        def select(mask, a, b):
            return [self._kernel(g).freeze(mask[s, x:y], a[g], b[g]) for g, (s, x, y) in groups]

        def reset_metrics(states):
            return [(st[0], st[1], st[2], self._kernel(g).zero_metrics()) for g, st in enumerate(states)]

        return {
            "train_chunk": train_chunk,  # one compiled call per group, on the worker threads
            "evaluate": evaluate,  # one compiled call per group, on the worker threads
            "evaluate_examples": lambda states, x, y, n_valid, coef, n_examples: evaluate(states, x, y, n_valid, coef),
            "kernel_stats": jax.jit(kernel_stats),
            "reset_metrics": jax.jit(reset_metrics, donate_argnums=(0,)),
            "select": jax.jit(select),  # (mask [S, L], a, b): a's arms where mask, else b's
        }
