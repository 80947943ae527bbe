"""A user's Keras model prepared for its own stateless steps, with each arm's strengths as inputs.

The vmap and per-arm strategies both train through Keras's `train_step`/`test_step` (any model, any
layer, Keras's semantics by construction); this module does what they share: builds the metrics and
optimizer state as `fit` would, swaps the kernels' regularizers for `TracedPenalty`, and sets each arm's
strengths while a program is traced.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from reglab._keras import keras
from reglab.engines.strategy import (
    Coefficients,
    SeedStart,
    TracedPenalty,
    learning_rate_index,
    regularized_variables,
    with_learning_rate,
)


class ArmState(NamedTuple):
    """One arm's state, in the order Keras's JAX `train_step` takes it (leaves may carry leading arm axes)."""

    trainable: list[Any]
    non_trainable: list[Any]
    optimizer: list[Any]
    metrics: list[Any]


class KerasSteps:
    """Keras's steps on one model for any arm: trace them with an arm's `Coefficients` as inputs."""

    def __init__(self, model: Any, sample: tuple[np.ndarray, np.ndarray], flags: tuple[bool, bool] = (False, False)) -> None:
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
        self.model = model
        self.reg_index = [i for i, v in enumerate(model.trainable_variables) if any(v is r for r in reg_vars)]
        model.reset_metrics()
        self.metric_zeros = [np.asarray(v.value) for v in model.metrics_variables]
        self.opt_init = [np.asarray(v.value) for v in model.optimizer.variables]
        self.lr_index = learning_rate_index(model.optimizer)

    def set_coef(self, coef: Coefficients) -> None:
        """While tracing: the arm's strengths where Keras reads them."""
        for p in self.penalties:
            p.l1, p.l2 = coef.l1, coef.l2
        if self.has_wd:  # Keras's optimizer reads it while applying the update (`_apply_weight_decay`)
            self.model.optimizer.weight_decay = coef.wd

    def start(self, seed: SeedStart, learning_rate: float) -> ArmState:
        """An arm's state before its first step: the optimizer's state as Keras builds it, at the arm's learning rate."""
        return ArmState([jnp.asarray(v) for v in seed.trainable], [jnp.asarray(v) for v in seed.non_trainable],
                        [jnp.asarray(v) for v in with_learning_rate(self.opt_init, self.lr_index, learning_rate)],
                        self.zero_metrics())

    def zero_metrics(self) -> list[Any]:
        return [jnp.asarray(z) for z in self.metric_zeros]  # distinct buffers: states are donated

    def train_step(self, state: ArmState, x: Any, y: Any, coef: Coefficients) -> tuple[dict[str, Any], ArmState]:
        self.set_coef(coef)
        logs, new = self.model.train_step(tuple(state), (x, y))
        return logs, ArmState(*new)

    def test_step(self, state: ArmState, x: Any, y: Any, coef: Coefficients) -> tuple[dict[str, Any], list[Any]]:
        """Keras's evaluation step; returns its logs and the new metric values."""
        self.set_coef(coef)
        logs, (_, _, metrics) = self.model.test_step((state.trainable, state.non_trainable, state.metrics), (x, y))
        return logs, metrics

    def examples(self, trainable: list[Any], non_trainable: list[Any], x: Any, y: Any) -> tuple[Any, Any]:
        """Per-example values from the forward pass `test_step` makes (training=False): the cross-entropy
        its `data_loss` metric averages and whether the prediction is right."""
        y_pred, _ = self.model.stateless_call(trainable, non_trainable, x, training=False)
        return (keras.losses.sparse_categorical_crossentropy(y, y_pred),
                keras.metrics.sparse_categorical_accuracy(y, y_pred) > 0.5)

    def kernel_stats(self, trainable: list[Any], coef: Coefficients) -> tuple[Any, Any]:
        """(ΣW², the penalty) over the regularized kernels; leading axes of `coef` are arm axes, shared
        by the kernels' leading axes."""
        lead = np.ndim(coef.l2)

        def total(f: Any) -> Any:
            return sum(jnp.sum(f(trainable[i]), axis=tuple(range(lead, trainable[i].ndim))) for i in self.reg_index)
        sumsq = total(jnp.square)
        penalty = (coef.l1 * total(jnp.abs) + coef.l2 * sumsq) if self.has_l1 else coef.l2 * sumsq
        return sumsq, penalty
