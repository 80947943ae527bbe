"""Crash safety with early stopping (keras engine, real `python -m reglab` processes): an arm that stopped early
before a crash stays stopped after the resume. Shared helpers: resume_cases.py."""

from __future__ import annotations

import json
import signal

import pytest

pytest.register_assert_rewrite("resume_cases")

from resume_cases import reglab, resume, same_validation  # noqa: E402

from helpers import metric_values  # noqa: E402


@pytest.mark.slow
def test_an_arm_stopped_early_before_a_crash_stays_stopped_after_resume(tmp_path):
    """keras engine, early stopping: killed right after arm 0 stopped early and was checkpointed as done."""
    args = ["run", "--dataset", "mnist-5k", "--lambdas", "0,0.01", "--epochs", "12", "--seeds", "1", "--engine", "keras",
            "--early-stopping", "1", "--no-progress", "--no-report"]
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
