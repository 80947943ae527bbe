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
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RunDirError
from .fileio import remove_file, temporary_name, write_atomic

CHECKPOINT_NPZ = "checkpoint.npz"
_META = "__meta__"


def write_checkpoint(run_dir: Path, arrays: dict[str, Any], meta: dict[str, Any]) -> None:
    """Replace RUN_DIR/checkpoint.npz atomically with `arrays` and `meta`. The meta gains `layout`, each
    array's dtype and shape, so a reader notices an array that was swapped for another before using it."""
    if _META in arrays:
        raise ValueError(f"{_META} is reserved")
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    meta = {**meta, "layout": {k: [v.dtype.str, list(v.shape)] for k, v in payload.items()}}
    payload[_META] = np.frombuffer(json.dumps(meta, allow_nan=True).encode("utf-8"), dtype=np.uint8)
    write_atomic(Path(run_dir) / CHECKPOINT_NPZ, lambda f: np.savez(f, **payload), fault="checkpoint")


def remove_checkpoint(run_dir: Path) -> None:
    for path in (Path(run_dir) / CHECKPOINT_NPZ, temporary_name(Path(run_dir) / CHECKPOINT_NPZ)):
        remove_file(path)


def read_checkpoint(run_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """(arrays, meta), or None when the run has no checkpoint yet (it stopped during its first epoch)."""
    path = Path(run_dir) / CHECKPOINT_NPZ
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            arrays = {name: np.array(z[name]) for name in z.files}
        meta = json.loads(arrays.pop(_META).tobytes().decode("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("metadata is not a mapping")
        _check_layout(arrays, meta.get("layout"))
    except (OSError, ValueError, KeyError, EOFError, UnicodeDecodeError, zipfile.BadZipFile) as e:
        raise RunDirError(f"{path} is damaged and cannot be resumed from ({type(e).__name__}: {e})") from None
    return arrays, meta


def _check_layout(arrays: dict[str, np.ndarray], layout: Any) -> None:
    """Every array as the checkpoint's own metadata describes it: none missing, added, or reshaped."""
    if not isinstance(layout, dict):
        raise ValueError("no array layout in its metadata")
    if set(layout) != set(arrays):
        extra = sorted(set(arrays) ^ set(layout))
        raise ValueError(f"array {extra[0]!r} is {'missing' if extra[0] in layout else 'not in its layout'}")
    for name, value in arrays.items():
        want = layout[name]
        if [value.dtype.str, list(value.shape)] != want:
            raise ValueError(f"array {name!r} is {value.dtype.str} {tuple(value.shape)}, its layout says {want[0]} {tuple(want[1])}")


def rng_to_arrays(rng: np.random.RandomState, prefix: str) -> tuple[dict[str, np.ndarray], list[Any]]:
    """A numpy RandomState (Keras's `fit` shuffles with numpy's global one) as arrays and JSON."""
    kind, keys, pos, has_gauss, cached = rng.get_state()
    return {f"{prefix}keys": np.asarray(keys, dtype=np.uint32)}, [kind, int(pos), int(has_gauss), float(cached)]


def rng_from_arrays(arrays: dict[str, np.ndarray], prefix: str, state: list[Any]) -> np.random.RandomState:
    kind, pos, has_gauss, cached = state
    rng = np.random.RandomState()
    rng.set_state((str(kind), np.asarray(arrays[f"{prefix}keys"], dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    return rng
