"""Hostile run directories and flags: whatever is on disk or on the command line, reglab answers with
a result or one `reglab: error:` line, never a traceback, and never overwrites what it cannot read."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import copy_run
from reglab.cli import build_parser, config_from_args, main
from reglab.config import SweepConfig
from reglab.errors import ConfigError
from reglab.record.checkpoint import CHECKPOINT_NPZ, write_checkpoint

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "run"
    assert main(["run", "--dataset", "mnist-5k", "--lambdas", "0,0.01", "--epochs", "1", "--seeds", "1", "--out", str(out),
                 "--no-progress"]) == 0
    return out


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("reglab: error: "), err
    return lines[0]


@pytest.mark.slow
@SETTINGS
@given(st.binary(max_size=400))
def test_report_on_any_run_json(finished_run, tmp_path_factory, capsys, data):
    d = copy_run(finished_run, tmp_path_factory.getbasetemp(), "json")
    (d / "run.json").write_bytes(data)
    assert main(["report", str(d)]) == 2
    assert "run.json" in one_error_line(capsys)
    assert (d / "run.json").read_bytes() == data  # never rewritten


@SETTINGS
@given(st.one_of(st.binary(max_size=400), st.text(alphabet="0123456789.,-e\nnaif", max_size=400).map(str.encode)))
def test_report_on_any_metrics_csv(finished_run, tmp_path_factory, capsys, data):
    d = copy_run(finished_run, tmp_path_factory.getbasetemp(), "csv")
    (d / "metrics.csv").write_bytes(data)
    code = main(["report", str(d), "--open"] if False else ["report", str(d)])
    if code != 0:
        assert code == 2 and "metrics.csv" in one_error_line(capsys)
    assert (d / "metrics.csv").read_bytes() == data



@pytest.mark.parametrize("data", [b"\r", b"\r\x00"])
def test_a_metrics_csv_that_is_a_stray_carriage_return_is_one_line(finished_run, tmp_path_factory, capsys, data):
    """Found by the property test above: the csv module's own error is one line naming the file, not an internal error."""
    d = copy_run(finished_run, tmp_path_factory.getbasetemp(), "cr")
    (d / "metrics.csv").write_bytes(data)
    assert main(["report", str(d)]) == 2 and "metrics.csv" in one_error_line(capsys)

def interrupted(run: Path, tmp: Path, name: str) -> Path:
    d = copy_run(run, tmp, name)
    meta = json.loads((d / "run.json").read_text())
    meta["status"] = "interrupted"
    (d / "run.json").write_text(json.dumps(meta))
    return d


@SETTINGS
@given(st.binary(max_size=300))
def test_resume_from_any_checkpoint_bytes(finished_run, tmp_path_factory, capsys, data):
    d = interrupted(finished_run, tmp_path_factory.getbasetemp(), "ckpt")
    (d / CHECKPOINT_NPZ).write_bytes(data)
    before = (d / "metrics.csv").read_bytes()
    assert main(["run", "--resume", str(d), "--no-progress"]) == 2
    assert "checkpoint" in one_error_line(capsys)
    assert (d / "metrics.csv").read_bytes() == before  # nothing was changed before the checkpoint was refused


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=4)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                           max_leaves=8)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.fixed_dictionaries({"engine": st.sampled_from(["fused", "keras", "other"])},
                             optional={"epochs_done": json_values, "epoch": json_values, "n_state": json_values,
                                       "rng": json_values, "status": json_values, "finished": json_values,
                                       "current": json_values}),
       st.dictionaries(st.sampled_from(["state0", "rng0_keys", "final0_0", "cur_t0"]),
                       st.sampled_from([np.zeros(3, np.float32), np.zeros((2, 2), np.uint32)]), max_size=3))
def test_resume_from_a_forged_checkpoint(finished_run, tmp_path_factory, capsys, meta, arrays):
    d = interrupted(finished_run, tmp_path_factory.getbasetemp(), "forged")
    write_checkpoint(d, arrays, meta)
    assert main(["run", "--resume", str(d), "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert "checkpoint" in line or "metrics.csv" in line


def config_flags() -> list[str]:
    """Every `reglab run` flag that takes a value and sets a config field, read from the parser itself."""
    fields = {f.name for f in dataclasses.fields(SweepConfig)}
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(a.option_strings[-1] for a in sub.choices["run"]._actions
                  if a.dest in fields and a.option_strings and a.nargs != 0)


flag_values = st.one_of(st.text(max_size=12), st.sampled_from(["0", "-1", "1e400", "nan", "3", "1,2", "fused", "keras", "mnist-5k"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([*config_flags(), "--bogus"]), flag_values), max_size=4))
def test_any_flag_values_give_a_config_or_one_config_error(pairs):
    argv = ["run"] + [x for pair in pairs for x in pair]
    try:
        config = config_from_args(build_parser().parse_args(argv))
    except ConfigError as e:
        assert "\n" not in str(e) and str(e)
    else:
        assert config.arms() and config.epochs >= 1


def test_an_unknown_flag_with_a_newline_in_its_value_is_one_line():
    """Found by the property test above: argparse quotes the raw argument, newline and all."""
    with pytest.raises(ConfigError) as e:
        build_parser().parse_args(["run", "--bogus", "\n"])
    assert "\n" not in str(e.value) and "--bogus" in str(e.value)
