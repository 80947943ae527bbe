"""Memory grows with arms × parameters plus data, as engines/memory.py states; a sweep that cannot fit is
refused before anything is written; SIGTERM ends a large run within seconds, leaving a resumable record."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from helpers import assert_each_bad_input_is_one_line, reglab_argv
from reglab.config import SweepConfig
from reglab.data.datasets import load_dataset
from reglab.engines import memory
from reglab.engines.workers import on_workers
from reglab.errors import ConfigError


def test_an_absurd_sweep_is_refused_before_anything_is_written(tmp_path, capsys):
    """A million arms of the study's network (1.7 TB by the formula): one line naming the estimate, the memory
    available and what to lower, in the seconds it takes to load the data, and no run directory."""
    t0 = time.monotonic()
    assert_each_bad_input_is_one_line({"a million arms": (
        ["--dataset", "wine", "--lambdas", "logspace:1e-6:1e-1:1000", "--seeds", "1000", "--max-arms", "1000000"],
        "GB is available (MemAvailable); sweep fewer arms (--seeds, --lambdas)")}, tmp_path, capsys)
    assert time.monotonic() - t0 < 60


def test_the_estimate_follows_the_formula_and_refuses_only_beyond_what_is_available():
    config = SweepConfig(lambdas=(0.0, 1e-3), seeds=3, epochs=2, dataset="wine")
    splits = load_dataset("wine", config.data_options)
    params = memory.model_parameters(config, splits)
    assert params == 13 * 128 + 128 + 128 * 3 + 3  # the study's network on wine's 13 features and 3 classes
    need = memory.check_memory(config, splits, params, available=lambda: None)  # unknown: never refused
    assert need == memory.estimate(6, params, memory.data_bytes(config, splits))
    assert need == memory.BASE_BYTES + 6 * (memory.BYTES_PER_PARAMETER * params + memory.BYTES_PER_ARM) + memory.data_bytes(config, splits)
    memory.check_memory(config, splits, params, available=lambda: 1 << 40)
    # the part of the estimate this process already holds is not asked of MemAvailable: 10,000 arms exceed it
    many = SweepConfig(lambdas=tuple(np.logspace(-6, -1, 100)), seeds=100, epochs=2, dataset="wine")
    with pytest.raises(ConfigError, match=r"needs about 2\.\d GB of memory \(10,000 arms × 2,179 parameters.* 0\.0 GB is available"):
        memory.check_memory(many, splits, params, available=lambda: 0)
    # a process already holding more than the whole estimate (a test worker, a notebook) is still refused: only
    # the base part of the estimate can be what it holds (this failed at random in a loaded test worker)
    with mock.patch.object(memory, "resident_bytes", return_value=8 << 30), pytest.raises(ConfigError):
        memory.check_memory(many, splits, params, available=lambda: 0)


def test_a_stop_lands_between_units_of_work_not_after_all_of_them():
    """The workers check for a stop between units: the units after it never start, on one worker or two."""
    for workers in (1, 2):
        ran: list[int] = []

        def check() -> None:
            if len(ran) >= 3:
                raise KeyboardInterrupt

        def call(i: int) -> int:
            ran.append(i)
            time.sleep(0.01)
            return i

        with pytest.raises(KeyboardInterrupt):
            on_workers(call, 100, workers, check)
        assert len(ran) <= 3 + 2 * workers, (workers, ran)
        assert on_workers(call, 5, workers, lambda: None) == [0, 1, 2, 3, 4]


def _peak_rss_bytes(argv: list[str]) -> tuple[int, str]:
    """Run `argv` under a fresh Python whose only child it is, and read that child's ru_maxrss (peak RSS)."""
    probe = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(p.stderr[-2000:], file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=900)
    code, kib = done.stdout.split()
    assert code == "0", done.stderr
    return int(kib) * 1024, done.stderr


@pytest.mark.slow
def test_the_estimate_is_within_a_factor_of_two_of_the_measured_peak(tmp_path):
    """200 arms of the study's network on mnist-5k (101,770 parameters each): the whole `reglab run` process,
    report included, against the formula (1.0 GB estimated; 0.9 GB measured when it was written)."""
    args = ["--dataset", "mnist-5k", "--lambdas", "logspace:1e-6:1e-1:20", "--seeds", "10", "--epochs", "1"]
    peak, err = _peak_rss_bytes(reglab_argv("run", *args, "--out", str(tmp_path / "run"), "--no-progress"))
    config = SweepConfig(lambdas=tuple(np.logspace(-6, -1, 20)), seeds=10, epochs=1, dataset="mnist-5k")
    splits = load_dataset("mnist-5k", config.data_options)
    estimate = memory.check_memory(config, splits, available=lambda: None)
    assert estimate / 2 <= peak <= 2 * estimate, (peak, estimate, err)


#: 1,000 arms of the study's network on wine: before issue 27, a program over every arm compiled for 20 s and
#: more (superlinear in the arms) while a SIGTERM waited; now every program is one arm's.
BIG_RUN = ["--dataset", "wine", "--lambdas", "logspace:1e-6:1e-1:100", "--seeds", "10", "--max-arms", "1000", "--no-progress"]


@contextlib.contextmanager
def _running(argv: list[str], stderr: Path):
    """A child whose output goes to a file (a pipe nobody reads fills up and stalls it), killed and reaped on every way out."""
    with stderr.open("w") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=dict(os.environ))
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _strategy_said(run_dir: Path) -> bool:
    """run.json names the engine's strategy: the seeds' models are built, the programs not yet compiled."""
    try:
        return "engine_strategy" in json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):  # not written yet
        return False


def _terminate(proc: subprocess.Popen, ready: Callable[[], bool]) -> float:
    """SIGTERM once `ready()`; the seconds until the process has exited."""
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and not ready():
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be stopped"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    return time.monotonic() - t0


@pytest.mark.slow
def test_sigterm_mid_epoch_of_a_large_run_exits_within_seconds_and_the_run_resumes(tmp_path):
    out = tmp_path / "run"
    err_file = tmp_path / "stderr.txt"
    with _running(reglab_argv("run", *BIG_RUN, "--epochs", "2", "--out", str(out)), err_file) as proc:
        seconds = _terminate(proc, (out / "checkpoint.npz").exists)  # the first epoch is recorded: the second (last) is under way
    assert seconds < 15, f"{seconds:.1f} s from SIGTERM to exit"
    assert proc.returncode == 128 + signal.SIGTERM, err_file.read_text()[-2000:]
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "interrupted"
    done = subprocess.run(reglab_argv("run", "--resume", str(out), "--no-progress", "--no-report"), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "run.json").read_text())["status"] == "completed"
    assert (out / "metrics.csv").read_text().count("\n") == 1 + 1000 * 2


@pytest.mark.slow
def test_sigterm_while_a_large_run_starts_exits_within_seconds(tmp_path):
    """Signalled once the strategy is chosen: while the arms' states are packed and the programs compiled."""
    out = tmp_path / "run"
    err_file = tmp_path / "stderr.txt"
    with _running(reglab_argv("run", *BIG_RUN, "--epochs", "2", "--out", str(out)), err_file) as proc:
        seconds = _terminate(proc, lambda: _strategy_said(out))
    assert seconds < 15, f"{seconds:.1f} s from SIGTERM to exit"
    assert proc.returncode == 128 + signal.SIGTERM, err_file.read_text()[-2000:]
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
