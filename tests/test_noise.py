"""The noise model: intervals that cover what they claim, from seeds and validation sampling together."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reglab import noise


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


def test_identical_settings_differ_by_exactly_zero():
    x = np.random.default_rng(3).random((3, 50))
    d = noise.paired_difference(x, x)
    assert (d.mean, d.low, d.high) == (0.0, 0.0, 0.0) and not d.excludes_zero()


def test_without_per_example_values_the_seed_t_interval_is_used():
    d = noise.seed_only_difference({0: 0.30, 1: 0.31, 2: 0.32}, {0: 0.33, 1: 0.34, 2: 0.36})
    assert d.method == noise.T_OVER_SEEDS and d.excludes_zero()
    one = noise.seed_only_difference({0: 0.30}, {0: 0.40})
    assert not one.has_interval and one.mean == pytest.approx(-0.1)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(2, 60), st.floats(-1, 1), st.integers(0, 2**31 - 1))
def test_the_interval_always_contains_the_estimate(n_seeds, n, shift, seed):
    rng = np.random.default_rng(seed)
    a = rng.random((n_seeds, n))
    b = a + shift + 0.1 * rng.random((n_seeds, n))
    d = noise.paired_difference(b, a)
    assert d.low <= d.mean <= d.high and math.isfinite(d.half_width)


def test_the_best_setting_bootstrap_finds_a_clear_winner_and_spreads_over_ties():
    rng = np.random.default_rng(4)
    base = rng.gamma(0.6, 0.5, 800)
    clear = np.stack([np.stack([base + 0.3, base, base + 0.3]) + rng.normal(0, 0.01, (3, 800)) for _ in range(3)], axis=1)
    assert noise.best_setting_interval(clear, True, noise.Design(3, 800, n_boot=300)) == (1, 1)
    tied = np.stack([np.stack([base, base + 1e-4, base + 0.5]) + rng.normal(0, 0.05, (3, 800)) for _ in range(3)], axis=1)
    lo, hi = noise.best_setting_interval(tied, True, noise.Design(3, 800, n_boot=300))
    assert (lo, hi) == (0, 1)
