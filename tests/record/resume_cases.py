"""What the crash-safety tests of tests/record/test_resume_*.py share: `python -m reglab` runs killed or failed
on purpose, the uninterrupted reference runs they are compared with, and the checks that run for each engine.

The engine cases live in one file per engine (test_resume_fused.py, test_resume_keras.py), each with its own
`reference` fixture holding only that engine's uninterrupted run: no reference is built twice, and pytest-xdist
(`--dist loadfile`) can run the two files on its two workers. The test files call
`pytest.register_assert_rewrite("resume_cases")` before importing this module, so a failing check here reads
as it would in a test file."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np

from helpers import metric_values, reglab_argv, spawned
from reglab.record.checkpoint import CHECKPOINT_NPZ, read_checkpoint


def same_validation(run_dir: Path, ref_dir: Path) -> bool:
    """validation.npz of both runs holds the same bytes: every per-example value the same, bit for bit."""
    return (run_dir / "validation.npz").read_bytes() == (ref_dir / "validation.npz").read_bytes()


def reglab(*args: str, env: dict | None = None):
    """`python -m reglab ARGS` as a context manager: killed and reaped on every way out of the block."""
    return spawned(reglab_argv(*args), env=env)


EPOCHS = {"fused": "30", "keras": "4"}  # long enough that a kill after the first epoch lands mid-run
KILLS = {"fused": 2, "keras": 2}  # per suite run, at fixed draws (a run, a kill and a resume: ~15 s fused, ~3 times that with keras)


def run_args(engine: str) -> list[str]:
    return ["--dataset", "mnist-5k", "--lambdas", "0,0.01", "--epochs", EPOCHS[engine], "--seeds", "1", "--batch-size", "16",
            "--no-progress", "--no-report", "--engine", engine]  # the record is what is compared: no report drawn


def wait_for_rows(proc: subprocess.Popen, run_dir: Path, rows: int = 1) -> float:
    """Until metrics.csv holds `rows` whole rows (or the process ends); returns the time it happened."""
    metrics = run_dir / "metrics.csv"
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and (not metrics.exists() or metrics.read_text().count("\n") < rows + 1):
        time.sleep(0.01)
    return time.monotonic()


def reference_runs(tmp_path_factory, engines: tuple[str, ...]) -> dict[str, tuple[Path, float]]:
    """Uninterrupted runs, and the time from their first recorded row to their last (report drawing excluded)."""
    out = {}
    for engine in engines:
        d = tmp_path_factory.mktemp("ref") / engine
        with reglab("run", *run_args(engine), "--out", str(d)) as proc:
            t0 = wait_for_rows(proc, d)
            t1 = wait_for_rows(proc, d, 2 * int(EPOCHS[engine]))
            _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        out[engine] = (d, t1 - t0)
    return out


def resume(run_dir: Path) -> subprocess.CompletedProcess:
    with reglab("run", "--resume", str(run_dir), "--no-report") as proc:
        stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


# ---------------------------------------------------------------- the checks each engine's file runs

def sigkill_at_random_moments_then_resume(engine: str, reference: dict, tmp_path: Path) -> None:
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
            assert metric_values(d) == metric_values(ref_dir)  # killed after the record was closed
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


def killed_while_writing_a_checkpoint_then_resume(engine: str, reference: dict, tmp_path: Path) -> None:
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


def a_full_disk_stops_with_one_line_and_the_run_resumes(engine: str, reference: dict, tmp_path: Path) -> None:
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


def the_same_config_gives_the_same_record_to_the_last_bit(engine: str, reference: dict, tmp_path: Path) -> None:
    with reglab("run", *run_args(engine), "--out", str(tmp_path / "again")) as proc:
        _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert metric_values(tmp_path / "again") == metric_values(reference[engine][0])
    assert same_validation(tmp_path / "again", reference[engine][0])
    a, b = (json.loads((p / "run.json").read_text())["arms"] for p in (tmp_path / "again", reference[engine][0]))
    assert [x["test"] for x in a] == [x["test"] for x in b]
