"""Crash safety of real `python -m reglab` processes, fused engine: killed at random moments, killed while writing
a checkpoint, stopped by a full disk or a file size limit, each resumed to exactly the uninterrupted record; and a
resume refuses what it cannot continue. The keras engine's cases are in test_resume_keras.py (shared checks:
resume_cases.py); in-process resumes in test_resume_in_process.py."""

from __future__ import annotations

import sys

import pytest

pytest.register_assert_rewrite("resume_cases")

from resume_cases import (  # noqa: E402
    a_full_disk_stops_with_one_line_and_the_run_resumes,
    killed_while_writing_a_checkpoint_then_resume,
    reference_runs,
    resume,
    run_args,
    same_validation,
    sigkill_at_random_moments_then_resume,
    the_same_config_gives_the_same_record_to_the_last_bit,
)

from helpers import metric_values, spawned  # noqa: E402
from reglab.record.checkpoint import read_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted fused run (this file's tests use no other), and the time from its first row to its last."""
    return reference_runs(tmp_path_factory, ("fused",))


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["fused"])
def test_sigkill_at_random_moments_then_resume(engine, reference, tmp_path):
    sigkill_at_random_moments_then_resume(engine, reference, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["fused"])
def test_killed_while_writing_a_checkpoint_then_resume(engine, reference, tmp_path):
    killed_while_writing_a_checkpoint_then_resume(engine, reference, tmp_path)


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
@pytest.mark.parametrize("engine", ["fused"])
def test_a_full_disk_stops_with_one_line_and_the_run_resumes(engine, reference, tmp_path):
    a_full_disk_stops_with_one_line_and_the_run_resumes(engine, reference, tmp_path)


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
@pytest.mark.parametrize("engine", ["fused"])
def test_the_same_config_gives_the_same_record_to_the_last_bit(engine, reference, tmp_path):
    the_same_config_gives_the_same_record_to_the_last_bit(engine, reference, tmp_path)
