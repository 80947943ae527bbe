"""A run record is checked as it is read: run.json's fields and metrics.csv's rows against each other.

A record may have been edited by hand or damaged; reports, `--resume` and the Python API all read it
through these checks, so a problem ends in one `RunDirError` naming the file, the row or field, and
what is wrong with it — never in a figure drawn from impossible numbers or an internal error.
"""

from __future__ import annotations

import math
import re
import struct
import warnings
import zipfile
import zlib
from pathlib import Path
from tokenize import TokenError
from typing import IO, TYPE_CHECKING, Any, Callable, Collection, Literal, Mapping, Sequence, TypeGuard, cast, overload

import numpy as np

from reglab.config import ENGINES, SweepConfig
from reglab.errors import ConfigError, RunDirError
from reglab.inputs import MiB, brief, open_regular
from reglab.settings import DEFAULT_LEARNING_RATE

if TYPE_CHECKING:
    import numpy as np

    from reglab.record.schema import EpochRecord

RUN_STATUSES = ("running", "completed", "interrupted", "failed")
ARM_STATUSES = ("pending", "running", "completed", "diverged", "stopped", "interrupted", "failed")
TEST_METRICS = ("loss", "accuracy", "data_loss")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _Fields:
    """Checks on one mapping that name the field they fail on."""

    def __init__(self, where: str, prefix: str = "") -> None:
        self.where, self.prefix = where, prefix

    def fail(self, field: str, problem: str) -> RunDirError:
        return RunDirError(f"{self.where}: field {self.prefix}{field} {problem}")

    @overload
    def mapping(self, d: Any, field: str, optional: Literal[False] = False) -> dict[str, Any]: ...
    @overload
    def mapping(self, d: Any, field: str, optional: bool) -> dict[str, Any] | None: ...

    def mapping(self, d: Any, field: str, optional: bool = False) -> dict[str, Any] | None:
        if d is None and optional:
            return None
        if not isinstance(d, dict):
            raise self.fail(field, f"must be a mapping, got {_short(d)}")
        return d

    def text(self, d: dict, field: str, optional: bool = False) -> None:
        if field not in d:
            if optional:
                return
            raise self.fail(field, "is missing")
        v = d[field]
        if not (isinstance(v, str) or (optional and v is None)):
            raise self.fail(field, f"must be text, got {_short(v)}")

    def integer(self, d: dict, field: str, lo: int, hi: int | None = None) -> int:
        v = d.get(field)
        if not _is_int(v) or v < lo or (hi is not None and v > hi):
            raise self.fail(field, f"must be a whole number from {lo}" + (f" to {hi}" if hi is not None else "")
                            + f", got {_short(v)}")
        return v

    def one_of(self, d: dict, field: str, choices: Sequence[str]) -> str:
        v = d.get(field)
        if v not in choices:
            raise self.fail(field, f"must be one of {', '.join(choices)}; got {_short(v)}")
        return cast(str, v)  # one of `choices`


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def check_meta(meta: dict[str, Any], where: str) -> SweepConfig:
    """run.json, field by field; returns its configuration."""
    f = _Fields(where)
    f.one_of(meta, "status", RUN_STATUSES)
    try:
        config = SweepConfig.from_mapping(f.mapping(meta.get("config"), "config"), where=f"{where} (config)")
    except ConfigError as e:
        raise RunDirError(f"{where}: {e}") from None
    except TypeError as e:
        raise f.fail("config", f"is not a configuration ({e})") from None
    if meta.get("engine") not in ENGINES:
        raise f.fail("engine", f"must be one of {', '.join(ENGINES)}; got {_short(meta.get('engine'))}")
    _check_data(f.mapping(meta.get("data"), "data"), _Fields(where, "data."))
    versions = f.mapping(meta.get("versions", {}), "versions")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items()):
        raise f.fail("versions", "must map package names to version text")
    for field in ("command", "started_at", "ended_at"):
        f.text(meta, field, optional=True)
    resumed = meta.get("resumed_at", [])
    if not isinstance(resumed, list) or not all(isinstance(t, str) for t in resumed):
        raise f.fail("resumed_at", "must be a list of times")
    model = f.mapping(meta.get("model"), "model", optional=True)
    if model is not None:
        m = _Fields(where, "model.")
        m.text(model, "name")
        m.text(model, "sha256", optional=True)
        if not isinstance(model.get("regularized", []), list) or not all(isinstance(p, str) for p in model.get("regularized", [])):
            raise m.fail("regularized", "must be a list of variable paths")
    f.mapping(meta.get("executor"), "executor", optional=True)
    _check_arms(meta.get("arms"), config, where)
    return config


def _check_data(data: dict[str, Any], f: _Fields) -> None:
    for field in ("name", "requested", "source", "split"):
        f.text(data, field)
    f.text(data, "fallback_reason", optional=True)
    f.text(data, "fallback_error", optional=True)
    for field in ("n_train", "n_val", "n_test"):
        f.integer(data, field, 0)
    key = "image_shape" if "image_shape" in data else "input_shape"  # the name in records from before tables
    shape = data.get(key)
    if not isinstance(shape, list) or not 1 <= len(shape) <= 3 or not all(_is_int(s) and s >= 1 for s in shape):
        raise f.fail(key, f"must be a list of 1 to 3 positive whole numbers, got {_short(shape)}")
    classes = data.get("classes", [str(i) for i in range(10)])  # absent in records from before: ten digits
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise f.fail("classes", f"must be a list of at least 2 class names, got {_short(classes)}")
    for field in ("feature_mean", "feature_std"):
        values = data.get(field, [])
        if not isinstance(values, list) or (values and len(values) != math.prod(shape)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise f.fail(field, f"must be a list of {math.prod(shape)} finite numbers or empty, got {_short(values)}")
    if not isinstance(data.get("sha256"), str) or not _SHA256.fullmatch(data["sha256"]):
        raise f.fail("sha256", f"must be 64 hexadecimal digits, got {_short(data.get('sha256'))}")
    constant = data.get("constant_inputs", [])  # absent in records from before it was kept
    size = math.prod(shape)
    if (not isinstance(constant, list) or len(constant) > size
            or not all(_is_int(i) and 0 <= i < size for i in constant) or len(set(constant)) != len(constant)):
        raise f.fail("constant_inputs", f"must be a list of distinct input indices from 0 to {size - 1} "
                                        f"(a sample has {size} values), got {_short(constant)}")


def _check_arms(arms: Any, config: SweepConfig, where: str) -> None:
    expected = config.arms()
    if not isinstance(arms, list) or len(arms) != len(expected):
        raise RunDirError(f"{where}: field arms must list the {len(expected)} arms of its configuration, "
                          f"got {len(arms) if isinstance(arms, list) else _short(arms)}")
    for i, (arm, want) in enumerate(zip(arms, expected)):
        f = _Fields(where, f"arms[{i}].")
        if not isinstance(arm, dict):
            raise RunDirError(f"{where}: field arms[{i}] must be a mapping, got {_short(arm)}")
        if arm.get("arm") != i or not _is_int(arm.get("arm")):
            raise f.fail("arm", f"must be {i}, got {_short(arm.get('arm'))}")
        if not _is_number(arm.get("lambda")) or float(arm["lambda"]) != want.strength:
            raise f.fail("lambda", f"is {_short(arm.get('lambda'))}, but the configuration's arm {i} has {want.strength!r}")
        if arm.get("seed") != want.seed or not _is_int(arm.get("seed")):
            raise f.fail("seed", f"is {_short(arm.get('seed'))}, but the configuration's arm {i} has seed {want.seed}")
        if arm.get("regularizer", "l2") != want.family:
            raise f.fail("regularizer", f"is {_short(arm.get('regularizer'))}, but the configuration's arm {i} is {want.family}")
        lr = arm.get("learning_rate", DEFAULT_LEARNING_RATE)  # absent in records from before learning rates were swept
        if not _is_number(lr) or float(lr) != want.learning_rate:
            raise f.fail("learning_rate", f"is {_short(lr)}, but the configuration's arm {i} has {want.learning_rate!r}")
        f.one_of(arm, "status", ARM_STATUSES)
        f.integer(arm, "epochs_done", 0, config.epochs)
        test = arm.get("test")
        if test is not None:
            if not isinstance(test, dict):
                raise f.fail("test", f"must be a mapping of test metrics or null, got {_short(test)}")
            for k in TEST_METRICS:
                if not _is_number(test.get(k)):
                    raise f.fail(f"test.{k}", f"must be a number, got {_short(test.get(k))}")
            acc = float(test["accuracy"])
            if not (math.isnan(acc) or 0.0 <= acc <= 1.0):
                raise f.fail("test.accuracy", f"must be between 0 and 1, got {acc!r}")
        for field in ("started_at", "ended_at"):
            f.text(arm, field, optional=True)


#: metrics.csv columns that must be ≥ 0 where they are numbers (NaN and +inf are how a diverged arm reads)
NON_NEGATIVE = ("loss", "val_loss", "data_loss", "val_data_loss", "penalty", "kernel_norm")
FRACTIONS = ("accuracy", "val_accuracy")


def row_problem(values: dict[str, Any]) -> str | None:
    """What is impossible about one metrics.csv row taken alone (None when nothing is)."""
    for c in NON_NEGATIVE:
        if values[c] < 0:
            return f"{c} is negative ({values[c]!r})"
    for c in FRACTIONS:
        if not (math.isnan(values[c]) or 0.0 <= values[c] <= 1.0):
            return f"{c} is not between 0 and 1 ({values[c]!r})"
    if not (math.isfinite(values["seconds"]) and values["seconds"] >= 0):
        return f"seconds is not a duration ({values['seconds']!r})"
    if not (math.isfinite(values["strength"]) and values["strength"] >= 0):
        return f"lambda is not a finite strength ≥ 0 ({values['strength']!r})"
    if not (math.isfinite(values["learning_rate"]) and values["learning_rate"] > 0):
        return f"learning_rate is not a finite rate > 0 ({values['learning_rate']!r})"
    return None


def check_rows(rows: Sequence[EpochRecord], config: SweepConfig, path: Path, first_line: int = 2) -> None:
    """Rows (EpochRecords, in file order) against the configuration: each arm's setting and seed, and its
    epochs 1, 2, … with none repeated, skipped or beyond the run's epochs."""
    arms = config.arms()
    last: dict[int, int] = {}
    for line, r in enumerate(rows, start=first_line):
        arm = arms[r.arm]
        where = f"{path}, line {line}"
        if r.strength != arm.strength:
            raise RunDirError(f"{where}: lambda is {r.strength!r}, but arm {r.arm} has λ = {arm.strength!r} in run.json")
        if r.seed != arm.seed:
            raise RunDirError(f"{where}: seed is {r.seed}, but arm {r.arm} has seed {arm.seed} in run.json")
        if r.regularizer != arm.family:
            raise RunDirError(f"{where}: regularizer is {r.regularizer}, but arm {r.arm} is {arm.family} in run.json")
        if r.learning_rate != arm.learning_rate:
            raise RunDirError(f"{where}: learning_rate is {r.learning_rate!r}, but arm {r.arm} has {arm.learning_rate!r} in run.json")
        if r.epoch > config.epochs:
            raise RunDirError(f"{where}: epoch {r.epoch} is beyond the run's {config.epochs} epochs")
        previous = last.get(r.arm, 0)
        if r.epoch == previous:
            raise RunDirError(f"{where}: arm {r.arm}'s epoch {r.epoch} is recorded twice")
        if r.epoch < previous:
            raise RunDirError(f"{where}: arm {r.arm} goes back from epoch {previous} to {r.epoch}")
        if r.epoch != previous + 1:
            raise RunDirError(f"{where}: arm {r.arm} jumps from epoch {previous} to {r.epoch}")
        last[r.arm] = r.epoch



#: The loss columns of a row: finite in every row of an arm that trained to the end (a loss that is not finite
#: is how an arm diverges, and it is then marked diverged).
LOSSES = ("loss", "val_loss", "data_loss", "val_data_loss")


def check_rows_against_meta(rows: Sequence[EpochRecord], meta: dict[str, Any], path: Path, first_line: int = 2) -> None:
    """Rows against run.json's arms: an arm marked completed has finite losses in every row, and a completed run
    has exactly `epochs_done` rows of each arm (a missing row would be compared as if it were not)."""
    arms = meta["arms"]
    count: dict[int, int] = {}
    for line, r in enumerate(rows, start=first_line):
        count[r.arm] = count.get(r.arm, 0) + 1
        bad = next((c for c in LOSSES if not math.isfinite(getattr(r, c))), None)
        if bad and arms[r.arm].get("status") == "completed":
            raise RunDirError(f"{path}, line {line}: {bad} is {getattr(r, bad)!r}, but arm {r.arm} is marked completed "
                              "in run.json (an arm whose loss is not finite is marked diverged)")
    if meta.get("status") != "completed":
        return  # an unfinished run's last rows may be newer than run.json (or cut short: `repair_metrics`)
    for i, arm in enumerate(arms):
        if count.get(i, 0) != arm["epochs_done"]:
            raise RunDirError(f"{path}: arm {i} has {count.get(i, 0)} rows, but run.json says it recorded "
                              f"{arm['epochs_done']} epochs in this completed run")

# ---------------------------------------------------------------- validation.npz

#: validation.npz keeps `loss_by_epoch` (n_arms × epochs × n_val float32) only up to this many values
#: (2**25: 128 MiB); above it the file holds the last epoch's values alone and `at()` answers None.
MAX_EPOCH_VALUES = 2**25


def validation_layout(n_arms: int, epochs: int, n_val: int) -> dict[str, tuple[str, tuple[int, ...], bool]]:
    """validation.npz's arrays for a run of `n_arms` arms, `epochs` epochs and `n_val` validation examples:
    name → (dtype, shape, required). `loss_by_epoch` is optional (left out above MAX_EPOCH_VALUES)."""
    return {
        "final_loss": ("<f4", (n_arms, n_val), True),
        "correct": ("|b1", (n_arms, n_val), True),
        "has_values": ("|b1", (n_arms,), True),
        "loss_by_epoch": ("<f4", (n_arms, epochs, n_val), False),
    }


def keeps_epochs(n_arms: int, epochs: int, n_val: int) -> bool:
    """Whether validation.npz (and the checkpoint) keep every epoch's values, not only the last."""
    return n_arms * epochs * n_val <= MAX_EPOCH_VALUES


def validation_problem(arrays: dict[str, np.ndarray]) -> str | None:
    """What is impossible about validation.npz's values (arrays already of `validation_layout`'s shapes):
    a negative loss, or an arm said to have values whose final losses are not all finite numbers."""
    for name in ("final_loss", "loss_by_epoch"):
        a = arrays.get(name)
        if a is not None and bool(np.any(a < 0)):
            arm = int(np.argwhere(a < 0)[0][0])
            return f"{name} holds a negative loss (arm {arm})"
    has, final = arrays["has_values"], arrays["final_loss"]
    bad = np.flatnonzero(has & ~np.isfinite(final).all(axis=1))
    if len(bad):
        return f"has_values says arm {int(bad[0])} has values, but its final_loss row is not all finite"
    return None


# ---------------------------------------------------------------- .npz archives, read bounded

#: A check of one .npz member from its .npy header alone (name without ".npy", dtype, shape), before any of its
#: data is inflated: what is wrong with it in words that follow "array 'NAME' " (None when it fits).
MemberCheck = Callable[[str, "np.dtype", "tuple[int, ...]"], "str | None"]

_NPY_VERSIONS = ((1, 0), (2, 0))
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # numpy's; bzip2/lzma inflate unboundedly per read
#: What a damaged archive raises from zipfile, zlib and numpy's header parser (a Python 2 header's tokenizer
#: included): each becomes one line naming the file.
_DAMAGE = (OSError, ValueError, EOFError, OverflowError, SyntaxError, UnicodeDecodeError,
           NotImplementedError, Warning, zipfile.BadZipFile, zlib.error, struct.error, TokenError)


def exactly(layout: Mapping[str, tuple[str, tuple[int, ...]]], source: str, why: str = "") -> MemberCheck:
    """A MemberCheck for arrays whose names, dtypes and shapes are known: `source` calls for them (`why`)."""
    def check(name: str, dtype: np.dtype, shape: tuple[int, ...]) -> str | None:
        if name not in layout:
            return "is not one reglab writes"
        want = layout[name]
        if (dtype.str, shape) != (want[0], tuple(want[1])):
            return f"is {dtype.str} {shape}, but {source} calls for {want[0]} {tuple(want[1])}{why}"
        return None
    return check


class NpzError(RunDirError):
    """An .npz archive `read_npz` refuses: `problem` says why, after the file's name."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


def read_npz(path: Path, what: str, check: MemberCheck, max_bytes: int, *, required: Collection[str] = (),
             select: Callable[[str], bool] | None = None) -> dict[str, np.ndarray]:
    """The arrays of the .npz archive `path` (name → array; `select` picks which are inflated, the others are
    only checked), never allocating more than the run implies. Before any array is inflated: the file is a
    regular one of bounded size, a zip whose members are .npy arrays, stored or deflated; each member's .npy
    header (inflated alone) gives a numeric dtype (never objects) and a shape that `check` accepts and that the
    member's declared size holds; the declared sizes together stay within `max_bytes`. Anything else is one
    `NpzError` line naming the file (`what`: "kernels file", …) and the array."""
    arrays: dict[str, np.ndarray] = {}
    try:
        with open_regular(path, what, max_bytes + max_bytes // 8 + MiB, RunDirError) as fh:
            if fh.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
                raise zipfile.BadZipFile("not an .npz archive")
            fh.seek(0)
            with zipfile.ZipFile(fh) as z:
                members = _members(path, z.infolist())
                for name in required:
                    if name not in members:
                        raise NpzError(path, f"array {brief(name)} is missing")
                for name, info in members.items():  # each header alone: a few hundred bytes inflated
                    with z.open(info) as m:
                        dtype, shape = _npy_header(path, name, m, info.file_size)
                    problem = check(name, dtype, shape)
                    if problem:
                        raise NpzError(path, f"array {brief(name)} {problem}")
                total = sum(i.file_size for i in members.values())
                if total > max_bytes:
                    raise NpzError(path, f"its arrays would take {total:,} bytes once inflated, more than this run's "
                                         f"{what} can hold ({max_bytes:,} bytes); it is not one reglab wrote")
                for name, info in members.items():
                    if select is None or select(name):
                        with z.open(info) as m, warnings.catch_warnings():
                            warnings.simplefilter("error")
                            arrays[name] = np.lib.format.read_array(m, allow_pickle=False)
    except RunDirError:
        raise
    except _DAMAGE as e:
        text = " ".join(str(e).split())[:200] or type(e).__name__
        raise NpzError(path, f"not a readable {what} (damaged: {text})") from None
    return arrays


def _members(path: Path, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by array name, from the zip's directory alone: .npy entries, each once, stored or
    deflated, not encrypted."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename.removesuffix(".npy")
        if name == info.filename or info.is_dir():
            raise NpzError(path, f"member {brief(info.filename)} is not an .npy array")
        if name in members:
            raise NpzError(path, f"array {brief(name)} is there twice")
        if info.compress_type not in _ZIP_METHODS or info.flag_bits & 0x1:
            raise NpzError(path, f"array {brief(name)} is encrypted or compressed with zip method {info.compress_type}, "
                                 "which reglab does not read")
        members[name] = info
    return members


def _npy_header(path: Path, name: str, m: IO[bytes], size: int) -> tuple[np.dtype, tuple[int, ...]]:
    """(dtype, shape) from an .npy member's header; refused when it holds objects or more than its `size`."""
    version = np.lib.format.read_magic(m)
    if version not in _NPY_VERSIONS:
        raise NpzError(path, f"array {brief(name)} is in .npy format {version}, which reglab does not read")
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a Python 2 header: not one reglab wrote
        shape, _fortran, dtype = read_header(m)
    shape = tuple(shape)
    if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        what = "Python objects" if dtype.hasobject else f"{dtype.str} values"
        raise NpzError(path, f"array {brief(name)} holds {what}, not numbers; reglab reads only numeric arrays")
    if any(n < 0 for n in shape) or dtype.itemsize * math.prod(shape) > size:
        raise NpzError(path, f"array {brief(name)} claims {dtype.str} {shape}, more than its {size:,} bytes hold")
    return dtype, shape
