"""`run_sweep`: config → data → engine → record → figures and report. The only place they meet."""

from __future__ import annotations

from pathlib import Path
from rich.console import Console

from .config import Arm, SweepConfig
from .datasets import Splits, load_dataset
from .engines import get_engine
from .progress import ProgressDisplay
from .record import EpochRecord, Recorder, RunRecord, check_run_dir, clear_run_dir, default_run_dir, load_run, utc_now


class _RecordingListener:
    """Fans engine events out to the Recorder and the progress display."""

    def __init__(self, recorder: Recorder, display: ProgressDisplay) -> None:
        self.recorder, self.display = recorder, display

    def arm_started(self, arm: Arm, steps_per_epoch: int) -> None:
        self.recorder.update_arm(arm.index, status="running", started_at=utc_now())
        self.display.arm_started(arm, steps_per_epoch)

    def batch_done(self, arm: Arm, epoch: int, step: int) -> None:
        self.display.batch_done(arm, epoch, step)

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
        with ProgressDisplay(console, n_arms=len(config.arms()), epochs=config.epochs, live=live) as display:
            engine(config, splits, _RecordingListener(recorder, display))
        status = "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        recorder.finish(status)
    run = load_run(run_dir)
    if make_report:
        from .report import build_report

        build_report(run)
    return run
