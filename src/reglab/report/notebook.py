"""How a run shows itself in Jupyter (`_repr_html_`): the answer block and the key figure, not the whole report.

The key figure is the report's first one: "which strength" (each strength against the recommended one),
or with several learning rates the main family's heat map. It is drawn in memory with matplotlib's
object API, never through pyplot, so the notebook's own plotting backend is left as it was.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING

from reglab.analysis.analyze import analyze
from reglab.figures import figure_units
from reglab.figures.axes import RC
from reglab.rendering import register
from reglab.report.answer import answer

if TYPE_CHECKING:
    from reglab.analysis.results import RunAnalysis
    from reglab.record.reader import RunRecord


def key_figure_png(analysis: RunAnalysis, dpi: int = 72) -> bytes | None:
    """The key figure as PNG bytes; None when there is nothing to recommend (no arm completed)."""
    import matplotlib
    from matplotlib.figure import Figure

    units = figure_units(analysis)
    unit = units.get("which_strength") or next((u for name, u in units.items() if name.startswith("heat_map")), None)
    if unit is None:
        return None
    layout = dict(unit.layout)
    figsize = layout.pop("figsize", None)
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=figsize)
        axes = fig.subplots(**layout) if layout else fig.subplots()
        unit.render(fig, axes, unit.data, *unit.args)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def analysis_html(analysis: RunAnalysis, figure: bool = True) -> str:
    """The answer (headline, evidence lines, conditions) and the key figure, as one HTML fragment."""
    a = answer(analysis)
    run = analysis.run
    parts = [f'<div class="reglab-run"><p style="font-weight:bold">{html.escape(a.headline)}</p>']
    if a.lines:
        parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in a.lines) + "</ul>")
    if a.conditions:
        parts.append(f"<p><em>For the whole run: {html.escape('; '.join(a.conditions))}.</em></p>")
    png = key_figure_png(analysis) if figure else None
    if png is not None:
        parts.append(f'<img style="max-width:100%" alt="key figure" src="data:image/png;base64,'
                     f'{base64.b64encode(png).decode("ascii")}">')
    report = run.run_dir / "report.html"
    where = f"the whole report: {report}" if report.is_file() else f"`reglab report {run.run_dir}` draws the whole report"
    parts.append(f"<p><small>{html.escape(str(run.run_dir))}: {len(run.arms)} arms, "
                 f"{run.meta.get('status')}; {html.escape(where)}</small></p></div>")
    return "".join(parts)


def record_html(run: RunRecord) -> str:
    """A record in Jupyter: its analysis, as `analysis_html`."""
    return analysis_html(analyze(run))


register("analysis_html", analysis_html)
register("record_html", record_html)
