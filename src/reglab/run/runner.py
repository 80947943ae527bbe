"""`run_sweep`: config → data → engine → record → figures and report. The only place they meet."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import signal
import tempfile
import threading
from errno import ENOSPC
from pathlib import Path
from typing import Any, NamedTuple

from rich.console import Console

from reglab.analysis.analyze import analyze
from reglab.analysis.results import RunAnalysis
from reglab.analysis.views import recommended_setting
from reglab.config import MAX_ARMS, Arm, SweepConfig
from reglab.data.datasets import load_dataset
from reglab.data.splits import Splits
from reglab.engines import Engine, Listener, ListenerList, check_checkpoint, get_engine
from reglab.engines.memory import check_memory
from reglab.errors import ConfigError, RunDirError, RunFailed, RunInterrupted
from reglab.fileio import ensure_dir, write_atomic
from reglab.inputs import read_regular
from reglab.model.build import MAX_MODEL_BYTES, build_user_model, kernels_of, regularized_indices
from reglab.model.kept import keep_recommended, keep_weights
from reglab.record.arrays import ValidationStore, write_kernels, write_validation
from reglab.record.checkpoint import CHECKPOINT_NPZ, Checkpoint, read_checkpoint, remove_checkpoint
from reglab.record.checks import check_rows
from reglab.record.reader import RunRecord, load_run
from reglab.record.rundir import check_run_dir, clear_run_dir, locked, register, remove_report, reserve_default_run_dir
from reglab.record.schema import METRICS_CSV, RUN_JSON, ArmRecord, read_metrics, read_run_meta, repair_metrics
from reglab.record.writer import Recorder
from reglab.report.build import build_report
from reglab.run.cluster import EXECUTORS, _ray, cluster_shape, train_blocks
from reglab.run.listeners import LazyRecorder, PublishingListener, RecordListener
from reglab.run.progress import ProgressDisplay
from reglab.tracking.base import Publishers, SweepStart, arm_infos
from reglab.tracking.publish import check_extras, make_publishers, register_published


class _StopFlag(Listener):
    """Ctrl-C (SIGINT) or SIGTERM sets a flag that the training loop checks at the next batch (and between an
    engine's units of work), from Python code we control: the first listener the engine tells, so a stop comes
    before anything else hears of that batch.

    A KeyboardInterrupt raised wherever the main thread happens to be (inside a finalizer or a library's
    broad `except`) can be swallowed; asked for at a batch boundary it never is. A second signal
    interrupts at once. SIGTERM (what `kill`, a scheduler or a container stop sends) is treated as Ctrl-C,
    so the record says `interrupted` and the resume command is printed.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                if signal.getsignal(signum) in (signal.default_int_handler, signal.SIG_DFL):
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = self.signum or signum
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def batches_done(self, arms: list[Arm], epoch: int, step: int) -> None:
        self.check()  # an unfinished epoch is discarded: it never reaches the record

    def check_stop(self) -> None:
        self.check()

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def fingerprint(config: SweepConfig, data_sha256: str, model_meta: dict[str, Any] | None) -> dict[str, Any]:
    """What a checkpoint must have been written for: this configuration, these data, this model file."""
    canonical = json.dumps(config.to_dict(), sort_keys=True, allow_nan=True)
    return {"config": hashlib.sha256(canonical.encode()).hexdigest(), "data": data_sha256,
            "model": (model_meta or {}).get("sha256")}


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
    max_arms: int = MAX_ARMS,
    inputs: dict[str, bytes] | None = None,
) -> RunRecord:
    """Train every arm of `config`, record it in a run directory, draw figures, write the report.

    `executor`: "local" (one process, one program), "blocks" (the grid in `blocks` blocks, one after
    another) or "ray" (each block a Ray task; `address` of a cluster, else a local instance).
    `max_arms`: a sweep with more arms is refused (a safety limit, not part of the config).
    `inputs`: files to keep in the run directory (names from `rundir.INPUT_FILES` → their bytes, as
    `reglab.sweep` gives its data and model); `config` names them relative to the run directory, run.json's
    `inputs` lists them, and they are read from the run directory wherever it is moved (`SweepConfig.located`).
    Bad settings or data fail before anything is written. Returns the run as read back from disk.
    """
    inputs = dict(inputs or {})
    if inputs:
        with tempfile.TemporaryDirectory(prefix="reglab-inputs-") as staging:  # read before the run directory is touched
            for name, payload in inputs.items():
                ensure_dir(Path(staging, name).parent, parents=True, root=Path(staging))
                write_atomic(Path(staging, name), payload, root=Path(staging))
            return _run_sweep(config, out, force=force, splits=splits, console=console, live=live,
                              make_report=make_report, executor=executor, blocks=blocks, address=address,
                              max_arms=max_arms, inputs=inputs, staging=Path(staging))
    return _run_sweep(config, out, force=force, splits=splits, console=console, live=live, make_report=make_report,
                      executor=executor, blocks=blocks, address=address, max_arms=max_arms)


def _run_sweep(config: SweepConfig, out: str | Path | None, *, force: bool, splits: Splits | None,
               console: Console | None, live: bool | None, make_report: bool, executor: str, blocks: int | None,
               address: str | None, max_arms: int, inputs: dict[str, bytes] | None = None,
               staging: Path | None = None) -> RunRecord:
    given = config  # as recorded: the inputs named relative to the run directory
    names = list(inputs or {})
    if staging is not None:
        config = given.located(None, staging, names)  # before the lock: the staged copies
    check_arm_cap(config, max_arms)
    console = console or Console(stderr=True)
    run_dir = Path(out) if out is not None else None
    if run_dir is not None:
        if not str(out).strip():
            raise RunDirError("--out is empty: give the run directory a name")
        check_run_dir(run_dir, force)  # refuse early: nothing is written before the data are known good
    if splits is None:
        splits = load_dataset(config.dataset, config.data_options)
    _say_fallback(console, splits)
    engine = _engine(config, executor, blocks, address)
    model_meta, kernel_indices = _describe_model(config, splits, console)  # a user's model that cannot work fails here
    if names and given.model:
        model_meta["name"] = given.model  # the run directory's copy, not the staged one
    if config.engine == "fused" and executor != "ray":  # a sweep that cannot fit is refused before anything is written
        check_memory(config, splits, model_meta.get("parameters"))
    executor_meta = _executor_meta(executor, blocks, address) if executor != "local" else None  # joins Ray: fails early
    check_extras(config)  # a --log target without its library: refused before anything is written
    run_dir = run_dir if run_dir is not None else reserve_default_run_dir()
    with locked(run_dir, create=True):
        check_run_dir(run_dir, force)  # again, now that no other reglab process can be writing here
        if force:
            clear_run_dir(run_dir)
        if names:
            _keep_inputs(run_dir, inputs or {})
            config = given.located(None, run_dir, names)  # training reads the run directory's copies
        recorder = Recorder(run_dir, given, splits.info)
        recorder.update_run(model=model_meta, paths=given.absolute_paths(names),  # a resume from anywhere reads these
                            **({"inputs": names} if names else {}),
                            **({"executor": executor_meta} if executor_meta else {}))
        return _train(_Training(config, splits, engine, LazyRecorder(run_dir, recorder), None, console, live, make_report,
                                kernel_indices, fingerprint(given, splits.info.sha256, model_meta),
                                ValidationStore(len(config.arms()), config.epochs, len(splits.x_val))))


def _keep_inputs(run_dir: Path, inputs: dict[str, bytes]) -> None:
    """Write the run's inputs into RUN_DIR (listed in the manifest first, as every file reglab writes there)."""
    register(run_dir, inputs)
    try:
        for name, payload in inputs.items():
            ensure_dir((run_dir / name).parent, parents=True, root=run_dir)
            write_atomic(run_dir / name, payload, root=run_dir)
    except OSError as e:
        raise RunDirError(f"cannot write {e.filename or run_dir}: {e.strerror or e}") from None


def check_arm_cap(config: SweepConfig, max_arms: int = MAX_ARMS) -> None:
    """Refuse a sweep of more than `max_arms` arms before anything is loaded or written: a grid that large
    is more often a typo (a logspace count, a seeds count) than a plan, and it costs memory and time."""
    if isinstance(max_arms, bool) or not isinstance(max_arms, int) or max_arms < 1:
        raise ConfigError(f"--max-arms must be a positive integer, got {max_arms!r}")
    settings = config.n_settings
    n = settings * config.seeds  # counted, not listed: 10,000 seeds × 20,001 λ would be 200 million arms
    if n > max_arms:
        plural = lambda k, word: f"{k:,} {word}" + ("s" if k != 1 else "")  # noqa: E731
        raise ConfigError(f"this sweep has {n:,} arms ({plural(settings, 'setting')} × {plural(config.seeds, 'seed')}), "
                          f"more than the cap of {max_arms:,}; pass --max-arms {n} to allow it")


def _describe_model(config: SweepConfig, splits: Splits, console: Console) -> tuple[dict[str, Any], list[int]]:
    """What run.json says of the model, and where its regularized kernels are among its trainable weights."""
    if not config.model:
        return {"name": "the study's network", "regularized": ["hidden/kernel"], "chosen_by_reglab": False}, [0]

    model, paths, chosen = build_user_model(config.model, splits.x_train.shape[1:], 0.0, n_classes=splits.info.n_classes,
                                            sample=splits.x_train[:8])
    if chosen:
        what = "L2(λ)" if config.regularizers == ("l2",) else "each arm's regularizer (" + ", ".join(config.regularizers) + ")"
        console.print(f"note: {config.model} declares no kernel_regularizer; {what} goes on every Dense/Conv kernel: "
                      + ", ".join(paths), highlight=False, soft_wrap=True)
    meta = {"name": config.model, "sha256": model_file_sha256(config.model), "regularized": paths,
            "chosen_by_reglab": chosen, "parameters": int(sum(math.prod(v.shape) for v in model.trainable_variables))}
    return meta, regularized_indices(model)


def model_file_sha256(spec: str) -> str | None:
    """The sha256 of a user model's file (`FILE.py:FUNCTION`), recorded so a resume can tell it was edited."""

    try:
        return hashlib.sha256(read_regular(spec.rpartition(":")[0], "model file", MAX_MODEL_BYTES)).hexdigest()
    except ConfigError:
        return None


def _engine(config: SweepConfig, executor: str, blocks: int | None, address: str | None) -> Any:
    """The engine, or the block executor wrapped around the fused engine."""
    if executor == "local":
        return get_engine(config.engine)

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
        _ray(address)
        meta["address"] = address or "local"
        meta["cluster"] = cluster_shape()
        if blocks is None:
            meta["blocks"] = int(meta["cluster"]["CPU"]) or 1
    return meta


def resume_sweep(run_dir: str | Path, *, console: Console | None = None, live: bool | None = None,
                 make_report: bool = True, address: str | None = None) -> RunRecord:
    """Continue a stopped run from its last checkpoint with the settings stored in it: finished arms are
    not trained again, and the numbers are the ones an uninterrupted run would have recorded.

    Everything is checked against everything else before anything is written: run.json's configuration
    and arms, the checkpoint (its layout, and the configuration, data and model file it was written for),
    the data and the model file now, and metrics.csv's rows. A mismatch is refused with one line naming
    the file and the field."""
    console = console or Console(stderr=True)
    run_dir = Path(run_dir)
    read_run_meta(run_dir)  # a folder that is not a reglab run gets no lock file
    with locked(run_dir):
        plan = _plan_resume(run_dir)
        ex = plan.meta.get("executor") or {"name": "local"}
        # the files where the run found them, from any directory
        config = plan.config.located(plan.meta.get("paths"), run_dir, plan.meta.get("inputs"))
        engine = _engine(config, ex["name"], ex.get("blocks"),
                         address or (None if ex.get("address") in (None, "local") else ex["address"]))
        if config.model:  # the only path, with load_model, that runs code a record names: said, never silent
            console.print(f"reglab: running model file {config.model.rpartition(':')[0]} to rebuild the model",
                          highlight=False, soft_wrap=True)
        _, kernel_indices = _describe_model(config, plan.splits, Console(quiet=True))

        def start() -> Recorder:  # once the engine has taken the checkpoint
            done = sum(plan.epochs_done.values())
            console.print(f"resuming {run_dir}: {done} arm-epochs of {len(config.arms()) * config.epochs} already "
                          "recorded", highlight=False)
            return plan.open_recorder()

        return _train(_Training(config, plan.splits, engine, LazyRecorder(run_dir, opener=start), plan.checkpoint, console,
                                live, make_report, kernel_indices,
                                fingerprint(plan.config, plan.splits.info.sha256, plan.meta.get("model")),
                                plan.values, plan.epochs_done))


class _ResumePlan(NamedTuple):
    """A stopped run, checked whole and ready to continue; nothing of it has been written yet."""

    run_dir: Path
    meta: dict[str, Any]
    config: SweepConfig
    splits: Splits
    checkpoint: Checkpoint | None  # the engine's part of checkpoint.npz
    epochs_done: dict[int, int]
    values: ValidationStore  # the per-example validation values the checkpoint covers

    def open_recorder(self) -> Recorder:
        """Drop the rows the checkpoint does not cover, reset unfinished arms, and reopen the record."""
        repair_metrics(self.run_dir, len(self.config.arms()), self.epochs_done)
        finished = set(self.epochs_done) & {a.index for a in map(ArmRecord.of, self.meta["arms"])
                                            if a.status in ("completed", "diverged", "stopped") and a.test}
        for arm in self.meta["arms"]:
            arm["epochs_done"] = self.epochs_done.get(int(arm["arm"]), 0)
            if int(arm["arm"]) not in finished:
                arm.update(status="pending", test=None)
        return Recorder.reopen(self.run_dir, self.meta)


def _plan_resume(run_dir: Path) -> _ResumePlan:
    meta = read_run_meta(run_dir)
    config = SweepConfig.from_mapping(meta["config"], where=str(run_dir / RUN_JSON))
    if meta.get("status") == "completed":
        missing = [name for name in ("report.html", "report.md") if not (run_dir / name).is_file()]
        if missing:
            raise RunDirError(f"{run_dir} is a completed run: there is nothing to resume, but its report was not written "
                              f"({', '.join(missing)} missing): `reglab report {run_dir}` draws it")
        raise RunDirError(f"{run_dir} is a completed run: there is nothing to resume")
    checkpoint = read_checkpoint(run_dir)
    where = run_dir / CHECKPOINT_NPZ
    if checkpoint is not None and checkpoint.meta.get("engine") != config.engine:
        raise RunDirError(f"{where}: field engine is {checkpoint.meta.get('engine')!r}, but the run's engine is {config.engine}")
    epochs_done = _checkpoint_epochs(checkpoint.meta, config) if checkpoint else {}
    # the data actually used (a fallback too), and exactly those arrays
    data = meta["data"]
    located = config.located(meta.get("paths"), run_dir, meta.get("inputs"))  # absolute paths, or the run's own inputs
    splits = load_dataset(data["name"] if data.get("fallback_reason") else located.dataset, located.data_options)
    if splits.info.sha256 != data["sha256"]:
        raise RunDirError(f"the data of {run_dir} have changed since the run started (sha256 "
                          f"{data['sha256'][:12]}… then, {splits.info.sha256[:12]}… now); it cannot be resumed exactly")
    model = meta.get("model") or {}
    if config.model and model.get("sha256"):
        now = model_file_sha256(located.model)
        if now != model["sha256"]:
            raise RunDirError(f"the model file {located.model.rpartition(':')[0]} has changed since the run started "
                              f"(sha256 {model['sha256'][:12]}… in {RUN_JSON}, {str(now)[:12]}… now); it cannot be resumed exactly")
    if checkpoint is not None and "fingerprint" in checkpoint.meta:
        written_for = checkpoint.meta["fingerprint"]
        expected = fingerprint(config, data["sha256"], model)
        for field, what in (("config", "configuration"), ("data", "data"), ("model", "model file")):
            if not isinstance(written_for, dict) or written_for.get(field) != expected[field]:
                raise RunDirError(f"{where}: field fingerprint.{field} does not match {RUN_JSON}: the checkpoint was "
                                  f"written for another {what}")
    rows = list(read_metrics(run_dir / METRICS_CSV, n_arms=len(config.arms())))
    check_rows(rows, config, run_dir / METRICS_CSV)
    recorded: dict[int, int] = {}
    for r in rows:
        recorded[r.arm] = r.epoch
    for arm, epochs in sorted(epochs_done.items()):
        if recorded.get(arm, 0) < epochs:
            raise RunDirError(f"{run_dir / METRICS_CSV}: arm {arm} has {recorded.get(arm, 0)} epochs recorded, but the "
                              f"checkpoint covers {epochs}: rows are missing")
    values = ValidationStore(len(config.arms()), config.epochs, len(splits.x_val))
    if checkpoint is not None:
        stored, engine_arrays = ValidationStore.split_checkpoint(checkpoint.arrays)
        try:
            values = ValidationStore.restore(stored, len(config.arms()), config.epochs, len(splits.x_val), epochs_done)
        except ValueError as e:
            raise RunDirError(f"{where}: its validation values do not match this run ({e})") from None
        checkpoint = Checkpoint(engine_arrays, checkpoint.meta)
    return _ResumePlan(run_dir, meta, config, splits, checkpoint, epochs_done, values)


def _checkpoint_epochs(meta: dict[str, Any], config: SweepConfig) -> dict[int, int]:
    """arm → epochs the checkpoint covers, checked against the run's configuration."""
    try:
        done = {int(a): int(e) for a, e in meta["epochs_done"].items()}
        if not all(0 <= a < len(config.arms()) and 0 <= e <= config.epochs for a, e in done.items()):
            raise ValueError("arms or epochs out of range")
        if meta.get("executor") is None:  # the engine's own layout, checked before anything is printed or repaired
            check_checkpoint(config.engine, meta, config)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise RunDirError(f"the checkpoint does not match this run ({type(e).__name__}: {e})") from None
    return done


def _say_fallback(console: Console, splits: Splits) -> None:
    if splits.info.fallback_reason:
        console.print(
            f"[bold yellow]note:[/] {splits.info.fallback_reason} "
            f"({splits.info.n_train:,} train / {splits.info.n_val:,} validation / {splits.info.n_test:,} test).",
            soft_wrap=True,
        )


class _Training(NamedTuple):
    """Everything one training of a sweep needs, new or resumed, named (it was 12 positional parameters)."""

    config: SweepConfig  # as training reads it (the run directory's copies of the inputs)
    splits: Splits
    engine: Engine
    record: LazyRecorder
    checkpoint: Checkpoint | None  # the engine's own checkpoint to continue from
    console: Console
    live: bool | None
    make_report: bool
    kernel_indices: list[int]  # which trainable variables are the regularized kernels kept in kernels.npz
    fingerprint: dict[str, Any]  # configuration, data and model file, checked on resume
    values: ValidationStore  # the per-example validation values gathered so far
    done: dict[int, int] | None = None  # on a resume, the epochs each arm has recorded (publishers continue after them)


def _train(t: _Training) -> RunRecord:
    """Train with the publishers open, and close them with the status run.json ends with."""
    config, splits, console, done, record = t.config, t.splits, t.console, t.done, t.record
    run_dir = record.run_dir
    status = "failed"
    publishers = make_publishers(config, run_dir, lambda line: console.print(line, highlight=False, markup=False,
                                                                             soft_wrap=True))

    def start_publishing() -> None:  # once the record is open: a resume that fails before it starts nothing
        publishers.start(SweepStart(run_dir, config, splits.info, arm_infos(config), done is not None, dict(done or {})))
        register_published(run_dir)

    record.on_open = start_publishing
    try:
        return _train_and_report(t, publishers)
    finally:  # whatever ended the run: the publishers close with the status run.json now says
        if record.recorder is not None:
            try:
                final = str(read_run_meta(run_dir).get("status"))
            except (RunDirError, OSError):
                final = status
            publishers.finish(run_dir, final)
            try:
                register_published(run_dir)
            except OSError:
                pass


def _train_and_report(t: _Training, publishers: Publishers) -> RunRecord:
    config, splits, engine, record, checkpoint, values, kernel_indices = (t.config, t.splits, t.engine, t.record,
                                                                          t.checkpoint, t.values, t.kernel_indices)
    run_dir = record.run_dir
    status = "failed"
    stop = _StopFlag()
    try:
        with stop, ProgressDisplay(t.console, n_arms=len(config.arms()), epochs=config.epochs, live=t.live,
                             several_learning_rates=config.several_learning_rates) as display:
            listener = ListenerList([stop, RecordListener(record, t.fingerprint, values), display,
                                     PublishingListener(publishers, kernel_indices)])
            weights = engine(config, splits, listener) if checkpoint is None else engine(config, splits, listener, resume=checkpoint)
            recorder = record.open()
            write_kernels(run_dir, {arm: kernels_of(w.trainable, kernel_indices) for arm, w in weights.items()})
            arms = [ArmRecord.of(arm) for arm in recorder.meta["arms"]]  # the arms as run.json now records them
            diverged = [i for i, arm in enumerate(arms) if arm.status == "diverged"]
            write_validation(run_dir, values.values(diverged))
            # weights.npz last: above its size limit, it asks the analysis (which reads the files above) what to keep
            keep_weights(run_dir, weights, [arm.status for arm in arms], recommended_setting)
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
            f"{_stopped_by(stop.signum)}; finished epochs are kept in {run_dir / METRICS_CSV} ({RUN_JSON} says where "
            f"each arm stopped); `reglab run --resume {run_dir}` continues the run, `reglab report {run_dir}` draws what is done",
            signum=stop.signum,
        ) from None
    finally:
        if record.recorder is not None:  # a resume that failed before its engine started has written nothing
            try:
                record.recorder.finish(status)
            except OSError:  # the disk is still full: run.json keeps its last whole version ("running")
                pass
    remove_checkpoint(run_dir)  # a completed run is never resumed; its final kernels are in kernels.npz
    run = load_run(run_dir)
    if t.make_report:
        report_run(run)
    return run


def report_run(run: RunRecord, draw: bool = True) -> RunAnalysis:
    """Analyse a completed run, once, and write its figures and report from that analysis (unless not `draw`),
    which it returns (a caller that also prints the answer reads the same one). A signal stops the report at
    once: the run itself is complete and recorded."""
    with _StopFlag() as stop:
        stop.requested = True
        try:
            analysis = analyze(run)
            if draw:
                build_report(run, analysis)
            else:  # the record as a drawn report would leave it, less the report: no earlier one, the model kept
                with locked(run.run_dir):
                    remove_report(run.run_dir)
                    keep_recommended(run, analysis.recommended_setting)
        except KeyboardInterrupt:
            raise RunInterrupted(f"{_stopped_by(stop.signum)} while drawing the report; the run is complete and "
                                 f"recorded: `reglab report {run.run_dir}` draws it", signum=stop.signum) from None
        except OSError as e:  # a full disk while drawing: say which file, and that the record itself is whole
            raise RunFailed(_report_failed(e, run)) from None
    return analysis


def _report_failed(error: OSError, run: RunRecord) -> str:
    """The one line for a report that could not be written: the file, why, and whether the record is complete."""
    what = f"cannot write {error.filename or 'the report'} while drawing the report ({error.strerror or error})"
    if run.meta.get("status") != "completed":  # run.json could not be closed either (the disk was already full)
        return f"{what}; run.json does not record the end of the run in {run.run_dir}"
    room = " once the disk has room" if error.errno == ENOSPC else ""
    return f"{what}; the run is complete and recorded: `reglab report {run.run_dir}` draws it{room}"


def _stopped_by(signum: int | None) -> str:
    return "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
