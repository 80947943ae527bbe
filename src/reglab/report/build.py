"""report.md and report.html from a run's analysis: the answer first, then the original study's sections.

Nothing here trains or computes statistics: every number comes from `analyze.RunAnalysis`, every picture
from `figures`; this module only turns them into sentences, tables and captions (`document` blocks),
rendered once as Markdown and once as a self-contained HTML page. Conditions that hold for the whole
run (one seed, fallback data) are said once, under the answer.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import cast

from reglab.analysis.analyze import analyze
from reglab.analysis.arms import NEAR_ZERO
from reglab.analysis.claims import diff_text, pm, seeds_agree, strength_words
from reglab.analysis.coupling import MIN_RATES, MIN_STRENGTHS, RULE, tau_text
from reglab.analysis.diagnose import criteria_text
from reglab.analysis.families import best_against_best, sweep_config
from reglab.analysis.results import FamilyAnalysis, RunAnalysis, WeightStats
from reglab.analysis.stats import Estimate
from reglab.config import Arm, SweepConfig
from reglab.data.splits import DataInfo
from reglab.figures import FigureFile, Figures, draw_all, heat_map_name
from reglab.fileio import write_atomic
from reglab.formatting import fmt, lam_label, plural
from reglab.model.kept import RECOMMENDED_KERAS, KeptModel, keep_recommended
from reglab.record.reader import RunRecord
from reglab.record.rundir import locked, register
from reglab.report import document as d
from reglab.report.answer import answer
from reglab.settings import DEFAULT_LEARNING_RATE, Family

REPORT_MD = "report.md"
REPORT_HTML = "report.html"


def ci(e: Estimate | None, digits: int = 4) -> str:
    """A table cell: 'mean ± half' with several seeds, the value alone with one, and "(the seeds agree)" where
    several seeds give a spread that is 0 at the printed digits (never "± 0.0000")."""
    if e is None or e.n == 0 or not math.isfinite(e.mean):
        return "—"
    if seeds_agree(e, digits):
        return f"{e.mean:.{digits}f} (the seeds agree)"
    return f"{e.mean:.{digits}f} ± {e.half_width:.{digits}f}" if e.has_interval else f"{e.mean:.{digits}f}"


def split_words(data: DataInfo) -> str:
    """How the data were split, without the sizes again where its description repeats them."""
    sizes = f"{data.n_train:,} / {data.n_val:,} / {data.n_test:,} (train / validation / test)"
    text = data.split.replace(" " + sizes, "").replace(sizes, "").strip()
    return text or data.split


def _image(fig: FigureFile, caption: str) -> d.Image:
    return d.Image(fig.path, fig.title, caption)


# ---------------------------------------------------------------- the answer

def answer_blocks(analysis: RunAnalysis, figures: Figures | None) -> list[d.Block]:
    a = answer(analysis)
    blocks: list[d.Block] = [d.Answer(a.headline, list(a.lines))]
    if a.conditions:
        blocks.append(d.Note([d.strong("For the whole run:"), " " + "; ".join(a.conditions) + "."]))
    if figures is not None and getattr(figures, "which_strength", None) is not None:
        fa = analysis.main
        blocks.append(_image(cast(FigureFile, figures.which_strength), (  # not None (checked above; mypy does not narrow getattr)
            f"Each {strength_words(fa)} minus the recommended one (95 % intervals, seeds and validation "
            "examples); shaded: shown within the stated margin of it. Lower loss, higher accuracy is better.")))
    return blocks


def kept_model_blocks(run: RunRecord, kept: KeptModel | None) -> list[d.Block]:
    """Where the recommended model is (recommended.keras), how to load it and how to prepare its inputs."""
    if kept is None:
        return []
    what = f"{kept.setting.label(with_learning_rate=run.config.several_learning_rates)}, seed {kept.seed}"
    if kept.path is None:
        return [d.Para(f"The recommended model — {what} — is not saved as a Keras file: {kept.problem.rstrip('.')}.")]
    content: list[str | d.Span] = [
        f"The recommended model — {what} — is saved, compiled, with its final weights, in ", d.code(RECOMMENDED_KERAS),
        ": load it with ", d.code(f'keras.models.load_model("{RECOMMENDED_KERAS}")'), " or ", d.code("reglab.load_model(RUN_DIR)"),
        " (any arm: ", d.code("reglab.load_model(RUN_DIR, setting=reglab.Setting(…), seed=…)"), ").",
    ]
    if run.data.feature_mean:
        content += [" Its inputs are the features standardized with the training set's statistics: subtract ",
                    d.code("run.data.feature_mean"), " and divide by ", d.code("run.data.feature_std"),
                    " (", d.code("run = reglab.load_run(RUN_DIR)"), ") before calling it."]
    else:
        content.append(f" Its inputs are prepared as this run's were: {run.data.scaling}.")
    return [d.Para(content)]


# ---------------------------------------------------------------- setup

def _model_row(run: RunRecord, family: Family) -> d.Inline:
    data, m = run.data, run.meta
    if run.config.model:
        user = m.get("model") or {}
        params = user.get("parameters")
        return [d.code(run.config.model), f" (your model{f', {params:,} parameters' if isinstance(params, int) else ''}); "
                f"{family.label} on " + ", ".join(user.get("regularized", []))
                + (" (it declared no regularizer, so reglab put one on every Dense/Conv kernel)" if user.get("chosen_by_reglab") else "")]
    reg = f", {family.keras}" if family.in_loss else ""
    flatten = "" if data.is_table else " → Flatten"
    return d.code(f"Input(({', '.join(map(str, data.input_shape))}{',' if data.is_table else ''})){flatten} → "
                  f"Dense(128, relu{reg}) → Dense({data.n_classes}, softmax)")


def _inputs_words(data: DataInfo) -> str:
    """What one sample is and how it was scaled."""
    what = (f"{data.input_shape[0]:,} features per sample" if data.is_table
            else f"images {'×'.join(map(str, data.input_shape))}")
    return f"{what}; {data.scaling}"


def _classes_words(data: DataInfo) -> str:
    """The class count, and which label each index stands for when that is not the index itself."""
    k = data.n_classes
    if data.classes == tuple(str(i) for i in range(k)):
        return f"{k} classes, labels 0–{k - 1}"
    shown = ", ".join(f"{i} = {name}" for i, name in enumerate(data.classes[:12])) + (", …" if k > 12 else "")
    how = "the data's labels renumbered 0–" if data.labels_renumbered else "labels 0–"
    return f"{k} classes ({how}{k - 1}: {shown})"


def _optimizer_code(sweep: SweepConfig, family: Family) -> str:
    """The optimizer as Keras code: the study's "adam" when that is what ran."""
    decay = ", weight_decay=λ" if family.decay and len(sweep.regularizers) == 1 else ""
    one_rate = len(sweep.learning_rates) == 1
    lr = f"learning_rate={lam_label(sweep.learning_rates[0])}" if one_rate else "learning_rate=lr"
    if sweep.optimizer == "sgd":
        return f"SGD({lr}, momentum=0.9{decay})"
    if one_rate and sweep.learning_rates[0] == DEFAULT_LEARNING_RATE:
        return "Adam(weight_decay=λ)" if decay else '"adam"'
    return f"Adam({lr}{decay})"


def setup_rows(analysis: RunAnalysis) -> list[tuple[str, d.Inline]]:
    run = analysis.run
    c, data = run.config, run.data
    sweep = sweep_config(run)
    family = analysis.main.family
    optimizer = _optimizer_code(sweep, family)
    rows: list[tuple[str, d.Inline]] = [
        ("model", _model_row(run, family)),
        ("compile", d.code(f'optimizer={optimizer}, loss="sparse_categorical_crossentropy", metrics=["accuracy"]')),
        ("training", [d.code(f"fit(epochs={c.epochs}, batch_size={c.batch_size}, validation_data=(x_val, y_val))"),
                      _clipped_batch_note(c.batch_size, data.n_train)]),
    ]
    if c.early_stopping:
        rows.append(("early stopping", f"patience {c.early_stopping} on the validation data loss, per arm"
                     + ("; test metrics use each arm's best-epoch weights" if c.restore_best else "")))
    for f in sweep.regularizers:
        fam = Family.of(f)
        rows.append((f"{fam.label} strengths λ", ", ".join(lam_label(x) for x in sweep.grid(f)) + f" ({fam.formula})"))
    if sweep.several_learning_rates or sweep.learning_rates != (DEFAULT_LEARNING_RATE,):
        rows.append(("learning rates", ", ".join(lam_label(x) for x in sweep.learning_rates)))
    rows += [
        ("seeds", f"{plural(c.seeds, 'seed')}: " + ", ".join(str(s) for s in c.seed_values)),
        ("arms", f"{len(sweep_arms(run)):,} (settings × seeds)"),
        ("engine", str(run.meta.get("engine"))),
        ("data", str(data.name) + (f" (instead of {data.requested}: see the note under the answer)" if data.fallback_reason else "")),
        ("source", str(data.source)),
        ("split", f"{data.n_train:,} train / {data.n_val:,} validation / {data.n_test:,} test ({split_words(data)})"),
        ("inputs", _inputs_words(data)),
        ("classes", _classes_words(data)),
        ("data checksum (sha256)", d.code(str(data.sha256))),
        ("versions", ", ".join(f"{k} {v}" for k, v in run.meta.get("versions", {}).items())),
        ("started / ended (UTC)", f"{run.meta.get('started_at')} / {run.meta.get('ended_at')}"),
        ("status", str(run.meta.get("status"))),
    ]
    return rows


def sweep_arms(run: RunRecord) -> list[Arm]:
    return sweep_config(run).arms()


def _clipped_batch_note(batch_size: int, n_train: int) -> str:
    """What a batch above the data size means (Keras's one batch of every sample), so the setup never
    suggests a batch that did not exist."""
    if batch_size <= n_train:
        return ""
    return f": batch size {batch_size:,} (one batch of {n_train:,}: the whole training set, every epoch)"


def setup(analysis: RunAnalysis) -> list[d.Block]:
    blocks: list[d.Block] = [
        d.Heading(2, "Setup", "setup"),
        d.Para("Each arm trains this model once per setting and seed; arms of one seed share initial weights and batch "
               "order, so their differences come from the setting."),
        d.KeyValues(setup_rows(analysis)),
    ]
    excluded = [x for fa in analysis.families.values() for x in fa.excluded]
    if excluded:
        blocks.append(d.Note([d.strong("Left out of the comparisons:"), " " + "; ".join(
            f"λ = {lam_label(lam)}, seed {seed} ({why})" for _, lam, seed, why in excluded) + "."]))
    return blocks


# ---------------------------------------------------------------- results

STRENGTH_HEADER = ["λ", "seeds", "val data loss", "val accuracy", "train data loss", "train accuracy", "‖W‖",
                   "‖W‖ / ‖W at 0‖", "test accuracy"]


def strength_rows(fa: FamilyAnalysis) -> list[list[d.Inline]]:
    rec = fa.recommended.strength if fa.recommended else None
    # s.values[m], not s[m]: mypy types a NamedTuple's [] as the tuple's, not as LambdaStats.__getitem__
    return [[d.strong(lam_label(s.strength)) if s.strength == rec else lam_label(s.strength), str(len(s.seeds)), ci(s.values["val_data_loss"]),
             ci(s.values["val_accuracy"]), ci(s.values["data_loss"]), ci(s.values["accuracy"]), ci(s.values["kernel_norm"], 2),
             ci(s.values["shrink"], 3), ci(s.values["test_accuracy"])] for s in fa.stats]


ARM_HEADER = ["λ", "seed", "status", "epochs", "val data loss", "val accuracy", "train data loss", "train accuracy",
              "test accuracy", "‖W‖", "diagnosis"]


def arm_rows(fa: FamilyAnalysis) -> list[list[d.Inline]]:
    trends = {t.arm: t for t in fa.trends}
    return [[lam_label(s.strength), str(s.seed), s.status, str(s.epochs_done), fmt(s.final_val_data_loss), fmt(s.final_val_accuracy),
             fmt(s.final_data_loss), fmt(s.final_accuracy), fmt(s.test_accuracy), fmt(s.final_kernel_norm, 2),
             trends[s.arm].diagnosis if s.arm in trends else "—"] for s in fa.arms]


def results(analysis: RunAnalysis, figures: Figures | None) -> list[d.Block]:
    fa = analysis.main
    seeds = analysis.run.config.seeds
    mean = f", mean ± 95 % interval over {seeds} seeds" if seeds > 1 else ""
    blocks: list[d.Block] = [
        d.Heading(2, "Results", "results"),
        d.Para(f"Final values by {strength_words(fa)}{mean}; data losses are the cross-entropy "
               f"{fa.family.penalty_words}; the recommended strength is in bold."),
        d.Table(STRENGTH_HEADER, strength_rows(fa)),
    ]
    if figures is None:
        return blocks + [d.Heading(3, "Every arm"), d.Table(ARM_HEADER, arm_rows(fa))]
    blocks.append(_image(figures.val_data_loss, f"Validation data loss ({fa.family.penalty_words}) by epoch, one line "
                                                f"per strength{mean}."))
    blocks.append(d.Heading(3, "Training and validation curves"))
    shown, total = len(figures.curves), getattr(figures, "curves_total", len(figures.curves))
    if total > shown:
        blocks.append(d.Para(f"Curves for {shown} of the {total:,} {'arms' if seeds == 1 else 'strengths'}, evenly "
                             "spaced over the grid (the ends and the recommended strength included); every arm's "
                             "numbers are in the table below and in metrics.csv."))
    loss_words = ("solid: Keras's loss including the penalty, dashed: the data loss without it" if fa.family.in_loss
                  else "weight decay adds no penalty, so loss and data loss coincide")
    blocks.append(d.Para(f"Loss left ({loss_words}), accuracy right; all curve figures share their y-axes."))
    blocks += [d.Image(f.path, f.title) for f in figures.curves]
    if seeds > 1 or any(s.status != "completed" for s in fa.arms):  # one seed: the table above is every arm
        blocks += [d.Heading(3, "Every arm"), d.Table(ARM_HEADER, arm_rows(fa))]
    return blocks


# ---------------------------------------------------------------- analysis

def weight_section(fa: FamilyAnalysis, figures: Figures | None) -> list[d.Block]:
    blocks: list[d.Block] = [d.Heading(3, "Weights", "weights")]
    stats = fa.stats
    blocks.append(d.Para("Final ‖W‖ by strength: " + "; ".join(
        f"λ = {lam_label(s.strength)}: {pm(s.values['kernel_norm'], 2)}"  # s.values[m]: see strength_rows
        + (f" (×{s.values['shrink'].mean:.2f})" if s.strength > 0 and s.values["shrink"].n else "") for s in stats)
        + " (× the same seed's ‖W‖ at λ = 0)."))
    if fa.weights:
        dead = max(w.dead_rows for w in fa.weights)
        by_lam: dict[float, list[WeightStats]] = {}
        for w in fa.weights:
            by_lam.setdefault(w.setting.strength, []).append(w)
        share = "; ".join(f"λ = {lam_label(lam)}: {100 * sum(w.near_zero for w in ws) / len(ws):.1f} %"
                          + (f" ({100 * sum(w.exactly_zero for w in ws) / len(ws):.1f} % exactly 0)"
                             if any(w.exactly_zero for w in ws) else "")
                          for lam, ws in sorted(by_lam.items()))
        text = f"Share of weights with |w| < {NEAR_ZERO:g}"
        if dead:
            blank = "constant columns" if fa.view.data.is_table else "blank pixels"
            text = (f"{plural(dead, 'input feature')} never vary in the training data ({blank}): only the penalty "
                    "moves their weights, to about 0 (Adam makes its small gradient full-size steps), so they are set "
                    "apart. " + text + " over the live inputs")
        blocks.append(d.Para(text + ": " + share + "." + (
            " For L1 a large share means sparsity in effect (Adam keeps a pinned weight hovering within about one "
            "learning rate of 0, rarely on it)." if fa.family.l1 else "")))
    else:
        blocks.append(d.Para("This run has no saved kernels (kernels.npz), so weight distributions cannot be shown."))
    if figures is not None:
        blocks.append(_image(figures.kernel_norm, "‖W‖ of the regularized kernel by epoch, one line per strength."))
        if figures.weight_histograms is not None:
            blocks.append(_image(figures.weight_histograms, "Final weights of the regularized kernel per strength, on "
                                                            "shared bins, log count axis."))
    return blocks


def generalization_section(fa: FamilyAnalysis, figures: Figures | None) -> list[d.Block]:
    blocks: list[d.Block] = [
        d.Heading(3, "Generalization", "generalization"),
        d.Para("Final generalization gap (validation minus training data loss, both penalty-free): " + "; ".join(
            f"λ = {lam_label(s.strength)}: {pm(s.values['loss_gap'])}" for s in fa.stats) + "."),  # s.values[m]: see strength_rows
    ]
    gn = fa.gap_norm
    if math.isfinite(gn.correlation):
        direction = "larger weights went with a larger gap" if gn.correlation > 0 else "larger weights went with a smaller gap"
        blocks.append(d.Para(f"Across {len(gn.points)} arms, Pearson r = {gn.correlation:.2f} between final ‖W‖ and "
                             f"the gap: {direction} (correlation, not proof of cause)."))
    if figures is not None:
        blocks.append(_image(figures.gap_vs_norm, "Final generalization gap against final ‖W‖, one point per arm."))
    return blocks


def diagnosis_section(analysis: RunAnalysis) -> list[d.Block]:
    fa = analysis.main
    rows = []
    for t in fa.trends:
        change = "—" if not math.isfinite(t.rise) else (
            f"{t.rise:+.4f}" + (f" (±{t.rise_noise:.4f})" if math.isfinite(t.rise_noise) else ""))
        rows.append([lam_label(t.strength), str(t.seed), str(t.best_epoch or "—"), change, d.strong(t.diagnosis), t.reason])
    return [
        d.Heading(3, "Convergence and fit", "fit"),
        d.Bullets(criteria_text(analysis.criteria)),
        d.Table(["λ", "seed", "lowest at epoch", "change over the late window (95 %)", "diagnosis", "because"], rows),
    ]


def noise_section(analysis: RunAnalysis) -> list[d.Block]:
    fa = analysis.main
    rec = fa.recommended
    chosen = [
        d.Para(["How the answer was chosen and confirmed. ", d.strong("Chosen"), ": the strength with the lowest mean "
                "validation data loss over the seeds every setting completed. ", d.strong("Confirmed"), ": its benefit over "
                "no regularization is read from intervals that hold for ", d.em("every"), " strength against λ = 0 at once "
                "(Šidák: each at the level that keeps all of them true together), so picking the best of many does not "
                "inflate the claim; each bound holds at 95 %. \"Use\" is written only when that interval lies wholly on "
                "the better side; \"within the margin\" only when it lies wholly inside the stated margin "
                f"(validation data loss {analysis.criteria.loss_margin:g}, accuracy "
                f"{100 * analysis.criteria.accuracy_margin:g} points); otherwise the answer says it can't tell. One seed "
                "never claims: seed-to-seed noise is then unmeasured."]),
    ]
    if rec is not None and rec.baseline is not None:
        chosen.append(d.Para(f"This run: best − λ = 0 {diff_text(rec.baseline.difference)} over {len(rec.seeds)} "
                             f"seed{'s' if len(rec.seeds) != 1 else ''} ({rec.baseline.difference.method or 'no interval'}): "
                             f"{rec.benefit}."))
    if rec is not None and rec.diverged:
        chosen.append(d.Para("Diverged in some seed, never recommended: "
                             + ", ".join(lam_label(s.strength) for s in rec.diverged) + "."))
    return [
        d.Heading(3, "How sure", "noise"),
        *chosen,
        d.Para(["Other intervals are 95 %, for differences paired on seeds (shared initialization and batches) and on "
                "validation examples (all arms see the same ones). Their variance is the crossed random-effects "
                "estimate (seeds, examples, and their interaction counted once), with Satterthwaite's degrees of "
                "freedom, so they cover ", d.em("both"), " sources of noise; where the best strength falls comes from "
                "2,000 bootstrap resamples of seeds and examples. Conclusions hold for this training set (it is not "
                "resampled). This run: ", fa.noise_method, "."]),
    ]


def claims_section(fa: FamilyAnalysis) -> list[d.Block]:
    return [
        d.Heading(2, "Claims checked", "claims"),
        d.Para(f"The original study's statements about {fa.label}, marked by this run's numbers; the rules "
               "follow the table."),
        d.Table(["claim", "verdict", "the numbers"], [[c.statement, d.strong(c.verdict), c.evidence] for c in fa.claims]),
        d.Bullets([[d.em(c.statement[:-1] if c.statement.endswith(".") else c.statement), ": " + c.rule] for c in fa.claims]),
    ]


def recommendation_section(fa: FamilyAnalysis) -> list[d.Block]:
    rec = fa.recommended
    if rec is None:
        return []
    items = []
    for r, what in ((rec, "validation data loss"), (fa.by_accuracy, "validation accuracy")):
        if r is None:
            continue
        line = f"By {what}: λ = {lam_label(r.strength)} ({pm(r.estimate)})"
        if r.interval:
            line += f"; under resampling the best falls in {lam_label(r.interval[0].strength)} … {lam_label(r.interval[1].strength)}"
        line += (f"; shown within {r.margin:g} of it: {lam_label(r.flat[0].strength)} … {lam_label(r.flat[1].strength)}"
                 if r.flat[0] != r.flat[1] else f"; no other strength shown within {r.margin:g} of it")
        items.append(line + ".")
    for c in rec.neighbours:
        items.append(f"Recommended minus λ = {lam_label(c.other.strength)}: {diff_text(c.difference)} "
                     + ("(beyond noise)" if c.distinguishable else "(within noise)" if c.distinguishable is False else "(no interval)"))
    items.append(f"Test set, at the recommended strength: accuracy {pm(rec.test_accuracy)}, data loss {pm(rec.test_data_loss)}.")
    return [d.Heading(3, "The recommendation in detail", "recommendation"), d.Bullets(items)]


def takeaway(analysis: RunAnalysis) -> list[d.Block]:
    """The original study ends on a takeaway: the answer again, and what it rests on, in two sentences."""
    fa = analysis.main
    used = len(fa.recommended.seeds) if fa.recommended is not None else analysis.run.config.seeds
    rest = ("It rests on one seed, so it names the best and claims nothing; rerun with --seeds 3."
            if used == 1 else
            f"It rests on {used} seeds (those every compared strength completed) and the validation set's "
            f"{analysis.run.data.n_val:,} examples, both counted in every interval above.")
    return [d.Heading(2, "Takeaway", "takeaway"), d.Para(f"{answer(analysis).headline} {rest}")] if fa else []


# ---------------------------------------------------------------- learning rate × strength

def learning_rate_section(analysis: RunAnalysis, figures: Figures | None) -> list[d.Block]:
    """A sweep of several learning rates: each family's grid, and its best strength at each learning rate."""
    if not analysis.heat_maps:
        return []
    rates = analysis.run.config.learning_rates
    blocks: list[d.Block] = [
        d.Heading(2, "Learning rate × strength", "learning-rates"),
        d.Para(f"Every strength was trained at each of {len(rates)} learning rates ({', '.join(lam_label(r) for r in rates)}), "
               "on the same seeds, initializations and batches. Each cell is a setting's final value, the mean over "
               "seeds; the star marks the best cell and a red outline every cell whose difference from the best has a "
               "95 % interval that includes 0 (the noise model of the strength comparisons below). The sections after "
               f"this one describe {analysis.main.label}, the learning rate at which the "
               f"{analysis.main.family.label} arms did best."),
    ]

    files = {f.key: f for f in (figures.heat_maps if figures is not None else ())}
    for family, hm in analysis.heat_maps.items():
        if heat_map_name(family) in files:
            blocks.append(_image(files[heat_map_name(family)], f"{hm.family.label}: final validation data loss and "
                                 "accuracy over learning rate × strength."))
        rows: list[list[d.Inline]] = []
        for fa in (f for f in analysis.families.values() if f.family.name == family):
            r = fa.recommended
            rows.append([lam_label(fa.learning_rate), lam_label(r.strength) if r else "—",
                         f"{lam_label(r.interval[0].strength)} … {lam_label(r.interval[1].strength)}" if r and r.interval else "—",
                         f"{lam_label(r.flat[0].strength)} … {lam_label(r.flat[1].strength)}" if r else "—",
                         ci(r.estimate) if r else "—", ci(r.test_accuracy) if r else "—"])
        blocks.append(d.Table(["learning rate", f"best {hm.family.label} λ", "95 % interval of the best",
                               "within noise of it", "val data loss at best", "test accuracy at best"], rows))
    return blocks + coupling_blocks(analysis)


def coupling_blocks(analysis: RunAnalysis) -> list[d.Block]:
    """The coupling question, with the rule, for each family whose grid is large enough."""

    if not analysis.couplings:
        return [d.Para(f"The coupling question (does the best strength move with the learning rate?) needs at least "
                       f"{MIN_RATES} learning rates and {MIN_STRENGTHS} positive strengths with results at each.")]
    blocks: list[d.Block] = [d.Heading(3, "Does the best strength move with the learning rate?", "coupling"),
                             d.Para(f"Rule: {RULE}")]
    items = []
    for c in analysis.couplings.values():
        interval = f"95 % interval {c.interval[0]:+.2f} … {c.interval[1]:+.2f}" if c.interval else "no interval (one seed, no per-example values)"
        text = f"{c.family.label}: slope {c.slope:+.2f} ({interval}) — {c.verdict}"
        tau = tau_text(c)
        items.append(text + (f"; {tau}" if tau else "") + ".")
        rows: list[list[d.Inline]] = [
            [lam_label(r.learning_rate), lam_label(r.strength),
             f"{lam_label(r.interval[0])} … {lam_label(r.interval[1])}" if r.interval else "—",
             f"{r.tau_epochs:.3g}" if r.tau_epochs is not None else "—"] for r in c.per_rate]
        blocks.append(d.Table(["learning rate", f"best positive {c.family.label} λ", "95 % interval", "τ (epochs)"], rows))
    blocks.insert(2, d.Bullets(items))
    return blocks


# ---------------------------------------------------------------- several families

def families_section(analysis: RunAnalysis, figures: Figures | None) -> list[d.Block]:
    header = ["regularizer", "arms", "best λ", "flat region", "spread over grid", "val data loss at best",
              "test accuracy at best", "‖W‖ at largest / at 0", f"|w| < {NEAR_ZERO:g} at best (live inputs)"]
    rows: list[list[d.Inline]] = []
    for s in analysis.families_compared:
        r = s.recommended
        rows.append([s.label, str(s.n_arms), lam_label(r.strength) if r else "—",
                     f"{lam_label(r.flat[0].strength)} … {lam_label(r.flat[1].strength)}" if r else "—",
                     fmt(s.loss_range), ci(r.estimate) if r else "—", ci(r.test_accuracy) if r else "—",
                     ci(s.shrink_at_max, 3) if s.shrink_at_max else "—",
                     "—" if not math.isfinite(s.zeros_at_best[1]) else f"{100 * s.zeros_at_best[1]:.1f} %"])
    blocks: list[d.Block] = [
        d.Heading(2, "Regularizers compared", "families"),
        d.Para("Each family was swept over its own strengths in this one run, on the same seeds, initializations and "
               f"batches. Strengths of different families are not on one scale. The sections above describe the "
               f"{analysis.main.label} arms."),
        d.Bullets(list(dict.fromkeys(f"{fa.family.label}: {fa.family.formula}" for fa in analysis.families.values()))),
        d.Table(header, rows),
    ]
    if figures is not None and getattr(figures, "families", None) is not None:
        blocks.append(_image(cast(FigureFile, figures.families), "Each family's final validation data loss against its own strength; "
                                               "a star marks its recommended strength."))
    fams = analysis.families
    l2 = next((f for f in fams.values() if f.family.label == "L2"), None)
    wd = next((f for f in fams.values() if f.family.decay), None)
    if l2 and wd:
        cmp = best_against_best(wd, l2)
        if cmp is not None:
            blocks.append(d.Para(f"Weight decay at its best minus L2 at its best (validation data loss): "
                                 f"{diff_text(cmp.difference)} — {'beyond noise' if cmp.difference.excludes_zero() else 'within noise'}. "
                                 "Under Adam the two are different regularizers (Loshchilov & Hutter, ICLR 2019): compare "
                                 "their best strengths, not equal numbers."))
    return blocks


# ---------------------------------------------------------------- notes on the regularizers

def keras_notes(analysis: RunAnalysis) -> list[d.Block]:
    families = [fa.family for fa in analysis.families.values()]
    blocks: list[d.Block] = []
    if any(f.l2 for f in families):
        blocks += [
            d.Heading(2, "What “L2 in Keras” means", "l2-in-keras"),
            d.Para([d.code("kernel_regularizer=l2(λ)"), " adds λ·ΣW² (no ½, bias excluded) to the loss; Keras's ",
                    d.code("loss"), " and ", d.code("val_loss"), " include it, this report's data losses do not. Adam "
                    "rescales its gradient 2λW per weight: not decoupled weight decay (AdamW)."]),
        ]
    if any(f.decay for f in families):
        blocks += [
            d.Heading(2, "What weight decay means here", "weight-decay"),
            d.Para([d.code("Adam(weight_decay=λ)"), " shrinks each regularized kernel by lr·λ·W after every step, outside "
                    "Adam's rescaling, and adds nothing to the loss: Keras's ", d.code("loss"), " equals the data loss."]),
        ]
    return blocks


# ---------------------------------------------------------------- the whole report

def build_blocks(analysis: RunAnalysis, figures: Figures | None, kept: KeptModel | None = None) -> list[d.Block]:
    run = analysis.run
    fa = analysis.main
    blocks: list[d.Block] = [d.Heading(1, f"reglab report: {run.run_dir.name}")]
    blocks += answer_blocks(analysis, figures)
    blocks += kept_model_blocks(run, kept)
    blocks += [d.Heading(2, "Objective", "objective"),
               d.Para(f"How much {fa.label} regularization should this model have, and what does it do? The "
                      "original study trained a small dense network on MNIST once per strength and explained: smaller "
                      "weights generalize better, too little still overfits, too much underfits. This run checks each "
                      "statement.")]
    blocks += learning_rate_section(analysis, figures)
    if len(analysis.families) > 1 and not analysis.heat_maps:
        blocks += families_section(analysis, figures)
    blocks += setup(analysis)
    blocks += results(analysis, figures)
    blocks += [d.Heading(2, "Analysis", "analysis")]
    blocks += recommendation_section(fa)
    blocks += weight_section(fa, figures)
    blocks += generalization_section(fa, figures)
    blocks += diagnosis_section(analysis)
    blocks += noise_section(analysis)
    blocks += claims_section(fa)
    blocks += takeaway(analysis)
    blocks += keras_notes(analysis)
    blocks += [d.Para(["Rebuild this report from the record with ", d.code("reglab report RUN_DIR"), "."])]
    return blocks


def build_report(run: RunRecord, analysis: RunAnalysis | None = None) -> Path:
    """Analyse the run (once), draw the figures, write the recommended model's recommended.keras (see kept.py),
    report.md and report.html; returns report.html's path."""

    with locked(run.run_dir):  # one writer at a time: a run in progress, or another report, is refused
        analysis = analyze(run) if analysis is None else analysis
        figures = draw_all(analysis)
        kept = keep_recommended(run, analysis.recommended_setting)  # recommended.keras, written only when missing or out of date
        blocks = build_blocks(analysis, figures, kept)
        register(run.run_dir, [REPORT_MD, REPORT_HTML])
        write_atomic(run.run_dir / REPORT_MD, d.to_markdown(blocks, run.run_dir))
        path = run.run_dir / REPORT_HTML
        write_atomic(path, d.to_html(blocks, f"reglab report: {run.run_dir.name}"))
    return path
