"""A sweep's live progress in a real Jupyter kernel: one output updated in place (IPython's display, at most
5 updates a second), not a stream of lines; the per-epoch lines are for logs outside a kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import jupyter_kernel

KERNEL = "reglab-progress-test"

CELL = """\
import numpy as np
import keras
import reglab
from sklearn.datasets import load_wine

def build_model():
    return keras.Sequential([keras.Input((13,)), keras.layers.Dense(3, activation="softmax")])

x, y = load_wine(return_X_y=True)
result = reglab.sweep(build_model, x, y, lambdas=[0, 1e-2], seeds=1, epochs=3, batch_size=8, out={out!r}{extra})
"""


def run_cells(tmp_path: Path, *sources: str) -> list[dict]:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    NotebookClient(nb, kernel_name=KERNEL, timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb.cells


@pytest.mark.slow
def test_progress_in_a_kernel_is_one_output_updated_in_place(tmp_path, monkeypatch):
    jupyter_kernel(tmp_path, monkeypatch, KERNEL)
    sweep, quiet = run_cells(tmp_path, CELL.format(out=str(tmp_path / "run"), extra=""),
                             CELL.format(out=str(tmp_path / "quiet"), extra=", progress=False"))
    shown = [o for o in sweep.outputs if o.get("output_type") == "display_data" and "text/plain" in o.get("data", {})]
    assert len(shown) == 1, sweep.outputs  # one progress output, updated in place by update_display_data
    text = shown[0]["data"]["text/plain"]
    assert "epoch 3/3:" in text and "arm 2/2" in text, text  # the last epoch of the last arm
    stderr = "".join(o.get("text", "") for o in sweep.outputs if o.get("output_type") == "stream")
    assert "epoch 1/3:" not in stderr  # no stream of per-epoch lines
    assert not [o for o in quiet.outputs if o.get("output_type") in ("display_data", "stream")
                and "epoch" in str(o.get("data", o.get("text", "")))]  # progress=False: nothing shown
