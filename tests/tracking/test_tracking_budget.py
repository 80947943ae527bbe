"""An MLflow store that refuses, never answers, or cannot be written costs a run seconds, never minutes: it is
checked before any training (one line, nothing written), a stall during training costs one warning line and
the rest of the tracking, never the run or its record, and SIGTERM still ends the run within seconds."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import reglab
from helpers import reglab_argv, small_splits, spawned
from reglab.cli import main
from reglab.config import SweepConfig
from reglab.errors import ConfigError

pytest.importorskip("mlflow") if not os.environ.get("CI") else __import__("mlflow")  # CI installs reglab[mlflow]

from reglab.tracking.mlflow import TrackingError, bounded, tracking_budget  # noqa: E402 - after the skip

RUN = ["run", "--dataset", "mnist-5k", "--lambdas", "0,0.01", "--epochs", "2", "--seeds", "1", "--no-progress"]


def refused_port() -> int:
    """A port nothing listens on (bound, then closed): a connection to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections and never answers a byte; closed (with every connection) on exit."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except (TimeoutError, OSError):
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


class _StallAfterProbe(BaseHTTPRequestHandler):
    """An MLflow server that answers the experiment lookup (the probe passes) and then never answers again."""

    def do_GET(self) -> None:
        if self.path.startswith("/api/2.0/mlflow/experiments/get-by-name"):
            body = json.dumps({"experiment": {"experiment_id": "1", "name": "reglab", "lifecycle_stage": "active",
                                              "artifact_location": "mlflow-artifacts:/1"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self._stall()

    def do_POST(self) -> None:
        self._stall()

    def _stall(self) -> None:
        self.server.stalled.set()  # type: ignore[attr-defined]
        self.server.release.wait()  # type: ignore[attr-defined]
        self.close_connection = True

    def log_message(self, *args: object) -> None:  # no access log on the test's stderr
        pass


@contextlib.contextmanager
def stalling_server() -> Iterator[ThreadingHTTPServer]:
    """`_StallAfterProbe` on a free port; its stalled requests are released and every thread joined on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StallAfterProbe)
    server.stalled, server.release = threading.Event(), threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()
        thread.join()


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def assert_refused(argv: list[str], out: Path, capsys, expected: str, limit: float = 30.0) -> str:
    """`reglab *argv` exits 2 within `limit` seconds with one `reglab: error:` line holding `expected`, and
    writes nothing at `out`."""
    start = time.monotonic()
    code = main(argv)
    elapsed = time.monotonic() - start
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("reglab: error:") and expected in lines[0], captured.err
    assert elapsed < limit, elapsed
    assert not out.exists()
    return lines[0]


def test_a_refused_server_is_one_line_before_any_training(tmp_path, capsys):
    out = tmp_path / "run"
    line = assert_refused([*RUN, "--out", str(out), "--log", f"mlflow={url(refused_port())}"], out, capsys,
                          "Connection refused")
    assert "--log mlflow" in line and "nothing was trained" in line


@pytest.mark.parametrize("where", ["under-a-file", "a-folder"])
def test_an_unusable_sqlite_store_is_one_line_at_once(tmp_path, capsys, where):
    """A path under a regular file, or a database path that is a folder (MLflow itself retries that ~100 s)."""
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "folder").mkdir()
    db = tmp_path / "file" / "mlflow.db" if where == "under-a-file" else tmp_path / "folder"
    out = tmp_path / "run"
    assert_refused([*RUN, "--out", str(out), "--log", f"mlflow=sqlite:///{db}"], out, capsys,
                   "cannot use the MLflow tracking store sqlite:///")


def test_a_silent_server_fails_the_run_within_the_budget(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("REGLAB_MLFLOW_TIMEOUT", "2")
    out = tmp_path / "run"
    with silent_listener() as port:
        start = time.monotonic()
        assert_refused([*RUN, "--out", str(out), "--log", f"mlflow={url(port)}"], out, capsys,
                       "gave no answer within 2 s (REGLAB_MLFLOW_TIMEOUT sets the limit)")
        assert time.monotonic() - start < 2 + 15  # the budget, and the data and model checks before it


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    config = SweepConfig(lambdas=(0.0, 1e-3), seeds=1, epochs=2, dataset="mnist-5k")
    return reglab.run_sweep(config, out=tmp_path_factory.mktemp("sweep") / "run", splits=small_splits(), live=False)


@pytest.mark.slow
def test_export_to_an_unreachable_server_is_one_line(sweep, capsys, monkeypatch):
    monkeypatch.setenv("REGLAB_MLFLOW_TIMEOUT", "2")
    assert_refused(["export", str(sweep.run_dir), "--mlflow", url(refused_port())], Path("/nonexistent"), capsys,
                   "Connection refused", limit=10)
    with stalling_server() as server:  # the lookup answers, the first write never does
        assert_refused(["export", str(sweep.run_dir), "--mlflow", url(server.server_port)], Path("/nonexistent"),
                       capsys, "gave no answer within 2 s", limit=10)


@pytest.mark.slow
def test_a_stall_during_training_costs_one_warning_never_the_run(tmp_path):
    """A real `reglab run` whose server passes the probe, then stalls: the run completes, its record whole, after
    one warning line; the stall cost the budget once."""
    out = tmp_path / "run"
    with stalling_server() as server, spawned(reglab_argv(*RUN, "--out", str(out), "--log", f"mlflow={url(server.server_port)}"),
                                              env={"REGLAB_MLFLOW_TIMEOUT": "3"}) as proc:
        stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    warnings = [line for line in stderr.splitlines() if "mlflow" in line.lower()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: mlflow logging stopped"), stderr
    assert "gave no answer within 3 s" in warnings[0] and "reglab's own record is unaffected" in warnings[0]
    assert json.loads((out / "run.json").read_text())["status"] == "completed"
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 2 * 2
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_sigterm_during_a_stall_ends_the_run_within_seconds(tmp_path):
    """The budget is a minute here: only the signal can cut the wait short."""
    out = tmp_path / "run"
    with stalling_server() as server, spawned(reglab_argv(*RUN, "--out", str(out), "--log", f"mlflow={url(server.server_port)}"),
                                              env={"REGLAB_MLFLOW_TIMEOUT": "60"}) as proc:
        assert server.stalled.wait(120), "the run never reached the server"
        time.sleep(0.5)  # the run is now waiting on a stalled MLflow call
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        elapsed = time.monotonic() - start
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert elapsed < 10, elapsed
    assert "terminated (SIGTERM)" in stderr and "still busy when the run was stopped" in stderr, stderr
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"


def test_a_bounded_call_gives_up_after_its_budget_or_a_signal():
    start = time.monotonic()
    with pytest.raises(TrackingError) as e:
        bounded(lambda: time.sleep(5), 0.3, "sqlite:///x.db")
    assert e.value.timed_out and time.monotonic() - start < 2
    assert str(e.value) == ("the MLflow tracking store sqlite:///x.db gave no answer within 0.3 s "
                            "(REGLAB_MLFLOW_TIMEOUT sets the limit)")
    assert bounded(lambda: 42, 1, "x") == 42
    with pytest.raises(TrackingError, match="cannot use the MLflow tracking store x: boom"):
        bounded(lambda: (_ for _ in ()).throw(RuntimeError("boom\nmore")), 1, "x")

    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda num, frame: seen.append(num))  # stands for the run's stop flag
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(TrackingError, match="still busy when the run was stopped"):
            bounded(lambda: time.sleep(10), 30, "x")
    finally:
        timer.join()
        signal.signal(signal.SIGTERM, previous)
    assert seen == [signal.SIGTERM] and time.monotonic() - start < 3  # the run's own handler still ran


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
def test_a_bad_budget_is_one_line(monkeypatch, value):
    monkeypatch.setenv("REGLAB_MLFLOW_TIMEOUT", value)
    with pytest.raises(ConfigError, match="REGLAB_MLFLOW_TIMEOUT must be a number of seconds > 0"):
        tracking_budget()
    monkeypatch.setenv("REGLAB_MLFLOW_TIMEOUT", "2.5")
    assert tracking_budget() == 2.5


def test_a_resume_checks_its_store_before_anything_is_written(tmp_path):
    """A resume has no `check_extras` before it: its publishers refuse an unreachable store themselves (nothing
    of the run is written yet), where a new run's already checked store is taken as checked."""
    from reglab.tracking.publish import check_extras, make_publishers

    config = SweepConfig(log=(f"mlflow={url(refused_port())}",))
    with pytest.raises(ConfigError, match="Connection refused; nothing was trained"):
        make_publishers(config, tmp_path, print)
    good = SweepConfig(log=(f"mlflow=sqlite:///{tmp_path}/mlflow.db",))
    check_extras(good)
    publishers = make_publishers(good, tmp_path, print)
    assert [p.name for p in publishers.live] == ["mlflow"] and publishers.live[0].experiment_id is not None
