"""TensorBoard logs of a sweep (reglab.tracking.tensorboard), read back with TensorBoard's own readers and server."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

if not os.environ.get("CI"):  # CI installs reglab[tensorboard]: there a missing package fails
    pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing import (
    plugin_event_accumulator,
    plugin_event_multiplexer,
)
from tensorboard.plugins.histogram.summary_v2 import histogram_pb
from tensorboard.plugins.hparams import api_pb2, metadata, metrics
from tensorboard.util import tensor_util

import reglab
from helpers import small_splits
from reglab.config import SweepConfig
from reglab.errors import ConfigError
from reglab.record.reader import RunRecord, load_run
from reglab.tracking.base import SweepStart, arm_infos
from reglab.tracking.tensorboard import (
    HPARAMS_METRICS,
    INSTALL_HINT,
    SCALARS,
    TensorBoardPublisher,
    export_tensorboard,
    histogram_buckets,
)

HPARAM_NAMES = {"regularizer", "lambda", "learning_rate", "seed"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[RunRecord, Path]:
    """One small finished sweep (2 strengths × 2 seeds, 2 epochs) and its export."""
    root = tmp_path_factory.mktemp("tensorboard")
    reglab.run_sweep(SweepConfig(lambdas=(0.0, 1e-3), seeds=2, epochs=2, dataset="mnist-5k"), out=root / "run",
                     splits=small_splits(), live=False, make_report=False)
    logdir = export_tensorboard(root / "run", root / "tb")
    return load_run(root / "run"), logdir


def read_logs(logdir: Path) -> plugin_event_multiplexer.EventMultiplexer:
    """Every run under `logdir` as TensorBoard's Python loader reads it, keeping every value (no sampling)."""
    mux = plugin_event_multiplexer.EventMultiplexer(size_guidance={plugin_event_accumulator.TENSORS: 0})
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    return mux


def values(mux, run: str, tag: str) -> dict[int, object]:
    """step → value of a time series, asserting that no step occurs twice."""
    events = mux.Tensors(run, tag)
    steps = [e.step for e in events]
    assert len(steps) == len(set(steps)), f"{run} {tag}: steps {steps} written more than once"
    return {e.step: tensor_util.make_ndarray(e.tensor_proto) for e in events}


def assert_scalars_match(mux, run: RunRecord, epochs: dict[int, list[int]] | None = None) -> None:
    """Each arm's train and validation scalars: exactly the record's epochs, each once, with the record's values."""
    rows = {(r.arm, r.epoch): r for r in run.epochs}
    for arm in arm_infos(run.config):
        want_epochs = sorted(e for a, e in rows if a == arm.index) if epochs is None else epochs[arm.index]
        for sub, tags in SCALARS.items():
            for tag, field in tags.items():
                got = values(mux, f"{arm.name}/{sub}", tag)
                assert sorted(got) == want_epochs, (arm.name, sub, tag)
                for epoch, value in got.items():
                    assert value.dtype == np.float32 and value.shape == ()
                    assert value == np.float32(getattr(rows[(arm.index, epoch)], field)), (arm.name, sub, tag, epoch)


def test_every_arm_has_its_train_and_validation_curves(exported):
    run, logdir = exported
    mux = read_logs(logdir)
    arms = arm_infos(run.config)
    assert len(arms) == 4
    assert set(mux.Runs()) == {"."} | {f"{a.name}{sub}" for a in arms for sub in ("", "/train", "/validation")}
    assert_scalars_match(mux, run)
    # the same tag names in train and validation, as Keras's TensorBoard callback writes them (overlaid curves)
    def scalar_tags(series: str) -> set[str]:
        return set(mux.GetAccumulator(series).Tags()["tensors"]) - {"kernel"}

    for a in arms:
        assert scalar_tags(f"{a.name}/validation") == {"epoch_loss", "epoch_accuracy", "epoch_data_loss"}
        assert scalar_tags(f"{a.name}/train") == scalar_tags(f"{a.name}/validation") | {"epoch_penalty", "epoch_kernel_norm"}
        assert mux.SummaryMetadata(f"{a.name}/train", "epoch_loss").plugin_data.plugin_name == "scalars"


def test_kernel_histogram_with_the_arms_last_epoch(exported):
    """`replay` gives each arm's final kernel (kernels.npz) with its last row: one histogram, at that epoch."""
    run, logdir = exported
    mux = read_logs(logdir)
    kernels = run.kernels()
    for a in arm_infos(run.config):
        assert mux.SummaryMetadata(f"{a.name}/train", "kernel").plugin_data.plugin_name == "histograms"
        hist = values(mux, f"{a.name}/train", "kernel")
        assert list(hist) == [run.config.epochs]
        buckets = hist[run.config.epochs]
        kernel = kernels[a.index]
        assert buckets.shape == (30, 3) and buckets[:, 2].sum() == kernel.size
        assert buckets[0, 0] == kernel.min() and buckets[-1, 1] == kernel.max()
        assert "kernel" not in mux.GetAccumulator(f"{a.name}/validation").Tags()["tensors"]


@pytest.mark.parametrize("data", [np.random.default_rng(0).normal(size=(50, 7)), np.full(9, 0.25), np.arange(31.0),
                                  np.array([1.0, np.nan, -np.inf, 3.0]), np.array([])])
def test_histogram_buckets_are_tensorboards(data):
    want = tensor_util.make_ndarray(histogram_pb("k", data[np.isfinite(data)]).value[0].tensor)
    np.testing.assert_array_equal(histogram_buckets(data), want)


def test_hparams_experiment_and_one_session_per_arm(exported):
    run, logdir = exported
    mux = read_logs(logdir)
    content = mux.PluginRunToTagToContent(metadata.PLUGIN_NAME)
    arms = arm_infos(run.config)
    assert set(content) == {"."} | {a.name for a in arms}
    assert set(content["."]) == {metadata.EXPERIMENT_TAG}
    experiment = metadata.parse_experiment_plugin_data(content["."][metadata.EXPERIMENT_TAG])
    infos = {h.name: h for h in experiment.hparam_infos}
    assert set(infos) == HPARAM_NAMES
    assert infos["regularizer"].type == api_pb2.DATA_TYPE_STRING
    assert list(infos["regularizer"].domain_discrete) == ["l2"]
    assert list(infos["lambda"].domain_discrete) == [0.0, 1e-3]
    assert list(infos["learning_rate"].domain_discrete) == [1e-3]
    assert list(infos["seed"].domain_discrete) == [0, 1]
    assert all(infos[k].type == api_pb2.DATA_TYPE_FLOAT64 for k in ("lambda", "learning_rate", "seed"))
    assert [(m.name.group, m.name.tag) for m in experiment.metric_infos] == [(g, t) for g, t, _ in HPARAMS_METRICS]

    final = {(r.arm): r for r in run.epochs if r.epoch == run.config.epochs}
    tests = {int(a["arm"]): a["test"] for a in run.arms}
    want_metric = {("validation", "epoch_data_loss"): lambda i: final[i].val_data_loss,
                   ("validation", "epoch_accuracy"): lambda i: final[i].val_accuracy,
                   ("", "test_accuracy"): lambda i: tests[i]["accuracy"],
                   ("", "test_data_loss"): lambda i: tests[i]["data_loss"]}
    for a in arms:
        start = metadata.parse_session_start_info_plugin_data(content[a.name][metadata.SESSION_START_INFO_TAG])
        got = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
        assert got == a.hparams()
        assert start.group_name == a.name  # each arm its own row of the HParams table
        end = metadata.parse_session_end_info_plugin_data(content[a.name][metadata.SESSION_END_INFO_TAG])
        assert end.status == api_pb2.STATUS_SUCCESS
        assert len(mux.Tensors(a.name, metadata.SESSION_START_INFO_TAG)) == 1
        # every metric the table shows is a scalar where the plugin looks for it: its last value the final one
        for m in experiment.metric_infos:
            series, tag = metrics.run_tag_from_session_and_metric(a.name, m.name)
            last = mux.Tensors(series, tag)[-1]
            assert tensor_util.make_ndarray(last.tensor_proto) == np.float32(want_metric[(m.name.group, m.name.tag)](a.index))
            assert last.step == run.config.epochs


@pytest.mark.parametrize("published", [1, 2])
def test_a_resume_writes_no_epoch_twice(exported, tmp_path, published):
    """A run logs its first `published` epochs, stops (no finish), and resumes with `done` = 1 epoch per arm
    (the checkpoint's): every (arm, tag, epoch) is in the logs once, sessions and the experiment too."""
    run, _ = exported
    logdir = tmp_path / "tb"
    arms = arm_infos(run.config)
    first = TensorBoardPublisher(logdir)
    first.start(SweepStart(run.run_dir, run.config, run.data, arms, False, {}))
    for row in run.epochs:
        if row.epoch <= published:
            first.epoch(row, None)
    # live: what was published is readable before the run ends
    assert_scalars_match(read_logs(logdir), run, {a.index: list(range(1, published + 1)) for a in arms})

    second = TensorBoardPublisher(logdir)
    second.start(SweepStart(run.run_dir, run.config, run.data, arms, True, {a.index: 1 for a in arms}))
    kernels = run.kernels()
    for row in run.epochs:
        second.epoch(row, kernels[row.arm] if row.epoch == run.config.epochs else None)
    for a in run.arms:
        second.arm_finished(int(a["arm"]), a["status"], a["test"])
    second.finish(run.run_dir, "completed")

    mux = read_logs(logdir)
    assert_scalars_match(mux, run)
    for a in arms:
        for tag in (metadata.SESSION_START_INFO_TAG, metadata.SESSION_END_INFO_TAG, "test_accuracy"):
            assert len(mux.Tensors(a.name, tag)) == 1, (a.name, tag)
    assert len(mux.Tensors(".", metadata.EXPERIMENT_TAG)) == 1
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 1


def test_a_new_sweep_into_used_logs_is_refused(exported):
    run, logdir = exported
    with pytest.raises(ConfigError, match="already holds TensorBoard logs"):
        export_tensorboard(run.run_dir, logdir)


def test_without_tensorboard_one_line_naming_the_extra(monkeypatch, tmp_path):
    for name in [m for m in sys.modules if m == "tensorboard" or m.startswith("tensorboard.")]:
        monkeypatch.setitem(sys.modules, name, None)  # `import tensorboard...` now fails, as when not installed
    monkeypatch.delitem(sys.modules, "reglab.tracking.tensorboard")
    monkeypatch.delattr(reglab, "tensorboard_log", raising=False)  # both restored after the test
    module = importlib.import_module("reglab.tracking.tensorboard")  # importing reglab's module needs no tensorboard
    with pytest.raises(ConfigError) as info:
        module.TensorBoardPublisher(tmp_path / "tb")
    assert str(info.value) == INSTALL_HINT == "TensorBoard logging needs the tensorboard extra: pip install 'reglab[tensorboard]'"
    assert isinstance(info.value, reglab.ReglabError)
    assert not (tmp_path / "tb").exists()


def _post(opener, url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"})
    with opener.open(request, timeout=10) as response:
        return json.loads(response.read())


def test_tensorboard_server_shows_every_arm_in_hparams(exported, tmp_path):
    """The real `tensorboard` program on the loopback address: its HParams API lists the experiment and
    every arm with its hyperparameters, status and metrics."""
    run, logdir = exported
    exe = Path(sys.executable).with_name("tensorboard")
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "tensorboard.main"]
    argv += ["--logdir", str(logdir), "--host", "127.0.0.1", "--port", "0"]
    err_path = tmp_path / "tensorboard.err"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    arms = arm_infos(run.config)
    with open(err_path, "w") as err, open(tmp_path / "tensorboard.out", "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env={**os.environ, "TMPDIR": str(tmp_path)})  # its .tensorboard-info files
        try:
            deadline = time.monotonic() + 60
            url = None
            while url is None:
                assert proc.poll() is None, f"tensorboard exited: {err_path.read_text()}"
                assert time.monotonic() < deadline, f"tensorboard did not start: {err_path.read_text()}"
                found = re.search(r"TensorBoard \S+ at (http://127\.0\.0\.1:\d+/)", err_path.read_text())
                url = found.group(1) if found else None
                time.sleep(0.2)
            api = url + "data/plugin/hparams/"
            statuses = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
            while True:  # the logs are loaded in the background: ask until every arm is there
                try:
                    experiment = _post(opener, api + "experiment", {"experimentName": "", "includeMetrics": True})
                    groups = _post(opener, api + "session_groups", {
                        "experimentName": "", "allowedStatuses": statuses, "colParams": [], "startIndex": 0,
                        "sliceSize": 1000, "includeMetrics": True})
                except (urllib.error.URLError, ConnectionError):
                    experiment, groups = {}, {}
                sessions = [s for g in groups.get("sessionGroups", []) for s in g["sessions"]]
                if len(sessions) == len(arms) and all(len(s.get("metricValues", [])) == 4 for s in sessions):
                    break
                assert proc.poll() is None, f"tensorboard exited: {err_path.read_text()}"
                assert time.monotonic() < deadline, f"HParams data incomplete: {groups}"
                time.sleep(0.3)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    assert {h["name"] for h in experiment["hparamInfos"]} == HPARAM_NAMES
    assert len(experiment["metricInfos"]) == len(HPARAMS_METRICS)
    by_name = {g["name"]: g for g in groups["sessionGroups"]}
    assert set(by_name) == {a.name for a in arms}
    final = {r.arm: r for r in run.epochs if r.epoch == run.config.epochs}
    for a in arms:
        group = by_name[a.name]
        assert group["hparams"] == {k: float(v) if k != "regularizer" else v for k, v in a.hparams().items()}
        assert [s["status"] for s in group["sessions"]] == ["STATUS_SUCCESS"]
        got = {(m["name"].get("group", ""), m["name"]["tag"]): m["value"] for m in group["metricValues"]}
        assert got[("validation", "epoch_data_loss")] == pytest.approx(final[a.index].val_data_loss, rel=1e-6)
