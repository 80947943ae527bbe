"""Per-λ means over seeds, epoch bands, and which arms may be compared; the recommended λ, its neighbours,
interval and flat region as `reglab.analyze` gives them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import hand_made_run, row
from reglab.analysis.aggregate import (
    comparable_arms,
    epoch_bands,
    excluded_arms,
    final_values,
    gap_against_norm,
    weight_histograms,
)
from reglab.analysis.analyze import analyze
from reglab.analysis.diagnose import Criteria
from reglab.config import SweepConfig

CONFIG = SweepConfig(lambdas=(0.0, 0.001, 0.01), seeds=3, epochs=2, dataset="fake")
# final validation data loss per (λ, seed): λ = 0.001 is best in every seed, by a seed-independent margin
VAL = {0.0: (0.30, 0.32, 0.34), 0.001: (0.25, 0.27, 0.29), 0.01: (0.40, 0.41, 0.45)}


def make_rows(config=CONFIG, val=VAL):
    out = []
    for a in config.arms():
        seed_pos = a.seed - config.seed
        for epoch in (1, 2):
            v = val[a.strength][seed_pos] + (0.05 if epoch == 1 else 0.0)
            out.append(row(a.index, a.strength, epoch, seed=a.seed, val_data_loss=v, data_loss=v - 0.1,
                           accuracy=0.9 - a.strength, val_accuracy=1 - v, kernel_norm=10 * (1 - 50 * a.strength) + seed_pos))
    return out


def make_test_results(config):
    return [{"accuracy": 0.9 + a.seed / 100, "data_loss": 0.3, "loss": 0.31} for a in config.arms()]


def strengths(settings):
    return None if settings is None else tuple(x.strength for x in settings)


def test_per_lambda_stats_are_means_over_seeds():
    run = hand_made_run(make_rows(), CONFIG, tests=make_test_results(CONFIG))
    stats = analyze(run, kernels={}).main.stats
    assert [s.strength for s in stats] == [0.0, 0.001, 0.01]
    s = stats[1]
    assert s.seeds == (0, 1, 2)
    assert s["val_data_loss"].mean == pytest.approx(0.27) and s["val_data_loss"].n == 3
    assert s["val_data_loss"].low < 0.27 < s["val_data_loss"].high
    assert s["loss_gap"].mean == pytest.approx(0.1)
    assert s["test_accuracy"].mean == pytest.approx(0.91)
    # shrink: norm over the same seed's λ = 0 norm
    assert s["shrink"].mean == pytest.approx(sum((9.5 + k) / (10 + k) for k in range(3)) / 3)
    assert stats[0]["shrink"].mean == pytest.approx(1.0)


def test_recommended_lambda_with_neighbours_paired_by_seed():
    run = hand_made_run(make_rows(), CONFIG, tests=make_test_results(CONFIG))
    fa = analyze(run, kernels={}).main
    c = fa.recommended
    assert c.metric == "val_data_loss" and c.strength == 0.001 and not c.at_grid_edge
    assert [n.other.strength for n in c.neighbours] == [0.0, 0.01]
    # 0.001 − 0 is −0.05 in every seed: a certain difference even though the per-λ intervals overlap
    assert c.neighbours[0].difference.mean == pytest.approx(-0.05) and c.neighbours[0].distinguishable
    assert c.test_accuracy.mean == pytest.approx(0.91)
    assert fa.by_accuracy.metric == "val_accuracy" and fa.by_accuracy.strength == 0.001


def test_one_seed_has_no_interval_and_distinguishability_is_unknown():
    cfg = SweepConfig(lambdas=(0.0, 0.001, 0.01), seeds=1, epochs=2, dataset="fake")
    c = analyze(hand_made_run(make_rows(cfg), cfg), kernels={}).main.recommended
    assert c.strength == 0.001 and c.estimate.n == 1 and not c.estimate.has_interval
    assert all(n.distinguishable is None for n in c.neighbours)


def test_interrupted_and_diverged_arms_are_left_out():
    rows = [r for r in make_rows() if not (r.arm == 1 and r.epoch == 2)]  # arm 1 stopped after epoch 1
    statuses = ["completed"] * 9
    statuses[1], statuses[5] = "interrupted", "diverged"
    run = hand_made_run(rows, CONFIG, statuses=statuses)
    assert comparable_arms(run) == [0, 2, 3, 4, 6, 7, 8]
    assert [(a, why) for a, _, _, why in excluded_arms(run)] == [
        (1, "interrupted after 1 of 2 epochs"), (5, "diverged after 2 of 2 epochs")]
    finals = final_values(run)
    assert sorted(finals["val_data_loss"][0.001]) == [1, 2]  # seed 0's λ = 0.001 arm (arm 1) is out


def test_epoch_bands_and_derived_gap():
    run = hand_made_run(make_rows(), CONFIG)
    bands = {b.strength: b for b in epoch_bands(run, "val_data_loss")}
    b = bands[0.001]
    assert b.epochs == [1, 2] and b.n == 3
    assert b.mean == pytest.approx([0.32, 0.27])
    assert all(lo < m < hi for lo, m, hi in zip(b.low, b.mean, b.high))
    gap = {b.strength: b for b in epoch_bands(run, "loss_gap")}[0.01]
    assert gap.mean == pytest.approx([0.1, 0.1])
    one = SweepConfig(lambdas=(0.0,), seeds=1, epochs=2, dataset="fake")
    single = epoch_bands(hand_made_run(make_rows(one, {0.0: (0.3,)}), one), "val_data_loss")[0]
    assert single.n == 1 and all(math.isnan(x) for x in single.low)


def test_gap_against_norm_correlation():
    rows = []
    for a in CONFIG.arms():
        for epoch in (1, 2):
            norm = 10 - 500 * a.strength + a.seed
            rows.append(row(a.index, a.strength, epoch, seed=a.seed, kernel_norm=norm, data_loss=0.2, val_data_loss=0.2 + norm / 100))
    gn = gap_against_norm(hand_made_run(rows, CONFIG))
    assert len(gn.points) == 9
    assert gn.correlation == pytest.approx(1.0)


def test_weight_histograms_share_bins():
    import numpy as np

    run = hand_made_run(make_rows(), CONFIG)
    kernels = {a.index: np.full((4, 3), 0.1 / (1 + 100 * a.strength)) for a in CONFIG.arms()}
    kernels[0][0, 0] = -0.5
    hists = weight_histograms(run, kernels, bins=10)
    assert [h.strength for h in hists] == [0.0, 0.001, 0.01]
    assert all(h.edges == hists[0].edges for h in hists)
    assert hists[0].edges[0] == pytest.approx(-0.5) and hists[0].edges[-1] == pytest.approx(0.5)
    assert [sum(h.counts) for h in hists] == [36, 36, 36] and hists[0].n_weights == 36
    assert weight_histograms(run, {}) == []


def dense_run(seeds=4, noise=0.0, lams=(0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)):
    """Validation data loss a parabola in log λ with its minimum at 1e-3, plus a per-seed offset and
    optional per-(λ, seed) noise."""
    import math as m

    config = SweepConfig(lambdas=lams, seeds=seeds, epochs=1, dataset="fake")
    rng = np.random.default_rng(1)
    rows = []
    for a in config.arms():
        x = m.log10(a.strength) if a.strength > 0 else -5.0
        v = 0.3 + 0.02 * (x + 3) ** 2 + 0.01 * a.seed + noise * rng.standard_normal()
        rows.append(row(a.index, a.strength, 1, seed=a.seed, val_data_loss=v, val_accuracy=1 - v))
    return hand_made_run(rows, config)


def test_optimum_of_a_clean_parabola_is_certain_and_narrow():
    fa = analyze(dense_run(), kernels={}).main
    o = fa.recommended
    assert o.strength == 1e-3 and strengths(o.interval) == (1e-3, 1e-3) and len(o.seeds) == 4
    # neighbours differ by 0.02·0.48² ≈ 0.0046 in every seed: distinguishable, so nothing else is within noise
    assert strengths(o.indistinct) == (1e-3, 1e-3)
    # and with a margin below that step, no neighbour is shown equivalent: the flat region is the vertex alone
    strict = analyze(dense_run(), Criteria(loss_margin=0.001, accuracy_margin=0.001), kernels={}).main.recommended
    assert strict.strength == 1e-3 and strengths(strict.flat) == (1e-3, 1e-3)
    acc = fa.by_accuracy
    assert acc.strength == 1e-3 and strengths(acc.interval) == (1e-3, 1e-3)


def test_optimum_under_noise_has_an_interval_and_a_flat_region_that_contain_it():
    o = analyze(dense_run(noise=0.01), kernels={}).main.recommended
    lams = sorted(dense_run().config.lambdas)
    lo, hi = strengths(o.interval)
    assert lo <= o.strength <= hi
    assert o.flat[0].strength <= o.strength <= o.flat[1].strength
    ilo, ihi = strengths(o.indistinct)
    assert lams.index(ihi) - lams.index(ilo) >= 1  # noise of 0.01 blurs neighbours 0.005 apart
    again = analyze(dense_run(noise=0.01), kernels={}).main.recommended
    # seeded bootstrap: the same report every time
    assert (again.setting, again.interval, again.flat, again.indistinct) == (o.setting, o.interval, o.flat, o.indistinct)


def test_optimum_with_one_seed_has_no_interval():
    o = analyze(dense_run(seeds=1), kernels={}).main.recommended
    assert o.strength == 1e-3 and o.interval is None and strengths(o.flat) == (1e-3, 1e-3) and o.benefit == "one seed"
