"""A small CNN for 28×28 digits, its kernels declaring L2: `reglab run --model examples/cnn.py:build_model`.

reglab sweeps the strength of the regularizers declared here (the 1e-4 below is replaced by each λ).
"""

import keras


def build_model() -> keras.Model:
    return keras.Sequential([
        keras.Input(shape=(28, 28)),
        keras.layers.Reshape((28, 28, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", kernel_regularizer=keras.regularizers.l2(1e-4)),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(16, 3, activation="relu", kernel_regularizer=keras.regularizers.l2(1e-4)),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu", kernel_regularizer=keras.regularizers.l2(1e-4)),
        keras.layers.Dense(10, activation="softmax"),
    ])
