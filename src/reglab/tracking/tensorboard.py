"""A sweep in TensorBoard: one TensorBoard run per arm, live during a run or exported from a record.

Written with the `tensorboard` package alone (its protos, summary functions and record framing; no
TensorFlow), in the layout Keras's `TensorBoard` callback and the HParams plugin use:

    LOGDIR/                      the HParams experiment: every setting field as a hyperparameter, and the
                                 metrics the HParams table shows
    LOGDIR/<arm>/                the arm's session: its hyperparameters (start), its status (end), its
                                 test metrics (`test_accuracy`, `test_data_loss`, `test_loss`)
    LOGDIR/<arm>/train/          epoch_loss, epoch_accuracy, epoch_data_loss, epoch_penalty,
                                 epoch_kernel_norm, and the histogram `kernel` when an engine gives it
    LOGDIR/<arm>/validation/     epoch_loss, epoch_accuracy, epoch_data_loss (metrics.csv's val_* columns)

`<arm>` is `ArmInfo.name`; every scalar's step is the epoch as metrics.csv counts it (from 1). The
HParams metrics are the last values of validation/epoch_data_loss and validation/epoch_accuracy (the
final epoch's) and the session's test_accuracy and test_data_loss. Each arm is its own session group, so
the HParams table has one row per arm (seeds are a column: filter or sort on it).

Each event file is opened, appended to and closed again at every epoch (nothing stays open, no thread),
so TensorBoard shows a run's progress as it happens. A `start` writes new event files next to earlier
ones; TensorBoard reads a folder's files in name order, and the names sort by creation. On a resume,
rows already in the logs (by `done`, and by the steps found in the files) are not written again.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from reglab.errors import ConfigError, RunDirError
from reglab.fileio import ensure_dir
from reglab.record.reader import load_run
from reglab.record.schema import EpochRecord
from reglab.tracking.base import ArmInfo, SweepStart, replay

INSTALL_HINT = "TensorBoard logging needs the tensorboard extra: pip install 'reglab[tensorboard]'"

TRAIN, VALIDATION = "train", "validation"
#: tag → EpochRecord field, per subfolder (Keras's TensorBoard callback names: `epoch_` + the metric)
SCALARS: dict[str, dict[str, str]] = {
    TRAIN: {"epoch_loss": "loss", "epoch_accuracy": "accuracy", "epoch_data_loss": "data_loss",
            "epoch_penalty": "penalty", "epoch_kernel_norm": "kernel_norm"},
    VALIDATION: {"epoch_loss": "val_loss", "epoch_accuracy": "val_accuracy", "epoch_data_loss": "val_data_loss"},
}
KERNEL_TAG = "kernel"
HISTOGRAM_BUCKETS = 30  # the histogram plugin's default
TEST_PREFIX = "test_"  # test metrics as scalars of the session run: test_accuracy, test_data_loss, test_loss
#: the HParams table's metric columns: (group = subfolder of the session run, tag, display name)
HPARAMS_METRICS: tuple[tuple[str, str, str], ...] = (
    (VALIDATION, "epoch_data_loss", "final val_data_loss"),
    (VALIDATION, "epoch_accuracy", "final val_accuracy"),
    ("", "test_accuracy", "test accuracy"),
    ("", "test_data_loss", "test data_loss"),
)
#: arm status (run.json) → the HParams plugin's session status
SUCCESS_STATUSES = ("completed", "stopped")  # stopped = early stopping, a normal end
FAILURE_STATUSES = ("diverged", "failed")

_file_serial = itertools.count()


def _tensorboard() -> Any:
    """The tensorboard modules this writer uses, imported when first needed; a one-line ConfigError naming
    the extra when the package is missing."""
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
        from tensorboard.plugins.histogram import metadata as histogram_metadata
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
        from tensorboard.plugins.hparams import summary_v2 as hparams_summary
        from tensorboard.plugins.scalar import summary_v2 as scalar_summary
        from tensorboard.summary.writer.record_writer import RecordWriter
        from tensorboard.util import tensor_util
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None

    return SimpleNamespace(
        event_pb2=event_pb2, summary_pb2=summary_pb2, api_pb2=api_pb2, metadata=metadata,
        plugin_data_pb2=plugin_data_pb2, hparams_summary=hparams_summary, histogram_metadata=histogram_metadata,
        scalar_summary=scalar_summary, tensor_util=tensor_util, RecordWriter=RecordWriter, masked_crc32c=masked_crc32c)


def histogram_buckets(values: np.ndarray, bucket_count: int = HISTOGRAM_BUCKETS) -> np.ndarray:
    """[bucket_count, 3] (left edge, right edge, count) of the finite values, bucketed exactly as
    `tensorboard.plugins.histogram.summary_v2.histogram_pb` does, in O(n) memory (that function builds an
    n × buckets matrix: 3 GB for a 100-million-weight kernel)."""
    data = np.asarray(values, dtype=float).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        return np.zeros((bucket_count, 3))
    lo, hi = np.min(data), np.max(data)
    if hi - lo == 0:
        edges = np.full(bucket_count, lo)
        counts: np.ndarray = np.zeros(bucket_count)  # float here, bincount's integers below
        counts[-1] = data.size
        return np.array([edges, edges, counts]).transpose()
    index = np.minimum(np.floor((data - lo) / ((hi - lo) / bucket_count)).astype(int), bucket_count - 1)
    counts = np.bincount(index, minlength=bucket_count)
    edges = np.linspace(lo, hi, bucket_count + 1)
    return np.array([edges[:-1], edges[1:], counts]).transpose()


class _EventFile:
    """One event file of one TensorBoard run (folder), created at its first write. Each `write` appends
    whole records and closes the file again: readers see every finished epoch, and no handle stays open."""

    path: Path | None  # None until the first write creates the file

    def __init__(self, tb: Any, folder: Path, logdir: Path) -> None:
        self.tb, self.folder, self.logdir, self.path = tb, folder, logdir, None

    def write(self, events: list[Any]) -> None:
        if not events:
            return
        records = []
        # at every write: no link inside the log folder (or inside a run directory holding it) is written through
        ensure_dir(self.folder, parents=True, root=self.logdir)
        if self.path is None:
            # TensorFlow's name pattern (TensorBoard reads files with "tfevents" in the name, in name order);
            # the zero-padded serial keeps a later file of this process after an earlier one.
            self.path = self.folder / (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                                       f"{os.getpid()}.{next(_file_serial):06d}")
            records.append(self.tb.event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2",
                                                   source_metadata={"writer": "reglab.tracking.tensorboard"}))
        records.extend(events)
        with open(self.path, "ab") as f:
            writer = self.tb.RecordWriter(f)
            for event in records:
                writer.write(event.SerializeToString())
            f.flush()


def _read_events(tb: Any, path: Path) -> list[Any]:
    """The whole records of an event file (a record cut short by a crash ends the list)."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos + 12 <= len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        end = pos + 12 + length + 4
        if end > len(data) or struct.unpack("<I", data[pos + 8:pos + 12])[0] != tb.masked_crc32c(header):
            break
        payload = data[pos + 12:pos + 12 + length]
        if struct.unpack("<I", data[end - 4:end])[0] != tb.masked_crc32c(payload):
            break
        out.append(tb.event_pb2.Event.FromString(payload))
        pos = end
    return out


def _event_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if "tfevents" in p.name and p.is_file())
    except FileNotFoundError:
        return []


def _domain(tb: Any, values: list[Any]) -> Any:
    """The HParams plugin's discrete domain of a hyperparameter's values in this sweep."""
    hp = tb.hparams_summary
    if all(isinstance(v, str) for v in values):
        return hp.Discrete(sorted(set(values)), dtype=str)
    if all(isinstance(v, bool) for v in values):
        return hp.Discrete(sorted(set(values)), dtype=bool)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return hp.Discrete(sorted(set(values)), dtype=int)
    return hp.Discrete(sorted({float(v) for v in values}), dtype=float)


def _hparam_values(arm: ArmInfo) -> dict[str, Any]:
    out = {}
    for key, value in arm.hparams().items():
        if isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


class TensorBoardPublisher:
    """A `tracking.base.Publisher` writing TensorBoard logs under `logdir` (see the module's docstring)."""

    name = "tensorboard"
    wants_kernels = True  # a histogram of the regularized kernel at every epoch, when the engine sends it

    def __init__(self, logdir: str | Path) -> None:
        self.tb = _tensorboard()
        self.logdir = Path(logdir)
        self._arms: dict[int, ArmInfo] = {}
        self._files: dict[Path, _EventFile] = {}
        self._written: dict[tuple[int, str], int] = {}  # (arm, subfolder) → last epoch in the logs
        self._session_tags: dict[int, set[str]] = {}  # arm → hparams/test tags already in its session run
        self._last_epoch: dict[int, int] = {}
        self._closed = False

    # -- the Publisher protocol -------------------------------------------------------------------------

    def start(self, sweep: SweepStart) -> None:
        self._closed = False
        self._arms = {a.index: a for a in sweep.arms}
        root_tags = self._tags_in(self.logdir)
        if not sweep.resumed:
            used = [self.logdir] if root_tags else []
            used += [self._folder(a) for a in sweep.arms if _event_files(self._folder(a))]
            if used:
                raise ConfigError(f"{used[0]} already holds TensorBoard logs of a sweep: log a new run or an "
                                  "export into an empty directory (or delete the old logs)")
        for a in sweep.arms:
            done = int(sweep.done.get(a.index, 0))
            for sub in (TRAIN, VALIDATION):
                found = self._last_step_in(self._folder(a) / sub) if sweep.resumed else 0
                self._written[(a.index, sub)] = max(self._written.get((a.index, sub), 0), done, found)
            self._last_epoch[a.index] = max(self._last_epoch.get(a.index, 0), done,
                                            *(self._written[(a.index, sub)] for sub in (TRAIN, VALIDATION)))
            self._session_tags[a.index] = self._session_tags.get(a.index, set()) | (
                self._tags_in(self._folder(a)) if sweep.resumed else set())
        if self.tb.metadata.EXPERIMENT_TAG not in root_tags:
            self._file(self.logdir).write([self._experiment_event(sweep)])
        start_tag = self.tb.metadata.SESSION_START_INFO_TAG
        for a in sweep.arms:
            if start_tag not in self._session_tags[a.index]:
                pb = self.tb.hparams_summary.hparams_pb(_hparam_values(a), trial_id=a.name, start_time_secs=time.time())
                self._file(self._folder(a)).write([self._event(pb, 0)])
                self._session_tags[a.index].add(start_tag)

    def epoch(self, row: EpochRecord, kernel: np.ndarray | None) -> None:
        arm = self._arm(row.arm)
        for sub, tags in SCALARS.items():
            if row.epoch <= self._written[(row.arm, sub)]:
                continue  # already in the logs (a resumed run, or a row published twice)
            events = [self._event(self.tb.scalar_summary.scalar_pb(tag, np.float32(getattr(row, field))), row.epoch)
                      for tag, field in tags.items()]
            if sub == TRAIN and kernel is not None:
                events.append(self._event(self._histogram(KERNEL_TAG, kernel), row.epoch))
            self._file(self._folder(arm) / sub).write(events)
            self._written[(row.arm, sub)] = row.epoch
        self._last_epoch[row.arm] = max(self._last_epoch.get(row.arm, 0), row.epoch)

    def arm_finished(self, arm: int, status: str, test: dict[str, float]) -> None:
        info = self._arm(arm)
        tags = self._session_tags.setdefault(arm, set())
        end_tag = self.tb.metadata.SESSION_END_INFO_TAG
        events = []
        step = self._last_epoch.get(arm, 0)
        for key, value in sorted(test.items()):
            tag = TEST_PREFIX + key
            if tag not in tags:
                events.append(self._event(self.tb.scalar_summary.scalar_pb(tag, np.float32(value)), step))
                tags.add(tag)
        if end_tag not in tags:
            events.append(self._event(self._session_end(status), 0))
            tags.add(end_tag)
        self._file(self._folder(info)).write(events)

    def finish(self, run_dir: Path, status: str) -> None:
        """Nothing stays open between epochs; this ends the publisher's use of its files. An arm the run did
        not finish keeps no session end (status unknown in the HParams table), so a resume can still end it."""
        self._files.clear()
        self._closed = True

    # -- helpers --------------------------------------------------------------------------------------------

    def _arm(self, index: int) -> ArmInfo:
        if self._closed or index not in self._arms:
            raise RuntimeError(f"TensorBoard publisher: arm {index} published before start() or after finish()")
        return self._arms[index]

    def _folder(self, arm: ArmInfo) -> Path:
        return self.logdir / arm.name

    def _file(self, folder: Path) -> _EventFile:
        if folder not in self._files:
            self._files[folder] = _EventFile(self.tb, folder, self.logdir)
        return self._files[folder]

    def _event(self, summary: Any, step: int) -> Any:
        return self.tb.event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary)

    def _histogram(self, tag: str, values: np.ndarray) -> Any:
        tensor = self.tb.tensor_util.make_tensor_proto(histogram_buckets(values), dtype=np.float64)
        summary = self.tb.summary_pb2.Summary()
        summary.value.add(tag=tag, tensor=tensor, metadata=self.tb.histogram_metadata.create_summary_metadata(
            display_name=None, description="the regularized layer's kernel after the epoch"))
        return summary

    def _hparams_summary(self, tag: str, **data: Any) -> Any:
        """A summary of the HParams plugin's data (experiment, session start or end), as its `summary_v2` builds
        them (that module's `_summary_pb`): the data in the metadata, an empty tensor as the value."""
        md = self.tb.metadata
        summary = self.tb.summary_pb2.Summary()
        summary.value.add(tag=tag, tensor=md.NULL_TENSOR,
                          metadata=md.create_summary_metadata(self.tb.plugin_data_pb2.HParamsPluginData(**data)))
        return summary

    def _session_end(self, status: str) -> Any:
        api = self.tb.api_pb2
        code = (api.STATUS_SUCCESS if status in SUCCESS_STATUSES else
                api.STATUS_FAILURE if status in FAILURE_STATUSES else api.STATUS_UNKNOWN)
        end = self.tb.plugin_data_pb2.SessionEndInfo(status=code, end_time_secs=time.time())
        return self._hparams_summary(self.tb.metadata.SESSION_END_INFO_TAG, session_end_info=end)

    def _experiment_event(self, sweep: SweepStart) -> Any:
        """The experiment (`summary_v2.hparams_config_pb`'s, plus a description): every hyperparameter with
        the sweep's values as its discrete domain, and the metric columns."""
        hp, api = self.tb.hparams_summary, self.tb.api_pb2
        values: dict[str, list[Any]] = {}
        for a in sweep.arms:
            for key, value in _hparam_values(a).items():
                values.setdefault(key, []).append(value)
        hparam_infos = []
        for key, vals in values.items():
            info = api.HParamInfo(name=key)
            _domain(self.tb, vals).update_hparam_info(info)
            hparam_infos.append(info)
        metric_infos = [hp.Metric(tag, group=group, display_name=display,
                                  dataset_type=hp.Metric.VALIDATION if group == VALIDATION else None).as_proto()
                        for group, tag, display in HPARAMS_METRICS]
        experiment = api.Experiment(
            description=(f"reglab sweep {sweep.run_dir.name}: {len(sweep.arms)} arms on {sweep.data.name}, "
                         f"{sweep.config.epochs} epochs each"),
            time_created_secs=time.time(), hparam_infos=hparam_infos, metric_infos=metric_infos)
        return self._event(self._hparams_summary(self.tb.metadata.EXPERIMENT_TAG, experiment=experiment), 0)

    def _tags_in(self, folder: Path) -> set[str]:
        """The summary tags in a folder's own event files (not its subfolders')."""
        return {v.tag for path in _event_files(folder) for e in _read_events(self.tb, path) for v in e.summary.value}

    def _last_step_in(self, folder: Path) -> int:
        steps = [e.step for path in _event_files(folder) for e in _read_events(self.tb, path) if e.summary.value]
        return max(steps, default=0)


def export_tensorboard(run_dir: str | Path, logdir: str | Path) -> Path:
    """Write a finished (or stopped) run's record as TensorBoard logs under `logdir`, as a live run with
    TensorBoard logging would have (`tracking.base.replay`). Returns `logdir`; TensorBoard: `tensorboard --logdir LOGDIR`."""
    publisher = TensorBoardPublisher(logdir)
    run = load_run(run_dir)
    try:
        replay(run, [publisher])
    except OSError as e:
        raise RunDirError(f"cannot write TensorBoard logs to {logdir}: {e.strerror or e}") from None
    return Path(logdir)
