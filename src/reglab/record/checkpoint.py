"""RUN_DIR/checkpoint.npz: everything needed to continue a run exactly where its last epoch ended.

Engines build the contents (arrays and a small JSON-able dict); this module only stores and reads
them. The file is written beside its final name, fsynced, then renamed over it, so the checkpoint on
disk is always a whole one: the previous epoch's or the new one. Arrays are plain numeric arrays
(`allow_pickle=False` on reading); the metadata travels as UTF-8 JSON bytes in a uint8 array.

Order at the end of an epoch: the epoch's rows are appended to metrics.csv (fsynced), then the
checkpoint is replaced. A crash between the two leaves rows newer than the checkpoint; `--resume`
drops them and trains that epoch again, which gives the same numbers.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from reglab.errors import RunDirError
from reglab.fileio import remove_file, temporary_name, write_atomic
from reglab.inputs import KiB, brief
from reglab.record.arrays import model_parameters
from reglab.record.checks import MemberCheck, NpzError, read_npz, validation_layout
from reglab.record.schema import RUN_JSON, read_run_meta

CHECKPOINT_NPZ = "checkpoint.npz"
_META = "__meta__"


class Checkpoint(NamedTuple):
    """What continues a run: the arrays (weights, optimizer state, per-example values, …) and the JSON-able
    metadata that says what they are (`epochs_done`: arm → its last recorded epoch; the rest the engine's own)."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


def write_checkpoint(run_dir: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Replace RUN_DIR/checkpoint.npz atomically with `arrays` and `meta`. The meta gains `layout`, each
    array's dtype and shape, so a reader notices an array that was swapped for another before using it."""
    if _META in arrays:
        raise ValueError(f"{_META} is reserved")
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    meta = {**meta, "layout": {k: [v.dtype.str, list(v.shape)] for k, v in payload.items()}}
    payload[_META] = np.frombuffer(json.dumps(meta, allow_nan=True).encode("utf-8"), dtype=np.uint8)
    # numpy's stub types **kwds beside allow_pickle: bool, and mypy cannot see that no name here is allow_pickle
    write_atomic(Path(run_dir) / CHECKPOINT_NPZ, lambda f: np.savez(f, **payload))  # type: ignore[arg-type]


def remove_checkpoint(run_dir: Path) -> None:
    for path in (Path(run_dir) / CHECKPOINT_NPZ, temporary_name(Path(run_dir) / CHECKPOINT_NPZ)):
        remove_file(path)


def read_checkpoint(run_dir: Path, meta: dict[str, Any] | None = None,
                    only: str | None = None) -> Checkpoint | None:
    """The run's checkpoint, or None when the run has no checkpoint yet (it stopped during its first epoch). Read
    bounded (`recordcheck.read_npz`): its metadata first, then every array checked against the layout the
    metadata gives, within what the run implies (`checkpoint_budget`; `meta`: run.json's contents, read when
    not given), before it is inflated. `only`: inflate only the arrays whose names start with it."""
    path = Path(run_dir) / CHECKPOINT_NPZ
    if not os.path.lexists(path):
        return None
    budget = checkpoint_budget(meta if meta is not None else _run_meta(Path(run_dir)))
    try:
        head = read_npz(path, "checkpoint", _metadata_check, budget, required=[_META], select=lambda name: name == _META)
        try:
            written = json.loads(head[_META].tobytes().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise NpzError(path, f"its metadata is not JSON ({' '.join(str(e).split())[:200]})") from None
        if not isinstance(written, dict) or not isinstance(written.get("layout"), dict):
            raise NpzError(path, "its metadata is not a mapping with an array layout")
        layout = written["layout"]
        arrays = read_npz(path, "checkpoint", _layout_check(layout), budget, required=[_META, *layout],
                          select=lambda name: name != _META and (only is None or name.startswith(only)))
    except NpzError as e:
        raise RunDirError(f"{path} is damaged: {e.problem}") from None
    return Checkpoint(arrays, written)


#: The most bytes a checkpoint's metadata may take (its JSON, as a uint8 array).
MAX_META_BYTES = 64 << 20

#: A checkpoint's arrays budget, per arm and trainable parameter: an engine keeps each arm's weights, its
#: optimizer's moments, and with early stopping its best weights (float32); generously.
BYTES_PER_PARAMETER = 64

#: The budget of a checkpoint found where no run.json says what it holds.
UNKNOWN_RUN_BYTES = 256 << 20


def checkpoint_budget(meta: dict[str, Any] | None) -> int:
    """The most bytes the arrays of a checkpoint of the run `meta` describes can take once inflated: its
    engine's state for every arm (`BYTES_PER_PARAMETER` per parameter, shuffling RNGs), the per-example
    validation values it carries, and its metadata."""
    if meta is None:
        return UNKNOWN_RUN_BYTES
    n_arms, n_val = len(meta["arms"]), int(meta["data"]["n_val"])
    epochs = int(meta["config"]["epochs"])
    values = validation_layout(n_arms, epochs, n_val)
    per_example = sum(np.dtype(d).itemsize * math.prod(shape) for d, shape, _ in values.values()) + 4 * n_arms
    return n_arms * (BYTES_PER_PARAMETER * model_parameters(meta) + 8 * KiB) + per_example + MAX_META_BYTES


def _run_meta(run_dir: Path) -> dict[str, Any] | None:
    """run.json's contents, checked; None where there is none (a checkpoint read on its own)."""
    return read_run_meta(run_dir) if os.path.lexists(run_dir / RUN_JSON) else None


def _metadata_check(name: str, dtype: np.dtype, shape: tuple[int, ...]) -> str | None:
    """A `MemberCheck` for the first reading, of the metadata alone: its JSON bytes, bounded (arrays: any)."""
    if name == _META and (dtype.str != "|u1" or len(shape) != 1 or shape[0] > MAX_META_BYTES):
        return f"is {dtype.str} {shape}, not the checkpoint's metadata (at most {MAX_META_BYTES:,} bytes of JSON)"
    return None


def _layout_check(layout: dict[str, Any]) -> MemberCheck:
    """A `MemberCheck`: every array as the checkpoint's own metadata describes it, none added or reshaped."""
    def check(name: str, dtype: np.dtype, shape: tuple[int, ...]) -> str | None:
        if name == _META:
            return _metadata_check(name, dtype, shape)
        if name not in layout:
            return "is not in its layout"
        want = layout[name]
        if [dtype.str, list(shape)] != want:
            return f"is {dtype.str} {shape}, its layout says {_layout_words(want)}"
        return None
    return check


def _layout_words(want: Any) -> str:
    """A layout entry ([dtype, shape]) as an array's description reads; anything else as it is."""
    if isinstance(want, list) and len(want) == 2 and isinstance(want[1], list):
        return f"{want[0]} {tuple(want[1])}"
    return brief(want)


def rng_to_arrays(rng: np.random.RandomState, prefix: str) -> tuple[dict[str, np.ndarray], list[Any]]:
    """A numpy RandomState (Keras's `fit` shuffles with numpy's global one) as arrays and JSON."""
    kind, keys, pos, has_gauss, cached = rng.get_state()
    return {f"{prefix}keys": np.asarray(keys, dtype=np.uint32)}, [kind, int(pos), int(has_gauss), float(cached)]


def rng_from_arrays(arrays: dict[str, np.ndarray], prefix: str, state: list[Any]) -> np.random.RandomState:
    kind, pos, has_gauss, cached = state
    rng = np.random.RandomState()
    rng.set_state((str(kind), np.asarray(arrays[f"{prefix}keys"], dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    return rng
