"""What every engine shares: the `Listener` it reports to (a base class whose hooks do nothing, as Keras's
`Callback`), and Keras's batch arithmetic."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from reglab.config import Arm
from reglab.record.checkpoint import Checkpoint
from reglab.record.schema import EpochRecord


class Listener:
    """What an engine reports, as Keras's `Callback`: every hook does nothing here, and a listener overrides the
    ones it takes. `arms` is the group training together: one arm for `keras`, all for `fused`.

    `batches_done` may raise KeyboardInterrupt (Ctrl-C, checked at batch boundaries); the engine lets it
    propagate, and the unfinished epoch never reaches the record.
    """

    def arms_started(self, arms: list[Arm], steps_per_epoch: int) -> None:
        """The group starts training; `steps_per_epoch` batches each epoch."""

    def batches_done(self, arms: list[Arm], epoch: int, step: int) -> None:
        """`step` batches of `epoch` are done."""

    def epoch_done(self, record: EpochRecord) -> None:
        """One arm's epoch, as metrics.csv records it."""

    def arm_finished(self, arm: Arm, status: str, test: dict[str, float]) -> None:
        """One arm has ended (`status` as run.json says) with its test metrics."""

    def arms_finished(self, finished: list[tuple[Arm, str, dict[str, float]]]) -> None:
        """`arm_finished` for many arms that end together (the fused engine's), in one call: a listener that
        rewrites a file per call (run.json) overrides it to rewrite it once, not once per arm."""
        for arm, status, test in finished:
            self.arm_finished(arm, status, test)

    def checkpoint(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Everything needed to continue after the epochs recorded so far. `meta["epochs_done"]` maps
        each arm index to its last recorded epoch; the rest is the engine's own."""

    def strategy_chosen(self, name: str) -> None:
        """How the engine lays the arms out (the fused engine's strategy, see fused.strategy_for), said once
        before training starts; run.json keeps it as `engine_strategy`."""

    def validation_values(self, epoch: int, arms: list[int], loss: np.ndarray, correct: np.ndarray) -> None:
        """The per-example validation values of `arms` (arm indices) at `epoch`, sent after the epoch's records
        and before its checkpoint: `loss` float32 [len(arms), n_val], each example's cross-entropy without the
        penalty (its mean is the epoch's `val_data_loss`), `correct` bool [len(arms), n_val] (argmax == label;
        its mean is `val_accuracy`). Engines compute them only for a listener that overrides this hook
        (`wants_values`)."""

    @property
    def wants_values(self) -> bool:
        """Whether this listener takes per-example validation values: it overrides `validation_values`."""
        return type(self).validation_values is not Listener.validation_values

    def epoch_kernels(self, epoch: int, weights: dict[int, list[np.ndarray]]) -> None:
        """Each arm's trainable weights at `epoch`'s end, by arm index, before that epoch's `epoch_done`s;
        engines send them only to a listener that asks (`wants_kernels`): it costs a transfer of every arm's
        weights per epoch."""

    @property
    def wants_kernels(self) -> bool:
        """Whether this listener takes `epoch_kernels` (a TensorBoard histogram per epoch)."""
        return False

    def check_stop(self) -> None:
        """Raises KeyboardInterrupt once a stop has been asked (a signal): engines call it between units of work
        inside an epoch and while preparing, so a stop never waits for a whole pass over every arm."""

    def note(self, text: str) -> None:
        """A line about the sweep's progress (the block executor's), for the progress display."""


class ListenerList(Listener):
    """Several listeners as one, as Keras's `CallbackList`: every event goes to each in order (so a listener
    that writes the record comes before one that publishes what the record holds). Values and kernels go only
    to the listeners that ask for them, and an engine computes them only when one does."""

    def __init__(self, listeners: Iterable[Listener]) -> None:
        self.listeners = list(listeners)

    def arms_started(self, arms: list[Arm], steps_per_epoch: int) -> None:
        for listener in self.listeners:
            listener.arms_started(arms, steps_per_epoch)

    def batches_done(self, arms: list[Arm], epoch: int, step: int) -> None:
        for listener in self.listeners:
            listener.batches_done(arms, epoch, step)

    def epoch_done(self, record: EpochRecord) -> None:
        for listener in self.listeners:
            listener.epoch_done(record)

    def arm_finished(self, arm: Arm, status: str, test: dict[str, float]) -> None:
        for listener in self.listeners:
            listener.arm_finished(arm, status, test)

    def arms_finished(self, finished: list[tuple[Arm, str, dict[str, float]]]) -> None:
        for listener in self.listeners:
            listener.arms_finished(finished)

    def checkpoint(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener.checkpoint(arrays, meta)

    def strategy_chosen(self, name: str) -> None:
        for listener in self.listeners:
            listener.strategy_chosen(name)

    def validation_values(self, epoch: int, arms: list[int], loss: np.ndarray, correct: np.ndarray) -> None:
        for listener in self.listeners:
            if listener.wants_values:
                listener.validation_values(epoch, arms, loss, correct)

    @property
    def wants_values(self) -> bool:
        return any(listener.wants_values for listener in self.listeners)

    def epoch_kernels(self, epoch: int, weights: dict[int, list[np.ndarray]]) -> None:
        for listener in self.listeners:
            if listener.wants_kernels:
                listener.epoch_kernels(epoch, weights)

    @property
    def wants_kernels(self) -> bool:
        return any(listener.wants_kernels for listener in self.listeners)

    def check_stop(self) -> None:
        for listener in self.listeners:
            listener.check_stop()

    def note(self, text: str) -> None:
        for listener in self.listeners:
            listener.note(text)


#: What an engine continues from: its own part of the run's checkpoint (`read_checkpoint`'s, less the record's
#: per-example values).
Resume = Checkpoint


#: (config, splits, listener, resume=None) → each arm's `FinalWeights` (trainable and non-trainable), by arm index
Engine = Callable[..., dict]


def steps_per_epoch(n_samples: int, batch_size: int) -> int:
    """Keras's count: the last batch is partial (50,000 samples at 32 → 1,563 steps)."""
    return -(-n_samples // batch_size)


def clipped_batch(batch_size: int, n_samples: int) -> int:
    """The batch size to use on `n_samples`: Keras's `fit`/`evaluate` with a batch above the data size take
    one batch of every sample, which is exactly a batch of `n_samples`, so memory (index arrays, padding,
    gathered batches) stays bounded by the data whatever size is asked for."""
    return max(1, min(batch_size, n_samples))
