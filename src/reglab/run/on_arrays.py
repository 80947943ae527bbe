"""`reglab.sweep`: a sweep of a notebook's own model on its own arrays, in Keras's `fit` words; `run_splits`: the
exact arrays any run trained, validated and tested on.

A run must stay reproducible in a new process (`reglab run --resume`, `reglab report`, `reglab.load_model`),
so nothing of the notebook is kept in memory only: the arrays are written, raw, to `data.npz` (the keys an
.npz dataset has: x_train, y_train, x_test, y_test) and the model to `model.py` (`callable_source`), and the
run's configuration names those files, as a `--dataset FILE.npz --model FILE.py:FUNCTION` run would.

**Where**: in the run directory, as `RUN_DIR/inputs/data.npz` and `RUN_DIR/inputs/model.py`, listed in its
manifest (so `--force` removes them with the rest of the run) and named in run.json relative to the run
directory (run.json's `inputs`): a run directory copied or moved elsewhere still resumes, reports and loads.

**How the data are split**, by the rules of reglab's CSV tables (`tables`), so one table of samples is split
the same way whichever door it came in by:
- no `test_data`: a stratified, seeded fifth of x is held out for test (seed 0; reglab always measures the
  recommended model on data no choice was made on), then, without `validation_data`, a stratified share
  (`validation_split`, default a sixth) of the rest for validation (seed 1);
- `test_data` given: validation is `validation_data`, or else the last share of x (`validation_split`, default a
  sixth), as Keras's `validation_split` takes the last samples.
In data.npz, x_train holds training then validation samples, and the run's `validation_split` is the share that
takes exactly the validation ones back.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple, overload

import numpy as np
from rich.console import Console

from reglab.analysis.adaptive import AdaptiveOptions
from reglab.analysis.results import RunAnalysis
from reglab.config import DEFAULT_LAMBDAS, DEFAULT_SEEDS, INPUT_FILES, SweepConfig
from reglab.data.datasets import load_dataset
from reglab.data.encoding import encode_labels, input_array, label_array
from reglab.data.splits import Splits
from reglab.data.tables import TEST_FRACTION, held_out_split, stratified_holdout
from reglab.errors import ConfigError, DataError, RunDirError
from reglab.fileio import write_atomic
from reglab.model.build import build_user_model
from reglab.model.callable_source import ModelSource, model_source
from reglab.record.reader import RunRecord, load_run
from reglab.record.rundir import check_run_dir
from reglab.record.schema import RUN_JSON
from reglab.run.adaptive import AdaptiveRun, check_adaptive, confirm_options, run_adaptive
from reglab.run.runner import check_arm_cap, report_run, run_sweep
from reglab.settings import DEFAULT_LEARNING_RATE

DATA_NPZ = "data.npz"
MODEL_PY = "model.py"
DATA_IN_RUN, MODEL_IN_RUN = INPUT_FILES  # inputs/data.npz, inputs/model.py: in the run directory
SOURCE = "reglab.sweep"  # how the arrays are named in a data error


class SweptArrays(NamedTuple):
    """What data.npz holds (x_train: training samples, then the `n_val` validation ones) and the split, in words
    (None: the loader's own words, which are right)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_val: int | None  # None: the loader's share of x_train
    validation_split: float | None
    split: str | None

    def npz(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, x_train=self.x_train, y_train=self.y_train, x_test=self.x_test, y_test=self.y_test)
        return buffer.getvalue()


class Places(NamedTuple):
    """Where a sweep writes: its run directory, and the temporary folder holding it when the caller named none
    (None otherwise)."""

    run_dir: Path
    temporary: Path | None


# ---------------------------------------------------------------- the arrays

def _labels(y: Any, what: str, n: int) -> np.ndarray:
    """Labels as a plain array: text or integers held as Python objects (pandas) become str or int64, which an .npz
    keeps without pickling; anything else is left for reglab's label check to name."""
    y = np.asarray(y)
    if y.dtype.kind == "O" and y.size:
        if all(isinstance(v, str) for v in y.ravel()):
            y = y.astype(str)
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in y.ravel()):
            y = y.astype(np.int64)
    return label_array(y, what, n, SOURCE)


def _pair(data: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of `validation_data` or `test_data`, checked as reglab checks a dataset's arrays."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ConfigError(f"{what} must be a pair (x, y), got {type(data).__name__}"
                          + (f" of {len(data)}" if isinstance(data, (tuple, list)) else ""))
    x = input_array(np.asarray(data[0]), f"{what} x", SOURCE)
    y = _labels(data[1], f"{what} y", len(x))
    if len(x) == 0:
        raise DataError(f"{SOURCE}: {what} is empty")
    return x, y


def exact_share(n_val: int, n_file: int) -> float:
    """The `validation_split` that makes reglab's loader (Keras's rule: the last n − int(n·(1 − share)) samples)
    take exactly the last `n_val` of `n_file`: n_val/n_file, unless float rounding takes one sample more."""
    for share in (n_val / n_file, (n_val - 0.5) / n_file):
        if n_file - int(n_file * (1.0 - share)) == n_val:
            return share
    raise AssertionError(f"no share takes {n_val} of {n_file}")  # pragma: no cover - (n_val − ½)/n_file always does


def split_arrays(x: Any, y: Any, validation_data: Any = None, validation_split: float | None = None,
                 test_data: Any = None) -> SweptArrays:
    """The arrays of a sweep, split as the module's docstring says; one `DataError` line for arrays reglab refuses."""
    if validation_data is not None and validation_split is not None:
        raise ConfigError("give validation_data or validation_split, not both")
    x = input_array(np.asarray(x), "x", SOURCE)
    y = _labels(y, "y", len(x))
    val = _pair(validation_data, "validation_data") if validation_data is not None else None
    if test_data is not None:
        x_test, y_test = _pair(test_data, "test_data")
        if val is None:  # the loader's rule and words: the last share of x
            return SweptArrays(x, y, x_test, y_test, None, validation_split, None)
        return _with_validation(x, y, val, x_test, y_test, "validation_data and test_data as given")
    (codes,), _ = encode_labels([("y", y)], SOURCE)  # for stratifying only; the loader numbers the labels again
    if val is None:
        train, held, test, words = held_out_split(codes, validation_split)
        return _with_validation(x[train], y[train], (x[held], y[held]), x[test], y[test], words)
    rest, test = stratified_holdout(codes, TEST_FRACTION, seed=0)
    return _with_validation(x[rest], y[rest], val, x[test], y[test],
                            "stratified and seeded: a fifth of x held out for test (seed 0); validation_data as given")


def _with_validation(x: np.ndarray, y: np.ndarray, val: tuple[np.ndarray, np.ndarray], x_test: np.ndarray,
                     y_test: np.ndarray, words: str) -> SweptArrays:
    if val[0].shape[1:] != x.shape[1:]:
        raise DataError(f"{SOURCE}: x samples are {x.shape[1:]} but validation samples are {val[0].shape[1:]}")
    n_val = len(val[0])
    if len(x) < 1:
        raise DataError(f"{SOURCE}: no training samples are left once validation and test are held out")
    x_file, y_file = np.concatenate([x, val[0]]), np.concatenate([y, val[1]])
    return SweptArrays(x_file, y_file, x_test, y_test, n_val, exact_share(n_val, len(x_file)), words)


# ---------------------------------------------------------------- the files

def places(out: str | Path | None) -> Places:
    """The run directory; in a new temporary folder when `out` is None."""
    if out is None:
        root = Path(tempfile.mkdtemp(prefix="reglab-sweep-"))
        return Places(root / "run", root)
    if not str(out).strip():
        raise RunDirError("out is empty: give the run directory a name, or None for a temporary one")
    return Places(Path(os.path.abspath(Path(out).expanduser())), None)


def input_files(saved: ModelSource, arrays: SweptArrays) -> dict[str, bytes]:
    """The files the run keeps, by name relative to its run directory (`run_sweep`'s `inputs`)."""
    return {DATA_IN_RUN: arrays.npz(), MODEL_IN_RUN: saved.text.encode("utf-8")}


def write_inputs(folder: Path, files: dict[str, bytes]) -> None:
    """The inputs under `folder` (a staging folder), each whole or not at all."""
    try:
        for name, payload in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            write_atomic(folder / name, payload)
    except OSError as e:
        raise RunDirError(f"cannot write {folder}: {e.strerror or e}") from None


def prepared(config: SweepConfig, staging: Path, saved: ModelSource, arrays: SweptArrays) -> tuple[SweepConfig, Splits]:
    """The run's configuration naming the inputs relative to the run directory, and its data as reglab's loader
    prepares them from the copies in `staging`; the user's model built once for these data (a wrong input shape or
    class count is one `ConfigError` line, as for --model)."""

    config = config.replace(dataset=DATA_IN_RUN, model=f"{MODEL_IN_RUN}:{saved.name}",
                            validation_split=arrays.validation_split)
    staged = config.located(None, staging, list(INPUT_FILES))
    splits = load_dataset(staged.dataset, staged.data_options)
    if arrays.n_val is not None and len(splits.x_val) != arrays.n_val:  # pragma: no cover - exact_share guarantees it
        raise AssertionError(f"the loader took {len(splits.x_val)} validation samples, not {arrays.n_val}")
    build_user_model(staged.model, splits.x_train.shape[1:], 0.0, n_classes=splits.info.n_classes,
                     sample=splits.x_train[:8])
    kept = f"npz file {DATA_IN_RUN} in the run directory"
    source = kept if arrays.split is None else f"arrays given to reglab.sweep, kept as {kept}"
    info = dataclasses.replace(splits.info, requested=DATA_IN_RUN, source=source,
                               split=arrays.split if arrays.split is not None else splits.info.split)
    return config, dataclasses.replace(splits, info=info)


# ---------------------------------------------------------------- sweep

def _grid(values: Any) -> Any:
    """One number is a grid of one; a string is parsed as --lambdas is (SweepConfig.from_mapping)."""
    return [values] if isinstance(values, (int, float)) and not isinstance(values, bool) else values


def sweep_config(lambdas: Any, seeds: int, epochs: int, batch_size: int, regularizers: Any, learning_rates: Any,
                 optimizer: str, validation_split: float | None) -> SweepConfig:
    """The sweep's settings, validated before anything is built or written (data and model are named later)."""
    config = SweepConfig.from_mapping({
        "lambdas": _grid(lambdas), "seeds": seeds, "epochs": epochs, "batch_size": batch_size,
        "regularizers": regularizers, "learning_rates": _grid(learning_rates), "optimizer": optimizer,
        "validation_split": validation_split, "dataset": DATA_NPZ, "model": f"{MODEL_PY}:build_model"},
        where="reglab.sweep")
    check_arm_cap(config)
    return config


def sweep(build_model: Any, x: Any, y: Any, *, validation_data: Any = None, validation_split: float | None = None,
          test_data: Any = None, lambdas: Any = DEFAULT_LAMBDAS, seeds: int = DEFAULT_SEEDS, epochs: int = 10,
          batch_size: int = 32, regularizers: Any = ("l2",), learning_rates: Any = (DEFAULT_LEARNING_RATE,),
          optimizer: str = "adam", out: str | Path | None = None, force: bool = False,
          progress: bool | None = None, adaptive: bool = False, budget: int | None = None,
          confirm: bool = False) -> RunAnalysis | AdaptiveRun:
    """Sweep regularization strengths on your own Keras model and arrays; returns the run's analysis (in Jupyter it
    shows the answer and the key figure; `.summary()` is the answer as text, `.run` the record).

    `build_model`: a function with no arguments that returns a Keras model (compiled or not: reglab compiles
    each arm as for --model, and puts each arm's regularizer on it), defined with def in a notebook cell or a
    file, or an uncompiled Keras model (rebuilt per arm from its config, with fresh weights).
    `x`, `y`: arrays, pandas objects or anything `np.asarray` takes; labels are integers or strings (reglab's rule:
    0…K−1 as they are, anything else numbered in sorted order). Validation and test: see the module's docstring.
    `out`: the run directory (None: a new temporary one, printed to stderr); `force`: overwrite a reglab run
    there. `progress`: None for reglab's default display, True for a live bar, False for silence.
    `adaptive`: choose the strengths and seeds in rounds, as `reglab run --adaptive` does (`lambdas` and `seeds`
    are then the sweep's to choose; `budget` caps its arm-epochs); returns the `AdaptiveRun`. `confirm`: train
    the grid as given, then the best strength and λ = 0 on 3 fresh seeds scored on the test set, as
    `reglab run --confirm` does; returns the `AdaptiveRun` (its first round is the grid's own run).
    Everything is checked before anything is written: bad settings are a `ConfigError`, bad arrays a `DataError`.
    """
    if adaptive and (lambdas is not DEFAULT_LAMBDAS or seeds != DEFAULT_SEEDS):
        raise ConfigError("lambdas and seeds cannot be given with adaptive=True: the sweep chooses its own")
    if budget is not None and not adaptive:
        raise ConfigError("budget is for adaptive=True")
    if adaptive and confirm:
        raise ConfigError("confirm=True cannot be used with adaptive=True: an adaptive sweep confirms its answer already")
    config = sweep_config(lambdas, seeds, epochs, batch_size, regularizers, learning_rates, optimizer, validation_split)
    if adaptive:
        check_adaptive(config)
    options = AdaptiveOptions(epochs=epochs, budget=budget) if adaptive else confirm_options(config) if confirm else None
    saved = model_source(build_model)
    arrays = split_arrays(x, y, validation_data, validation_split, test_data)
    where = places(out)
    try:
        if options is not None:
            return _run(config, saved, arrays, where, force, progress, options)
        run = _run(config, saved, arrays, where, force, progress)
    except BaseException:
        if where.temporary is not None and not (where.run_dir / RUN_JSON).exists():
            shutil.rmtree(where.temporary, ignore_errors=True)
        raise
    if where.temporary is not None:
        print(f"reglab: run written to {where.run_dir}", file=sys.stderr)
    return report_run(run)


def progress_console(progress: bool | None) -> Console:
    """Where the sweep's messages go: stderr; in a notebook kernel, by default, as plain lines in one output, not one
    rich HTML block per line nor a terminal's live bar (the progress itself is one output updated in place there:
    `progress.ProgressDisplay`)."""
    in_kernel = "ipykernel" in sys.modules
    plain = in_kernel and progress is None
    return Console(stderr=True, quiet=progress is False, force_jupyter=False if plain else None,
                   force_terminal=False if plain else None)


@overload
def _run(config: SweepConfig, saved: ModelSource, arrays: SweptArrays, where: Places, force: bool,
         progress: bool | None) -> RunRecord: ...


@overload
def _run(config: SweepConfig, saved: ModelSource, arrays: SweptArrays, where: Places, force: bool,
         progress: bool | None, adaptive: AdaptiveOptions) -> AdaptiveRun: ...


def _run(config: SweepConfig, saved: ModelSource, arrays: SweptArrays, where: Places, force: bool,
         progress: bool | None, adaptive: AdaptiveOptions | None = None) -> RunRecord | AdaptiveRun:
    """Check the files as reglab will read them in a staging folder, then train: `run_sweep` writes them into the
    run directory, holding its lock, once it is cleared (`force`) and before anything else of the run."""
    check_run_dir(where.run_dir, force)
    files = input_files(saved, arrays)
    with tempfile.TemporaryDirectory(prefix="reglab-sweep-check-") as staging:  # `out` untouched until all is known good
        write_inputs(Path(staging), files)
        data, model = Path(staging, DATA_IN_RUN), Path(staging, MODEL_IN_RUN)
        try:
            run_config, splits = prepared(config, Path(staging), saved, arrays)
        except DataError as e:  # name the arrays and the function, not the staging files
            raise DataError(str(e).replace(f"npz file {data}", SOURCE)) from None
        except ConfigError as e:
            raise ConfigError(str(e).replace(f"--model {model}:{saved.name}", saved.name)) from None
    if adaptive is not None:
        return run_adaptive(run_config, adaptive, where.run_dir, force=force, console=progress_console(progress),
                            live=progress, splits=splits, inputs=files)
    return run_sweep(run_config, out=where.run_dir, force=force, splits=splits, console=progress_console(progress),
                     live=progress, inputs=files, make_report=False)


# ---------------------------------------------------------------- the data back

def run_splits(run: str | Path | RunRecord) -> Splits:
    """The arrays `run` trained, validated and tested on, prepared (labels numbered, inputs scaled) exactly as it
    used them: its dataset read again through reglab's loader with the run's options, and checked against the
    sha256 run.json recorded. `info` is the run's own record of the data."""
    run = run if isinstance(run, RunRecord) else load_run(run)
    config = run.config.located(run.meta.get("paths"), run.run_dir, run.meta.get("inputs"))  # the files where the run found them, from any directory
    recorded = run.meta["data"]
    name = recorded["name"] if recorded.get("fallback_reason") else config.dataset  # the data used, a fallback too
    splits = load_dataset(name, config.data_options)
    if splits.info.sha256 != run.data.sha256:
        raise DataError(f"the data of {run.run_dir} have changed since the run (sha256 {run.data.sha256[:12]}… in "
                        f"{RUN_JSON}, {splits.info.sha256[:12]}… now); these are not the arrays it used")
    return dataclasses.replace(splits, info=run.data)


__all__ = ["DATA_NPZ", "MODEL_PY", "run_splits", "split_arrays", "sweep"]
