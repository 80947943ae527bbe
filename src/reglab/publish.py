"""Publishing a sweep where users already look (TensorBoard, MLflow): one interface, fed live by a run or
replayed from a finished record (`reglab export`).

reglab's own record stays the source of truth. A publisher only ever receives what the record holds,
in the order the record gets it: the sweep's start (config, data, arms), each epoch's row as it is
appended to metrics.csv, each arm's end (status and test metrics), and the run's end (its directory,
with report.html and figures when drawn). `replay` feeds a finished or stopped record through the same
calls, so a live run and an export of it publish the same things.

A publisher must tolerate a resumed run: `start(..., resumed=True)` is called again with the rows
already published (`done`), and it must continue the same TensorBoard runs / MLflow runs without
writing any (arm, epoch) twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from .config import SweepConfig
from .datasets import DataInfo
from .errors import ConfigError
from .record import EpochRecord, RunRecord


class ArmInfo(NamedTuple):
    """One arm as publishers name it: its index, setting fields and seed."""

    index: int
    family: str
    strength: float
    learning_rate: float
    seed: int

    @property
    def name(self) -> str:
        """A stable, readable run name: arm003_l2_lambda-0.001_lr-0.001_seed-0."""
        return f"arm{self.index:03d}_{self.family}_lambda-{self.strength:g}_lr-{self.learning_rate:g}_seed-{self.seed}"

    def hparams(self) -> dict[str, Any]:
        """Every setting field and the seed, as hyperparameters."""
        return {"regularizer": self.family, "lambda": self.strength, "learning_rate": self.learning_rate, "seed": self.seed}


class SweepStart(NamedTuple):
    run_dir: Path
    config: SweepConfig
    data: DataInfo
    arms: list[ArmInfo]
    resumed: bool
    done: dict[int, int]  # arm → epochs already recorded (and so already published), on a resume


class Publisher(Protocol):
    """What a sink of a sweep implements. Every method may raise; the caller turns a failure into one
    warning line and stops calling that publisher (the run and reglab's record never depend on it)."""

    name: str  # "tensorboard", "mlflow": for the warning line

    def start(self, sweep: SweepStart) -> None: ...

    def epoch(self, row: EpochRecord, kernel: Any | None) -> None:
        """One arm's epoch, as metrics.csv records it; `kernel` the arm's regularized kernel after that epoch
        when the engine provides it (for a histogram), else None."""

    def arm_finished(self, arm: int, status: str, test: dict[str, float]) -> None: ...

    def finish(self, run_dir: Path, status: str) -> None:
        """The run has ended (status as run.json says); report.html and figures/ exist when drawn."""


def arm_infos(config: SweepConfig) -> list[ArmInfo]:
    return [ArmInfo(a.index, a.family, a.lam, a.learning_rate, a.seed) for a in config.arms()]


def replay(run: RunRecord, publishers: Iterable[Publisher]) -> None:
    """Publish a finished (or stopped) record as a live run would have: start, every row in record order,
    every finished arm's end, the run's end. The final kernels (kernels.npz) go with each arm's last row."""
    kernels = run.kernels()
    last = {}
    for row in run.epochs:
        last[row.arm] = row.epoch
    start = SweepStart(run.run_dir, run.config, run.data, arm_infos(run.config), False, {})
    for p in publishers:
        p.start(start)
        for row in run.epochs:
            p.epoch(row, kernels.get(row.arm) if last.get(row.arm) == row.epoch else None)
        for arm in run.arms:
            if arm.get("test"):
                p.arm_finished(int(arm["arm"]), str(arm.get("status")), dict(arm["test"]))
        p.finish(run.run_dir, str(run.meta.get("status")))


class Publishers:
    """The publishers of one run, each isolated: the first failure of one costs one warning line and that
    publisher's later calls, never the run or reglab's record."""

    def __init__(self, publishers: Iterable[Publisher], warn: Callable[[str], None]) -> None:
        self.live = list(publishers)
        self.warn = warn
        self.started = False  # a run that failed before its record opened never started them: nothing to end

    def _each(self, method: str, *args: Any) -> None:
        for p in list(self.live):
            try:
                getattr(p, method)(*args)
            except Exception as e:  # noqa: BLE001 - any failure of a tracking library or its store: said once, then skipped
                self.live.remove(p)
                text = " ".join(str(e).split())[:200] or type(e).__name__
                self.warn(f"warning: {p.name} logging stopped ({type(e).__name__}: {text}); reglab's own record is unaffected")

    @property
    def wants_kernels(self) -> bool:
        """Whether a live publisher draws kernel histograms (engines then send each epoch's kernels)."""
        return any(getattr(p, "wants_kernels", False) for p in self.live)

    def start(self, sweep: SweepStart) -> None:
        self.started = True
        self._each("start", sweep)

    def epoch(self, row: EpochRecord, kernel: Any | None = None) -> None:
        self._each("epoch", row, kernel)

    def arm_finished(self, arm: int, status: str, test: dict[str, float]) -> None:
        self._each("arm_finished", arm, status, test)

    def finish(self, run_dir: Path, status: str) -> None:
        if self.started:
            self._each("finish", run_dir, status)
        self.live = []


#: What a missing extra says (one line), by log kind.
EXTRA_HINTS = {"tensorboard": "TensorBoard logging needs the tensorboard extra: pip install 'reglab[tensorboard]'",
               "mlflow": "MLflow logging needs the mlflow extra: pip install 'reglab[mlflow]'"}


#: MLflow publishers whose store `check_extras` reached, by --log spec, for the `make_publishers` that follows.
_CHECKED: dict[str, Any] = {}


def check_extras(config: SweepConfig) -> None:
    """Refuse, before anything is written or trained, a --log target whose library is not installed, or an
    MLflow store that does not answer (or cannot be written) within its time budget: one line, at most the
    budget later, instead of a run that stalls on it."""
    import importlib.util

    for target in config.log_targets:
        if importlib.util.find_spec(target.kind) is None:
            raise ConfigError(EXTRA_HINTS[target.kind])
    for target in config.log_targets:
        if target.kind == "mlflow":
            _CHECKED[target.spec] = _checked_mlflow(target.where)


def _checked_mlflow(where: str) -> Any:
    """An MLflow publisher whose store answered; its failure as one ConfigError line naming the --log flag."""
    from .mlflow_log import TrackingError, check_store

    try:
        return check_store(where or None)
    except TrackingError as e:
        raise ConfigError(f"--log mlflow: {e}; nothing was trained") from None


def register_published(run_dir: Path) -> None:
    """List the TensorBoard files written inside the run directory in its manifest, so that `--force` can
    remove them (and only them); files written elsewhere are the user's."""
    from .rundir import register

    folder = Path(run_dir) / TENSORBOARD_DIR
    if folder.is_dir() and not folder.is_symlink():
        register(run_dir, sorted(str(f.relative_to(run_dir)) for f in folder.rglob("events.out.tfevents.*")
                                 if f.is_file() and not f.is_symlink()))


def make_publishers(config: SweepConfig, run_dir: Path, warn: Callable[[str], None]) -> Publishers:
    """The publishers `config.log` asks for (TensorBoard's default folder: RUN_DIR/tensorboard).

    An MLflow store that `check_extras` reached just before (a new run, whose record is already open) is used
    as is; one it did not (a resume, which has written nothing yet) is checked here, and refused in one line
    when it does not answer. Any other publisher that cannot be opened costs one warning line, like a later
    failure; a missing library is refused earlier, by `check_extras`."""
    mlflow = {t.spec: _CHECKED.pop(t.spec, None) or _checked_mlflow(t.where)  # before any other is opened
              for t in config.log_targets if t.kind == "mlflow"}
    out: list[Publisher] = []
    for target in config.log_targets:
        try:
            if target.kind == "tensorboard":
                from .tensorboard_log import TensorBoardPublisher

                folder = Path(target.where) if target.where else Path(run_dir) / TENSORBOARD_DIR
                out.append(TensorBoardPublisher(folder))
            else:
                out.append(mlflow[target.spec])
        except Exception as e:  # noqa: BLE001 - whatever the library raises: said once, the run goes on
            text = " ".join(str(e).split())[:200] or type(e).__name__
            warn(f"warning: {target.kind} logging could not start ({type(e).__name__}: {text}); reglab's own record is unaffected")
    return Publishers(out, warn)


#: TensorBoard's default folder inside the run directory.
TENSORBOARD_DIR = "tensorboard"
