"""Sweeps that outgrow one process: the arm grid split into blocks, each block one task.

A block is a (seeds × λ) sub-grid trained by the fused engine, so every worker still trains many arms
at once. `train_blocks` has the engine signature (config, splits, listener, resume=None) and drives the
listener in this (the driver) process exactly as an engine does, so the run directory, progress,
checkpoints and `--resume` are the single-machine ones:

- `executor="blocks"` trains the blocks one after another in this process (the reference);
- `executor="ray"` runs each block as a Ray task (`ray` is the optional extra `reglab[ray]`). Workers
  stream each epoch's records and checkpoint to a small coordinator actor; the driver drains it and
  records. A worker that dies is retried by Ray (`max_retries`) and the retried task resumes its block
  from the last checkpoint the coordinator holds: no epoch is lost or recorded twice.

Arms of one block share a packed model, so the same split into blocks gives the same numbers as the
reference; another split can move results at float-rounding level (the packed matrix products sum in
a width-dependent order).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from reglab.config import Arm, SweepConfig
from reglab.data.splits import Splits
from reglab.engines import Listener, clipped_batch, get_engine, steps_per_epoch
from reglab.errors import ConfigError, RunDirError
from reglab.model.keras_import import import_keras_for_a_run
from reglab.record.arrays import FinalWeights
from reglab.record.checkpoint import Checkpoint
from reglab.record.schema import EpochRecord
from reglab.settings import DEFAULT_LEARNING_RATE, Setting

EXECUTORS = ("local", "blocks", "ray")

#: The driver rewrites the run's combined checkpoint (all blocks) at most this often.
CHECKPOINT_SECONDS = 5.0


class Block(NamedTuple):
    index: int  # type: ignore[assignment]  # the field shadows tuple.index on purpose: block.index is the block's number
    seeds: tuple[int, ...]  # contiguous seed values
    settings: tuple[Setting, ...]  # each of a seed's arms in the block, in sweep order


def _ranges(n: int, parts: int) -> list[tuple[int, int]]:
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def make_blocks(config: SweepConfig, n_blocks: int) -> list[Block]:
    """About `n_blocks` blocks: whole seeds when there are enough, else each seed's settings in chunks; a
    chunk never spans two learning rates (a block is a sweep of its own: one learning rate, its families'
    strengths), so there may be a few more blocks than asked for."""
    seeds, settings = config.seed_values, tuple(config.settings())
    n = max(1, min(n_blocks, len(seeds) * len(settings)))
    if n <= len(seeds):
        parts = [(seeds[a:b], settings) for a, b in _ranges(len(seeds), n)]
    else:
        per_seed = -(-n // len(seeds))
        chunks = [settings[a:b] for a, b in _ranges(len(settings), per_seed)]
        chunks = [piece for chunk in chunks for piece in _by_learning_rate(chunk)]
        parts = [((s,), chunk) for s in seeds for chunk in chunks]
    return [Block(i, tuple(s), tuple(l)) for i, (s, l) in enumerate(parts)]


def _by_learning_rate(chunk: tuple[Setting, ...]) -> list[tuple[Setting, ...]]:
    """A contiguous chunk of settings cut where the learning rate changes."""
    pieces: list[list[Setting]] = []
    for s in chunk:
        if not pieces or pieces[-1][-1].learning_rate != s.learning_rate:
            pieces.append([])
        pieces[-1].append(s)
    return [tuple(p) for p in pieces]


def block_config(config: SweepConfig, block: Block) -> SweepConfig:
    """The sweep of one block: its seeds, and its settings as regularizers with their own strength grids (a
    contiguous chunk of the sweep's settings, so the block's arms come in the sweep's order)."""
    seeds = {"seeds": len(block.seeds), "seed": block.seeds[0], "engine": "fused"}
    if list(block.settings) == config.settings():  # whole seeds
        return config.replace(**seeds)
    families = list(dict.fromkeys(s.family for s in block.settings))
    grids = {f: [s.strength for s in block.settings if s.family == f] for f in families}
    return config.replace(regularizers=families, strengths=grids, lambdas=grids[families[0]],
                          learning_rates=[block.settings[0].learning_rate], **seeds)


def global_arm(config: SweepConfig, block: Block, local: int) -> int:
    """The sweep's arm index of a block's arm `local` (arms are seeds outer, settings inner in both)."""
    si, li = divmod(local, len(block.settings))
    settings = config.settings()
    return config.seed_values.index(block.seeds[si]) * len(settings) + settings.index(block.settings[li])


class FinishedArm(NamedTuple):
    """An arm's end as a block reports it (its block-local index)."""

    arm: int
    status: str
    test: dict[str, float]


class BlockValues(NamedTuple):
    """`Listener.validation_values`' arguments, with block-local arm indices."""

    epoch: int
    arms: list[int]
    loss: np.ndarray
    correct: np.ndarray


class StrategyChosen(NamedTuple):
    """The fused strategy a block's engine chose."""

    name: str


class EpochsReported(NamedTuple):
    """A block's records and values since its last checkpoint, with that checkpoint: they travel together, so
    the driver never holds rows that no checkpoint covers from a block that then dies."""

    records: list[EpochRecord]
    checkpoint: Checkpoint
    values: list[BlockValues]


class BlockDone(NamedTuple):
    """A block's end: how each arm finished and its final weights (block-local arm → `FinalWeights`)."""

    finished: list[FinishedArm]
    weights: dict[int, FinalWeights]


#: What a block sends the driver (through the Ray coordinator, or directly for local blocks).
BlockEvent = StrategyChosen | EpochsReported | BlockDone


class _BlockEvents(Listener):
    """The listener inside a block's training: buffers what the engine reports and hands it on at each
    checkpoint (records and the checkpoint that covers them travel together) and at the end."""

    def __init__(self, send: Callable[[BlockEvent], None], stop: Callable[[], None] | None = None) -> None:
        self.send, self.stop = send, stop
        self.records: list[EpochRecord] = []
        self.values: list[BlockValues] = []
        self.finished: list[FinishedArm] = []

    def strategy_chosen(self, name: str) -> None:
        self.send(StrategyChosen(name))

    def batches_done(self, arms: list[Arm], epoch: int, step: int) -> None:
        if self.stop is not None:
            self.stop()

    def epoch_done(self, record: EpochRecord) -> None:
        self.records.append(record)

    def arm_finished(self, arm: Arm, status: str, test: dict[str, float]) -> None:
        self.finished.append(FinishedArm(arm.index, status, test))

    def validation_values(self, epoch: int, arms: list[int], loss: np.ndarray, correct: np.ndarray) -> None:
        self.values.append(BlockValues(epoch, list(arms), loss, correct))

    def checkpoint(self, arrays: dict[str, Any], meta: dict[str, Any]) -> None:
        records, self.records = self.records, []
        values, self.values = self.values, []
        self.send(EpochsReported(records, Checkpoint(arrays, meta), values))


def run_block(config: SweepConfig, splits: Splits, block: Block, resume: Checkpoint | None,
              send: Callable[[BlockEvent], None], stop: Callable[[], None] | None = None) -> None:
    """Train one block with the fused engine; `send` gets an `EpochsReported` after each epoch and a
    `BlockDone` at the end, in block-local arm indices."""

    events = _BlockEvents(send, stop)
    weights = get_engine("fused")(block_config(config, block), splits, events, resume=resume)
    send(BlockDone(events.finished, dict(weights)))


# ---------------------------------------------------------------- the driver side

class _Driver:
    """Turns block events into the sweep's listener calls, with global arm indices, and keeps every
    block's latest checkpoint for the run's combined one."""

    def __init__(self, config: SweepConfig, blocks: list[Block], listener: Listener, resume: Checkpoint | None) -> None:
        self.config, self.blocks, self.listener = config, blocks, listener
        self.block_ckpt: dict[int, Checkpoint] = {}
        self.done: dict[int, BlockDone] = {}
        self.latest: dict[int, EpochRecord] = {}  # global arm → its latest record
        self.saved_at = -float("inf")
        self.strategies: list[str] = []  # each block's fused strategy, in the order first said
        if resume is not None:
            self.block_ckpt = split_checkpoint(resume, blocks)

    def handle(self, index: int, event: BlockEvent) -> None:
        block = self.blocks[index]
        if isinstance(event, EpochsReported):
            for r in event.records:
                g = global_arm(self.config, block, r.arm)
                self.listener.epoch_done(dataclasses.replace(r, arm=g))
                self.latest[g] = r
            if self.listener.wants_values:  # before the checkpoint that covers them, as an engine sends them
                for v in event.values:
                    self.listener.validation_values(v.epoch, [global_arm(self.config, block, a) for a in v.arms], v.loss, v.correct)
            self.block_ckpt[index] = event.checkpoint
            self.save_checkpoint(force=False)
            if event.records:
                self.listener.note(self.summary(index))
        elif isinstance(event, StrategyChosen):
            self.strategy_said(event.name)
        else:
            self.done[index] = event

    def strategy_said(self, name: str) -> None:
        """Blocks on one kind of machine choose alike; Ray workers on different hardware may not, and
        the record then names each strategy used (e.g. "vmap, per-arm-chunks")."""
        if name in self.strategies:
            return
        self.strategies.append(name)
        self.listener.strategy_chosen(", ".join(self.strategies))

    def summary(self, index: int) -> str:
        """Progress of the whole sweep, and the best λ so far by validation data loss (latest epochs)."""
        total = len(self.config.arms()) * self.config.epochs
        done = sum(r.epoch for r in self.latest.values())
        by_lam: dict[float, list[float]] = {}
        for r in self.latest.values():
            if r.val_data_loss == r.val_data_loss:  # not NaN
                by_lam.setdefault(r.strength, []).append(r.val_data_loss)
        text = f"block {index + 1}/{len(self.blocks)} reported; {done}/{total} arm-epochs done"
        if by_lam:
            lam, losses = min(by_lam.items(), key=lambda kv: sum(kv[1]) / len(kv[1]))
            text += f"; best λ so far {lam:g} (val data loss {sum(losses) / len(losses):.4f} over {len(losses)} arm(s))"
        return text

    def save_checkpoint(self, force: bool) -> None:
        """The run's combined checkpoint holds every block, so it is rewritten at most every
        CHECKPOINT_SECONDS (and at the end): a driver that dies loses at most that much training, and the
        rows recorded after it are dropped and trained again on resume, giving the same numbers."""
        now = time.monotonic()
        if force or now - self.saved_at >= CHECKPOINT_SECONDS:
            self.listener.checkpoint(*combine_checkpoints(self.config, self.blocks, self.block_ckpt))
            self.saved_at = now

    def finish(self) -> dict[int, FinalWeights]:
        self.save_checkpoint(force=True)  # before any arm is marked finished
        weights = {}
        arms = self.config.arms()
        for index, done in sorted(self.done.items()):
            block = self.blocks[index]
            for arm in done.finished:
                self.listener.arm_finished(arms[global_arm(self.config, block, arm.arm)], arm.status, arm.test)
            for local, w in done.weights.items():
                weights[global_arm(self.config, block, local)] = w
        return weights


def combine_checkpoints(config: SweepConfig, blocks: list[Block], per_block: dict[int, Checkpoint]) -> Checkpoint:
    """One checkpoint for the run: every block's arrays under `b<i>:`, its meta under `blocks`, and the
    sweep's `epochs_done` in global arm indices (what `--resume` keeps of metrics.csv)."""
    arrays: dict[str, Any] = {}
    metas: dict[str, Any] = {}
    epochs_done: dict[str, int] = {}
    for i, (a, m) in per_block.items():
        arrays.update({f"b{i}:{k}": v for k, v in a.items()})
        metas[str(i)] = m
        for local, e in m["epochs_done"].items():
            epochs_done[str(global_arm(config, blocks[i], int(local)))] = int(e)
    meta = {"engine": config.engine, "executor": "blocks", "epochs_done": epochs_done, "blocks": metas,
            "block_layout": _layout(blocks)}
    return Checkpoint(arrays, meta)


def _layout(blocks: list[Block]) -> list[list[Any]]:
    """How the arms were split, as checkpoint metadata keeps it (JSON: lists, not tuples)."""
    return [[list(b.seeds), [[s.family, s.strength, s.learning_rate] for s in b.settings]] for b in blocks]


def blocks_of(layout: list[list[Any]]) -> list[Block]:
    """`_layout`'s blocks back (a layout from before learning rates were swept: Adam's default)."""
    return [Block(i, tuple(int(s) for s in seeds), tuple(Setting(str(f), float(x), float(lr[0]) if lr else DEFAULT_LEARNING_RATE)
                                                          for f, x, *lr in settings))
            for i, (seeds, settings) in enumerate(layout)]


def split_checkpoint(resume: Checkpoint, blocks: list[Block]) -> dict[int, Checkpoint]:
    arrays, meta = resume
    try:
        if meta.get("executor") != "blocks" or blocks_of(meta.get("block_layout") or []) != blocks:
            raise ValueError("it was written for another split of the arms into blocks")
        out = {}
        for i, m in meta["blocks"].items():
            prefix = f"b{int(i)}:"
            out[int(i)] = Checkpoint({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}, m)
        return out
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise RunDirError(f"the checkpoint does not match this run ({e})") from None


def default_blocks(executor: str) -> int:
    if executor == "ray":
        import ray

        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    return 2


def train_blocks(config: SweepConfig, splits: Splits, listener: Listener, resume: Checkpoint | None = None, *, executor: str = "blocks",
                 n_blocks: int | None = None, address: str | None = None, blocks: list[Block] | None = None) -> dict:
    """Engine-shaped: train the sweep as blocks, reporting to `listener` in global arm indices."""
    if config.engine != "fused":
        raise ConfigError("blocks and Ray run the fused engine; use --engine fused")
    steps = steps_per_epoch(len(splits.x_train), clipped_batch(config.batch_size, len(splits.x_train)))
    if executor == "ray":
        ray = _ray(address)
    if blocks is None:
        if resume is not None and resume.meta.get("block_layout"):
            blocks = blocks_of(resume.meta["block_layout"])
        else:
            blocks = make_blocks(config, n_blocks or default_blocks(executor))
    driver = _Driver(config, blocks, listener, resume)
    listener.arms_started(config.arms(), steps)
    if executor == "ray":
        _run_on_ray(ray, config, splits, blocks, driver, listener)
    else:
        for block in blocks:
            run_block(config, splits, block, driver.block_ckpt.get(block.index),
                      functools.partial(driver.handle, block.index),
                      stop=lambda: listener.batches_done(config.arms(), 0, 0))
    return driver.finish()


# ---------------------------------------------------------------- Ray

def _ray(address: str | None) -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'reglab[ray]'") from None
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            kwargs["address"] = address
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot connect to the Ray cluster at {address or 'a new local instance'}: {e}") from None
    return ray


def _run_on_ray(ray: Any, config: SweepConfig, splits: Splits, blocks: list[Block], driver: _Driver, listener: Listener) -> None:
    coordinator = _coordinator_class().remote({i: c for i, c in driver.block_ckpt.items()})
    splits_ref = ray.put(splits)
    gpus = ray.cluster_resources().get("GPU", 0)
    task = ray.remote(_ray_block).options(num_cpus=1, num_gpus=1 if gpus >= len(blocks) else 0, max_retries=3,
                                          retry_exceptions=False)
    refs = [task.remote(config.to_dict(), splits_ref, block, coordinator) for block in blocks]
    pending = list(refs)
    try:
        while True:
            for index, event in ray.get(coordinator.drain.remote()):
                driver.handle(index, event)
            listener.batches_done(config.arms(), 0, 0)  # Ctrl-C lands here
            if not pending:
                break
            done, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
            ray.get(done)  # a task that failed for good raises here
        for index, event in ray.get(coordinator.drain.remote()):
            driver.handle(index, event)
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise


def _ray_block(config_dict: dict, splits: Splits, block: Block, coordinator: Any) -> None:
    """One block on a Ray worker: resume from the coordinator's latest checkpoint of this block, if any."""
    import ray

    import_keras_for_a_run()  # a worker process starts as a `reglab run` does

    config = SweepConfig.from_mapping(config_dict)
    ray.get(coordinator.started.remote(block.index, os.getpid()))
    resume = ray.get(coordinator.checkpoint_of.remote(block.index))
    run_block(config, splits, block, resume, lambda event: ray.get(coordinator.put.remote(block.index, event)))


@functools.cache
def _coordinator_class() -> Any:
    """The Ray actor class of a run's coordinator: made on first use (Ray is imported only for
    `--executor ray`), then cached, so every run of this process uses the one class Ray registered."""
    import ray

    class Coordinator:
        """Holds each block's latest checkpoint (for retried tasks) and the events the driver has not read."""

        def __init__(self, checkpoints: dict) -> None:
            self.checkpoints = dict(checkpoints)
            self.events: list = []
            self.pids: dict[int, list[int]] = {}

        def started(self, index: int, pid: int) -> None:
            self.pids.setdefault(index, []).append(pid)

        def worker_pids(self) -> dict[int, list[int]]:
            return self.pids

        def checkpoint_of(self, index: int) -> Any:
            return self.checkpoints.get(index)

        def put(self, index: int, event: BlockEvent) -> None:
            if isinstance(event, EpochsReported):
                self.checkpoints[index] = event.checkpoint
            self.events.append((index, event))

        def drain(self) -> list:
            out, self.events = self.events, []
            return out

    return ray.remote(num_cpus=0)(Coordinator)


def cluster_shape() -> dict[str, Any]:
    """What run.json says about the Ray cluster: nodes alive, CPUs, GPUs."""
    import ray

    res = ray.cluster_resources()
    return {"nodes": sum(1 for n in ray.nodes() if n.get("Alive")), "CPU": res.get("CPU", 0), "GPU": res.get("GPU", 0)}

