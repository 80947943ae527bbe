"""Writing a run as it trains: run.json (atomically, on every change) and metrics.csv (a row per arm and
epoch, appended and flushed), so a crash loses at most the epoch in flight."""

from __future__ import annotations

import csv
import json
import os
import platform
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reglab.config import SweepConfig, dump_toml
from reglab.data.splits import DataInfo
from reglab.errors import RunDirError
from reglab.fileio import open_append, write_atomic
from reglab.record.rundir import TOP_LEVEL, register

if TYPE_CHECKING:
    pass
from reglab.record.schema import COLUMNS, CONFIG_TOML, FORMAT, METRICS_CSV, RUN_JSON, EpochRecord, record_to_row


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("reglab", "keras", "jax", "jaxlib", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


class Recorder:
    """Streams a run to RUN_DIR as it happens."""

    def __init__(self, run_dir: Path, config: SweepConfig, data: DataInfo) -> None:
        self.run_dir = run_dir
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunDirError(f"cannot create run directory {run_dir}: {e.strerror or e}") from None
        self.meta: dict[str, Any] = {
            "format": FORMAT,
            "status": "running",
            "config": config.to_dict(),
            "engine": config.engine,
            "data": data.to_dict(),
            "versions": versions(),
            "command": " ".join(sys.argv),
            "started_at": utc_now(),
            "ended_at": None,
            "arms": [
                {"arm": a.index, "lambda": a.strength, "regularizer": a.family, "learning_rate": a.learning_rate, "seed": a.seed,
                 "status": "pending",
                 "epochs_done": 0, "test": None}
                for a in config.arms()
            ],
        }
        try:
            register(run_dir, TOP_LEVEL)  # before any of them exists: --force can always clear what a crash left
            self._save()  # run.json first: from here on the folder is a reglab run, whatever happens next
            write_atomic(run_dir / CONFIG_TOML, dump_toml(config))
            write_atomic(run_dir / METRICS_CSV, ",".join(COLUMNS) + "\r\n")
            self._csv_file = open_append(run_dir / METRICS_CSV)
            self._csv = csv.writer(self._csv_file)
        except OSError as e:
            raise RunDirError(f"cannot write to run directory {run_dir}: {e.strerror or e}") from None

    @classmethod
    def reopen(cls, run_dir: Path, meta: dict[str, Any]) -> Recorder:
        """Continue recording into an existing run (`--resume`): run.json keeps its history (a
        `resumed_at` list grows), metrics.csv is appended to after the rows already there."""
        self = cls.__new__(cls)
        self.run_dir, self.meta = run_dir, meta
        meta["status"] = "running"
        meta["ended_at"] = None
        meta.setdefault("resumed_at", []).append(utc_now())
        try:
            self._save()
            self._csv_file = open_append(run_dir / METRICS_CSV)
            self._csv = csv.writer(self._csv_file)
        except OSError as e:
            raise RunDirError(f"cannot write to run directory {run_dir}: {e.strerror or e}") from None
        return self

    def _save(self) -> None:
        write_atomic(self.run_dir / RUN_JSON, json.dumps(self.meta, indent=2, allow_nan=True) + "\n")

    def _write_row(self, row: list[str]) -> None:
        self._csv.writerow(row)
        self._csv_file.flush()
        os.fsync(self._csv_file.fileno())

    def append(self, record: EpochRecord) -> None:
        self._write_row(record_to_row(record))
        arm = self.meta["arms"][record.arm]
        arm["epochs_done"] = record.epoch

    def update_run(self, **values: Any) -> None:
        self.meta.update(values)
        self._save()

    def update_arm(self, index: int, **values: Any) -> None:
        self.update_arms([index], **values)

    def update_arms(self, indices: list[int], **values: Any) -> None:
        """Set the same values on several arms, with one atomic rewrite of run.json."""
        for index in indices:
            self.meta["arms"][index].update(values)
        self._save()

    def finish(self, status: str) -> None:
        self.meta["status"] = status
        self.meta["ended_at"] = utc_now()
        for arm in self.meta["arms"]:
            if arm["status"] in ("pending", "running") and status != "completed":
                arm["status"] = status
        self._save()
        self._csv_file.close()
