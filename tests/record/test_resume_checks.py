"""`--resume` trusts nothing it finds: the configuration, arms, model file, data, checkpoint and metrics.csv
are checked against each other, and a mismatch is refused with one line before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import reglab_argv, spawned
from reglab.cli import main
from reglab.record.checkpoint import _META, CHECKPOINT_NPZ, read_checkpoint

MODEL = """
import keras

def build():
    return keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                             keras.layers.Dense(16, activation="{activation}"), keras.layers.Dense(10, activation="softmax")])
"""


class StoppedRuns:
    """Runs killed while writing their third checkpoint (two whole ones on disk), one per case, each started the
    first time a test asks for it (a fast test that needs only the fused case pays for that one)."""

    CASES = ("fused", "keras", "model")

    def __init__(self, root: Path) -> None:
        self.root, self.runs = root, {}
        rng = np.random.default_rng(0)
        self.data = root / "tiny.npz"
        np.savez(self.data, x_train=rng.integers(0, 256, (240, 28, 28), dtype=np.uint8), y_train=np.arange(240) % 10,
                 x_test=rng.integers(0, 256, (40, 28, 28), dtype=np.uint8), y_test=np.arange(40) % 10)
        (root / "model.py").write_text(MODEL.format(activation="relu"))

    def __getitem__(self, name: str) -> Path:
        if name == "model_file":
            return self.root / "model.py"
        if name not in self.runs:
            extra = {"fused": [], "keras": ["--engine", "keras"], "model": ["--model", f"{self.root / 'model.py'}:build"]}[name]
            out = self.root / name
            argv = reglab_argv("run", "--dataset", str(self.data), "--lambdas", "0,0.01", "--epochs", "5", "--seeds", "1",
                               "--no-progress", "--out", str(out), *extra)
            with spawned(argv, env={"REGLAB_FAULT": "checkpoint-write:3"}) as proc:
                proc.communicate(timeout=600)
            assert proc.returncode == -9 and read_checkpoint(out) is not None
            self.runs[name] = out
        return self.runs[name]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> StoppedRuns:
    return StoppedRuns(tmp_path_factory.mktemp("stopped"))


def copy_run(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".reglab.lock"))
    return dst


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != ".reglab.lock"}


def refused(run_dir: Path, capsys, *needles: str) -> None:
    before = snapshot(run_dir)
    assert main(["run", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("reglab: error: "), err
    for needle in needles:
        assert needle in err, err
    assert snapshot(run_dir) == before  # nothing written


def edit_json(path: Path, change) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.slow
def test_an_edited_model_file_is_refused(stopped, tmp_path, capsys):
    run_dir = copy_run(stopped["model"], tmp_path)
    model_file = stopped["model_file"]
    original = model_file.read_text()
    try:
        model_file.write_text(MODEL.format(activation="tanh"))
        refused(run_dir, capsys, "model file", "has changed since the run started")
    finally:
        model_file.write_text(original)


def test_a_lambda_edited_in_run_json_is_refused(stopped, tmp_path, capsys):
    run_dir = copy_run(stopped["fused"], tmp_path)
    edit_json(run_dir / "run.json", lambda m: m["config"].update(lambdas=[0.0, 0.5]))
    refused(run_dir, capsys, "run.json: field arms[1].lambda")


def test_a_lambda_edited_everywhere_in_run_json_is_refused_by_the_checkpoint(stopped, tmp_path, capsys):
    run_dir = copy_run(stopped["fused"], tmp_path)

    def change(m):
        m["config"]["lambdas"] = [0.0, 0.5]
        m["arms"][1]["lambda"] = 0.5

    edit_json(run_dir / "run.json", change)
    text = (run_dir / "metrics.csv").read_text().replace(",0.01,", ",0.5,")
    (run_dir / "metrics.csv").write_text(text, newline="")
    refused(run_dir, capsys, "checkpoint.npz: field fingerprint.config")


@pytest.mark.parametrize("engine", ["fused", pytest.param("keras", marks=pytest.mark.slow)])
def test_an_emptied_metrics_file_is_refused(stopped, tmp_path, capsys, engine):
    run_dir = copy_run(stopped[engine], tmp_path)
    header = (run_dir / "metrics.csv").read_text().splitlines()[0]
    (run_dir / "metrics.csv").write_text(header + "\r\n", newline="")
    refused(run_dir, capsys, "metrics.csv: arm 0 has 0 epochs recorded, but the checkpoint covers")


def test_duplicated_rows_are_refused(stopped, tmp_path, capsys):
    run_dir = copy_run(stopped["fused"], tmp_path)
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    (run_dir / "metrics.csv").write_text("\r\n".join(lines[:2] + lines[1:]) + "\r\n", newline="")
    refused(run_dir, capsys, "metrics.csv, line 3: arm 0's epoch 1 is recorded twice")


def _rewrite_checkpoint(run_dir: Path, fix_layout: bool) -> None:
    path = run_dir / CHECKPOINT_NPZ
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays[_META].tobytes())
    arrays["state0"] = np.zeros((3, 5), dtype=arrays["state0"].dtype)
    if fix_layout:
        meta["layout"]["state0"] = [arrays["state0"].dtype.str, [3, 5]]
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def test_a_checkpoint_array_of_the_wrong_shape_is_refused(stopped, tmp_path, capsys):
    run_dir = copy_run(stopped["fused"], tmp_path)
    _rewrite_checkpoint(run_dir, fix_layout=False)
    refused(run_dir, capsys, "checkpoint.npz is damaged", "array 'state0'")


def test_a_consistently_reshaped_checkpoint_is_refused_before_the_record_changes(stopped, tmp_path, capsys):
    """The layout agrees with the array, so only the engine can tell: it does, before anything is written."""
    run_dir = copy_run(stopped["fused"], tmp_path)
    _rewrite_checkpoint(run_dir, fix_layout=True)
    refused(run_dir, capsys, "the checkpoint does not match this run")


@pytest.mark.slow
def test_an_untouched_stopped_run_resumes(stopped, tmp_path, capsys):
    run_dir = copy_run(stopped["keras"], tmp_path)
    assert main(["run", "--resume", str(run_dir), "--no-progress"]) == 0
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    capsys.readouterr()


@pytest.mark.slow
def test_sigterm_is_an_interruption_with_the_resume_command(tmp_path):
    """`kill` (SIGTERM) stops at the next batch like Ctrl-C: status interrupted, the resume command printed,
    exit 143 (128 + SIGTERM, as a shell reports it); the run then resumes."""
    import signal
    import time

    out = tmp_path / "run"
    argv = reglab_argv("run", "--dataset", "mnist-5k", "--lambdas", "0,0.001", "--epochs", "200", "--seeds", "1", "--out", str(out),
                       "--no-progress")
    with spawned(argv) as proc:
        metrics = out / "metrics.csv"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and (
                not metrics.exists() or metrics.read_text().count("\n") < 3):
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("reglab: terminated (SIGTERM); finished epochs are kept in") and f"reglab run --resume {out}" in last
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "interrupted" and {a["status"] for a in meta["arms"]} == {"interrupted"}


@pytest.mark.slow
def test_a_completed_run_without_its_report_says_how_to_draw_it(stopped, tmp_path, capsys):
    run_dir = copy_run(stopped["keras"], tmp_path)
    assert main(["run", "--resume", str(run_dir), "--no-progress"]) == 0
    (run_dir / "report.html").unlink()  # as if killed while drawing it
    assert main(["run", "--resume", str(run_dir)]) == 2
    assert f"report was not written (report.html missing): `reglab report {run_dir}` draws it" in capsys.readouterr().err
