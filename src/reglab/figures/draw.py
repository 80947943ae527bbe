"""Drawing: each function takes one data unit of `figures.data` and writes one PNG. No numbers are made here.

Every loss axis says whether it includes the penalty (Keras's `loss`/`val_loss` do for L1/L2; the data
loss never does); every band and shaded region has a legend entry; panels compared by eye share y-scales.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple, Optional

from reglab.figures.axes import (
    band,
    dense_grid,
    epoch_ticks,
    figure,
    finite,
    lam_colorbar,
    lam_colors,
    log_lambda_axis,
    markers,
    yerr,
)
from reglab.figures.data import (
    AdaptivePath,
    ArmCurves,
    FamilyCurves,
    GapNormData,
    HeatMapData,
    HistogramData,
    Overlay,
    StrengthCurves,
    StrengthDifferences,
    WhichStrength,
)
from reglab.formatting import lam_label


class Words(NamedTuple):
    """How a figure names the family's penalty: `label` (L2, L1, …) and whether Keras's loss includes it."""

    label: str
    in_loss: bool

    @property
    def loss_axis(self) -> str:
        if self.in_loss:
            return f"loss (cross-entropy; solid: + {self.label} penalty, dashed: without)"
        return "loss (cross-entropy; weight decay adds no penalty)"

    @property
    def data_loss(self) -> str:
        return f"without {self.label} penalty" if self.in_loss else "no penalty in the loss"


#: The loss panel's and the accuracy panel's y-range (`axes.shared_limits`); None: matplotlib's own.
YLimits = tuple[Optional[tuple[float, float]], Optional[tuple[float, float]]]


BAND_NOTE = "shaded: 95 % CI over seeds"


def _band_handle(color: Any = "0.5") -> Any:
    from matplotlib.patches import Patch

    return Patch(facecolor=color, alpha=0.2, label=BAND_NOTE)


def _legend(ax, extra: list[Any] | None = None, **kwargs: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    for h in extra or []:
        handles.append(h)
        labels.append(h.get_label())
    if handles:
        ax.legend(handles, labels, **kwargs)


# ---------------------------------------------------------------- training curves

def render_arm_curves(fig: Any, axes: Any, c: ArmCurves, title: str, words: Words,
                      ylim: YLimits = (None, None)) -> None:
    """The original study's layout: loss (train vs validation) left, accuracy right; y-ranges shared by
    every curve figure of the run (`ylim`), so arms compare by eye."""
    ax_loss, ax_acc = axes
    if words.in_loss:
        ax_loss.plot(c.epochs, c.loss, "o-", color="C0", label=f"train loss (incl. {words.label} penalty)")
        ax_loss.plot(c.epochs, c.val_loss, "o-", color="C1", label=f"validation loss (incl. {words.label} penalty)")
    ax_loss.plot(c.epochs, c.data_loss, "--" if words.in_loss else "o-", color="C0",
                 label=f"train data loss ({words.data_loss})")
    ax_loss.plot(c.epochs, c.val_data_loss, "--" if words.in_loss else "o-", color="C1",
                 label=f"validation data loss ({words.data_loss})")
    ax_loss.set(title="Loss", xlabel="epoch", ylabel=words.loss_axis)
    ax_acc.plot(c.epochs, c.accuracy, "o-", color="C0", label="train accuracy")
    ax_acc.plot(c.epochs, c.val_accuracy, "o-", color="C1", label="validation accuracy")
    ax_acc.set(title="Accuracy", xlabel="epoch", ylabel="accuracy")
    for ax, lim in zip((ax_loss, ax_acc), ylim):
        ax.legend()
        ax.grid(alpha=0.3)
        epoch_ticks(ax, c.epochs)
        if lim is not None:
            ax.set_ylim(*lim)
    fig.suptitle(title)


def draw_arm_curves(c: ArmCurves, path: Path, title: str, words: Words, ylim: YLimits = (None, None)) -> None:
    """Draw into a new figure written to `path` (see `render_arm_curves`)."""
    with figure(path, 1, 2, figsize=(12, 4.9)) as (fig, axes):
        render_arm_curves(fig, axes, c, title, words, ylim)


def render_strength_curves(fig: Any, axes: Any, c: StrengthCurves, title: str, words: Words,
                           ylim: YLimits = (None, None)) -> None:
    """The same layout for several seeds: mean lines with 95 % bands."""
    ax_loss, ax_acc = axes
    m = markers(c.epochs)
    if c.n:
        if words.in_loss:
            band(ax_loss, c.epochs, *c.loss, "C0", "-", f"train loss (incl. {words.label} penalty)", m)
            band(ax_loss, c.epochs, *c.val_loss, "C1", "-", f"validation loss (incl. {words.label} penalty)", m)
        style = "--" if words.in_loss else "-"
        band(ax_loss, c.epochs, *c.data_loss, "C0", style, f"train data loss ({words.data_loss})",
             "" if words.in_loss else m)
        band(ax_loss, c.epochs, *c.val_data_loss, "C1", style, f"validation data loss ({words.data_loss})",
             "" if words.in_loss else m)
        band(ax_acc, c.epochs, *c.accuracy, "C0", "-", "train accuracy", m)
        band(ax_acc, c.epochs, *c.val_accuracy, "C1", "-", "validation accuracy", m)
    else:
        for ax in (ax_loss, ax_acc):
            ax.text(0.5, 0.5, "no seed of this strength completed every epoch", ha="center", va="center",
                    transform=ax.transAxes)
    ax_loss.set(title="Loss", xlabel="epoch", ylabel=words.loss_axis)
    ax_acc.set(title="Accuracy", xlabel="epoch", ylabel="accuracy")
    for ax, lim in zip((ax_loss, ax_acc), ylim):
        if c.n:
            _legend(ax, [_band_handle()] if c.n > 1 else None)
        ax.grid(alpha=0.3)
        epoch_ticks(ax, c.epochs)
        if lim is not None:
            ax.set_ylim(*lim)
    fig.suptitle(title)


def draw_strength_curves(c: StrengthCurves, path: Path, title: str, words: Words,
                         ylim: YLimits = (None, None)) -> None:
    """Draw into a new figure written to `path` (see `render_strength_curves`)."""
    with figure(path, 1, 2, figsize=(12, 4.9)) as (fig, axes):
        render_strength_curves(fig, axes, c, title, words, ylim)


# ---------------------------------------------------------------- one line per strength

def render_overlay(fig: Any, axes: Any, ov: Overlay) -> None:
    """One line per strength with its band; a dense grid (see `dense_grid`): lines only, coloured along a colour
    bar, and only strength 0 in the legend, so the figure's cost and legibility do not grow with the grid."""
    ax = axes
    lams = [s.strength for s in ov.series]
    dense = dense_grid(lams)
    colors = lam_colors(lams)
    if dense:  # every strength > 0 in one LineCollection: one artist, not one per strength
        from matplotlib.collections import LineCollection

        pos = [s for s in ov.series if s.strength > 0]
        ax.add_collection(LineCollection([list(zip(s.epochs, finite(s.mean))) for s in pos],
                                         colors=[colors[s.strength] for s in pos], linewidths=0.8))
        ax.autoscale_view()
    for s in ov.series:
        if not dense:
            band(ax, s.epochs, s.mean, s.low, s.high, colors[s.strength], "-", s.label, markers(s.epochs))
        elif s.strength == 0:
            ax.plot(s.epochs, finite(s.mean), color=colors[s.strength], linewidth=1.6, label=s.label, zorder=3)
    if not ov.series:
        ax.text(0.5, 0.5, "no arm completed every epoch", ha="center", va="center", transform=ax.transAxes)
    ax.set(title=ov.title, xlabel="epoch", ylabel=ov.ylabel)
    ax.grid(alpha=0.3)
    if ov.series:
        epoch_ticks(ax, ov.series[0].epochs)
        banded = not dense and any(math.isfinite(v) for s in ov.series for v in s.low)
        if dense:
            lam_colorbar(fig, ax, lams)
            if 0.0 in lams:
                _legend(ax, loc="best")
        else:
            _legend(ax, [_band_handle()] if banded else None, loc="upper left", bbox_to_anchor=(1.01, 1.0))


# ---------------------------------------------------------------- which strength

def _positions(lams: list[float]) -> tuple[list[float], list[str]]:
    """Strengths on an even axis (their grid order): 0 and a log grid side by side, any grid size."""
    return [float(i) for i in range(len(lams))], [lam_label(lam).replace(" (baseline)", "") for lam in lams]


def _differences_panel(ax, d: StrengthDifferences, flat: tuple[float, float], interval: tuple[float, float] | None,
                       color: str, heading: str) -> None:
    x, labels = _positions(d.lams)
    where = {lam: i for i, lam in enumerate(d.lams)}
    if flat[0] != flat[1] and flat[0] in where and flat[1] in where:
        ax.axvspan(where[flat[0]] - 0.4, where[flat[1]] + 0.4, color="C1", alpha=0.15, linewidth=0,
                   label="flat region: shown within the margin of the recommended")
    ax.axhline(0.0, color="0.3", linewidth=1.0, linestyle="--", label=f"recommended λ = {lam_label(d.recommended)}")
    err = yerr(d.mean, d.low, d.high)
    ax.errorbar(x, finite(d.mean), yerr=err, fmt="o", color=color, capsize=4, markersize=6,
                label="difference, 95 % CI (seeds + validation examples)" if err else "difference (no interval)")
    if d.recommended in where:
        ax.plot([where[d.recommended]], [0.0], marker="*", markersize=16, color="C3", linestyle="none")
    if interval is not None and interval[0] in where and interval[1] in where:
        lo, hi = ax.get_ylim()
        y = lo + 0.05 * (hi - lo)
        ax.plot([where[interval[0]], where[interval[1]]], [y, y], color="C3", linewidth=5, alpha=0.6,
                solid_capstyle="butt", label="where the best falls under resampling (95 %)")
    step = max(1, math.ceil(len(x) / 12))
    ax.set_xticks(x[::step], labels[::step], rotation=0 if len(x) <= 8 else 45)
    ax.set_xlim(-0.6, len(x) - 0.4)
    ax.set_title(heading)
    ax.set_ylabel(d.ylabel)
    ax.grid(alpha=0.3, axis="y")


def render_which_strength(fig: Any, axes: Any, w: WhichStrength, title: str) -> None:
    """Each strength minus the recommended one, with the paired intervals the report's text uses."""
    ax_loss, ax_acc = axes
    loss, acc = w.loss.value.mean, w.accuracy.value.mean
    _differences_panel(ax_loss, w.loss, w.flat, w.interval, "C0", "Validation data loss" + (
        f" (recommended: {loss:.4f})" if math.isfinite(loss) else ""))
    _differences_panel(ax_acc, w.accuracy, w.accuracy_flat, None, "C2", "Validation accuracy" + (
        f" (recommended: {100 * acc:.2f} %)" if math.isfinite(acc) else ""))
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel(w.strength_axis + (" (grid order)" if len(w.loss.lams) > 1 else ""))
        _legend(ax, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False)
    fig.suptitle(title)


# ---------------------------------------------------------------- several families

def render_family_curves(fig: Any, axes: Any, d: FamilyCurves, title: str) -> None:
    """Both final validation metrics against each family's own strengths (its strength 0 dashed, its best starred)."""
    any_positive = False
    for k, (family, panels) in enumerate(d.panels.items()):
        color = f"C{k}"
        for ax, p in zip(axes, panels):
            idx = [i for i, m in enumerate(p.mean) if math.isfinite(m)]
            lams, mean = [p.lams[i] for i in idx], [p.mean[i] for i in idx]
            if lams:
                any_positive = True
                ax.errorbar(lams, mean, yerr=yerr(mean, [p.low[i] for i in idx], [p.high[i] for i in idx]),
                            fmt="o-", color=color, capsize=3, label=family + (", 95 % CI" if d.seeds > 1 else ""))
                best = d.best.get(family)  # None (nothing recommended) is never in lams
                if best is not None and best in lams:
                    ax.plot([best], [mean[lams.index(best)]], marker="*", markersize=15,
                            color=color, markeredgecolor="k", linestyle="none", label=f"{family}: recommended")
            if p.baseline is not None and math.isfinite(p.baseline.mean):
                ax.axhline(p.baseline.mean, color=color, linestyle="--", linewidth=1, alpha=0.8,
                           label=f"{family} at strength 0" + (" (recommended)" if d.best.get(family) == 0.0 else ""))
    positive = [lam for panels in d.panels.values() for p in panels for lam, m in zip(p.lams, p.mean) if math.isfinite(m)]
    for ax, name in zip(axes, ("Validation data loss (without penalty)", "Validation accuracy")):
        if any_positive:
            log_lambda_axis(ax, positive)
        ax.set(xlabel="strength (each family's own λ, log scale)", ylabel=name.lower(), title=name)
        ax.grid(alpha=0.3, which="both")
        _legend(ax, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.suptitle(title)


def draw_family_curves(d: FamilyCurves, path: Path, title: str) -> None:
    """Draw into a new figure written to `path` (see `render_family_curves`)."""
    with figure(path, 1, 2, figsize=(12, 6.6)) as (fig, axes):
        render_family_curves(fig, axes, d, title)


# ---------------------------------------------------------------- gap against norm

def render_gap_vs_norm(fig: Any, axes: Any, d: GapNormData, title: str, seeds: int, xlabel: str, ylabel: str) -> None:
    """One dot per arm coloured by strength, per-strength means with 95 % CI bars; a dense grid: all dots in one
    scatter, means as diamonds without bars, and a colour bar in place of a legend of every strength."""
    lams = d.lams + [m.strength for m in d.means]
    colors = lam_colors(lams)
    ax = axes
    if dense_grid(lams):
        pts = [(x, y, colors[lam]) for lam, x, y in zip(d.lams, d.norms, d.gaps) if math.isfinite(x) and math.isfinite(y)]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], c=[p[2] for p in pts], alpha=0.45 if seeds > 1 else 0.8,
                   s=14 if seeds > 1 else 18, linewidths=0)
        if seeds > 1:
            ms = [m for m in d.means if math.isfinite(m.norm.mean) and math.isfinite(m.gap.mean)]
            ax.scatter([m.norm.mean for m in ms], [m.gap.mean for m in ms], c=[colors[m.strength] for m in ms], marker="D",
                       s=30, edgecolors="black", linewidths=0.5)
        lam_colorbar(fig, ax, lams)
    else:
        for m in d.means:
            if not (math.isfinite(m.norm.mean) and math.isfinite(m.gap.mean)):
                continue
            c = colors[m.strength]
            own = [(x, y) for lam, x, y in zip(d.lams, d.norms, d.gaps)  # this strength's arms
                   if lam == m.strength and math.isfinite(x) and math.isfinite(y)]
            ax.scatter([p[0] for p in own], [p[1] for p in own], color=c, alpha=0.45, s=22, linewidths=0)
            ax.errorbar([m.norm.mean], [m.gap.mean], xerr=yerr([m.norm.mean], [m.norm.low], [m.norm.high]),
                        yerr=yerr([m.gap.mean], [m.gap.low], [m.gap.high]), fmt="D", color=c, markersize=7,
                        markeredgecolor="black", capsize=4,
                        label=f"λ = {lam_label(m.strength)}" + (f", n = {m.norm.n}" if m.norm.n != seeds else ""))
        _legend(ax, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                title="dots: arms\n◆: mean, 95 % CI" if seeds > 1 else None)
    if not d.means:
        ax.text(0.5, 0.5, "no arm completed every epoch", ha="center", va="center", transform=ax.transAxes)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)


# ---------------------------------------------------------------- weights

def render_histograms(fig: Any, axes: Any, d: HistogramData, title: str) -> None:
    n = len(d.panels)
    cols = min(n, 4)
    colors = lam_colors(h.strength for h in d.panels)
    centers = [(a + b) / 2 for a, b in zip(d.edges[:-1], d.edges[1:])]
    for ax, h in zip(axes.flat, d.panels):
        ax.hist(centers, bins=d.edges, weights=h.counts, log=True, histtype="stepfilled", color=colors[h.strength],
                alpha=0.85)
        ax.axvline(0.0, color="0.5", linewidth=0.6)
        ax.set_title(f"λ = {lam_label(h.strength)}  ({h.n_weights:,} weights)", fontsize=9)
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


# ---------------------------------------------------------------- learning rate × strength

def render_heat_map(fig: Any, axes: Any, d: HeatMapData, title: str) -> None:
    """Each panel a grid of cells (learning rates across, strengths up, λ = 0 its own bottom row, both in
    log steps), the mean over seeds written in each cell, the best starred and the cells shown within the margin of it
    outlined."""
    from matplotlib.patches import Rectangle

    for ax, p in zip(axes, d.panels):
        values = [[v if math.isfinite(v) else math.nan for v in row] for row in p.mean]
        cmap = "viridis_r" if p.lower_is_better else "viridis"
        image = ax.imshow(values, origin="lower", aspect="auto", cmap=cmap)
        bar = fig.colorbar(image, ax=ax, shrink=0.85)
        if not p.lower_is_better:
            bar.ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}")
        finite_cells = [v for row in values for v in row if math.isfinite(v)]
        middle = (min(finite_cells) + max(finite_cells)) / 2 if finite_cells else 0.0
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                if math.isfinite(v):
                    dark = (v > middle) == p.lower_is_better
                    ax.text(j, i, f"{v:.3f}" if p.lower_is_better else f"{100 * v:.1f}", ha="center", va="center",
                            fontsize=8, color="white" if dark else "black")
        for i, j in p.within:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        if p.best is not None:
            ax.plot([p.best[1] - 0.32], [p.best[0] + 0.28], marker="*", markersize=14, color="red", markeredgecolor="k",
                    linestyle="none")  # in the cell's corner: its value stays readable
        ax.set_xticks(range(len(p.learning_rates)), [lam_label(x) for x in p.learning_rates])
        ax.set_yticks(range(len(p.strengths)), [lam_label(x) if x else "0 (none)" for x in p.strengths])
        unit = "" if p.lower_is_better else " (%)"
        ax.set(xlabel="learning rate (log steps)", ylabel=f"{d.family} strength λ (log steps)", title=p.title + unit)
    seeds = f"mean over {d.seeds} seeds" if d.seeds > 1 else "one seed"
    fig.suptitle(f"{title}\n{seeds}; ★ best, red outline: shown within the margin of the best (95 % interval of the difference)",
                 fontsize=10)


# ---------------------------------------------------------------- an adaptive sweep's path

#: Colour and marker of each reason a strength is in a round (`analysis.adaptive.WHY`).
WHY_STYLE = {"start": ("0.35", "o"), "grid": ("0.35", "o"), "edge": ("C1", ">"), "refine": ("C0", "D"), "seeds": ("C2", "s"),
             "confirm": ("C3", "*")}


def _path_x(points: list[float]) -> tuple[dict[float, float], float]:
    """x of each strength on a log axis, λ = 0 one decade left of the smallest nonzero one (labelled "0")."""
    nonzero = [s for s in points if s > 0]
    zero_at = (min(nonzero) if nonzero else 1.0) / 10
    return {s: (s if s > 0 else zero_at) for s in points}, zero_at


def render_adaptive_path(fig: Any, ax: Any, d: AdaptivePath, title: str) -> None:
    """Round by round (top to bottom), the strengths trained: colour and marker say why, size how many seeds."""
    from matplotlib.lines import Line2D

    x, zero_at = _path_x([p.strength for p in d.points])
    for why, (color, marker) in WHY_STYLE.items():
        pts = [p for p in d.points if p.why == why]
        if pts:
            ax.scatter([x[p.strength] for p in pts], [p.round for p in pts], s=[30 + 25 * p.seeds for p in pts],
                       c=color, marker=marker, zorder=3)
    if d.region is not None:
        lo, hi = (x.get(v, v if v > 0 else zero_at) for v in d.region)
        ax.axvspan(lo / 1.25, hi * 1.25, color="C2", alpha=0.12, zorder=1)
    if d.chosen is not None and d.chosen in x:
        ax.axvline(x[d.chosen], color="C3", lw=1, ls="--", zorder=2)
    ax.set_xscale("log")
    ax.set_yticks(range(1, d.rounds + 1))
    ax.set_ylim(d.rounds + 0.6, 0.4)  # round 1 on top
    ticks = sorted(set(x.values()))
    ax.set_xticks(ticks)
    ax.set_xticklabels(["0" if t == zero_at else lam_label(t) for t in ticks], rotation=60, fontsize=7)
    ax.minorticks_off()
    ax.set(xlabel="strength λ (0 drawn one decade below the smallest)", ylabel="round", title=title)
    ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=c, marker=m, ls="", label=why) for why, (c, m) in WHY_STYLE.items()
               if any(p.why == why for p in d.points)]
    if d.region is not None:
        handles.append(Line2D([], [], color="C2", alpha=0.3, lw=8, label="region not shown worse than the best"))
    if d.chosen is not None:
        handles.append(Line2D([], [], color="C3", ls="--", label="confirmed against λ = 0"))
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def draw_adaptive_path(d: AdaptivePath, path: Path, title: str) -> None:
    with figure(path, 1, 1, figsize=(9, 1.6 + 0.45 * d.rounds)) as (fig, ax):
        render_adaptive_path(fig, ax, d, title)
