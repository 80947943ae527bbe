"""What a run directory holds and how its rows read: the file names, one metrics.csv row (`EpochRecord`) and
its columns, run.json read and checked (`read_run_meta`), and metrics.csv read back, a torn last row repaired."""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from reglab.config import MAX_EPOCHS, Arm
from reglab.errors import ConfigError, RunDirError
from reglab.fileio import write_atomic
from reglab.inputs import read_regular
from reglab.record.checks import check_meta, row_problem
from reglab.record.rundir import refuse_adaptive_sweep
from reglab.settings import DEFAULT_LEARNING_RATE, Setting, parse_family

if TYPE_CHECKING:
    pass


FORMAT = "reglab-run/1"


RUN_JSON = "run.json"


METRICS_CSV = "metrics.csv"


CONFIG_TOML = "config.toml"


KERNELS_NPZ = "kernels.npz"


VALIDATION_NPZ = "validation.npz"


WEIGHTS_NPZ = "weights.npz"  # every kept arm's final weights (see kept.py for which arms)


MAX_RUN_JSON_BYTES = 64 << 20


HIDDEN_UNITS = 128  # the study's network: Dense(128) between its input and output (models.build_seed_model)


@dataclass(frozen=True)
class EpochRecord:
    """One row of metrics.csv: what one arm measured at the end of one epoch (epochs count from 1)."""

    arm: int
    strength: float
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
    regularizer: str = "l2"  # the arm's family (settings.parse_family); `strength` is its strength λ
    learning_rate: float = DEFAULT_LEARNING_RATE  # the optimizer's

    @classmethod
    def of(cls, arm: Arm, epoch: int, train: Mapping[str, Any], val: Mapping[str, Any], penalty: float,
           kernel_norm: float, seconds: float) -> EpochRecord:
        """The row of `arm` from an epoch's metrics as Keras names them (`loss`, `accuracy`,
        `data_loss`): `train`'s are the running means over the epoch's batches, `val`'s the validation set's."""
        return cls(
            arm=arm.index, strength=arm.strength, seed=arm.seed, epoch=epoch,
            loss=float(train["loss"]), val_loss=float(val["loss"]),
            accuracy=float(train["accuracy"]), val_accuracy=float(val["accuracy"]),
            data_loss=float(train["data_loss"]), val_data_loss=float(val["data_loss"]),
            penalty=float(penalty), kernel_norm=float(kernel_norm), seconds=seconds, regularizer=arm.family,
            learning_rate=arm.learning_rate,
        )

    @property
    def setting(self) -> Setting:
        return Setting(self.regularizer, self.strength, self.learning_rate)


@dataclass(frozen=True)
class ArmRecord:
    """One arm of run.json, read once into typed fields, so that readers never look into its dict (`RunRecord.arms`
    keeps the dicts for code that writes or checks run.json)."""

    index: int
    setting: Setting
    seed: int
    status: str  # "" when absent (run.json as reglab writes and checks it always has one)
    epochs_done: int = 0
    test: dict[str, float] = field(default_factory=dict, hash=False)  # test metrics; empty before the arm finished

    @classmethod
    def of(cls, meta: Mapping[str, Any]) -> ArmRecord:
        """An arm's dict of run.json; records from before learning rates were swept have Adam's default."""
        return cls(
            index=int(meta["arm"]),
            setting=Setting(str(meta.get("regularizer", "l2")), float(meta["lambda"]),
                            float(meta.get("learning_rate", DEFAULT_LEARNING_RATE))),
            seed=int(meta["seed"]), status=str(meta.get("status", "")), epochs_done=int(meta.get("epochs_done", 0)),
            test=dict(meta.get("test") or {}),
        )

    @property
    def strength(self) -> float:
        return self.setting.strength


#: metrics.csv header; `strength` is written as `lambda`.
COLUMNS: tuple[str, ...] = tuple("lambda" if f.name == "strength" else f.name for f in fields(EpochRecord))


_INT_COLUMNS = {"arm", "seed", "epoch"}


_STR_COLUMNS = {"regularizer"}


_REGULARIZER = COLUMNS.index("regularizer")


#: metrics.csv as written before learning rates were swept: every arm at Adam's default.
LEGACY_COLUMNS: tuple[str, ...] = COLUMNS[:-1]


def record_to_row(r: EpochRecord) -> list[str]:
    return [repr(v) if isinstance(v, float) else str(v) for v in asdict(r).values()]


def read_run_meta(run_dir: str | Path) -> dict[str, Any]:
    """RUN_DIR/run.json, checked: a directory that is not a readable reglab run gets a `RunDirError`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"run directory not found: {run_dir}")
    refuse_adaptive_sweep(run_dir)
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


def repair_metrics(run_dir: Path, n_arms: int, epochs_done: dict[int, int]) -> list[EpochRecord]:
    """Before `--resume`: keep each arm's rows up to `epochs_done[arm]` (what the checkpoint covers) and
    drop the rest, including a last row cut short by a crash; metrics.csv is rewritten atomically.
    Any other malformed row means the file was edited, and is refused rather than guessed at."""
    path = run_dir / METRICS_CSV
    text = _metrics_text(path, n_arms, None) if os.path.lexists(path) else ""
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] != "":
        lines = lines[:-1]  # a row the crash cut short (every complete row ends with a newline)
    lines = [line for line in lines if line]
    if lines and lines[0] not in (",".join(COLUMNS), ",".join(LEGACY_COLUMNS)):
        raise RunDirError(f"{path}: header is not reglab's ({','.join(COLUMNS)})")
    rows = list(read_metrics_text("\n".join(lines) + "\n", path, n_arms)) if lines else []
    keep = [r for r in rows if r.epoch <= epochs_done.get(r.arm, 0)]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    writer.writerows(record_to_row(r) for r in keep)
    write_atomic(path, buf.getvalue())
    return keep


#: metrics.csv's longest row, generously: 15 fields, the longest a float's repr (24 characters) or a family's name.
MAX_ROW_BYTES = 1024


def read_metrics(path: Path, n_arms: int, epochs: int | None = None) -> Iterable[EpochRecord]:
    """metrics.csv's rows, read bounded: at most one row per arm and epoch (`epochs`: the run's; when not given,
    run.json's beside it), each of at most MAX_ROW_BYTES."""
    if not os.path.lexists(path):
        raise RunDirError(f"{path} is missing")
    return read_metrics_text(_metrics_text(path, n_arms, epochs), path, n_arms)


def _metrics_text(path: Path, n_arms: int, epochs: int | None) -> str:
    """metrics.csv's text, refused before it is read when it is larger than its run's rows can be."""
    if epochs is None:
        epochs = _epochs_beside(path)
    cap = (n_arms * epochs + 2) * MAX_ROW_BYTES
    try:
        size = path.stat().st_size
    except OSError:
        size = 0  # read_regular says why it cannot be read
    if size > cap:  # said in the run's terms before read_regular's own bound applies
        raise RunDirError(f"{path} is {size:,} bytes, more than {n_arms:,} arms × {epochs:,} epochs of rows can "
                          f"take ({cap:,} bytes); it is not one reglab wrote")
    data = read_regular(path, "metrics file", cap, RunDirError)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RunDirError(f"{path} is not readable ({e})") from None


def _epochs_beside(path: Path) -> int:
    """The epochs of the run whose metrics.csv is `path` (run.json beside it); MAX_EPOCHS without one."""

    if not os.path.lexists(path.parent / RUN_JSON):
        return MAX_EPOCHS
    return int(read_run_meta(path.parent)["config"]["epochs"])


def read_metrics_text(text: str, path: Path, n_arms: int) -> list[EpochRecord]:
    """Parse metrics.csv. A last line without its newline that does not parse is a row a crash cut
    short while it was being appended: it is not a record yet, and is left out (readers never see half a row)."""
    if text and not text.endswith("\n"):
        head, _, tail = text.rpartition("\n")
        try:
            read_metrics_text(head + "\n" + tail + "\n", path, n_arms)
        except RunDirError:
            text = head + "\n" if head else ""
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as e:  # a stray carriage return or NUL byte: not rows reglab wrote
        raise RunDirError(f"{path}: not CSV as reglab writes it ({e})") from None
    if not rows or tuple(rows[0]) not in (COLUMNS, LEGACY_COLUMNS):
        raise RunDirError(f"{path}: header is not reglab's ({','.join(COLUMNS)})")
    columns = tuple(rows[0])  # a legacy file's rows get the default learning rate (EpochRecord's)
    out = []
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) != len(columns):
            raise RunDirError(f"{path}, line {line_no}: expected {len(columns)} fields, got {len(row)}")
        try:
            values: list[Any] = [int(v) if c in _INT_COLUMNS else v if c in _STR_COLUMNS else float(v) for c, v in zip(columns, row)]
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
