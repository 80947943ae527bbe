"""Training engines: each turns (config, splits) into a stream of per-epoch records for every arm.

An engine reports through a `Listener` and never writes files or plots; the runner hands it a
`ListenerList` of the record's, the progress display's and the publishers' listeners.
"""

from __future__ import annotations

from typing import Any

from reglab.config import SweepConfig
from reglab.engines.base import (
    Engine,
    Listener,
    ListenerList,
    Resume,
    clipped_batch,
    steps_per_epoch,
)
from reglab.record.arrays import FinalWeights


def get_engine(name: str) -> Engine:
    if name == "keras":
        from reglab.engines.keras_fit import train as keras_train  # two names: the engines' signatures differ

        return keras_train
    if name == "fused":
        from reglab.engines.fused import train as fused_train

        return fused_train
    raise ValueError(f"unknown engine {name!r}")  # config validation makes this unreachable


def check_checkpoint(engine: str, meta: dict[str, Any], config: SweepConfig) -> None:
    """Raises ValueError (or KeyError, TypeError) unless `meta` has `engine`'s own checkpoint layout for `config`."""
    if engine == "fused":
        from reglab.engines.fused import check_checkpoint as check
    else:
        from reglab.engines.keras_fit import check_checkpoint as check
    check(meta, config)


__all__ = [
    "Engine", "FinalWeights", "Listener", "ListenerList", "Resume", "check_checkpoint", "clipped_batch", "get_engine",
    "steps_per_epoch",
]
