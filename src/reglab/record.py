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
import math
import os
import platform
import re
import sys
import zipfile
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Iterable, Mapping, NamedTuple, Sequence

from .config import Arm, SweepConfig, dump_toml
from .settings import DEFAULT_LEARNING_RATE, parse_family
from .datasets import DataInfo
from .errors import ConfigError, RunDirError
from .fileio import open_append, write_atomic
from .inputs import KiB, read_regular
from .recordcheck import (
    MAX_EPOCH_VALUES,
    MemberCheck,
    check_meta,
    check_rows,
    check_rows_against_meta,
    exactly,
    keeps_epochs,
    read_npz,
    row_problem,
    validation_layout,
    validation_problem,
)
from .rundir import TOP_LEVEL, register
from .settings import Setting

if TYPE_CHECKING:
    import numpy as np

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
    regularizer: str = "l2"  # the arm's family (settings.parse_family); `lam` is its strength
    learning_rate: float = DEFAULT_LEARNING_RATE  # the optimizer's

    @classmethod
    def of(cls, arm: Arm, epoch: int, train: Mapping[str, Any], val: Mapping[str, Any], penalty: float,
           kernel_norm: float, seconds: float) -> EpochRecord:
        """The row of `arm` from an epoch's metrics as Keras names them (`loss`, `accuracy`,
        `data_loss`): `train`'s are the running means over the epoch's batches, `val`'s the validation set's."""
        return cls(
            arm=arm.index, lam=arm.lam, seed=arm.seed, epoch=epoch,
            loss=float(train["loss"]), val_loss=float(val["loss"]),
            accuracy=float(train["accuracy"]), val_accuracy=float(val["accuracy"]),
            data_loss=float(train["data_loss"]), val_data_loss=float(val["data_loss"]),
            penalty=float(penalty), kernel_norm=float(kernel_norm), seconds=seconds, regularizer=arm.family,
            learning_rate=arm.learning_rate,
        )

    @property
    def setting(self) -> Setting:
        return Setting(self.regularizer, self.lam, self.learning_rate)


#: metrics.csv header; `lam` is written as `lambda`.
COLUMNS: tuple[str, ...] = tuple("lambda" if f.name == "lam" else f.name for f in fields(EpochRecord))
_INT_COLUMNS = {"arm", "seed", "epoch"}
_STR_COLUMNS = {"regularizer"}
_REGULARIZER = COLUMNS.index("regularizer")
#: metrics.csv as written before learning rates were swept: every arm at Adam's default.
LEGACY_COLUMNS: tuple[str, ...] = COLUMNS[:-1]


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
                {"arm": a.index, "lambda": a.lam, "regularizer": a.family, "learning_rate": a.learning_rate, "seed": a.seed,
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


def write_kernels(run_dir: Path, kernels: dict[int, Any]) -> None:
    """Each arm's final regularized kernel (float32) as `armN` in kernels.npz, written atomically:
    the weight distributions the analysis reads back without retraining."""
    import numpy as np

    arrays = {f"arm{i}": np.asarray(k, dtype=np.float32) for i, k in sorted(kernels.items())}
    write_atomic(run_dir / KERNELS_NPZ, lambda f: np.savez(f, **arrays))


#: A weight beyond this (in absolute value) in an arm that did not diverge is not one training left: the record
#: was edited.
MAX_WEIGHT = 1e6

#: The trainable parameters read_npz budgets per arm for a user's model whose count run.json does not give,
#: and the most it believes when it does.
DEFAULT_PARAMETERS = 1 << 24
MAX_PARAMETERS = 1 << 28


def read_kernels(run_dir: str | Path, meta: dict[str, Any] | None = None) -> dict[int, Any]:
    """arm index → final regularized kernel; {} for a run that has none (stopped before the end). Read bounded
    (`recordcheck.read_npz`) and checked against run.json (`meta`: its contents when already read): each arm's
    kernel of the shape its model gives it, of finite weights within ±MAX_WEIGHT unless the arm diverged."""
    path = Path(run_dir) / KERNELS_NPZ
    if not os.path.lexists(path):
        return {}
    meta = meta if meta is not None else read_run_meta(run_dir)
    n_arms, params = len(meta["arms"]), model_parameters(meta)
    study = _checked_shapes(meta)
    names = {f"arm{i}": i for i in range(n_arms)}

    def check(name: str, dtype: Any, shape: tuple[int, ...]) -> str | None:
        if name not in names:
            return "is not one reglab writes"
        fits = _fits_study(shape, study[0]) if study else 1 <= len(shape) <= 5 and math.prod(shape) <= params
        if dtype.str != "<f4" or not fits:
            want = f"<f4 {study[0]}" if study else f"<f4 of at most {params:,} values"
            return f"is {dtype.str} {shape}, but {RUN_JSON} calls for {want} (arm {names[name]}'s regularized kernel)"
        return None

    arrays = read_npz(path, "kernels file", check, n_arms * (4 * params + KiB))
    kernels = {names[name]: a for name, a in arrays.items()}
    for arm, k in sorted(kernels.items()):
        worst = _untrained_value(k) if meta["arms"][arm].get("status") != "diverged" else None
        if worst:
            raise RunDirError(f"{path}: arm {arm}'s kernel holds {worst}; a trained arm that did not diverge has finite "
                              f"weights within ±{MAX_WEIGHT:g}")
    return kernels


def _fits_study(shape: tuple[int, ...], hidden: tuple[int, ...]) -> bool:
    """A kernel of the study's network: one row per input feature of the run's data, its hidden units as columns
    (records written for benchmarks keep fewer: at most as many)."""
    return len(shape) == 2 and shape[0] == hidden[0] and 1 <= shape[1] <= hidden[1]


def _untrained_value(k: Any) -> str | None:
    """A value no training that kept its loss finite leaves in a kernel, in words; None when there is none."""
    import numpy as np

    if not np.isfinite(k).all():
        return "a value that is not finite"
    largest = float(np.abs(k).max()) if k.size else 0.0
    return f"a weight of {largest:.3g}" if largest > MAX_WEIGHT else None


def model_parameters(meta: dict[str, Any]) -> int:
    """Trainable parameters of one arm's model, as run.json implies them: the study's network's exactly, a
    user's model's as recorded (DEFAULT_PARAMETERS when it is not; at most MAX_PARAMETERS)."""
    study = _study_shapes(meta)
    if study:
        return sum(math.prod(s) for s in study)
    recorded = (meta.get("model") or {}).get("parameters")
    ok = isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 1
    return min(recorded, MAX_PARAMETERS) if ok else DEFAULT_PARAMETERS


def _study_shapes(meta: dict[str, Any]) -> list[tuple[int, ...]]:
    """The study's network's trainable shapes (hidden kernel first) for run.json's data; [] for a user's model."""
    if (meta.get("config") or {}).get("model"):
        return []
    data = DataInfo.from_dict(meta["data"])
    d, k = math.prod(data.input_shape), data.n_classes
    return [(d, HIDDEN_UNITS), (HIDDEN_UNITS,), (HIDDEN_UNITS, k), (k,)]


def _checked_shapes(meta: dict[str, Any]) -> list[tuple[int, ...]]:
    """The shapes the study's network's arrays must have, where run.json says that is its model (`model`, which
    every run since user models has); [] otherwise: only `model_parameters` bounds them."""
    return _study_shapes(meta) if isinstance(meta.get("model"), dict) else []


# ---------------------------------------------------------------- final weights

class FinalWeights(NamedTuple):
    """One arm's final weights, as an engine returns them: `trainable` in `model.trainable_variables` order,
    `non_trainable` in `model.non_trainable_variables` order (BatchNormalization's moving statistics, Dropout's
    seed-generator state), each array as trained (float32 weights, the seed state's integers).
    `non_trainable` is None where it is not known: an arm the keras engine finished before a resume from a
    checkpoint of an older reglab, which kept only trainable weights (such an arm is not kept in weights.npz)."""

    trainable: list[Any]
    non_trainable: list[Any] | None

    def nbytes(self) -> int:
        return sum(int(getattr(a, "nbytes", 0)) for part in self for a in (part or ()))


def _weight_names(arm: int, weights: FinalWeights) -> dict[str, Any]:
    return {**{f"arm{arm}_t{k}": w for k, w in enumerate(weights.trainable)},
            **{f"arm{arm}_n{k}": w for k, w in enumerate(weights.non_trainable or ())}}


def write_weights(run_dir: Path, weights: dict[int, FinalWeights]) -> None:
    """RUN_DIR/weights.npz: each arm's final weights (`armN_tK`: its K-th trainable variable, `armN_nK`: its
    K-th non-trainable one, as trained) and `kept`, the arm indices it holds; one file, registered in the
    manifest, written atomically (the same weights give the same bytes)."""
    import numpy as np

    arrays: dict[str, Any] = {"kept": np.asarray(sorted(weights), dtype=np.int64)}
    for arm, w in sorted(weights.items()):
        arrays.update({name: np.asarray(a) for name, a in _weight_names(arm, w).items()})
    register(run_dir, [WEIGHTS_NPZ])
    write_atomic(Path(run_dir) / WEIGHTS_NPZ, _stored_npz(arrays))


def weights_kept(run_dir: str | Path, meta: dict[str, Any] | None = None) -> list[int] | None:
    """The arm indices RUN_DIR/weights.npz holds; None for a record without the file. `meta`: run.json's
    contents when already read."""
    run_dir = Path(run_dir)
    if not os.path.lexists(run_dir / WEIGHTS_NPZ):
        return None
    kept = _read_weights(run_dir, meta, "kept")["kept"]
    return [int(a) for a in kept]


def read_weights(run_dir: str | Path, arm: int, meta: dict[str, Any] | None = None) -> FinalWeights | None:
    """One arm's final weights from RUN_DIR/weights.npz; None when the file does not hold that arm. A damaged
    file gets one `RunDirError` line naming it."""
    run_dir = Path(run_dir)
    if not os.path.lexists(run_dir / WEIGHTS_NPZ):
        return None
    arrays = _read_weights(run_dir, meta, "kept", f"arm{arm}_")
    if arm not in {int(a) for a in arrays["kept"]}:
        return None
    parts: tuple[list[Any], list[Any]] = ([], [])
    for part, key in zip(parts, "tn"):
        while f"arm{arm}_{key}{len(part)}" in arrays:
            part.append(arrays[f"arm{arm}_{key}{len(part)}"])
    return FinalWeights(*parts)


_WEIGHT_NAME = re.compile(r"arm(\d{1,9})_([tn])(\d{1,6})")


def _read_weights(run_dir: Path, meta: dict[str, Any] | None, *prefixes: str) -> dict[str, Any]:
    """The arrays of RUN_DIR/weights.npz whose names start with one of `prefixes`, read bounded and checked
    against run.json (`weights_check`); `kept` must list distinct arms of the run."""
    import numpy as np

    path = run_dir / WEIGHTS_NPZ
    meta = meta if meta is not None else read_run_meta(run_dir)
    check, budget = weights_check(meta)
    arrays = read_npz(path, "weights file", check, budget, required=["kept"], select=lambda name: name.startswith(prefixes))
    kept = arrays["kept"]
    if len(set(kept.tolist())) != len(kept) or not np.all((kept >= 0) & (kept < len(meta["arms"]))):
        raise RunDirError(f"{path}: array 'kept' does not list distinct arms of the run's {len(meta['arms'])}")
    return arrays


def weights_check(meta: dict[str, Any]) -> tuple[MemberCheck, int]:
    """What weights.npz may hold for the run `meta` describes (a `MemberCheck`) and how many bytes at most:
    `kept`, a list of arm indices, and each arm's arrays: the study's network's exact shapes (float32), or for
    a user's model numeric arrays of at most its parameter count each (trainable ones floating-point)."""
    n_arms, params = len(meta["arms"]), model_parameters(meta)
    study = _checked_shapes(meta)

    def check(name: str, dtype: Any, shape: tuple[int, ...]) -> str | None:
        if name == "kept":
            ok = dtype.kind in "iu" and len(shape) == 1 and shape[0] <= n_arms
            return None if ok else f"is {dtype.str} {shape}, not a list of at most {n_arms} arm indices"
        m = _WEIGHT_NAME.fullmatch(name)
        if not m or int(m[1]) >= n_arms:
            return "is not one reglab writes"
        k = int(m[3])
        if study:
            if m[2] == "n" or k >= len(study):
                return "is not one reglab writes (the study's network has 4 trainable arrays and no others)"
            ok, want = dtype.str == "<f4" and shape == study[k], f"<f4 {study[k]}"
        else:
            ok = math.prod(shape) <= params and (dtype.kind == "f" or m[2] == "n")
            want = f"{'a floating-point' if m[2] == 't' else 'a numeric'} array of at most {params:,} values"
        return None if ok else f"is {dtype.str} {shape}, but {RUN_JSON} calls for {want}"

    return check, n_arms * (8 * params + 64 * KiB) + 8 * n_arms


# ---------------------------------------------------------------- per-example validation values

class ValidationValues(NamedTuple):
    """RUN_DIR/validation.npz: every arm's value on every validation example (arm index = index into
    run.json's `arms`, all families; example index = row of the validation split).

    - `final_loss`: float32 [n_arms, n_val], each example's cross-entropy without the penalty at the arm's
      last recorded epoch (its mean is that epoch's `val_data_loss`); NaN rows where `has_values` is False.
    - `correct`: bool [n_arms, n_val], argmax == label at that epoch (its mean is `val_accuracy`); False rows
      where `has_values` is False.
    - `has_values`: bool [n_arms]. False for an arm that recorded no epoch, for one whose last values are
      not all finite, and for a **diverged** arm (marked False rather than kept at its last finite epoch:
      its weights at the end are not a model anyone would use); `loss_by_epoch` still holds the epochs it
      did record.
    - `loss_by_epoch`: float32 [n_arms, epochs, n_val], NaN where an arm did not train that epoch (stopped
      early, diverged, interrupted); None when the run has more than MAX_EPOCH_VALUES such values (the
      file then leaves it out).

    The last recorded epoch is the last row metrics.csv has for the arm, also with `restore_best` (whose
    restored weights are used for the test metrics and kernels only). The file is written when training
    completes, beside kernels.npz; until then the values travel in checkpoint.npz (`ValidationStore`).
    """

    final_loss: np.ndarray
    correct: np.ndarray
    has_values: np.ndarray
    loss_by_epoch: np.ndarray | None = None

    @property
    def loss(self) -> np.ndarray:
        """`final_loss` under a shorter name."""
        return self.final_loss

    def final(self, arm: int) -> np.ndarray | None:
        """Arm `arm`'s per-example validation data losses at its last epoch; None when it has none."""
        return self.final_loss[arm] if bool(self.has_values[arm]) else None

    def at(self, arm: int, epoch: int) -> np.ndarray | None:
        """Arm `arm`'s per-example validation data losses after `epoch` (counting from 1); None when the
        epoch was not recorded (or not kept: `loss_by_epoch` is None) or its values are NaN (diverged)."""
        import numpy as np

        if self.loss_by_epoch is None or not 1 <= epoch <= self.loss_by_epoch.shape[1]:
            return None
        row = self.loss_by_epoch[arm, epoch - 1]
        return None if bool(np.isnan(row).any()) else row


class ValidationStore:
    """Per-example validation values gathered while a run trains (engines send them through
    `Listener.validation_values`), kept in every checkpoint so that a resumed run writes the
    validation.npz an uninterrupted one does."""

    PREFIX = "validation:"  # of its arrays in checkpoint.npz

    def __init__(self, n_arms: int, epochs: int, n_val: int) -> None:
        import numpy as np

        self.n_arms, self.epochs, self.n_val = n_arms, epochs, n_val
        self.final_loss = np.full((n_arms, n_val), np.nan, dtype=np.float32)
        self.correct = np.zeros((n_arms, n_val), dtype=bool)
        self.last_epoch = np.zeros(n_arms, dtype=np.int32)
        self.loss_by_epoch = (np.full((n_arms, epochs, n_val), np.nan, dtype=np.float32)
                              if keeps_epochs(n_arms, epochs, n_val) else None)

    def add(self, epoch: int, arms: list[int], loss: Any, correct: Any) -> None:
        import numpy as np

        index = np.asarray(arms, dtype=np.intp)
        loss, correct = np.asarray(loss, dtype=np.float32), np.asarray(correct, dtype=bool)
        if not 1 <= epoch <= self.epochs or loss.shape != (len(index), self.n_val) or correct.shape != loss.shape:
            raise ValueError(f"validation values of shape {loss.shape} for {len(index)} arms at epoch {epoch}; expected "
                             f"({len(index)}, {self.n_val}) at an epoch from 1 to {self.epochs}")
        self.final_loss[index] = loss
        self.correct[index] = correct
        self.last_epoch[index] = epoch
        if self.loss_by_epoch is not None:
            self.loss_by_epoch[index, epoch - 1] = loss

    def arrays(self) -> dict[str, Any]:
        """The store's arrays for checkpoint.npz (under PREFIX)."""
        out = {"final_loss": self.final_loss, "correct": self.correct, "last_epoch": self.last_epoch}
        if self.loss_by_epoch is not None:
            out["loss_by_epoch"] = self.loss_by_epoch
        return {self.PREFIX + k: v for k, v in out.items()}

    @classmethod
    def split_checkpoint(cls, arrays: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the store's arrays, the engine's arrays) of a checkpoint."""
        mine = {k: v for k, v in arrays.items() if k.startswith(cls.PREFIX)}
        return mine, {k: v for k, v in arrays.items() if not k.startswith(cls.PREFIX)}

    @classmethod
    def restore(cls, arrays: dict[str, Any], n_arms: int, epochs: int, n_val: int,
                epochs_done: dict[int, int]) -> ValidationStore:
        """The store a checkpoint holds (its own arrays, from `split_checkpoint`), checked against the run and
        against the epochs the checkpoint covers; ValueError says what does not fit. A checkpoint from before
        per-example values were kept holds none: values start with the next epoch."""
        import numpy as np

        store = cls(n_arms, epochs, n_val)
        if not arrays:
            return store
        want = store.arrays()
        if set(arrays) != set(want):
            extra = min(set(arrays) ^ set(want))
            raise ValueError(f"array {extra!r} is {'missing' if extra in want else 'not one reglab writes'}")
        for name, target in want.items():
            value = np.asarray(arrays[name])
            if value.dtype != target.dtype or value.shape != target.shape:
                raise ValueError(f"array {name!r} is {value.dtype.str} {value.shape}, expected {target.dtype.str} {target.shape}")
            target[...] = value
        covered = np.array([epochs_done.get(a, 0) for a in range(n_arms)], dtype=np.int32)
        if not np.array_equal(store.last_epoch, covered):
            arm = int(np.flatnonzero(store.last_epoch != covered)[0])
            raise ValueError(f"arm {arm}'s values end at epoch {int(store.last_epoch[arm])}, but the checkpoint covers "
                             f"{int(covered[arm])} epochs")
        return store

    def values(self, diverged: Collection[int] = ()) -> ValidationValues:
        """What validation.npz holds (see ValidationValues): `diverged` arms are marked as having no values."""
        import numpy as np

        has = (self.last_epoch > 0) & np.isfinite(self.final_loss).all(axis=1)
        has[[a for a in diverged if 0 <= a < self.n_arms]] = False
        final = np.where(has[:, None], self.final_loss, np.float32(np.nan)).astype(np.float32)
        return ValidationValues(final, self.correct & has[:, None], has,
                                None if self.loss_by_epoch is None else self.loss_by_epoch.copy())


def write_validation(run_dir: Path, values: ValidationValues) -> None:
    """RUN_DIR/validation.npz, registered in the manifest, written atomically; the same values give the
    same bytes (members stored uncompressed, with a fixed time stamp)."""
    import numpy as np

    arrays = {"final_loss": np.asarray(values.final_loss, dtype=np.float32), "correct": np.asarray(values.correct, dtype=bool),
              "has_values": np.asarray(values.has_values, dtype=bool)}
    if values.loss_by_epoch is not None:
        arrays["loss_by_epoch"] = np.asarray(values.loss_by_epoch, dtype=np.float32)

    register(run_dir, [VALIDATION_NPZ])
    write_atomic(Path(run_dir) / VALIDATION_NPZ, _stored_npz(arrays))


def _stored_npz(arrays: dict[str, Any]) -> Any:
    """A writer of `arrays` as an .npz archive whose members are stored uncompressed with a fixed time stamp:
    the same values give the same bytes."""
    import numpy as np

    def save(f: Any) -> None:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
            for name, a in arrays.items():
                with z.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w", force_zip64=True) as m:
                    np.lib.format.write_array(m, np.ascontiguousarray(a), allow_pickle=False)
    return save


def read_validation(run_dir: str | Path, meta: dict[str, Any] | None = None) -> ValidationValues | None:
    """RUN_DIR/validation.npz, checked against run.json (its arms, epochs and validation size); None for a
    record without one (older runs, runs stopped before the end). A damaged or mismatching file gets one
    `RunDirError` line naming it and the problem. `meta`: run.json's contents when already read."""
    import numpy as np

    run_dir = Path(run_dir)
    path = run_dir / VALIDATION_NPZ
    if not os.path.lexists(path):
        return None
    meta = meta if meta is not None else read_run_meta(run_dir)
    config = SweepConfig.from_mapping(meta["config"], where=str(run_dir / RUN_JSON))
    n_arms, epochs, n_val = len(meta["arms"]), config.epochs, int(meta["data"]["n_val"])
    layout = validation_layout(n_arms, epochs, n_val)
    budget = sum(np.dtype(d).itemsize * math.prod(shape) + KiB for d, shape, _ in layout.values())
    why = f" ({n_arms} arms, {epochs} epochs, {n_val} validation examples)"
    check = exactly({name: (d, shape) for name, (d, shape, _) in layout.items()}, RUN_JSON, why)
    arrays = read_npz(path, "validation file", check, budget, required=[n for n, (_, _, req) in layout.items() if req])
    problem = validation_problem(arrays)
    if problem:
        raise RunDirError(f"{path}: {problem}")
    return ValidationValues(arrays["final_loss"], arrays["correct"], arrays["has_values"], arrays.get("loss_by_epoch"))


def checkpoint_validation(run_dir: Path, meta: dict[str, Any], rows: Sequence[EpochRecord]) -> ValidationValues | None:
    """The per-example validation values an unfinished run's checkpoint holds (validation.npz is written when it
    completes), for each arm whose last row in metrics.csv is the checkpoint's last epoch (others: no values);
    None without a checkpoint or values in it. Read bounded; a damaged one gets one line naming it."""
    from .checkpoint import CHECKPOINT_NPZ, read_checkpoint

    checkpoint = read_checkpoint(run_dir, meta, only=ValidationStore.PREFIX)
    if checkpoint is None:
        return None
    stored = ValidationStore.split_checkpoint(checkpoint[0])[0]
    if not stored:
        return None
    config = SweepConfig.from_mapping(meta["config"], where=str(run_dir / RUN_JSON))
    n_arms, n_val = len(meta["arms"]), int(meta["data"]["n_val"])
    try:
        done = {int(a): int(e) for a, e in checkpoint[1]["epochs_done"].items()}
        store = ValidationStore.restore(stored, n_arms, config.epochs, n_val, done)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise RunDirError(f"{run_dir / CHECKPOINT_NPZ}: its validation values do not match this run ({e})") from None
    last = {r.arm: r.epoch for r in rows}
    newer = [a for a in range(n_arms) if int(store.last_epoch[a]) != last.get(a, 0)]  # rows the checkpoint missed
    return store.values([i for i, a in enumerate(meta["arms"]) if a.get("status") == "diverged"] + newer)


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
        return read_kernels(self.run_dir, self.meta)

    def validation(self) -> ValidationValues | None:
        """Every arm's per-example validation values (see `ValidationValues`); None for a record without them.
        An unfinished run's are in its checkpoint until it completes: they are read from there."""
        values = read_validation(self.run_dir, self.meta)
        if values is None and self.meta.get("status") != "completed":
            values = checkpoint_validation(self.run_dir, self.meta, self.epochs)
        return values

    def _repr_html_(self) -> str:
        """In Jupyter: the answer block and the key figure of the run's analysis (see `notebook`)."""
        from .analyze import analyze
        from .notebook import analysis_html

        return analysis_html(analyze(self))

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
    epochs = tuple(read_metrics(run_dir / METRICS_CSV, n_arms=len(meta["arms"]), epochs=config.epochs))
    check_rows(epochs, config, run_dir / METRICS_CSV)
    check_rows_against_meta(epochs, meta, run_dir / METRICS_CSV)
    return RunRecord(run_dir=run_dir, config=config, data=data, meta=meta, epochs=epochs)


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
    from .config import MAX_EPOCHS

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
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) not in (COLUMNS, LEGACY_COLUMNS):
        raise RunDirError(f"{path}: header is not reglab's ({','.join(COLUMNS)})")
    columns = tuple(rows[0])  # a legacy file's rows get the default learning rate (EpochRecord's)
    out = []
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) != len(columns):
            raise RunDirError(f"{path}, line {line_no}: expected {len(columns)} fields, got {len(row)}")
        try:
            values = [int(v) if c in _INT_COLUMNS else v if c in _STR_COLUMNS else float(v) for c, v in zip(columns, row)]
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
    "COLUMNS", "MAX_EPOCH_VALUES", "EpochRecord", "Recorder", "RunRecord", "ValidationValues", "load_run", "read_validation",
]
