"""examples/quickstart.ipynb, run in a real Jupyter kernel of this environment's Python: it trains a sweep of its
own model on its own arrays, shows the answer and a figure of its own, and the saved model evaluated on the
data given back scores the test accuracy the run recorded."""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import reglab
from helpers import jupyter_kernel
from reglab.analysis.views import recommended_setting
from reglab.record.schema import ArmRecord
from reglab.report.answer import answer

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "quickstart.ipynb"
KERNEL = "reglab-quickstart-test"


def outputs(cell: dict, kind: str) -> list[str]:
    """A cell's text on one stream ("stdout", "stderr") or of one MIME type ("text/html", "image/png")."""
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream" and o.get("name") == kind:
            out.append(o["text"])
        elif kind in o.get("data", {}):
            out.append(o["data"][kind])
    return out


def cell_with(nb: dict, start: str, whole: bool = False) -> dict:
    """The first code cell that starts with `start` (`whole`: that is exactly `start`)."""
    cells = [c for c in nb.cells if c.cell_type == "code"]
    return next(c for c in cells if (c.source == start if whole else c.source.startswith(start)))


@pytest.mark.slow
def test_the_quickstart_notebook_runs_and_gets_the_recorded_numbers_back(tmp_path, monkeypatch):
    jupyter_kernel(tmp_path, monkeypatch, KERNEL)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=600, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # starts the kernel and shuts it down however the cells end
    assert outputs(nb.cells[-1], "stdout") == [f"{sys.executable}\n"]

    said = re.findall(r"reglab: run written to (\S+)", "".join(outputs(cell_with(nb, "result = reglab.sweep("), "stderr")))
    assert len(said) == 1 and Path(said[0]).is_relative_to(tmp_path)
    run = reglab.load_run(said[0])
    shown = "".join(outputs(cell_with(nb, "result", whole=True), "text/html"))
    assert html.escape(answer(reglab.analyze(run)).headline) in shown
    assert outputs(cell_with(nb, "frame = result.run.to_pandas()"), "image/png")  # the notebook's own figure, shown

    printed = "".join(outputs(cell_with(nb, "model = reglab.load_model("), "stdout"))
    got = re.fullmatch(r"test accuracy (\S+), test loss (\S+)\n", printed)
    assert got, printed
    setting = recommended_setting(run)
    arm = next(a for a in run.arms if ArmRecord.of(a).setting == setting and a["seed"] == run.config.seed_values[0])
    assert float(got[1]) == pytest.approx(arm["test"]["accuracy"], abs=1e-5)
    assert float(got[2]) == pytest.approx(arm["test"]["loss"], abs=1e-5)
