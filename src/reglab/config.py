"""The experiment's settings: one frozen, validated value that every stage reads and the run dir keeps.

Validation happens once, when a `SweepConfig` is made, so no later stage meets a bad value.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping, NamedTuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from reglab.data.datasets import LOADERS
from reglab.data.splits import DataOptions
from reglab.errors import ConfigError
from reglab.fileio import link_in
from reglab.inputs import MiB, brief, read_regular
from reglab.settings import DEFAULT_LEARNING_RATE, Setting, parse_family

#: What `reglab.sweep` keeps in the run directory (run.json's `inputs`): the arrays and the model function it
#: was given.
INPUTS = "inputs"
INPUT_FILES = (f"{INPUTS}/data.npz", f"{INPUTS}/model.py")
#: The original study's three strengths plus the λ = 0 baseline it compares them with.
DEFAULT_LAMBDAS: tuple[float, ...] = (0.0, 1e-4, 1e-3, 1e-2)
#: The training engines: every arm in one compiled program, or Keras's own fit per arm.
ENGINES: tuple[str, ...] = ("fused", "keras")
#: Seeds per setting unless told: with one seed, seed-to-seed noise is unmeasured and nothing can be claimed.
DEFAULT_SEEDS = 3
#: adam: Keras's Adam (the original study's "adam"); sgd: Keras's SGD(momentum=0.9). Both at the sweep's learning rates.
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
SGD_MOMENTUM = 0.9
MAX_EPOCHS = 100_000
MAX_SEEDS = 10_000
#: The largest seed (`seed + seeds − 1` included): numpy's, Python's and JAX's generators all take it.
MAX_SEED = 2**31 - 1
MAX_BATCH_SIZE = 1 << 20
#: Arms a new sweep may have unless asked for more (`--max-arms`, `run_sweep(max_arms=)`): a safety limit on
#: an accidental grid (training memory, time, and a report whose size grows with arms), not a setting of the
#: experiment, so `SweepConfig` does not check it and a resumed run is never refused.
MAX_ARMS = 1000
#: A preset is a few lines; a bigger --config file is refused before it is read.
MAX_CONFIG_BYTES = 1 * MiB


@dataclass(frozen=True)
class SweepConfig:
    """One sweep: every family × learning rate × strength (a `Setting`) × every seed is an arm."""

    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS
    seeds: int = DEFAULT_SEEDS  # three: the fewest that measure seed noise (one seed describes, never claims)
    seed: int = 0
    epochs: int = 10
    batch_size: int = 32
    dataset: str = "mnist"
    engine: str = "fused"
    early_stopping: int = 0  # patience in epochs on validation data loss, per arm (Keras's EarlyStopping); 0 = off
    restore_best: bool = False  # each arm's best-epoch weights for the test evaluation and kernels.npz
    model: str = ""  # "" = the original study's network; else FILE.py:FUNCTION returning the user's Keras model
    regularizers: tuple[str, ...] = ("l2",)  # families compared as arms of one sweep (see `parse_family`)
    strengths: tuple[tuple[str, tuple[float, ...]], ...] = ()  # a family's own grid; others use `lambdas`
    learning_rates: tuple[float, ...] = (DEFAULT_LEARNING_RATE,)  # the optimizer's, each a setting field like λ
    optimizer: str = "adam"  # one of OPTIMIZERS, for every arm
    target: str = ""  # a CSV dataset's column of class labels
    test_file: str = ""  # a CSV dataset's test set ("" = a stated stratified fifth of the file)
    validation_split: float | None = None  # share held out for validation (None: the dataset's stated split)
    log: tuple[str, ...] = ()  # where the sweep is also published, live: "tensorboard[=DIR]", "mlflow[=URI]"
    score_on: str = "validation"  # whose per-example values are recorded: "test" in an adaptive sweep's confirmation round

    def __post_init__(self) -> None:
        object.__setattr__(self, "lambdas", validate_lambdas(self.lambdas))
        _check_int("seeds", self.seeds, 1, MAX_SEEDS)
        _check_int("seed", self.seed, 0, MAX_SEED)
        if self.seed + self.seeds - 1 > MAX_SEED:
            raise ConfigError(f"the last seed, seed + seeds − 1 = {self.seed + self.seeds - 1}, must be at most {MAX_SEED}")
        _check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        _check_int("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise ConfigError("dataset must be a non-empty name or path")
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {brief(self.engine)} (choose from: {', '.join(ENGINES)})")
        _check_int("early_stopping", self.early_stopping, 0, MAX_EPOCHS)
        if not isinstance(self.restore_best, bool):
            raise ConfigError(f"restore_best must be true or false, got {brief(self.restore_best)}")
        if not isinstance(self.model, str) or (self.model and ":" not in self.model):
            raise ConfigError(f"model must be FILE.py:FUNCTION, got {brief(self.model)}")
        if self.restore_best and not self.early_stopping:
            raise ConfigError("restore_best needs early stopping (--early-stopping PATIENCE)")
        object.__setattr__(self, "regularizers", validate_families(self.regularizers))
        object.__setattr__(self, "strengths", validate_strengths(self.strengths, self.regularizers))
        object.__setattr__(self, "learning_rates", validate_learning_rates(self.learning_rates))
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {brief(self.optimizer)} (choose from: {', '.join(OPTIMIZERS)})")
        for name in ("target", "test_file"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string, got {brief(getattr(self, name))}")
        is_csv = self.dataset.strip().lower().endswith(".csv")
        if is_csv and not self.target.strip():
            raise ConfigError(f"dataset {brief(self.dataset)} is a CSV file: name its column of class labels with "
                              "--target COLUMN (TOML: target)")
        if (self.target or self.test_file) and not is_csv:
            raise ConfigError("target and test_file (--target, --test-file) are for a CSV dataset (--dataset FILE.csv)")
        if self.validation_split is not None:
            v = self.validation_split
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
                raise ConfigError(f"validation_split must be a number between 0 and 1 (exclusive), got {brief(v)}")
            object.__setattr__(self, "validation_split", float(v))
        object.__setattr__(self, "log", tuple(t.spec for t in validate_log(self.log)))
        if self.score_on not in SCORED_ON:
            raise ConfigError(f"score_on must be one of {', '.join(SCORED_ON)}, got {brief(self.score_on)}")
        if self.score_on == "test" and self.early_stopping:
            raise ConfigError("early stopping cannot watch the test set: score_on = 'test' needs early_stopping = 0")

    @property
    def log_targets(self) -> tuple[LogTarget, ...]:
        return validate_log(self.log)

    @property
    def data_options(self) -> DataOptions:
        """What the data loader needs beyond the dataset's name."""

        return DataOptions(self.target, self.test_file, self.validation_split, self.score_on == "test")

    def absolute_paths(self, inputs: Any = ()) -> dict[str, str]:
        """The files this configuration reads, as absolute resolved paths (run.json's `paths`): the dataset
        when it is a file or folder, the test file, and the model file (`FILE.py:FUNCTION`). A resume or
        `load_model` from another directory reads these, not the as-given ones. Files named in `inputs`
        (run.json's, kept inside the run directory: see `located`) are left out: they move with it."""

        kept = set(_input_names(inputs))
        out = {}
        if self.dataset not in LOADERS and self.dataset not in kept and _absolute(self.dataset):
            out["dataset"] = _absolute(self.dataset)
        if self.test_file and self.test_file not in kept and _absolute(self.test_file):
            out["test_file"] = _absolute(self.test_file)
        file, _, function = self.model.rpartition(":")
        if self.model and file not in kept and _absolute(file):
            out["model"] = f"{_absolute(file)}:{function}"
        return out

    def located(self, paths: Any, run_dir: str | Path | None = None, inputs: Any = None) -> SweepConfig:
        """This configuration reading the files at `paths` (run.json's, see `absolute_paths`) instead of the
        as-given ones; a record from before they were kept (or a damaged entry) keeps the as-given paths.
        Files named in `inputs` (run.json's: `inputs/data.npz`, `inputs/model.py`, kept in the run directory
        by `reglab.sweep`) are read from `run_dir`, wherever it now is, before `paths`; never through a link."""
        found: dict[str, str] = {}
        if isinstance(paths, Mapping):
            found = {k: v for k, v in paths.items() if k in ("dataset", "test_file", "model") and isinstance(v, str)
                     and v and bool(getattr(self, k))}
        kept = set(_input_names(inputs)) if run_dir is not None else set()
        if kept and run_dir is not None:  # kept is empty without a run_dir; the check narrows it for mypy
            def inside(name: str) -> str:
                path = Path(run_dir).absolute() / name
                link = path if path.is_symlink() else link_in(path, Path(run_dir).absolute())
                if link is not None:
                    raise ConfigError(f"{link} is a symbolic link; reglab reads a run's inputs only from its own folder")
                return str(path)

            if self.dataset in kept:
                found["dataset"] = inside(self.dataset)
            if self.test_file in kept:
                found["test_file"] = inside(self.test_file)
            file, _, function = self.model.rpartition(":")
            if self.model and file in kept:
                found["model"] = f"{inside(file)}:{function}"
        return self.replace(**found) if found else self

    def grid(self, family: str) -> tuple[float, ...]:
        """The strengths swept for one family: its own grid when given, else `lambdas`."""
        return dict(self.strengths).get(family, self.lambdas)

    def settings(self) -> list[Setting]:
        """The settings of one seed's arms, in arm order: families as given, then learning rates, then
        strengths, both ascending (so each family × learning rate is a contiguous series of strengths)."""

        return [Setting(family, lam, lr) for family in self.regularizers for lr in self.learning_rates
                for lam in self.grid(family)]

    @property
    def n_settings(self) -> int:
        """len(settings()), counted rather than listed (a grid may be large: the arm limit checks it)."""
        return sum(len(self.grid(family)) for family in self.regularizers) * len(self.learning_rates)

    @property
    def several_learning_rates(self) -> bool:
        return len(self.learning_rates) > 1

    @property
    def seed_values(self) -> tuple[int, ...]:
        return tuple(range(self.seed, self.seed + self.seeds))

    def arms(self) -> list[Arm]:
        """Seeds outer, λ inner: arms that share a seed are neighbours, as they share an initialization."""
        arms: list[Arm] = []
        for s in self.seed_values:
            for setting in self.settings():
                arms.append(Arm(index=len(arms), strength=setting.strength, seed=s, family=setting.family,
                                learning_rate=setting.learning_rate))
        return arms

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lambdas"] = list(self.lambdas)
        d["regularizers"] = list(self.regularizers)
        d["strengths"] = {family: list(grid) for family, grid in self.strengths}
        d["learning_rates"] = list(self.learning_rates)
        d["log"] = list(self.log)
        for name, default in _NEWER_FIELDS.items():  # left out at their defaults: TOML has no None, and the
            if d[name] == default:  # configurations (and checkpoint fingerprints) of earlier runs stay as they were
                del d[name]
        return d

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str = "config") -> SweepConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown setting {brief(unknown[0])} in {where} (known: {', '.join(sorted(known))})"
            )
        vals = dict(values)
        if "lambdas" in vals:
            lam = vals["lambdas"]
            vals["lambdas"] = parse_lambdas(lam) if isinstance(lam, str) else lam
        if isinstance(vals.get("learning_rates"), str):
            vals["learning_rates"] = parse_learning_rates(vals["learning_rates"])
        if isinstance(vals.get("regularizers"), str):
            vals["regularizers"] = parse_families(vals["regularizers"])
        if isinstance(vals.get("strengths"), Mapping):
            vals["strengths"] = tuple(vals["strengths"].items())
        return cls(**vals)

    def replace(self, **changes: Any) -> SweepConfig:
        return SweepConfig.from_mapping({**self.to_dict(), **changes})


def _input_names(inputs: Any) -> list[str]:
    """run.json's `inputs`, only the names reglab writes there (a damaged entry names nothing)."""
    return [n for n in inputs if n in INPUT_FILES] if isinstance(inputs, (list, tuple)) else []


def _absolute(path: str) -> str:
    """`path` made absolute and resolved, "" when nothing is there (or the system refuses the name)."""
    try:
        p = Path(path).expanduser()
        return str(p.resolve()) if p.exists() else ""
    except (OSError, ValueError, RuntimeError):
        return ""


#: Fields added after records were first written, and their defaults (see `SweepConfig.to_dict`).
_NEWER_FIELDS: dict[str, Any] = {"target": "", "test_file": "", "validation_split": None, "log": [], "score_on": "validation"}

#: What `SweepConfig.score_on` may name: the held-out set whose per-example values a run records.
SCORED_ON = ("validation", "test")


@dataclass(frozen=True)
class Arm:
    """One training: a setting and a seed. The seed fixes initialization and batch order."""

    index: int
    strength: float
    seed: int
    family: str = "l2"
    learning_rate: float = DEFAULT_LEARNING_RATE

    @property
    def setting(self) -> Setting:
        return Setting(self.family, self.strength, self.learning_rate)


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {brief(value)}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {brief(value)}")


class Grid(NamedTuple):
    """How one swept quantity is named in errors, and what its values may be."""

    field: str  # the config field: lambdas, learning_rates
    what: str  # one value: λ, learning rate
    positive: bool  # > 0 (a learning rate) rather than ≥ 0 (a strength)


STRENGTH_GRID = Grid("lambdas", "λ", False)
LEARNING_RATE_GRID = Grid("learning_rates", "learning rate", True)


def validate_lambdas(values: Any, grid: Grid = STRENGTH_GRID) -> tuple[float, ...]:
    """Keras's rule (`validate_float_arg`): finite and non-negative (a learning rate: positive); plus
    non-empty, no repeats, and each nonzero value a normal float32 (training's precision)."""
    what = grid.what
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ConfigError(f"{grid.field} must be a list of numbers, got {brief(values)}")
    out: list[float] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{what} must be a number, got {brief(v)}")
        try:
            v = float(v)
        except OverflowError:  # an int beyond float range (TOML allows any length)
            raise ConfigError(f"{what} must be finite, got an integer too large for a float") from None
        if math.isnan(v) or math.isinf(v):
            raise ConfigError(f"{what} must be finite, got {v}")
        if v < 0 or (grid.positive and v == 0):
            raise ConfigError(f"{what} must be {'positive' if grid.positive else 'non-negative'}, got {v}")
        v += 0.0  # -0.0 → 0.0: one baseline, written one way
        _check_float32(v, what, zero_ok=not grid.positive)
        if v in out:
            raise ConfigError(f"{what} {v:g} is given twice")
        out.append(v)
    if not out:
        raise ConfigError(f"the list of {what} values is empty")
    return tuple(sorted(out))


#: The smallest normal and the largest finite float32: training runs in float32, so a value outside them
#: would be trained as 0 (or inf) while run.json says otherwise.
FLOAT32_TINY = 2.0**-126
FLOAT32_MAX = (2.0 - 2.0**-23) * 2.0**127


def _check_float32(v: float, what: str, zero_ok: bool) -> None:
    """A nonzero value must be a normal float32 (subnormals lose digits; below them it is 0)."""
    if v != 0 and v < FLOAT32_TINY:
        raise ConfigError(f"{what} {v!r} is too small for float32, which training uses (the smallest is {FLOAT32_TINY:.4g}); "
                          f"use {'0 or ' if zero_ok else ''}a larger value")
    if v > FLOAT32_MAX:
        raise ConfigError(f"{what} {v!r} is too large for float32, which training uses (the largest is {FLOAT32_MAX:.4g})")


def validate_learning_rates(values: Any) -> tuple[float, ...]:
    return validate_lambdas(values, LEARNING_RATE_GRID)


#: At most this many values from one `logspace:` item.
MAX_LOGSPACE = 1000


def logspace(start: float, stop: float, n: int) -> list[float]:
    """n values from start to stop (both included), evenly spaced in log; 12 significant digits, so decades
    come out as written (1e-3, not 0.0010000000000000002). Computed from log(start) and log(stop), never
    stop / start, so no range of positive finite floats overflows (1e-300 to 1e308 is 608 decades, fine);
    the ends are START and STOP themselves, rounded the same way."""
    first = _round12(start)
    if n == 1:
        return [first]
    lo, hi = math.log(start), math.log(stop)
    inner = []
    for i in range(1, n - 1):
        try:
            inner.append(_round12(math.exp(lo + (hi - lo) * i / (n - 1))))
        except OverflowError:  # only just above the largest float: reported as not finite by the caller
            inner.append(math.inf)
    return [first, *inner, _round12(stop)]


def _round12(x: float) -> float:
    return float(f"{x:.12g}")


def _parse_logspace(item: str) -> list[float]:
    fields = item.split(":")
    if len(fields) != 4:
        raise ConfigError(f"{brief(item)}: write logspace:START:STOP:N, for example logspace:1e-6:1e-1:16")
    try:
        start, stop = float(fields[1]), float(fields[2])
    except ValueError:
        raise ConfigError(f"{brief(item)}: START and STOP must be numbers") from None
    try:
        n = int(fields[3])
    except ValueError:
        raise ConfigError(f"{brief(item)}: N must be a whole number") from None
    if not (math.isfinite(start) and math.isfinite(stop)) or start <= 0 or stop <= 0:
        raise ConfigError(f"{brief(item)}: START and STOP must be finite and > 0 (add 0 separately: 0,logspace:…)")
    if stop < start:
        raise ConfigError(f"{brief(item)}: STOP must not be below START")
    if not 1 <= n <= MAX_LOGSPACE:
        raise ConfigError(f"{brief(item)}: N must be between 1 and {MAX_LOGSPACE}")
    if n > 1 and stop == start:
        raise ConfigError(f"{brief(item)}: START equals STOP, so the {n} values would repeat")
    values = logspace(start, stop, n)
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ConfigError(f"{brief(item)}: not every value from START to STOP is a finite number > 0 at 12 digits")
    if any(a >= b for a, b in zip(values, values[1:])):
        raise ConfigError(f"{brief(item)}: START and STOP are too close for {n} distinct values (at 12 significant digits)")
    return values


def parse_lambdas(text: str, grid: Grid = STRENGTH_GRID) -> tuple[float, ...]:
    """Parse `--lambdas` (and `--learning-rates`): comma-separated items, each a number or
    `logspace:START:STOP:N` (N values evenly spaced in log from START to STOP). A logspace value equal to
    another item counts once; a number written twice is an error."""
    what = grid.what
    parts = [p.strip() for p in str(text).split(",")]
    if all(p == "" for p in parts):
        raise ConfigError(f"the list of {what} values is empty")
    values: list[float] = []
    generated: list[float] = []
    for p in parts:
        if p == "":
            raise ConfigError(f"empty item in {what} list {brief(text)}")
        if p.lower().startswith("logspace:"):
            generated += _parse_logspace(p)
            continue
        try:
            values.append(float(p))
        except ValueError:
            raise ConfigError(f"{what} {brief(p)} is not a number (or logspace:START:STOP:N)") from None
    explicit = validate_lambdas(values, grid) if values else ()
    return validate_lambdas(list(explicit) + sorted(set(generated) - set(explicit)), grid)


def parse_learning_rates(text: str) -> tuple[float, ...]:
    """Parse `--learning-rates`, with the syntax of `--lambdas`; every value > 0."""
    return parse_lambdas(text, LEARNING_RATE_GRID)


def parse_families(text: str) -> tuple[str, ...]:
    """`--regularizer l2,weight_decay` → the canonical family names, in the order given."""
    return validate_families([p.strip() for p in str(text).split(",")])


def validate_families(values: Any) -> tuple[str, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ConfigError(f"regularizers must be a list of names, got {brief(values)}")
    out: list[str] = []
    for v in values:
        name = parse_family(v).name
        if name in out:
            raise ConfigError(f"regularizer {name} is given twice")
        out.append(name)
    if not out:
        raise ConfigError("the list of regularizers is empty")
    return tuple(out)


def parse_strengths(items: list[str]) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """`--strengths FAMILY=SPEC` items (SPEC as for --lambdas) → (family, grid) pairs, in the order given."""
    out: list[tuple[str, tuple[float, ...]]] = []
    for item in items:
        family, sep, spec = str(item).partition("=")
        if not sep or not family.strip():
            raise ConfigError(f"--strengths takes FAMILY=VALUES (for example weight_decay=logspace:1e-4:1e-1:7), got {brief(item)}")
        name = parse_family(family.strip()).name
        if name in dict(out):
            raise ConfigError(f"--strengths gives {name} twice")
        out.append((name, parse_lambdas(spec)))
    return tuple(out)


def validate_strengths(values: Any, families: tuple[str, ...]) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """(family, grid) pairs, each family among `families` and each grid a valid λ list; in family order."""
    if isinstance(values, Mapping):
        values = tuple(values.items())
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ConfigError(f"strengths must map regularizers to lists of strengths, got {brief(values)}")
    grids: dict[str, tuple[float, ...]] = {}
    for pair in values:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ConfigError(f"strengths must map regularizers to lists of strengths, got {brief(pair)}")
        family, grid = pair
        name = parse_family(family).name
        if name not in families:
            raise ConfigError(f"strengths for {name}, which is not among the regularizers ({', '.join(families)})")
        if name in grids:
            raise ConfigError(f"strengths for {name} are given twice")
        grids[name] = parse_lambdas(grid) if isinstance(grid, str) else validate_lambdas(grid)
    return tuple((f, grids[f]) for f in families if f in grids)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a preset; the table's keys are `SweepConfig` field names."""
    p = Path(path)
    raw = read_regular(p, "config file", MAX_CONFIG_BYTES, ConfigError)  # a FIFO or /dev/zero: refused, not read
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {p} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {p} is not valid TOML: {e}") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ConfigError(f"config file {p} is not a usable preset: values nested too deeply") from None
    return data


def dump_toml(config: SweepConfig) -> str:
    import tomli_w

    return tomli_w.dumps(config.to_dict())


# ---------------------------------------------------------------- where a sweep is also published

#: `--log KIND[=WHERE]`: TensorBoard event files in a folder (default RUN_DIR/tensorboard), or an MLflow
#: tracking URI (default MLflow's own default store).
LOG_KINDS: tuple[str, ...] = ("tensorboard", "mlflow")


class LogTarget(NamedTuple):
    kind: str  # one of LOG_KINDS
    where: str  # "" = the kind's default

    @property
    def spec(self) -> str:
        return f"{self.kind}={self.where}" if self.where else self.kind


def validate_log(values: Any) -> tuple[LogTarget, ...]:
    """Each `KIND[=WHERE]` item, at most one per kind."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ConfigError(f"log must be a list such as [\"tensorboard\", \"mlflow=sqlite:///sweeps.db\"], got {brief(values)}")
    out: list[LogTarget] = []
    for item in values:
        if not isinstance(item, str):
            raise ConfigError(f"a log target must be text such as tensorboard or mlflow=URI, got {brief(item)}")
        kind, sep, where = item.strip().partition("=")
        kind, where = kind.strip(), where.strip()
        if kind not in LOG_KINDS:
            raise ConfigError(f"unknown log target {brief(item)} (choose from: {', '.join(LOG_KINDS)}, each optionally =WHERE)")
        if sep and not where:
            raise ConfigError(f"log target {brief(item)}: give a folder or URI after '=', or leave '=' out for the default")
        if any(t.kind == kind for t in out):
            raise ConfigError(f"log target {kind} is given twice")
        out.append(LogTarget(kind, where))
    return tuple(out)
