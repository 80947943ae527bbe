"""A run in Jupyter: `_repr_html_` shows the answer block and the key figure, not the whole report, and leaves
the notebook's plotting backend alone."""

from __future__ import annotations

import base64
import html
import re

import matplotlib
import pytest

from helpers import small_splits
from reglab import SweepConfig, run_sweep
from reglab.analysis.analyze import analyze
from reglab.report.answer import answer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("nb") / "run"
    return run_sweep(SweepConfig(lambdas=(0.0, 1e-3), seeds=1, epochs=1, dataset="mnist-5k"), out=out, splits=small_splits(),
                     live=False, make_report=False)


def test_an_analysis_shows_its_answer_and_key_figure(run, monkeypatch):
    def no_backend_switch(*args, **kwargs):
        raise AssertionError("the notebook's backend must not be switched")

    monkeypatch.setattr(matplotlib, "use", no_backend_switch)
    analysis = analyze(run)
    page = analysis._repr_html_()
    a = answer(analysis)
    assert html.escape(a.headline) in page and all(html.escape(line) in page for line in a.lines)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 1 and base64.b64decode(images[0]).startswith(PNG_MAGIC)
    assert "<html" not in page and "Setup" not in page  # a fragment with the answer, not the report
    assert str(run.run_dir) in page and "reglab report" in page  # no report drawn yet: says how to draw it


def test_a_run_shows_itself_the_same_way(run):
    page = run._repr_html_()
    assert html.escape(answer(analyze(run)).headline) in page and page.count("data:image/png;base64,") == 1
