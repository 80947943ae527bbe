"""Edited or damaged records: every field of run.json and every impossible metrics.csv row is refused with
one line naming the file and the field or row; nothing else ever escapes (no internal error, no figure
drawn from impossible numbers)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from helpers import fake_info, row
from reglab.cli import main
from reglab.config import SweepConfig
from reglab.errors import RunDirError
from reglab.record.reader import load_run
from reglab.record.schema import METRICS_CSV, RUN_JSON
from reglab.record.writer import Recorder

CONFIG = SweepConfig(lambdas=(0.0, 0.01), seeds=2, epochs=2, dataset="fake")


def recorded_run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    rec = Recorder(run_dir, CONFIG, fake_info())
    for arm in CONFIG.arms():
        for epoch in (1, 2):
            rec.append(row(arm.index, arm.strength, epoch, seed=arm.seed, loss=0.5 - 0.1 * epoch, val_data_loss=0.6 + arm.strength,
                           kernel_norm=10.0 - epoch, accuracy=0.8, val_accuracy=0.7))
        rec.update_arm(arm.index, status="completed", test={"loss": 0.5, "accuracy": 0.9, "data_loss": 0.4}, epochs_done=2)
    rec.finish("completed")
    return run_dir


def leaves(obj, path=()):
    """Every (path, value) in a JSON document, containers included."""
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaves(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from leaves(v, path + (i,))


def with_value(doc, path, value):
    doc = copy.deepcopy(doc)
    target = doc
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    return doc


BAD_VALUES = [None, "x", -1, 1e308, True, [], {}, float("nan")]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    return recorded_run(tmp_path_factory.mktemp("good"))


def test_every_edited_run_json_field_is_read_or_refused_in_one_line(good_run, tmp_path):
    """Each field of run.json replaced by each kind of wrong value: `load_run` gives a run or a RunDirError,
    and `reglab report` exits 0 or 2 with one line, never an internal error (exit 1) or a traceback."""
    meta = json.loads((good_run / RUN_JSON).read_text())
    paths = [p for p, _ in leaves(meta) if p and p[0] not in ("format",)]
    failures = []
    tried = 0
    for path in paths:
        for value in BAD_VALUES:
            edited = with_value(meta, path, value)
            d = tmp_path / "edit"
            if d.exists():
                for f in d.iterdir():
                    if f.is_file():
                        f.unlink()
            d.mkdir(exist_ok=True)
            (d / RUN_JSON).write_text(json.dumps(edited))
            (d / METRICS_CSV).write_text((good_run / METRICS_CSV).read_text(), newline="")
            tried += 1
            try:
                load_run(d)
            except RunDirError as e:
                if "\n" in str(e) or str(RUN_JSON) not in str(e):
                    failures.append((path, value, f"message: {e}"))
            except Exception as e:  # noqa: BLE001 - the point of the test
                failures.append((path, value, f"{type(e).__name__}: {e}"))
    assert tried > 300
    assert not failures, failures[:5]


def test_report_on_an_edited_record_is_one_line(good_run, tmp_path, capsys):
    meta = json.loads((good_run / RUN_JSON).read_text())
    for path, value in [(("arms", 0, "test"), "high"), (("data", "input_shape"), [28, "a"]),
                        (("arms", 1, "lambda"), 0.5), (("config", "lambdas"), [0.0, 0.5]), (("versions",), [1]),
                        (("arms", 0, "test", "accuracy"), 2.5), (("data", "n_train"), "many")]:
        d = tmp_path / f"edit-{'-'.join(map(str, path))}"
        d.mkdir()
        (d / RUN_JSON).write_text(json.dumps(with_value(meta, path, value)))
        (d / METRICS_CSV).write_text((good_run / METRICS_CSV).read_text(), newline="")
        assert main(["report", str(d)]) == 2, path
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("reglab: error: ") and "run.json: field" in err, err
        assert not (d / "report.html").exists() and not (d / "figures").exists()


def _edit_row(text: str, line: int, column: str, value: str) -> str:
    lines = text.splitlines()
    header = lines[0].split(",")
    fields = lines[line - 1].split(",")
    fields[header.index(column)] = value
    lines[line - 1] = ",".join(fields)
    return "\r\n".join(lines) + "\r\n"


@pytest.mark.parametrize("line, column, value, message", [
    (2, "accuracy", "2.5", "line 2: accuracy is not between 0 and 1"),
    (3, "val_accuracy", "-0.1", "line 3: val_accuracy is not between 0 and 1"),
    (2, "kernel_norm", "-3.0", "line 2: kernel_norm is negative"),
    (2, "data_loss", "-0.5", "line 2: data_loss is negative"),
    (2, "penalty", "-1e-9", "line 2: penalty is negative"),
    (2, "lambda", "inf", "line 2: lambda is not a finite strength"),
    (3, "lambda", "0.5", "line 3: lambda is 0.5, but arm 0 has λ = 0.0"),
    (2, "seed", "7", "line 2: seed is 7, but arm 0 has seed 0"),
    (2, "regularizer", "l1", "line 2: regularizer is l1, but arm 0 is l2"),
    (3, "epoch", "1000000000", "line 3: epoch 1000000000 is beyond the run's 2 epochs"),
    (3, "epoch", "1", "line 3: arm 0's epoch 1 is recorded twice"),
    (2, "epoch", "2", "line 2: arm 0 jumps from epoch 0 to 2"),
    (2, "seconds", "nan", "line 2: seconds is not a duration"),
])
def test_impossible_metrics_rows_are_refused_naming_the_row(good_run, tmp_path, line, column, value, message):
    d = tmp_path / "run"
    d.mkdir()
    (d / RUN_JSON).write_text((good_run / RUN_JSON).read_text())
    (d / METRICS_CSV).write_text(_edit_row((good_run / METRICS_CSV).read_text(), line, column, value), newline="")
    with pytest.raises(RunDirError, match="metrics.csv, " + message.replace("(", r"\(").replace(")", r"\)")):
        load_run(d)


def test_a_duplicated_row_is_refused(good_run, tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    (d / RUN_JSON).write_text((good_run / RUN_JSON).read_text())
    lines = (good_run / METRICS_CSV).read_text().splitlines()
    (d / METRICS_CSV).write_text("\r\n".join(lines + [lines[-1]]) + "\r\n", newline="")
    with pytest.raises(RunDirError, match="recorded twice"):
        load_run(d)


def test_nan_losses_of_a_diverged_arm_are_still_a_record(tmp_path):
    run_dir = tmp_path / "run"
    rec = Recorder(run_dir, CONFIG, fake_info())
    rec.append(row(0, 0.0, 1, loss=float("nan"), val_loss=float("inf"), kernel_norm=float("inf")))
    rec.finish("interrupted")
    assert len(load_run(run_dir).epochs) == 1
