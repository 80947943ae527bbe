"""`--log` targets, and publishers isolated from the run: a tracking failure costs one warning line, never the
run or reglab's record."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reglab.cli import main
from reglab.config import LOG_KINDS, LogTarget, SweepConfig, validate_log
from reglab.errors import ConfigError
from reglab.tracking.base import Publishers


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["tensorboard", "mlflow", "tensorboard=tb", "mlflow=sqlite:///m.db",
                                           "mlflow=", "tb", "", " mlflow "]), st.text(max_size=12), st.integers()),
                max_size=4))
def test_log_targets_are_kind_and_optional_place_once_each(items):
    try:
        targets = validate_log(items)
    except ConfigError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert all(isinstance(t, LogTarget) and t.kind in LOG_KINDS for t in targets)
    assert len({t.kind for t in targets}) == len(targets) == len(items)
    assert validate_log([t.spec for t in targets]) == targets  # the spec round-trips through run.json
    assert SweepConfig(log=[t.spec for t in targets]).log_targets == targets


class _Sink:
    def __init__(self, name: str, fail_on: str | None = None) -> None:
        self.name, self.fail_on, self.calls = name, fail_on, []

    def __getattr__(self, method):
        def call(*args):
            self.calls.append(method)
            if method == self.fail_on:
                raise OSError("No space left on device")
        return call


def test_a_failing_publisher_costs_one_warning_and_the_others_go_on():
    warnings, broken, fine = [], _Sink("mlflow", fail_on="epoch"), _Sink("tensorboard")
    pubs = Publishers([broken, fine], warnings.append)
    pubs.start(None)
    for _ in range(3):
        pubs.epoch(None)
    pubs.arm_finished(0, "completed", {})
    pubs.finish(None, "completed")
    assert broken.calls == ["start", "epoch"] and fine.calls == ["start", "epoch", "epoch", "epoch", "arm_finished", "finish"]
    assert len(warnings) == 1 and "mlflow logging stopped (OSError: No space left on device)" in warnings[0]


@pytest.mark.parametrize("args, expected", [
    (["--log", "tb"], "unknown log target 'tb'"),
    (["--log", "mlflow", "--log", "mlflow=sqlite:///x.db"], "log target mlflow is given twice"),
    (["--log", "tensorboard="], "give a folder or URI after '='"),
])
def test_bad_log_targets_are_one_line_and_write_nothing(tmp_path, capsys, args, expected):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and not out.exists()


def test_export_needs_a_destination_and_a_run(tmp_path, capsys):
    assert main(["export", str(tmp_path)]) == 2
    assert "needs --tensorboard DIR and/or --mlflow" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--tensorboard", str(tmp_path / "tb")]) == 2
    assert "run.json" in capsys.readouterr().err and not (tmp_path / "tb").exists()


def test_publishers_never_started_are_not_ended():
    """A run that failed before its record opened (a model that does not compile) started nothing to end."""
    sink, warnings = _Sink("tensorboard"), []
    Publishers([sink], warnings.append).finish(None, "failed")
    assert sink.calls == [] and warnings == []
