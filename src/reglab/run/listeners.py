"""The listeners a sweep hands its engine (as one `ListenerList`): the record's, the publishers' and, beside them in
runner, the stop flag and the progress display. Each owns one destination of the engine's events."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from reglab.config import Arm
from reglab.engines import Listener
from reglab.model.build import kernels_of
from reglab.record.arrays import ValidationStore
from reglab.record.checkpoint import write_checkpoint
from reglab.record.schema import EpochRecord
from reglab.record.writer import Recorder, utc_now
from reglab.tracking.base import Publishers
from reglab.tracking.publish import register_published


class LazyRecorder:
    """The run's Recorder, opened when first needed (`opener`), or already open (a new run); `on_open` runs once
    when it is (the publishers' start)."""

    def __init__(self, run_dir: Path, recorder: Recorder | None = None, opener: Callable[[], Recorder] | None = None) -> None:
        self.run_dir, self.recorder, self.opener = run_dir, recorder, opener
        self.on_open: Callable[[], None] | None = None

    def open(self) -> Recorder:
        if self.recorder is None:
            assert self.opener is not None
            self.recorder = self.opener()
        if self.on_open is not None:
            call, self.on_open = self.on_open, None
            call()
        return self.recorder


class RecordListener(Listener):
    """Writes what the engine reports to the run directory: metrics.csv rows, run.json arm states, checkpoints.

    The record is opened on the first event, not before: a resumed run writes nothing until its engine
    has taken the checkpoint (a checkpoint that does not fit the model is refused with the record untouched).
    Every checkpoint carries the run's fingerprint (configuration, data, model file), checked on resume, and
    the per-example validation values gathered so far (`values`), which validation.npz is written from.
    """

    def __init__(self, record: LazyRecorder, fingerprint: dict[str, Any], values: ValidationStore) -> None:
        self.record, self.fingerprint, self.values = record, fingerprint, values

    @property
    def recorder(self) -> Recorder:
        return self.record.open()

    def arms_started(self, arms: list[Arm], steps_per_epoch: int) -> None:
        self.recorder.update_arms([arm.index for arm in arms], status="running", started_at=utc_now())

    def epoch_done(self, record: EpochRecord) -> None:
        self.recorder.append(record)

    def arm_finished(self, arm: Arm, status: str, test: dict[str, float]) -> None:
        self.recorder.update_arm(arm.index, status=status, test=test, ended_at=utc_now())

    def arms_finished(self, finished: list[tuple[Arm, str, dict[str, float]]]) -> None:
        """Arms that end together, with one rewrite of run.json: one per arm costs arms² bytes (1,000 arms: 65 s)."""
        recorder, ended = self.recorder, utc_now()
        for arm, status, test in finished:
            recorder.meta["arms"][arm.index].update(status=status, test=test, ended_at=ended)
        recorder.update_arms([])  # the one atomic rewrite

    def strategy_chosen(self, name: str) -> None:
        self.recorder.update_run(engine_strategy=name)

    def validation_values(self, epoch: int, arms: list[int], loss: np.ndarray, correct: np.ndarray) -> None:
        self.values.add(epoch, arms, loss, correct)  # kept in memory; on disk with the epoch's checkpoint

    def checkpoint(self, arrays: dict[str, Any], meta: dict[str, Any]) -> None:
        write_checkpoint(self.recorder.run_dir, {**arrays, **self.values.arrays()}, {**meta, "fingerprint": self.fingerprint})
        register_published(self.recorder.run_dir)


class PublishingListener(Listener):
    """Hands each epoch (with the arm's regularized kernel, when a publisher draws histograms) and each arm's end
    to the publishers (TensorBoard, MLflow). It comes after the `RecordListener` in the list: the record is the
    source of truth, and a publisher only ever shows what it already holds."""

    def __init__(self, publishers: Publishers, kernel_indices: list[int]) -> None:
        self.publishers, self.kernel_indices = publishers, kernel_indices
        self._kernels: dict[int, Any] = {}  # arm → its regularized kernel at the epoch being recorded

    @property
    def wants_kernels(self) -> bool:
        return self.publishers.wants_kernels

    def epoch_kernels(self, epoch: int, weights: dict[int, list[Any]]) -> None:
        self._kernels = {arm: kernels_of(w, self.kernel_indices) for arm, w in weights.items()}

    def epoch_done(self, record: EpochRecord) -> None:
        self.publishers.epoch(record, self._kernels.pop(record.arm, None))

    def arm_finished(self, arm: Arm, status: str, test: dict[str, float]) -> None:
        self.publishers.arm_finished(arm.index, status, test)
