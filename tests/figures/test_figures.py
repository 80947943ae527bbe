"""Figures from the analysis: data units asserted as data (not pixels), and drawing that writes whole PNGs."""

from __future__ import annotations

import dataclasses
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest

from helpers import hand_made_run, row
from reglab.analysis.analyze import analyze
from reglab.config import SweepConfig
from reglab.figures import MAX_CURVE_FIGURES, Figures, data, draw_all
from reglab.figures.axes import arm_figure_name, curves_figure_name, lam_token, log_limits, spread_picks
from reglab.figures.data import MAX_HISTOGRAM_PANELS
from reglab.figures.draw import draw_family_curves

CONFIG = SweepConfig(lambdas=(0.0, 0.01), epochs=2, seeds=2, dataset="fake")
T1 = 12.7062  # t(0.975, 1): the 95 % half-width of two values is T1 · |a − b| / 2


def rows(config: SweepConfig = CONFIG, nan_arms: tuple[int, ...] = ()):
    """Values differ by seed (arms 0, 1 are seed 0; arms 2, 3 seed 1 in CONFIG) and by epoch."""
    out = []
    for arm in config.arms():
        for epoch in reversed(range(1, config.epochs + 1)):  # out of order on purpose: figures sort by epoch
            s = arm.seed - config.seed
            values = dict(loss=1.0 / epoch + s / 10, val_loss=1.2 / epoch + s / 10, data_loss=0.9 / epoch + s / 10,
                          val_data_loss=0.5 + arm.index / 10, accuracy=0.5 + epoch / 10 + s / 20,
                          val_accuracy=0.4 + epoch / 10 + s / 20 + arm.strength,
                          kernel_norm=10.0 - arm.strength * 100 - epoch - s)
            if arm.index in nan_arms:
                values = {k: float("nan") for k in values}
            out.append(row(arm.index, arm.strength, epoch, seed=arm.seed, **values))
    return out


def main(run, kernels=None):
    return analyze(run, kernels={} if kernels is None else kernels).main


def test_arm_curves_are_sorted_by_epoch():
    fa = main(hand_made_run(rows(), CONFIG))
    c = data.arm_curves_data(fa, 1)
    assert (c.strength, c.seed, c.epochs, c.loss) == (0.01, 0, [1, 2], [1.0, 0.5])
    assert data.arm_curves_data(fa, 3).seed == 1


def test_strength_curves_are_means_over_seeds_with_bands_that_bracket_them():
    c = data.strength_curves_data(main(hand_made_run(rows(), CONFIG)), 0.01)
    assert (c.strength, c.n, c.n_arms, c.epochs) == (0.01, 2, 2, [1, 2])
    assert c.loss.mean == pytest.approx([1.05, 0.55])  # seeds 0 and 1 differ by 0.1
    assert c.val_data_loss.mean == pytest.approx([0.7, 0.7])  # arms 1 and 3: 0.6 and 0.8
    assert c.val_data_loss.high[0] - c.val_data_loss.mean[0] == pytest.approx(T1 * 0.1)
    for band in (c.loss, c.val_loss, c.data_loss, c.val_data_loss, c.accuracy, c.val_accuracy):
        assert all(lo < m < hi for lo, m, hi in zip(band.low, band.mean, band.high))


def test_strength_curves_of_one_seed_have_no_band_and_of_no_completed_seed_are_empty():
    one = SweepConfig(lambdas=(0.0, 0.01), epochs=2, seeds=1, dataset="fake")
    c = data.strength_curves_data(main(hand_made_run(rows(one), one)), 0.0)
    assert c.n == 1 and c.loss.mean == [1.0, 0.5] and all(math.isnan(v) for v in c.loss.low + c.loss.high)
    run = hand_made_run(rows(nan_arms=(1, 3)), CONFIG, statuses=["completed", "diverged", "completed", "diverged"])
    gone = data.strength_curves_data(main(run), 0.01)
    assert (gone.n, gone.n_arms, gone.epochs, gone.loss.mean) == (0, 2, [], [])


def test_curve_figures_share_one_y_range_for_loss_and_one_for_accuracy():
    fa = main(hand_made_run(rows(), CONFIG))
    loss, acc = data.curve_limits([data.strength_curves_data(fa, lam) for lam in (0.0, 0.01)])
    flat = [v for xs in loss for v in xs if math.isfinite(v)]
    assert min(flat) < 0.5 and max(flat) > 1.0  # both strengths' losses, bands included
    assert len(loss) == 2 * 4 * 3 and len(acc) == 2 * 2 * 3  # strengths × curves × (mean, low, high)


def test_overlays_have_one_banded_series_per_strength():
    fa = main(hand_made_run(rows(), CONFIG))
    ov = data.overlay_data(fa, "val_data_loss", "Validation data loss", "val data loss")
    assert "mean of 2 seeds, band = 95 % CI" in ov.title
    assert [s.label for s in ov.series] == ["λ = 0 (baseline)", "λ = 0.01"]
    assert ov.series[0].mean == pytest.approx([0.6, 0.6])  # arms 0 and 2: 0.5 and 0.7
    assert ov.series[1].low[0] < 0.7 < ov.series[1].high[0]
    norms = data.overlay_data(fa, "kernel_norm", "‖W‖", "‖W‖")
    assert norms.series[1].epochs == [1, 2] and norms.series[1].mean == pytest.approx([7.5, 6.5])


def test_which_strength_draws_the_differences_the_text_uses():
    """Each strength minus the recommended one, with the very intervals of `against_recommended`."""
    config = SweepConfig(lambdas=(0.0, 0.001, 0.01), epochs=2, seeds=2, dataset="fake")
    fa = main(hand_made_run(rows(config), config))
    w = data.which_strength_data(fa)
    # arms: seed 0 → 0, 1, 2; seed 1 → 3, 4, 5; val data loss 0.5 + arm / 10: λ = 0 is best
    assert w.loss.recommended == 0.0 == fa.recommended.strength
    assert w.loss.lams == [0.0, 0.001, 0.01] and w.loss.mean == pytest.approx([0.0, 0.1, 0.2])
    for i, lam in enumerate(w.loss.lams):
        d = fa.against_recommended["val_data_loss"][lam]
        assert (w.loss.low[i], w.loss.high[i]) == (d.low, d.high) or math.isnan(d.low)
    assert w.accuracy.scale == 100 and w.accuracy.mean == pytest.approx([0.0, 0.1, 1.0])
    assert "without the L2 penalty" in w.loss.ylabel and w.strength_axis == "L2 strength λ"
    assert w.flat == (fa.recommended.flat[0].strength, fa.recommended.flat[1].strength)


def test_which_strength_is_none_when_nothing_completed():
    one = SweepConfig(lambdas=(0.0, 0.01), epochs=2, seeds=1, dataset="fake")
    run = hand_made_run(rows(one, nan_arms=(0, 1)), one, statuses=["diverged", "diverged"])
    assert data.which_strength_data(main(run)) is None


def test_gap_norm_data_has_one_point_per_arm_and_per_strength_means():
    config = SweepConfig(lambdas=(0.0, 0.01), epochs=2, seeds=3, dataset="fake")
    d = data.gap_norm_data(main(hand_made_run(rows(config), config)))
    assert d.lams == [0.0, 0.0, 0.0, 0.01, 0.01, 0.01] and d.seeds == [0, 1, 2, 0, 1, 2]
    assert d.norms == pytest.approx([8, 7, 6, 7, 6, 5])  # epoch 2: 10 − 100 λ − 2 − seed
    # gap = val − train data loss at the last epoch: (0.5 + arm / 10) − (0.45 + seed / 10), arm = 2 seed + λ index
    assert d.gaps == pytest.approx([0.05, 0.15, 0.25, 0.15, 0.25, 0.35])
    assert d.correlation == pytest.approx(np.corrcoef(d.norms, d.gaps)[0, 1])
    m = d.means[1]
    assert (m.norm.mean, m.norm.n) == (pytest.approx(6.0), 3) and m.norm.low < 6.0 < m.norm.high
    assert m.gap.mean == pytest.approx(0.25) and m.gap.low < 0.25 < m.gap.high


def test_histogram_data_shares_bins_and_pools_seeds():
    run = hand_made_run(rows(), CONFIG)
    kernels = {0: np.array([[0.5, -1.0]]), 1: np.array([[0.1, 0.0]]),
               2: np.array([[2.0, -0.5]]), 3: np.array([[0.2, 0.3]])}
    d = data.histogram_data(main(run, kernels))
    assert [h.strength for h in d.panels] == [0.0, 0.01]
    assert d.edges[0] == -2.0 and d.edges[-1] == 2.0 and all(h.edges == d.edges for h in d.panels)
    assert [h.n_weights for h in d.panels] == [4, 4] and [sum(h.counts) for h in d.panels] == [4, 4]
    assert data.histogram_data(main(run)) is None


def test_file_names_are_stable_and_distinct():
    assert curves_figure_name(0.001) == "curves_lambda-0.001.png"
    assert curves_figure_name(0.0) == "curves_lambda-0.png"
    assert arm_figure_name(0.001, 1, 3) == "arm03_lambda-0.001_seed-1.png"
    assert lam_token(1e-5) == "1e-05"
    assert lam_token(0.00010000001) != lam_token(0.0001)


def _assert_whole_pngs(figures: Figures, folder):
    files = figures.all()
    assert len({f.path for f in files}) == len(files)
    for f in files:
        assert f.path.parent == folder and f.key == f.path.stem
        assert f.path.read_bytes()[:4] == b"\x89PNG"
        assert f.title
    assert not list(folder.glob(".*"))  # no temporary files left
    assert plt.get_fignums() == []  # every figure closed
    assert sorted(p.name for p in folder.iterdir()) == sorted(f.path.name for f in files)


def test_draw_all_several_seeds_writes_one_curve_figure_per_strength(tmp_path):
    figures = draw_all(analyze(hand_made_run(rows(), CONFIG, run_dir=tmp_path)))
    _assert_whole_pngs(figures, tmp_path / "figures")
    assert [f.path.name for f in figures.curves] == ["curves_lambda-0.png", "curves_lambda-0.01.png"]
    assert "mean of 2 seeds, band = 95 % CI" in figures.curves[1].title
    assert figures.which_strength.path.name == "which_strength.png" and figures.all()[0] == figures.which_strength
    assert figures.weight_histograms is None and figures.families is None  # no kernels.npz; one family
    assert "Pearson r" in figures.gap_vs_norm.title


def test_draw_all_one_seed_keeps_one_figure_per_arm(tmp_path):
    one = SweepConfig(lambdas=(0.0, 0.001, 0.01), epochs=3, seeds=1, seed=1, dataset="fake")
    figures = draw_all(analyze(hand_made_run(rows(one), one, run_dir=tmp_path)))
    _assert_whole_pngs(figures, tmp_path / "figures")
    assert [f.path.name for f in figures.curves] == [
        "arm00_lambda-0_seed-1.png", "arm01_lambda-0.001_seed-1.png", "arm02_lambda-0.01_seed-1.png"]
    assert "seed 1" in figures.curves[1].title


def test_draw_all_with_kernels_draws_histograms(tmp_path):
    run = hand_made_run(rows(), CONFIG, run_dir=tmp_path)
    rng = np.random.default_rng(0)
    figures = draw_all(analyze(run, kernels={i: rng.normal(scale=0.1 / (1 + i), size=(20, 8)) for i in range(4)}))
    assert figures.weight_histograms.path.name == "weight_histograms.png"
    assert figures.all()[-1] == figures.weight_histograms
    _assert_whole_pngs(figures, tmp_path / "figures")


def test_draw_all_survives_a_diverged_strength_and_no_baseline(tmp_path):
    config = SweepConfig(lambdas=(0.001, 0.01, 0.1), epochs=2, seeds=2, dataset="fake")
    statuses = ["completed", "completed", "diverged", "completed", "completed", "diverged"]
    run = hand_made_run(rows(config, nan_arms=(2, 5)), config, statuses=statuses, run_dir=tmp_path)
    figures = draw_all(analyze(run, kernels={i: np.ones((3, 3)) * i for i in range(6)}))
    _assert_whole_pngs(figures, tmp_path / "figures")
    assert "no seed completed" in figures.curves[2].title and "mean of 2 seeds" in figures.curves[1].title


def test_draw_all_when_nothing_completed(tmp_path):
    one = SweepConfig(lambdas=(0.0, 0.01), epochs=2, seeds=1, dataset="fake")
    run = hand_made_run(rows(one, nan_arms=(0, 1)), one, statuses=["diverged", "diverged"], run_dir=tmp_path)
    figures = draw_all(analyze(run))
    _assert_whole_pngs(figures, tmp_path / "figures")
    assert figures.weight_histograms is None and figures.which_strength is None


def test_weight_decay_figures_never_speak_of_l2(tmp_path):
    config = SweepConfig(lambdas=(0.0, 0.01), epochs=2, seeds=2, dataset="fake", regularizers=("weight_decay",))
    run = hand_made_run([dataclasses.replace(r, regularizer="weight_decay") for r in rows(config)], config, run_dir=tmp_path)
    figures = draw_all(analyze(run))
    assert all("L2" not in f.title for f in figures.all())
    assert all("weight decay" in f.title for f in figures.curves)


def _grid_rows(config: SweepConfig) -> list:
    """Ordinary values whatever the λ: a U-shaped final validation loss over the grid, kernels shrinking with it."""
    n = len(config.settings())
    out = []
    for a in config.arms():
        k = a.index % n
        for epoch in range(1, config.epochs + 1):
            out.append(row(a.index, a.strength, epoch, seed=a.seed, val_data_loss=0.5 + ((k - n / 3) / n) ** 2 + a.seed / 100 - epoch / 50,
                           data_loss=0.4 - epoch / 40, val_accuracy=0.8 + k / (10 * n) + epoch / 100, accuracy=0.85,
                           kernel_norm=10.0 - 5 * k / n - epoch / 10 + a.seed / 10))
    return out


def test_spread_picks_are_bounded_even_and_keep_the_ends_and_the_chosen():
    assert spread_picks(5, 24) == [0, 1, 2, 3, 4]
    picks = spread_picks(1000, 24)
    assert len(picks) == 24 and picks[0] == 0 and picks[-1] == 999 and picks == sorted(set(picks))
    with_chosen = spread_picks(1000, 24, (500,))
    assert 500 in with_chosen and len(with_chosen) == 24 and with_chosen[0] == 0 and with_chosen[-1] == 999
    assert spread_picks(1000, 24, (0,)) == picks and spread_picks(3, 2) == [0, 2]


@pytest.mark.parametrize("lams", [(0.0, 7e307), (1e-3,), (5e-324, 1.7976931348623157e308), (0.0, 1e-300, 1e300),
                                  (0.0,) + tuple(10.0 ** e for e in range(-300, 301, 50))])
def test_log_limits_hold_every_finite_lambda(lams):
    lo, hi = log_limits(lams)
    pos = [x for x in lams if x > 0]
    assert 0 < lo < hi < math.inf
    assert lo <= min(pos) and hi >= max(pos)


@pytest.mark.parametrize("lams, seeds", [
    ((0.0, 3.4e38), 1),
    ((1e-3,), 2),
    ((0.0, float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)), 1),
    pytest.param((0.0,) + tuple(10.0 ** e for e in range(-35, 36, 5)), 2, marks=pytest.mark.slow),  # 15 λ > 0 from 1e-35 to 1e35: a colour bar
])
def test_every_finite_lambda_draws(tmp_path, lams, seeds):
    """Every strength a config admits (float32's whole range: training is in float32) draws; the axes are
    limited in log space (`test_log_limits_hold_every_finite_lambda` covers float64's range)."""
    config = SweepConfig(lambdas=lams, epochs=2, seeds=seeds, dataset="fake")
    run = hand_made_run(_grid_rows(config), config, run_dir=tmp_path)
    rng = np.random.default_rng(0)
    analysis = analyze(run, kernels={a.index: rng.normal(size=(6, 4)) for a in config.arms()})
    figures = draw_all(analysis)
    _assert_whole_pngs(figures, tmp_path / "figures")
    draw_family_curves(data.family_curves_data(analysis), tmp_path / "families.png", "families")
    assert (tmp_path / "families.png").read_bytes()[:4] == b"\x89PNG"
    assert plt.get_fignums() == []


@pytest.mark.slow
@pytest.mark.parametrize("seeds", [2])  # one seed's large grid: tests/figures/test_scale.py draws 60 arms through the report
def test_a_large_grid_draws_a_bounded_set_of_figures(tmp_path, seeds):
    """200 strengths: at most MAX_CURVE_FIGURES curves figures (the ends and the recommended among them), at most
    MAX_HISTOGRAM_PANELS histogram panels, and the overlays with a colour bar."""
    config = SweepConfig(lambdas=(0.0,) + tuple(np.logspace(-6, -1, 199)), epochs=2, seeds=seeds, dataset="fake")
    run = hand_made_run(_grid_rows(config), config, run_dir=tmp_path)
    rng = np.random.default_rng(0)
    analysis = analyze(run, kernels={a.index: rng.normal(size=(6, 4)) for a in config.arms()})
    hd = data.histogram_data(analysis.main)
    assert len(hd.panels) == MAX_HISTOGRAM_PANELS and hd.n_lams == 200
    assert hd.panels[0].strength == 0.0 and hd.panels[-1].strength == config.lambdas[-1]
    figures = draw_all(analysis)
    _assert_whole_pngs(figures, tmp_path / "figures")
    assert len(figures.curves) == MAX_CURVE_FIGURES and figures.curves_total == 200
    chosen = analysis.main.recommended.strength
    named = [f.path.name for f in figures.curves]
    want = ([arm_figure_name(lam, 0, i) for i, lam in ((0, 0.0), (199, config.lambdas[-1]))] if seeds == 1 else
            [curves_figure_name(0.0), curves_figure_name(config.lambdas[-1])])
    assert want[0] == named[0] and want[1] == named[-1]
    assert any(lam_token(chosen) in name for name in named)


def test_every_figure_draws_on_a_notebooks_axes_and_writes_nothing(tmp_path):
    """`displays(analysis)`: each figure's data and a `plot(ax=None)` that draws on given axes or new ones."""
    from reglab.figures import displays

    run = hand_made_run(rows(), CONFIG, run_dir=tmp_path)
    rng = np.random.default_rng(0)
    analysis = analyze(run, kernels={i: rng.normal(size=(20, 8)) for i in range(4)})
    shown = displays(analysis)
    assert {"which_strength", "val_data_loss", "kernel_norm", "gap_vs_norm", "weight_histograms",
            "curves_lambda-0", "curves_lambda-0.01"} <= set(shown)
    # the tested data unit (compared as text: a difference without an interval holds NaN, which equals nothing)
    assert repr(shown["which_strength"].data) == repr(data.which_strength_data(analysis.main))
    fig, (left, right) = plt.subplots(1, 2)
    assert shown["which_strength"].plot((left, right)) == (left, right)
    assert left.get_title().startswith("Validation data loss") and left.lines  # drawn on the given axes
    fig2, ax = plt.subplots()
    shown["val_data_loss"].plot(ax)
    assert len(ax.lines) == 2 and ax.get_ylabel().startswith("validation data loss")
    for d in shown.values():
        d.plot()  # new axes of their own
    assert not (tmp_path / "figures").exists()  # nothing written
    plt.close("all")
