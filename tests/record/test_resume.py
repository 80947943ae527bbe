"""Crash safety: checkpoints on disk are always whole, a resumed run records exactly what an
uninterrupted one does, finished arms are never trained again, and damaged records are refused."""

from __future__ import annotations

import dataclasses
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import Collect, metric_values, reglab_argv, small_splits, spawned
from reglab.config import SweepConfig
from reglab.engines import get_engine
from reglab.errors import RunDirError
from reglab.record.checkpoint import CHECKPOINT_NPZ, read_checkpoint, write_checkpoint
from reglab.record.schema import COLUMNS, EpochRecord, record_to_row, repair_metrics

ENGINES = ("fused", "keras")


def same_validation(run_dir: Path, ref_dir: Path) -> bool:
    """validation.npz of both runs holds the same bytes: every per-example value the same, bit for bit."""
    return (run_dir / "validation.npz").read_bytes() == (ref_dir / "validation.npz").read_bytes()


def values(r: EpochRecord) -> tuple:
    """Every column but the wall-clock seconds."""
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


# fused: one checkpoint per epoch (all arms); keras: one per epoch of the arm in progress, one as an arm ends
# (5 = arm 0 finished, arm 1 one epoch in)
@pytest.mark.parametrize("engine, stop_after", [("fused", 1), ("fused", 2), ("keras", 2),
                                               pytest.param("keras", 5, marks=pytest.mark.slow)])
@pytest.mark.slow
def test_resuming_from_any_checkpoint_gives_the_uninterrupted_record(engine, stop_after):
    # two learning rates: each arm's rate is in its checkpointed optimizer state
    config = SweepConfig(lambdas=(0.0, 1e-2), seeds=1, seed=3, epochs=3, dataset="mnist-5k", engine=engine,
                         learning_rates=(1e-3, 3e-3))
    splits = small_splits()
    train = get_engine(engine)
    whole = Collect()
    weights = train(config, splits, whole)

    first = StopAfter(stop_after)
    with pytest.raises(KeyboardInterrupt):
        train(config, splits, first)
    arrays, meta = first.last_checkpoint
    rest = Collect()
    resumed_weights = train(config, splits, rest, resume=(arrays, meta))

    done = {int(a): e for a, e in meta["epochs_done"].items()}
    kept = [r for r in first.records if r.epoch <= done.get(r.arm, 0)]
    assert sorted(map(values, kept + rest.records)) == sorted(map(values, whole.records))  # bit for bit
    assert {r.arm for r in rest.records}.isdisjoint(
        {int(a) for a in meta.get("finished", {})})  # finished arms are not trained again
    for arm, ws in weights.items():
        for a, b in zip(ws.trainable + ws.non_trainable, resumed_weights[arm].trainable + resumed_weights[arm].non_trainable,
                        strict=True):
            np.testing.assert_array_equal(a, b)
    whole_tests = {arm.index: test for arm, _, test in whole.finished}
    assert rest.finished and all(test == whole_tests[arm.index] for arm, _, test in rest.finished)  # same test metrics


def test_checkpoint_round_trip_and_damage(tmp_path):
    write_checkpoint(tmp_path, {"a": np.arange(3, dtype=np.float32)}, {"epoch": 2, "nan": float("nan")})
    arrays, meta = read_checkpoint(tmp_path)
    assert arrays["a"].tolist() == [0, 1, 2] and meta["epoch"] == 2
    assert not list(tmp_path.glob(".*"))  # no temporary file left
    assert read_checkpoint(tmp_path / "missing") is None
    (tmp_path / CHECKPOINT_NPZ).write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(RunDirError, match="damaged"):
        read_checkpoint(tmp_path)


def _metrics_text(rows: list[EpochRecord], tail: str = "") -> str:
    lines = [",".join(COLUMNS)] + [",".join(record_to_row(r)) for r in rows]
    return "\r\n".join(lines) + "\r\n" + tail


def _row(arm: int, epoch: int) -> EpochRecord:
    return EpochRecord(arm, 0.0, 0, epoch, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0, 0.0, 1.0, 0.1)


def test_repair_keeps_what_the_checkpoint_covers_and_drops_a_torn_row(tmp_path):
    rows = [_row(0, 1), _row(1, 1), _row(0, 2), _row(1, 2)]
    (tmp_path / "metrics.csv").write_text(_metrics_text(rows, tail="0,0.0,0,3,0.9"), newline="")
    kept = repair_metrics(tmp_path, n_arms=2, epochs_done={0: 2, 1: 1})
    assert [(r.arm, r.epoch) for r in kept] == [(0, 1), (1, 1), (0, 2)]
    assert (tmp_path / "metrics.csv").read_bytes() == _metrics_text(kept).encode()


def test_repair_refuses_a_hand_edited_file(tmp_path):
    text = _metrics_text([_row(0, 1)]).replace("1.0,1.0,0.5", "one,1.0,0.5", 1)
    (tmp_path / "metrics.csv").write_text(text, newline="")
    with pytest.raises(RunDirError, match="not a number"):
        repair_metrics(tmp_path, n_arms=1, epochs_done={0: 1})


# ---------------------------------------------------------------- real processes, real kills

def reglab(*args: str, env: dict | None = None):
    """`python -m reglab ARGS` as a context manager: killed and reaped on every way out of the block."""
    return spawned(reglab_argv(*args), env=env)


EPOCHS = {"fused": "30", "keras": "4"}  # long enough that a kill after the first epoch lands mid-run
KILLS = {"fused": 4, "keras": 2}  # per suite run; a keras run and its resume cost three times a fused one


def run_args(engine: str) -> list[str]:
    return ["--dataset", "mnist-5k", "--lambdas", "0,0.01", "--epochs", EPOCHS[engine], "--seeds", "1", "--batch-size", "16",
            "--no-progress", "--engine", engine]


def wait_for_rows(proc: subprocess.Popen, run_dir: Path, rows: int = 1) -> float:
    """Until metrics.csv holds `rows` whole rows (or the process ends); returns the time it happened."""
    metrics = run_dir / "metrics.csv"
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and (not metrics.exists() or metrics.read_text().count("\n") < rows + 1):
        time.sleep(0.01)
    return time.monotonic()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted runs, and the time from their first recorded row to their last (report drawing excluded)."""
    out = {}
    for engine in ENGINES:
        d = tmp_path_factory.mktemp("ref") / engine
        with reglab("run", *run_args(engine), "--out", str(d)) as proc:
            t0 = wait_for_rows(proc, d)
            t1 = wait_for_rows(proc, d, 2 * int(EPOCHS[engine]))
            _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        out[engine] = (d, t1 - t0)
    return out


def resume(run_dir: Path) -> subprocess.CompletedProcess:
    with reglab("run", "--resume", str(run_dir)) as proc:
        stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_sigkill_at_random_moments_then_resume(engine, reference, tmp_path):
    """Kill -9 at a random moment of a random epoch (mid-epoch, mid-write, anywhere), resume, and compare with
    the uninterrupted run: every column but seconds identical. The moment is drawn in the run's own progress
    (after a random number of recorded rows, then up to one row's time more), so a busy machine that slows
    the run down does not move the kills past its end."""
    rng = random.Random(f"kill-{engine}")
    kills = 0
    ref_dir, span = reference[engine]
    total = len(metric_values(ref_dir))
    per_row = span / (total - 1)
    attempt, want = 0, KILLS[engine]
    while kills < want and attempt < 2 * want:  # a kill that lands after the run ended (a busy machine) is drawn again
        attempt += 1
        d = tmp_path / f"run{attempt}"
        with reglab("run", *run_args(engine), "--out", str(d)) as proc:
            wait_for_rows(proc, d, rng.randint(1, total - 2))
            time.sleep(rng.uniform(0.0, per_row))
            finished_first = proc.poll() is not None
            proc.send_signal(signal.SIGKILL)  # harmless when it has already exited (it is not reaped yet)
            proc.communicate(timeout=60)
        if finished_first:  # finished before the kill landed: nothing to test this time
            continue
        if json.loads((d / "run.json").read_text())["status"] == "completed":
            assert metric_values(d) == metric_values(ref_dir)  # killed while drawing the report
            assert same_validation(d, ref_dir)
            continue
        kills += 1
        resume(d)
        assert metric_values(d) == metric_values(ref_dir)
        assert same_validation(d, ref_dir)
        assert not (d / CHECKPOINT_NPZ).exists()  # a completed run keeps its final kernels, not a checkpoint
        with np.load(ref_dir / "kernels.npz") as ref_kernels, np.load(d / "kernels.npz") as got_kernels:
            for name in ref_kernels.files:
                np.testing.assert_array_equal(ref_kernels[name], got_kernels[name])
    print(f"{engine}: {kills} of {attempt} kills landed while the run was going; all resumed to the uninterrupted record")
    assert kills == want, f"only {kills} of {attempt} kills landed while the run was going"


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_killed_while_writing_a_checkpoint_then_resume(engine, reference, tmp_path):
    d = tmp_path / "run"
    with reglab("run", *run_args(engine), "--out", str(d), env={"REGLAB_FAULT": "checkpoint-write:2"}) as proc:
        proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL
    assert (d / f".{CHECKPOINT_NPZ}.tmp").exists()  # it died with the new checkpoint written but not yet in place
    _, meta = read_checkpoint(d)
    assert sum(meta["epochs_done"].values()) >= 1  # the previous checkpoint is whole and readable
    resume(d)
    assert metric_values(d) == metric_values(reference[engine][0])
    assert same_validation(d, reference[engine][0])


@pytest.mark.slow
def test_resume_refuses_what_it_cannot_continue(tmp_path, reference, capsys):
    from reglab.cli import main

    assert main(["run", "--resume", str(reference["fused"][0])]) == 2
    assert "completed run: there is nothing to resume" in capsys.readouterr().err
    assert main(["run", "--resume", str(reference["fused"][0]), "--epochs", "5"]) == 2
    assert "--epochs cannot be used with --resume" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "not a reglab run directory" in capsys.readouterr().err


def with_file_size_limit(limit: int, *args: str) -> list[str]:
    """A command running `python -m reglab ARGS` where no file may grow past `limit` bytes: the write that
    would pass it fails with EFBIG (CPython ignores SIGXFSZ), as on a nearly full disk. The limit is set
    in a fresh interpreter, then exec'd: no fork of this (threaded) test process."""
    code = ("import os, resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({0}, {0})); "
            "os.execv(sys.executable, [sys.executable, '-m', 'reglab', *sys.argv[1:]])").format(limit)
    return [sys.executable, "-c", code, *args]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_a_full_disk_stops_with_one_line_and_the_run_resumes(engine, reference, tmp_path):
    # a write that fails with ENOSPC at the third checkpoint: two whole ones are on disk
    d = tmp_path / "full"
    with reglab("run", *run_args(engine), "--out", str(d), env={"REGLAB_FAULT": "checkpoint-disk-full:3"}) as proc:
        _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("reglab: error: cannot write the record (No space left on device") and "--resume" in last
    assert json.loads((d / "run.json").read_text())["status"] == "failed"
    assert not (d / f".{CHECKPOINT_NPZ}.tmp").exists()
    assert sum(read_checkpoint(d)[1]["epochs_done"].values()) >= 2
    resume(d)
    assert metric_values(d) == metric_values(reference[engine][0])
    assert same_validation(d, reference[engine][0])


@pytest.mark.slow
def test_a_file_size_limit_stops_the_first_checkpoint_and_the_run_resumes(reference, tmp_path):
    """A real failing write (RLIMIT_FSIZE, as a nearly full disk): no checkpoint fits, the run stops with
    one line, and a resume with room starts it over and records what the uninterrupted run did."""
    d = tmp_path / "small-disk"
    with spawned(with_file_size_limit(200_000, "run", *run_args("fused"), "--out", str(d))) as proc:
        _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1 and "Traceback" not in err
    assert "File too large" in err.strip().splitlines()[-1]
    assert read_checkpoint(d) is None
    resume(d)
    assert metric_values(d) == metric_values(reference["fused"][0])
    assert same_validation(d, reference["fused"][0])


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_the_same_config_gives_the_same_record_to_the_last_bit(engine, reference, tmp_path):
    with reglab("run", *run_args(engine), "--out", str(tmp_path / "again")) as proc:
        _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert metric_values(tmp_path / "again") == metric_values(reference[engine][0])
    assert same_validation(tmp_path / "again", reference[engine][0])
    a, b = (json.loads((p / "run.json").read_text())["arms"] for p in (tmp_path / "again", reference[engine][0]))
    assert [x["test"] for x in a] == [x["test"] for x in b]


def test_a_reader_never_sees_a_torn_row(tmp_path):
    from reglab.record.schema import read_metrics

    rows = [_row(0, 1), _row(0, 2)]
    (tmp_path / "metrics.csv").write_text(_metrics_text(rows, tail="0,0.0,0,3,0.9"), newline="")
    assert [r.epoch for r in read_metrics(tmp_path / "metrics.csv", n_arms=1)] == [1, 2]
    whole_last = _metrics_text(rows).rstrip("\r\n")  # a complete last row without its newline still counts
    (tmp_path / "metrics.csv").write_text(whole_last, newline="")
    assert [r.epoch for r in read_metrics(tmp_path / "metrics.csv", n_arms=1)] == [1, 2]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_a_diverged_arm_stays_diverged_and_is_not_trained_again(engine):
    config = SweepConfig(lambdas=(1e-3, 1e38), seeds=1, seed=3, epochs=3, dataset="mnist-5k", engine=engine)
    splits = small_splits()
    train = get_engine(engine)
    whole = Collect()
    train(config, splits, whole)
    first = StopAfter(2)  # fused: after epoch 2; keras: arm 0 at epoch 2
    with pytest.raises(KeyboardInterrupt):
        train(config, splits, first)
    rest = Collect()
    train(config, splits, rest, resume=first.last_checkpoint)
    statuses = {arm.index: status for arm, status, _ in whole.finished}
    assert statuses == {0: "completed", 1: "diverged"}
    assert {arm.index: status for arm, status, _ in rest.finished} == statuses
    assert [r.epoch for r in rest.records if r.arm == 1] == ([] if engine == "fused" else [1])  # fused: diverged before the stop


@pytest.mark.slow
def test_an_arm_stopped_early_before_a_crash_stays_stopped_after_resume(tmp_path):
    """keras engine, early stopping: killed right after arm 0 stopped early and was checkpointed as done."""
    args = ["run", "--dataset", "mnist-5k", "--lambdas", "0,0.01", "--epochs", "12", "--seeds", "1", "--engine", "keras",
            "--early-stopping", "1", "--no-progress"]
    ref, out = tmp_path / "ref", tmp_path / "run"
    with reglab(*args, "--out", str(ref)) as proc:
        assert proc.communicate(timeout=600) and proc.returncode == 0
    arms = json.loads((ref / "run.json").read_text())["arms"]
    assert arms[0]["status"] == "stopped"
    # arm 0 writes one checkpoint per epoch and one as it ends; the next write (arm 1's first) is killed
    with reglab(*args, "--out", str(out), env={"REGLAB_FAULT": f"checkpoint-write:{arms[0]['epochs_done'] + 2}"}) as proc:
        proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL
    resume(out)
    got = json.loads((out / "run.json").read_text())["arms"]
    assert [(a["status"], a["epochs_done"], a["test"]) for a in got] == [(a["status"], a["epochs_done"], a["test"]) for a in arms]
    assert metric_values(out) == metric_values(ref)
    assert same_validation(out, ref)
