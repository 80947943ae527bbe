"""MLflow publishing against a real SQLite tracking store in a temporary folder (never the network): one
parent run per sweep, a nested child per arm, resumable without logging any (arm, epoch) twice."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

import reglab
from helpers import small_splits
from reglab.config import SweepConfig
from reglab.errors import ConfigError
from reglab.record.reader import load_run
from reglab.tracking.base import SweepStart, arm_infos
from reglab.tracking.mlflow import EPOCH_METRICS, MISSING_EXTRA, MlflowPublisher, export_mlflow, run_key

mlflow = pytest.importorskip("mlflow") if not os.environ.get("CI") else __import__("mlflow")  # CI installs reglab[mlflow]

PARENT_TAG = "mlflow.parentRunId"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module: creating one runs MLflow's schema migrations (seconds)."""
    folder = tmp_path_factory.mktemp("mlflow")
    return folder, f"sqlite:///{folder}/mlflow.db"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    config = SweepConfig(lambdas=(0.0, 1e-3), seeds=2, epochs=2, dataset="mnist-5k")
    return reglab.run_sweep(config, out=tmp_path_factory.mktemp("sweep") / "run", splits=small_splits(), live=False)


@pytest.fixture(scope="module")
def exported(store, sweep):
    _, uri = store
    where = export_mlflow(sweep.run_dir, uri)
    assert (where.tracking_uri, where.experiment) == (uri, "reglab")
    assert str(where) == f"run {where.run_id} in experiment 'reglab' of {uri}"
    return mlflow.MlflowClient(uri), where.run_id


def children(client, parent):
    runs = client.search_runs([parent.info.experiment_id], f"tags.{PARENT_TAG} = '{parent.info.run_id}'")
    return {int(r.data.tags["reglab.arm"]): r for r in runs}


def sweep_runs(client, run):
    """Every parent run in the store that carries this record's id."""
    exp = client.get_experiment_by_name("reglab")
    return client.search_runs([exp.experiment_id], f"tags.`reglab.run_id` = '{run_key(run.run_dir)}' and "
                                                   "tags.`reglab.kind` = 'sweep'")


def assert_metrics_once(client, run, kids):
    """Every epoch's metrics exactly once per child, equal to metrics.csv's values."""
    for arm, child in kids.items():
        rows = sorted((r for r in run.epochs if r.arm == arm), key=lambda r: r.epoch)
        for key in EPOCH_METRICS:
            history = sorted((m.step, m.value) for m in client.get_metric_history(child.info.run_id, key))
            assert history == [(r.epoch, getattr(r, key)) for r in rows], (arm, key)


@pytest.mark.slow
def test_export_publishes_a_parent_and_a_child_per_arm(exported, sweep, store):
    client, parent_id = exported
    run = sweep
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "run"
    p = parent.data.params
    assert (p["lambdas"], p["seeds"], p["epochs"], p["dataset"], p["regularizers"]) == ("0.0,0.001", "2", "2", "mnist-5k", "l2")
    assert p["data.n_train"] == "300"
    tags = parent.data.tags
    assert tags["reglab.run_dir"] == str(run.run_dir.resolve())
    assert (tags["reglab.dataset"], tags["reglab.engine"], tags["reglab.status"]) == ("mnist-5k", "fused", "completed")
    assert tags["reglab.version"] == reglab.__version__
    assert tags["reglab.started_at"] == run.meta["started_at"]
    artifacts = {a.path for a in client.list_artifacts(parent_id)}
    assert {"report.html", "report.md", "figures"} <= artifacts
    if (run.run_dir / "recommended.keras").is_file():
        assert "recommended.keras" in artifacts
    figures = {a.path for a in client.list_artifacts(parent_id, "figures")}
    assert figures == {f"figures/{f.name}" for f in (run.run_dir / "figures").glob("*.png")} != set()
    folder, _ = store
    assert parent.info.artifact_uri.startswith((folder / "mlruns").as_uri()), parent.info.artifact_uri  # beside the store

    kids = children(client, parent)
    assert sorted(kids) == [0, 1, 2, 3]
    infos = {a.index: a for a in arm_infos(run.config)}
    for arm, child in kids.items():
        record = run.meta["arms"][arm]
        assert child.info.run_name == infos[arm].name
        assert child.info.status == "FINISHED"
        assert child.data.params == {k: str(v) for k, v in infos[arm].hparams().items()}
        assert child.data.tags["reglab.status"] == record["status"]
        assert {k: child.data.metrics[f"test_{k}"] for k in ("loss", "accuracy", "data_loss")} == record["test"]
    assert_metrics_once(client, run, kids)


def test_exporting_again_reuses_the_runs_and_logs_nothing_twice(exported, sweep, store):
    client, parent_id = exported
    _, uri = store
    assert export_mlflow(sweep.run_dir, uri).run_id == parent_id
    assert [p.info.run_id for p in sweep_runs(client, sweep)] == [parent_id]
    kids = children(client, client.get_run(parent_id))
    assert sorted(kids) == [0, 1, 2, 3] and {k.info.status for k in kids.values()} == {"FINISHED"}
    assert_metrics_once(client, sweep, kids)
    assert all(len(client.get_metric_history(k.info.run_id, "test_loss")) == 1 for k in kids.values())


def test_a_resumed_run_continues_its_mlflow_runs(sweep, store, tmp_path, capfd):
    _, uri = store
    run_dir = tmp_path / "resumed"
    shutil.copytree(sweep.run_dir, run_dir)  # another record identity: its own parent run
    run = load_run(run_dir)
    arms = arm_infos(run.config)

    first = MlflowPublisher(uri)
    first.start(SweepStart(run_dir, run.config, run.data, arms, False, {}))
    for row in run.epochs:
        if row.epoch == 1:
            first.epoch(row, None)
    first.finish(run_dir, "interrupted")
    client = mlflow.MlflowClient(uri)
    parent = client.get_run(first.parent_id)
    assert parent.info.status == "KILLED" and parent.data.tags["reglab.status"] == "interrupted"
    assert {k.info.status for k in children(client, parent).values()} == {"KILLED"}

    second = MlflowPublisher(uri)  # as another process would, after `reglab run --resume`
    second.start(SweepStart(run_dir, run.config, run.data, arms, True, {a.index: 1 for a in arms}))
    assert client.get_run(first.parent_id).info.status == "RUNNING"
    assert {k.info.status for k in children(client, parent).values()} == {"RUNNING"}
    for row in run.epochs:
        second.epoch(row, None)
    for arm in run.meta["arms"]:
        second.arm_finished(arm["arm"], arm["status"], arm["test"])
    second.finish(run_dir, "completed")

    assert second.parent_id == first.parent_id
    assert [p.info.run_id for p in sweep_runs(client, run)] == [first.parent_id]
    parent = client.get_run(first.parent_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["reglab.status"] == "completed"
    kids = children(client, parent)
    assert sorted(kids) == [0, 1, 2, 3] and {k.info.status for k in kids.values()} == {"FINISHED"}
    assert_metrics_once(client, run, kids)
    assert capfd.readouterr().out == ""  # stdout carries reglab's results only


def test_no_tracking_uri_means_mlflows_own_default(store, tmp_path, monkeypatch):
    _, uri = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert MlflowPublisher(None).tracking_uri == uri
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(tmp_path)  # MLflow 3's default, as the docstring says: mlflow.db in the working directory
    assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path}/mlflow.db"


def test_missing_mlflow_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` now fails as if not installed
    with pytest.raises(ConfigError) as e:
        MlflowPublisher(f"sqlite:///{tmp_path}/mlflow.db")
    assert str(e.value) == MISSING_EXTRA == "MLflow logging needs the mlflow extra: pip install 'reglab[mlflow]'"
    assert not (tmp_path / "mlflow.db").exists()
