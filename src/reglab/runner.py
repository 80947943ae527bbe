"""`run_sweep`: config → data → engine → record → figures and report. The only place they meet."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from rich.console import Console

from .config import Arm, SweepConfig
from .datasets import Splits, load_dataset
from .engines import get_engine
from .errors import RunInterrupted
from .models import REGULARIZED_KERNEL_INDEX
from .progress import ProgressDisplay
from .record import (
    METRICS_CSV, RUN_JSON, EpochRecord, Recorder, RunRecord, check_run_dir, clear_run_dir, default_run_dir,
    load_run, utc_now, write_kernels,
)


class _StopFlag:
    """Ctrl-C sets a flag that the training loop checks at the next batch, from Python code we control.

    A KeyboardInterrupt raised wherever the main thread happens to be (inside a finalizer or a library's
    broad `except`) can be swallowed; asked for at a batch boundary it never is. A second Ctrl-C
    interrupts at once.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> "_StopFlag":
        in_main = threading.current_thread() is threading.main_thread()
        if in_main and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _RecordingListener:
    """Fans engine events out to the Recorder and the progress display; stops at a batch boundary on Ctrl-C."""

    def __init__(self, recorder: Recorder, display: ProgressDisplay, stop: _StopFlag) -> None:
        self.recorder, self.display, self.stop = recorder, display, stop

    def arms_started(self, arms: list[Arm], steps_per_epoch: int) -> None:
        self.recorder.update_arms([arm.index for arm in arms], status="running", started_at=utc_now())
        self.display.arms_started(arms, steps_per_epoch)

    def batches_done(self, arms: list[Arm], epoch: int, step: int) -> None:
        self.stop.check()  # an unfinished epoch is discarded: it never reaches the record
        self.display.batches_done(arms, epoch, step)

    def epoch_done(self, record: EpochRecord) -> None:
        self.recorder.append(record)
        self.display.epoch_done(record)

    def arm_finished(self, arm: Arm, status: str, test: dict[str, float]) -> None:
        self.recorder.update_arm(arm.index, status=status, test=test, ended_at=utc_now())
        self.display.arm_finished(arm, status, test)


def run_sweep(
    config: SweepConfig,
    out: str | Path | None = None,
    *,
    force: bool = False,
    splits: Splits | None = None,
    console: Console | None = None,
    live: bool | None = None,
    make_report: bool = True,
) -> RunRecord:
    """Train every arm of `config`, record it in a run directory, draw figures, write the report.

    Bad settings or data fail before anything is written. Returns the run as read back from disk.
    """
    console = console or Console(stderr=True)
    run_dir = Path(out) if out is not None else default_run_dir()
    check_run_dir(run_dir, force)  # refuse early: nothing is written before the data are known good
    if splits is None:
        splits = load_dataset(config.dataset)
    if splits.info.fallback_reason:
        console.print(
            f"[bold yellow]note:[/] {splits.info.fallback_reason}; using [bold]{splits.info.name}[/] instead "
            f"({splits.info.n_train:,} train / {splits.info.n_val:,} validation / {splits.info.n_test:,} test real MNIST digits).",
            soft_wrap=True,
        )
    engine = get_engine(config.engine)
    clear_run_dir(run_dir)
    recorder = Recorder(run_dir, config, splits.info)
    status = "failed"
    try:
        with _StopFlag() as stop, ProgressDisplay(console, n_arms=len(config.arms()), epochs=config.epochs, live=live) as display:
            weights = engine(config, splits, _RecordingListener(recorder, display, stop))
        write_kernels(run_dir, {arm: w[REGULARIZED_KERNEL_INDEX] for arm, w in weights.items()})
        status = "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        raise RunInterrupted(
            f"interrupted; finished epochs are kept in {run_dir / METRICS_CSV} ({RUN_JSON} says where each arm "
            f"stopped); `reglab report {run_dir}` draws them"
        ) from None
    finally:
        recorder.finish(status)
    run = load_run(run_dir)
    if make_report:
        from .report import build_report

        build_report(run)
    return run
