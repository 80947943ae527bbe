"""`run_sweep`: config → data → engine → record → figures and report. The only place they meet."""

from __future__ import annotations

import functools
import math
import signal
import threading
from pathlib import Path
from typing import Any

from rich.console import Console

from .checkpoint import read_checkpoint, remove_checkpoint, write_checkpoint
from .config import Arm, SweepConfig
from .datasets import Splits, load_dataset
from .engines import get_engine
from .errors import ConfigError, RunDirError, RunFailed, RunInterrupted
from .models import kernels_of
from .progress import ProgressDisplay
from .record import (
    METRICS_CSV, RUN_JSON, EpochRecord, Recorder, RunRecord, check_run_dir, clear_run_dir, default_run_dir,
    load_run, read_run_meta, repair_metrics, utc_now, write_kernels,
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

    def checkpoint(self, arrays: dict[str, Any], meta: dict[str, Any]) -> None:
        write_checkpoint(self.recorder.run_dir, arrays, meta)

    def note(self, text: str) -> None:
        self.display.note(text)


def run_sweep(
    config: SweepConfig,
    out: str | Path | None = None,
    *,
    force: bool = False,
    splits: Splits | None = None,
    console: Console | None = None,
    live: bool | None = None,
    make_report: bool = True,
    executor: str = "local",
    blocks: int | None = None,
    address: str | None = None,
) -> RunRecord:
    """Train every arm of `config`, record it in a run directory, draw figures, write the report.

    `executor`: "local" (one process, one program), "blocks" (the grid in `blocks` blocks, one after
    another) or "ray" (each block a Ray task; `address` of a cluster, else a local instance).
    Bad settings or data fail before anything is written. Returns the run as read back from disk.
    """
    console = console or Console(stderr=True)
    run_dir = Path(out) if out is not None else default_run_dir()
    check_run_dir(run_dir, force)  # refuse early: nothing is written before the data are known good
    if splits is None:
        splits = load_dataset(config.dataset)
    _say_fallback(console, splits)
    engine = _engine(config, executor, blocks, address)
    model_meta, kernel_indices = _describe_model(config, splits, console)  # a user's model that cannot work fails here
    executor_meta = _executor_meta(executor, blocks, address) if executor != "local" else None  # joins Ray: fails early
    clear_run_dir(run_dir)
    recorder = Recorder(run_dir, config, splits.info)
    recorder.update_run(model=model_meta, **({"executor": executor_meta} if executor_meta else {}))
    return _train(config, splits, engine, recorder, None, console, live, make_report, kernel_indices)


def _describe_model(config: SweepConfig, splits: Splits, console: Console) -> tuple[dict[str, Any], list[int]]:
    """What run.json says of the model, and where its regularized kernels are among its trainable weights."""
    if not config.model:
        return {"name": "the study's network", "regularized": ["hidden/kernel"], "chosen_by_reglab": False}, [0]
    from .models import build_user_model, regularized_indices

    model, paths, chosen = build_user_model(config.model, splits.x_train.shape[1:], 0.0)
    if chosen:
        what = "L2(λ)" if config.regularizers == ("l2",) else "each arm's regularizer (" + ", ".join(config.regularizers) + ")"
        console.print(f"note: {config.model} declares no kernel_regularizer; {what} goes on every Dense/Conv kernel: "
                      + ", ".join(paths), highlight=False, soft_wrap=True)
    meta = {"name": config.model, "regularized": paths, "chosen_by_reglab": chosen,
            "parameters": int(sum(math.prod(v.shape) for v in model.trainable_variables))}
    return meta, regularized_indices(model)


def _engine(config: SweepConfig, executor: str, blocks: int | None, address: str | None) -> Any:
    """The engine, or the block executor wrapped around the fused engine."""
    if executor == "local":
        return get_engine(config.engine)
    from .cluster import EXECUTORS, train_blocks

    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r} (choose from {', '.join(EXECUTORS)})")
    if config.engine != "fused":
        raise ConfigError(f"--executor {executor} trains blocks with the fused engine; --engine {config.engine} cannot be used with it")
    if blocks is not None and blocks < 1:
        raise ConfigError("--blocks must be at least 1")
    return functools.partial(train_blocks, executor=executor, n_blocks=blocks, address=address)


def _executor_meta(executor: str, blocks: int | None, address: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": executor, "blocks": blocks}
    if executor == "ray":
        from .cluster import _ray, cluster_shape

        _ray(address)
        meta["address"] = address or "local"
        meta["cluster"] = cluster_shape()
        if blocks is None:
            meta["blocks"] = int(meta["cluster"]["CPU"]) or 1
    return meta


def resume_sweep(run_dir: str | Path, *, console: Console | None = None, live: bool | None = None,
                 make_report: bool = True, address: str | None = None) -> RunRecord:
    """Continue a stopped run from its last checkpoint with the settings stored in it: finished arms are
    not trained again, and the numbers are the ones an uninterrupted run would have recorded."""
    console = console or Console(stderr=True)
    run_dir = Path(run_dir)
    meta = read_run_meta(run_dir)
    config = SweepConfig.from_mapping(meta["config"], where=str(run_dir / RUN_JSON))
    if meta.get("status") == "completed":
        raise RunDirError(f"{run_dir} is a completed run: there is nothing to resume")
    checkpoint = read_checkpoint(run_dir)
    if checkpoint is not None and checkpoint[1].get("engine") != config.engine:
        raise RunDirError(f"{run_dir}: the checkpoint was written by another engine than the run's ({config.engine})")
    epochs_done = _checkpoint_epochs(checkpoint[1], config) if checkpoint else {}
    data = meta["data"]
    # the data actually used (a fallback too), and exactly those arrays
    splits = load_dataset(data["name"] if data.get("fallback_reason") else config.dataset)
    if splits.info.sha256 != data.get("sha256"):
        raise RunDirError(f"the data of {run_dir} have changed since the run started (sha256 "
                          f"{str(data.get('sha256'))[:12]}… then, {splits.info.sha256[:12]}… now); it cannot be resumed exactly")
    ex = meta.get("executor") or {"name": "local"}
    engine = _engine(config, ex["name"], ex.get("blocks"), address or (None if ex.get("address") in (None, "local") else ex["address"]))
    repair_metrics(run_dir, len(config.arms()), epochs_done)
    finished = set(epochs_done) & {int(a["arm"]) for a in meta["arms"]
                                   if a.get("status") in ("completed", "diverged", "stopped") and a.get("test")} if checkpoint else set()
    for arm in meta["arms"]:
        arm["epochs_done"] = epochs_done.get(int(arm["arm"]), 0)
        if int(arm["arm"]) not in finished:
            arm.update(status="pending", test=None)
    _, kernel_indices = _describe_model(config, splits, Console(quiet=True))
    recorder = Recorder.reopen(run_dir, meta)
    done = sum(epochs_done.values())
    console.print(f"resuming {run_dir}: {done} arm-epochs of {len(config.arms()) * config.epochs} already recorded", highlight=False)
    return _train(config, splits, engine, recorder, checkpoint, console, live, make_report, kernel_indices)


def _checkpoint_epochs(meta: dict[str, Any], config: SweepConfig) -> dict[int, int]:
    """arm → epochs the checkpoint covers, checked against the run's configuration."""
    try:
        done = {int(a): int(e) for a, e in meta["epochs_done"].items()}
        if not all(0 <= a < len(config.arms()) and 0 <= e <= config.epochs for a, e in done.items()):
            raise ValueError("arms or epochs out of range")
        if config.engine == "fused" and meta.get("executor") is None:  # the fused engine's own layout, checked
            # before anything is printed or repaired (its arrays are checked against the compiled state later)
            if not (0 <= int(meta["epoch"]) <= config.epochs and int(meta["n_state"]) >= 1
                    and len(meta["rng"]) == config.seeds and len(meta["status"]) == config.seeds
                    and all(len(row) == len(config.settings()) for row in meta["status"])):
                raise ValueError("its layout is not this run's")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise RunDirError(f"the checkpoint does not match this run ({type(e).__name__}: {e})") from None
    return done


def _say_fallback(console: Console, splits: Splits) -> None:
    if splits.info.fallback_reason:
        console.print(
            f"[bold yellow]note:[/] {splits.info.fallback_reason}; using [bold]{splits.info.name}[/] instead "
            f"({splits.info.n_train:,} train / {splits.info.n_val:,} validation / {splits.info.n_test:,} test real MNIST digits).",
            soft_wrap=True,
        )


def _train(config: SweepConfig, splits: Splits, engine: Any, recorder: Recorder, checkpoint: Any, console: Console,
           live: bool | None, make_report: bool, kernel_indices: list[int]) -> RunRecord:
    run_dir = recorder.run_dir
    status = "failed"
    try:
        with _StopFlag() as stop, ProgressDisplay(console, n_arms=len(config.arms()), epochs=config.epochs, live=live) as display:
            listener = _RecordingListener(recorder, display, stop)
            weights = engine(config, splits, listener) if checkpoint is None else engine(config, splits, listener, resume=checkpoint)
        write_kernels(run_dir, {arm: kernels_of(w, kernel_indices) for arm, w in weights.items()})
        status = "completed"
    except OSError as e:  # a full disk, a read-only directory: say so, keep what is whole
        where = f": {e.filename}" if e.filename else ""
        raise RunFailed(
            f"cannot write the record ({e.strerror or e}{where}); every epoch up to the last checkpoint is kept; "
            f"`reglab run --resume {run_dir}` continues once the disk has room"
        ) from None
    except KeyboardInterrupt:
        status = "interrupted"
        raise RunInterrupted(
            f"interrupted; finished epochs are kept in {run_dir / METRICS_CSV} ({RUN_JSON} says where each arm "
            f"stopped); `reglab run --resume {run_dir}` continues the run, `reglab report {run_dir}` draws what is done"
        ) from None
    finally:
        try:
            recorder.finish(status)
        except OSError:  # the disk is still full: run.json keeps its last whole version ("running")
            pass
    remove_checkpoint(run_dir)  # a completed run is never resumed; its final kernels are in kernels.npz
    run = load_run(run_dir)
    if make_report:
        from .report import build_report

        build_report(run)
    return run
