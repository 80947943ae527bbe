"""What each figure shows, as plain NamedTuples read off the run's analysis (tested without drawing).

Nothing is computed here that the analysis has not computed already: bands, per-strength statistics,
paired differences against the recommended setting, the flat region, the weight histograms. These
functions only pick and arrange them for one figure each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, Union

from reglab.analysis.adaptive import Round
from reglab.analysis.aggregate import Histogram
from reglab.analysis.heatmap import HeatMap
from reglab.analysis.results import FamilyAnalysis, RunAnalysis
from reglab.analysis.stats import Estimate
from reglab.figures.axes import NAN, dense_grid, spread_picks
from reglab.formatting import lam_label

#: Curve figures drawn at most (one per arm with one seed, one per strength with several): each costs ~0.2 s
#: and ~90 kB. Beyond it an evenly spaced choice over the grid, the ends and the recommended strength included.
MAX_CURVE_FIGURES = 24
#: Weight-histogram panels drawn at most (strengths evenly spaced over the grid, the ends included).
MAX_HISTOGRAM_PANELS = 12
CURVE_COLUMNS = ("loss", "val_loss", "data_loss", "val_data_loss", "accuracy", "val_accuracy")


# ---------------------------------------------------------------- training curves

class ArmCurves(NamedTuple):
    """One arm's raw curves (one-seed runs): what metrics.csv holds, sorted by epoch. `arm` is the run's index."""

    arm: int
    strength: float
    seed: int
    epochs: list[int]
    loss: list[float]
    val_loss: list[float]
    data_loss: list[float]
    val_data_loss: list[float]
    accuracy: list[float]
    val_accuracy: list[float]


def arm_curves_data(fa: FamilyAnalysis, arm: int) -> ArmCurves:
    """`arm` indexes the family's arms (`fa.view.arm_records`)."""
    record = fa.view.arm_records[arm]
    rows = sorted((r for r in fa.view.epochs if r.arm == arm), key=lambda r: r.epoch)
    col = lambda name: [getattr(r, name) for r in rows]  # noqa: E731
    return ArmCurves(fa.view.arm_ids[arm], record.strength, record.seed, col("epoch"), col("loss"),
                     col("val_loss"), col("data_loss"), col("val_data_loss"), col("accuracy"), col("val_accuracy"))


class CurveBand(NamedTuple):
    """Per epoch: the mean over seeds and its 95 % interval (low/high NaN with one seed)."""

    mean: list[float]
    low: list[float]
    high: list[float]


class StrengthCurves(NamedTuple):
    """One strength's curves over its comparable seeds (`n` of `n_arms`; the others diverged or stopped)."""

    strength: float
    n: int
    n_arms: int
    epochs: list[int]
    loss: CurveBand
    val_loss: CurveBand
    data_loss: CurveBand
    val_data_loss: CurveBand
    accuracy: CurveBand
    val_accuracy: CurveBand


def strength_curves_data(fa: FamilyAnalysis, lam: float) -> StrengthCurves:
    """Mean and 95 % band per epoch of every curve of one strength (empty when no seed of it completed)."""
    n_arms = sum(1 for a in fa.view.arm_records if a.strength == lam)
    bands: dict[str, CurveBand] = {}
    epochs: list[int] = []
    n = 0
    for column in CURVE_COLUMNS:
        b = next((b for b in fa.bands[column] if b.strength == lam), None)
        if b is None:
            bands[column] = CurveBand([], [], [])
        else:
            bands[column] = CurveBand(list(b.mean), list(b.low), list(b.high))
            epochs, n = list(b.epochs), b.n
    return StrengthCurves(lam, n, n_arms, epochs, **bands)


def curve_limits(curves: list[ArmCurves] | list[StrengthCurves]) -> tuple[list[list[float]], list[list[float]]]:
    """Every loss and every accuracy value the curve figures draw: one y-range each, shared by all of them."""
    loss, acc = [], []
    for c in curves:
        for name in ("loss", "val_loss", "data_loss", "val_data_loss"):
            v = getattr(c, name)
            loss += [v] if isinstance(v, list) else [v.mean, v.low, v.high]
        for name in ("accuracy", "val_accuracy"):
            v = getattr(c, name)
            acc += [v] if isinstance(v, list) else [v.mean, v.low, v.high]
    return loss, acc


# ---------------------------------------------------------------- one line per strength

class BandSeries(NamedTuple):
    strength: float
    label: str
    epochs: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]
    n: int


class Overlay(NamedTuple):
    """One line per strength (mean over its seeds) with its 95 % band."""

    column: str
    title: str
    ylabel: str
    series: list[BandSeries]
    seeds: int


def overlay_data(fa: FamilyAnalysis, column: str, title: str, ylabel: str) -> Overlay:
    seeds = fa.view.config.seeds
    series = [BandSeries(b.strength, f"λ = {lam_label(b.strength)}" + (f", n = {b.n}" if b.n != seeds else ""), list(b.epochs),
                         list(b.mean), list(b.low), list(b.high), b.n) for b in fa.bands[column]]
    note = ""
    if seeds > 1:
        note = f" — mean of {seeds} seeds" + ("" if dense_grid(s.strength for s in series) else ", band = 95 % CI")
    return Overlay(column, title + note, ylabel, series, seeds)


# ---------------------------------------------------------------- which strength

class Point(NamedTuple):
    """A mean with its 95 % interval (low/high NaN without one) over `n` seeds."""

    mean: float
    low: float
    high: float
    n: int


def point(e: Estimate) -> Point:
    return Point(e.mean, e.low if e.has_interval else NAN, e.high if e.has_interval else NAN, e.n)


class StrengthDifferences(NamedTuple):
    """Each strength's final value minus the recommended setting's, with the paired 95 % interval (seeds and
    validation examples) the text uses; `scale` turns the metric into the unit drawn (100: accuracy in points)."""

    metric: str
    ylabel: str
    lams: list[float]  # every strength with a comparable arm, ascending, 0 included
    mean: list[float]
    low: list[float]
    high: list[float]
    recommended: float
    value: Point  # the recommended setting's own final value (unscaled)
    scale: float


class WhichStrength(NamedTuple):
    loss: StrengthDifferences
    accuracy: StrengthDifferences
    flat: tuple[float, float]  # strengths shown within the loss margin of the recommended one (by validation data loss)
    accuracy_flat: tuple[float, float]  # … within the accuracy margin (each panel shades its own metric's region)
    interval: tuple[float, float] | None  # where the best falls under resampling
    strength_axis: str
    method: str
    missing: list[float]  # strengths of the grid with no comparable arm


def _differences(fa: FamilyAnalysis, metric: str, ylabel: str, scale: float) -> StrengthDifferences:
    rec = fa.recommended
    assert rec is not None  # which_strength_data checks it
    diffs = fa.against_recommended.get(metric, {})
    lams = sorted(diffs)
    e = next((s.values[metric] for s in fa.stats if s.strength == rec.strength), None)  # s[metric]: mypy reads a NamedTuple's [] as the tuple's
    # the recommended strength against itself is exactly 0 (drawn as a point, not as a missing interval)
    low = [0.0 if lam == rec.strength else scale * diffs[lam].low for lam in lams]
    high = [0.0 if lam == rec.strength else scale * diffs[lam].high for lam in lams]
    return StrengthDifferences(
        metric, ylabel, lams, [scale * diffs[lam].mean for lam in lams], low, high, rec.strength,
        point(e) if e is not None else Point(NAN, NAN, NAN, 0), scale)


def which_strength_data(fa: FamilyAnalysis) -> WhichStrength | None:
    """None when no strength has a comparable arm (nothing to recommend)."""
    rec = fa.recommended
    if rec is None:
        return None
    present = {s.strength for s in fa.stats}
    accuracy_flat = fa.equivalent.get("val_accuracy", (rec.setting, rec.setting))
    return WhichStrength(
        _differences(fa, "val_data_loss", f"val data loss − recommended's ({fa.family.penalty_words})", 1.0),
        _differences(fa, "val_accuracy", "val accuracy − recommended's (points)", 100.0),
        (rec.flat[0].strength, rec.flat[1].strength),
        (accuracy_flat[0].strength, accuracy_flat[1].strength),
        (rec.interval[0].strength, rec.interval[1].strength) if rec.interval else None,
        fa.family.strength_axis, fa.noise_method,
        [lam for lam in fa.view.config.lambdas if lam not in present],
    )


# ---------------------------------------------------------------- gap against norm

class GapNormMean(NamedTuple):
    strength: float
    norm: Point
    gap: Point


class GapNormData(NamedTuple):
    """One point per comparable arm, the per-strength means, and Pearson r over the arms (NaN with < 3 arms)."""

    lams: list[float]
    seeds: list[int]
    norms: list[float]
    gaps: list[float]
    means: list[GapNormMean]
    correlation: float


def gap_norm_data(fa: FamilyAnalysis) -> GapNormData:
    g = fa.gap_norm
    means = [GapNormMean(s.strength, point(s.values["kernel_norm"]), point(s.values["loss_gap"])) for s in fa.stats]  # s.values[m]: see _differences
    return GapNormData([p[0] for p in g.points], [p[1] for p in g.points], [p[2] for p in g.points],
                       [p[3] for p in g.points], means, g.correlation)


# ---------------------------------------------------------------- weights

class HistogramData(NamedTuple):
    """Per strength the pooled final kernel weights on shared bin edges; with more than `max_panels`
    strengths, `panels` holds an evenly spaced choice of them and `n_lams` says how many there were."""

    edges: list[float]
    panels: list[Histogram]
    n_lams: int = 0


def histogram_data(fa: FamilyAnalysis, max_panels: int = MAX_HISTOGRAM_PANELS) -> HistogramData | None:
    """None when there is nothing to draw (no kernels, or none of a comparable arm)."""
    hists = list(fa.histograms)
    if not hists:
        return None
    return HistogramData(list(hists[0].edges), [hists[i] for i in spread_picks(len(hists), max_panels)], len(hists))


# ---------------------------------------------------------------- families side by side

class FamilyPanel(NamedTuple):
    """One family's final metric against its own strengths (> 0) and its strength-0 value apart."""

    lams: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]
    baseline: Point | None


class FamilyCurves(NamedTuple):
    panels: dict[str, tuple[FamilyPanel, FamilyPanel]]  # family label → (val data loss, val accuracy)
    best: dict[str, float | None]  # family label → its recommended strength
    seeds: int


def _family_panel(fa: FamilyAnalysis, metric: str) -> FamilyPanel:
    pos = [(s.strength, point(s.values[metric])) for s in fa.stats if s.strength > 0]  # s.values[m]: see _differences
    base = next((point(s.values[metric]) for s in fa.stats if s.strength == 0), None)
    return FamilyPanel([lam for lam, _ in pos], [p.mean for _, p in pos], [p.low for _, p in pos],
                       [p.high for _, p in pos], base)


def family_curves_data(analysis: RunAnalysis) -> FamilyCurves:
    panels, best = {}, {}
    for fa in analysis.families.values():
        panels[fa.label] = (_family_panel(fa, "val_data_loss"), _family_panel(fa, "val_accuracy"))
        best[fa.label] = fa.recommended.strength if fa.recommended else None
    return FamilyCurves(panels, best, analysis.run.config.seeds)


def finite_values(xs: list[float]) -> list[float]:
    return [x for x in xs if x is not None and math.isfinite(x)]


# ---------------------------------------------------------------- learning rate × strength

class HeatPanel(NamedTuple):
    """One metric's grid: rows are strengths (λ = 0 first), columns learning rates; `mean[row][col]`."""

    title: str
    learning_rates: list[float]
    strengths: list[float]
    mean: list[list[float]]
    best: tuple[int, int] | None  # (row, column) of the best cell
    within: list[tuple[int, int]]  # cells shown within the margin of the best
    lower_is_better: bool


class HeatMapData(NamedTuple):
    family: str  # the family's label
    panels: tuple[HeatPanel, HeatPanel]  # validation data loss, validation accuracy
    seeds: int


def heat_map_data(hm: HeatMap, seeds: int) -> HeatMapData:
    """A `heatmap.HeatMap` as two panels (validation data loss, validation accuracy)."""
    panels = []
    for metric, name in (("val_data_loss", "Validation data loss (without penalty)"), ("val_accuracy", "Validation accuracy")):
        g = hm.grids[metric]
        best = (g.strengths.index(g.best.strength), g.learning_rates.index(g.best.learning_rate)) if g.best else None
        panels.append(HeatPanel(
            name, list(g.learning_rates), list(g.strengths), [[c.mean for c in row] for row in g.cells], best,
            [(i, j) for i, row in enumerate(g.cells) for j, c in enumerate(row) if c.within_margin], metric == "val_data_loss",
        ))
    return HeatMapData(hm.family.label, (panels[0], panels[1]), seeds)


#: What one figure unit shows (`figures.Display.data`): one of the NamedTuples above.
FigureData = Union[ArmCurves, StrengthCurves, WhichStrength, Overlay, GapNormData, HistogramData, FamilyCurves, HeatMapData]


# ---------------------------------------------------------------- an adaptive sweep's path

class PathPoint(NamedTuple):
    """One strength a round trained, why, and at how many seeds."""

    strength: float
    round: int
    why: str
    seeds: int


class AdaptivePath(NamedTuple):
    """Which strengths each round of an adaptive sweep trained, and why; the exploration's region and the choice."""

    points: tuple[PathPoint, ...]
    rounds: int
    region: tuple[float, float] | None  # the exploration's region of contenders around the best
    chosen: float | None  # the strength the confirmation tested


def adaptive_path_data(rounds: Sequence[Round], region: tuple[float, float] | None, chosen: float | None) -> AdaptivePath:
    points = tuple(PathPoint(a.strength, r.number, a.why, len(r.seeds)) for r in rounds for a in r.additions)
    ok = region is not None and all(math.isfinite(x) for x in region)
    return AdaptivePath(points, len(rounds), region if ok else None, chosen)
