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

import errno
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RunDirError

CHECKPOINT_NPZ = "checkpoint.npz"
_META = "__meta__"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_fault_count: dict[str, int] = {}


def _fault(point: str, kill: bool = True) -> bool:
    """Test-only fault injection: REGLAB_FAULT=<point>:<n> makes the n-th passage through that point fail:
    SIGKILL for this process (a crash in the middle of a checkpoint write), or True for the caller to
    fail a write (a full disk)."""
    want = os.environ.get("REGLAB_FAULT", "")
    if not want.startswith(point + ":"):
        return False
    _fault_count[point] = _fault_count.get(point, 0) + 1
    if str(_fault_count[point]) != want.split(":", 1)[1]:
        return False
    if kill:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    return True


def write_checkpoint(run_dir: Path, arrays: dict[str, Any], meta: dict[str, Any]) -> None:
    """Replace RUN_DIR/checkpoint.npz atomically with `arrays` and `meta`."""
    if _META in arrays:
        raise ValueError(f"{_META} is reserved")
    path = Path(run_dir) / CHECKPOINT_NPZ
    tmp = path.with_name(f".{CHECKPOINT_NPZ}.tmp")
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload[_META] = np.frombuffer(json.dumps(meta, allow_nan=True).encode("utf-8"), dtype=np.uint8)
    try:
        with open(tmp, "wb") as f:
            if _fault("checkpoint-disk-full", kill=False):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
            np.savez(f, **payload)
            f.flush()
            _fault("checkpoint-write")  # the temporary file is complete, the old checkpoint still in place
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)  # the previous checkpoint stays the whole one
        raise
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def remove_checkpoint(run_dir: Path) -> None:
    for name in (CHECKPOINT_NPZ, f".{CHECKPOINT_NPZ}.tmp"):
        try:
            (Path(run_dir) / name).unlink()
        except FileNotFoundError:
            pass


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
    except (OSError, ValueError, KeyError, EOFError, UnicodeDecodeError, zipfile.BadZipFile) as e:
        raise RunDirError(f"{path} is damaged and cannot be resumed from ({type(e).__name__}: {e})") from None
    return arrays, meta


def rng_to_arrays(rng: np.random.RandomState, prefix: str) -> tuple[dict[str, np.ndarray], list[Any]]:
    """A numpy RandomState (Keras's `fit` shuffles with numpy's global one) as arrays and JSON."""
    kind, keys, pos, has_gauss, cached = rng.get_state()
    return {f"{prefix}keys": np.asarray(keys, dtype=np.uint32)}, [kind, int(pos), int(has_gauss), float(cached)]


def rng_from_arrays(arrays: dict[str, np.ndarray], prefix: str, state: list[Any]) -> np.random.RandomState:
    kind, pos, has_gauss, cached = state
    rng = np.random.RandomState()
    rng.set_state((str(kind), np.asarray(arrays[f"{prefix}keys"], dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    return rng
