"""Crash safety of real `python -m reglab` processes, keras engine: killed at random moments, killed while writing
a checkpoint, stopped by a full disk, each resumed to exactly the uninterrupted record. The fused engine's cases
are in test_resume_fused.py (shared checks: resume_cases.py)."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("resume_cases")

from resume_cases import (  # noqa: E402
    a_full_disk_stops_with_one_line_and_the_run_resumes,
    killed_while_writing_a_checkpoint_then_resume,
    reference_runs,
    sigkill_at_random_moments_then_resume,
    the_same_config_gives_the_same_record_to_the_last_bit,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted keras run (this file's tests use no other), and the time from its first row to its last."""
    return reference_runs(tmp_path_factory, ("keras",))


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["keras"])
def test_sigkill_at_random_moments_then_resume(engine, reference, tmp_path):
    sigkill_at_random_moments_then_resume(engine, reference, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["keras"])
def test_killed_while_writing_a_checkpoint_then_resume(engine, reference, tmp_path):
    killed_while_writing_a_checkpoint_then_resume(engine, reference, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["keras"])
def test_a_full_disk_stops_with_one_line_and_the_run_resumes(engine, reference, tmp_path):
    a_full_disk_stops_with_one_line_and_the_run_resumes(engine, reference, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["keras"])
def test_the_same_config_gives_the_same_record_to_the_last_bit(engine, reference, tmp_path):
    the_same_config_gives_the_same_record_to_the_last_bit(engine, reference, tmp_path)
