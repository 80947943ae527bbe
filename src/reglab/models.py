"""The seed model: the original study's network, exactly, with λ as its only knob."""

from __future__ import annotations

from typing import Any

from .datasets import NUM_CLASSES

#: The layer whose kernel carries the L2 penalty; its kernel is what `kernel_norm` and `penalty` measure.
REGULARIZED_LAYER = "hidden"


def build_seed_model(input_shape: tuple[int, ...], lam: float) -> Any:
    """`Flatten → Dense(128, relu, kernel_regularizer=l2(λ)) → Dense(10, softmax)`, compiled as the original.

    λ = 0 keeps the `l2(0.0)` regularizer: it adds exactly 0 to the loss and to the gradient, so the
    baseline trains bit-for-bit like an unregularized model while every arm has the same structure.
    """
    from ._keras import keras

    model = keras.Sequential(
        [
            keras.Input(shape=tuple(input_shape)),
            keras.layers.Flatten(),
            keras.layers.Dense(
                128, activation="relu", kernel_regularizer=keras.regularizers.l2(lam), name=REGULARIZED_LAYER
            ),
            keras.layers.Dense(NUM_CLASSES, activation="softmax", name="output"),
        ]
    )
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        # `data_loss` is the cross-entropy alone: Keras's `loss` adds the L2 penalty (see record.py).
        metrics=["accuracy", keras.metrics.SparseCategoricalCrossentropy(name="data_loss")],
    )
    return model


def regularized_kernel(model: Any) -> Any:
    return model.get_layer(REGULARIZED_LAYER).kernel


#: Position of that kernel in `model.trainable_variables` (what engines return per arm).
REGULARIZED_KERNEL_INDEX = 0
