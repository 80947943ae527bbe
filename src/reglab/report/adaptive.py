"""An adaptive sweep's own report: the answer, that it comes from an adaptive design, and its path in one figure.

Each round is an ordinary run with its own report (`reglab report RUN_DIR/rounds/NN`); this page sits above them.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from reglab.analysis.adaptive import Round
from reglab.figures.data import adaptive_path_data
from reglab.figures.draw import draw_adaptive_path
from reglab.fileio import write_atomic
from reglab.record.rundir import FIGURES, register

PATH_FIGURE = "adaptive_path.png"
REPORT_MD, REPORT_HTML = "report.md", "report.html"

INTRO = ("This answer comes from an adaptive sweep: the strengths and seeds were chosen in rounds from the rounds "
         "before, and the claim against λ = 0 rests on a final round of fresh seeds scored on the test set, which "
         "no choice looked at.")


def build_adaptive_report(run_dir: Path, summary: str, rounds: Sequence[Round], region: tuple[float, float] | None,
                          chosen: float | None) -> Path:
    """figures/adaptive_path.png, report.md and report.html in `run_dir`; returns report.html's path."""
    figure = run_dir / FIGURES / PATH_FIGURE
    if not figure.parent.is_dir():
        figure.parent.mkdir()
    draw_adaptive_path(adaptive_path_data(rounds, region, chosen), figure, "The adaptive sweep's path: which strengths, "
                       "when, and why")
    answer, _, path = summary.partition("\nHow:")
    register(run_dir, [REPORT_MD, REPORT_HTML])
    md = (f"# reglab adaptive sweep: {run_dir.name}\n\n{answer.strip()}\n\n{INTRO}\n\n"
          f"![path]({FIGURES}/{PATH_FIGURE})\n\n```\nHow:{path}\n```\n\nEach round's own record and report: "
          "`rounds/NN/` (`reglab report` draws it).\n")
    write_atomic(run_dir / REPORT_MD, md)
    png = base64.b64encode(figure.read_bytes()).decode("ascii")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>reglab adaptive sweep: {html.escape(run_dir.name)}"
            "</title></head><body style='font-family:sans-serif;max-width:60em;margin:auto'>"
            f"<h1>reglab adaptive sweep</h1><p><b>{html.escape(answer.strip())}</b></p><p>{html.escape(INTRO)}</p>"
            f"<img style='max-width:100%' alt='the sweep&#39;s path' src='data:image/png;base64,{png}'>"
            f"<pre>How:{html.escape(path)}</pre><p>Each round's own record and report: <code>rounds/NN/</code>.</p>"
            "</body></html>\n")
    out = run_dir / REPORT_HTML
    write_atomic(out, page)
    return out
