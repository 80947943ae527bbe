"""The models a sweep trains: the original study's network, or the user's own (`--model FILE.py:FUNC`),
with λ as the only knob, compiled as the study compiles.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from reglab.config import SGD_MOMENTUM
from reglab.data.splits import NUM_CLASSES  # the original study's: MNIST's ten digits
from reglab.errors import ConfigError
from reglab.inputs import MiB, brief, read_regular
from reglab.settings import DEFAULT_LEARNING_RATE, parse_family

if TYPE_CHECKING:
    import numpy as np

#: The seed model's regularized layer (the kernel `kernel_norm` and `penalty` measure).
REGULARIZED_LAYER = "hidden"
#: A model file is a page of Python; a bigger one (or a FIFO, a device) is refused before it is run.
MAX_MODEL_BYTES = 1 * MiB


def family_regularizer(family: str, lam: float) -> Any:
    """The Keras regularizer an arm of `family` at strength λ puts on its kernels. Weight decay is not a
    loss term: its kernels carry `L2(0.0)`, which adds exactly 0 to the loss and the gradient and marks
    them as the ones the optimizer decays."""
    from reglab._keras import keras

    f = parse_family(family)
    name, l1, l2 = f.name, f.l1, f.l2
    if name == "l2":
        return keras.regularizers.L2(lam)
    if name == "l1":
        return keras.regularizers.L1(lam)
    if name.startswith("l1_l2"):
        return keras.regularizers.L1L2(l1=l1 * lam, l2=l2 * lam)
    return keras.regularizers.L2(0.0)


def make_optimizer(name: str, learning_rate: float, weight_decay: float | None = None) -> Any:
    """Keras's Adam, or SGD with momentum 0.9, at `learning_rate`, with Keras's decoupled `weight_decay`."""
    from reglab._keras import keras

    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=SGD_MOMENTUM, weight_decay=weight_decay)
    return keras.optimizers.Adam(learning_rate=learning_rate, weight_decay=weight_decay)


def compile_model(model: Any, family: str = "l2", lam: float = 0.0, learning_rate: float = DEFAULT_LEARNING_RATE,
                  optimizer_name: str = "adam") -> None:
    """Compile as the study compiles (adam, sparse categorical cross-entropy, accuracy, data loss), at
    `learning_rate` (Keras's default: exactly the study's "adam"), or with SGD(momentum=0.9); for
    `weight_decay`, the optimizer's decoupled `weight_decay=λ` on the regularized kernels only."""
    from reglab._keras import keras

    optimizer: Any = make_optimizer(optimizer_name, learning_rate)
    if parse_family(family).name == "weight_decay":
        optimizer = make_optimizer(optimizer_name, learning_rate, lam)
        targets = {id(v) for v in regularized_variables(model)}
        optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if id(v) not in targets])
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        # `data_loss` is the cross-entropy alone: Keras's `loss` adds the penalty (see record.py).
        metrics=["accuracy", keras.metrics.SparseCategoricalCrossentropy(name="data_loss")],
    )


def build_seed_model(input_shape: tuple[int, ...], lam: float, family: str = "l2",
                     learning_rate: float = DEFAULT_LEARNING_RATE, optimizer: str = "adam",
                     n_classes: int = NUM_CLASSES) -> Any:
    """`Flatten → Dense(128, relu, kernel_regularizer=l2(λ)) → Dense(K, softmax)`, compiled as the original
    (K = 10 there; with another family, its regularizer or optimizer in place of L2: see `family_regularizer`).
    For a table (`input_shape` = (features,)) the Flatten is a no-op.

    λ = 0 keeps the `l2(0.0)` regularizer: it adds exactly 0 to the loss and to the gradient, so the
    baseline trains bit-for-bit like an unregularized model while every arm has the same structure.
    """
    from reglab._keras import keras

    model = keras.Sequential(
        [
            keras.Input(shape=tuple(input_shape)),
            keras.layers.Flatten(),
            keras.layers.Dense(
                128, activation="relu", kernel_regularizer=family_regularizer(family, lam), name=REGULARIZED_LAYER
            ),
            keras.layers.Dense(n_classes, activation="softmax", name="output"),
        ]
    )
    compile_model(model, family, lam, learning_rate, optimizer)
    return model



# ---------------------------------------------------------------- the user's own model

def _one_line(e: BaseException) -> str:
    return re.sub(r"\s+", " ", f"{type(e).__name__}: {e}").strip()


def load_builder(spec: str) -> Callable[[], Any]:
    """`path/to/file.py:build_model` → that function (the file is run as a module once per version of its
    content). The source is read once, from a regular file of at most MAX_MODEL_BYTES, and that text is run."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name.isidentifier():
        raise ConfigError(f"--model must be FILE.py:FUNCTION, got {brief(spec)}")
    file = Path(path)
    source = read_regular(file, "model file", MAX_MODEL_BYTES, ConfigError)
    return _load_builder(file.resolve(), name, source)


@functools.lru_cache(maxsize=8)
def _load_builder(file: Path, name: str, source: bytes) -> Callable[[], Any]:
    module_spec = importlib.util.spec_from_file_location(f"reglab_user_model_{abs(hash(str(file.resolve())))}", file)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"{file} cannot be loaded as Python")
    module = importlib.util.module_from_spec(module_spec)
    try:  # the text that was checked and read, not the file again (it may have changed since)
        exec(compile(source, str(file), "exec"), module.__dict__)
    except SystemExit as e:  # sys.exit() in the user's file must not end reglab with nothing said
        raise ConfigError(f"{file} called sys.exit({brief(e.code)}) while loading") from None
    except Exception as e:  # the user's code: any error becomes one line
        raise ConfigError(f"{file} failed to load ({_one_line(e)})") from None
    builder = getattr(module, name, None)
    if not callable(builder):
        raise ConfigError(f"{file} has no function {brief(name)}")
    return builder


def _kernels(model: Any) -> list[Any]:
    from reglab._keras import keras

    kinds = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
    out = []
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, kinds) and getattr(layer, "kernel", None) is not None:
            out.append(layer.kernel)
    return out


def build_user_model(spec: str, input_shape: tuple[int, ...], lam: float, family: str = "l2",
                     learning_rate: float = DEFAULT_LEARNING_RATE, optimizer: str = "adam",
                     n_classes: int = NUM_CLASSES, sample: np.ndarray | None = None) -> tuple[Any, list[str], bool]:
    """The user's model with every regularized kernel's regularizer replaced by the family's at λ — or, when
    it declares none, put on every Dense/Conv kernel — compiled as the study compiles. Returns (model, the paths of
    the kernels that carry the penalty, whether reglab chose them). Anything that cannot work is a
    one-line `ConfigError`. `sample`: a few training inputs, to check the outputs are probabilities when the
    last layer does not say (see `check_probabilities`)."""
    from reglab._keras import keras

    try:
        model = load_builder(spec)()
    except ConfigError:
        raise
    except SystemExit as e:  # KeyboardInterrupt is not caught: Ctrl-C still interrupts
        raise ConfigError(f"--model {spec}: the builder called sys.exit({brief(e.code)}) while building the model") from None
    except Exception as e:
        raise ConfigError(f"--model {spec}: the builder raised {_one_line(e)}") from None
    if not isinstance(model, keras.Model):
        raise ConfigError(f"--model {spec} returned {type(model).__name__}, not a Keras model")
    inputs, outputs = _io_shapes(model, spec)
    if inputs != tuple(input_shape):
        raise ConfigError(f"--model {spec}: the model takes inputs of shape {inputs}, the data's inputs are {tuple(input_shape)}")
    if outputs != (n_classes,):
        raise ConfigError(f"--model {spec}: the model must output {n_classes} class probabilities (softmax, one per class "
                          f"of the data), it outputs shape {outputs}")
    check_probabilities(model, spec, sample)
    declared = [v for v in model.trainable_variables if getattr(v, "regularizer", None) is not None]
    for v in declared:
        if not isinstance(v.regularizer, (keras.regularizers.L2, keras.regularizers.L1, keras.regularizers.L1L2)):
            raise ConfigError(f"--model {spec}: {v.path} has a {type(v.regularizer).__name__} regularizer; "
                              "declare L1, L2 or L1L2 (the sweep replaces it with the family it compares)")
    targets = declared or _kernels(model)
    if not targets:
        raise ConfigError(f"--model {spec}: the model has no Dense or Conv kernel to regularize")
    for v in targets:
        v.regularizer = family_regularizer(family, lam)
    compile_model(model, family, lam, learning_rate, optimizer)
    return model, [v.path for v in targets], not declared


def _io_shapes(model: Any, spec: str) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(one sample's input shape, one sample's output shape); a model of several inputs or outputs is refused in
    words (Keras gives their shapes as a list of tuples)."""
    try:
        n_in, n_out = len(model.inputs), len(model.outputs)
        shapes = model.input_shape, model.output_shape
    except (AttributeError, ValueError, TypeError):
        raise ConfigError(f"--model {spec}: the model must declare its input shape (start it with keras.Input)") from None
    for n, what in ((n_in, "inputs"), (n_out, "outputs")):
        if n != 1:
            raise ConfigError(f"--model {spec}: the model has {n} {what}; reglab trains a model of one input and one "
                              "output, the class probabilities")
    return tuple(shapes[0][1:]), tuple(shapes[1][1:])


def check_probabilities(model: Any, spec: str, sample: np.ndarray | None = None) -> None:
    """The model must output class probabilities, or every loss reglab records is meaningless: its last layer
    ends in softmax (a Softmax layer, or a Dense/EinsumDense/Activation layer whose activation is softmax); for
    any other last layer, its outputs on `sample` (a few training inputs) must be non-negative and sum to 1
    within 1e-3 (without a sample, such a layer is taken on trust)."""
    from reglab._keras import keras

    layer = _output_layer(model)
    if isinstance(layer, keras.layers.Softmax):
        return
    if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Activation)):
        name = getattr(layer.activation, "__name__", type(layer.activation).__name__)
        if name.lower() != "softmax":  # keras.activations.softmax, jax.nn.softmax, a Softmax layer as activation
            raise ConfigError(f"--model {spec}: the model's last layer ({layer.name}) has activation {name}, so its "
                              "outputs are not class probabilities; end the model with softmax (activation=\"softmax\")")
        return
    if sample is not None and not _are_probabilities(model, sample, spec):
        raise ConfigError(f"--model {spec}: the model's outputs are not class probabilities (non-negative, summing "
                          "to 1); end the model with softmax (activation=\"softmax\")")


def _output_layer(model: Any) -> Any:
    """The layer that produces the model's output (a Sequential's last; a functional model's output's)."""
    history = getattr(model.outputs[0], "_keras_history", None)
    if history is not None and getattr(history, "operation", None) is not None:
        return history.operation
    return model.layers[-1] if model.layers else None


def _are_probabilities(model: Any, sample: np.ndarray, spec: str) -> bool:
    try:
        out = np.asarray(model(np.asarray(sample, dtype="float32"), training=False), dtype=np.float64)
    except Exception as e:  # the user's layers: any failure is one line
        raise ConfigError(f"--model {spec}: the model failed on the training inputs ({_one_line(e)})") from None
    return bool(np.isfinite(out).all() and (out >= 0).all() and (np.abs(out.sum(axis=-1) - 1) <= 1e-3).all())


def build_model(spec: str, input_shape: tuple[int, ...], lam: float, family: str = "l2",
                learning_rate: float = DEFAULT_LEARNING_RATE, optimizer: str = "adam", n_classes: int = NUM_CLASSES) -> Any:
    """The sweep's model for one arm: the seed model, or the user's (`spec` = FILE.py:FUNCTION), with
    `n_classes` outputs (the data's class count)."""
    if not spec:
        return build_seed_model(input_shape, lam, family, learning_rate, optimizer, n_classes)
    return build_user_model(spec, input_shape, lam, family, learning_rate, optimizer, n_classes)[0]


def regularized_variables(model: Any) -> list[Any]:
    """The variables whose penalty the sweep varies (in `trainable_variables` order)."""
    return [v for v in model.trainable_variables if getattr(v, "regularizer", None) is not None]


def regularized_indices(model: Any) -> list[int]:
    ids = {id(v) for v in regularized_variables(model)}
    return [i for i, v in enumerate(model.trainable_variables) if id(v) in ids]


def penalty_and_norm(model: Any) -> tuple[float, float]:
    """(the penalty summed over the regularized kernels as Keras adds it (0 for weight decay), ‖W‖ over all of them in float64)."""
    penalty, sumsq = 0.0, 0.0
    for v in regularized_variables(model):
        penalty += float(np.asarray(v.regularizer(v.value)))
        w = np.asarray(v.value, dtype=np.float64)
        sumsq += float(np.sum(w * w))
    return penalty, float(np.sqrt(sumsq))


def kernels_of(weights: list[np.ndarray], indices: list[int]) -> np.ndarray:
    """What kernels.npz keeps of an arm: its regularized kernel (several: flattened and concatenated)."""
    if len(indices) == 1:
        return np.asarray(weights[indices[0]])
    return np.concatenate([np.asarray(weights[i]).ravel() for i in indices])
