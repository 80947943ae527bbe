"""Publishing a sweep to MLflow: one parent run per sweep, one nested child run per arm.

`MlflowPublisher` implements `tracking.base.Publisher` with explicit `mlflow.MlflowClient` calls only: it never
touches MLflow's fluent state (active run, active experiment, autologging), so reglab may run inside a
user's own MLflow session without joining or ending it. `export_mlflow` replays a finished (or stopped)
record through it.

What lands where, in the experiment "reglab" (or the one named):
- the **parent run**, named after the run directory: the config as params (lists as comma-joined
  strings, `strengths.<family>` per family grid) and the data's sizes (`data.n_train`, …); tags
  `reglab.version`, `reglab.dataset`, `reglab.engine`, `reglab.run_dir`, `reglab.status`; at the end
  report.html, report.md, figures/*.png and recommended.keras as artifacts (those that exist), and the
  run's status: completed → FINISHED, failed → FAILED, interrupted (or anything else) → KILLED.
- a **child run per arm** (tag `mlflow.parentRunId`, named `ArmInfo.name`): the setting's fields and the
  seed as params; every epoch's loss, val_loss, accuracy, val_accuracy, data_loss, val_data_loss,
  penalty and kernel_norm at step = epoch (one `log_batch` per epoch); the test metrics as test_loss,
  test_accuracy, test_data_loss; tag `reglab.status` (completed, diverged, stopped, …). A child is
  created with the arm's first epoch and ended when the arm ends (FINISHED; its outcome is the tag).

Finding a run again (a resume, possibly by another process, or a second export): every run of a sweep
carries the tag `reglab.run_id`, a hash of the run directory's resolved absolute path (searchable
without quoting trouble; the readable path is `reglab.run_dir`), and the parent `reglab.started_at`
(run.json's). A resumed start continues the newest parent with that id (preferring the one whose
started_at matches) and its children, set back to RUNNING; a fresh start reuses a parent only when its
started_at matches (exporting a run twice, or after logging it live), else it creates a new one (a run
directory reused with --force is a new run). Rows already in MLflow are never logged again: an arm's
rows with epoch ≤ what its child's `loss` history already holds are skipped, and on a resume also those
with epoch ≤ `done[arm]`.

A time budget per call (`tracking_budget`: 10 s, or REGLAB_MLFLOW_TIMEOUT seconds): every MLflow client call
runs in a daemon worker thread that the caller waits on for at most that long (and for at most
`SIGNAL_GRACE_S` once Ctrl-C or SIGTERM arrives), with MLflow's own HTTP timeout set to the budget and one
retry (unless the user set MLFLOW_HTTP_REQUEST_TIMEOUT / MLFLOW_HTTP_REQUEST_MAX_RETRIES); a local SQLite
store is opened and write-locked with the sqlite3 module first, so that an unusable database file fails
at once instead of through MLflow's ~100 s of engine retries. A call that fails or runs out of time
raises `TrackingError` (one line): `check_store` turns it into a refusal before any training, a live run
into one warning line and no more MLflow calls, `reglab export` into one error line.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import hashlib
import json
import logging
import math
import os
import re
import signal
import sqlite3
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote

from reglab._version import __version__
from reglab.errors import ConfigError, ReglabError
from reglab.record.reader import load_run
from reglab.record.schema import EpochRecord
from reglab.tracking.base import ArmInfo, SweepStart, replay

if TYPE_CHECKING:
    import numpy as np

MISSING_EXTRA = "MLflow logging needs the mlflow extra: pip install 'reglab[mlflow]'"
EXPERIMENT = "reglab"
#: metrics.csv's columns logged per epoch, under the same names.
EPOCH_METRICS = ("loss", "val_loss", "accuracy", "val_accuracy", "data_loss", "val_data_loss", "penalty", "kernel_norm")
#: reglab's run status → the parent run's MLflow status (anything else: KILLED).
RUN_STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
#: files of the run directory logged as the parent's artifacts when they exist (and figures/*.png).
ARTIFACTS = ("report.html", "report.md", "recommended.keras")

TAG_RUN_ID = "reglab.run_id"
TAG_KIND = "reglab.kind"  # "sweep" (the parent) or "arm"
TAG_STARTED = "reglab.started_at"
TAG_STATUS = "reglab.status"
TAG_ARM = "reglab.arm"
PARENT_TAG = "mlflow.parentRunId"

#: Seconds one MLflow call may take before tracking is given up (REGLAB_MLFLOW_TIMEOUT overrides it).
DEFAULT_BUDGET_S = 10.0
BUDGET_ENV = "REGLAB_MLFLOW_TIMEOUT"
#: Once Ctrl-C or SIGTERM arrives, how much longer a pending MLflow call is waited for.
SIGNAL_GRACE_S = 1.0
#: The name of the threads MLflow calls run in (their log lines are dropped: see `_drop_worker_retry_logs`).
WORKER = "reglab-mlflow"

_MAX_PARAM = 6000  # MLflow's MAX_PARAM_VAL_LENGTH (mlflow.utils.validation)
_MAX_TAG = 8000  # MAX_TAG_VAL_LENGTH
_PAGE = 1000


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Around every MLflow call: its console output goes to stderr (stdout carries reglab's results; MLflow
    writes "🏃 View run … at: URL" to stdout when a run against a tracking server ends) and its known
    warnings stay here."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        # sqlalchemy.exc.SADeprecationWarning (a DeprecationWarning) "The ``noload`` loader strategy is
        # deprecated", raised when MLflow's SQL store module configures its mappers under SQLAlchemy 2.1.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        # MLflow releases that deprecate the ./mlruns file store warn so on using it (FutureWarning;
        # MLflow's own migration code filters the same message).
        warnings.filterwarnings("ignore", message=".*filesystem.*deprecated.*", category=FutureWarning)
        yield


def _import_mlflow() -> Any:
    """The mlflow module, imported on first use; ConfigError (one line) when the extra is not installed."""
    try:
        with _quiet():
            import mlflow
            import mlflow.entities  # Metric, Param, RunTag
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] == "mlflow":
            raise ConfigError(MISSING_EXTRA) from None
        raise ConfigError(f"{MISSING_EXTRA} (importing mlflow failed: {e})") from None
    except ImportError as e:
        raise ConfigError(f"{MISSING_EXTRA} (importing mlflow failed: {e})") from None
    return mlflow


def _first_line(e: BaseException) -> str:
    text = str(getattr(e, "message", None) or e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class TrackingError(ReglabError):
    """An MLflow call that failed or gave no answer within the budget (`timed_out`), in one line naming the store."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


def tracking_budget() -> float:
    """The seconds one MLflow call may take: REGLAB_MLFLOW_TIMEOUT when set, else `DEFAULT_BUDGET_S`."""
    raw = os.environ.get(BUDGET_ENV, "").strip()
    if not raw:
        return DEFAULT_BUDGET_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{BUDGET_ENV} must be a number of seconds > 0, got {raw[:40]!r}")
    return value


def _reason(e: BaseException) -> str:
    """Why a call failed, short: the OS's words when the text holds them ("Connection refused"), else the
    exception's first line."""
    text = " ".join(str(getattr(e, "message", None) or e).split())
    found = re.search(r"\[Errno -?\d+\] ([^'\"()\[\]]+)", text)
    if found:
        return found.group(1).strip().rstrip(":,. ")
    return _clip(_first_line(e), 200)


class _Grace:
    """When a signal arrived during a bounded call (time.monotonic()), or None."""

    at: float | None = None


@contextlib.contextmanager
def _noticing_signals() -> Iterator[_Grace]:
    """While waiting on a worker in the main thread: Ctrl-C and SIGTERM are still handled as before (the run's
    stop flag, or KeyboardInterrupt), and noted, so the wait is cut to `SIGNAL_GRACE_S`: a stalled store never
    holds up a stop by the whole budget. Handlers that are not Python's (the default SIGTERM, which ends the
    process at once) are left alone."""
    grace = _Grace()
    installed: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            if callable(previous):
                def note(num: int, frame: Any, previous: Callable[..., Any] = previous) -> None:
                    grace.at = grace.at or time.monotonic()
                    previous(num, frame)

                installed[signum] = previous
                signal.signal(signum, note)
    try:
        yield grace
    finally:
        for signum, previous in installed.items():
            signal.signal(signum, previous)


@contextlib.contextmanager
def _http_budget(budget: float) -> Iterator[None]:
    """MLflow's HTTP client waits `budget` and retries once (its defaults: 120 s and 7 retries with backoff, about
    4 minutes), for the calls started meanwhile; settings the user made in the environment are kept."""
    wanted = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(budget))), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}
    added = [k for k in wanted if k not in os.environ]
    for k in added:
        os.environ[k] = wanted[k]
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def bounded(call: Callable[[], Any], budget: float, store: str) -> Any:
    """`call()` in a daemon worker thread, waited on for at most `budget` seconds (or `SIGNAL_GRACE_S` after a
    signal); its failure, or no answer in time, is a TrackingError naming `store`. A worker left behind is
    never waited for again (it cannot delay the process's exit) and its result is dropped."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["value"] = call()
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = e
        finally:
            done.set()

    with _http_budget(budget), _noticing_signals() as grace:
        threading.Thread(target=work, name=WORKER, daemon=True).start()
        deadline = time.monotonic() + budget
        while not done.wait(0.05):
            now = time.monotonic()
            if grace.at is not None and now >= min(deadline, grace.at + SIGNAL_GRACE_S):
                raise TrackingError(f"the MLflow tracking store {store} was still busy when the run was stopped",
                                    timed_out=True)
            if now >= deadline:
                raise TrackingError(f"the MLflow tracking store {store} gave no answer within {budget:g} s "
                                    f"({BUDGET_ENV} sets the limit)", timed_out=True)
    if "error" in box:
        e = box["error"]
        if isinstance(e, ReglabError):
            raise e
        raise TrackingError(f"cannot use the MLflow tracking store {store}: {_reason(e)}") from None
    return box.get("value")


class _BoundedClient:
    """An `mlflow.MlflowClient` whose every method call is `bounded`."""

    def __init__(self, client: Any, budget: float, store: str) -> None:
        self.raw, self.budget, self.store = client, budget, store

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.raw, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return bounded(functools.partial(method, *args, **kwargs), self.budget, self.store)

        return call


class _NotFromWorkers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName or "").startswith(WORKER)  # None where logging.logThreads is off


def _drop_worker_retry_logs() -> None:
    """MLflow's SQL stores retry a database they cannot open for ~100 s, logging a multi-line warning each time;
    from reglab's workers (abandoned after the budget) those lines are dropped: the one line reglab says is the
    account."""
    logger = logging.getLogger("mlflow.store.db.utils")
    if not any(isinstance(f, _NotFromWorkers) for f in logger.filters):
        logger.addFilter(_NotFromWorkers())


def _sqlite_path(uri: str) -> str | None:
    """A local SQLite store's database file, as MLflow reads `sqlite:///PATH`; None for other stores and
    `:memory:`."""
    if not uri.startswith("sqlite:///"):
        return None
    path = unquote(uri[len("sqlite:///"):].split("?", 1)[0])
    return None if not path or path == ":memory:" else path


def _check_sqlite(path: str, budget: float) -> None:
    """Create the folder and the database file, and take its write lock (waiting at most `budget` for another
    writer): what MLflow's store needs, tried without MLflow's retries."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=budget)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.rollback()
    finally:
        con.close()


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _param_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_param_value(v) for v in value)
    return str(value)


def config_params(config: Mapping[str, Any]) -> dict[str, str]:
    """A config's fields as MLflow params: lists as comma-joined strings, a mapping (a family's own
    strength grid) as one param per key (`strengths.l1`), each value clipped to MLflow's length limit."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            for sub, v in value.items():
                out[f"{key}.{sub}"] = _clip(_param_value(v), _MAX_PARAM)
        else:
            out[key] = _clip(_param_value(value), _MAX_PARAM)
    return out


def run_key(run_dir: str | Path) -> str:
    """The `reglab.run_id` tag of a run directory: a hash of its resolved absolute path (the same from any
    process and working directory, and safe to put in an MLflow search filter)."""
    return hashlib.sha256(str(Path(run_dir).resolve()).encode("utf-8")).hexdigest()[:32]


def _started_at(run_dir: Path) -> str:
    """run.json's started_at (kept across resumes, new for a run started afresh in the same folder); ""
    when it cannot be read."""
    try:
        value = json.loads((run_dir / "run.json").read_text(encoding="utf-8")).get("started_at")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


def _sqlite_artifact_root(uri: str) -> str | None:
    """For a local SQLite store, the folder beside the database where reglab's experiment keeps its
    artifacts (MLflow would use ./mlruns of whatever directory the process runs in); None otherwise."""
    path = _sqlite_path(uri)
    return None if path is None else str(Path(path).resolve().parent / "mlruns")


class MlflowPublisher:
    """A `tracking.base.Publisher` that logs a sweep to MLflow (see the module's docstring for what goes where).

    `tracking_uri`: where to log, as MLflow takes it (`sqlite:///path/mlflow.db`, `http://host:5000`,
    `databricks`, a folder for the file store). None: wherever MLflow itself would log
    (`mlflow.get_tracking_uri()`): the MLFLOW_TRACKING_URI environment variable or a URI set with
    `mlflow.set_tracking_uri` in this process, else, with MLflow 3, the SQLite database `mlflow.db` in the
    current directory (`sqlite:///mlflow.db`, made absolute), or the older file store `./mlruns` when
    that folder already holds experiments. `self.tracking_uri` is the URI resolved at construction.

    `experiment`: the MLflow experiment ("reglab": every sweep one parent run in it, comparable side by
    side), created when missing; in a local SQLite store its artifacts go to `mlruns/` beside the
    database file. Constructing one imports mlflow and opens the store (a new SQLite store is created and
    migrated then, which takes a few seconds; a server is first contacted by `check` or `start`); a missing
    extra is one ConfigError line, an unusable store one TrackingError line.

    `budget_s`: the seconds each MLflow call may take (default `tracking_budget()`); see the module's docstring.
    """

    name = "mlflow"

    def __init__(self, tracking_uri: str | None = None, experiment: str = EXPERIMENT, *,
                 budget_s: float | None = None) -> None:
        mlflow = _import_mlflow()
        self._entities = mlflow.entities
        self.budget_s = tracking_budget() if budget_s is None else float(budget_s)
        _drop_worker_retry_logs()
        with _quiet():
            self.tracking_uri: str = tracking_uri or mlflow.get_tracking_uri()
            store = self.tracking_uri
            sqlite_file = _sqlite_path(store)
            if sqlite_file is not None:
                bounded(functools.partial(_check_sqlite, sqlite_file, self.budget_s), self.budget_s, store)
            client = bounded(functools.partial(mlflow.MlflowClient, tracking_uri=store), self.budget_s, store)
            self.client = _BoundedClient(client, self.budget_s, store)
        self.experiment = experiment
        self.experiment_id: str | None = None
        self.parent_id: str | None = None
        self._run_key = ""
        self._arms: dict[int, ArmInfo] = {}
        self._children: dict[int, str] = {}  # arm → child run id
        self._logged: dict[int, int] = {}  # arm → last epoch its child holds (or, on a resume, that the record holds)
        self._tested: set[int] = set()  # arms whose test metrics are logged
        self._open: set[int] = set()  # arms whose child is RUNNING

    def check(self) -> None:
        """Reach the store and get (or create) the experiment, within the budget: a server that refuses or never
        answers, or a store that cannot be written, is a TrackingError line before anything is trained."""
        with _quiet():
            self.experiment_id = self._experiment_id()

    # -- Publisher ---------------------------------------------------------------------------------

    def start(self, sweep: SweepStart) -> None:
        with _quiet():
            self._start(sweep)

    def epoch(self, row: EpochRecord, kernel: np.ndarray | None) -> None:
        """One row as `EPOCH_METRICS` at step = epoch; a row the child already holds is skipped. The
        kernel is not logged (MLflow has no histograms)."""
        if row.epoch <= self._logged.get(row.arm, 0):
            return
        with _quiet():
            child = self._child(row.arm)
            now = _now_ms()
            Metric = self._entities.Metric
            self.client.log_batch(child, metrics=[Metric(k, float(getattr(row, k)), now, row.epoch) for k in EPOCH_METRICS],
                                  synchronous=True)
        self._logged[row.arm] = row.epoch

    def arm_finished(self, arm: int, status: str, test: dict[str, float]) -> None:
        with _quiet():
            child = self._child(arm)
            if arm not in self._tested and test:
                Metric, now, step = self._entities.Metric, _now_ms(), self._logged.get(arm, 0)
                self.client.log_batch(child, metrics=[Metric(f"test_{k}", float(v), now, step) for k, v in test.items()],
                                      synchronous=True)
                self._tested.add(arm)
            self.client.set_tag(child, TAG_STATUS, status)
            if arm in self._open:
                self.client.set_terminated(child, _child_status(status))
                self._open.discard(arm)

    def finish(self, run_dir: Path, status: str) -> None:
        """The run's files as artifacts, then every child still running and the parent ended with the run's
        status (see RUN_STATUS)."""
        if self.parent_id is None:
            return
        run_dir = Path(run_dir)
        mlflow_status = RUN_STATUS.get(status, "KILLED")
        with _quiet():
            for name in ARTIFACTS:
                path = run_dir / name
                if path.is_file() and not path.is_symlink():
                    self.client.log_artifact(self.parent_id, str(path))
            figures = run_dir / "figures"
            if figures.is_dir() and not figures.is_symlink():
                for path in sorted(figures.iterdir()):
                    if path.suffix == ".png" and path.is_file() and not path.is_symlink():
                        self.client.log_artifact(self.parent_id, str(path), artifact_path="figures")
            for arm in sorted(self._open):
                if status != "completed":
                    self.client.set_tag(self._children[arm], TAG_STATUS, status)
                self.client.set_terminated(self._children[arm], mlflow_status)
            self._open.clear()
            tags = {TAG_STATUS: status}
            started = _started_at(run_dir)
            if started:
                tags[TAG_STARTED] = started
            self._set_tags(self.parent_id, tags)
            self.client.set_terminated(self.parent_id, mlflow_status)

    # -- the parent and the children ---------------------------------------------------------------

    def _start(self, sweep: SweepStart) -> None:
        run_dir = Path(sweep.run_dir).resolve()
        self._run_key = run_key(run_dir)
        self._arms = {a.index: a for a in sweep.arms}
        self._children, self._logged, self._tested, self._open = {}, {}, set(), set()
        self.experiment_id = self._experiment_id()
        started = _started_at(run_dir)
        parent = self._find_parent(started, sweep.resumed)
        params = config_params(sweep.config.to_dict())
        params.update({f"data.{k}": str(getattr(sweep.data, k)) for k in ("n_train", "n_val", "n_test")})

        tags = {
            TAG_RUN_ID: self._run_key, TAG_KIND: "sweep", TAG_STATUS: "running",
            "reglab.run_dir": _clip(str(run_dir), _MAX_TAG), "reglab.version": __version__,
            "reglab.dataset": _clip(sweep.data.name, _MAX_TAG), "reglab.engine": sweep.config.engine,
            "mlflow.note.content": _clip(f"reglab sweep: {len(sweep.arms)} arms × {sweep.config.epochs} epochs on "
                                         f"{sweep.data.name}; record in {run_dir}", _MAX_TAG),
        }
        if started:
            tags[TAG_STARTED] = started
        if parent is None:
            run = self.client.create_run(self.experiment_id, run_name=run_dir.name or "reglab",
                                         tags={**tags, **_user_tag()})
            self.parent_id = run.info.run_id
            self._log_params(self.parent_id, params)
            return
        self.parent_id = parent.info.run_id
        if parent.info.status != "RUNNING":
            self.client.update_run(self.parent_id, status="RUNNING")
        self._log_params(self.parent_id, {k: v for k, v in params.items() if k not in parent.data.params})
        self._set_tags(self.parent_id, tags)
        for child in self._search(f"tags.{PARENT_TAG} = '{self.parent_id}'"):
            try:
                arm = int(child.data.tags.get(TAG_ARM, ""))
            except ValueError:
                continue
            if arm in self._children:  # two children for one arm: the newest (searched first) is kept
                continue
            run_id = child.info.run_id
            self._children[arm] = run_id
            history = self.client.get_metric_history(run_id, EPOCH_METRICS[0])
            self._logged[arm] = max((m.step for m in history), default=0)
            if any(k.startswith("test_") for k in child.data.metrics):
                self._tested.add(arm)
            else:
                if child.info.status != "RUNNING":
                    self.client.update_run(run_id, status="RUNNING")
                self._open.add(arm)
        if sweep.resumed:  # only when continuing: a new parent holds none of the rows recorded before
            for arm, epochs in sweep.done.items():
                self._logged[arm] = max(self._logged.get(arm, 0), int(epochs))

    def _experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            try:
                return self.client.create_experiment(self.experiment,
                                                     artifact_location=self._artifact_location())
            except TrackingError as e:  # another process created it meanwhile?
                if e.timed_out:
                    raise
                exp = self.client.get_experiment_by_name(self.experiment)
                if exp is None:
                    raise
        if exp.lifecycle_stage != "active":
            raise ConfigError(f"MLflow experiment {self.experiment!r} is deleted in {self.tracking_uri}: restore it "
                              "(mlflow experiments restore) or log to another experiment")
        return exp.experiment_id

    def _artifact_location(self) -> str | None:
        root = _sqlite_artifact_root(self.tracking_uri)
        if root is None:
            return None
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.experiment).strip(".") or "experiment"
        return Path(root, safe).as_uri()

    def _find_parent(self, started: str, resumed: bool) -> Any | None:
        parents = self._search(f"tags.`{TAG_RUN_ID}` = '{self._run_key}' and tags.`{TAG_KIND}` = 'sweep'")
        same = [p for p in parents if started and p.data.tags.get(TAG_STARTED) == started]
        if same:
            return same[0]
        return parents[0] if resumed and parents else None

    def _search(self, filter_string: str) -> list[Any]:
        """Every active run of the experiment that `filter_string` matches, newest first (all pages)."""
        out: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string, max_results=_PAGE,
                                           order_by=["attributes.start_time DESC"], page_token=token)
            out.extend(page)
            token = page.token
            if not token:
                return out

    def _child(self, arm: int) -> str:
        """The arm's child run, created (RUNNING, with its params) on first use."""
        if arm in self._children:
            return self._children[arm]
        info = self._arms.get(arm)
        name = info.name if info is not None else f"arm{arm:03d}"
        run = self.client.create_run(self.experiment_id, run_name=name, tags={
            PARENT_TAG: self.parent_id, TAG_RUN_ID: self._run_key, TAG_KIND: "arm", TAG_ARM: str(arm),
            TAG_STATUS: "running", **_user_tag()})
        run_id = run.info.run_id
        if info is not None:
            self._log_params(run_id, {k: str(v) for k, v in info.hparams().items()})
        self._children[arm] = run_id
        self._open.add(arm)
        return run_id

    def _log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        if params:
            Param = self._entities.Param
            self.client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()], synchronous=True)

    def _set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        RunTag = self._entities.RunTag
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()], synchronous=True)


def _child_status(status: str) -> str:
    """An arm's end as its child run's MLflow status: completed, diverged and stopped (early stopping) are
    all FINISHED (the arm ran to its end; the outcome is the `reglab.status` tag)."""
    return {"failed": "FAILED", "interrupted": "KILLED"}.get(status, "FINISHED")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _user_tag() -> dict[str, str]:
    try:
        return {"mlflow.user": getpass.getuser()}
    except (OSError, KeyError, ImportError):  # no user name in this environment
        return {}


class MlflowExport(NamedTuple):
    """Where an export went; str() is the line `reglab export` prints."""

    tracking_uri: str
    experiment: str
    experiment_id: str
    run_id: str  # the sweep's parent run

    def __str__(self) -> str:
        return f"run {self.run_id} in experiment {self.experiment!r} of {self.tracking_uri}"


def check_store(tracking_uri: str | None = None, experiment: str = EXPERIMENT) -> MlflowPublisher:
    """An `MlflowPublisher` whose store has answered (`check`) within the budget; TrackingError (one line) when it
    cannot be reached or written, ConfigError when mlflow is not installed."""
    publisher = MlflowPublisher(tracking_uri, experiment)
    publisher.check()
    return publisher


def export_mlflow(run_dir: str | Path, tracking_uri: str | None = None, experiment: str = EXPERIMENT) -> MlflowExport:
    """Publish a finished (or stopped) run directory to MLflow (`reglab export --mlflow`): its record
    replayed through an `MlflowPublisher`. Exporting the same run again reuses its runs and logs nothing
    twice; a run exported while stopped and again once resumed and finished is continued. An unreachable or
    stalling store is one TrackingError line after at most the budget per call."""
    run = load_run(run_dir)
    publisher = check_store(tracking_uri, experiment)
    replay(run, [publisher])
    return MlflowExport(publisher.tracking_uri, experiment, str(publisher.experiment_id), str(publisher.parent_id))
