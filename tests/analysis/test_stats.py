"""Means, intervals and paired differences across seeds: known values and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reglab.analysis.stats import Estimate, mean_ci, seed_paired_difference, t_critical


def test_known_interval():
    e = mean_ci([1.0, 2.0, 3.0])  # sd 1, n 3: half-width t(0.975, 2) / sqrt(3)
    assert e.mean == 2.0 and e.n == 3
    assert e.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert (e.low, e.high) == pytest.approx((2.0 - e.half_width, 2.0 + e.half_width))


@pytest.mark.parametrize("df,expected", [(1, 12.7062), (2, 4.3027), (10, 2.2281), (30, 2.0423),
                                         (40, 2.0211), (60, 2.0003), (120, 1.9799), (10_000, 1.9602)])
def test_t_critical_against_tables(df, expected):
    assert t_critical(df) == pytest.approx(expected, abs=2e-4)


def test_t_critical_needs_a_degree_of_freedom():
    with pytest.raises(ValueError):
        t_critical(0)


def test_one_value_has_no_interval_and_non_finite_values_are_left_out():
    one = mean_ci([0.5, float("nan"), float("inf")])
    assert one.n == 1 and one.mean == 0.5 and math.isnan(one.half_width)
    assert not one.has_interval and not one.excludes_zero()
    assert mean_ci([]).n == 0 and math.isnan(mean_ci([]).mean)


def test_seed_paired_difference_uses_shared_seeds_only():
    a = {0: 1.0, 1: 2.0, 2: 3.0, 3: 9.0}
    b = {0: 0.5, 1: 1.5, 2: 2.5}
    e = seed_paired_difference(a, b)
    assert e.n == 3 and e.mean == pytest.approx(0.5) and e.half_width == pytest.approx(0.0, abs=1e-12)
    assert not e.excludes_zero()  # a constant shift has no measured noise: no interval, never "beyond noise"


values = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=40)


@given(values)
def test_interval_contains_the_mean_and_is_symmetric(xs):
    e = mean_ci(xs)
    assert e.n == len(xs) and e.half_width >= 0
    assert e.low <= e.mean <= e.high
    assert min(xs) - 1e-6 * (1 + abs(min(xs))) <= e.mean <= max(xs) + 1e-6 * (1 + abs(max(xs)))


@given(values, st.floats(-1e3, 1e3, allow_nan=False))
def test_shifting_every_value_shifts_the_mean_not_the_width(xs, shift):
    a, b = mean_ci(xs), mean_ci([x + shift for x in xs])
    assert b.mean == pytest.approx(a.mean + shift, rel=1e-9, abs=1e-6)
    assert b.half_width == pytest.approx(a.half_width, rel=1e-6, abs=1e-6)


@given(values)
def test_estimate_excludes_zero_only_when_the_interval_does(xs):
    e = mean_ci(xs)
    assert e.excludes_zero() == (e.half_width > 0 and (e.low > 0 or e.high < 0))
    assert isinstance(e, Estimate)
