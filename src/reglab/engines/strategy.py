"""What every strategy of the fused engine shares: the interface the driver calls, each arm's
regularization strengths as program inputs, and the per-seed starting point.

A strategy holds every arm's training state and the compiled programs that advance it; the driver
(fused.py) owns the epochs, shuffles, checkpoints and records. Strategies differ only in how the
arms' work is laid out on the hardware (see `choose` in fused.py and docs/engines.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import jax.numpy as jnp
import numpy as np

from reglab._keras import keras
from reglab.config import SweepConfig
from reglab.errors import ConfigError
from reglab.model import build as models
from reglab.record.arrays import FinalWeights
from reglab.settings import parse_family


class SeedStart(NamedTuple):
    """What one seed's arms start from: the model `keras.utils.set_random_seed(seed)` builds, as values.
    `non_trainable` holds, besides BatchNormalization's statistics, the state of every Dropout layer's
    seed generator: it differs from seed to seed."""

    trainable: list[np.ndarray]
    non_trainable: list[np.ndarray]


class Coefficients(NamedTuple):
    """Each arm's regularization as three [seeds, settings] float32 arrays: the L1 and L2 strengths of its
    penalty and its decoupled weight decay (see settings.parse_family)."""

    l1: Any
    l2: Any
    wd: Any

    @staticmethod
    def of(config: SweepConfig) -> tuple[Coefficients, tuple[bool, bool]]:
        """The sweep's strengths, and which of them it uses at all (static: a pure L2 sweep compiles no
        L1 or decay arithmetic): (any L1 term, any weight decay)."""
        families = [parse_family(s.family) for s in config.settings()]
        parts = [(f.l1, f.l2, f.decay) for f in families]
        lams = [s.strength for s in config.settings()]
        S = len(config.seed_values)
        # the Python-float products Keras's regularizers and optimizer hold, cast to float32 as they cast them
        grid = [np.broadcast_to(np.asarray([m[i] * lam for m, lam in zip(parts, lams)], dtype=np.float32), (S, len(lams))).copy()
                for i in range(3)]
        flags = (any(m[0] > 0 for m in parts), any(m[2] > 0 for m in parts))
        return Coefficients(*(jnp.asarray(g) for g in grid)), flags

    def arm(self, seed_index: int, setting_index: int) -> Coefficients:
        """One arm's strengths, as three float32 scalars."""
        return Coefficients(*(c[seed_index, setting_index] for c in self))


def learning_rate_index(optimizer: Any) -> int:
    """Where a Keras optimizer keeps its learning rate among its variables. It is state, not a constant of
    the compiled step: Keras reads it from the optimizer's variables in `stateless_apply`, so each arm's
    learning rate is its own optimizer state's (one compilation serves every value)."""
    found = [i for i, v in enumerate(optimizer.variables) if v.path.endswith("learning_rate")]
    if len(found) != 1:
        raise ConfigError(f"the optimizer {type(optimizer).__name__} keeps no learning-rate variable reglab can set")
    return found[0]


def with_learning_rate(optimizer_state: Sequence[np.ndarray], index: int, learning_rate: float) -> list[np.ndarray]:
    """The optimizer's state with its learning rate set, as Keras stores `Adam(learning_rate=…)` (float32)."""
    out = list(optimizer_state)
    out[index] = np.asarray(learning_rate, dtype=np.asarray(out[index]).dtype)
    return out


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


#: An epoch's training logs or an evaluation's results: metric name → [seeds, settings] values
#: (evaluations may add `example_loss`/`example_correct`, [seeds, settings, n]).
Results = dict[str, Any]


class Strategy(Protocol):
    """How the arms' state is held and advanced. All [seeds, settings] arrays are in arm order."""

    #: named in run.json (`engine_strategy`) and in checkpoints: a checkpoint resumes only with its own
    name: str
    #: whether `train_chunk` takes the epoch's partial last batch padded to full size (`n_valid` rows
    #: count) rather than as a batch of its own shape
    pads_last_batch: bool
    #: raises KeyboardInterrupt once a stop is asked; the driver sets it, and a strategy that runs its
    #: arms in several calls checks it between them (a stop lands within one call, not one pass over all)
    check: Callable[[], None]

    def initial_state(self, starts: Sequence[SeedStart]) -> Any:
        """Every arm's state before its first step (the arms of a seed start alike, each at its setting's
        learning rate)."""

    def train_chunk(self, state: Any, x_all: Any, y_all: Any, idx: np.ndarray, n_valid: np.ndarray | None,
                    coef: Coefficients, active: np.ndarray, freeze: bool) -> tuple[Any, Results]:
        """The arms through `idx.shape[0]` steps (`idx`: [steps, seeds, batch] rows of the training set;
        a seed's arms share its batches). Arms not `active` keep their state (`freeze` says whether any
        is inactive). Returns the new state and the metrics' running values after the last step."""

    def eval_data(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> Any:
        """An evaluation set in the layout `evaluate` takes."""

    def evaluate(self, state: Any, data: Any, coef: Coefficients, examples: bool) -> Results:
        """Every arm's metrics on an evaluation set; with `examples`, also each example's cross-entropy
        (`example_loss`) and correctness (`example_correct`), [seeds, settings, ≥ n] (padding past n)."""

    def kernel_stats(self, state: Any, coef: Coefficients) -> tuple[Any, Any]:
        """(ΣW², the penalty) of every arm's regularized kernels, [seeds, settings] each."""

    def reset_metrics(self, state: Any) -> Any:
        """The state with every arm's metrics at zero (the start of an epoch)."""

    def select(self, mask: np.ndarray, a: Any, b: Any) -> Any:
        """A state of copies: `a`'s arms where `mask` ([seeds, settings]), else `b`'s."""

    def final_weights(self, state: Any) -> list[list[FinalWeights]]:
        """[seed][setting] → the arm's trainable and non-trainable weights, in the original model's layout and order."""
