"""The run record on disk: RUN_DIR/run.json, config.toml and metrics.csv, written safely and read back.

`metrics.csv` is tidy (one row per arm × epoch) and appended as each epoch ends, flushed and fsynced,
so a run stopped half-way keeps every finished epoch. `run.json` is replaced atomically (temporary
file, then rename): a reader sees the old version or the new one, never half of one.

Loss columns, since Keras mixes two things under one name:
- `loss`, `val_loss`: exactly Keras's History values. Keras 3 adds the L2 penalty λ·ΣW² to both.
- `data_loss`, `val_data_loss`: the cross-entropy alone (no penalty), computed the way Keras computes
  `loss` (train: batch-size-weighted running mean over the epoch; validation: end-of-epoch weights).
- `penalty`: λ·ΣW² of the regularized kernel at the end of the epoch, as Keras computes it (float32),
  so `val_loss ≈ val_data_loss + penalty`.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from reglab.config import SweepConfig
from reglab.data.splits import DataInfo
from reglab.errors import RunDirError
from reglab.record.arrays import ValidationStore, ValidationValues, read_kernels, read_validation
from reglab.record.checkpoint import CHECKPOINT_NPZ, read_checkpoint
from reglab.record.checks import MAX_EPOCH_VALUES, check_rows, check_rows_against_meta
from reglab.record.schema import COLUMNS, METRICS_CSV, RUN_JSON, ArmRecord, EpochRecord, read_metrics, read_run_meta
from reglab.record.writer import Recorder
from reglab.rendering import render

if TYPE_CHECKING:
    pass


# ---------------------------------------------------------------- final weights


# ---------------------------------------------------------------- per-example validation values


def checkpoint_validation(run_dir: Path, meta: dict[str, Any], rows: Sequence[EpochRecord]) -> ValidationValues | None:
    """The per-example validation values an unfinished run's checkpoint holds (validation.npz is written when it
    completes), for each arm whose last row in metrics.csv is the checkpoint's last epoch (others: no values);
    None without a checkpoint or values in it. Read bounded; a damaged one gets one line naming it."""
    checkpoint = read_checkpoint(run_dir, meta, only=ValidationStore.PREFIX)
    if checkpoint is None:
        return None
    stored = ValidationStore.split_checkpoint(checkpoint.arrays)[0]
    if not stored:
        return None
    config = SweepConfig.from_mapping(meta["config"], where=str(run_dir / RUN_JSON))
    n_arms, n_val = len(meta["arms"]), int(meta["data"]["n_val"])
    try:
        done = {int(a): int(e) for a, e in checkpoint.meta["epochs_done"].items()}
        store = ValidationStore.restore(stored, n_arms, config.epochs, n_val, done)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise RunDirError(f"{run_dir / CHECKPOINT_NPZ}: its validation values do not match this run ({e})") from None
    last = {r.arm: r.epoch for r in rows}
    newer = [a for a in range(n_arms) if int(store.last_epoch[a]) != last.get(a, 0)]  # rows the checkpoint missed
    return store.values([i for i, a in enumerate(meta["arms"]) if a.get("status") == "diverged"] + newer)


# ---------------------------------------------------------------- reading a run back

@dataclass(frozen=True)
class RunRecord:
    """A finished (or stopped) run, as read from its directory: all that figures and reports need."""

    run_dir: Path
    config: SweepConfig
    data: DataInfo
    meta: dict[str, Any]
    epochs: tuple[EpochRecord, ...]

    @property
    def arms(self) -> list[dict[str, Any]]:
        """run.json's arms as it holds them (dicts), for code that writes or checks run.json; readers use `arm_records`."""
        return self.meta["arms"]

    @functools.cached_property
    def arm_records(self) -> tuple[ArmRecord, ...]:
        """Every arm, typed (`ArmRecord`), read once from run.json's arms; `arm_records[i].index == i`."""
        return tuple(ArmRecord.of(a) for a in self.arms)

    def history(self, arm: int) -> dict[str, list[float]]:
        """Like Keras's `History.history`: metric name → list over epochs, for one arm."""
        rows = [r for r in self.epochs if r.arm == arm]
        names = [f.name for f in fields(EpochRecord) if f.name not in ("arm", "strength", "seed", "epoch")]
        return {n: [getattr(r, n) for r in rows] for n in names}

    def kernels(self) -> dict[int, Any]:
        """arm index → the arm's final regularized kernel (see `write_kernels`)."""
        return read_kernels(self.run_dir, self.meta)

    def validation(self) -> ValidationValues | None:
        """Every arm's per-example validation values (see `ValidationValues`); None for a record without them.
        An unfinished run's are in its checkpoint until it completes: they are read from there."""
        values = read_validation(self.run_dir, self.meta)
        if values is None and self.meta.get("status") != "completed":
            values = checkpoint_validation(self.run_dir, self.meta, self.epochs)
        return values

    def _repr_html_(self) -> str:
        """In Jupyter: the answer block and the key figure of the run's analysis (see `notebook`)."""
        return render("record_html", self)

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.epochs]).rename(columns={"strength": "lambda"})


def load_run(run_dir: str | Path) -> RunRecord:
    """Read RUN_DIR back; a directory that is not a readable reglab run gets a `RunDirError`."""
    run_dir = Path(run_dir)
    meta = read_run_meta(run_dir)  # refuses an adaptive sweep's folder in one line
    config = SweepConfig.from_mapping(meta["config"], where=str(run_dir / RUN_JSON))
    data = DataInfo.from_dict(meta["data"])
    epochs = tuple(read_metrics(run_dir / METRICS_CSV, n_arms=len(meta["arms"]), epochs=config.epochs))
    check_rows(epochs, config, run_dir / METRICS_CSV)
    check_rows_against_meta(epochs, meta, run_dir / METRICS_CSV)
    return RunRecord(run_dir=run_dir, config=config, data=data, meta=meta, epochs=epochs)


__all__ = [
    "COLUMNS", "MAX_EPOCH_VALUES", "EpochRecord", "Recorder", "RunRecord", "ValidationValues", "load_run", "read_validation",
]
