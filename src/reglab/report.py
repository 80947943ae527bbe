"""report.md from a run record alone: the setup, the figures, and a table of every arm's results.

Nothing here trains or computes statistics: numbers come from `analysis`, pictures from `plots`.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Iterable

from .analysis import (
    NEAR_ZERO, ArmSummary, Criteria, arm_summaries, norm_monotone_in_lambda, validation_trends, weight_magnitudes,
)
from .formatting import fmt, lam_label
from .plots import draw_all
from .record import RunRecord, write_atomic

REPORT_MD = "report.md"


def md(text: Any) -> str:
    """Escape text for a Markdown table cell: no raw HTML, no broken tables, no stray code spans."""
    s = html.escape(str(text), quote=False)
    for ch in "\\`*_[]|":
        s = s.replace(ch, "\\" + ch)
    return " ".join(s.split())


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def setup_rows(run: RunRecord) -> list[tuple[str, str]]:
    c, d, m = run.config, run.data, run.meta
    shape = "×".join(str(s) for s in d.image_shape)
    return [
        ("model", f"Input(({', '.join(map(str, d.image_shape))})) → Flatten → Dense(128, relu, kernel_regularizer=l2(λ)) → Dense(10, softmax)"),
        ("compile", 'optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]'),
        ("training", f"fit(epochs={c.epochs}, batch_size={c.batch_size}, validation_data=(x_val, y_val))"),
        ("λ values", ", ".join(lam_label(x) for x in c.lambdas)),
        ("seeds", ", ".join(str(s) for s in c.seed_values)),
        ("arms", str(len(run.arms))),
        ("engine", str(m.get("engine"))),
        ("dataset requested", md(d.requested)),
        ("dataset used", md(d.name) + (" (**fallback**)" if d.fallback_reason else "")),
        ("source", md(d.source)),
        ("split", md(d.split)),
        ("sizes", f"{d.n_train:,} train / {d.n_val:,} validation / {d.n_test:,} test; images {shape}, pixels scaled to [0, 1]"),
        ("data checksum (sha256)", f"`{d.sha256}`"),
        ("versions", md(", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items()))),
        ("started / ended (UTC)", f"{md(m.get('started_at'))} / {md(m.get('ended_at'))}"),
        ("status", md(m.get("status"))),
    ]


def results_rows(summaries: list[ArmSummary]) -> list[list[str]]:
    return [
        [
            lam_label(s.lam), str(s.seed), md(s.status), str(s.epochs_done),
            fmt(s.final_loss), fmt(s.final_val_loss), fmt(s.final_data_loss), fmt(s.final_val_data_loss),
            f"{fmt(s.best_val_data_loss)} (ep. {s.best_val_data_loss_epoch})",
            fmt(s.final_accuracy), fmt(s.final_val_accuracy),
            f"{fmt(s.best_val_accuracy)} (ep. {s.best_val_accuracy_epoch})",
            fmt(s.test_accuracy), fmt(s.test_data_loss),
            fmt(s.final_kernel_norm, 2), fmt(s.final_penalty),
        ]
        for s in summaries
    ]


RESULTS_HEADER = [
    "λ", "seed", "status", "epochs", "loss", "val_loss", "data loss", "val data loss", "best val data loss",
    "accuracy", "val accuracy", "best val accuracy", "test accuracy", "test data loss", "‖W‖ final", "penalty final",
]


def measured_sections(run: RunRecord, criteria: Criteria = Criteria()) -> list[str]:
    """Weight magnitudes and each arm's validation trend, with the thresholds the diagnosis used."""
    parts = []
    weights = weight_magnitudes(run, run.kernels())
    if weights:
        monotone = norm_monotone_in_lambda(weights)
        parts += [
            "## Weight magnitude",
            "",
            "Final regularized kernel of each arm (from kernels.npz): its norm, the shrink factor against the "
            f"same seed's λ = 0 arm, and the share of weights with |w| < {NEAR_ZERO:g}.",
            "",
            _table(["λ", "seed", "‖W‖", "shrink vs λ = 0", "near-zero share", "max \\|w\\|"], [
                [lam_label(w.lam), str(w.seed), fmt(w.norm, 2), fmt(w.shrink, 3), f"{100 * w.near_zero_fraction:.2f} %", fmt(w.max_abs)]
                for w in weights
            ]),
            "",
            "Does the final norm fall as λ rises? " + "; ".join(
                f"seed {seed}: {'yes' if ok else 'no'}" for seed, ok in sorted(monotone.items())) + ".",
            "",
        ]
    trends = validation_trends(run, criteria)
    parts += [
        "## Validation-loss trend",
        "",
        "Data losses here exclude the penalty. Criteria: *overfitting* when the validation data loss ends more "
        f"than {100 * criteria.overfit_rise:g} % above its minimum or more than {criteria.overfit_gap:g} above the "
        f"training data loss; *underfitting* when the final training accuracy is more than "
        f"{100 * criteria.underfit_points:g} points below the best arm's of the same seed; else *good fit*. "
        f"Slope: least squares over the last {criteria.slope_epochs} epochs.",
        "",
        _table(["λ", "seed", "best epoch", "min val data loss", "rise after min", "final slope / epoch",
                "loss gap (val − train)", "accuracy gap (train − val)", "diagnosis", "because"], [
            [lam_label(t.lam), str(t.seed), str(t.best_epoch), fmt(t.best_val_data_loss),
             f"{100 * t.rise_after_best:.1f} %" if t.rise_after_best == t.rise_after_best else "—",
             fmt(t.final_slope), fmt(t.final_loss_gap), fmt(t.final_accuracy_gap), f"**{t.diagnosis}**", md(t.reason)]
            for t in trends
        ]),
        "",
    ]
    return parts


def render_markdown(run: RunRecord, figures: dict[str, list[Path]]) -> str:
    d = run.data
    parts = [f"# reglab run `{md(run.run_dir.name)}`", ""]
    if d.fallback_reason:
        parts += [
            f"> **Data fallback.** {md(d.fallback_reason)}. This run used **{md(d.name)}** instead: "
            f"{d.n_train:,} / {d.n_val:,} / {d.n_test:,} real MNIST digits, not the full 60,000 / 10,000. "
            "Numbers here are not comparable with full-MNIST results.",
            "",
        ]
    parts += ["## Setup", "", _table(["setting", "value"], setup_rows(run)), ""]
    parts += [
        "## Results",
        "",
        "Final values are at the last recorded epoch. `loss` and `val_loss` are Keras's own History values, "
        "which **include the L2 penalty** λ·ΣW²; the *data loss* columns are the cross-entropy alone "
        "(the fair measure of fit and overfitting). Test metrics are measured once, after training, on the "
        "held-out test set. ‖W‖ is the Frobenius norm of the regularized Dense(128) kernel.",
        "",
        _table(RESULTS_HEADER, results_rows(arm_summaries(run))),
        "",
        *measured_sections(run),
        "## Figures",
        "",
        "Validation data loss of every arm (without penalty):",
        "",
    ]
    rel = lambda p: f"{p.parent.name}/{p.name}"  # noqa: E731
    overlays = figures.get("overlays", [])
    if overlays:
        parts += [f"![validation data loss by λ]({rel(overlays[0])})", ""]
    if len(overlays) > 1:
        parts += ["Kernel norm of every arm by epoch:", "", f"![kernel norm by λ]({rel(overlays[1])})", ""]
    parts += ["Per arm, in the original study's layout (loss left, accuracy right):", ""]
    for path, meta in zip(figures.get("arms", []), run.arms):
        parts += [f"### λ = {lam_label(float(meta['lambda']))}, seed {meta['seed']}", "", f"![λ = {meta['lambda']:g}]({rel(path)})", ""]
    parts += [
        "---",
        "The full written analysis (claims checked, seed confidence intervals) is not part of this report yet. "
        "Rebuild this report from the record with `reglab report RUN_DIR`.",
        "",
    ]
    return "\n".join(parts)


def build_report(run: RunRecord) -> Path:
    """Draw the figures and write report.md into the run directory; returns the report's path."""
    figures = draw_all(run)
    path = run.run_dir / REPORT_MD
    write_atomic(path, render_markdown(run, figures))
    return path
