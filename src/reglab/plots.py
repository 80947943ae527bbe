"""Figures, in two steps: `*_data` functions return plain NamedTuples (tested), `draw_*` functions draw them.

Every number comes from `aggregate` (means over seeds with 95 % intervals); this module only arranges
and draws. Every loss axis says whether it includes the L2 penalty: Keras's `loss`/`val_loss` do, the
data loss (cross-entropy) does not.

`draw_all(run)` writes every figure into RUN_DIR/figures and returns a `Figures`: each file with a
title and a one- or two-sentence caption for the report.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from .aggregate import (
    Histogram, choose_lambda, epoch_bands, excluded_arms, final_values, gap_against_norm,
    lambda_stats, locate_optimum, weight_histograms,
)
from .formatting import lam_label
from .record import RunRecord
from .stats import Estimate

FIGURES = "figures"
DPI = 100
NAN = float("nan")

#: Axis labels that say whether the penalty is in.
LOSS_WITH_PENALTY = "loss (cross-entropy; solid: + L2 penalty, dashed: without)"
VAL_DATA_LOSS = "validation data loss (cross-entropy, without L2 penalty)"
KERNEL_NORM = "‖W‖ of the regularized kernel (Frobenius)"
GAP = "generalization gap: val − train data loss (without L2 penalty)"
BASELINE_LABEL = "λ = 0 (no regularization)"


# ---------------------------------------------------------------- what the report gets

class FigureFile(NamedTuple):
    """One written figure: `key` is the file name without `.png`."""

    key: str
    path: Path
    title: str
    caption: str


class Figures(NamedTuple):
    curves: list[FigureFile]  # several seeds: one per λ (mean + band); one seed: one per arm
    val_data_loss: FigureFile
    kernel_norm: FigureFile
    lambda_curve: FigureFile
    gap_vs_norm: FigureFile
    histograms: FigureFile | None  # None: the run has no kernels.npz

    def all(self) -> list[FigureFile]:
        """Every file, in report order (the order of the fields)."""
        out = [*self.curves, self.val_data_loss, self.kernel_norm, self.lambda_curve, self.gap_vs_norm]
        return out + ([self.histograms] if self.histograms is not None else [])


# ---------------------------------------------------------------- data

class ArmCurves(NamedTuple):
    """One arm's raw curves (one-seed runs): exactly what metrics.csv holds, sorted by epoch."""

    arm: int
    lam: float
    seed: int
    epochs: list[int]
    loss: list[float]
    val_loss: list[float]
    data_loss: list[float]
    val_data_loss: list[float]
    accuracy: list[float]
    val_accuracy: list[float]


def arm_curves_data(run: RunRecord, arm: int) -> ArmCurves:
    meta = run.arms[arm]
    rows = sorted((r for r in run.epochs if r.arm == arm), key=lambda r: r.epoch)
    col = lambda name: [getattr(r, name) for r in rows]  # noqa: E731
    return ArmCurves(
        arm=arm, lam=float(meta["lambda"]), seed=int(meta["seed"]), epochs=col("epoch"),
        loss=col("loss"), val_loss=col("val_loss"), data_loss=col("data_loss"), val_data_loss=col("val_data_loss"),
        accuracy=col("accuracy"), val_accuracy=col("val_accuracy"),
    )


class CurveBand(NamedTuple):
    """Per epoch: the mean over seeds and its 95 % interval (low/high NaN with one seed)."""

    mean: list[float]
    low: list[float]
    high: list[float]


CURVE_COLUMNS = ("loss", "val_loss", "data_loss", "val_data_loss", "accuracy", "val_accuracy")


class LambdaCurves(NamedTuple):
    """One λ's curves over its comparable seeds (`n` of `n_arms`; the others diverged or stopped)."""

    lam: float
    n: int
    n_arms: int
    epochs: list[int]
    loss: CurveBand
    val_loss: CurveBand
    data_loss: CurveBand
    val_data_loss: CurveBand
    accuracy: CurveBand
    val_accuracy: CurveBand


def lambda_curves_data(run: RunRecord, lam: float) -> LambdaCurves:
    """Mean and 95 % band per epoch of every curve of one λ (empty lists when no seed of it completed)."""
    n_arms = sum(1 for a in run.arms if float(a["lambda"]) == lam)
    bands: dict[str, CurveBand] = {}
    epochs: list[int] = []
    n = 0
    for column in CURVE_COLUMNS:
        band = next((b for b in epoch_bands(run, column) if b.lam == lam), None)
        if band is None:
            bands[column] = CurveBand([], [], [])
        else:
            bands[column] = CurveBand(list(band.mean), list(band.low), list(band.high))
            epochs, n = list(band.epochs), band.n
    return LambdaCurves(lam, n, n_arms, epochs, **bands)


class BandSeries(NamedTuple):
    lam: float
    label: str
    epochs: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]
    n: int


class Overlay(NamedTuple):
    """One line per λ (mean over its seeds) with its 95 % band."""

    column: str
    title: str
    ylabel: str
    series: list[BandSeries]


def overlay_data(run: RunRecord, column: str, title: str, ylabel: str) -> Overlay:
    series = []
    for b in epoch_bands(run, column):
        label = f"λ = {lam_label(b.lam)}" + (f", n = {b.n}" if b.n != run.config.seeds else "")
        series.append(BandSeries(b.lam, label, list(b.epochs), list(b.mean), list(b.low), list(b.high), b.n))
    return Overlay(column, title + _seeds_note(run), ylabel, series)


def val_data_loss_overlay_data(run: RunRecord) -> Overlay:
    return overlay_data(run, "val_data_loss", "Validation data loss by λ", VAL_DATA_LOSS)


def kernel_norm_overlay_data(run: RunRecord) -> Overlay:
    return overlay_data(run, "kernel_norm", "Norm of the regularized kernel by λ", KERNEL_NORM)


class Point(NamedTuple):
    """A mean with its 95 % interval (low/high NaN without one) over `n` seeds."""

    mean: float
    low: float
    high: float
    n: int


def _point(e: Estimate) -> Point:
    return Point(e.mean, e.low if e.has_interval else NAN, e.high if e.has_interval else NAN, e.n)


class LambdaPanel(NamedTuple):
    """One final metric against λ: the λ > 0 points (ascending) and λ = 0 apart (None when not in the run)."""

    metric: str
    ylabel: str
    lams: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]
    n: list[int]
    baseline: Point | None


class LambdaCurve(NamedTuple):
    val_data_loss: LambdaPanel
    val_accuracy: LambdaPanel
    chosen: float | None  # the λ with the lowest mean final validation data loss; None when no arm completed
    missing: list[float]  # λ of the config with no comparable arm (every seed diverged or stopped)
    seeds: int
    optima: dict[str, Any] = {}  # metric → aggregate.Optimum (best λ, bootstrap interval, flat region)


def _panel(stats: list, metric: str, ylabel: str) -> LambdaPanel:
    pos = [(s.lam, _point(s[metric])) for s in stats if s.lam > 0]
    base = next((_point(s[metric]) for s in stats if s.lam == 0), None)
    return LambdaPanel(metric, ylabel, [lam for lam, _ in pos], [p.mean for _, p in pos], [p.low for _, p in pos],
                       [p.high for _, p in pos], [p.n for _, p in pos], base)


def lambda_curve_data(run: RunRecord) -> LambdaCurve:
    finals = final_values(run)
    stats = lambda_stats(run, finals)
    choice = choose_lambda(run, "val_data_loss", finals)
    present = {s.lam for s in stats}
    return LambdaCurve(
        _panel(stats, "val_data_loss", "final " + VAL_DATA_LOSS),
        _panel(stats, "val_accuracy", "final validation accuracy"),
        choice.lam if choice is not None else None,
        [lam for lam in run.config.lambdas if lam not in present],
        run.config.seeds,
        {m: locate_optimum(run, m, finals=finals) for m in ("val_data_loss", "val_accuracy")},
    )


class GapNormMean(NamedTuple):
    lam: float
    norm: Point
    gap: Point


class GapNormData(NamedTuple):
    """One point per comparable arm, the per-λ means, and Pearson r over the arms (NaN with < 3 arms)."""

    lams: list[float]
    seeds: list[int]
    norms: list[float]
    gaps: list[float]
    means: list[GapNormMean]
    correlation: float


def gap_norm_data(run: RunRecord) -> GapNormData:
    finals = final_values(run)
    g = gap_against_norm(run, finals)
    means = [GapNormMean(s.lam, _point(s["kernel_norm"]), _point(s["loss_gap"])) for s in lambda_stats(run, finals)]
    return GapNormData([p[0] for p in g.points], [p[1] for p in g.points], [p[2] for p in g.points],
                       [p[3] for p in g.points], means, g.correlation)


class HistogramData(NamedTuple):
    """Per λ the pooled final kernel weights on bin edges shared by every λ."""

    edges: list[float]
    panels: list[Histogram]


def histogram_data(run: RunRecord, kernels: dict[int, Any]) -> HistogramData | None:
    """None when there is nothing to draw (no kernels, or none of a comparable arm)."""
    hists = weight_histograms(run, kernels)
    return HistogramData(list(hists[0].edges), hists) if hists else None


# ---------------------------------------------------------------- words

def _seeds_note(run: RunRecord) -> str:
    s = run.config.seeds
    return f" — mean of {s} seeds, band = 95 % CI" if s > 1 else ""


def _excluded_note(run: RunRecord) -> str:
    k = len(excluded_arms(run))
    if not k:
        return ""
    return f" {k} arm{'s' if k > 1 else ''} that diverged or were interrupted {'are' if k > 1 else 'is'} left out."


def _kernel_name(run: RunRecord) -> str:
    return "the regularized Dense(128) kernel" if not run.config.model else "the regularized kernels (all of them together)"


def _num(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def lam_token(lam: float) -> str:
    """λ in a file name: short (`0.001`, `1e-05`) unless that would merge two different values."""
    short = f"{lam:g}"
    return short if float(short) == lam else repr(lam)


def arm_figure_name(lam: float, seed: int, arm: int) -> str:
    return f"arm{arm:02d}_lambda-{lam_token(lam)}_seed-{seed}.png"


def curves_figure_name(lam: float) -> str:
    return f"curves_lambda-{lam_token(lam)}.png"


class FamilyCurves(NamedTuple):
    """Per family, the final validation data loss and accuracy against its strengths (the λ-curve's panels)."""

    panels: dict[str, tuple[LambdaPanel, LambdaPanel]]  # family → (val data loss, val accuracy)
    best: dict[str, float | None]  # family → its best strength by validation data loss
    seeds: int


def family_curves_data(run: RunRecord) -> FamilyCurves:
    from .families import family_view

    panels, best = {}, {}
    for family in run.config.regularizers:
        view = family_view(run, family)
        finals = final_values(view)
        stats = lambda_stats(view, finals)
        panels[family] = (_panel(stats, "val_data_loss", "final " + VAL_DATA_LOSS),
                          _panel(stats, "val_accuracy", "final validation accuracy"))
        choice = choose_lambda(view, "val_data_loss", finals)
        best[family] = choice.lam if choice else None
    return FamilyCurves(panels, best, run.config.seeds)


# ---------------------------------------------------------------- drawing

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    """Save beside the target, then rename: a figure on disk is always whole."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        fig.savefig(tmp, dpi=DPI)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def _figure(path: Path, *args: Any, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
    """`plt.subplots(*args, **kwargs)`; after the block, lay out and save to `path`. Always closed."""
    plt = _pyplot()
    fig, axes = plt.subplots(*args, **kwargs)
    try:
        yield fig, axes
        fig.tight_layout()
        _save(fig, path)
    finally:
        plt.close(fig)


def lam_colors(lams) -> dict[float, Any]:
    """One colour per λ, shared by every figure: λ = 0 dark grey, λ > 0 along viridis (blue → green)."""
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    pos = sorted(lam for lam in set(lams) if lam > 0)
    out: dict[float, Any] = {0.0: "0.25"}
    for i, lam in enumerate(pos):
        out[lam] = cmap(0.2 + 0.65 * i / (len(pos) - 1) if len(pos) > 1 else 0.5)
    return out


def _finite(xs) -> list[float]:
    return [x if x is not None and math.isfinite(x) else NAN for x in xs]


def _markers(epochs: list[int]) -> str:
    return "o" if len(epochs) <= 20 else ""


def _epoch_ticks(ax, epochs: list[int]) -> None:
    if 0 < len(epochs) <= 20:
        ax.set_xticks(epochs)


def _band(ax, epochs, band: CurveBand | BandSeries, color, style: str, label: str, marker: str) -> None:
    ax.plot(epochs, _finite(band.mean), linestyle=style, marker=marker, markersize=4, color=color, label=label)
    if any(math.isfinite(v) for v in band.low):
        ax.fill_between(epochs, _finite(band.low), _finite(band.high), color=color, alpha=0.2, linewidth=0)


def draw_arm_curves(c: ArmCurves, path: Path, title: str) -> None:
    """The original study's layout: loss (train vs validation) left, accuracy right, titled with λ."""
    with _figure(path, 1, 2, figsize=(12, 4.9)) as (fig, (ax_loss, ax_acc)):
        ax_loss.plot(c.epochs, c.loss, "o-", color="C0", label="train loss (incl. L2 penalty)")
        ax_loss.plot(c.epochs, c.val_loss, "o-", color="C1", label="validation loss (incl. L2 penalty)")
        ax_loss.plot(c.epochs, c.data_loss, "--", color="C0", alpha=0.7, label="train data loss (no penalty)")
        ax_loss.plot(c.epochs, c.val_data_loss, "--", color="C1", alpha=0.7, label="validation data loss (no penalty)")
        ax_loss.set(title="Loss", xlabel="epoch", ylabel=LOSS_WITH_PENALTY)
        ax_acc.plot(c.epochs, c.accuracy, "o-", color="C0", label="train accuracy")
        ax_acc.plot(c.epochs, c.val_accuracy, "o-", color="C1", label="validation accuracy")
        ax_acc.set(title="Accuracy", xlabel="epoch", ylabel="accuracy")
        for ax in (ax_loss, ax_acc):
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
            _epoch_ticks(ax, c.epochs)
        fig.suptitle(title)


def draw_lambda_curves(c: LambdaCurves, path: Path, title: str) -> None:
    """The same layout for several seeds: mean lines with 95 % bands."""
    with _figure(path, 1, 2, figsize=(12, 4.9)) as (fig, (ax_loss, ax_acc)):
        m = _markers(c.epochs)
        if c.n:
            _band(ax_loss, c.epochs, c.loss, "C0", "-", "train loss (incl. L2 penalty)", m)
            _band(ax_loss, c.epochs, c.val_loss, "C1", "-", "validation loss (incl. L2 penalty)", m)
            _band(ax_loss, c.epochs, c.data_loss, "C0", "--", "train data loss (no penalty)", "")
            _band(ax_loss, c.epochs, c.val_data_loss, "C1", "--", "validation data loss (no penalty)", "")
            _band(ax_acc, c.epochs, c.accuracy, "C0", "-", "train accuracy", m)
            _band(ax_acc, c.epochs, c.val_accuracy, "C1", "-", "validation accuracy", m)
        else:
            for ax in (ax_loss, ax_acc):
                ax.text(0.5, 0.5, "no seed of this λ completed every epoch", ha="center", va="center",
                        transform=ax.transAxes)
        ax_loss.set(title="Loss", xlabel="epoch", ylabel=LOSS_WITH_PENALTY)
        ax_acc.set(title="Accuracy", xlabel="epoch", ylabel="accuracy")
        for ax in (ax_loss, ax_acc):
            if c.n:
                ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
            _epoch_ticks(ax, c.epochs)
        fig.suptitle(title)


def draw_overlay(ov: Overlay, path: Path) -> None:
    with _figure(path, figsize=(10, 5)) as (fig, ax):
        colors = lam_colors(s.lam for s in ov.series)
        for s in ov.series:
            _band(ax, s.epochs, s, colors[s.lam], "-", s.label, _markers(s.epochs))
        if not ov.series:
            ax.text(0.5, 0.5, "no arm completed every epoch", ha="center", va="center", transform=ax.transAxes)
        ax.set(title=ov.title, xlabel="epoch", ylabel=ov.ylabel)
        ax.grid(alpha=0.3)
        if ov.series:
            _epoch_ticks(ax, ov.series[0].epochs)
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _yerr(mean: list[float], low: list[float], high: list[float]) -> list[list[float]] | None:
    """matplotlib's asymmetric error bars, 0 where a point has no interval; None when none has one."""
    ok = [math.isfinite(m) and math.isfinite(lo) and math.isfinite(hi) for m, lo, hi in zip(mean, low, high)]
    if not any(ok):
        return None
    return [[m - lo if k else 0.0 for m, lo, k in zip(mean, low, ok)],
            [hi - m if k else 0.0 for m, hi, k in zip(mean, high, ok)]]


def _draw_optimum(ax, o: Any, lams: list[float]) -> None:
    """The flat region (λ within noise of the best) shaded, the bootstrap interval of the best λ as a bar."""
    left = ax.get_xlim()[0]
    x = lambda lam: lam if lam > 0 else left  # noqa: E731  (λ = 0 sits at the left edge of a log axis)
    if o.flat is not None and o.flat[0] != o.flat[1]:
        ax.axvspan(x(o.flat[0]), x(o.flat[1]), color="C1", alpha=0.12, linewidth=0,
                   label=f"flat: within noise of the best ({lam_label(o.flat[0])} … {lam_label(o.flat[1])})")
    if o.interval is not None:
        y = ax.get_ylim()[0] + 0.04 * (ax.get_ylim()[1] - ax.get_ylim()[0])
        ax.plot([x(o.interval[0]), x(o.interval[1])], [y, y], color="C3", linewidth=5, alpha=0.6, solid_capstyle="butt",
                label=f"95 % bootstrap interval of the best λ ({lam_label(o.interval[0])} … {lam_label(o.interval[1])})")
        ax.plot([x(o.lam)], [y], marker="|", markersize=14, color="C3")


def _draw_lambda_panel(ax, p: LambdaPanel, chosen: float | None, missing: list[float], color, optimum: Any = None) -> None:
    idx = [i for i, m in enumerate(p.mean) if math.isfinite(m)]
    lams, mean = [p.lams[i] for i in idx], [p.mean[i] for i in idx]
    low, high = [p.low[i] for i in idx], [p.high[i] for i in idx]
    gone = [lam for lam in missing if lam > 0]
    if lams:
        ax.errorbar(lams, mean, yerr=_yerr(mean, low, high), fmt="o-", color=color, capsize=4,
                    label="λ > 0: mean" + (", 95 % CI" if any(n > 1 for n in p.n) else ""))
    if lams or gone:
        ax.set_xscale("log")
        ax.set_xlim(min(lams + gone) / 3, max(lams + gone) * 3)
        ticks = sorted(lams + gone)
        if len(ticks) <= 6:  # a few λ: one labelled tick each; a dense grid keeps the log axis's decades
            ax.set_xticks(ticks, [lam_label(t) for t in ticks])
            ax.minorticks_off()
        for k, lam in enumerate(gone):
            ax.axvline(lam, color="C3", linestyle=":", linewidth=1.2,
                       label="λ with no completed arm" if k == 0 else None)
    else:
        ax.set_xticks([])
        ax.text(0.5, 0.08, "no λ > 0 to show", ha="center", transform=ax.transAxes, fontsize=9)
    b = p.baseline
    if b is not None and math.isfinite(b.mean):
        chosen_note = " — chosen" if chosen == 0.0 else ""
        ax.axhline(b.mean, color="0.25", linestyle="--", linewidth=1.2, label=BASELINE_LABEL + chosen_note)
        if b.n >= 2 and math.isfinite(b.low):
            ax.axhspan(b.low, b.high, color="0.25", alpha=0.15, linewidth=0)
    if chosen is not None and chosen > 0 and chosen in lams:
        y = mean[lams.index(chosen)]
        ax.plot([chosen], [y], marker="*", markersize=16, color="C3", linestyle="none",
                label=f"chosen λ = {lam_label(chosen)}")
    if optimum is not None and lams:
        _draw_optimum(ax, optimum, lams)
    ax.set(xlabel="λ (L2 strength, log scale)", ylabel=p.ylabel)
    ax.grid(alpha=0.3, which="both")


def draw_lambda_curve(d: LambdaCurve, path: Path, title: str) -> None:
    with _figure(path, 1, 2, figsize=(12, 6.6)) as (fig, (ax_loss, ax_acc)):
        _draw_lambda_panel(ax_loss, d.val_data_loss, d.chosen, d.missing, "C0", d.optima.get("val_data_loss"))
        _draw_lambda_panel(ax_acc, d.val_accuracy, d.chosen, d.missing, "C2", d.optima.get("val_accuracy"))
        ax_loss.set_title("Validation data loss (without L2 penalty)")
        ax_acc.set_title("Validation accuracy")
        for ax in (ax_loss, ax_acc):
            handles, _ = ax.get_legend_handles_labels()
            if handles:  # below the axes: the λ = 0 line and band span the whole width
                ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1, frameon=False)
        fig.suptitle(title)


def draw_family_curves(d: FamilyCurves, path: Path, title: str) -> None:
    """Both panels of the λ-curve, one line per family (its strength-0 value dashed, its best starred)."""
    with _figure(path, 1, 2, figsize=(12, 6.6)) as (fig, axes):
        any_positive = False
        for k, (family, panels) in enumerate(d.panels.items()):
            color = f"C{k}"
            for ax, p in zip(axes, panels):
                idx = [i for i, m in enumerate(p.mean) if math.isfinite(m)]
                lams, mean = [p.lams[i] for i in idx], [p.mean[i] for i in idx]
                if lams:
                    any_positive = True
                    ax.errorbar(lams, mean, yerr=_yerr(mean, [p.low[i] for i in idx], [p.high[i] for i in idx]),
                                fmt="o-", color=color, capsize=3, label=family)
                    if d.best.get(family) in lams:
                        ax.plot([d.best[family]], [mean[lams.index(d.best[family])]], marker="*", markersize=15,
                                color=color, markeredgecolor="k", linestyle="none")
                if p.baseline is not None and math.isfinite(p.baseline.mean):
                    ax.axhline(p.baseline.mean, color=color, linestyle="--", linewidth=1, alpha=0.8,
                               label=f"{family} at strength 0" + (" (best)" if d.best.get(family) == 0.0 else ""))
        for ax, name in zip(axes, ("Validation data loss (without penalty)", "Validation accuracy")):
            if any_positive:
                ax.set_xscale("log")
            ax.set(xlabel="strength (each family's own λ, log scale)", ylabel=name.lower(), title=name)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
        fig.suptitle(title)


def draw_gap_vs_norm(d: GapNormData, path: Path, title: str, seeds: int = 1) -> None:
    with _figure(path, figsize=(10, 5.5)) as (fig, ax):
        colors = lam_colors(d.lams + [m.lam for m in d.means])
        for m in d.means:
            if not (math.isfinite(m.norm.mean) and math.isfinite(m.gap.mean)):
                continue
            c = colors[m.lam]
            pts = [(x, y) for lam, x, y in zip(d.lams, d.norms, d.gaps)
                   if lam == m.lam and math.isfinite(x) and math.isfinite(y)]
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=c, alpha=0.45, s=22, linewidths=0)
            ax.errorbar([m.norm.mean], [m.gap.mean],
                        xerr=_yerr([m.norm.mean], [m.norm.low], [m.norm.high]),
                        yerr=_yerr([m.gap.mean], [m.gap.low], [m.gap.high]),
                        fmt="D", color=c, markersize=7, markeredgecolor="black", capsize=4,
                        label=f"λ = {lam_label(m.lam)}" + (f", n = {m.norm.n}" if m.norm.n != seeds else ""))
        if not d.means:
            ax.text(0.5, 0.5, "no arm completed every epoch", ha="center", va="center", transform=ax.transAxes)
        ax.set(title=title, xlabel="final " + KERNEL_NORM, ylabel="final " + GAP)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      title="dots: arms\n◆: mean, 95 % CI" if seeds > 1 else None, title_fontsize=8)


def draw_histograms(d: HistogramData, path: Path, title: str) -> None:
    n = len(d.panels)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    size = (3 * cols, 2.5 * rows + 0.7)
    with _figure(path, rows, cols, figsize=size, sharex=True, sharey=True, squeeze=False) as (fig, axes):
        colors = lam_colors(h.lam for h in d.panels)
        centers = [(a + b) / 2 for a, b in zip(d.edges[:-1], d.edges[1:])]
        for ax, h in zip(axes.flat, d.panels):
            ax.hist(centers, bins=d.edges, weights=h.counts, log=True, histtype="stepfilled", color=colors[h.lam],
                    alpha=0.85)
            ax.axvline(0.0, color="0.5", linewidth=0.6)
            ax.set_title(f"λ = {lam_label(h.lam)}  ({h.n_weights:,} weights)", fontsize=9)
            ax.grid(alpha=0.3)
        for k, ax in enumerate(axes.flat):
            if k >= n:
                ax.set_visible(False)
            elif k + cols >= n:  # the lowest panel of its column: x ticks and label
                ax.xaxis.set_tick_params(labelbottom=True)
                ax.set_xlabel("weight value")
        for ax in axes[:, 0]:
            ax.set_ylabel("count (log)")
        fig.suptitle(title)


# ---------------------------------------------------------------- every figure of a run

def draw_all(run: RunRecord, kernels: dict[int, Any] | None = None) -> Figures:
    """Draw every figure of a run into RUN_DIR/figures. `kernels` defaults to `run.kernels()`."""
    out = run.run_dir / FIGURES
    out.mkdir(parents=True, exist_ok=True)
    seeds = run.config.seeds
    excluded = _excluded_note(run)

    def file(name: str) -> Path:
        return out / name

    def figure(path: Path, title: str, caption: str) -> FigureFile:
        return FigureFile(path.stem, path, title, caption)

    family = run.config.regularizers[0]  # a family view when the sweep compared several
    kind = {"l2": "L2 regularization", "l1": "L1 regularization", "weight_decay": "weight decay"}.get(family, f"{family} regularization")
    curves = []
    if seeds == 1:
        for arm in range(len(run.arms)):
            c = arm_curves_data(run, arm)
            title = f"{kind} λ = {lam_label(c.lam)}  (seed {c.seed})"
            caption = (f"Training and validation curves of the arm with λ = {lam_label(c.lam)} (seed {c.seed}): "
                       "loss left (solid: Keras's loss including the L2 penalty; dashed: data loss without it), "
                       "accuracy right.")
            path = file(arm_figure_name(c.lam, c.seed, arm))
            draw_arm_curves(c, path, title)
            curves.append(figure(path, title, caption))
    else:
        for lam in run.config.lambdas:
            c = lambda_curves_data(run, lam)
            of = f"{c.n} of {c.n_arms} seeds" if c.n != c.n_arms else f"{c.n} seeds"
            if c.n:
                title = f"{kind} λ = {lam_label(lam)} — mean of {of}, band = 95 % CI"
                caption = (f"Training and validation curves for λ = {lam_label(lam)}, mean of {of} with 95 % CI "
                           "bands: loss left (solid: Keras's loss including the L2 penalty; dashed: data loss without "
                           "it), accuracy right.")
                if c.n != c.n_arms:
                    caption += f" {c.n_arms - c.n} seed(s) that diverged or were interrupted are left out."
            else:
                title = f"{kind} λ = {lam_label(lam)} — no seed completed every epoch"
                caption = (f"No seed of λ = {lam_label(lam)} completed every epoch ({c.n_arms} diverged or were "
                           "interrupted), so there are no curves (with or without the L2 penalty) to show.")
            path = file(curves_figure_name(lam))
            draw_lambda_curves(c, path, title)
            curves.append(figure(path, title, caption))

    mean_of = f", mean of {seeds} seeds with 95 % CI band" if seeds > 1 else ""
    ov = val_data_loss_overlay_data(run)
    path = file("val_data_loss.png")
    draw_overlay(ov, path)
    val_fig = figure(path, ov.title, "Validation data loss (cross-entropy without the L2 penalty) by epoch, "
                     f"one line per λ{mean_of}." + excluded)

    ov = kernel_norm_overlay_data(run)
    path = file("kernel_norm.png")
    draw_overlay(ov, path)
    norm_fig = figure(path, ov.title, f"Frobenius norm ‖W‖ of {_kernel_name(run)} by epoch, "
                      f"one line per λ{mean_of}." + excluded)

    lc = lambda_curve_data(run)
    title = "Final validation metrics against λ" + (f" — mean of {seeds} seeds, bars = 95 % CI" if seeds > 1 else "")
    base = ("the dashed line is λ = 0" + (" (shaded: its 95 % CI)" if seeds > 1 else "")
            if lc.val_data_loss.baseline is not None else
            "no λ = 0 arm completed, so there is no baseline" if 0.0 in run.config.lambdas else
            "the run has no λ = 0 baseline")
    chosen = (f"; the star marks the chosen λ = {lam_label(lc.chosen)} (lowest mean validation data loss)"
              if lc.chosen is not None and lc.chosen > 0 else
              "; λ = 0 has the lowest mean validation data loss" if lc.chosen == 0 else "")
    caption = (f"Final validation data loss (without the L2 penalty, left) and validation accuracy (right) against λ "
               f"on a log axis{', error bars = 95 % CI over ' + str(seeds) + ' seeds' if seeds > 1 else ''}; "
               f"{base}{chosen}." + excluded)
    path = file("lambda_curve.png")
    draw_lambda_curve(lc, path, title)
    lambda_fig = figure(path, title, caption)

    gn = gap_norm_data(run)
    r = gn.correlation
    r_text = (f"Pearson r = {r:.2f} over {len(gn.lams)} arms" if math.isfinite(r)
              else "Pearson r: n/a (fewer than 3 arms or no spread)")
    title = f"Generalization gap against kernel norm ({r_text})"
    means = ", diamonds = per-λ means with 95 % CI bars in both axes" if seeds > 1 else ""
    caption = ("Final generalization gap (validation − training data loss, both without the L2 penalty) against the "
               f"final kernel norm ‖W‖: one dot per arm coloured by λ{means}; {r_text}." + excluded)
    path = file("gap_vs_norm.png")
    draw_gap_vs_norm(gn, path, title, seeds)
    gap_fig = figure(path, title, caption)

    hist_fig = None
    hd = histogram_data(run, run.kernels() if kernels is None else kernels)
    if hd is not None:
        title = "Final weights of the regularized kernel by λ"
        caption = (f"Histograms of the final weights of {_kernel_name(run)}, one panel per λ"
                   + (" (its seeds pooled)" if seeds > 1 else "") + " on shared bins, log count axis." + excluded)
        path = file("weight_histograms.png")
        draw_histograms(hd, path, title)
        hist_fig = figure(path, title, caption)

    return Figures(curves, val_fig, norm_fig, lambda_fig, gap_fig, hist_fig)
