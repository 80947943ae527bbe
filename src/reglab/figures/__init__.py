"""Figures of a run, drawn from its analysis: `draw_all(analysis) -> Figures`.

Each figure is a "data, then drawing" unit: `figures.data` picks what the analysis already computed,
`figures.draw` draws it. Single-family figures describe the analysis's main family and speak of it by
name (L2, L1, weight decay, …); a run comparing families adds one figure of them side by side. The
report writes the captions; a `FigureFile` carries the path and the title.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, NamedTuple

from reglab.analysis.claims import strength_words
from reglab.analysis.families import sweep_config
from reglab.analysis.results import FamilyAnalysis, RunAnalysis
from reglab.figures import data, draw
from reglab.figures.axes import (
    FIGURES,
    RC,
    arm_figure_name,
    curves_figure_name,
    figure,
    pyplot,
    shared_limits,
    spread_picks,
)
from reglab.figures.data import MAX_CURVE_FIGURES, FigureData
from reglab.figures.draw import Words, draw_arm_curves, draw_strength_curves
from reglab.fileio import ensure_dir
from reglab.formatting import lam_label

__all__ = ["Display", "FigureFile", "Figures", "MAX_CURVE_FIGURES", "displays", "draw_all", "figure_units"]


class FigureFile(NamedTuple):
    """One written figure: `key` is the file name without `.png`."""

    key: str
    path: Path
    title: str


class Figures(NamedTuple):
    which_strength: FigureFile | None  # None: nothing to recommend (no arm completed)
    curves: list[FigureFile]  # several seeds: one per strength (mean + band); one seed: one per arm
    curves_total: int  # arms (one seed) or strengths (several) that could have a curves figure
    val_data_loss: FigureFile
    kernel_norm: FigureFile
    gap_vs_norm: FigureFile
    weight_histograms: FigureFile | None  # None: the run has no kernels.npz
    families: FigureFile | None  # None: one family, or several learning rates (the heat maps show them)
    heat_maps: tuple[FigureFile, ...] = ()  # one per family in a sweep of several learning rates

    def all(self) -> list[FigureFile]:
        """Every file, in report order."""
        out = [*self.heat_maps] + [f for f in (self.families, self.which_strength) if f is not None]
        out += [*self.curves, self.val_data_loss, self.kernel_norm, self.gap_vs_norm]
        return out + ([self.weight_histograms] if self.weight_histograms is not None else [])


#: Heat-map figures are named heat_map_FAMILY (the family's name made safe for a file name).
HEAT_MAP = "heat_map_"


def heat_map_name(family: str) -> str:
    return HEAT_MAP + "".join(c if c.isalnum() or c == "_" else "_" for c in family)


def _curves(fa: FamilyAnalysis, out: Path) -> tuple[list[FigureFile], int]:
    """At most MAX_CURVE_FIGURES, evenly over the grid, the recommended strength among them; one y-range each for
    loss and accuracy across all of them."""
    words = Words(fa.family.label, fa.family.in_loss)
    seeds = fa.view.config.seeds
    rec = fa.recommended.strength if fa.recommended else None
    label = fa.label
    jobs: list[tuple[Any, Path, str]] = []  # (ArmCurves with one seed, else StrengthCurves; file; title)
    if seeds == 1:
        total = len(fa.view.arms)
        must = tuple(i for i, a in enumerate(fa.view.arm_records) if a.strength == rec)[:1]
        for i in spread_picks(total, MAX_CURVE_FIGURES, must):
            c = data.arm_curves_data(fa, i)
            jobs.append((c, out / arm_figure_name(c.strength, c.seed, c.arm), f"{label} λ = {lam_label(c.strength)}  (seed {c.seed})"))
    else:
        grid = list(fa.view.config.lambdas)
        total = len(grid)
        must = (grid.index(rec),) if rec in grid else ()
        for lam in [grid[i] for i in spread_picks(total, MAX_CURVE_FIGURES, must)]:
            sc = data.strength_curves_data(fa, lam)
            of = f"{sc.n} of {sc.n_arms} seeds" if sc.n != sc.n_arms else f"{sc.n} seeds"
            title = (f"{label} λ = {lam_label(lam)} — mean of {of}, band = 95 % CI" if sc.n else
                     f"{label} λ = {lam_label(lam)} — no seed completed every epoch")
            jobs.append((sc, out / curves_figure_name(lam), title))
    loss, acc = data.curve_limits([c for c, _, _ in jobs])
    ylim = (shared_limits(loss), shared_limits(acc))
    files = []
    for c, path, title in jobs:
        (draw_arm_curves if seeds == 1 else draw_strength_curves)(c, path, title, words, ylim)
        files.append(FigureFile(path.stem, path, title))
    return files, total


def draw_all(analysis: RunAnalysis) -> Figures:
    """Draw every figure of a run into RUN_DIR/figures: the curves (one y-range across them) and each `figure_units`
    unit, saved as `NAME.png`."""
    out = analysis.run.run_dir / FIGURES
    ensure_dir(out)
    curves, total = _curves(analysis.main, out)
    files = {name: unit.save(out / f"{name}.png") for name, unit in figure_units(analysis).items()}
    return Figures(files.get("which_strength"), curves, total, files["val_data_loss"], files["kernel_norm"],
                   files["gap_vs_norm"], files.get("weight_histograms"), files.get("families"),
                   tuple(f for name, f in files.items() if name.startswith(HEAT_MAP)))


# ---------------------------------------------------------------- in a notebook

class Display(NamedTuple):
    """One figure of a run, in the manner of scikit-learn's Display objects: `data` is what it shows (a
    `figures.data` unit), `plot(ax=None)` draws it on your axes (a pair for two-panel figures) or on new ones and
    returns them, `save(path)` writes it as the report's figure."""

    name: str
    title: str
    data: FigureData
    render: Callable[..., None]
    args: tuple
    layout: dict

    def plot(self, ax: Any = None) -> Any:
        plt = pyplot()
        with plt.rc_context(RC):
            if ax is None:
                fig, ax = plt.subplots(**self.layout)
            else:
                first = ax.flat[0] if hasattr(ax, "flat") else ax[0] if isinstance(ax, (list, tuple)) else ax
                fig = first.figure
            self.render(fig, ax, self.data, *self.args)
        return ax

    def save(self, path: Path) -> FigureFile:
        with figure(path, **self.layout) as (fig, axes):
            self.render(fig, axes, self.data, *self.args)
        return FigureFile(path.stem, path, self.title)


def figure_units(analysis: RunAnalysis) -> dict[str, Display]:
    """The report's figures other than the training curves, by file name (without `.png`), in report order."""
    fa = analysis.main
    seeds = fa.view.config.seeds
    strength = strength_words(fa)  # "L2 strength at lr = 0.001", never "L2 at lr = 0.001 strength"
    words = Words(fa.family.label, fa.family.in_loss)  # "without L2 penalty", never "without L2 at lr = … penalty"
    two = {"nrows": 1, "ncols": 2}
    out: dict[str, Display] = {}

    def unit(name: str, title: str, unit_data: FigureData, render: Callable[..., None], args: tuple, layout: dict) -> None:
        out[name] = Display(name, title, unit_data, render, args, layout)

    ws = data.which_strength_data(fa)
    if ws is not None:
        title = f"Which {strength}: each one against the recommended λ = {lam_label(ws.loss.recommended)}"
        unit("which_strength", title, ws, draw.render_which_strength, (title,), {**two, "figsize": (12, 5.6)})
    for column, title, ylabel in (("val_data_loss", f"Validation data loss by {strength}",
                                   f"validation data loss ({words.data_loss})"),
                                  ("kernel_norm", f"Norm of the regularized kernel by {strength}",
                                   "‖W‖ of the regularized kernel (Frobenius)")):
        ov = data.overlay_data(fa, column, title, ylabel)
        unit(column, ov.title, ov, draw.render_overlay, (), {"figsize": (10, 5)})
    gn = data.gap_norm_data(fa)
    r = gn.correlation
    r_text = f"Pearson r = {r:.2f} over {len(gn.lams)} arms" if r == r else "Pearson r: n/a (fewer than 3 arms or no spread)"
    title = f"Generalization gap against kernel norm ({r_text})"
    unit("gap_vs_norm", title, gn, draw.render_gap_vs_norm, (title, seeds, "final ‖W‖ of the regularized kernel",
                                                             f"final gap: val − train data loss ({words.data_loss})"),
         {"figsize": (10, 5.5)})
    hd = data.histogram_data(fa)
    if hd is not None:
        title = f"Final weights of the regularized kernel by {strength}"
        cols = min(len(hd.panels), 4)
        rows = -(-len(hd.panels) // cols)
        unit("weight_histograms", title, hd, draw.render_histograms, (title,),
             {"nrows": rows, "ncols": cols, "figsize": (3 * cols + 0.5, 2.6 * rows + 0.8), "sharex": True,
              "sharey": True, "squeeze": False})
    for family, hm in analysis.heat_maps.items():
        optimizer = "SGD(momentum=0.9)" if sweep_config(fa.view).optimizer == "sgd" else "Adam"
        title = f"{hm.family.label} under {optimizer}: learning rate × strength"
        unit(heat_map_name(family), title, data.heat_map_data(hm, seeds), draw.render_heat_map, (title,),
             {**two, "figsize": (13, 5.8)})
    if len(analysis.families) > 1 and not analysis.heat_maps:
        title = "Regularizers compared: final validation metrics against each one's strength"
        unit("families", title, data.family_curves_data(analysis), draw.render_family_curves, (title,),
             {**two, "figsize": (12, 6.6)})
    return out


def displays(analysis: RunAnalysis) -> dict[str, Display]:
    """Every report figure as a Display keyed by file name (without `.png`), and each strength's training curves;
    nothing is written."""
    fa = analysis.main
    words = Words(fa.family.label, fa.family.in_loss)
    out = figure_units(analysis)
    for lam in fa.view.config.lambdas:
        name, title = curves_figure_name(lam)[:-4], f"{fa.label} λ = {lam_label(lam)}"
        out[name] = Display(name, title, data.strength_curves_data(fa, lam), draw.render_strength_curves,
                            (title, words), {"nrows": 1, "ncols": 2, "figsize": (12, 4.9)})
    return out
