"""The record on disk: streamed rows, atomic run.json, and reading back refuses what is not reglab's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import fake_info, row
from reglab.config import SweepConfig
from reglab.errors import RunDirError
from reglab.record.reader import load_run
from reglab.record.schema import COLUMNS, METRICS_CSV, RUN_JSON
from reglab.record.writer import Recorder

CONFIG = SweepConfig(lambdas=(0.0, 0.01), seeds=1, epochs=2, dataset="fake")


def recorded_run(tmp_path: Path, finish: bool = True) -> tuple[Path, Recorder]:
    run_dir = tmp_path / "run"
    rec = Recorder(run_dir, CONFIG, fake_info())
    for arm, lam in enumerate(CONFIG.lambdas):
        for epoch in (1, 2):
            rec.append(row(arm, lam, epoch, loss=1 / 3 + arm, kernel_norm=10.0 - epoch))
        rec.update_arm(arm, status="completed", test={"loss": 0.5, "accuracy": 0.9, "data_loss": 0.4})
    if finish:
        rec.finish("completed")
    return run_dir, rec


def test_rows_are_on_disk_as_soon_as_an_epoch_ends(tmp_path):
    run_dir = tmp_path / "run"
    rec = Recorder(run_dir, CONFIG, fake_info())
    rec.append(row(0, 0.0, 1, loss=0.1))
    lines = (run_dir / METRICS_CSV).read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS) and len(lines) == 2  # readable before the run ends
    meta = json.loads((run_dir / RUN_JSON).read_text())
    assert meta["status"] == "running"
    rec.finish("interrupted")
    meta = json.loads((run_dir / RUN_JSON).read_text())
    assert meta["status"] == "interrupted" and [a["status"] for a in meta["arms"]] == ["interrupted"] * 2
    assert not list(run_dir.glob(".*.tmp"))


def test_floats_round_trip_exactly(tmp_path):
    run_dir, _ = recorded_run(tmp_path)
    run = load_run(run_dir)
    assert run.epochs[0].loss == 1 / 3
    assert run.config == CONFIG and run.data == fake_info()
    assert run.history(1)["loss"] == [1 / 3 + 1] * 2
    assert run.history(0)["kernel_norm"] == [9.0, 8.0]


def test_a_record_from_before_learning_rates_were_swept_reads_at_adams_default(tmp_path):
    """metrics.csv without the learning_rate column, run.json without learning rates: every arm at 0.001."""
    run_dir, _ = recorded_run(tmp_path)
    lines = (run_dir / METRICS_CSV).read_text().splitlines()
    assert lines[0].endswith(",learning_rate")
    (run_dir / METRICS_CSV).write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    meta = json.loads((run_dir / RUN_JSON).read_text())
    del meta["config"]["learning_rates"]
    for arm in meta["arms"]:
        del arm["learning_rate"]
    (run_dir / RUN_JSON).write_text(json.dumps(meta))
    run = load_run(run_dir)
    assert run.config == CONFIG and {r.learning_rate for r in run.epochs} == {0.001}
    assert [r.loss for r in run.epochs] == [r.loss for r in load_run(recorded_run(tmp_path / "again")[0]).epochs]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / RUN_JSON).unlink(), "not a reglab run directory"),
        (lambda d: (d / RUN_JSON).write_text("{not json"), "not readable JSON"),
        (lambda d: (d / RUN_JSON).write_text('{"format": "something-else"}'), "not a reglab run record"),
        (lambda d: (d / RUN_JSON).write_text(json.dumps({"format": "reglab-run/1"})), "field status must be one of"),
        (lambda d: (d / METRICS_CSV).unlink(), "missing"),
        (lambda d: (d / METRICS_CSV).write_text("a,b,c\n1,2,3\n"), "header is not reglab's"),
        (lambda d: (d / METRICS_CSV).write_text((d / METRICS_CSV).read_text() + "0,0.0,0,3,oops\n"), "expected 15 fields"),
        (lambda d: (d / METRICS_CSV).write_text((d / METRICS_CSV).read_text().replace("0.3333333333333333", "abc", 1)), "not a number"),
        (lambda d: (d / METRICS_CSV).write_text((d / METRICS_CSV).read_text() + "7" + ",1" * 12 + ",l2,0.001\n"), "out of range"),
        (lambda d: (d / METRICS_CSV).write_text((d / METRICS_CSV).read_text() + "0" + ",1" * 12 + ",l3,0.001\n"), "'l3' is not a regularizer"),
        (lambda d: (d / METRICS_CSV).write_text((d / METRICS_CSV).read_text() + "0" + ",1" * 12 + ",l2,0\n"), "learning_rate is not a finite rate"),
        (lambda d: (d / METRICS_CSV).write_bytes(b"\xff\xfe\x00garbage"), "not readable"),
    ],
)
def test_damaged_runs_are_refused_with_a_reason(tmp_path, damage, message):
    run_dir, _ = recorded_run(tmp_path)
    damage(run_dir)
    with pytest.raises(RunDirError, match=message):
        load_run(run_dir)


def test_unwritable_run_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(RunDirError, match="cannot create run directory"):
        Recorder(blocker / "run", CONFIG, fake_info())
