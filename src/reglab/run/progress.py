"""What a person watching a run sees: a live bar per epoch on a terminal; in a Jupyter kernel, one output updated in
place (`IPython.display`, at most 5 times a second); one line per epoch otherwise (logs)."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from reglab.config import Arm
from reglab.engines import Listener
from reglab.formatting import fmt, setting_label
from reglab.record.schema import EpochRecord

#: the least time between two updates of a notebook's progress output (at most 5 a second)
NOTEBOOK_INTERVAL = 0.2


def in_kernel() -> bool:
    """Running in a Jupyter kernel: ipykernel loaded and an IPython shell running."""
    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return False
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except Exception:  # pragma: no cover - a broken IPython: plain lines
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


class NotebookLine:
    """One output of a notebook cell, shown once and then updated in place (text/plain), at most 5 times a second;
    `flush` shows the latest text whatever the time."""

    def __init__(self) -> None:
        self._handle: Any = None
        self._text = ""
        self._shown = ""
        self._at = 0.0

    def show(self, text: str, *, now: bool = False) -> None:
        self._text = text
        if now or time.monotonic() - self._at >= NOTEBOOK_INTERVAL:
            self.flush()

    def flush(self) -> None:
        if not self._text or self._text == self._shown:
            return
        from IPython.display import display

        bundle = {"text/plain": self._text}
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
        self._shown, self._at = self._text, time.monotonic()


class ProgressDisplay(Listener):
    """A `Listener` that reports to a rich Console (stderr by default), or in a Jupyter kernel to one output that
    is updated in place (unless the console is quiet: no progress)."""

    def __init__(self, console: Console, n_arms: int, epochs: int, live: bool | None = None,
                 several_learning_rates: bool = False) -> None:
        self.console, self.n_arms, self.epochs = console, n_arms, epochs
        self.rates = several_learning_rates  # name each arm's learning rate
        self.live = console.is_terminal if live is None else live
        self._progress: Progress | None = None
        self._task: Any = None
        self._steps = 0
        self._arms: list[Arm] = []
        self._notebook = NotebookLine() if live is not False and not console.quiet and in_kernel() else None
        self._current = ""  # the notebook output's lines: the bar, the last epoch, the last arm finished
        self._last = ""
        self._finished = ""

    def __enter__(self) -> "ProgressDisplay":
        if self._notebook is None and self.live:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
                TimeElapsedColumn(), console=self.console, transient=True,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._notebook is not None:
            self._notebook.flush()  # the last epoch shown, whatever the time since the last update

    def _show(self, current: str, *, now: bool = False) -> None:
        assert self._notebook is not None
        self._current = current
        self._notebook.show("\n".join(t for t in (current, self._last, self._finished) if t), now=now)

    def _bar(self, arms: list[Arm], epoch: int, step: int) -> str:
        width = 30
        done = round(width * step / self._steps) if self._steps else 0
        return f"{self._describe(arms, epoch)}  [{'#' * done}{'.' * (width - done)}] {step}/{self._steps} steps"

    def _label(self, family: str, lam: float, learning_rate: float) -> str:
        return setting_label(family, lam, learning_rate if self.rates else None)

    def _describe(self, arms: list[Arm], epoch: int) -> str:
        if len(arms) == 1:
            a = arms[0]
            who = f"arm {a.index + 1}/{self.n_arms}  {self._label(a.family, a.strength, a.learning_rate)}  seed {a.seed}"
        else:
            who = f"{len(arms)} arms at once"
        return f"{who}  epoch {epoch}/{self.epochs}"

    def arms_started(self, arms: list[Arm], steps_per_epoch: int) -> None:
        self._steps = steps_per_epoch
        self._arms = arms
        if self._notebook is not None:
            self._show(self._bar(arms, 1, 0))
        if self._progress is not None:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(self._describe(arms, 1), total=steps_per_epoch)

    def batches_done(self, arms: list[Arm], epoch: int, step: int) -> None:
        if self._notebook is not None:
            self._show(self._bar(arms, epoch, step))
        if self._progress is not None and (step % 25 == 0 or step == self._steps or len(arms) > 1):
            self._progress.update(self._task, completed=step, description=self._describe(arms, epoch))

    def epoch_done(self, r: EpochRecord) -> None:
        setting = self._label(r.regularizer, r.strength, r.learning_rate)
        line = (f"arm {r.arm + 1}/{self.n_arms} {setting} seed {r.seed} epoch {r.epoch}/{self.epochs}: "
                f"loss {fmt(r.loss)} val_loss {fmt(r.val_loss)} acc {fmt(r.accuracy)} val_acc {fmt(r.val_accuracy)} "
                f"val_data_loss {fmt(r.val_data_loss)} ‖W‖ {fmt(r.kernel_norm, 2)} ({r.seconds:.1f} s)")
        if self._notebook is not None:  # one output updated in place, not a line per epoch
            self._last = line
            self._show(self._bar(self._arms, min(r.epoch + 1, self.epochs), 0 if r.epoch < self.epochs else self._steps))
            return
        self.console.print(line, highlight=False, soft_wrap=True)
        if self._progress is not None:
            self._progress.update(self._task, completed=0, description=self._describe(self._arms, min(r.epoch + 1, self.epochs)))

    def arm_finished(self, arm: Arm, status: str, test: dict[str, float]) -> None:
        line = (f"arm {arm.index + 1}/{self.n_arms} {self._label(arm.family, arm.strength, arm.learning_rate)} seed {arm.seed} {status}: "
                f"test accuracy {fmt(test['accuracy'])}, test data loss {fmt(test['data_loss'])}")
        if self._notebook is not None:
            self._finished = line
            self._show(self._current)
            return
        self.console.print(line, highlight=False, soft_wrap=True)

    def note(self, text: str) -> None:
        """A line about the whole sweep (the cluster's progress and the best λ so far)."""
        self.console.print(text, highlight=False, soft_wrap=True)
