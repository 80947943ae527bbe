"""The noise model: intervals that cover what they claim, from seeds and validation sampling together."""

from __future__ import annotations

import numpy as np
import pytest

from reglab.analysis import noise


def simulate(rng, n_seeds: int, n: int, effect: float, seed_sd: float, example_sd: float):
    """Two settings scored on one validation sample drawn from a population: per-example losses share an
    example effect (the example's difficulty), each seed adds its own shift, each (seed, example) some noise."""
    difficulty = rng.gamma(0.6, 0.5, n)  # heavy-tailed, like cross-entropies
    a = difficulty + rng.normal(0, seed_sd, (n_seeds, 1)) + rng.normal(0, example_sd, (n_seeds, n))
    b = difficulty + effect * (1 + 0.5 * rng.normal(0, 1, n)) + rng.normal(0, seed_sd, (n_seeds, 1)) \
        + rng.normal(0, example_sd, (n_seeds, n))
    return a, b


@pytest.mark.parametrize("n_seeds, seed_sd", [(3, 0.01), (5, 0.004), (1, 0.0)])
def test_intervals_cover_the_true_difference_95_percent_of_the_time(n_seeds, seed_sd):
    """Monte Carlo: 400 experiments whose true difference (population mean of b − a) is known."""
    rng = np.random.default_rng(7)
    effect, hits, widths = 0.02, 0, []
    for _ in range(400):
        a, b = simulate(rng, n_seeds, 500, effect, seed_sd, 0.05)
        d = noise.paired_difference(b, a)
        hits += d.low <= effect <= d.high
        widths.append(d.high - d.low)
    coverage = hits / 400
    assert 0.91 <= coverage <= 0.99, coverage  # 95 % ± Monte Carlo error (and no gross over-coverage)


def test_one_seed_measures_sampling_and_says_so():
    rng = np.random.default_rng(0)
    a, b = simulate(rng, 1, 1000, 0.2, 0.0, 0.05)
    d = noise.paired_difference(b, a)
    assert d.method == noise.SAMPLING_ONLY and d.excludes_zero() and d.n_seeds == 1


def test_a_seed_component_widens_the_interval():
    rng = np.random.default_rng(1)
    a, b = simulate(rng, 3, 1000, 0.0, 0.0, 0.05)
    calm = noise.paired_difference(b, a)
    b_noisy = b + np.array([[0.05], [-0.04], [0.02]])  # seeds disagree
    noisy = noise.paired_difference(b_noisy, a)
    assert noisy.half_width > 3 * calm.half_width and noisy.method == noise.METHOD


def test_accuracy_differences_of_a_few_images_are_within_noise():
    """1,000 validation images: 4 images' difference in accuracy must not be called real."""
    rng = np.random.default_rng(2)
    a = (rng.random((1, 1000)) < 0.92).astype(float)
    b = a.copy()
    flip = rng.choice(np.flatnonzero(a[0] == 1), 8, replace=False)
    b[0, flip[:6]] = 0
    b[0, np.flatnonzero(a[0] == 0)[:2]] = 1  # b: 4 images worse overall
    d = noise.paired_difference(b, a)
    assert not d.excludes_zero() and d.mean == pytest.approx(-0.004)


def test_identical_settings_differ_by_exactly_zero_and_have_no_interval():
    x = np.random.default_rng(3).random((3, 50))
    d = noise.paired_difference(x, x)
    assert d.mean == 0.0 and not d.has_interval and not d.excludes_zero()


def test_a_difference_with_no_variance_is_never_beyond_noise():
    """1 seed × 2 examples, both right against both wrong: a difference of 1 with nothing to measure noise by."""
    d = noise.paired_difference(np.array([[1.0, 1.0]]), np.array([[0.0, 0.0]]))
    assert d.mean == 1.0 and not d.has_interval and not d.excludes_zero()
    constant = noise.seed_only_difference({0: 0.5, 1: 0.75}, {0: 0.25, 1: 0.5})  # the same 0.25 in every seed
    assert not constant.has_interval and not constant.excludes_zero()


def crossed(rng, n_seeds: int, n: int, seed_sd: float, example_sd: float, cell_sd: float) -> np.ndarray:
    """D[seed, example] = seed effect + example effect + interaction, population mean 0."""
    return (rng.normal(0, seed_sd, (n_seeds, 1)) + rng.normal(0, example_sd, (1, n))
            + rng.normal(0, cell_sd, (n_seeds, n)))


@pytest.mark.parametrize("n_seeds, seed_sd, example_sd, cell_sd", [
    (3, 0.0, 0.02, 0.3),  # interaction-dominated, as accuracy differences are
    (3, 0.01, 0.05, 0.1),
    (5, 0.02, 0.0, 0.1),
])
def test_the_random_effects_variance_covers_and_counts_the_interaction_once(n_seeds, seed_sd, example_sd, cell_sd):
    """95 % coverage of the true mean 0, with intervals narrower on average than those of the one-way variances
    added up (which count the seed × example interaction twice). The estimate is the unbiased one, bounded below
    (a variance component is never negative), so with 2 seed df it runs a little high, never low."""
    rng = np.random.default_rng(11)
    n, runs = 400, 600
    truth = seed_sd ** 2 / n_seeds + example_sd ** 2 / n + cell_sd ** 2 / (n_seeds * n)
    hits, new, old = 0, [], []
    for _ in range(runs):
        d = crossed(rng, n_seeds, n, seed_sd, example_sd, cell_sd)
        diff = noise.paired_difference(d, np.zeros_like(d))
        hits += diff.low <= 0 <= diff.high
        new.append(noise.variance_of_mean(d).value)
        old.append(d.mean(axis=1).var(ddof=1) / n_seeds + d.mean(axis=0).var(ddof=1) / n)
    assert 0.93 <= hits / runs <= 0.995, hits / runs
    assert np.mean(new) >= 0.95 * truth
    assert abs(np.mean(new) - truth) < abs(np.mean(old) - truth) or np.mean(new) <= np.mean(old)


def test_simultaneous_intervals_hold_together_when_every_strength_equals_the_baseline():
    """The winner's curse: 9 strengths against λ = 0, none truly better. Each marginal 95 % interval misses now
    and then; the simultaneous ones miss at all in ≤ 5 % of experiments, so the best of the nine (whichever it
    is) is wrongly called better in ≤ 5 % of them (here 1.5 %; marginal intervals: 20 %). Values as in real runs: each strength changes which examples
    are hard (the same in every seed, zero on average), and adds a little seed noise. (When seeds dominate a
    comparison, its variance rests on S − 1 degrees of freedom; benchmarks/calibration.py measures that case.)"""
    rng = np.random.default_rng(5)
    n_seeds, n, k, runs = 3, 300, 9, 200
    any_marginal = any_simultaneous = 0
    for _ in range(runs):
        difficulty = rng.gamma(0.6, 0.5, n)
        x = (difficulty + rng.normal(0, 0.003, (k + 1, n_seeds, 1)) + rng.normal(0, 0.06, (k + 1, 1, n))
             + rng.normal(0, 0.1, (k + 1, n_seeds, n)))
        sim = noise.simultaneous_differences(x, 0, level=0.95)
        any_simultaneous += any(d.excludes_zero() for d in sim.differences)
        any_marginal += any(noise.paired_difference(x[j], x[0]).excludes_zero() for j in range(1, k + 1))
    assert any_simultaneous / runs <= 0.06, any_simultaneous / runs
    assert any_marginal / runs > 0.15, any_marginal / runs  # the curse is real: without the correction many runs find something


def test_the_simultaneous_level_is_sidaks():
    assert noise.sidak_level(1, 0.95) == pytest.approx(0.05)
    assert noise.sidak_level(9, 0.90) == pytest.approx(1 - 0.9 ** (1 / 9))
    assert noise.t_quantile_at(0.975, 2.0) == pytest.approx(4.3027, abs=1e-3)
    assert noise.t_quantile_at(0.975, float("inf")) == pytest.approx(1.95996, abs=1e-4)
