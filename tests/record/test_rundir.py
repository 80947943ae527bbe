"""Run directories shared by several processes and by the user's own files: one reglab process at a time,
`--force` removes only what reglab listed, new run names never collide."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import fake_info, reglab_argv, row, spawned
from reglab.cli import main
from reglab.config import SweepConfig
from reglab.errors import RunDirError
from reglab.record.reader import load_run
from reglab.record.rundir import (
    LOCK,
    MANIFEST,
    check_run_dir,
    clear_run_dir,
    locked,
    read_manifest,
    register,
    reserve_default_run_dir,
)
from reglab.record.writer import Recorder

CONFIG = SweepConfig(lambdas=(0.0, 0.01), seeds=1, epochs=1, dataset="fake")


def tiny_npz(path: Path, n: int = 60) -> str:
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), y_train=np.arange(n) % 10,
             x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), y_test=np.arange(20) % 10)
    return str(path)


def recorded(run_dir: Path) -> Path:
    rec = Recorder(run_dir, CONFIG, fake_info())
    for arm in CONFIG.arms():
        rec.append(row(arm.index, arm.strength, 1))
    rec.finish("completed")
    return run_dir


# ---------------------------------------------------------------- --force and the manifest

def test_check_and_clear_keep_the_users_files(tmp_path):
    check_run_dir(tmp_path / "new", force=False)  # absent: fine
    (tmp_path / "empty").mkdir()
    check_run_dir(tmp_path / "empty", force=False)  # empty: fine
    run_dir = recorded(tmp_path / "run")
    (run_dir / "notes.txt").write_text("mine")
    (run_dir / "figures").mkdir()
    (run_dir / "figures" / "mine.png").write_bytes(b"my own figure")
    register(run_dir, ["figures/val_data_loss.png"])
    (run_dir / "figures" / "val_data_loss.png").write_bytes(b"reglab's")
    with pytest.raises(RunDirError, match="already exists"):
        check_run_dir(run_dir, force=False)
    check_run_dir(run_dir, force=True)
    clear_run_dir(run_dir)
    assert sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*")) == ["figures", "figures/mine.png", "notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="not a directory"):
        check_run_dir(tmp_path / "file", force=True)


def test_a_folder_with_a_run_json_that_is_not_reglabs_is_never_forced(tmp_path, capsys):
    d = tmp_path / "d"
    (d / "figures").mkdir(parents=True)
    (d / "run.json").write_text("{}")
    for name in ("figures/plot.png", "report.md", "metrics.csv"):
        (d / name).write_text("the user's")
    assert main(["run", "--dataset", "mnist-5k", "--epochs", "1", "--out", str(d), "--force"]) == 2
    assert "not a reglab run directory" in capsys.readouterr().err
    assert all((d / name).read_text() == "the user's" for name in ("figures/plot.png", "report.md", "metrics.csv"))


def test_a_run_without_a_manifest_is_not_forced(tmp_path):
    run_dir = recorded(tmp_path / "old")
    (run_dir / MANIFEST).unlink()  # as an older reglab left it
    with pytest.raises(RunDirError, match="kept no list of its files"):
        check_run_dir(run_dir, force=True)


def test_a_manifest_cannot_point_outside_the_run(tmp_path):
    victim = tmp_path / "victim.png"
    victim.write_text("precious")
    run_dir = recorded(tmp_path / "run")
    files = json.loads((run_dir / MANIFEST).read_text())["files"]
    evil = ["../victim.png", str(victim), "figures/../../victim.png", "figures/../run.json/../../victim.png", "figures/", 7]
    (run_dir / MANIFEST).write_text(json.dumps({"format": "reglab-manifest/1", "files": files + evil}))
    assert set(read_manifest(run_dir)) == set(files)
    clear_run_dir(run_dir)
    assert victim.read_text() == "precious"
    with pytest.raises(ValueError):
        register(run_dir, ["../escape.png"])


@pytest.mark.slow
def test_force_replaces_a_run_and_keeps_the_users_files(tmp_path, capsys):
    data = tiny_npz(tmp_path / "tiny.npz")
    out = tmp_path / "run"
    assert main(["run", "--dataset", data, "--lambdas", "0", "--epochs", "1", "--seeds", "1", "--out", str(out), "--no-progress"]) == 0
    (out / "notes.txt").write_text("mine")
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures and set(f"figures/{f}" for f in figures) <= set(read_manifest(out))
    assert main(["run", "--dataset", data, "--lambdas", "0,0.1", "--epochs", "1", "--seeds", "1", "--out", str(out), "--force",
                 "--no-progress"]) == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert [a["lambda"] for a in json.loads((out / "run.json").read_text())["arms"]] == [0.0, 0.1]
    capsys.readouterr()


@pytest.mark.slow
def test_a_crash_right_after_the_run_directory_was_started_can_be_forced(tmp_path, capsys):
    """A crash before run.json was written leaves a manifest (and maybe config.toml): --force accepts it."""
    d = tmp_path / "half"
    d.mkdir()
    register(d, ["run.json", "config.toml", "metrics.csv"])
    (d / "config.toml").write_text("epochs = 1\n")
    (d / LOCK).write_text("")
    data = tiny_npz(tmp_path / "tiny.npz")
    assert main(["run", "--dataset", data, "--lambdas", "0", "--epochs", "1", "--seeds", "1", "--out", str(d), "--no-progress"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["run", "--dataset", data, "--lambdas", "0", "--epochs", "1", "--seeds", "1", "--out", str(d), "--force",
                 "--no-progress"]) == 0
    assert load_run(d).meta["status"] == "completed"


def test_an_empty_out_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--dataset", "mnist-5k", "--epochs", "1", "--out", ""]) == 2
    assert "--out is empty" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_symlinked_report_temporary_is_not_written_through(tmp_path, capsys):
    data = tiny_npz(tmp_path / "tiny.npz")
    out = tmp_path / "run"
    assert main(["run", "--dataset", data, "--lambdas", "0", "--epochs", "1", "--seeds", "1", "--out", str(out), "--no-progress"]) == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in (".report.md.tmp", ".report.html.tmp", ".run.json.tmp", ".manifest.json.tmp"):
        os.symlink(victim, out / name)
    assert main(["report", str(out)]) == 0
    assert victim.read_text() == "precious"
    capsys.readouterr()


# ---------------------------------------------------------------- one process at a time

HOLD = ("import sys; from pathlib import Path; from reglab.record.rundir import locked\n"
        "with locked(Path(sys.argv[1])):\n    print('locked', flush=True); sys.stdin.read()\n")


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path, capsys):
    run_dir = recorded(tmp_path / "run")
    with spawned([sys.executable, "-c", HOLD, str(run_dir)], stdin=-1) as holder:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["report", str(run_dir)]) == 2
        err = capsys.readouterr().err
        assert f"is in use by another reglab process (pid {holder.pid})" in err and err.count("\n") == 1
        assert main(["run", "--dataset", "mnist-5k", "--epochs", "1", "--out", str(run_dir), "--force"]) == 2
        assert f"pid {holder.pid}" in capsys.readouterr().err
        holder.stdin.close()
        holder.wait(timeout=30)
    assert main(["report", str(run_dir)]) == 0  # free again
    capsys.readouterr()


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with locked(tmp_path, create=True):
        with locked(tmp_path):
            pass
        with spawned([sys.executable, "-c", HOLD, str(tmp_path)], stdin=-1) as other:
            other.stdin.close()
            assert other.wait(timeout=60) != 0 and "in use by another reglab process" in other.stderr.read()


def test_default_run_names_are_unique_within_a_second(tmp_path):
    names = [reserve_default_run_dir(tmp_path / "runs") for _ in range(5)]
    assert len(set(names)) == 5 and all(n.is_dir() for n in names)
    assert names[1].name == names[0].name + "-2" or names[1].name[:16] != names[0].name[:16]


RUN = ["run", "--lambdas", "0,0.01", "--epochs", "2", "--no-progress"]


@pytest.mark.slow
def test_two_runs_on_one_out_never_lose_a_record(tmp_path):
    """Started together on the same --out with different settings: one records its run, the other is refused
    with one line; the record on disk is whole and is the winner's."""
    data = tiny_npz(tmp_path / "tiny.npz", n=600)
    out = tmp_path / "shared"
    lambdas = {0: "0,0.01", 1: "0,0.001,0.01"}
    with spawned(reglab_argv(*RUN[:1], "--dataset", data, "--lambdas", lambdas[0], "--epochs", "3", "--seeds", "1", "--no-progress",
                             "--out", str(out))) as a, \
         spawned(reglab_argv(*RUN[:1], "--dataset", data, "--lambdas", lambdas[1], "--epochs", "3", "--seeds", "1", "--no-progress",
                             "--out", str(out))) as b:
        results = [p.communicate(timeout=600) + (p.returncode,) for p in (a, b)]
    codes = sorted(r[2] for r in results)
    assert codes == [0, 2], results
    loser = next(r for r in results if r[2] == 2)
    line = loser[1].strip().splitlines()[-1]
    assert "in use by another reglab process (pid" in line or "already exists" in line, loser[1]
    winner = next(i for i, r in enumerate(results) if r[2] == 0)
    run = load_run(out)  # whole: every row checked
    assert run.config.lambdas == tuple(float(x) for x in lambdas[winner].split(","))
    assert len(run.epochs) == len(run.config.arms()) * 3 and run.meta["status"] == "completed"


@pytest.mark.slow
def test_two_resumes_at_once_record_every_epoch_once(tmp_path):
    data = tiny_npz(tmp_path / "tiny.npz", n=600)
    out = tmp_path / "run"
    args = ["run", "--dataset", data, "--lambdas", "0,0.01", "--epochs", "6", "--seeds", "1", "--no-progress"]
    with spawned(reglab_argv(*args, "--out", str(out)), env={"REGLAB_FAULT": "checkpoint-write:3"}) as first:
        first.communicate(timeout=600)
    assert json.loads((out / "run.json").read_text())["status"] == "running"  # killed mid-run
    resume = reglab_argv("run", "--resume", str(out), "--no-report")  # the record is what they contend for
    with spawned(resume) as a, spawned(resume) as b:
        results = [p.communicate(timeout=600) + (p.returncode,) for p in (a, b)]
    assert sorted(r[2] for r in results) == [0, 2], results
    loser = next(r for r in results if r[2] == 2)[1].strip().splitlines()[-1]
    assert "in use by another reglab process" in loser or "nothing to resume" in loser, loser
    run = load_run(out)  # no epoch recorded twice (load_run refuses duplicated rows)
    assert run.meta["status"] == "completed" and len(run.epochs) == 2 * 6


@pytest.mark.slow
def test_two_runs_without_out_in_the_same_second_get_two_directories(tmp_path):
    data = tiny_npz(tmp_path / "tiny.npz")
    argv = reglab_argv("run", "--dataset", data, "--lambdas", "0", "--epochs", "1", "--seeds", "1", "--no-progress", "--no-report")
    with spawned(argv, cwd=tmp_path) as a, spawned(argv, cwd=tmp_path) as b:
        results = [p.communicate(timeout=600) + (p.returncode,) for p in (a, b)]
    assert [r[2] for r in results] == [0, 0], results
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all(load_run(r).meta["status"] == "completed" for r in runs)


def test_report_of_a_running_run_is_refused_and_writes_nothing(tmp_path, capsys):
    run_dir = recorded(tmp_path / "run")
    with spawned([sys.executable, "-c", HOLD, str(run_dir)], stdin=-1) as holder:
        assert holder.stdout.readline().strip() == "locked"
        before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
        assert main(["report", str(run_dir)]) == 2
        holder.stdin.close()
        holder.wait(timeout=30)
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before
    capsys.readouterr()
