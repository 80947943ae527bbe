"""What a person watching a run sees: a live bar per epoch on a terminal, one line per epoch otherwise."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .config import Arm
from .formatting import fmt, setting_label
from .record import EpochRecord


class ProgressDisplay:
    """A `Listener` that reports to a rich Console (stderr by default)."""

    def __init__(self, console: Console, n_arms: int, epochs: int, live: bool | None = None,
                 several_learning_rates: bool = False) -> None:
        self.console, self.n_arms, self.epochs = console, n_arms, epochs
        self.rates = several_learning_rates  # name each arm's learning rate
        self.live = console.is_terminal if live is None else live
        self._progress: Progress | None = None
        self._task: Any = None
        self._steps = 0
        self._arms: list[Arm] = []

    def __enter__(self) -> "ProgressDisplay":
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
                TimeElapsedColumn(), console=self.console, transient=True,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _label(self, family: str, lam: float, learning_rate: float) -> str:
        return setting_label(family, lam, learning_rate if self.rates else None)

    def _describe(self, arms: list[Arm], epoch: int) -> str:
        if len(arms) == 1:
            a = arms[0]
            who = f"arm {a.index + 1}/{self.n_arms}  {self._label(a.family, a.lam, a.learning_rate)}  seed {a.seed}"
        else:
            who = f"{len(arms)} arms at once"
        return f"{who}  epoch {epoch}/{self.epochs}"

    def arms_started(self, arms: list[Arm], steps_per_epoch: int) -> None:
        self._steps = steps_per_epoch
        self._arms = arms
        if self._progress is not None:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(self._describe(arms, 1), total=steps_per_epoch)

    def batches_done(self, arms: list[Arm], epoch: int, step: int) -> None:
        if self._progress is not None and (step % 25 == 0 or step == self._steps or len(arms) > 1):
            self._progress.update(self._task, completed=step, description=self._describe(arms, epoch))

    def epoch_done(self, r: EpochRecord) -> None:
        self.console.print(
            f"arm {r.arm + 1}/{self.n_arms} {self._label(r.regularizer, r.lam, r.learning_rate)} seed {r.seed} epoch {r.epoch}/{self.epochs}: "
            f"loss {fmt(r.loss)} val_loss {fmt(r.val_loss)} acc {fmt(r.accuracy)} val_acc {fmt(r.val_accuracy)} "
            f"val_data_loss {fmt(r.val_data_loss)} ‖W‖ {fmt(r.kernel_norm, 2)} ({r.seconds:.1f} s)",
            highlight=False, soft_wrap=True,
        )
        if self._progress is not None:
            self._progress.update(self._task, completed=0, description=self._describe(self._arms, min(r.epoch + 1, self.epochs)))

    def arm_finished(self, arm: Arm, status: str, test: dict[str, float]) -> None:
        self.console.print(
            f"arm {arm.index + 1}/{self.n_arms} {self._label(arm.family, arm.lam, arm.learning_rate)} seed {arm.seed} {status}: "
            f"test accuracy {fmt(test['accuracy'])}, test data loss {fmt(test['data_loss'])}",
            highlight=False, soft_wrap=True,
        )

    def note(self, text: str) -> None:
        """A line about the whole sweep (the cluster's progress and the best λ so far)."""
        self.console.print(text, highlight=False, soft_wrap=True)
