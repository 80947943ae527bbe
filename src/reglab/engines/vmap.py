"""The vmap strategy: Keras's own `train_step`/`test_step`, `jax.vmap`ped over a (seeds × settings) grid.

The outer vmap runs over seeds (each with its own batches), the inner one over the seed's settings
(arms of one seed share the batch). Any model trains this way; on an accelerator one wide program for
every arm is what pays. On a CPU the vmapped products become batched matmuls with layout copies and
convolutions run inside XLA's loop body, so there the per-arm strategy is used instead (per_arm.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from reglab.engines.keras_steps import ArmState, KerasSteps
from reglab.engines.strategy import Coefficients, Results, SeedStart
from reglab.record.arrays import FinalWeights


class KerasBatches(NamedTuple):
    """An evaluation set as Keras's `evaluate` batches it: full batches, then the partial last one (or None)."""

    x_full: Any
    y_full: Any
    x_last: Any
    y_last: Any

    @staticmethod
    def of(x: np.ndarray, y: np.ndarray, batch_size: int) -> KerasBatches:
        n_full = len(x) // batch_size

        def split(a: np.ndarray) -> tuple[Any, Any]:
            full = a[: n_full * batch_size].reshape((n_full, batch_size) + a.shape[1:])
            rest = a[n_full * batch_size:]
            return jnp.asarray(full), (jnp.asarray(rest) if len(rest) else None)
        (xf, xl), (yf, yl) = split(x), split(y)
        return KerasBatches(xf, yf, xl, yl)


def _pick(mask: Any, new: Any, old: Any) -> Any:
    """`new`'s arms where `mask` ([seeds, settings]), else `old`'s, leaf by leaf."""
    def pick(n: Any, o: Any) -> Any:
        return jnp.where(mask.reshape(mask.shape + (1,) * (n.ndim - mask.ndim)), n, o)
    return jax.tree_util.tree_map(pick, new, old)


class VmapStrategy:
    """Every arm in one vmapped program: [seeds, settings, ...] leaves."""

    name = "vmap"
    pads_last_batch = False

    def __init__(self, steps: KerasSteps, learning_rates: Sequence[float]) -> None:
        self.steps, self.n_lams = steps, len(learning_rates)
        self.learning_rates = list(learning_rates)  # each setting's
        self.check: Callable[[], None] = lambda: None  # one program for every arm: nothing to check between
        train_step = jax.vmap(jax.vmap(steps.train_step, in_axes=(0, None, None, 0)), in_axes=(0, 0, 0, 0))
        test_step = jax.vmap(jax.vmap(steps.test_step, in_axes=(0, None, None, 0)), in_axes=(0, None, None, 0))
        examples_step = jax.vmap(jax.vmap(steps.examples, in_axes=(0, 0, None, None)), in_axes=(0, 0, None, None))

        def train_chunk(state, x_all, y_all, idx, coef, active, do_freeze):
            def body(state, idx_t):
                logs, new_state = train_step(state, x_all[idx_t], y_all[idx_t], coef)
                return new_state, logs
            new_state, logs = jax.lax.scan(body, state, idx)
            if do_freeze:
                new_state = ArmState(*_pick(active, tuple(new_state), tuple(state)))
            return new_state, jax.tree_util.tree_map(lambda a: a[-1], logs)

        def evaluate(state, data, coef, examples):
            zeros = [jnp.broadcast_to(z, coef.l2.shape + z.shape) for z in steps.metric_zeros]
            st = state._replace(metrics=zeros)

            def body(metrics, xy):
                logs, metrics = test_step(st._replace(metrics=metrics), xy[0], xy[1], coef)
                return metrics, logs
            metrics, logs = jax.lax.scan(body, zeros, (data.x_full, data.y_full))
            logs = jax.tree_util.tree_map(lambda a: a[-1], logs)
            if data.x_last is not None:
                logs, _ = test_step(st._replace(metrics=metrics), data.x_last, data.y_last, coef)
            logs = dict(logs)
            if examples:  # a second forward pass: `test_step` keeps no per-example values
                _, each = jax.lax.scan(lambda c, xy: (c, examples_step(state.trainable, state.non_trainable, xy[0], xy[1])),
                                       None, (data.x_full, data.y_full))
                parts = [jnp.reshape(jnp.moveaxis(a, 0, 2), a.shape[1:3] + (-1,)) for a in each]  # [S, L, batches·B]
                if data.x_last is not None:
                    last = examples_step(state.trainable, state.non_trainable, data.x_last, data.y_last)
                    parts = [jnp.concatenate([p, q], axis=2) for p, q in zip(parts, last)]
                logs.update(example_loss=parts[0], example_correct=parts[1])
            return logs

        def reset_metrics(state):
            return state._replace(metrics=[jnp.broadcast_to(z, state.trainable[0].shape[:2] + z.shape) for z in steps.metric_zeros])

        self._train = jax.jit(train_chunk, donate_argnums=(0,), static_argnums=(6,))
        self._evaluate = jax.jit(evaluate, static_argnums=(3,))
        self._kernel_stats = jax.jit(lambda state, coef: steps.kernel_stats(state.trainable, coef))
        self._reset = jax.jit(reset_metrics, donate_argnums=(0,))
        self._select = jax.jit(lambda mask, a, b: ArmState(*_pick(mask, tuple(a), tuple(b))))

    def initial_state(self, starts: Sequence[SeedStart]) -> ArmState:
        S, L = len(starts), self.n_lams

        def per_seed(values: list[list[np.ndarray]]) -> list[Any]:
            return [jnp.asarray(np.broadcast_to(np.stack(leaves)[:, None], (S, L) + leaves[0].shape).copy()) for leaves in zip(*values)]

        def shared(values: list[np.ndarray]) -> list[Any]:
            return [jnp.asarray(np.broadcast_to(np.asarray(v), (S, L) + np.shape(v)).copy()) for v in values]
        optimizer = shared(self.steps.opt_init)
        lr = optimizer[self.steps.lr_index]
        optimizer[self.steps.lr_index] = jnp.asarray(np.broadcast_to(np.asarray(self.learning_rates, dtype=lr.dtype), (S, L)).copy())
        return ArmState(per_seed([s.trainable for s in starts]), per_seed([s.non_trainable for s in starts]),
                        optimizer, shared(self.steps.metric_zeros))

    def train_chunk(self, state: ArmState, x_all: Any, y_all: Any, idx: np.ndarray, n_valid: np.ndarray | None,
                    coef: Coefficients, active: np.ndarray, freeze: bool) -> tuple[ArmState, Results]:
        return self._train(state, x_all, y_all, jnp.asarray(idx, dtype=jnp.int32), coef, jnp.asarray(active), freeze)

    def eval_data(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> KerasBatches:
        return KerasBatches.of(x, y, batch_size)

    def evaluate(self, state: ArmState, data: KerasBatches, coef: Coefficients, examples: bool) -> Results:
        return self._evaluate(state, data, coef, examples)

    def kernel_stats(self, state: ArmState, coef: Coefficients) -> tuple[Any, Any]:
        return self._kernel_stats(state, coef)

    def reset_metrics(self, state: ArmState) -> ArmState:
        return self._reset(state)

    def select(self, mask: np.ndarray, a: ArmState, b: ArmState) -> ArmState:
        return self._select(jnp.asarray(mask), a, b)

    def final_weights(self, state: ArmState) -> list[list[FinalWeights]]:
        trainable = [np.asarray(v) for v in state.trainable]
        non_trainable = [np.asarray(v) for v in state.non_trainable]
        S, L = trainable[0].shape[:2]
        return [[FinalWeights([np.array(v[s, l]) for v in trainable], [np.array(v[s, l]) for v in non_trainable])
                 for l in range(L)] for s in range(S)]
