"""Reading a record is bounded and never runs code from it (issue 27): every .npz goes through one reader that
checks declared sizes, dtypes and shapes against the run before inflating anything, metrics.csv is capped by
the run's rows, values no training leaves are refused, and a report never imports the model file run.json
names. Each problem is one `reglab: error:` line naming the file."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

import reglab
from helpers import copy_run
from reglab.cli import main
from reglab.errors import RunDirError, RunInterrupted
from reglab.model import build as models
from reglab.record.checkpoint import CHECKPOINT_NPZ, read_checkpoint, write_checkpoint
from reglab.record.reader import load_run
from reglab.record.schema import KERNELS_NPZ, METRICS_CSV, RUN_JSON, VALIDATION_NPZ, WEIGHTS_NPZ, repair_metrics
from reglab.run.listeners import RecordListener

#: A member this large once inflated is beyond every budget of the test runs (the checkpoint's is ~90 MB),
#: and deflates to about 256 KB.
BOMB_BYTES = 256 << 20
#: What reading a refused bomb may allocate, at most (tracemalloc's peak).
MAX_PEAK = 64 << 20


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bounds") / "run"
    assert main(["run", "--dataset", "mnist-5k", "--lambdas", "0,0.01", "--epochs", "2", "--seeds", "2", "--out", str(out),
                 "--no-progress"]) == 0
    return out


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and "internal error" not in err, err
    assert len(lines) == 1 and lines[0].startswith("reglab: error: "), err
    return lines[0]


def one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text and text, text
    return text


def interrupted(d: Path) -> Path:
    meta = json.loads((d / RUN_JSON).read_text())
    meta["status"] = "interrupted"
    (d / RUN_JSON).write_text(json.dumps(meta))
    return d


# ---------------------------------------------------------------- archives written by hand

def npy_header(dtype: str, shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()  # the magic string, then the header


def npz_bytes(members: dict[str, bytes | tuple[str, tuple[int, ...]]], deflate: bool = True) -> bytes:
    """An .npz archive: each member either raw .npy bytes, or (dtype, shape) written as that header followed by
    zeros, streamed through the compressor (a bomb costs its compressed size, not its inflated one)."""
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, content in members.items():
            info = zipfile.ZipInfo(f"{name}.npy")
            info.compress_type = method
            with z.open(info, "w", force_zip64=True) as m:
                if isinstance(content, bytes):
                    m.write(content)
                    continue
                dtype, shape = content
                m.write(npy_header(dtype, shape))
                left = np.dtype(dtype).itemsize * int(np.prod(shape))
                chunk = bytes(8 << 20)
                while left:
                    m.write(chunk[:min(left, len(chunk))])
                    left -= min(left, len(chunk))
    return buf.getvalue()


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def bomb() -> tuple[str, tuple[int, ...]]:
    return ("<f4", (BOMB_BYTES // 4,))


def peak_of(call) -> int:
    """tracemalloc's peak while `call()` runs (numpy's allocations are traced too)."""
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


# ---------------------------------------------------------------- 10. decompression bombs

@pytest.mark.slow
def test_a_kernels_bomb_is_refused_before_it_is_inflated(finished_run, tmp_path, capsys, bomb):
    d = copy_run(finished_run, tmp_path)
    (d / KERNELS_NPZ).write_bytes(npz_bytes({"arm0": bomb}))
    assert (d / KERNELS_NPZ).stat().st_size < 2 << 20
    codes = []
    assert peak_of(lambda: codes.append(main(["report", str(d)]))) < MAX_PEAK
    line = one_error_line(capsys)
    assert codes == [2] and str(d / KERNELS_NPZ) in line and "array 'arm0' is <f4 (67108864,), but run.json" in line, line


def test_a_header_claiming_more_than_its_member_holds_is_refused(finished_run, tmp_path, capsys):
    d = copy_run(finished_run, tmp_path)
    (d / KERNELS_NPZ).write_bytes(npz_bytes({"arm0": npy_header("<f4", (10**12,))}))
    assert main(["report", str(d)]) == 2
    line = one_error_line(capsys)
    assert str(d / KERNELS_NPZ) in line and "array 'arm0' claims <f4 (1000000000000,)" in line, line


def test_a_checkpoint_bomb_is_refused_before_it_is_inflated(finished_run, tmp_path, capsys, bomb):
    d = interrupted(copy_run(finished_run, tmp_path))
    meta = np.frombuffer(json.dumps({"engine": "fused", "layout": {"state0": ["<f4", [BOMB_BYTES // 4]]}}).encode(), np.uint8)
    (d / CHECKPOINT_NPZ).write_bytes(npz_bytes({"__meta__": npy_bytes(meta), "state0": bomb}))
    before = (d / METRICS_CSV).read_bytes()
    codes = []
    assert peak_of(lambda: codes.append(main(["run", "--resume", str(d), "--no-progress"]))) < MAX_PEAK
    line = one_error_line(capsys)
    assert codes == [2] and str(d / CHECKPOINT_NPZ) in line and "once inflated" in line, line
    assert (d / METRICS_CSV).read_bytes() == before


def test_a_weights_bomb_is_refused_before_it_is_inflated(finished_run, tmp_path, bomb):
    d = copy_run(finished_run, tmp_path)
    (d / WEIGHTS_NPZ).write_bytes(npz_bytes({"kept": npy_bytes(np.arange(4)), "arm0_t0": bomb}))
    errors = []

    def load() -> None:
        with pytest.raises(RunDirError) as e:
            reglab.load_model(d)
        errors.append(e)

    assert peak_of(load) < MAX_PEAK
    text = one_line(errors[0])
    assert str(d / WEIGHTS_NPZ) in text and "array 'arm0_t0' is <f4 (67108864,), but run.json" in text, text


def test_a_validation_bomb_is_refused_before_it_is_inflated(finished_run, tmp_path, bomb):
    d = copy_run(finished_run, tmp_path)
    (d / VALIDATION_NPZ).write_bytes(npz_bytes({"final_loss": bomb}))
    run = load_run(d)
    errors = []

    def read() -> None:
        with pytest.raises(RunDirError) as e:
            run.validation()
        errors.append(e)

    assert peak_of(read) < MAX_PEAK
    assert str(d / VALIDATION_NPZ) in one_line(errors[0])


def test_a_huge_metrics_csv_is_refused_before_it_is_read(finished_run, tmp_path, capsys):
    d = copy_run(finished_run, tmp_path)
    with open(d / METRICS_CSV, "r+b") as f:
        f.truncate(1 << 30)  # sparse: 1 GiB that takes no disk
    codes = []
    assert peak_of(lambda: codes.append(main(["report", str(d)]))) < MAX_PEAK
    line = one_error_line(capsys)
    assert codes == [2] and str(d / METRICS_CSV) in line and "more than 4 arms × 2 epochs of rows" in line, line


# ---------------------------------------------------------------- 13. damaged archives: one line naming the file

def compressed(arrays: dict[str, np.ndarray]) -> bytearray:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return bytearray(buf.getvalue())


def data_start(archive: bytearray, name: str) -> int:
    """Where member `name`'s (compressed) data begins: after its local header, file name and extra field."""
    with zipfile.ZipFile(io.BytesIO(bytes(archive))) as z:
        offset = z.getinfo(name).header_offset
    name_len, extra_len = struct.unpack("<HH", archive[offset + 26:offset + 30])
    return offset + 30 + name_len + extra_len


def kernels_of(run: Path) -> dict[str, np.ndarray]:
    with np.load(run / KERNELS_NPZ) as z:
        return {k: z[k] for k in z.files}


def unbalanced_header() -> bytes:
    """An .npy member whose header is not a Python literal and does not tokenize (numpy: TokenError)."""
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (784, 128), ([\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


@pytest.mark.parametrize("damage, needle", [
    ("block", "Error -3 while decompressing"),  # a deflate block of the reserved type
    ("crc", "Bad CRC-32"),
    ("header", "damaged"),
])
def test_a_corrupt_compressed_kernels_file_is_one_line(finished_run, tmp_path, capsys, damage, needle):
    d = copy_run(finished_run, tmp_path)
    if damage == "header":
        data = bytearray(npz_bytes({"arm0": unbalanced_header()}))
    else:
        data = compressed(kernels_of(finished_run))
        start = data_start(data, "arm1.npy")
        if damage == "block":
            data[start] = 0xFF
        else:
            data[start + 5000:start + 5064] = bytes(range(64))
    (d / KERNELS_NPZ).write_bytes(bytes(data))
    assert main(["report", str(d)]) == 2
    line = one_error_line(capsys)
    assert str(d / KERNELS_NPZ) in line and "not a readable kernels file (damaged" in line and needle in line, line


def test_an_object_array_in_weights_npz_is_one_line(finished_run, tmp_path):
    d = copy_run(finished_run, tmp_path)
    with np.load(finished_run / WEIGHTS_NPZ) as z:
        members = {k: npy_bytes(z[k]) for k in z.files}
    members["arm0_t1"] = npy_bytes(np.array([{"run": "code"}] * 128, dtype=object))
    (d / WEIGHTS_NPZ).write_bytes(npz_bytes(members, deflate=False))
    with pytest.raises(RunDirError) as e:
        reglab.load_model(d)
    text = one_line(e)
    assert str(d / WEIGHTS_NPZ) in text and "array 'arm0_t1' holds Python objects" in text, text


def test_a_corrupt_checkpoint_is_one_line(finished_run, tmp_path, capsys):
    d = interrupted(copy_run(finished_run, tmp_path))
    write_checkpoint(d, {"state0": np.linspace(0, 1, 20000, dtype=np.float32)}, {"engine": "fused"})
    arrays, meta = read_checkpoint(d)
    data = compressed({"__meta__": np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays})
    data[data_start(data, "state0.npy")] = 0xFF  # a deflate block of the reserved type
    (d / CHECKPOINT_NPZ).write_bytes(bytes(data))
    assert main(["run", "--resume", str(d), "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert str(d / CHECKPOINT_NPZ) in line and "damaged" in line and "Error -3 while decompressing" in line, line


# ---------------------------------------------------------------- 8. values no training leaves

def rewrite_kernels(d: Path, change) -> None:
    with np.load(d / KERNELS_NPZ) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(d / KERNELS_NPZ, **change(arrays))


@pytest.mark.parametrize("change, needle", [
    (lambda a: {**a, "arm0": np.zeros((10, 10), np.float32)},
     "array 'arm0' is <f4 (10, 10), but run.json calls for <f4 (784, 128)"),
    (lambda a: {**a, "arm1": a["arm1"].astype(np.float64)}, "array 'arm1' is <f8 (784, 128)"),
    (lambda a: {**a, "arm9": a["arm0"]}, "array 'arm9' is not one reglab writes"),
    (lambda a: {**a, "arm2": np.full_like(a["arm2"], 1e30)}, "arm 2's kernel holds a weight of 1e+30"),
    (lambda a: {**a, "arm3": np.where(np.eye(784, 128, dtype=bool), np.nan, a["arm3"]).astype(np.float32)},
     "arm 3's kernel holds a value that is not finite"),
])
def test_kernels_that_do_not_fit_the_run_are_one_line(finished_run, tmp_path, capsys, change, needle):
    d = copy_run(finished_run, tmp_path)
    rewrite_kernels(d, change)
    assert main(["report", str(d)]) == 2
    line = one_error_line(capsys)
    assert str(d / KERNELS_NPZ) in line and needle in line, line


def edit_metrics(d: Path, line: int, column: str, value: str) -> None:
    lines = (d / METRICS_CSV).read_text().splitlines()
    header = lines[0].split(",")
    fields = lines[line - 1].split(",")
    fields[header.index(column)] = value
    lines[line - 1] = ",".join(fields)
    (d / METRICS_CSV).write_text("\r\n".join(lines) + "\r\n", newline="")


@pytest.mark.parametrize("column, value", [("val_data_loss", "nan"), ("loss", "inf"), ("val_loss", "nan")])
def test_a_completed_arm_with_a_loss_that_is_not_finite_is_one_line(finished_run, tmp_path, capsys, column, value):
    d = copy_run(finished_run, tmp_path)
    last = len((d / METRICS_CSV).read_text().splitlines())
    edit_metrics(d, last, column, value)
    assert main(["report", str(d)]) == 2
    line = one_error_line(capsys)
    assert f"{d / METRICS_CSV}, line {last}: {column} is {float(value)!r}, but arm" in line and "marked completed" in line, line


def test_a_completed_run_missing_its_last_row_is_one_line(finished_run, tmp_path, capsys):
    d = copy_run(finished_run, tmp_path)
    lines = (d / METRICS_CSV).read_text().splitlines()
    arm = int(lines[-1].split(",")[0])
    (d / METRICS_CSV).write_text("\r\n".join(lines[:-1]) + "\r\n", newline="")
    assert main(["report", str(d)]) == 2
    line = one_error_line(capsys)
    assert f"{d / METRICS_CSV}: arm {arm} has 1 rows, but run.json says it recorded 2 epochs" in line, line


def test_an_interrupted_runs_torn_last_row_is_still_repaired(finished_run, tmp_path):
    d = interrupted(copy_run(finished_run, tmp_path))
    text = (d / METRICS_CSV).read_text()
    (d / METRICS_CSV).write_text(text[:-40], newline="")  # the last row cut short, as a crash leaves it
    rows = load_run(d).epochs
    assert len(rows) == len(text.splitlines()) - 2  # the header and the torn row
    kept = repair_metrics(d, 4, {a: 2 for a in range(4)})
    assert kept == list(rows) and (d / METRICS_CSV).read_bytes().endswith(b"\r\n")


# ---------------------------------------------------------------- 4. a report never runs the record's model file

USER_MODEL = '''
import keras
from pathlib import Path

MARKER = Path({marker!r})
MARKER.write_text("imported")


def build():
    MARKER.write_text("built")
    return keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(10, activation="softmax")])
'''


@pytest.fixture(scope="module")
def user_run(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("user")
    marker, spec = base / "marker", base / "model.py"
    spec.write_text(USER_MODEL.format(marker=str(marker)))
    out = base / "run"
    assert main(["run", "--dataset", "mnist-5k", "--lambdas", "0,0.01", "--epochs", "1", "--seeds", "1", "--out", str(out),
                 "--no-progress", "--model", f"{spec}:build"]) == 0
    assert (out / "recommended.keras").is_file()  # the process that trained the run writes it
    return out, marker


@pytest.mark.slow
def test_a_report_never_runs_the_model_file_of_a_record(user_run, tmp_path, capsys):
    run, marker = user_run
    d = copy_run(run, tmp_path)
    (d / "recommended.keras").unlink()
    marker.unlink(missing_ok=True)
    models._load_builder.cache_clear()  # as in a fresh process: importing the file would run it again
    assert main(["report", str(d)]) == 0
    assert not marker.exists()
    assert not (d / "recommended.keras").exists()
    report = (d / "report.md").read_text()
    assert "is not saved as a Keras file: recommended.keras is missing, and a report never runs the model file" in report
    capsys.readouterr()


@pytest.mark.slow
def test_load_model_says_it_runs_the_model_file(user_run, tmp_path, capsys):
    run, marker = user_run
    d = copy_run(run, tmp_path)
    capsys.readouterr()
    assert reglab.load_model(d) is not None
    err = capsys.readouterr().err
    assert err.strip().startswith("reglab: running model file ") and "model.py to rebuild the model" in err, err
    assert marker.exists()


# ---------------------------------------------------------------- 17b. an interrupted run's per-example values

@pytest.mark.slow
def test_an_interrupted_runs_values_are_read_from_its_checkpoint(tmp_path, monkeypatch, capsys):
    """The keras engine trains arm after arm: stopped just before arm 1's first checkpoint, the checkpoint holds
    arm 0's values (complete) and none of arm 1's (whose first row is already in metrics.csv)."""
    config = reglab.SweepConfig(lambdas=(0.0, 1e-3), seeds=1, epochs=2, dataset="mnist-5k", engine="keras")
    calls = {"n": 0}
    original = RecordListener.checkpoint

    def checkpoint(self, arrays, meta):
        calls["n"] += 1
        if calls["n"] == 4:  # arm 0: epochs 1, 2 and its end; arm 1's first
            raise KeyboardInterrupt
        original(self, arrays, meta)

    d = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(RecordListener, "checkpoint", checkpoint)
        with pytest.raises(RunInterrupted):
            reglab.run_sweep(config, out=d, console=Console(file=io.StringIO()), live=False)
    run = load_run(d)
    assert not (d / VALIDATION_NPZ).exists() and [r.arm for r in run.epochs] == [0, 0, 1]
    values = run.validation()
    assert values is not None and values.has_values.tolist() == [True, False]
    arm0 = [r for r in run.epochs if r.arm == 0][-1]
    assert float(np.mean(values.final(0), dtype=np.float64)) == pytest.approx(arm0.val_data_loss, rel=1e-5)
    assert main(["report", str(d)]) == 0
    assert "no per-example validation values" not in (d / "report.md").read_text()
    capsys.readouterr()


def test_a_damaged_checkpoint_of_an_interrupted_run_is_one_line_in_its_report(finished_run, tmp_path, capsys):
    d = interrupted(copy_run(finished_run, tmp_path))
    (d / VALIDATION_NPZ).unlink()
    (d / CHECKPOINT_NPZ).write_bytes(zlib.compress(b"not an archive"))
    assert main(["report", str(d)]) == 2
    line = one_error_line(capsys)
    assert str(d / CHECKPOINT_NPZ) in line and "not a readable checkpoint" in line, line
