"""The arrays a run keeps beside its rows, written atomically and read back bounded: the first-layer kernels
(kernels.npz), the kept arms' final weights (weights.npz) and the per-example validation values
(validation.npz, and `ValidationStore` while a run trains)."""

from __future__ import annotations

import math
import os
import re
import zipfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Collection, NamedTuple

import numpy as np

from reglab.config import SweepConfig
from reglab.data.splits import DataInfo
from reglab.errors import RunDirError
from reglab.fileio import write_atomic
from reglab.inputs import KiB
from reglab.record.checks import MemberCheck, exactly, keeps_epochs, read_npz, validation_layout, validation_problem
from reglab.record.rundir import register

if TYPE_CHECKING:
    import numpy as np
from reglab.record.schema import HIDDEN_UNITS, KERNELS_NPZ, RUN_JSON, VALIDATION_NPZ, WEIGHTS_NPZ, read_run_meta


def write_kernels(run_dir: Path, kernels: dict[int, np.ndarray]) -> None:
    """Each arm's final regularized kernel (float32) as `armN` in kernels.npz, written atomically:
    the weight distributions the analysis reads back without retraining."""
    arrays = {f"arm{i}": np.asarray(k, dtype=np.float32) for i, k in sorted(kernels.items())}
    # numpy's stub types **kwds beside allow_pickle: bool, and mypy cannot see that no name here is allow_pickle
    write_atomic(run_dir / KERNELS_NPZ, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]


#: A weight beyond this (in absolute value) in an arm that did not diverge is not one training left: the record
#: was edited.
MAX_WEIGHT = 1e6


#: The trainable parameters read_npz budgets per arm for a user's model whose count run.json does not give,
#: and the most it believes when it does.
DEFAULT_PARAMETERS = 1 << 24


MAX_PARAMETERS = 1 << 28


def read_kernels(run_dir: str | Path, meta: dict[str, Any] | None = None) -> dict[int, np.ndarray]:
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

    def check(name: str, dtype: np.dtype, shape: tuple[int, ...]) -> str | None:
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


def _untrained_value(k: np.ndarray) -> str | None:
    """A value no training that kept its loss finite leaves in a kernel, in words; None when there is none."""
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
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 1:  # checked here, where mypy narrows it
        return min(recorded, MAX_PARAMETERS)
    return DEFAULT_PARAMETERS


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


class FinalWeights(NamedTuple):
    """One arm's final weights, as an engine returns them: `trainable` in `model.trainable_variables` order,
    `non_trainable` in `model.non_trainable_variables` order (BatchNormalization's moving statistics, Dropout's
    seed-generator state), each array as trained (float32 weights, the seed state's integers).
    `non_trainable` is None where it is not known: an arm the keras engine finished before a resume from a
    checkpoint of an older reglab, which kept only trainable weights (such an arm is not kept in weights.npz)."""

    trainable: list[np.ndarray]
    non_trainable: list[np.ndarray] | None

    def nbytes(self) -> int:
        return sum(int(getattr(a, "nbytes", 0)) for part in self for a in (part or ()))


def _weight_names(arm: int, weights: FinalWeights) -> dict[str, np.ndarray]:
    return {**{f"arm{arm}_t{k}": w for k, w in enumerate(weights.trainable)},
            **{f"arm{arm}_n{k}": w for k, w in enumerate(weights.non_trainable or ())}}


def write_weights(run_dir: Path, weights: dict[int, FinalWeights]) -> None:
    """RUN_DIR/weights.npz: each arm's final weights (`armN_tK`: its K-th trainable variable, `armN_nK`: its
    K-th non-trainable one, as trained) and `kept`, the arm indices it holds; one file, registered in the
    manifest, written atomically (the same weights give the same bytes)."""
    arrays: dict[str, np.ndarray] = {"kept": np.asarray(sorted(weights), dtype=np.int64)}
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
    parts: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    for part, key in zip(parts, "tn"):
        while f"arm{arm}_{key}{len(part)}" in arrays:
            part.append(arrays[f"arm{arm}_{key}{len(part)}"])
    return FinalWeights(*parts)


_WEIGHT_NAME = re.compile(r"arm(\d{1,9})_([tn])(\d{1,6})")


def _read_weights(run_dir: Path, meta: dict[str, Any] | None, *prefixes: str) -> dict[str, np.ndarray]:
    """The arrays of RUN_DIR/weights.npz whose names start with one of `prefixes`, read bounded and checked
    against run.json (`weights_check`); `kept` must list distinct arms of the run."""
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

    def check(name: str, dtype: np.dtype, shape: tuple[int, ...]) -> str | None:
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
        self.n_arms, self.epochs, self.n_val = n_arms, epochs, n_val
        self.final_loss = np.full((n_arms, n_val), np.nan, dtype=np.float32)
        self.correct = np.zeros((n_arms, n_val), dtype=bool)
        self.last_epoch = np.zeros(n_arms, dtype=np.int32)
        self.loss_by_epoch = (np.full((n_arms, epochs, n_val), np.nan, dtype=np.float32)
                              if keeps_epochs(n_arms, epochs, n_val) else None)

    def add(self, epoch: int, arms: list[int], loss: np.ndarray, correct: np.ndarray) -> None:
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

    def arrays(self) -> dict[str, np.ndarray]:
        """The store's arrays for checkpoint.npz (under PREFIX)."""
        out = {"final_loss": self.final_loss, "correct": self.correct, "last_epoch": self.last_epoch}
        if self.loss_by_epoch is not None:
            out["loss_by_epoch"] = self.loss_by_epoch
        return {self.PREFIX + k: v for k, v in out.items()}

    @classmethod
    def split_checkpoint(cls, arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(the store's arrays, the engine's arrays) of a checkpoint."""
        mine = {k: v for k, v in arrays.items() if k.startswith(cls.PREFIX)}
        return mine, {k: v for k, v in arrays.items() if not k.startswith(cls.PREFIX)}

    @classmethod
    def restore(cls, arrays: dict[str, np.ndarray], n_arms: int, epochs: int, n_val: int,
                epochs_done: dict[int, int]) -> ValidationStore:
        """The store a checkpoint holds (its own arrays, from `split_checkpoint`), checked against the run and
        against the epochs the checkpoint covers; ValueError says what does not fit. A checkpoint from before
        per-example values were kept holds none: values start with the next epoch."""
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
        has = (self.last_epoch > 0) & np.isfinite(self.final_loss).all(axis=1)
        has[[a for a in diverged if 0 <= a < self.n_arms]] = False
        final = np.where(has[:, None], self.final_loss, np.float32(np.nan)).astype(np.float32)
        return ValidationValues(final, self.correct & has[:, None], has,
                                None if self.loss_by_epoch is None else self.loss_by_epoch.copy())


def write_validation(run_dir: Path, values: ValidationValues) -> None:
    """RUN_DIR/validation.npz, registered in the manifest, written atomically; the same values give the
    same bytes (members stored uncompressed, with a fixed time stamp)."""
    arrays = {"final_loss": np.asarray(values.final_loss, dtype=np.float32), "correct": np.asarray(values.correct, dtype=bool),
              "has_values": np.asarray(values.has_values, dtype=bool)}
    if values.loss_by_epoch is not None:
        arrays["loss_by_epoch"] = np.asarray(values.loss_by_epoch, dtype=np.float32)

    register(run_dir, [VALIDATION_NPZ])
    write_atomic(Path(run_dir) / VALIDATION_NPZ, _stored_npz(arrays))


def _stored_npz(arrays: dict[str, np.ndarray]) -> Callable[[IO[bytes]], None]:
    """A writer of `arrays` as an .npz archive whose members are stored uncompressed with a fixed time stamp:
    the same values give the same bytes."""
    def save(f: IO[bytes]) -> None:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
            for name, a in arrays.items():
                with z.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w", force_zip64=True) as m:
                    np.lib.format.write_array(m, np.ascontiguousarray(a), allow_pickle=False)
    return save


def read_validation(run_dir: str | Path, meta: dict[str, Any] | None = None) -> ValidationValues | None:
    """RUN_DIR/validation.npz, checked against run.json (its arms, epochs and validation size); None for a
    record without one (older runs, runs stopped before the end). A damaged or mismatching file gets one
    `RunDirError` line naming it and the problem. `meta`: run.json's contents when already read."""
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
