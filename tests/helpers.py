"""Small shared pieces for tests: tiny real data, the original study as reference, hand-made run records."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

import faults
from reglab.cli import main as cli_main
from reglab.config import SweepConfig
from reglab.data.datasets import load_dataset
from reglab.data.splits import DataInfo, Splits
from reglab.engines.base import Listener
from reglab.record.reader import RunRecord
from reglab.record.schema import COLUMNS, EpochRecord


@functools.lru_cache(maxsize=None)
def mnist5k() -> Splits:
    return load_dataset("mnist-5k")


def small_splits(n_train: int = 300, n_val: int = 96, n_test: int = 64) -> Splits:
    """A slice of the real 5k digits; 300 train samples at batch 32 leave a partial last batch of 12."""
    s = mnist5k()
    info = DataInfo(**{**s.info.to_dict(), "input_shape": s.info.input_shape, "n_train": n_train, "n_val": n_val, "n_test": n_test})
    return Splits(s.x_train[:n_train], s.y_train[:n_train], s.x_val[:n_val], s.y_val[:n_val],
                  s.x_test[:n_test], s.y_test[:n_test], info)


def fake_info() -> DataInfo:
    return DataInfo(name="fake", requested="fake", source="hand-made", split="none", n_train=10, n_val=2,
                    n_test=2, input_shape=(28, 28), sha256="0" * 64)


def hand_made_run(rows: list[EpochRecord], config: SweepConfig, statuses: list[str] | None = None,
                  tests: list[dict] | None = None, run_dir: Path = Path("runs/hand-made")) -> RunRecord:
    arms = config.arms()
    meta = {
        "format": "reglab-run/1", "status": "completed", "engine": config.engine, "config": config.to_dict(),
        "data": fake_info().to_dict(), "versions": {},
        "arms": [
            {"arm": a.index, "lambda": a.strength, "regularizer": a.family, "learning_rate": a.learning_rate, "seed": a.seed,
             "status": (statuses or ["completed"] * len(arms))[a.index],
             "epochs_done": 0, "test": (tests[a.index] if tests else None)}
            for a in arms
        ],
    }
    return RunRecord(run_dir=run_dir, config=config, data=fake_info(), meta=meta, epochs=tuple(rows))


def row(arm: int, lam: float, epoch: int, seed: int = 0, **values: float) -> EpochRecord:
    base = dict(loss=1.0, val_loss=1.0, accuracy=0.5, val_accuracy=0.5, data_loss=1.0, val_data_loss=1.0,
                penalty=0.0, kernel_norm=1.0, seconds=0.1)
    base.update(values)
    return EpochRecord(arm=arm, strength=lam, seed=seed, epoch=epoch, **base)


def original_study_fit(splits, lam: float, seed: int, epochs: int):
    """The original study's code, verbatim apart from `Input` (Keras 3) and the seed."""
    from reglab._keras import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=(28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu", kernel_regularizer=keras.regularizers.l2(lam)),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(splits.x_train, splits.y_train, epochs=epochs, batch_size=32,
                        validation_data=(splits.x_val, splits.y_val), verbose=0)
    return model, history


def assert_trains_like_fit(arm, weights, records, model, history) -> None:
    """An arm's final weights (each within 1e-5 of its tensor's scale) and Keras's four metrics per epoch
    (within 1e-5) against a bare `fit`'s model and History."""
    for got, want in zip(weights, model.trainable_variables, strict=True):
        want = np.asarray(want)
        assert got.shape == want.shape, arm
        assert np.max(np.abs(got - want)) <= 1e-5 * np.max(np.abs(want)), arm
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        np.testing.assert_allclose([getattr(r, key) for r in records], history.history[key], atol=1e-5, err_msg=f"{arm} {key}")


class Collect(Listener):
    """A Listener that keeps what the engine reports."""

    def __init__(self) -> None:
        self.records, self.finished, self.batches = [], [], 0

    def arms_started(self, arms, steps_per_epoch):
        self.steps = steps_per_epoch

    def batches_done(self, arms, epoch, step):
        self.batches += 1

    def epoch_done(self, record):
        self.records.append(record)

    def arm_finished(self, arm, status, test):
        self.finished.append((arm, status, test))

    def checkpoint(self, arrays, meta):
        self.checkpoints = getattr(self, "checkpoints", 0) + 1
        self.last_checkpoint = (arrays, meta)

    def by_arm(self):
        out = {}
        for r in self.records:
            out.setdefault(r.arm, []).append(r)
        return out


def record_values(r: EpochRecord) -> tuple:
    """Every column of a row but the wall-clock seconds."""
    return dataclasses.astuple(dataclasses.replace(r, seconds=0.0))


class StopAfter(Collect):
    """Stops training (as a kill would) once `n` checkpoints have been taken."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def batches_done(self, arms, epoch, step):
        super().batches_done(arms, epoch, step)
        if getattr(self, "checkpoints", 0) >= self.n:
            raise KeyboardInterrupt


def rows_without_seconds(run_dir: Path) -> list[list[str]]:
    """metrics.csv's lines, header first and in file order, without the seconds column (the only one that may
    differ between equal runs)."""
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    seconds = lines[0].split(",").index("seconds")
    return [[v for j, v in enumerate(line.split(",")) if j != seconds] for line in lines]


def metric_values(run_dir: Path) -> list[list[str]]:
    """A run's metrics.csv without the seconds column, rows sorted."""
    header, *rows = rows_without_seconds(run_dir)
    assert header == [c for c in COLUMNS if c != "seconds"]
    return sorted(rows)


@contextlib.contextmanager
def spawned(argv: list[str], env: dict | None = None, **popen) -> Iterator[subprocess.Popen]:
    """A child process with piped, text-mode stdout and stderr that is killed (if still running), reaped and
    has its pipes closed on every way out of the block, so no test leaks a process or a file descriptor.

    An `env` holding REGLAB_FAULT=<point>:<n> runs a `reglab_argv` command through tests/faults.py, which
    makes that process's n-th checkpoint write fail (reglab itself has no fault hook)."""
    if env and faults.ENV in env:
        argv = with_faults(argv)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdin is not None:
            if not proc.stdin.closed:
                proc.stdin.close()
            proc.stdin = None  # communicate() would flush a closed pipe
        proc.communicate()  # drains and closes both pipes, and waits


def reglab_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "reglab", *args]


def with_faults(argv: list[str]) -> list[str]:
    """`reglab_argv(ARGS)` as `python tests/faults.py ARGS`: the same command, with REGLAB_FAULT from its
    environment installed (see tests/faults.py)."""
    head = reglab_argv()
    if list(argv[:len(head)]) != head:
        raise ValueError(f"{faults.ENV} applies to reglab_argv(...) commands only, not {argv!r}")
    return [sys.executable, faults.__file__, *argv[len(head):]]


#: A model with non-trainable state (BatchNormalization's moving statistics), shared by the tests that need one
#: (one source: their compiled programs meet in the session's JAX cache).
BATCHNORM_MODEL = '''
import keras


def build_model():
    return keras.Sequential([
        keras.Input(shape=(28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(64, kernel_regularizer=keras.regularizers.l2(1e-4)),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
'''


def assert_each_bad_input_is_one_line(cases: dict, tmp_path: Path, capsys, *extra: str) -> None:
    """`reglab run --out DIR *extra *args` for every case (name → (args, expected text)): exit status 2, one
    `reglab: error:` line holding the expected text, and nothing written at DIR."""
    from reglab.cli import main

    for name, (args, expected) in cases.items():
        out = tmp_path / f"out-{abs(hash(name))}"
        code = main(["run", "--out", str(out), *extra, *args])
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert code == 2, (name, err)
        assert len(lines) == 1 and lines[0].startswith("reglab: error:"), (name, err)
        assert expected in lines[0], (name, lines[0])
        assert not out.exists(), name


def copy_run(run: Path, tmp: Path, name: str = "run") -> Path:
    """A fresh copy of a finished run to tamper with (its lock file left behind), replacing an older one."""
    d = tmp / name
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(run, d, ignore=shutil.ignore_patterns(".reglab.lock"))
    return d


def jupyter_kernel(tmp_path: Path, monkeypatch, name: str) -> None:
    """A kernelspec `name` that runs this very Python (the venv's, never a system one), found first through
    JUPYTER_PATH; the kernel's temporary folder (where `reglab.sweep` puts a run without `out`) and IPython's
    are the test's."""
    spec = tmp_path / "jupyter" / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "reglab tests", "language": "python", "env": {"TMPDIR": str(tmp_path)}}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))


def cut_adaptive_sweep(src: Path, dst: Path, keep: int, status: str = "interrupted") -> Path:
    """A copy of the completed adaptive sweep `src` as one stopped after round `keep` (before the next plan was
    written): adaptive.json lists `keep` rounds and no answer, and the later rounds' records are gone."""
    shutil.copytree(src, dst)
    meta = json.loads((dst / "adaptive.json").read_text())
    later = meta["rounds"][keep:]
    meta.update(status=status, rounds=meta["rounds"][:keep])
    for key in ("finished", "verdict"):
        meta.pop(key)
    (dst / "adaptive.json").write_text(json.dumps(meta))
    for r in later:
        shutil.rmtree(dst / r["dir"])
    return dst


def assert_refused_in_one_line(argv: list[str], words: str, out: Path, capsys) -> None:
    """`reglab ARGV` exits 2 with one `reglab: error:` line holding `words`, and nothing at `out` was written."""
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()  # refused before anything was written
