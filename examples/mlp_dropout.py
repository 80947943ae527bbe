"""A deeper MLP with Dropout and no regularizer of its own: `reglab run --model examples/mlp_dropout.py:build_model`.

It declares no kernel_regularizer, so reglab puts L2(λ) on every Dense kernel and says so.
"""

import keras


def build_model() -> keras.Model:
    return keras.Sequential([
        keras.Input(shape=(28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax"),
    ])
