"""Figure data (asserted as data, not pixels) and that drawing writes whole PNG files."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest

from helpers import hand_made_run, row
from reglab.config import SweepConfig
from reglab.plots import (
    Figures, arm_curves_data, arm_figure_name, curves_figure_name, draw_all, gap_norm_data, histogram_data,
    kernel_norm_overlay_data, lam_token, lambda_curve_data, lambda_curves_data, val_data_loss_overlay_data,
)
from reglab.record import write_kernels

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
                          val_accuracy=0.4 + epoch / 10 + s / 20 + arm.lam,
                          kernel_norm=10.0 - arm.lam * 100 - epoch - s)
            if arm.index in nan_arms:
                values = {k: float("nan") for k in values}
            out.append(row(arm.index, arm.lam, epoch, seed=arm.seed, **values))
    return out


def test_arm_curves_are_sorted_by_epoch():
    run = hand_made_run(rows(), CONFIG)
    c = arm_curves_data(run, 1)
    assert (c.lam, c.seed, c.epochs, c.loss) == (0.01, 0, [1, 2], [1.0, 0.5])
    assert arm_curves_data(run, 3).seed == 1


def test_lambda_curves_are_means_over_seeds_with_bands_that_bracket_them():
    run = hand_made_run(rows(), CONFIG)
    c = lambda_curves_data(run, 0.01)
    assert (c.lam, c.n, c.n_arms, c.epochs) == (0.01, 2, 2, [1, 2])
    assert c.loss.mean == pytest.approx([1.05, 0.55])  # seeds 0 and 1 differ by 0.1
    assert c.val_data_loss.mean == pytest.approx([0.7, 0.7])  # arms 1 and 3: 0.6 and 0.8
    assert c.val_data_loss.high[0] - c.val_data_loss.mean[0] == pytest.approx(T1 * 0.1)
    for band in (c.loss, c.val_loss, c.data_loss, c.val_data_loss, c.accuracy, c.val_accuracy):
        assert all(lo < m < hi for lo, m, hi in zip(band.low, band.mean, band.high))


def test_lambda_curves_of_one_seed_have_no_band_and_of_no_completed_seed_are_empty():
    one = SweepConfig(lambdas=(0.0, 0.01), epochs=2, seeds=1, dataset="fake")
    c = lambda_curves_data(hand_made_run(rows(one), one), 0.0)
    assert c.n == 1 and c.loss.mean == [1.0, 0.5] and all(math.isnan(v) for v in c.loss.low + c.loss.high)
    run = hand_made_run(rows(nan_arms=(1, 3)), CONFIG, statuses=["completed", "diverged", "completed", "diverged"])
    gone = lambda_curves_data(run, 0.01)
    assert (gone.n, gone.n_arms, gone.epochs, gone.loss.mean) == (0, 2, [], [])


def test_overlays_have_one_banded_series_per_lambda():
    run = hand_made_run(rows(), CONFIG)
    ov = val_data_loss_overlay_data(run)
    assert "without L2 penalty" in ov.ylabel and "mean of 2 seeds" in ov.title
    assert [s.label for s in ov.series] == ["λ = 0 (baseline)", "λ = 0.01"]
    assert ov.series[0].mean == pytest.approx([0.6, 0.6])  # arms 0 and 2: 0.5 and 0.7
    assert ov.series[1].low[0] < 0.7 < ov.series[1].high[0]
    norms = kernel_norm_overlay_data(run)
    assert norms.series[1].epochs == [1, 2] and norms.series[1].mean == pytest.approx([7.5, 6.5])


def test_lambda_curve_puts_the_baseline_apart_and_chooses_the_lowest_val_data_loss():
    config = SweepConfig(lambdas=(0.0, 0.001, 0.01), epochs=2, seeds=2, dataset="fake")
    run = hand_made_run(rows(config), config)
    d = lambda_curve_data(run)
    p = d.val_data_loss
    assert "without L2 penalty" in p.ylabel
    assert p.lams == [0.001, 0.01] and p.n == [2, 2]
    # arms: seed 0 → 0, 1, 2; seed 1 → 3, 4, 5; val data loss 0.5 + arm / 10
    assert p.mean == pytest.approx([0.75, 0.85])
    assert all(lo < m < hi for lo, m, hi in zip(p.low, p.mean, p.high))
    assert p.baseline.mean == pytest.approx(0.65) and p.baseline.n == 2 and p.baseline.low < 0.65 < p.baseline.high
    assert d.chosen == 0.0 and d.missing == []
    assert d.val_accuracy.mean == pytest.approx([0.625 + 0.001, 0.625 + 0.01])


def test_lambda_curve_without_baseline_and_with_a_diverged_lambda():
    config = SweepConfig(lambdas=(0.001, 0.01, 0.1), epochs=2, seeds=1, dataset="fake")
    run = hand_made_run(rows(config, nan_arms=(2,)), config, statuses=["completed", "completed", "diverged"])
    d = lambda_curve_data(run)
    assert d.val_data_loss.baseline is None and d.val_accuracy.baseline is None
    assert d.val_data_loss.lams == [0.001, 0.01] and d.val_data_loss.mean == pytest.approx([0.5, 0.6])
    assert all(math.isnan(v) for v in d.val_data_loss.low)  # one seed: no interval
    assert d.chosen == 0.001 and d.missing == [0.1]


def test_gap_norm_data_has_one_point_per_arm_and_per_lambda_means():
    config = SweepConfig(lambdas=(0.0, 0.01), epochs=2, seeds=3, dataset="fake")
    d = gap_norm_data(hand_made_run(rows(config), config))
    assert d.lams == [0.0, 0.0, 0.0, 0.01, 0.01, 0.01] and d.seeds == [0, 1, 2, 0, 1, 2]
    assert d.norms == pytest.approx([8, 7, 6, 7, 6, 5])  # epoch 2: 10 − 100 λ − 2 − seed
    # gap = val − train data loss at the last epoch: (0.5 + arm / 10) − (0.45 + seed / 10), arm = 2 seed + λ index
    assert d.gaps == pytest.approx([0.05, 0.15, 0.25, 0.15, 0.25, 0.35])
    assert d.correlation == pytest.approx(np.corrcoef(d.norms, d.gaps)[0, 1])
    assert [m.lam for m in d.means] == [0.0, 0.01]
    m = d.means[1]
    assert (m.norm.mean, m.norm.n) == (pytest.approx(6.0), 3) and m.norm.low < 6.0 < m.norm.high
    assert m.gap.mean == pytest.approx(0.25) and m.gap.low < 0.25 < m.gap.high


def test_histogram_data_shares_bins_and_pools_seeds():
    run = hand_made_run(rows(), CONFIG)
    kernels = {0: np.array([[0.5, -1.0]]), 1: np.array([[0.1, 0.0]]),
               2: np.array([[2.0, -0.5]]), 3: np.array([[0.2, 0.3]])}
    d = histogram_data(run, kernels)
    assert [h.lam for h in d.panels] == [0.0, 0.01]
    assert d.edges[0] == -2.0 and d.edges[-1] == 2.0 and all(h.edges == d.edges for h in d.panels)
    assert [h.n_weights for h in d.panels] == [4, 4] and [sum(h.counts) for h in d.panels] == [4, 4]
    assert histogram_data(run, {}) is None


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
        assert f.title and f.caption
    assert not list(folder.glob(".*"))  # no temporary files left
    assert plt.get_fignums() == []  # every figure closed
    assert sorted(p.name for p in folder.iterdir()) == sorted(f.path.name for f in files)


def test_draw_all_several_seeds_writes_one_curve_figure_per_lambda(tmp_path):
    run = hand_made_run(rows(), CONFIG, run_dir=tmp_path)
    figures = draw_all(run)
    folder = tmp_path / "figures"
    _assert_whole_pngs(figures, folder)
    assert [f.path.name for f in figures.curves] == ["curves_lambda-0.png", "curves_lambda-0.01.png"]
    assert "mean of 2 seeds, band = 95 % CI" in figures.curves[1].title
    assert [f.path.name for f in figures.all()[2:]] == [
        "val_data_loss.png", "kernel_norm.png", "lambda_curve.png", "gap_vs_norm.png"]
    assert figures.histograms is None  # no kernels.npz
    for f in (*figures.curves, figures.val_data_loss, figures.lambda_curve, figures.gap_vs_norm):
        assert "penalty" in f.caption  # every loss figure says whether the penalty is in
    assert "Pearson r" in figures.gap_vs_norm.title


def test_draw_all_one_seed_keeps_one_figure_per_arm(tmp_path):
    one = SweepConfig(lambdas=(0.0, 0.001, 0.01), epochs=3, seeds=1, seed=1, dataset="fake")
    figures = draw_all(hand_made_run(rows(one), one, run_dir=tmp_path))
    _assert_whole_pngs(figures, tmp_path / "figures")
    assert [f.path.name for f in figures.curves] == [
        "arm00_lambda-0_seed-1.png", "arm01_lambda-0.001_seed-1.png", "arm02_lambda-0.01_seed-1.png"]
    assert "seed 1" in figures.curves[1].title


def test_draw_all_with_kernels_draws_histograms(tmp_path):
    run = hand_made_run(rows(), CONFIG, run_dir=tmp_path)
    rng = np.random.default_rng(0)
    write_kernels(tmp_path, {i: rng.normal(scale=0.1 / (1 + i), size=(20, 8)) for i in range(4)})
    figures = draw_all(run)
    assert figures.histograms is not None and figures.histograms.path.name == "weight_histograms.png"
    assert figures.all()[-1] == figures.histograms
    _assert_whole_pngs(figures, tmp_path / "figures")


def test_draw_all_survives_a_diverged_lambda_and_no_baseline(tmp_path):
    config = SweepConfig(lambdas=(0.001, 0.01, 0.1), epochs=2, seeds=2, dataset="fake")
    statuses = ["completed", "completed", "diverged", "completed", "completed", "diverged"]
    run = hand_made_run(rows(config, nan_arms=(2, 5)), config, statuses=statuses, run_dir=tmp_path)
    figures = draw_all(run, kernels={i: np.ones((3, 3)) * i for i in range(6)})
    _assert_whole_pngs(figures, tmp_path / "figures")
    assert "no λ = 0 baseline" in figures.lambda_curve.caption
    assert "left out" in figures.val_data_loss.caption
    assert "no seed completed" in figures.curves[2].title and "mean of 2 seeds" in figures.curves[1].title


def test_draw_all_when_nothing_completed(tmp_path):
    one = SweepConfig(lambdas=(0.0, 0.01), epochs=2, seeds=1, dataset="fake")
    run = hand_made_run(rows(one, nan_arms=(0, 1)), one, statuses=["diverged", "diverged"], run_dir=tmp_path)
    figures = draw_all(run)
    _assert_whole_pngs(figures, tmp_path / "figures")
    assert figures.histograms is None


def test_lambda_curve_carries_the_optimum_of_each_metric():
    from reglab.plots import lambda_curve_data

    config = SweepConfig(lambdas=(0.0, 0.001, 0.01), epochs=1, seeds=3, dataset="fake")
    rows = [row(a.index, a.lam, 1, seed=a.seed, val_data_loss=0.3 + abs(a.lam - 0.001) * 10 + a.seed / 100,
                val_accuracy=0.9 - a.lam + a.seed / 100) for a in config.arms()]
    d = lambda_curve_data(hand_made_run(rows, config))
    assert d.optima["val_data_loss"].lam == 0.001 and d.optima["val_data_loss"].interval == (0.001, 0.001)
    assert d.optima["val_accuracy"].lam == 0.0


def _grid_rows(config: SweepConfig) -> list:
    """Ordinary values whatever the λ: a U-shaped final validation loss over the grid, kernels shrinking with it."""
    n = len(config.settings())
    out = []
    for a in config.arms():
        k = a.index % n
        for epoch in range(1, config.epochs + 1):
            out.append(row(a.index, a.lam, epoch, seed=a.seed, val_data_loss=0.5 + ((k - n / 3) / n) ** 2 + a.seed / 100 - epoch / 50,
                           data_loss=0.4 - epoch / 40, val_accuracy=0.8 + k / (10 * n) + epoch / 100, accuracy=0.85,
                           kernel_norm=10.0 - 5 * k / n - epoch / 10 + a.seed / 10))
    return out


def test_spread_picks_are_bounded_even_and_keep_the_ends_and_the_chosen():
    from reglab.plots import spread_picks

    assert spread_picks(5, 24) == [0, 1, 2, 3, 4]
    picks = spread_picks(1000, 24)
    assert len(picks) == 24 and picks[0] == 0 and picks[-1] == 999 and picks == sorted(set(picks))
    with_chosen = spread_picks(1000, 24, (500,))
    assert 500 in with_chosen and len(with_chosen) == 24 and with_chosen[0] == 0 and with_chosen[-1] == 999
    assert spread_picks(1000, 24, (0,)) == picks and spread_picks(3, 2) == [0, 2]


@pytest.mark.parametrize("lams", [(0.0, 7e307), (1e-3,), (5e-324, 1.7976931348623157e308), (0.0, 1e-300, 1e300),
                                  (0.0,) + tuple(10.0 ** e for e in range(-300, 301, 50))])
def test_log_limits_hold_every_finite_lambda(lams):
    from reglab.plots import log_limits

    lo, hi = log_limits(lams)
    pos = [x for x in lams if x > 0]
    assert 0 < lo < hi < math.inf
    assert lo <= min(pos) and hi >= max(pos)


@pytest.mark.parametrize("lams, seeds", [
    ((0.0, 7e307), 1),
    ((1e-3,), 2),
    ((0.0, 5e-324, 1.7976931348623157e308), 1),
    ((0.0,) + tuple(10.0 ** e for e in range(-300, 301, 50)), 2),  # 13 λ > 0 from 1e-300 to 1e300: a colour bar
])
def test_every_finite_lambda_draws(tmp_path, lams, seeds):
    """`--lambdas 0,7e307` crashed drawing (3 × 7e307 is inf); every λ axis is now limited in log space."""
    from reglab.plots import draw_family_curves, family_curves_data

    config = SweepConfig(lambdas=lams, epochs=2, seeds=seeds, dataset="fake")
    run = hand_made_run(_grid_rows(config), config, run_dir=tmp_path)
    rng = np.random.default_rng(0)
    figures = draw_all(run, kernels={a.index: rng.normal(size=(6, 4)) for a in config.arms()})
    _assert_whole_pngs(figures, tmp_path / "figures")
    draw_family_curves(family_curves_data(run), tmp_path / "families.png", "families")
    assert (tmp_path / "families.png").read_bytes()[:4] == b"\x89PNG"
    assert plt.get_fignums() == []


@pytest.mark.parametrize("seeds", [1, 2])
def test_a_large_grid_draws_a_bounded_set_of_figures(tmp_path, seeds):
    """200 λ: at most MAX_CURVE_FIGURES curves figures (the ends and the chosen λ among them), at most
    MAX_HISTOGRAM_PANELS histogram panels, overlays and the gap figure with a colour bar, and captions that say so."""
    from reglab.plots import MAX_CURVE_FIGURES, MAX_HISTOGRAM_PANELS, lambda_curve_data

    config = SweepConfig(lambdas=(0.0,) + tuple(np.logspace(-6, -1, 199)), epochs=2, seeds=seeds, dataset="fake")
    run = hand_made_run(_grid_rows(config), config, run_dir=tmp_path)
    rng = np.random.default_rng(0)
    kernels = {a.index: rng.normal(size=(6, 4)) for a in config.arms()}
    hd = histogram_data(run, kernels)
    assert len(hd.panels) == MAX_HISTOGRAM_PANELS and hd.n_lams == 200
    assert hd.panels[0].lam == 0.0 and hd.panels[-1].lam == config.lambdas[-1]
    figures = draw_all(run, kernels=kernels)
    _assert_whole_pngs(figures, tmp_path / "figures")
    assert len(figures.curves) == MAX_CURVE_FIGURES and figures.curves_total == 200
    chosen = lambda_curve_data(run).chosen
    named = [f.path.name for f in figures.curves]
    want = ([arm_figure_name(lam, 0, i) for i, lam in ((0, 0.0), (199, config.lambdas[-1]))] if seeds == 1 else
            [curves_figure_name(0.0), curves_figure_name(config.lambdas[-1])])
    assert want[0] == named[0] and want[1] == named[-1]
    assert any(lam_token(chosen) in name for name in named)
    assert "colour bar" in figures.val_data_loss.caption and "colour bar" in figures.kernel_norm.caption
    assert "log colour scale" in figures.gap_vs_norm.caption
    assert f"{MAX_HISTOGRAM_PANELS} of the 200 λ values" in figures.histograms.caption
