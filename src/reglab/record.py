"""The run record on disk: RUN_DIR/run.json, config.toml and metrics.csv, written safely and read back.

`metrics.csv` is tidy (one row per arm × epoch) and appended as each epoch ends, flushed and fsynced,
so a run stopped half-way keeps every finished epoch. `run.json` is replaced atomically (temporary
file, then rename): a reader sees the old version or the new one, never half of one.

Loss columns, since Keras mixes two things under one name:
- `loss`, `val_loss`: exactly Keras's History values. Keras 3 adds the L2 penalty λ·ΣW² to both.
- `data_loss`, `val_data_loss`: the cross-entropy alone (no penalty), computed the way Keras computes
  `loss` (train: batch-size-weighted running mean over the epoch; validation: end-of-epoch weights).
- `penalty`: λ·ΣW² of the regularized kernel at the end of the epoch, as Keras computes it (float32),
  so `val_loss ≈ val_data_loss + penalty`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import sys
import zipfile
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from .config import SweepConfig, dump_toml, parse_family
from .datasets import DataInfo
from .errors import ConfigError, RunDirError
from .fileio import open_append, write_atomic
from .recordcheck import check_meta, check_rows, row_problem
from .rundir import TOP_LEVEL, register

FORMAT = "reglab-run/1"
RUN_JSON = "run.json"
METRICS_CSV = "metrics.csv"
CONFIG_TOML = "config.toml"
KERNELS_NPZ = "kernels.npz"
MAX_RUN_JSON_BYTES = 64 << 20


@dataclass(frozen=True)
class EpochRecord:
    """One row of metrics.csv: what one arm measured at the end of one epoch (epochs count from 1)."""

    arm: int
    lam: float
    seed: int
    epoch: int
    loss: float
    val_loss: float
    accuracy: float
    val_accuracy: float
    data_loss: float
    val_data_loss: float
    penalty: float
    kernel_norm: float
    seconds: float
    regularizer: str = "l2"  # the arm's family (config.parse_family); `lam` is its strength


#: metrics.csv header; `lam` is written as `lambda`.
COLUMNS: tuple[str, ...] = tuple("lambda" if f.name == "lam" else f.name for f in fields(EpochRecord))
_INT_COLUMNS = {"arm", "seed", "epoch"}
_STR_COLUMNS = {"regularizer"}
_REGULARIZER = COLUMNS.index("regularizer")


def record_to_row(r: EpochRecord) -> list[str]:
    return [repr(v) if isinstance(v, float) else str(v) for v in asdict(r).values()]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

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
                {"arm": a.index, "lambda": a.lam, "regularizer": a.family, "seed": a.seed, "status": "pending",
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
    def reopen(cls, run_dir: Path, meta: dict[str, Any]) -> "Recorder":
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


def write_kernels(run_dir: Path, kernels: dict[int, Any]) -> None:
    """Each arm's final regularized kernel (float32) as `armN` in kernels.npz, written atomically:
    the weight distributions the analysis reads back without retraining."""
    import numpy as np

    arrays = {f"arm{i}": np.asarray(k, dtype=np.float32) for i, k in sorted(kernels.items())}
    write_atomic(run_dir / KERNELS_NPZ, lambda f: np.savez(f, **arrays))


def read_kernels(run_dir: Path) -> dict[int, Any]:
    """arm index → final regularized kernel; {} for a run that has none (stopped before the end)."""
    import numpy as np

    path = Path(run_dir) / KERNELS_NPZ
    if not path.is_file():
        return {}
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            return {int(name[3:]): np.asarray(z[name]) for name in z.files if name.startswith("arm") and name[3:].isdigit()}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise RunDirError(f"{path} is not a readable kernels file ({e})") from None


# ---------------------------------------------------------------- reading a run back

@dataclass(frozen=True)
class RunRecord:
    """A finished (or stopped) run, as read from its directory: all that figures and reports need."""

    run_dir: Path
    config: SweepConfig
    data: DataInfo
    meta: dict[str, Any]
    epochs: tuple[EpochRecord, ...]

    @property
    def arms(self) -> list[dict[str, Any]]:
        return self.meta["arms"]

    def history(self, arm: int) -> dict[str, list[float]]:
        """Like Keras's `History.history`: metric name → list over epochs, for one arm."""
        rows = [r for r in self.epochs if r.arm == arm]
        names = [f.name for f in fields(EpochRecord) if f.name not in ("arm", "lam", "seed", "epoch")]
        return {n: [getattr(r, n) for r in rows] for n in names}

    def kernels(self) -> dict[int, Any]:
        """arm index → the arm's final regularized kernel (see `write_kernels`)."""
        return read_kernels(self.run_dir)

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.epochs]).rename(columns={"lam": "lambda"})


def read_run_meta(run_dir: str | Path) -> dict[str, Any]:
    """RUN_DIR/run.json, checked: a directory that is not a readable reglab run gets a `RunDirError`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"run directory not found: {run_dir}")
    meta_path = run_dir / RUN_JSON
    if not meta_path.is_file():
        raise RunDirError(f"{run_dir} is not a reglab run directory (no {RUN_JSON})")
    if meta_path.stat().st_size > MAX_RUN_JSON_BYTES:
        raise RunDirError(f"{meta_path} is larger than any run record reglab writes ({MAX_RUN_JSON_BYTES >> 20} MiB)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RunDirError(f"{meta_path} is not readable JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise RunDirError(f"{meta_path} is not a reglab run record (expected format {FORMAT!r})")
    check_meta(meta, str(meta_path))
    return meta


def load_run(run_dir: str | Path) -> RunRecord:
    """Read RUN_DIR back; a directory that is not a readable reglab run gets a `RunDirError`."""
    run_dir = Path(run_dir)
    meta = read_run_meta(run_dir)
    config = SweepConfig.from_mapping(meta["config"], where=str(run_dir / RUN_JSON))
    data = DataInfo.from_dict(meta["data"])
    epochs = tuple(read_metrics(run_dir / METRICS_CSV, n_arms=len(meta["arms"])))
    check_rows(epochs, config, run_dir / METRICS_CSV)
    return RunRecord(run_dir=run_dir, config=config, data=data, meta=meta, epochs=epochs)


def repair_metrics(run_dir: Path, n_arms: int, epochs_done: dict[int, int]) -> list[EpochRecord]:
    """Before `--resume`: keep each arm's rows up to `epochs_done[arm]` (what the checkpoint covers) and
    drop the rest, including a last row cut short by a crash; metrics.csv is rewritten atomically.
    Any other malformed row means the file was edited, and is refused rather than guessed at."""
    path = run_dir / METRICS_CSV
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError) as e:
        raise RunDirError(f"{path} is not readable ({e})") from None
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] != "":
        lines = lines[:-1]  # a row the crash cut short (every complete row ends with a newline)
    lines = [line for line in lines if line]
    if lines and lines[0] != ",".join(COLUMNS):
        raise RunDirError(f"{path}: header is not reglab's ({','.join(COLUMNS)})")
    rows = list(read_metrics_text("\n".join([",".join(COLUMNS)] + lines[1:]) + "\n", path, n_arms))
    keep = [r for r in rows if r.epoch <= epochs_done.get(r.arm, 0)]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    writer.writerows(record_to_row(r) for r in keep)
    write_atomic(path, buf.getvalue())
    return keep


def read_metrics(path: Path, n_arms: int) -> Iterable[EpochRecord]:
    if path.exists() and not path.is_file():
        raise RunDirError(f"{path} is not a regular file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RunDirError(f"{path} is not readable ({e})") from None
    return read_metrics_text(text, path, n_arms)


def read_metrics_text(text: str, path: Path, n_arms: int) -> list[EpochRecord]:
    """Parse metrics.csv. A last line without its newline that does not parse is a row a crash cut
    short while it was being appended: it is not a record yet, and is left out (readers never see half a row)."""
    if text and not text.endswith("\n"):
        head, _, tail = text.rpartition("\n")
        try:
            read_metrics_text(head + "\n" + tail + "\n", path, n_arms)
        except RunDirError:
            text = head + "\n" if head else ""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != COLUMNS:
        raise RunDirError(f"{path}: header is not reglab's ({','.join(COLUMNS)})")
    out = []
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) != len(COLUMNS):
            raise RunDirError(f"{path}, line {line_no}: expected {len(COLUMNS)} fields, got {len(row)}")
        try:
            values = [int(v) if c in _INT_COLUMNS else v if c in _STR_COLUMNS else float(v) for c, v in zip(COLUMNS, row)]
        except ValueError:
            raise RunDirError(f"{path}, line {line_no}: a field is not a number") from None
        family = values[_REGULARIZER]
        try:
            parse_family(family)
        except ConfigError:
            raise RunDirError(f"{path}, line {line_no}: {family!r} is not a regularizer") from None
        rec = EpochRecord(*values)
        if not 0 <= rec.arm < n_arms or rec.epoch < 1:
            raise RunDirError(f"{path}, line {line_no}: arm or epoch out of range")
        problem = row_problem(asdict(rec))
        if problem:
            raise RunDirError(f"{path}, line {line_no}: {problem}")
        out.append(rec)
    return out




__all__ = [
    "COLUMNS", "EpochRecord", "Recorder", "RunRecord", "load_run",
]
