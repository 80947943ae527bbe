"""Training engines: each turns (config, splits) into a stream of per-epoch records for every arm.

An engine reports through a `Listener` and never writes files or plots; the runner wires a listener
to the Recorder and the progress display.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from ..config import Arm, SweepConfig
from ..datasets import Splits
from ..record import EpochRecord


class Listener(Protocol):
    def arm_started(self, arm: Arm, steps_per_epoch: int) -> None: ...
    def batch_done(self, arm: Arm, epoch: int, step: int) -> None: ...
    def epoch_done(self, record: EpochRecord) -> None: ...
    def arm_finished(self, arm: Arm, status: str, test: dict[str, float]) -> None: ...


Engine = Callable[[SweepConfig, Splits, Listener], None]


def get_engine(name: str) -> Engine:
    if name == "keras":
        from .keras_fit import train

        return train
    raise ValueError(f"unknown engine {name!r}")  # config validation makes this unreachable


def steps_per_epoch(n_samples: int, batch_size: int) -> int:
    """Keras's count: the last batch is partial (50,000 samples at 32 → 1,563 steps)."""
    return -(-n_samples // batch_size)


__all__: list[Any] = ["Listener", "Engine", "get_engine", "steps_per_epoch"]
