"""`--log` while training: TensorBoard and MLflow get every epoch as the record does, an interrupted and resumed
run continues the same TensorBoard runs and MLflow runs without a step twice, `--force` removes only reglab's
own event files, and a tracking failure costs one warning line, never the run."""

from __future__ import annotations

import json
import os

import pytest

from helpers import small_splits
from reglab import SweepConfig, run_sweep
from reglab.errors import RunInterrupted
from reglab.record.reader import load_run
from reglab.run.listeners import RecordListener
from reglab.run.runner import _StopFlag, resume_sweep
from reglab.tracking.base import arm_infos

if not os.environ.get("CI"):  # CI installs both extras: there a missing package fails
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
import mlflow
from test_mlflow_log import EPOCH_METRICS
from test_tensorboard_log import assert_scalars_match, read_logs, values


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """A 2 λ × 2 seed × 3 epoch sweep on wine (small and offline) logged live, interrupted after epoch 2's rows, then resumed to the end."""
    tmp = tmp_path_factory.mktemp("live")
    uri = f"sqlite:///{tmp}/mlflow.db"
    config = SweepConfig(lambdas=(0.0, 1e-3), seeds=2, epochs=3, dataset="wine", log=("tensorboard", f"mlflow={uri}"))
    out = tmp / "run"
    original, original_check = RecordListener.epoch_done, _StopFlag.check
    rows, stop_asked = [], []

    def stop_after_epoch_2(self, record):
        original(self, record)
        rows.append(record)
        if len(rows) == 8:  # every arm's second epoch: a stop asked, as Ctrl-C asks it, taken at the next batch
            stop_asked.append(True)

    def check(self):
        self.requested = self.requested or bool(stop_asked)
        original_check(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RecordListener, "epoch_done", stop_after_epoch_2)
        mp.setattr(_StopFlag, "check", check)
        with pytest.raises(RunInterrupted):
            run_sweep(config, out=out, live=False, make_report=False)  # resumable: the data by name
    mid = read_logs(out / "tensorboard")
    run = resume_sweep(out, live=False)
    return run, uri, mid


@pytest.mark.slow
def test_tensorboard_has_every_epoch_and_kernel_histogram_once_after_a_resume(resumed):
    run, _, mid = resumed
    assert run.meta["status"] == "completed"
    assert_scalars_match(mid, load_run(run.run_dir), {a.index: [1, 2] for a in arm_infos(run.config)})  # live: already there
    assert_scalars_match(read_logs(run.run_dir / "tensorboard"), run)  # 1, 2, 3: each once
    logs, kernels = read_logs(run.run_dir / "tensorboard"), run.kernels()
    for arm in arm_infos(run.config):  # live: a histogram of the regularized kernel at every epoch, once
        hist = values(logs, f"{arm.name}/train", "kernel")
        assert sorted(hist) == [1, 2, 3] and all(h[:, 2].sum() == kernels[arm.index].size for h in hist.values())
        assert hist[3][0, 0] == kernels[arm.index].min() and hist[3][-1, 1] == kernels[arm.index].max()  # the final one
    listed = json.loads((run.run_dir / "manifest.json").read_text())["files"]
    on_disk = {str(p.relative_to(run.run_dir)) for p in (run.run_dir / "tensorboard").rglob("events.out.tfevents.*")}
    assert on_disk and on_disk <= set(listed)  # --force may remove them


@pytest.mark.slow
def test_mlflow_has_one_parent_one_child_per_arm_and_every_step_once(resumed):
    run, uri, _ = resumed
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("reglab")
    parents = client.search_runs([experiment.experiment_id], "tags.`reglab.kind` = 'sweep'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    kids = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'")
    assert len(kids) == 4
    for child in kids:
        arm = int(child.data.tags["reglab.arm"])
        want = [(r.epoch, r.loss) for r in run.epochs if r.arm == arm]
        for key in EPOCH_METRICS:
            steps = [m.step for m in client.get_metric_history(child.info.run_id, key)]
            assert sorted(steps) == [1, 2, 3], (arm, key, steps)
        assert sorted((m.step, m.value) for m in client.get_metric_history(child.info.run_id, "loss")) == want
        assert child.data.metrics["test_accuracy"] == run.arms[arm]["test"]["accuracy"]


def test_force_removes_reglab_s_event_files_and_keeps_the_user_s(tmp_path, capsys):
    out = tmp_path / "run"
    config = SweepConfig(lambdas=(0.0,), seeds=1, epochs=1, dataset="mnist-5k", log=("tensorboard",))
    run_sweep(config, out=out, splits=small_splits(), live=False, make_report=False)
    mine = out / "tensorboard" / "notes.txt"
    mine.write_text("the user's")
    run_sweep(config, out=out, splits=small_splits(), live=False, make_report=False, force=True)
    assert mine.read_text() == "the user's"
    assert "warning" not in capsys.readouterr().err  # the new run's logs started afresh: nothing refused
    assert_scalars_match(read_logs(out / "tensorboard"), load_run(out))  # one run's epochs, not two


def test_a_tracking_failure_is_one_warning_and_the_run_completes(tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the logs would go")
    config = SweepConfig(lambdas=(0.0,), seeds=1, epochs=1, dataset="mnist-5k", log=(f"tensorboard={blocker}/tb",))
    run = run_sweep(config, out=tmp_path / "run", splits=small_splits(), live=False, make_report=False)
    assert run.meta["status"] == "completed" and len(run.epochs) == 1
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning: tensorboard logging stopped" in line]
    assert len(warnings) == 1 and "reglab's own record is unaffected" in warnings[0]


@pytest.mark.slow
def test_the_keras_engine_sends_each_epoch_s_kernel_too(tmp_path):
    config = SweepConfig(lambdas=(1e-3,), seeds=1, epochs=2, dataset="wine", engine="keras", log=("tensorboard",))
    run = run_sweep(config, out=tmp_path / "run", live=False, make_report=False)
    (arm,) = arm_infos(run.config)
    hist = values(read_logs(run.run_dir / "tensorboard"), f"{arm.name}/train", "kernel")
    assert sorted(hist) == [1, 2] and hist[2][0, 0] == run.kernels()[0].min()
