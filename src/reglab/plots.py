"""Figures, in two steps: `*_data` functions return plain NamedTuples (tested), `draw_*` functions draw them.

Every number comes from `aggregate` (means over seeds with 95 % intervals); this module only arranges
and draws. Every loss axis says whether it includes the L2 penalty: Keras's `loss`/`val_loss` do, the
data loss (cross-entropy) does not.

`draw_all(run)` writes every figure into RUN_DIR/figures and returns a `Figures`: each file with a
title and a one- or two-sentence caption for the report.
"""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from .aggregate import (
    Histogram, choose_lambda, epoch_bands, excluded_arms, final_values, gap_against_norm,
    lambda_stats, locate_optimum, weight_histograms,
)
from .fileio import ensure_dir, write_atomic
from .formatting import lam_label
from .record import RunRecord
from .rundir import register
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

#: Curves figures (one per arm with one seed, one per λ with several) drawn at most: each costs ~0.2 s and
#: ~90 kB, so 1,000 of them took minutes and buried the report. Beyond it, an evenly spaced choice over the
#: grid (first, last and the chosen λ included); the others' numbers are in metrics.csv and the report's tables.
MAX_CURVE_FIGURES = 24
#: Up to this many λ > 0, a figure names each λ in its legend; beyond, colour follows log λ along a colour bar.
MAX_LEGEND_LAMBDAS = 12
#: Weight-histogram panels drawn at most (λ evenly spaced over the grid, the smallest and largest included).
MAX_HISTOGRAM_PANELS = 12


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
    curves_total: int = 0  # arms (one seed) or λ values (several) that could have a curves figure; see MAX_CURVE_FIGURES

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
    note = _seeds_note(run)
    if note and dense_grid(s.lam for s in series):  # drawn without bands (draw_overlay)
        note = f" — mean of {run.config.seeds} seeds"
    return Overlay(column, title + note, ylabel, series)


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
    """Per λ the pooled final kernel weights on bin edges shared by every λ; with more than `max_panels` λ,
    `panels` holds an evenly spaced choice of them and `n_lams` says how many there were."""

    edges: list[float]
    panels: list[Histogram]
    n_lams: int = 0


def histogram_data(run: RunRecord, kernels: dict[int, Any], max_panels: int = MAX_HISTOGRAM_PANELS) -> HistogramData | None:
    """None when there is nothing to draw (no kernels, or none of a comparable arm)."""
    hists = weight_histograms(run, kernels)
    if not hists:
        return None
    return HistogramData(list(hists[0].edges), [hists[i] for i in spread_picks(len(hists), max_panels)], len(hists))


def spread_picks(n: int, k: int, must: tuple[int, ...] = ()) -> list[int]:
    """At most `k` of range(n), ascending: all when n <= k, else evenly spaced with the first and last, each
    of `must` taking the place of the nearest inner pick. Why: a bounded, representative set of figures."""
    if n <= k:
        return list(range(n))
    if k <= 1:
        return [next((m for m in must if 0 <= m < n), 0)][:max(k, 0)]
    picks = [round(j * (n - 1) / (k - 1)) for j in range(k)]
    for m in must:
        if 0 <= m < n and m not in picks and k > 2:
            nearest = min(range(1, k - 1), key=lambda j: abs(picks[j] - m))
            picks[nearest] = m
    return sorted(set(picks))


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


def dense_grid(lams: Any) -> bool:
    """More λ > 0 than a legend can name (MAX_LEGEND_LAMBDAS): colour by log λ with a colour bar instead."""
    return len({lam for lam in lams if lam > 0}) > MAX_LEGEND_LAMBDAS


#: log10 of the largest and of the smallest positive float: any finite λ > 0 lies between them
_LOG10_MAX = math.log10(sys.float_info.max)
_LOG10_TINY = math.log10(5e-324)


def _pow10(x: float) -> float:
    """10**x, kept within the positive finite floats (a log axis limit must be neither 0 nor inf)."""
    x = min(max(x, _LOG10_TINY), _LOG10_MAX)
    try:
        value = 10.0 ** x
    except OverflowError:
        return sys.float_info.max
    return min(max(value, 5e-324), sys.float_info.max)


def log_limits(lams: Any, pad: float = 0.5) -> tuple[float, float]:
    """Limits of a log axis showing every finite λ > 0 with `pad` decades to spare, computed in log space:
    7e307 × 3 is inf and 5e-324 / 3 is 0, either of which matplotlib refuses. One λ gets `pad` on each side."""
    logs = [math.log10(lam) for lam in lams if lam > 0 and math.isfinite(lam)]
    if not logs:
        return 0.1, 10.0
    pad = max(pad, 0.04 * (max(logs) - min(logs)))  # a wide grid's ends stay off the frame, as matplotlib's margins
    lo, hi = _pow10(min(logs) - pad), _pow10(max(logs) + pad)
    return (lo, hi) if lo < hi else (lo * 0.5 if lo > 5e-324 else lo, hi * 2 if hi < sys.float_info.max / 2 else hi)


def decade_ticks(lo: float, hi: float, most: int = 8) -> tuple[list[float], bool]:
    """Powers of ten within [lo, hi], at most `most` (every k-th decade), and whether minor ticks may be left to
    matplotlib: its LogLocator computes decades past the axis ends, and 10**309 overflows, so a range within
    reach of either float limit, or one that skips decades, gets these ticks alone."""
    a, b = math.ceil(math.log10(lo)), math.floor(math.log10(hi))
    if a > b:
        return [], False
    need = (b - a + 1) / most
    stride = next((s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200) if s >= need), 400)  # round numbers of decades
    first = -(-a // stride) * stride  # multiples of the stride: 10^-300, 10^-200, …, not 10^-300, 10^-224, …
    return [10.0 ** k for k in range(first, b + 1, stride)], stride == 1 and -300 < a and b < 300


def _log_lambda_axis(ax, lams: Any) -> tuple[float, float]:
    """A log x axis showing every finite λ > 0: limits in log space (`log_limits`), decade ticks set by hand."""
    from matplotlib.ticker import FixedLocator, NullLocator

    lo, hi = log_limits(lams)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ticks, minor = decade_ticks(lo, hi)
    if ticks:
        ax.xaxis.set_major_locator(FixedLocator(ticks))
    if not minor:
        ax.xaxis.set_minor_locator(NullLocator())
    return lo, hi


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
    """Write whole or not at all, never through a link (fileio); a run's figure is listed in its manifest first."""
    if path.parent.name == FIGURES:
        register(path.parent.parent, [f"{FIGURES}/{path.name}"])
    write_atomic(path, lambda f: fig.savefig(f, dpi=DPI, format="png"))


@contextmanager
def _figure(path: Path, *args: Any, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
    """`plt.subplots(*args, **kwargs)`; after the block, lay out and save to `path`. Always closed.

    Floating-point overflow is not warned about: a log axis that reaches the largest float (λ = 1.8e308)
    makes matplotlib's axes → data transform round just past it to inf, which matplotlib itself handles."""
    import numpy as np

    plt = _pyplot()
    with np.errstate(over="ignore"):
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
    if dense_grid(pos):  # colour by log λ, as the colour bar reads it (`_lam_colorbar`)
        lo, hi = math.log10(pos[0]), math.log10(pos[-1])
        return {**out, **{lam: cmap(0.2 + 0.65 * (math.log10(lam) - lo) / (hi - lo)) for lam in pos}}
    for i, lam in enumerate(pos):
        out[lam] = cmap(0.2 + 0.65 * i / (len(pos) - 1) if len(pos) > 1 else 0.5)
    return out


def _lam_colorbar(fig, ax, lams: Any) -> None:
    """A colour bar for a dense grid's λ > 0 (log scale, the colours of `lam_colors`); λ = 0 stays dark grey."""
    import matplotlib
    import numpy as np
    from matplotlib.colors import ListedColormap, LogNorm

    pos = sorted({lam for lam in lams if lam > 0})
    cmap = ListedColormap(matplotlib.colormaps["viridis"](np.linspace(0.2, 0.85, 256)))
    mappable = matplotlib.cm.ScalarMappable(norm=LogNorm(pos[0], pos[-1]), cmap=cmap)
    bar = fig.colorbar(mappable, ax=ax, pad=0.02)
    ticks, minor = decade_ticks(pos[0], pos[-1])
    if ticks:
        bar.set_ticks(ticks)
    if not minor:
        bar.minorticks_off()
    bar.set_label(f"λ ({len(pos):,} values > 0, log scale)" + ("; λ = 0: dark grey" if 0.0 in set(lams) else ""))


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
    """One line per λ with its band; a dense grid (see `dense_grid`): lines only, no markers or bands, coloured
    along a colour bar, and only λ = 0 in the legend, so the figure's cost and legibility do not grow with λ."""
    with _figure(path, figsize=(10, 5)) as (fig, ax):
        lams = [s.lam for s in ov.series]
        dense = dense_grid(lams)
        colors = lam_colors(lams)
        if dense:  # every λ > 0 in one LineCollection: one artist, not one per λ
            from matplotlib.collections import LineCollection

            pos = [s for s in ov.series if s.lam > 0]
            ax.add_collection(LineCollection([list(zip(s.epochs, _finite(s.mean))) for s in pos],
                                             colors=[colors[s.lam] for s in pos], linewidths=0.8))
            ax.autoscale_view()
        for s in ov.series:
            if not dense:
                _band(ax, s.epochs, s, colors[s.lam], "-", s.label, _markers(s.epochs))
            elif s.lam == 0:
                ax.plot(s.epochs, _finite(s.mean), color=colors[s.lam], linewidth=1.6, label=s.label, zorder=3)
        if not ov.series:
            ax.text(0.5, 0.5, "no arm completed every epoch", ha="center", va="center", transform=ax.transAxes)
        ax.set(title=ov.title, xlabel="epoch", ylabel=ov.ylabel)
        ax.grid(alpha=0.3)
        if ov.series:
            _epoch_ticks(ax, ov.series[0].epochs)
            if dense:
                _lam_colorbar(fig, ax, lams)
                if 0.0 in lams:
                    ax.legend(fontsize=8, loc="best")
            else:
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
        _log_lambda_axis(ax, lams + gone)  # in log space: any finite λ, up to the largest float
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
        positive = [lam for panels in d.panels.values() for p in panels for lam, m in zip(p.lams, p.mean) if math.isfinite(m)]
        for ax, name in zip(axes, ("Validation data loss (without penalty)", "Validation accuracy")):
            if any_positive:
                _log_lambda_axis(ax, positive)  # matplotlib's own margins and ticks overflow near the largest float
            ax.set(xlabel="strength (each family's own λ, log scale)", ylabel=name.lower(), title=name)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
        fig.suptitle(title)


def draw_gap_vs_norm(d: GapNormData, path: Path, title: str, seeds: int = 1) -> None:
    """One dot per arm coloured by λ, per-λ means with 95 % CI bars; a dense grid (see `dense_grid`): all dots
    in one scatter, means as diamonds without bars, and a colour bar in place of a legend of every λ."""
    if dense_grid(d.lams + [m.lam for m in d.means]):
        _draw_gap_vs_norm_dense(d, path, title, seeds)
        return
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


def _draw_gap_vs_norm_dense(d: GapNormData, path: Path, title: str, seeds: int) -> None:
    with _figure(path, figsize=(10, 5.5)) as (fig, ax):
        lams = d.lams + [m.lam for m in d.means]
        colors = lam_colors(lams)
        pts = [(x, y, colors[lam]) for lam, x, y in zip(d.lams, d.norms, d.gaps) if math.isfinite(x) and math.isfinite(y)]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], c=[p[2] for p in pts], alpha=0.45 if seeds > 1 else 0.8,
                   s=14 if seeds > 1 else 18, linewidths=0)
        if seeds > 1:
            ms = [m for m in d.means if math.isfinite(m.norm.mean) and math.isfinite(m.gap.mean)]
            ax.scatter([m.norm.mean for m in ms], [m.gap.mean for m in ms], c=[colors[m.lam] for m in ms], marker="D",
                       s=30, edgecolors="black", linewidths=0.5)
        if not d.means:
            ax.text(0.5, 0.5, "no arm completed every epoch", ha="center", va="center", transform=ax.transAxes)
        ax.set(title=title, xlabel="final " + KERNEL_NORM, ylabel="final " + GAP)
        ax.grid(alpha=0.3)
        _lam_colorbar(fig, ax, lams)


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
    ensure_dir(out)
    seeds = run.config.seeds
    excluded = _excluded_note(run)

    def file(name: str) -> Path:
        return out / name

    def figure(path: Path, title: str, caption: str) -> FigureFile:
        return FigureFile(path.stem, path, title, caption)

    family = run.config.regularizers[0]  # a family view when the sweep compared several
    kind = {"l2": "L2 regularization", "l1": "L1 regularization", "weight_decay": "weight decay"}.get(family, f"{family} regularization")
    curves = []
    lc = lambda_curve_data(run)
    if seeds == 1:  # at most MAX_CURVE_FIGURES, evenly over the grid with the chosen λ's arm among them
        chosen_arm = tuple(i for i, a in enumerate(run.arms) if float(a["lambda"]) == lc.chosen)[:1]
        curves_total = len(run.arms)
        for arm in spread_picks(curves_total, MAX_CURVE_FIGURES, chosen_arm):
            c = arm_curves_data(run, arm)
            title = f"{kind} λ = {lam_label(c.lam)}  (seed {c.seed})"
            caption = (f"Training and validation curves of the arm with λ = {lam_label(c.lam)} (seed {c.seed}): "
                       "loss left (solid: Keras's loss including the L2 penalty; dashed: data loss without it), "
                       "accuracy right.")
            path = file(arm_figure_name(c.lam, c.seed, arm))
            draw_arm_curves(c, path, title)
            curves.append(figure(path, title, caption))
    else:
        grid = list(run.config.lambdas)
        curves_total = len(grid)
        chosen_lam = (grid.index(lc.chosen),) if lc.chosen in grid else ()
        for lam in [grid[i] for i in spread_picks(curves_total, MAX_CURVE_FIGURES, chosen_lam)]:
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
    drawn = [s.lam for s in ov.series]
    if dense_grid(drawn):  # as draw_overlay draws a dense grid
        mean_of = (f", mean of {seeds} seeds" if seeds > 1 else "") + (
            f", coloured by λ on a log colour scale (the colour bar{'; λ = 0 dark grey' if 0.0 in drawn else ''})"
            + ("; no bands: too many λ to tell them apart" if seeds > 1 else ""))
    path = file("val_data_loss.png")
    draw_overlay(ov, path)
    val_fig = figure(path, ov.title, "Validation data loss (cross-entropy without the L2 penalty) by epoch, "
                     f"one line per λ{mean_of}." + excluded)

    ov = kernel_norm_overlay_data(run)
    path = file("kernel_norm.png")
    draw_overlay(ov, path)
    norm_fig = figure(path, ov.title, f"Frobenius norm ‖W‖ of {_kernel_name(run)} by epoch, "
                      f"one line per λ{mean_of}." + excluded)

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
    if dense_grid(gn.lams + [m.lam for m in gn.means]):  # as draw_gap_vs_norm draws a dense grid
        means = " (log colour scale: the colour bar)" + (", diamonds = per-λ means (no bars: too many λ)" if seeds > 1 else "")
    caption = ("Final generalization gap (validation − training data loss, both without the L2 penalty) against the "
               f"final kernel norm ‖W‖: one dot per arm coloured by λ{means}; {r_text}." + excluded)
    path = file("gap_vs_norm.png")
    draw_gap_vs_norm(gn, path, title, seeds)
    gap_fig = figure(path, title, caption)

    hist_fig = None
    hd = histogram_data(run, run.kernels() if kernels is None else kernels)
    if hd is not None:
        title = "Final weights of the regularized kernel by λ"
        shown = len(hd.panels)
        which = ("one panel per λ" if shown >= hd.n_lams else
                 f"one panel for each of {shown} of the {hd.n_lams:,} λ values (evenly spaced over the grid, the "
                 f"smallest and largest included; the weight table in the report covers every arm)")
        caption = (f"Histograms of the final weights of {_kernel_name(run)}, {which}"
                   + (" (its seeds pooled)" if seeds > 1 else "") + " on shared bins, log count axis." + excluded)
        path = file("weight_histograms.png")
        draw_histograms(hd, path, title)
        hist_fig = figure(path, title, caption)

    return Figures(curves, val_fig, norm_fig, lambda_fig, gap_fig, hist_fig, curves_total)
