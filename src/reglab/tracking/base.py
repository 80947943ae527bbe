"""What a tracking sink implements (`Publisher`) and receives (`SweepStart`, `ArmInfo`), the isolating fan-out
(`Publishers`) and `replay`, which feeds a finished record through the same calls as a live run."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from reglab.config import SweepConfig
from reglab.data.splits import DataInfo
from reglab.record.reader import RunRecord
from reglab.record.schema import EpochRecord

if TYPE_CHECKING:
    import numpy as np


class ArmInfo(NamedTuple):
    """One arm as publishers name it: its index, setting fields and seed."""

    index: int  # type: ignore[assignment]  # the field shadows tuple.index on purpose: arm.index is the arm's number
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

    def epoch(self, row: EpochRecord, kernel: np.ndarray | None) -> None:
        """One arm's epoch, as metrics.csv records it; `kernel` the arm's regularized kernel after that epoch
        when the engine provides it (for a histogram), else None."""

    def arm_finished(self, arm: int, status: str, test: dict[str, float]) -> None: ...

    def finish(self, run_dir: Path, status: str) -> None:
        """The run has ended (status as run.json says); report.html and figures/ exist when drawn."""


def arm_infos(config: SweepConfig) -> list[ArmInfo]:
    return [ArmInfo(a.index, a.family, a.strength, a.learning_rate, a.seed) for a in config.arms()]


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
        for arm in run.arm_records:
            if arm.test:
                p.arm_finished(arm.index, arm.status, dict(arm.test))
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

    def epoch(self, row: EpochRecord, kernel: np.ndarray | None = None) -> None:
        self._each("epoch", row, kernel)

    def arm_finished(self, arm: int, status: str, test: dict[str, float]) -> None:
        self._each("arm_finished", arm, status, test)

    def finish(self, run_dir: Path, status: str) -> None:
        if self.started:
            self._each("finish", run_dir, status)
        self.live = []
