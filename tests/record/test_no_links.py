"""Nothing lost through a link (issue 27, items 1, 2 and 14): `--force` removes nothing and reglab writes
nothing through a symbolic link at any depth inside a run directory, and a full disk while the report
is drawn names the file and says the record is complete."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from helpers import copy_run
from reglab.cli import main
from reglab.fileio import ensure_dir, open_append, remove_file, safe_path, write_atomic
from reglab.record.rundir import locked

RUN = ["run", "--dataset", "mnist-5k", "--lambdas", "0,0.01", "--epochs", "1", "--seeds", "1", "--no-progress"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A tiny run with live TensorBoard logs in RUN_DIR/tensorboard (so its manifest lists event files)."""
    out = tmp_path_factory.mktemp("links") / "run"
    assert main([*RUN, "--log", "tensorboard", "--out", str(out)]) == 0
    return out


def one_error_line(capsys) -> str:
    """The run's one `reglab: error:` line (a run that trained first printed its epochs above it)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("reglab")]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("reglab: error: "), err
    assert err.rstrip().endswith(lines[0]), err
    return lines[0]


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def replace_with_link(folder: Path, target: Path) -> None:
    """Move `folder`'s files to `target` (outside the run) and leave a link in its place."""
    shutil.copytree(folder, target, dirs_exist_ok=True)
    shutil.rmtree(folder)
    folder.symlink_to(target, target_is_directory=True)


def add_to_manifest(run: Path, *names: str) -> None:
    path = run / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"] += list(names)
    path.write_text(json.dumps(manifest))


def force_is_refused(run: Path, link: Path, capsys) -> None:
    before = files_of(run)
    assert main([*RUN, "--out", str(run), "--force"]) == 2
    line = one_error_line(capsys)
    assert str(link) in line and "symbolic link" in line and "nothing was removed" in line
    assert files_of(run) == before  # the whole plan was checked first: nothing of the run was removed either


# ---------------------------------------------------------------- --force never deletes through a link

@pytest.mark.slow
def test_force_removes_nothing_through_a_figures_link(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path)
    photos = tmp_path / "photos"
    replace_with_link(run / "figures", photos)  # the user's photos, named as the manifest lists figures
    (photos / "holiday.png").write_bytes(b"a photo")
    add_to_manifest(run, "figures/holiday.png")  # any name added to the manifest
    kept = files_of(photos)
    force_is_refused(run, run / "figures", capsys)
    assert files_of(photos) == kept and "holiday.png" in kept


def test_force_removes_nothing_through_a_tensorboard_link(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path)
    logs = tmp_path / "my-logs"
    replace_with_link(run / "tensorboard", logs)
    kept = files_of(logs)
    assert any("tfevents" in name for name in kept)
    force_is_refused(run, run / "tensorboard", capsys)
    assert files_of(logs) == kept


def test_force_removes_nothing_through_a_link_two_levels_deep(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path)
    arm = next(p for p in (run / "tensorboard").iterdir() if p.is_dir())
    logs = tmp_path / "train-logs"
    replace_with_link(arm / "train", logs)  # tensorboard/ARM/train → a folder outside the run
    kept = files_of(logs)
    assert kept
    force_is_refused(run, arm / "train", capsys)
    assert files_of(logs) == kept


def test_force_through_a_linked_run_directory_is_fine(finished_run, tmp_path, capsys):
    """The run directory itself may be a link the user gave: only links inside it are refused."""
    run = copy_run(finished_run, tmp_path)
    mine = tmp_path / "mine.txt"
    mine.write_text("mine")
    (run / "notes.txt").write_text("the user's")
    alias = tmp_path / "alias"
    alias.symlink_to(run, target_is_directory=True)
    assert main([*RUN, "--out", str(alias), "--force"]) == 0
    assert (run / "notes.txt").read_text() == "the user's" and (run / "report.html").is_file()
    assert not (run / "tensorboard").exists()  # this run logs nothing to TensorBoard: the old logs were reglab's


# ---------------------------------------------------------------- nothing is written through a link

def test_live_tensorboard_logs_are_not_written_through_a_link(finished_run, tmp_path, capsys):
    """A run whose manifest lists no TensorBoard files, but whose tensorboard/ is a link: the run completes,
    the logging stops with a warning naming the link, and the linked folder stays as it was."""
    run = copy_run(finished_run, tmp_path)
    shutil.rmtree(run / "tensorboard")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["files"] = [f for f in manifest["files"] if not f.startswith("tensorboard/")]
    (run / "manifest.json").write_text(json.dumps(manifest))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "tensorboard").symlink_to(elsewhere, target_is_directory=True)
    assert main([*RUN, "--log", "tensorboard", "--out", str(run), "--force"]) == 0
    err = capsys.readouterr().err
    assert "warning: tensorboard logging" in err and "symbolic link" in err
    assert list(elsewhere.iterdir()) == []


def test_no_write_goes_through_a_link_inside_a_locked_run_directory(tmp_path):
    run, photos = tmp_path / "run", tmp_path / "photos"
    run.mkdir()
    photos.mkdir()
    (photos / "a.png").write_bytes(b"a photo")
    (run / "figures").symlink_to(photos, target_is_directory=True)
    (run / "real").mkdir()
    (run / "real" / "deep").symlink_to(photos, target_is_directory=True)
    with locked(run):
        for path in (run / "figures" / "a.png", run / "real" / "deep" / "a.png", run / "figures" / "new.png"):
            with pytest.raises(OSError, match="symbolic link"):
                write_atomic(path, b"overwritten")
            with pytest.raises(OSError, match="symbolic link"):
                open_append(path)
            with pytest.raises(OSError, match="symbolic link"):
                remove_file(path)
        with pytest.raises(OSError, match="symbolic link"):
            ensure_dir(run / "real" / "deep" / "sub", parents=True)
        with pytest.raises(OSError, match="symbolic link"):
            safe_path(run, "real/deep/a.png")
        write_atomic(run / "real" / "ok.txt", "fine")  # no link on the way: written as before
    assert sorted(os.listdir(photos)) == ["a.png"] and (photos / "a.png").read_bytes() == b"a photo"
    assert (run / "real" / "ok.txt").read_text() == "fine"


# ---------------------------------------------------------------- a full disk while the report is drawn

def test_a_full_disk_while_drawing_the_report_names_the_file(tmp_path, capsys, monkeypatch):
    from matplotlib.figure import Figure

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a write into a full disk fails: no file name

    monkeypatch.setattr(Figure, "savefig", disk_full)
    run = tmp_path / "run"
    assert main([*RUN, "--out", str(run)]) == 1
    line = one_error_line(capsys)
    assert os.strerror(errno.ENOSPC) in line
    assert str(run / "figures") in line and ".png" in line  # the file being written
    assert "the run is complete and recorded" in line and f"reglab report {run}" in line
    monkeypatch.undo()
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert main(["report", str(run)]) == 0  # what the message promised
    assert (run / "report.html").is_file()
