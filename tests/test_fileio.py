"""The one atomic-write helper: whole files or none, never through a link, no temporary left behind."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from reglab.fileio import ensure_dir, open_append, temporary_name, write_atomic


def test_write_atomic_replaces_the_file_whole(tmp_path):
    target = tmp_path / "run.json"
    write_atomic(target, "first")
    write_atomic(target, b"second")
    write_atomic(target, lambda f: f.write(b"third"))
    assert target.read_text() == "third"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_a_link_planted_at_the_temporary_name_is_never_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "report.md"
    os.symlink(victim, temporary_name(target))
    write_atomic(target, "report")
    assert victim.read_text() == "precious"
    assert target.read_text() == "report" and not target.is_symlink()
    assert not os.path.lexists(temporary_name(target))


def test_a_link_at_the_target_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "report.html"
    os.symlink(victim, target)
    write_atomic(target, "report")
    assert victim.read_text() == "precious" and not target.is_symlink() and target.read_text() == "report"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "kernels.npz"
    write_atomic(target, b"old")

    def broken(f):
        f.write(b"half")
        raise RuntimeError("the writer failed")

    with pytest.raises(RuntimeError):
        write_atomic(target, broken)
    assert target.read_bytes() == b"old"
    assert not os.path.lexists(temporary_name(target))


def test_appending_never_follows_a_link(tmp_path):
    victim = tmp_path / "victim.csv"
    victim.write_text("precious")
    os.symlink(victim, tmp_path / "metrics.csv")
    with pytest.raises(OSError, match="symbolic link"):
        open_append(tmp_path / "metrics.csv")
    assert victim.read_text() == "precious"
    with open_append(tmp_path / "real.csv") as f:
        f.write("a\r\n")
    assert (tmp_path / "real.csv").read_bytes() == b"a\r\n"


def test_a_figures_folder_that_is_a_link_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, tmp_path / "figures")
    with pytest.raises(OSError, match="symbolic link"):
        ensure_dir(tmp_path / "figures")
    assert ensure_dir(tmp_path / "new").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="not a directory"):
        ensure_dir(Path(tmp_path / "file"))


def test_every_module_writes_through_the_helper():
    """No other routine in the package opens files for writing or renames them into place."""
    src = Path(__file__).resolve().parents[1] / "src" / "reglab"
    offenders = []
    for path in src.rglob("*.py"):
        if path.name == "fileio.py":
            continue
        where = path.relative_to(src).as_posix()
        text = path.read_text()
        for needle in ("os.replace(", "os.rename(", '"w"', "'w'", '"wb"', '"a"', ".write_text(", ".write_bytes(",
                       "savefig(tmp", "np.savez(f", "os.fsync("):
            for line in text.splitlines():
                if needle in line and "write_atomic" not in line and "lambda f" not in line and not line.strip().startswith("#"):
                    offenders.append(f"{where}: {line.strip()}")
    allowed = {"record/writer.py: os.fsync(self._csv_file.fileno())",
               # validation.npz: a zip written into the file object write_atomic hands over (no path opened)
               'record/arrays.py: with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:',
               'record/arrays.py: with z.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w", force_zip64=True) as m:',
               # recommended.keras: Keras saves into a private temporary folder; the comment is set on the bytes
               # in memory (a BytesIO), which write_atomic then puts in place
               'model/kept.py: with zipfile.ZipFile(buffer, "a") as z:'}
    assert set(offenders) <= allowed, sorted(set(offenders) - allowed)


# ---------------------------------------------------------------- tests/faults.py: checkpoint writes that fail

def test_a_disk_full_fault_fails_only_the_nth_checkpoint_write(tmp_path, monkeypatch):
    import errno

    import faults
    from reglab.record.checkpoint import CHECKPOINT_NPZ, write_checkpoint

    faults.install("checkpoint-disk-full:2", monkeypatch)
    write_checkpoint(tmp_path, {"w": np.zeros(3)}, {"epoch": 1})
    with pytest.raises(OSError) as e:
        write_checkpoint(tmp_path, {"w": np.ones(3)}, {"epoch": 2})
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(temporary_name(tmp_path / CHECKPOINT_NPZ))
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NPZ]  # the old one, and no temporary
    with np.load(tmp_path / CHECKPOINT_NPZ) as z:
        np.testing.assert_array_equal(z["w"], np.zeros(3))
    write_checkpoint(tmp_path, {"w": np.full(3, 2.0)}, {"epoch": 3})  # the third write is untouched
    with np.load(tmp_path / CHECKPOINT_NPZ) as z:
        np.testing.assert_array_equal(z["w"], np.full(3, 2.0))


def test_a_write_fault_kills_the_process_with_the_nth_checkpoint_written_but_not_in_place(tmp_path):
    import signal
    import subprocess
    import sys

    import faults
    from reglab.record.checkpoint import CHECKPOINT_NPZ

    code = ("import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import faults; faults.install('checkpoint-write:2'); "
            "from reglab.record.checkpoint import write_checkpoint\n"
            "for i in range(3): write_checkpoint(sys.argv[2], {'w': np.full(3, float(i))}, {'epoch': i})")
    proc = subprocess.run([sys.executable, "-c", code, str(Path(faults.__file__).parent), str(tmp_path)], timeout=300)
    assert proc.returncode == -signal.SIGKILL
    with np.load(tmp_path / CHECKPOINT_NPZ) as z:
        np.testing.assert_array_equal(z["w"], np.zeros(3))  # the first checkpoint, still in place
    with np.load(temporary_name(tmp_path / CHECKPOINT_NPZ)) as z:
        np.testing.assert_array_equal(z["w"], np.ones(3))  # the second, complete beside it


def test_a_fault_in_the_env_runs_a_reglab_command_through_tests_faults():
    import sys

    import faults
    from helpers import reglab_argv, with_faults

    assert with_faults(reglab_argv("run", "--out", "x")) == [sys.executable, faults.__file__, "run", "--out", "x"]
    with pytest.raises(ValueError, match="REGLAB_FAULT"):
        with_faults([sys.executable, "-c", "pass"])
    with pytest.raises(ValueError, match="expected <point>:<n>"):
        faults.parse("checkpoint-write")
