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
GRID_INTRO = ("This answer comes from the grid (round 1, whose own report draws every strength) and its confirmation: "
              "the grid's best strength and λ = 0 trained again on fresh seeds and scored on the test set, which the "
              "choice never looked at, so the claim against λ = 0 is one comparison named in advance.")
GRID_REPORT = "rounds/01/report.html"


def build_adaptive_report(run_dir: Path, summary: str, rounds: Sequence[Round], region: tuple[float, float] | None,
                          chosen: float | None, grid: bool = False) -> Path:
    """figures/adaptive_path.png, report.md and report.html in `run_dir`; returns report.html's path. `grid`: a
    fixed grid and its confirmation (`reglab run --confirm`), whose first round's report is the one to read."""
    figure = run_dir / FIGURES / PATH_FIGURE
    if not figure.parent.is_dir():
        figure.parent.mkdir()
    draw_adaptive_path(adaptive_path_data(rounds, region, chosen), figure, "The adaptive sweep's path: which strengths, "
                       "when, and why")
    answer, _, path = summary.partition("\nHow:")
    intro, kind = (GRID_INTRO, "grid, confirmed") if grid else (INTRO, "adaptive sweep")
    grid_html = f"<p>The grid's own report: <a href='{GRID_REPORT}'>{GRID_REPORT}</a>.</p>" if grid else ""
    register(run_dir, [REPORT_MD, REPORT_HTML])
    md = (f"# reglab {kind}: {run_dir.name}\n\n{answer.strip()}\n\n{intro}\n\n"
          f"![path]({FIGURES}/{PATH_FIGURE})\n\n```\nHow:{path}\n```\n\nEach round's own record and report: "
          "`rounds/NN/` (`reglab report` draws it).\n")
    write_atomic(run_dir / REPORT_MD, md)
    png = base64.b64encode(figure.read_bytes()).decode("ascii")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>reglab {kind}: {html.escape(run_dir.name)}"
            "</title></head><body style='font-family:sans-serif;max-width:60em;margin:auto'>"
            f"<h1>reglab {kind}</h1><p><b>{html.escape(answer.strip())}</b></p><p>{html.escape(intro)}</p>{grid_html}"
            f"<img style='max-width:100%' alt='the sweep&#39;s path' src='data:image/png;base64,{png}'>"
            f"<pre>How:{html.escape(path)}</pre><p>Each round's own record and report: <code>rounds/NN/</code>.</p>"
            "</body></html>\n")
    out = run_dir / REPORT_HTML
    write_atomic(out, page)
    return out
