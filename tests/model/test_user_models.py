"""The user's own model (`--model FILE.py:FUNCTION`): both engines train it alike, the shipped examples
work, and every builder that cannot work gets one line."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from reglab.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.slow
def test_a_model_without_regularizers_gets_l2_on_every_kernel_and_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--dataset", "mnist-5k", "--lambdas", "0.001", "--epochs", "1", "--seeds", "1", "--no-progress", "--out", str(out),
                 "--model", f"{EXAMPLES / 'mlp_dropout.py'}:build_model"]) == 0
    assert "declares no kernel_regularizer; L2(λ) goes on every Dense/Conv kernel" in capsys.readouterr().err
    meta = json.loads((out / "run.json").read_text())
    assert meta["model"]["chosen_by_reglab"] and len(meta["model"]["regularized"]) == 3
    assert meta["engine_strategy"] == "per-arm-chunks"  # not packable (Dropout), no convolution, a CPU
    assert "mlp_dropout.py:build_model" in (out / "report.md").read_text()


BAD = {
    "missing file": ("nowhere.py:build", None, "model file not found"),
    "no function": ("m.py:build", "x = 1\n", "has no function 'build'"),
    "syntax error": ("m.py:build", "def build(:\n", "failed to load (SyntaxError"),
    "raises": ("m.py:build", "def build():\n    raise RuntimeError('nope\\nnope')\n", "the builder raised RuntimeError: nope nope"),
    "not a model": ("m.py:build", "def build():\n    return 3\n", "returned int, not a Keras model"),
    "no input": ("m.py:build", "import keras\ndef build():\n    return keras.Sequential([keras.layers.Dense(10)])\n",
                 "must declare its input shape"),
    "wrong input": ("m.py:build", "import keras\ndef build():\n    return keras.Sequential([keras.Input((8, 8)), "
                    "keras.layers.Flatten(), keras.layers.Dense(10, activation='softmax')])\n", "takes inputs of shape (8, 8)"),
    "wrong output": ("m.py:build", "import keras\ndef build():\n    return keras.Sequential([keras.Input((28, 28)), "
                     "keras.layers.Flatten(), keras.layers.Dense(3, activation='softmax')])\n", "must output 10 class"),
    "orthogonal": ("m.py:build", "import keras\ndef build():\n    return keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), "
                   "keras.layers.Dense(10, activation='softmax', kernel_regularizer=keras.regularizers.OrthogonalRegularizer(0.1))])\n",
                   "declare L1, L2 or L1L2"),
    "no kernel": ("m.py:build", "import keras\ndef build():\n    i = keras.Input((28, 28))\n    return keras.Model(i, "
                  "keras.layers.Softmax()(keras.layers.Reshape((784,))(i)[:, :10]))\n", "no Dense or Conv kernel"),
    "bad spec": ("m.py", "", "must be FILE.py:FUNCTION"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD))
def test_a_builder_that_cannot_work_gets_one_line_and_writes_nothing(case, tmp_path, capsys, monkeypatch):
    spec, code, message = BAD[case]
    monkeypatch.chdir(tmp_path)
    if code is not None:
        (tmp_path / "m.py").write_text(code)
    assert main(["run", "--dataset", "mnist-5k", "--epochs", "1", "--no-progress", "--out", "run", "--model", spec]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reglab: error: ") and message in err[0], err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- a model file that exits, blocks or is huge

def run_with_model(tmp_path: Path, spec: str) -> int:
    return main(["run", "--dataset", "mnist-5k", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "run"),
                 "--model", spec])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reglab: error: "), err
    return err[0]


EXITS = {
    "at import": ("import sys\nsys.exit(0)\ndef build():\n    pass\n", "called sys.exit(0) while loading"),
    "at import, no code": ("raise SystemExit\n", "called sys.exit(None) while loading"),
    "in the builder": ("import sys\ndef build():\n    sys.exit(0)\n", "the builder called sys.exit(0) while building"),
    "in the builder, a message": ("import sys\ndef build():\n    sys.exit('bye\\nnow')\n", "called sys.exit('bye\\nnow')"),
}


@pytest.mark.parametrize("case", sorted(EXITS))
def test_a_model_file_calling_sys_exit_is_an_error_not_a_success(case, tmp_path, capsys):
    code, message = EXITS[case]
    model = tmp_path / "m.py"
    model.write_text(code)
    assert run_with_model(tmp_path, f"{model}:build") == 2
    line = one_error_line(capsys)
    assert message in line and str(model) in line, line
    assert not (tmp_path / "run").exists()


def test_ctrl_c_in_the_builder_still_interrupts(tmp_path):
    from reglab.model.build import build_user_model

    model = tmp_path / "m.py"
    model.write_text("def build():\n    raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        build_user_model(f"{model}:build", (28, 28), 0.0)


def test_a_fifo_as_the_model_file_is_refused_without_blocking(tmp_path, capsys):
    fifo = tmp_path / "m.py"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    assert run_with_model(tmp_path, f"{fifo}:build") == 2
    assert time.monotonic() - t0 < 60
    line = one_error_line(capsys)
    assert "FIFO" in line and str(fifo) in line, line
    assert not (tmp_path / "run").exists()


def test_a_device_as_the_model_file_is_refused(tmp_path, capsys):
    assert run_with_model(tmp_path, "/dev/zero:build") == 2
    assert "/dev/zero" in (line := one_error_line(capsys)) and "character device" in line, line
    assert not (tmp_path / "run").exists()


def test_a_model_file_over_the_cap_is_never_run(tmp_path, capsys):
    from reglab.model.build import MAX_MODEL_BYTES

    marker = tmp_path / "ran"
    model = tmp_path / "m.py"
    model.write_text(f"open({str(marker)!r}, 'w').close()\ndef build():\n    pass\n" + "#" * MAX_MODEL_BYTES + "\n")
    assert run_with_model(tmp_path, f"{model}:build") == 2
    line = one_error_line(capsys)
    assert "more than reglab reads" in line and f"{MAX_MODEL_BYTES:,}" in line, line
    assert not marker.exists() and not (tmp_path / "run").exists()
