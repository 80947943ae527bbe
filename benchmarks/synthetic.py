"""Synthetic run records: a complete, valid reglab run directory written from numbers, with no training.

    from synthetic import write_synthetic_run     # benchmarks/ on sys.path
    rng = np.random.default_rng(0)
    loss = rng.gamma(2.0, 0.15, size=(K, S, n))    # [strengths, seeds, examples], > 0
    correct = rng.random((K, S, n)) < 0.9
    write_synthetic_run(run_dir, lambdas=(0, 1e-4, 1e-3), seeds=S, epochs=10, val_loss=loss, val_correct=correct)
    analysis = reglab.analyze(reglab.load_run(run_dir))

For calibration benchmarks of reglab's public analysis (`load_run` → `analyze` → `.summary()`): the
per-example validation values are whatever the caller draws, so the truth behind them is known (a null
where every strength has the same distribution, an effect of a chosen size), and a record takes
milliseconds instead of a training run.

The record is written with reglab's own writers, so it stays in step with the format: `Recorder` makes
run.json (its metadata, arms and `versions`), config.toml and the manifest; `record_to_row` / `COLUMNS` /
`write_atomic` make metrics.csv; `ValidationStore` + `write_validation` make validation.npz (the same
masking of diverged arms a real run gets); `write_kernels` makes kernels.npz. Nothing else is written: no
checkpoint.npz (a completed run has none), no weights.npz, report or figures (a record without
weights.npz is one reglab reads; only `reglab.load_model` needs it).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from pathlib import Path
from typing import Collection, Mapping, Sequence, Union

import numpy as np

from reglab.config import SweepConfig
from reglab.data.splits import DataInfo
from reglab.fileio import write_atomic
from reglab.record.arrays import ValidationStore, write_kernels, write_validation
from reglab.record.rundir import check_run_dir, locked
from reglab.record.schema import COLUMNS, METRICS_CSV, EpochRecord, record_to_row
from reglab.record.writer import Recorder, utc_now

#: `diverged`: a collection of (k, s) arms (each diverges at DEFAULT_DIVERGE_EPOCH), or (k, s) → the epoch
#: (from 1) whose training loss was the first non-finite one.
Diverged = Union[Collection[tuple[int, int]], Mapping[tuple[int, int], int]]

SYNTHETIC_SOURCE = "synthetic per-example validation values (benchmarks/synthetic.py); no data, no training"
#: The kernel norm of a λ = 0 arm; an arm at λ has BASE_KERNEL_NORM / (1 + KERNEL_SHRINK · λ).
BASE_KERNEL_NORM = 5.0
KERNEL_SHRINK = 100.0


def default_diverge_epoch(epochs: int) -> int:
    """Where an arm given in a plain set of `diverged` arms diverges: the middle epoch (1 for a 1-epoch run)."""
    return max(1, (epochs + 1) // 2)


def write_synthetic_run(
    run_dir: str | Path,
    *,
    lambdas: Sequence[float],
    seeds: int,
    epochs: int,
    val_loss: np.ndarray | None = None,
    val_correct: np.ndarray,
    loss_by_epoch: np.ndarray | None = None,
    val_accuracy_by_epoch: np.ndarray | None = None,
    train_loss: np.ndarray | None = None,
    train_accuracy: np.ndarray | None = None,
    test_data_loss: np.ndarray | None = None,
    test_accuracy: np.ndarray | None = None,
    kernel_norm: np.ndarray | None = None,
    diverged: Diverged = frozenset(),
    n_train: int = 1000,
    n_test: int = 1000,
    dataset: str = "mnist-5k",
    input_shape: tuple[int, ...] = (28, 28),
    classes: Sequence[str] = tuple(str(i) for i in range(10)),
    kernel_columns: int = 4,
    seed: int = 0,
    batch_size: int = 32,
) -> Path:
    """Write a complete, completed reglab run record in `run_dir` (new, or an empty folder) from synthetic
    per-example validation values, and return its path. Nothing is trained; the sweep is one L2 family at
    Adam's default learning rate. K = len(lambdas), S = seeds, E = epochs, n = validation examples.

    Arms are numbered as reglab numbers them (`SweepConfig.arms()`: seeds outer, strengths inner), so
    array index [k, s] is arm `s * K + k`, with strength `lambdas[k]` (ascending, no repeats: reglab's
    order) and seed `seed + s`.

    Per-example validation values (validation.npz):
    - `val_loss`: float [K, S, n], each example's data loss (no penalty) at the last epoch, finite and ≥ 0.
      May be left out when `loss_by_epoch` is given (its last epoch is used); when both are given they must
      agree at the last epoch.
    - `val_correct`: bool [K, S, n], whether each example is classified right at the last epoch.
    - `loss_by_epoch`: float [K, S, E, n], optional: every epoch's per-example losses. Without it the record
      has none (`ValidationValues.loss_by_epoch` is None, as in a run too large to keep them) and every
      epoch's `val_data_loss` in metrics.csv is the final one (a flat validation curve: the diagnosis then
      sees no rise and no recent fall). Left out, as reglab leaves it out, when K·S·E·n exceeds
      `reglab.record.reader.MAX_EPOCH_VALUES`.
    Values are stored as float32, like a real run's; everything derived from them uses the stored float32
    values.

    metrics.csv, one row per arm per epoch, like a real run's:
    - `val_data_loss`: the exact (float64) mean of that epoch's stored per-example losses (not rounded to
      float32 as Keras's metric is), so the analysis' per-strength means are the means of the values given.
    - `val_accuracy`: the mean of `val_correct` at the last epoch; at earlier epochs `val_accuracy_by_epoch`
      [K, S, E] when given (its last epoch is replaced by the mean of `val_correct`), else the final one.
    - `data_loss`, `accuracy` (training): `train_loss`, `train_accuracy`, each [K, S] (the same at every
      epoch) or [K, S, E]. Left out, every arm of a seed gets the same value at each epoch: the mean over
      strengths of that seed's validation data loss / accuracy at that epoch; so training metrics carry no
      signal about λ and no arm is diagnosed as underfitting by construction.
    - `kernel_norm`: `kernel_norm` [K, S] or [K, S, E], else BASE_KERNEL_NORM / (1 + KERNEL_SHRINK·λ) at every
      epoch (it shrinks with λ, the same for every seed); `penalty` = λ·norm² (L2); `loss` = `data_loss` +
      penalty, `val_loss` = `val_data_loss` + penalty, as Keras reports them.
    - `seconds`: 0.01.

    run.json's test metrics: `test_data_loss`, `test_accuracy` [K, S] when given, else the arm's final
    validation data loss and accuracy (a stand-in: the analysis quotes them but never chooses by them);
    test `loss` = test data loss + the final penalty.

    kernels.npz: each arm's kernel, float32 [prod(input_shape), kernel_columns], drawn from the seed
    (the same direction for every strength of a seed) and scaled to the arm's final kernel norm.

    `diverged` (arms as (k, s)): such an arm's training loss turned non-finite at an epoch (a mapping gives
    it, a plain collection means `default_diverge_epoch(E)`): its rows stop there, that last row has NaN
    losses, penalty and norm (accuracies 1/number of classes), its status is "diverged", its test losses
    NaN, and validation.npz marks it as having no values (its `loss_by_epoch` keeps the epochs before; the
    diverging epoch's are NaN), exactly as `ValidationStore.values(diverged)` does for a real run. Its
    entries in the value arrays are ignored except the earlier epochs of `loss_by_epoch`.

    `n_train`, `n_test`, `dataset`, `input_shape`, `classes` describe the (imaginary) data in run.json
    (`n_val` is n); `dataset` is also the configuration's; `seed` is the first seed; `batch_size` is recorded
    (the analysis uses it for steps per epoch only with several learning rates). Raises ValueError for
    arrays of the wrong shape or impossible values, and `reglab.RunDirError` for a folder that is not empty.
    """
    run_dir = Path(run_dir)
    config = SweepConfig(lambdas=tuple(float(x) for x in lambdas), seeds=seeds, seed=seed, epochs=epochs,
                         dataset=dataset, batch_size=batch_size)
    if config.lambdas != tuple(float(x) + 0.0 for x in lambdas):
        raise ValueError(f"lambdas must be ascending without repeats (reglab's order), got {list(lambdas)}")
    K, S, E = len(config.lambdas), seeds, epochs
    arms = config.arms()
    assert [(a.seed - seed, config.lambdas.index(a.strength)) for a in arms] == [(s, k) for s in range(S) for k in range(K)]

    # ---- the per-example values, checked
    if loss_by_epoch is not None:
        loss_by_epoch = _array(loss_by_epoch, "loss_by_epoch", np.float32, (K, S, E, None))
    if val_loss is None:
        if loss_by_epoch is None:
            raise ValueError("give val_loss, loss_by_epoch or both")
        val_loss = loss_by_epoch[:, :, -1, :]
    val_loss = _array(val_loss, "val_loss", np.float32, (K, S, None))
    n = val_loss.shape[2]
    correct = _array(val_correct, "val_correct", bool, (K, S, n))
    if loss_by_epoch is not None and loss_by_epoch.shape[3] != n:
        raise ValueError(f"loss_by_epoch has {loss_by_epoch.shape[3]} examples, val_loss {n}")
    gone = _diverged(diverged, K, S, E)  # (k, s) → epoch it diverged at
    live = np.ones((K, S), dtype=bool)
    for k, s in gone:
        live[k, s] = False
    _check_losses(val_loss[live], "val_loss")
    if loss_by_epoch is not None:
        _check_losses(loss_by_epoch[live], "loss_by_epoch")
        for (k, s), at in gone.items():
            _check_losses(loss_by_epoch[k, s, :at - 1], f"loss_by_epoch[{k}, {s}] before its diverging epoch")
        if not np.array_equal(loss_by_epoch[:, :, -1][live], val_loss[live]):
            raise ValueError("val_loss and the last epoch of loss_by_epoch differ")

    # ---- per arm and epoch: validation means
    final_mean = val_loss.mean(axis=2, dtype=np.float64)  # [K, S]
    final_acc = correct.mean(axis=2, dtype=np.float64)
    if loss_by_epoch is not None:
        val_by_epoch = loss_by_epoch.mean(axis=3, dtype=np.float64)  # [K, S, E]
        val_by_epoch[:, :, -1] = final_mean
    else:
        val_by_epoch = np.repeat(final_mean[:, :, None], E, axis=2)
    if val_accuracy_by_epoch is not None:
        acc_by_epoch = _array(val_accuracy_by_epoch, "val_accuracy_by_epoch", np.float64, (K, S, E)).copy()
        _check_fractions(acc_by_epoch[live], "val_accuracy_by_epoch")
    else:
        acc_by_epoch = np.empty((K, S, E))
    if val_accuracy_by_epoch is None:
        acc_by_epoch[...] = final_acc[:, :, None]
    acc_by_epoch[:, :, -1] = final_acc

    # ---- training metrics, kernel norms
    train_l = _per_epoch(train_loss, "train_loss", K, S, E)
    if train_l is None:
        train_l = _seed_mean(val_by_epoch, live)
    train_a = _per_epoch(train_accuracy, "train_accuracy", K, S, E)
    if train_a is None:
        train_a = _seed_mean(acc_by_epoch, live)
    _check_losses(train_l[live], "train_loss")
    _check_fractions(train_a[live], "train_accuracy")
    lam = np.asarray(config.lambdas, dtype=np.float64)
    norm = _per_epoch(kernel_norm, "kernel_norm", K, S, E)
    if norm is None:
        norm = np.broadcast_to((BASE_KERNEL_NORM / (1.0 + KERNEL_SHRINK * lam))[:, None, None], (K, S, E)).copy()
    _check_losses(norm[live], "kernel_norm")
    penalty = lam[:, None, None] * norm ** 2
    test_l = _array(test_data_loss, "test_data_loss", np.float64, (K, S)) if test_data_loss is not None else final_mean
    test_a = _array(test_accuracy, "test_accuracy", np.float64, (K, S)) if test_accuracy is not None else final_acc
    chance = 1.0 / len(classes)

    # ---- rows, in the order a run appends them: epoch by epoch, arms in order
    rows: list[EpochRecord] = []
    last_epoch = {}
    for e in range(1, E + 1):
        for arm in arms:
            s, k = divmod(arm.index, K)
            stop = gone.get((k, s))
            if stop is not None and e > stop:
                continue
            last_epoch[arm.index] = e
            i = e - 1
            if stop == e:  # the epoch whose loss was not finite
                rows.append(EpochRecord.of(arm, e, {"loss": math.nan, "accuracy": chance, "data_loss": math.nan},
                                           {"loss": math.nan, "accuracy": chance, "data_loss": math.nan},
                                           math.nan, math.nan, 0.01))
                continue
            p = float(penalty[k, s, i])
            rows.append(EpochRecord.of(
                arm, e,
                {"loss": float(train_l[k, s, i]) + p, "accuracy": float(train_a[k, s, i]), "data_loss": float(train_l[k, s, i])},
                {"loss": float(val_by_epoch[k, s, i]) + p, "accuracy": float(acc_by_epoch[k, s, i]),
                 "data_loss": float(val_by_epoch[k, s, i])},
                p, float(norm[k, s, i]), 0.01))

    # ---- validation.npz's values, through the store a real run fills
    store = ValidationStore(len(arms), E, n)
    by_arm = lambda a: a.transpose(1, 0, *range(2, a.ndim)).reshape(S * K, *a.shape[2:])  # noqa: E731  [K,S,…] → [arm,…]
    arm_final, arm_correct = by_arm(val_loss), by_arm(correct)
    arm_epochs = by_arm(loss_by_epoch) if loss_by_epoch is not None else None
    nan_row = np.full(n, np.nan, dtype=np.float32)
    for e in range(1, E + 1):
        index = [a for a in range(len(arms)) if last_epoch[a] >= e]
        if arm_epochs is None:
            index = [a for a in index if last_epoch[a] == e]  # only the values at each arm's last epoch are known
        if not index:
            continue
        losses = np.stack([nan_row if (a % K, a // K) in gone and gone[(a % K, a // K)] == e
                           else (arm_epochs[a, e - 1] if arm_epochs is not None and last_epoch[a] != e else arm_final[a])
                           for a in index])
        store.add(e, index, losses, arm_correct[index])
    diverged_arms = sorted(s * K + k for k, s in gone)
    values = store.values(diverged_arms)
    if arm_epochs is None:
        values = values._replace(loss_by_epoch=None)

    # ---- kernels: one direction per seed, scaled to each arm's final norm
    rows_k = int(np.prod(input_shape))
    kernels = {}
    for arm in arms:
        s, k = divmod(arm.index, K)
        if (k, s) in gone:
            kernels[arm.index] = np.full((rows_k, kernel_columns), np.nan, dtype=np.float32)
            continue
        direction = np.random.default_rng([seed + s, 7]).standard_normal((rows_k, kernel_columns))
        kernels[arm.index] = (direction * (norm[k, s, -1] / np.linalg.norm(direction))).astype(np.float32)

    # ---- the record
    data = DataInfo(
        name=dataset, requested=dataset, source=SYNTHETIC_SOURCE, split="synthetic", n_train=n_train, n_val=n,
        n_test=n_test, input_shape=tuple(input_shape), classes=tuple(classes),
        sha256=hashlib.sha256(f"synthetic {dataset} {n_train} {n} {n_test}".encode()).hexdigest(),
        scaling="none (synthetic)",
    )
    check_run_dir(run_dir, force=False)
    with locked(run_dir, create=True):
        recorder = Recorder(run_dir, config, data)
        recorder.meta["command"] = "benchmarks/synthetic.py write_synthetic_run"
        recorder.meta["model"] = {"name": "the study's network", "regularized": ["hidden/kernel"], "chosen_by_reglab": False}
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(COLUMNS)
        writer.writerows(record_to_row(r) for r in rows)
        write_atomic(run_dir / METRICS_CSV, buf.getvalue())  # whole, once: not a row at a time with an fsync each
        now = utc_now()
        for arm in arms:
            s, k = divmod(arm.index, K)
            broke = (k, s) in gone
            p = math.nan if broke else float(penalty[k, s, -1])
            t_loss = math.nan if broke else float(test_l[k, s])
            recorder.meta["arms"][arm.index].update(
                status="diverged" if broke else "completed", epochs_done=last_epoch[arm.index],
                test={"loss": t_loss + p, "accuracy": chance if broke else float(test_a[k, s]), "data_loss": t_loss},
                started_at=now, ended_at=now)
        write_kernels(run_dir, kernels)
        write_validation(run_dir, values)
        recorder.finish("completed")
    return run_dir


# ---------------------------------------------------------------- checks and shapes

def _array(a: np.ndarray, name: str, dtype: type, shape: tuple[int | None, ...]) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != len(shape) or any(want is not None and got != want for got, want in zip(a.shape, shape)):
        raise ValueError(f"{name} is {a.shape}, expected {tuple('n' if w is None else w for w in shape)}")
    if dtype is bool and a.dtype != bool:
        raise ValueError(f"{name} must be bool, got {a.dtype}")
    return a.astype(dtype, copy=False)


def _check_losses(a: np.ndarray, name: str) -> None:
    if a.size and not (np.isfinite(a).all() and (a >= 0).all()):
        raise ValueError(f"{name} must be finite and ≥ 0 (outside diverged arms)")


def _check_fractions(a: np.ndarray, name: str) -> None:
    if a.size and not (np.isfinite(a).all() and (a >= 0).all() and (a <= 1).all()):
        raise ValueError(f"{name} must be between 0 and 1")


def _per_epoch(a: np.ndarray | None, name: str, K: int, S: int, E: int) -> np.ndarray | None:
    """[K, S] (the same every epoch) or [K, S, E], as float64 [K, S, E]; None stays None."""
    if a is None:
        return None
    a = np.asarray(a, dtype=np.float64)
    if a.shape == (K, S):
        return np.repeat(a[:, :, None], E, axis=2)
    if a.shape == (K, S, E):
        return a
    raise ValueError(f"{name} is {a.shape}, expected ({K}, {S}) or ({K}, {S}, {E})")


def _seed_mean(by_epoch: np.ndarray, live: np.ndarray) -> np.ndarray:
    """[K, S, E]: each seed's mean over its live strengths, the same for every strength of the seed."""
    w = live[:, :, None].astype(np.float64)
    total = (np.where(live[:, :, None], by_epoch, 0.0)).sum(axis=0)
    count = np.maximum(w.sum(axis=0), 1.0)
    return np.broadcast_to(total / count, by_epoch.shape).copy()


def _diverged(diverged: Diverged, K: int, S: int, E: int) -> dict[tuple[int, int], int]:
    out = dict(diverged) if isinstance(diverged, Mapping) else {tuple(a): default_diverge_epoch(E) for a in diverged}
    for (k, s), e in out.items():
        if not (0 <= k < K and 0 <= s < S) or not (isinstance(e, (int, np.integer)) and 1 <= e <= E):
            raise ValueError(f"diverged arm {(k, s)} at epoch {e!r} is outside {K} strengths × {S} seeds × {E} epochs")
    return {(int(k), int(s)): int(e) for (k, s), e in out.items()}


__all__ = ["write_synthetic_run", "default_diverge_epoch", "BASE_KERNEL_NORM", "KERNEL_SHRINK"]
