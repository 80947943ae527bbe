"""report.md and report.html from a run record alone, following the original study's sections.

Nothing here trains or computes statistics: numbers come from `analysis`, `aggregate` and `claims`,
pictures from `plots`; this module only turns them into sentences and tables (`document` blocks),
rendered once as Markdown and once as a self-contained HTML page.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from . import document as d
from .aggregate import (
    Choice, LambdaStats, Optimum, choose_lambda, epoch_bands, excluded_arms, final_values, gap_against_norm,
    lambda_stats, locate_optimum,
)
from .analysis import NEAR_ZERO, ArmSummary, Criteria, arm_summaries, norm_monotone_in_lambda, validation_trends, weight_magnitudes
from .claims import Claim, check_claims, pm
from .config import parse_family
from .families import FamilySummary, best_against_best, compare_families, family_view, primary_family, sweep_config
from .formatting import fmt, lam_label
from .fileio import write_atomic
from .record import RunRecord
from .rundir import locked, register
from .stats import Estimate

REPORT_MD = "report.md"
REPORT_HTML = "report.html"


def ci(e: Estimate, digits: int = 4) -> str:
    """A table cell: 'mean ± half' with several seeds, the value alone with one."""
    if e.n == 0 or not math.isfinite(e.mean):
        return "—"
    return f"{e.mean:.{digits}f} ± {e.half_width:.{digits}f}" if e.has_interval else f"{e.mean:.{digits}f}"


def setup_rows(run: RunRecord) -> list[list[d.Inline]]:
    c, data, m = run.config, run.data, run.meta
    sweep = sweep_config(run)
    grids = [(f, sweep.grid(f)) for f in sweep.regularizers]
    shape = "×".join(str(s) for s in data.image_shape)
    user = m.get("model") or {}
    model_row: d.Inline = d.code(f"Input(({', '.join(map(str, data.image_shape))})) → Flatten → Dense(128, relu, "
                                 "kernel_regularizer=l2(λ)) → Dense(10, softmax)")
    if c.model:
        model_row = [d.code(c.model), f" (your model, {user.get('parameters', '?'):,} parameters); L2(λ) on "
                     + ", ".join(user.get("regularized", [])) + (" — it declared no regularizer, so reglab put one on "
                                                                 "every Dense/Conv kernel" if user.get("chosen_by_reglab") else "")]
    rows: list[list[d.Inline]] = [
        ["model", model_row],
        ["compile", d.code('optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]')],
        ["training", [d.code(f"fit(epochs={c.epochs}, batch_size={c.batch_size}, validation_data=(x_val, y_val))"),
                      _clipped_batch_note(c.batch_size, data.n_train)]],
        ["early stopping", (f"patience {c.early_stopping} on the validation data loss, per arm (Keras's EarlyStopping); "
                            + ("test metrics and kernels use each arm's best-epoch weights" if c.restore_best
                               else "test metrics use each arm's last weights")) if c.early_stopping else "off"],
        ["λ values", ", ".join(lam_label(x) for x in c.lambdas)],
        *([["regularizers compared", "; ".join(f"{f}: " + ", ".join(lam_label(x) for x in grid) for f, grid in grids)]]
          if len(grids) > 1 else []),
        ["seeds", ", ".join(str(s) for s in c.seed_values)],
        ["arms (λ × seed)", str(len(run.arms))],
        ["engine", str(m.get("engine"))],
        ["dataset requested", str(data.requested)],
        ["dataset used", [str(data.name)] + ([d.strong(" (fallback)")] if data.fallback_reason else [])],
        ["source", str(data.source)],
        ["split", str(data.split)],
        ["sizes", f"{data.n_train:,} train / {data.n_val:,} validation / {data.n_test:,} test; images {shape}, pixels scaled to [0, 1]"],
        ["data checksum (sha256)", d.code(str(data.sha256))],
        ["versions", ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())],
        ["started / ended (UTC)", f"{m.get('started_at')} / {m.get('ended_at')}"],
        ["status", str(m.get("status"))],
    ]
    if data.fallback_reason:
        rows.insert(9, ["why the fallback", str(data.fallback_reason)])
    return rows


def _clipped_batch_note(batch_size: int, n_train: int) -> str:
    """What a batch above the data size means (Keras's one batch of every sample; the engines allocate for the
    data, not the request), so a run's setup never suggests a batch that did not exist."""
    if batch_size <= n_train:
        return ""
    return f": batch size {batch_size:,} (one batch of {n_train:,}: the whole training set, every epoch)"


RESULTS_HEADER = [
    "λ", "seed", "status", "epochs", "loss", "val_loss", "data loss", "val data loss", "best val data loss",
    "accuracy", "val accuracy", "best val accuracy", "test accuracy", "test data loss", "‖W‖ final", "penalty final",
]


def results_rows(summaries: list[ArmSummary]) -> list[list[d.Inline]]:
    return [
        [
            lam_label(s.lam), str(s.seed), s.status, str(s.epochs_done),
            fmt(s.final_loss), fmt(s.final_val_loss), fmt(s.final_data_loss), fmt(s.final_val_data_loss),
            f"{fmt(s.best_val_data_loss)} (ep. {s.best_val_data_loss_epoch})",
            fmt(s.final_accuracy), fmt(s.final_val_accuracy),
            f"{fmt(s.best_val_accuracy)} (ep. {s.best_val_accuracy_epoch})",
            fmt(s.test_accuracy), fmt(s.test_data_loss),
            fmt(s.final_kernel_norm, 2), fmt(s.final_penalty),
        ]
        for s in summaries
    ]


LAMBDA_HEADER = ["λ", "seeds", "val data loss", "val accuracy", "train data loss", "train accuracy",
                 "loss gap (val − train)", "‖W‖", "shrink vs λ = 0", "test accuracy", "test data loss"]


def lambda_rows(stats: list[LambdaStats]) -> list[list[d.Inline]]:
    return [[lam_label(s.lam), str(len(s.seeds)), ci(s["val_data_loss"]), ci(s["val_accuracy"]), ci(s["data_loss"]),
             ci(s["accuracy"]), ci(s["loss_gap"]), ci(s["kernel_norm"], 2), ci(s["shrink"], 3),
             ci(s["test_accuracy"]), ci(s["test_data_loss"])] for s in stats]


def _seeds_phrase(run: RunRecord) -> str:
    n = len(run.config.seed_values)
    return ("one seed per λ, so no interval can be given: every figure is a single training run"
            if n == 1 else f"{n} seeds per λ: each figure is the mean over seeds ± the half-width of its 95 % "
            "confidence interval (Student t)")


# ---------------------------------------------------------------- sections

def objective(run: RunRecord) -> list[d.Block]:
    blocks: list[d.Block] = [
        d.Heading(2, "Objective", "objective"),
        d.Para("How much L2 regularization should this model have, and what does it do? The original study trains a "
               "small dense network on MNIST once per L2 strength λ, plots training against validation loss and "
               "accuracy, and explains the result: L2 shrinks the weights, smaller weights generalize better, too "
               "small a λ still overfits, too large a λ underfits, and a moderate value balances the two. This report "
               "makes every one of those statements from this run's own numbers, with the criteria stated, and says "
               "when the data do not support them."),
    ]
    if run.data.fallback_reason:
        blocks.append(d.Note([d.strong("Data fallback. "), f"{run.data.fallback_reason}. This run used ",
                              d.strong(run.data.name), f" instead: {run.data.n_train:,} / {run.data.n_val:,} / "
                              f"{run.data.n_test:,} images, not the full dataset. Numbers here are not comparable "
                              "with full-dataset results."]))
    return blocks


def setup(run: RunRecord) -> list[d.Block]:
    blocks: list[d.Block] = [
        d.Heading(2, "Setup", "setup"),
        d.Para(f"Every arm is one training of the model below for one (λ, seed); {_seeds_phrase(run)}. Arms of one "
               "seed share their initial weights and batch order, so their differences are due to λ alone."),
        d.Table(["setting", "value"], setup_rows(run)),
    ]
    excluded = excluded_arms(run)
    if excluded:
        blocks.append(d.Note([d.strong("Left out of the comparisons: "), "; ".join(
            f"λ = {lam_label(lam)}, seed {seed} ({why})" for _, lam, seed, why in excluded) + "."]))
    return blocks


def _image(fig: Any) -> d.Image:
    return d.Image(fig.path, fig.title, fig.caption)


def results(run: RunRecord, stats: list[LambdaStats], figures: Any) -> list[d.Block]:
    blocks: list[d.Block] = [
        d.Heading(2, "Results", "results"),
        d.Para(["Final values are at the last epoch. Keras's own ", d.code("loss"), " and ", d.code("val_loss"),
                " include the L2 penalty λ·ΣW²; the ", d.em("data loss"), " is the cross-entropy alone, the fair "
                "measure of fit. Test metrics are measured once, after training, on the held-out test set."]),
        d.Heading(3, "By λ"),
        d.Table(LAMBDA_HEADER, lambda_rows(stats)),
        d.Para(f"With {_seeds_phrase(run)}."),
    ]
    if figures is not None:
        blocks += [_image(figures.lambda_curve), _image(figures.val_data_loss)]
        blocks += [d.Heading(3, "Training and validation curves")]
        blocks += _curves_left_out(run, figures)
        blocks += [_image(f) for f in figures.curves]
    blocks += [d.Heading(3, "Every arm"), d.Table(RESULTS_HEADER, results_rows(arm_summaries(run)))]
    return blocks


def _curves_left_out(run: RunRecord, figures: Any) -> list[d.Block]:
    """One sentence when only some arms (one seed) or λ values (several) have a curves figure (plots.MAX_CURVE_FIGURES)."""
    total, shown = getattr(figures, "curves_total", 0), len(figures.curves)
    if total <= shown:
        return []
    what, where = (("arms", "the “Every arm” table below") if run.config.seeds == 1 else
                   ("λ values", "the “By λ” table above and the “Every arm” table below"))
    return [d.Para(f"Curves are drawn for {shown} of the {total:,} {what}, evenly spaced over the λ grid (the smallest "
                   f"and largest λ and the chosen one included); the other {total - shown:,} are left out of the "
                   f"figures: their numbers, epoch by epoch, are in metrics.csv, and their final values in {where}.")]


def weight_section(run: RunRecord, stats: list[LambdaStats], figures: Any) -> list[d.Block]:
    blocks: list[d.Block] = [d.Heading(3, "Weight magnitude", "weights")]
    norm_sentence = "Final kernel norm ‖W‖ by λ: " + "; ".join(
        f"λ = {lam_label(s.lam)}: {pm(s['kernel_norm'], 2)}" + (
            f", {s['shrink'].mean:.3f}× the unregularized norm" if s.lam > 0 and s["shrink"].n else "")
        for s in stats) + "."
    blocks.append(d.Para(norm_sentence))
    weights = weight_magnitudes(run, run.kernels())
    if weights:
        monotone = norm_monotone_in_lambda(weights)
        yes = sum(monotone.values())
        blocks.append(d.Para(
            f"The norm falls strictly as λ rises in {yes} of {len(monotone)} seeds. Share of near-zero weights "
            f"(|w| < {NEAR_ZERO:g}) in the final kernel: " + "; ".join(
                f"λ = {lam_label(lam)}: {100 * sum(w.near_zero_fraction for w in ws) / len(ws):.1f} %"
                for lam, ws in _by_lam(weights)) + "."))
        blocks.append(d.Table(["λ", "seed", "‖W‖", "shrink vs λ = 0", "near-zero share", "max |w|"], [
            [lam_label(w.lam), str(w.seed), fmt(w.norm, 2), fmt(w.shrink, 3), f"{100 * w.near_zero_fraction:.2f} %", fmt(w.max_abs)]
            for w in weights]))
    else:
        blocks.append(d.Para("This run has no saved kernels (kernels.npz), so weight distributions cannot be shown."))
    if figures is not None:
        blocks.append(_image(figures.kernel_norm))
        if figures.histograms is not None:
            blocks.append(_image(figures.histograms))
    return blocks


def _by_lam(items: list[Any]) -> list[tuple[float, list[Any]]]:
    out: dict[float, list[Any]] = {}
    for it in items:
        out.setdefault(it.lam, []).append(it)
    return sorted(out.items())


def generalization_section(run: RunRecord, stats: list[LambdaStats], figures: Any) -> list[d.Block]:
    blocks: list[d.Block] = [
        d.Heading(3, "Generalization", "generalization"),
        d.Para("The generalization gap is the validation data loss minus the training data loss (both without the "
               "penalty: Keras's loss and val_loss include it and would mislead), and the training accuracy minus "
               "the validation accuracy. At the end: " + "; ".join(
                   f"λ = {lam_label(s.lam)}: loss gap {pm(s['loss_gap'])}, accuracy gap {pm(s['accuracy_gap'])}"
                   for s in stats) + "."),
    ]
    gn = gap_against_norm(run)
    if math.isfinite(gn.correlation):
        direction = ("larger final weights went with a larger gap" if gn.correlation > 0
                     else "larger final weights went with a smaller gap")
        blocks.append(d.Para(f"Across the {len(gn.points)} arms, the Pearson correlation between final ‖W‖ and the "
                             f"final loss gap is r = {gn.correlation:.2f}: {direction}. A correlation across arms "
                             "that differ in λ is not by itself proof that the norm causes the gap."))
    loss_gaps = {b.lam: b for b in epoch_bands(run, "loss_gap")}
    acc_gaps = {b.lam: b for b in epoch_bands(run, "accuracy_gap")}
    if loss_gaps:
        lams = sorted(loss_gaps)
        epochs = sorted(set().union(*(b.epochs for b in loss_gaps.values())))

        def cell(b: Any, e: int) -> str:
            return fmt(b.mean[b.epochs.index(e)]) if e in b.epochs else "—"

        blocks.append(d.Para("Gaps by epoch, mean over seeds: loss gap / accuracy gap. Keras's training loss and "
                             "accuracy are running means over each epoch's batches while the weights improve, so in "
                             "the first epoch the training loss lies above the end-of-epoch validation loss and the "
                             "gaps are negative."))
        blocks.append(d.Table(["epoch"] + [f"λ = {lam_label(x)}" for x in lams], [
            [str(e)] + [f"{cell(loss_gaps[x], e)} / {cell(acc_gaps[x], e)}" for x in lams]
            for e in epochs]))
    if figures is not None:
        blocks.append(_image(figures.gap_vs_norm))
    return blocks


def trend_section(run: RunRecord, criteria: Criteria) -> list[d.Block]:
    trends = validation_trends(run, criteria)
    blocks: list[d.Block] = [
        d.Heading(3, "Validation-loss trend", "trend"),
        d.Para(["Criteria (stated before looking at the numbers): ", d.em("overfitting"), " when the validation data "
                f"loss ends more than {100 * criteria.overfit_rise:g} % above its minimum or more than "
                f"{criteria.overfit_gap:g} above the training data loss; ", d.em("underfitting"), " when the final "
                f"training accuracy is more than {100 * criteria.underfit_points:g} points below the best arm's of "
                "the same seed (checked first); otherwise ", d.em("good fit"), ". Slope: least squares over the last "
                f"{criteria.slope_epochs} epochs."]),
    ]
    sentences = []
    for lam, ts in _by_lam(trends):
        counts: dict[str, int] = {}
        for t in ts:
            counts[t.diagnosis] = counts.get(t.diagnosis, 0) + 1
        verdicts = ", ".join(f"{k} in {v} of {len(ts)} seed{'s' if len(ts) > 1 else ''}" for k, v in sorted(counts.items()))
        first = ts[0]
        if len(ts) == 1 and first.diagnosis != "no data":
            sentences.append(f"λ = {lam_label(lam)}: the validation data loss is lowest at epoch {first.best_epoch} "
                             f"({first.best_val_data_loss:.4f}) and ends {100 * first.rise_after_best:.1f} % above that, "
                             f"with a final slope of {first.final_slope:+.4f} per epoch: {first.diagnosis} "
                             f"({first.reason}).")
        else:
            rises = [100 * t.rise_after_best for t in ts if math.isfinite(t.rise_after_best)]
            best_epochs = [t.best_epoch for t in ts if t.diagnosis != "no data"]
            span = (f"{min(rises):.1f} %" if rises and min(rises) == max(rises) else
                    f"{min(rises):.1f}–{max(rises):.1f} %" if rises else "—")
            sentences.append(f"λ = {lam_label(lam)}: the validation data loss is lowest at epoch "
                             f"{', '.join(map(str, best_epochs))} (by seed) and ends {span} above that minimum; "
                             f"{verdicts}.")
    blocks.append(d.Bullets(sentences))
    blocks.append(d.Table(["λ", "seed", "best epoch", "min val data loss", "rise after min", "final slope / epoch",
                           "loss gap (val − train)", "accuracy gap (train − val)", "diagnosis", "because"], [
        [lam_label(t.lam), str(t.seed), str(t.best_epoch), fmt(t.best_val_data_loss),
         f"{100 * t.rise_after_best:.1f} %" if math.isfinite(t.rise_after_best) else "—",
         fmt(t.final_slope), fmt(t.final_loss_gap), fmt(t.final_accuracy_gap), d.strong(t.diagnosis), t.reason]
        for t in trends]))
    return blocks


def claims_section(claims: list[Claim]) -> list[d.Block]:
    return [
        d.Heading(2, "Claims checked", "claims"),
        d.Para("Each usual claim about L2, marked supported, not supported or inconclusive (seed noise) by this run. "
               "Differences between λ values are paired by seed; an interval is a 95 % confidence interval."),
        d.Table(["claim", "verdict", "the numbers"], [[c.statement, d.strong(c.verdict), c.evidence] for c in claims]),
        d.Para("How each verdict is decided:"),
        d.Bullets([[d.em(c.statement), " " + c.rule] for c in claims]),
    ]


def _choice_sentence(c: Choice) -> str:
    what = "validation data loss" if c.metric == "val_data_loss" else "validation accuracy"
    s = f"By {what}, the best λ is {lam_label(c.lam)} ({pm(c.estimate)})"
    if not c.neighbours:
        return s + "."
    parts = []
    for n in c.neighbours:
        if n.distinguishable is None:
            parts.append(f"λ = {lam_label(n.other)} differs by {n.difference.mean:+.4f} (one seed: no interval)")
        else:
            parts.append(f"λ = {lam_label(n.other)} differs by {pm(n.difference)}, "
                         + ("distinguishable" if n.distinguishable else "not distinguishable from seed noise"))
    return s + "; against its neighbours: " + "; ".join(parts) + "."


def takeaway(run: RunRecord) -> list[d.Block]:
    finals = final_values(run)
    by_loss = choose_lambda(run, "val_data_loss", finals)
    by_acc = choose_lambda(run, "val_accuracy", finals)
    blocks: list[d.Block] = [d.Heading(2, "Key takeaway", "takeaway")]
    if by_loss is None:
        return blocks + [d.Para("No arm completed every epoch, so no λ can be recommended from this run.")]
    certain = all(n.distinguishable for n in by_loss.neighbours) if by_loss.neighbours else False
    use = "no L2 (λ = 0)" if by_loss.lam == 0 else f"λ = {by_loss.lam:g}"
    head = [d.strong(f"Use {use}"), f" for this model and data: validation data loss "
            f"{pm(by_loss.estimate)}, test accuracy {pm(by_loss.test_accuracy)}, test data loss "
            f"{pm(by_loss.test_data_loss)} (the test set was not used to choose)."]
    if by_loss.estimate.n < 2:
        head.append(" With one seed this is the best single run, not a measured difference: rerun with --seeds 3.")
    elif not certain:
        head.append(" It is not clearly better than every neighbour on the grid (see below): any λ within noise of it "
                    "is as good a choice for this data.")
    lams = sorted(finals["val_data_loss"])
    if len(lams) > 1 and by_loss.lam == 0.0:
        head.append(f" No λ tried improved on no regularization; a λ between 0 and {lam_label(lams[1])} still could.")
    elif len(lams) > 1 and by_loss.lam == lams[-1]:
        head.append(" It is the strongest λ tried; a wider grid could find a better value.")
    elif len(lams) > 1 and by_loss.lam == lams[0]:
        head.append(" It is the weakest λ tried; a wider grid could find a better value.")
    blocks += [d.Para(head), d.Bullets([_choice_sentence(by_loss)] + ([_choice_sentence(by_acc)] if by_acc else [])
                                        + [_optimum_sentence(o) for o in (locate_optimum(run, m, finals=finals)
                                                                          for m in ("val_data_loss", "val_accuracy")) if o])]
    return blocks


def _optimum_sentence(o: Optimum) -> str:
    what = "validation data loss" if o.metric == "val_data_loss" else "validation accuracy"
    if o.interval is None or o.flat is None:
        return (f"Optimum on the grid by {what}: λ = {lam_label(o.lam)} ({o.mean:.4f}); with one seed there is no "
                "interval and no flat region to give.")
    return (f"Optimum on the grid by {what}: λ = {lam_label(o.lam)} ({o.mean:.4f}); 95 % bootstrap interval of the "
            f"best λ over {o.n_seeds} seeds ({o.n_boot} resamples): {lam_label(o.interval[0])} … {lam_label(o.interval[1])}; "
            f"flat region (λ within seed noise of the best, paired): {lam_label(o.flat[0])} … {lam_label(o.flat[1])}.")


FAMILY_WORDS = {"l2": "L2 (λ·ΣW² in the loss)", "l1": "L1 (λ·Σ|W| in the loss)", "weight_decay":
                "decoupled weight decay (W ← W − λ·lr·W each step, Keras's AdamW-style weight_decay=λ)"}


def family_label(family: str) -> str:
    name, _, l2_ratio, _ = parse_family(family)
    if name.startswith("l1_l2"):
        return f"L1 + L2 (λ·Σ|W| + {l2_ratio:g}·λ·ΣW² in the loss)"
    return FAMILY_WORDS.get(name, name)


def _opt_cell(s: FamilySummary) -> str:
    o = s.optimum
    if o is None:
        return "—"
    if o.interval is None:
        return lam_label(o.lam)
    return f"{lam_label(o.lam)} [{lam_label(o.interval[0])} … {lam_label(o.interval[1])}]"


def _zeros_cell(z: tuple[float, float]) -> str:
    return "—" if not math.isfinite(z[1]) else f"{100 * z[1]:.1f} % ({100 * z[0]:.1f} % exactly 0)"


def families_figure(run: RunRecord) -> d.Image:
    """figures/families.png: every family's validation curve against its strength."""
    from .plots import FIGURES, draw_family_curves, family_curves_data

    path = run.run_dir / FIGURES / "families.png"
    seeds = f", mean of {run.config.seeds} seeds with 95 % CI" if run.config.seeds > 1 else ""
    draw_family_curves(family_curves_data(run), path, f"Regularizers compared: final validation metrics against strength{seeds}")
    return d.Image(path, "Final validation data loss and accuracy against strength, one line per regularizer",
                   "Final validation data loss (left) and accuracy (right) against each family's own strength (log "
                   f"scale){seeds}; a dashed line is the family's strength-0 arms, a star its best strength by "
                   "validation data loss. Strengths of different families are not on a common scale.")


def families_section(run: RunRecord, summaries: list[FamilySummary]) -> list[d.Block]:
    """The families side by side: best strength, sensitivity, validation and test at the best, weights."""
    header = ["regularizer", "arms", "best strength [95 % interval]", "flat region", "spread over grid",
              "val data loss at best", "val accuracy at best", "test accuracy at best", "test data loss at best",
              "‖W‖ at the largest strength / at 0", f"|w| < {NEAR_ZERO:g} at best", f"|w| < {NEAR_ZERO:g} at the largest"]
    rows: list[list[d.Inline]] = []
    for s in summaries:
        o, c = s.optimum, s.choice
        rows.append([
            s.family, str(s.n_arms), _opt_cell(s),
            "—" if o is None or o.flat is None else f"{lam_label(o.flat[0])} … {lam_label(o.flat[1])}",
            "—" if not math.isfinite(s.loss_range) else f"{s.loss_range:.4f}",
            ci(c.estimate) if c else "—", ci(s.val_accuracy) if s.val_accuracy else "—",
            ci(c.test_accuracy) if c else "—", ci(c.test_data_loss) if c else "—",
            ci(s.shrink_at_max, 3) if s.shrink_at_max else "—", _zeros_cell(s.zeros_at_best), _zeros_cell(s.zeros_at_max),
        ])
    blocks: list[d.Block] = [
        d.Heading(2, "Regularizers compared", "families"),
        d.Para("Each family was swept over its own strengths as arms of this one run, on the same seeds, "
               "initializations and batches, so the families differ by the regularizer alone. The sections after "
               f"this one analyse the {primary_family(run)} arms in detail."),
        d.Bullets([f"{s.family}: {family_label(s.family)}" for s in summaries]),
        d.Table(header, rows),
        families_figure(run),
        d.Para("Best strength: lowest mean final validation data loss (the interval is a bootstrap over seeds); flat "
               "region: the strengths within seed noise of the best (paired per seed); spread: worst minus best mean "
               "validation data loss over the family's grid — how much choosing the strength matters. Test numbers "
               "are at the strength chosen on validation."),
    ]
    sentences = []
    families = {s.family for s in summaries}
    for s in summaries:
        if s.family.startswith("l1") and math.isfinite(s.zeros_at_max[1]):
            sentences.append(f"{s.family}: at its largest strength {100 * s.zeros_at_max[1]:.1f} % of the kernel's weights "
                             f"are within {NEAR_ZERO:g} of zero ({100 * s.zeros_at_max[0]:.1f} % exactly zero: Adam keeps "
                             "an L1-pinned weight hovering near 0 rather than on it); at the best strength, "
                             f"{100 * s.zeros_at_best[1]:.1f} %.")
        if s.family in ("l2", "weight_decay") and s.shrink_at_max:
            sentences.append(f"{s.family}: the largest strength leaves the kernel at {pm(s.shrink_at_max, 3)} of its "
                             "unregularized norm.")
    if {"l2", "weight_decay"} <= families:
        cmp = best_against_best(summaries, "weight_decay", "l2")
        if cmp is not None:
            e = cmp.difference
            verdict = ("one seed: no interval" if not e.has_interval else
                       "distinguishable" if e.excludes_zero() else "not distinguishable from seed noise")
            sentences.append(f"Weight decay at its best against L2 at its best, validation data loss per seed: "
                             f"{pm(e)} ({verdict}). Their strengths are not interchangeable (Loshchilov & Hutter, "
                             "ICLR 2019): compare the best strengths above, not equal numbers.")
    if sentences:
        blocks.append(d.Bullets(sentences))
    return blocks


def l2_note() -> list[d.Block]:
    return [
        d.Heading(2, "What “L2 in Keras” means", "l2-in-keras"),
        d.Para([d.code("kernel_regularizer=keras.regularizers.l2(λ)"), " adds λ·ΣW² — λ times the sum of the "
                "squared entries of that layer's kernel (no ½, bias not included) — to the loss that training "
                "minimizes. Keras's reported ", d.code("loss"), " and ", d.code("val_loss"), " include this penalty, "
                "so they rise with λ even when the fit to the data is unchanged; this report's ", d.em("data loss"),
                " columns are the cross-entropy without it."]),
        d.Para(["The penalty's gradient 2λW joins the data gradient before the optimizer sees it. Under Adam that sum "
                "is rescaled per weight by Adam's running moments, so weights with large data gradients are shrunk "
                "less. That is not the same as decoupled weight decay (AdamW, ", d.code("weight_decay="),
                " in Keras optimizers), which shrinks every weight by the same factor each step, outside Adam's "
                "rescaling; equal numbers for λ and weight decay do not give equal models."]),
    ]


def build_blocks(run: RunRecord, figures: Any, criteria: Criteria = Criteria()) -> list[d.Block]:
    stats = lambda_stats(run)
    blocks: list[d.Block] = [d.Heading(1, f"reglab report: {run.run_dir.name}")]
    blocks += objective(run)
    blocks += setup(run)
    blocks += results(run, stats, figures)
    blocks += [d.Heading(2, "Analysis", "analysis"),
               d.Para("Sentences below are generated from the numbers of this run; nothing is written in advance.")]
    blocks += weight_section(run, stats, figures)
    blocks += generalization_section(run, stats, figures)
    blocks += trend_section(run, criteria)
    blocks += claims_section(check_claims(run, criteria))
    blocks += takeaway(run)
    blocks += l2_note()
    blocks += [d.Para(["Rebuild this report from the record with ", d.code("reglab report RUN_DIR"), "."])]
    return blocks


def build_report(run: RunRecord) -> Path:
    """Draw the figures, write report.md and report.html into the run directory; returns report.html's path.
    A sweep of several regularizer families gets the single-family sections for its primary family
    (L2 when present) and a side-by-side comparison of all of them."""
    from .plots import draw_all

    with locked(run.run_dir):  # one writer at a time: a run in progress, or another report, is refused
        if run.config.regularizers == ("l2",):
            figures = draw_all(run)
            blocks = build_blocks(run, figures)
        else:
            kernels = run.kernels()  # read once: the primary family's figures and every family's summary
            view = family_view(run, primary_family(run))
            figures = draw_all(view, view.own(kernels))
            blocks = build_blocks(view, figures)
            at = next(i for i, b in enumerate(blocks) if isinstance(b, d.Heading) and b.anchor == "analysis")
            blocks[at:at] = families_section(run, compare_families(run, kernels))
        register(run.run_dir, [REPORT_MD, REPORT_HTML])
        write_atomic(run.run_dir / REPORT_MD, d.to_markdown(blocks, run.run_dir))
        path = run.run_dir / REPORT_HTML
        write_atomic(path, d.to_html(blocks, f"reglab report: {run.run_dir.name}"))
    return path
