"""Models kept: every finished arm's final weights, the recommended model as a standard Keras file, and
`load_model` to get any arm's model back, compiled.

- **RUN_DIR/weights.npz** (`record.WEIGHTS_NPZ`), written when the run completes, before the report: one
  file for the whole sweep holding each kept arm's trainable and non-trainable variables as trained
  (float32; in `model.trainable_variables` / `model.non_trainable_variables` order). An arm's model is
  `models.build_model` for its setting plus these values.
  **Which arms, for large sweeps:** every finished arm while their weights together take at most
  `MAX_WEIGHTS_BYTES` (256 MiB: about 650 arms of the study's network, 101,770 parameters each); above
  that, only the arms of the recommended setting (each seed), as the analysis picks it when the run
  completes. A diverged arm (loss no longer finite) is never kept: it has no model worth loading.
- **RUN_DIR/recommended.keras** (`RECOMMENDED_KERAS`), written with the report: the recommended setting's
  model at the run's first seed (the first seed kept, should that arm be missing), saved by Keras's own
  `model.save`, so plain `keras.models.load_model` reads it. Its zip comment names the arm it holds; the
  report writes it again only when it is missing or holds another arm, so `reglab report` on a run whose
  file is up to date never imports Keras. A user's model is rebuilt for it only by the process that trained
  the run: reading or reporting a record never runs the model file it names (run.json, and the checksum
  beside the name, can be edited); `load_model` does, and says so.
- `load_arm_model(run, setting, seed=None)` (`reglab.load_model` with the recommended setting by default): an
  arm's model built and compiled exactly as the arm was
  (family, strength, learning rate, optimizer, class count, the user's model file), with its kept weights:
  `model.evaluate` on the test set gives the arm's recorded test metrics.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from reglab.errors import ConfigError, ReglabError, RunDirError
from reglab.fileio import write_atomic
from reglab.inputs import MiB, open_regular, read_regular
from reglab.model.build import MAX_MODEL_BYTES, build_model
from reglab.record.arrays import FinalWeights, read_weights, weights_kept, write_weights
from reglab.record.reader import RunRecord, load_run
from reglab.record.rundir import register
from reglab.record.schema import WEIGHTS_NPZ
from reglab.settings import Setting

#: Above this total, weights.npz keeps only the recommended setting's arms (see the module's docstring).
MAX_WEIGHTS_BYTES = 256 * MiB

RECOMMENDED_KERAS = "recommended.keras"

#: How long a zip comment of recommended.keras may be and still be read as reglab's.
_MAX_COMMENT = 1024

#: Runs this process trained (it ran their model file already): only their report may build a user's model
#: again. Reading or reporting any other record never runs code it names (see `keep_recommended`).
#: Process state on purpose: "this process already ran that model file" is a fact about the process, not the
#: record (run.json can be edited, so the record cannot vouch for it), and it must hold for every way this
#: process reports the run afterwards: the report `reglab run` / `reglab.sweep` draws, and a later
#: `reglab.build_report(reglab.load_run(RUN_DIR))` in the same notebook, whose RunRecord is read fresh from
#: disk. Only `keep_weights` (a run that finished training here) adds to it; it grows by one path a run.
_TRAINED_HERE: set[Path] = set()


# ---------------------------------------------------------------- weights.npz, when the run completes

def keep_weights(run_dir: Path, weights: dict[int, FinalWeights], statuses: list[str],
                 recommended: Callable[[RunRecord], Setting | None]) -> list[int]:
    """Write RUN_DIR/weights.npz by the rule above; `statuses`: each arm's status in run.json (the arms'
    test metrics recorded); `recommended`: the run's recommended setting, asked only when a large sweep keeps
    that setting's arms alone. Returns the arm indices kept."""
    _TRAINED_HERE.add(Path(run_dir).resolve())
    keep = {i: w for i, w in weights.items() if statuses[i] != "diverged" and w.non_trainable is not None}
    if sum(w.nbytes() for w in keep.values()) > MAX_WEIGHTS_BYTES:
        run = load_run(run_dir)
        chosen = recommended(run)
        keep = {i: w for i, w in keep.items() if run.arm_records[i].setting == chosen}
    write_weights(run_dir, keep)
    return sorted(keep)


# ---------------------------------------------------------------- load_model

def _arm_of(run: RunRecord, setting: Setting, seed: int) -> int:
    """The arm index of (`setting`, `seed`), or a one-line error naming what the run has."""
    if not isinstance(setting, Setting):
        raise ConfigError(f"setting must be a reglab.Setting (family, strength, learning rate), got {type(setting).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {type(seed).__name__}")
    settings = list(dict.fromkeys(a.setting for a in run.arm_records))
    if setting not in settings:
        shown = ", ".join(s.label(with_learning_rate=run.config.several_learning_rates) for s in settings[:8])
        raise ConfigError(f"{_label(run, setting)} is not a setting of {run.run_dir} (it has {len(settings)}: {shown}"
                          + (", …" if len(settings) > 8 else "") + ")")
    if seed not in run.config.seed_values:
        raise ConfigError(f"seed {seed} is not a seed of {run.run_dir} (its seeds: "
                          + ", ".join(str(s) for s in run.config.seed_values) + ")")
    return next(a.index for a in run.arm_records if a.setting == setting and a.seed == seed)


def _label(run: RunRecord, setting: Setting) -> str:
    return setting.label(with_learning_rate=run.config.several_learning_rates or setting.learning_rate not in run.config.learning_rates)


def _why_not_kept(run: RunRecord, arm: int) -> str:
    record = run.arm_records[arm]
    status = record.status
    if status == "diverged":
        return f"it diverged (loss not finite at epoch {record.epochs_done}), so it has no model worth loading"
    if status not in ("completed", "stopped"):
        return f"it did not finish (status {status})"
    return (f"{WEIGHTS_NPZ} keeps only the recommended setting's arms when all of them would take more than "
            f"{MAX_WEIGHTS_BYTES // MiB} MiB")


def _check_model_file(run: RunRecord) -> None:
    """A user's model file edited since the run would get the arm's weights on another model: refused."""

    recorded = (run.meta.get("model") or {}).get("sha256")
    if not run.config.model or not recorded:
        return
    path = run.config.located(run.meta.get("paths"), run.run_dir, run.meta.get("inputs")).model.rpartition(":")[0]  # absolute: from any directory
    now = hashlib.sha256(read_regular(path, "model file", MAX_MODEL_BYTES)).hexdigest()
    if now != recorded:
        raise RunDirError(f"the model file {path} has changed since the run (sha256 {recorded[:12]}… then, {now[:12]}… now); "
                          "its weights belong to the model as it was")


def load_arm_model(run: RunRecord, setting: Setting, seed: int | None = None, say: bool = True) -> Any:
    """The model of one arm of `run`, compiled as the arm was, with the final weights kept in weights.npz (its
    trainable and non-trainable variables, exactly as trained); `seed`: one of the run's seeds (None: its
    first). Anything that cannot be loaded is one `ReglabError` line. A user's model is built by running its
    model file (the one run.json names, unchanged since the run); `say`: print a note on stderr first."""
    kept = weights_kept(run.run_dir, run.meta)
    if kept is None:
        why = ("it was recorded by a reglab that kept no weights" if run.meta.get("status") == "completed"
               else f"its weights are written when it completes, and its status is {run.meta.get('status')}")
        raise RunDirError(f"{run.run_dir} has no {WEIGHTS_NPZ}: {why}")
    seed = run.config.seed_values[0] if seed is None else seed
    arm = _arm_of(run, setting, seed)
    where = f"arm {arm} ({_label(run, setting)}, seed {seed})"
    if arm not in kept:
        raise RunDirError(f"{where} has no weights in {run.run_dir / WEIGHTS_NPZ}: {_why_not_kept(run, arm)}")
    weights = read_weights(run.run_dir, arm, run.meta)
    if weights is None:  # pragma: no cover - the file changed between the two reads
        raise RunDirError(f"{where} has no weights in {run.run_dir / WEIGHTS_NPZ}")
    _check_model_file(run)

    spec = run.config.located(run.meta.get("paths"), run.run_dir, run.meta.get("inputs")).model  # the model file run.json names absolutely
    if spec and say:
        print(f"reglab: running model file {spec.rpartition(':')[0]} to rebuild the model", file=sys.stderr)
    model = build_model(spec, tuple(run.data.input_shape), setting.strength, setting.family,
                        setting.learning_rate, run.config.optimizer, run.data.n_classes)
    assert weights.non_trainable is not None  # read_weights reads both parts (only an engine's may lack it)
    for what, variables, values in (("trainable", model.trainable_variables, weights.trainable),
                                    ("non-trainable", model.non_trainable_variables, weights.non_trainable)):
        if len(variables) != len(values):
            raise RunDirError(f"{run.run_dir / WEIGHTS_NPZ}: {where} has {len(values)} {what} arrays, its model "
                              f"{len(variables)}")
        for v, value in zip(variables, values):
            if tuple(v.shape) != tuple(value.shape):
                raise RunDirError(f"{run.run_dir / WEIGHTS_NPZ}: {where} has {value.shape} for {v.path}, its model "
                                  f"{tuple(v.shape)}")
            v.assign(value)
    # the optimizer's slots as `fit` would start them (the final optimizer state is not kept): a .keras file of
    # a model whose optimizer was never built does not load back in Keras
    model.optimizer.build(model.trainable_variables)
    return model


# ---------------------------------------------------------------- recommended.keras, with the report

class KeptModel(NamedTuple):
    """The recommended model as the report names it: its setting, seed and arm, and its file (None when it
    was not written: `problem` says why, in words that end a sentence)."""

    path: Path | None
    setting: Setting
    seed: int
    arm: int
    problem: str = ""


def keep_recommended(run: RunRecord, setting: Setting | None) -> KeptModel | None:
    """Write RUN_DIR/recommended.keras (`setting`, the recommended one, at the first seed kept) unless it already
    holds that arm; None when the run keeps no weights or recommends nothing. A model that cannot be built or
    saved is not a reason to stop the report: it gets a `KeptModel` without a path, saying why."""
    if setting is None:
        return None
    arms = {a.seed: a.index for a in run.arm_records if a.setting == setting}
    first = run.config.seed_values[0]
    try:
        kept = weights_kept(run.run_dir, run.meta)
    except ReglabError as e:
        return KeptModel(None, setting, first, arms[first], str(e))
    if not kept:
        return None
    seed = next((s for s in run.config.seed_values if arms[s] in kept), None)
    if seed is None:
        return None
    path = run.run_dir / RECOMMENDED_KERAS
    stamp = {"reglab": "recommended model", "arm": arms[seed], "run_started_at": run.meta.get("started_at")}
    if _stamp_of(path) == stamp:
        return KeptModel(path, setting, seed, arms[seed])
    if run.config.model and run.run_dir.resolve() not in _TRAINED_HERE:
        return KeptModel(None, setting, seed, arms[seed], _not_rebuilt(run, path))
    try:
        model = load_arm_model(run, setting, seed, say=False)
    except ReglabError as e:
        return KeptModel(None, setting, seed, arms[seed], str(e))
    try:
        data = _keras_file(model, json.dumps(stamp, sort_keys=True).encode())
    except (TypeError, ValueError, NotImplementedError, AttributeError) as e:  # a user's layer Keras cannot serialize
        why = " ".join(f"{type(e).__name__}: {e}".split())[:200]
        return KeptModel(None, setting, seed, arms[seed], f"Keras could not save it ({why}); `reglab.load_model(RUN_DIR)` builds it")
    register(run.run_dir, [RECOMMENDED_KERAS])
    write_atomic(path, data)
    return KeptModel(path, setting, seed, arms[seed])


def _not_rebuilt(run: RunRecord, path: Path) -> str:
    """Why the report leaves out a user's model it would have to build: that runs the model file run.json names."""
    state = "is missing" if not os.path.lexists(path) else "holds another arm"
    return (f"{RECOMMENDED_KERAS} {state}, and a report never runs the model file the record names "
            f"({_model_file(run)}); `reglab.load_model(RUN_DIR)` "
            "rebuilds it, running that file")


def _model_file(run: RunRecord) -> str:
    """The model file run.json names (absolute), without its `:FUNCTION`."""
    return run.config.located(run.meta.get("paths"), run.run_dir, run.meta.get("inputs")).model.rpartition(":")[0]


def _keras_file(model: Any, comment: bytes) -> bytes:
    """`model.save` (Keras's .keras format, which wants a path ending in .keras) into a private temporary
    folder, read back with `comment` set on the zip, for `write_atomic` to put in place."""
    with tempfile.TemporaryDirectory(prefix="reglab-keras-") as tmp:
        path = Path(tmp) / RECOMMENDED_KERAS
        model.save(path)
        buffer = io.BytesIO(path.read_bytes())
    with zipfile.ZipFile(buffer, "a") as z:
        z.comment = comment
    return buffer.getvalue()


def _stamp_of(path: Path) -> dict[str, Any] | None:
    """The arm recommended.keras says it holds (its zip comment), without importing Keras; None for none."""
    if not os.path.lexists(path):
        return None
    try:
        with open_regular(path, "model file", 1 << 40, RunDirError) as fh, zipfile.ZipFile(fh) as z:
            comment = z.comment[:_MAX_COMMENT]
        stamp = json.loads(comment.decode("utf-8"))
    except (ReglabError, OSError, ValueError, zipfile.BadZipFile, UnicodeDecodeError):
        return None
    return stamp if isinstance(stamp, dict) else None


__all__ = ["MAX_WEIGHTS_BYTES", "RECOMMENDED_KERAS", "KeptModel", "keep_recommended", "keep_weights", "load_arm_model",
           ]
