"""Pack A arms of a Dense network into one Keras model whose matrix products serve every arm at once.

Why: vmapping a Dense layer over arms turns each step's products into many small batched matmuls plus
layout copies; XLA on a CPU runs those far below its matmul speed. Packing lays the first kernel of
every arm side by side, `[in, A·units]`, so the first layer (nearly all of the work) is one plain
matrix product, `x @ [W₁ | W₂ | … | W_A]`; later layers are per-arm `EinsumDense("bai,aio->bao")`.
Columns of one arm never mix with another's, so each arm computes exactly what its own model would
(up to the summation order inside the product, ~1e-7).

The packed model is built from the user's model layer by layer; a model with a layer this module
does not know returns `None` (the fused engine then trains it another way; see fused.strategy_for).
The strategy that trains packed models is in packed.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reglab._keras import keras


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
