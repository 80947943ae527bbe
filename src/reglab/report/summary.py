"""The terminal summary after a run: one line per arm, penalty-free numbers first, then the answer.

Plain text wrapped at `width` columns (80 unless the terminal is wider); the table's setting column is as
wide as its longest label, and no row is cut.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from reglab.analysis.results import CANT_TELL
from reglab.formatting import fmt, lam_label, plural, setting_label
from reglab.report.answer import answer

if TYPE_CHECKING:
    from reglab.analysis.results import RunAnalysis

SHORT_DIAGNOSIS = {"too few epochs to tell": "too few epochs"}


def summary_lines(analysis: "RunAnalysis", width: int = 80, report_drawn: bool = True) -> list[str]:
    run = analysis.run
    c = run.config
    several = len(analysis.families) > 1
    head = (f"reglab run {run.run_dir.name}: {run.data.name}, {plural(len(run.arms), 'arm')}, "
            f"{plural(c.epochs, 'epoch')}, {plural(c.seeds, 'seed')}")
    lines = textwrap.wrap(head, width) or [head]
    rates = c.several_learning_rates
    rows = []  # (label, arm summary, fit) per arm: the setting column is as wide as its longest label
    for fa in analysis.families.values():
        trends = {t.arm: t.diagnosis for t in fa.trends}
        for s in fa.arms:
            if rates:
                label = setting_label(fa.family.name, s.strength, fa.learning_rate)
            else:
                label = f"{fa.label} {lam_label(s.strength)}" if several else lam_label(s.strength)
            rows.append((label, s, SHORT_DIAGNOSIS.get(trends.get(s.arm, "—"), trends.get(s.arm, "—"))))
    title = "setting" if several or rates else "λ"
    setting_w = min(max([len(title)] + [len(label) for label, _, _ in rows]), 38 if rates else 20 if several else 12)
    lines.append(f"{title:<{setting_w}} {'seed':>4} {'status':<9} {'val CE':>7} {'val acc':>7} {'test acc':>8} {'‖W‖':>6}  fit")
    for label, s, fit in rows:  # never cut: the diagnosis is the column a reader looks for
        lines.append(f"{label[:setting_w]:<{setting_w}} {s.seed:>4} {s.status[:9]:<9} {fmt(s.final_val_data_loss):>7} "
                     f"{fmt(s.final_val_accuracy):>7} {fmt(s.test_accuracy):>8} {fmt(s.final_kernel_norm, 2):>6}  {fit}")
    lines += textwrap.wrap("val CE: validation cross-entropy without the penalty; fit: the report's diagnosis", width)
    a = answer(analysis)
    lines += textwrap.wrap(a.headline, width)
    for cond in a.conditions:
        lines += textwrap.wrap(f"note: {cond}", width, subsequent_indent="  ")
    if _confirm_would_help(analysis):
        lines += textwrap.wrap("next: `reglab run --confirm` with the same grid and seeds trains the best and λ = 0 again on "
                               "3 fresh seeds, scored on the test set, and tests it there (6 arms more)", width,
                               subsequent_indent="  ")
    if report_drawn:
        lines.append(f"report: {run.run_dir / 'report.html'}")
    else:
        lines.append(f"report: not drawn (--no-report); `reglab report {run.run_dir}` draws it")  # a path is never wrapped
    return lines


def _confirm_would_help(analysis: "RunAnalysis") -> bool:
    """The grid could not tell whether its best beats λ = 0, and `--confirm` could run it (one family, one rate)."""
    rec = analysis.main.recommended
    return (len(analysis.families) == 1 and not analysis.run.config.several_learning_rates and rec is not None
            and rec.benefit == CANT_TELL)
