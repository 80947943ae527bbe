"""Publishing a sweep where users already look (TensorBoard, MLflow): one interface, fed live by a run or
replayed from a finished record (`reglab export`).

reglab's own record stays the source of truth. A publisher only ever receives what the record holds,
in the order the record gets it: the sweep's start (config, data, arms), each epoch's row as it is
appended to metrics.csv, each arm's end (status and test metrics), and the run's end (its directory,
with report.html and figures when drawn). `replay` feeds a finished or stopped record through the same
calls, so a live run and an export of it publish the same things.

A publisher must tolerate a resumed run: `start(..., resumed=True)` is called again with the rows
already published (`done`), and it must continue the same TensorBoard runs / MLflow runs without
writing any (arm, epoch) twice.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reglab.config import SweepConfig
from reglab.errors import ConfigError
from reglab.record.rundir import register
from reglab.tracking.base import Publisher, Publishers
from reglab.tracking.mlflow import MlflowPublisher, TrackingError, check_store
from reglab.tracking.tensorboard import TensorBoardPublisher

#: What a missing extra says (one line), by log kind.
EXTRA_HINTS = {"tensorboard": "TensorBoard logging needs the tensorboard extra: pip install 'reglab[tensorboard]'",
               "mlflow": "MLflow logging needs the mlflow extra: pip install 'reglab[mlflow]'"}


#: MLflow publishers whose store `check_extras` reached, by --log spec, for the `make_publishers` that follows.
#: Values are MlflowPublishers; typed so, mypy rejects `_CHECKED.pop(spec, None) or …` in `make_publishers`.
_CHECKED: dict[str, Any] = {}


def check_extras(config: SweepConfig) -> None:
    """Refuse, before anything is written or trained, a --log target whose library is not installed, or an
    MLflow store that does not answer (or cannot be written) within its time budget: one line, at most the
    budget later, instead of a run that stalls on it."""
    for target in config.log_targets:
        if importlib.util.find_spec(target.kind) is None:
            raise ConfigError(EXTRA_HINTS[target.kind])
    for target in config.log_targets:
        if target.kind == "mlflow":
            _CHECKED[target.spec] = _checked_mlflow(target.where)


def _checked_mlflow(where: str) -> MlflowPublisher:
    """An MLflow publisher whose store answered; its failure as one ConfigError line naming the --log flag."""
    try:
        return check_store(where or None)
    except TrackingError as e:
        raise ConfigError(f"--log mlflow: {e}; nothing was trained") from None


def register_published(run_dir: Path) -> None:
    """List the TensorBoard files written inside the run directory in its manifest, so that `--force` can
    remove them (and only them); files written elsewhere are the user's."""
    folder = Path(run_dir) / TENSORBOARD_DIR
    if folder.is_dir() and not folder.is_symlink():
        register(run_dir, sorted(str(f.relative_to(run_dir)) for f in folder.rglob("events.out.tfevents.*")
                                 if f.is_file() and not f.is_symlink()))


def make_publishers(config: SweepConfig, run_dir: Path, warn: Callable[[str], None]) -> Publishers:
    """The publishers `config.log` asks for (TensorBoard's default folder: RUN_DIR/tensorboard).

    An MLflow store that `check_extras` reached just before (a new run, whose record is already open) is used
    as is; one it did not (a resume, which has written nothing yet) is checked here, and refused in one line
    when it does not answer. Any other publisher that cannot be opened costs one warning line, like a later
    failure; a missing library is refused earlier, by `check_extras`."""
    mlflow = {t.spec: _CHECKED.pop(t.spec, None) or _checked_mlflow(t.where)  # before any other is opened
              for t in config.log_targets if t.kind == "mlflow"}
    out: list[Publisher] = []
    for target in config.log_targets:
        try:
            if target.kind == "tensorboard":
                folder = Path(target.where) if target.where else Path(run_dir) / TENSORBOARD_DIR
                out.append(TensorBoardPublisher(folder))
            else:
                out.append(mlflow[target.spec])
        except Exception as e:  # noqa: BLE001 - whatever the library raises: said once, the run goes on
            text = " ".join(str(e).split())[:200] or type(e).__name__
            warn(f"warning: {target.kind} logging could not start ({type(e).__name__}: {text}); reglab's own record is unaffected")
    return Publishers(out, warn)


#: TensorBoard's default folder inside the run directory.
TENSORBOARD_DIR = "tensorboard"
