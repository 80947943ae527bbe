"""The adaptive sweep's planner: from synthetic per-example losses (no Keras), the rounds it asks for and when it stops."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from reglab.analysis.adaptive import (
    CONFIRM_SEED,
    EQUIVALENT,
    UNDECIDED,
    WHY,
    WORSE,
    AdaptiveOptions,
    Addition,
    Finished,
    Round,
    assess,
    confirmation_cost,
    decades,
    first_round,
    label,
    next_round,
)
from reglab.errors import ConfigError

N = 400
DIFFICULTY = np.random.default_rng(123).gamma(0.6, 0.5, N)  # each validation example's own loss, shared by every arm
Effect = Callable[[float], float]


def arm(strength: float, seed: int, effect: Effect, seed_sd: float = 0.002, example_sd: float = 0.02) -> np.ndarray:
    """Per-example loss of one (strength, seed): the example's difficulty + the strength's effect + the seed's shift
    + noise of each (seed, example). Its own fixed rng, so an arm has the same values whichever round trains it."""
    rng = np.random.default_rng([seed, int(round(strength * 1e12))])
    return DIFFICULTY + effect(strength) + rng.normal(0, seed_sd) + rng.normal(0, example_sd, N)


def evidence(effect: Effect, strengths, seeds, **noise) -> dict[float, dict[int, np.ndarray]]:
    return {s: {k: arm(s, k, effect, **noise) for k in seeds} for s in strengths}


def train(ev: dict, r: Round, effect: Effect, **noise) -> None:
    """What the runner does with an exploration round: every addition at every seed, never an arm twice."""
    for a in r.additions:
        for seed in r.seeds:
            assert seed not in ev.get(a.strength, {}), f"arm ({a.strength}, {seed}) repeated"
            ev.setdefault(a.strength, {})[seed] = arm(a.strength, seed, effect, **noise)


def u_shape(centre: float = -3.0, flat: float = 1.0, slope: float = 0.5, zero: float = 0.3) -> Effect:
    """A clear U over log10 λ: flat within `flat` decades of `centre`, rising `slope` nats a decade outside; λ = 0 at `zero`."""
    return lambda s: zero if s == 0 else slope * max(0.0, abs(math.log10(s) - centre) - flat)


def explored(strengths, seeds=(0, 1), number: int = 1) -> Round:
    """A round that trained these strengths (as the evidence of a test says), for next_round's bookkeeping."""
    return Round(number, tuple(Addition(s, "start") for s in sorted(strengths)), tuple(seeds), "")


START = (0.0, 1e-7, 1e-5, 1e-3, 1e-1)
OPTIONS = AdaptiveOptions(epochs=10)
SEEDED = AdaptiveOptions(epochs=10, max_seeds=4)  # with seeds rounds (the default has none)


def test_the_start_round_is_zero_and_every_two_decades_at_two_seeds():
    r = first_round(OPTIONS)
    assert r.number == 1 and r.strengths == START and r.seeds == (0, 1)
    assert {a.why for a in r.additions} == {"start"} and not r.confirming
    assert r.arm_epochs(10) == 5 * 2 * 10 and r.note.endswith(".")
    assert next_round({}, (), OPTIONS) == r  # nothing run yet: the start


def test_best_at_the_top_of_the_grid_extends_it_above():
    ev = evidence(lambda s: 0.3 if s == 0 else 0.1 * max(0.0, -math.log10(s) - 1), START, (0, 1))
    r = next_round(ev, [first_round(OPTIONS)], OPTIONS)
    assert isinstance(r, Round) and r.number == 2 and r.seeds == (0, 1)
    assert Addition(10.0, "edge") in r.additions  # 1e-1 × 10² = the upper limit
    assert "top of the grid" in r.note and "1e-1" in r.note


def test_best_at_the_bottom_with_zero_worse_extends_it_below():
    ev = evidence(lambda s: 0.3 if s == 0 else 0.1 * max(0.0, math.log10(s) + 7), START, (0, 1))
    a = assess(ev, OPTIONS)
    assert a.best == 1e-7 and a.verdicts[0.0] == WORSE and not a.bounded_low
    r = next_round(ev, [first_round(OPTIONS)], OPTIONS)
    assert isinstance(r, Round) and Addition(1e-9, "edge") in r.additions and "bottom of the grid" in r.note


def test_zero_as_a_contender_bounds_the_region_below():
    ev = evidence(lambda s: 0.1 * max(0.0, math.log10(s) + 5) if s else 0.0, START, (0, 1))
    a = assess(ev, OPTIONS)
    assert a.region[0] == 0.0 and a.bounded_low and 0.0 in a.contenders
    r = next_round(ev, [first_round(OPTIONS)], OPTIONS)
    assert isinstance(r, Round) and not any(x.why == "edge" for x in r.additions)  # nothing below 1e-7 to look for


def test_a_bounded_region_with_wide_gaps_is_refined_at_log_midpoints():
    ev = evidence(u_shape(flat=0.5), START, (0, 1))
    a = assess(ev, OPTIONS)
    assert a.best == 1e-3 and a.region == (1e-3, 1e-3) and a.bounded_low and a.bounded_high
    assert a.unresolved == ((1e-5, 1e-3), (1e-3, 1e-1))
    r = next_round(ev, [first_round(OPTIONS)], OPTIONS)
    assert isinstance(r, Round) and r.additions == (Addition(1e-4, "refine"), Addition(1e-2, "refine")) and r.seeds == (0, 1)
    assert "wider than 0.33 decade" in r.note


def test_midpoints_round_to_three_digits_and_never_repeat_a_strength():
    ev = evidence(u_shape(flat=0.5), START + (1e-4,), (0, 1))  # 1e-4 already tried: only the upper midpoint is new
    r = next_round(ev, [first_round(OPTIONS), explored([1e-4], number=2)], OPTIONS)
    assert isinstance(r, Round)
    assert 1e-4 not in r.strengths and 1e-2 in r.strengths
    assert all(s == float(f"{s:.3g}") for s in r.strengths)


CLOSE = (0.0, 5e-4, 1e-3, 2e-3, 4e-3)  # 0.3 decade apart: nothing to refine around 1e-3


def close_effect(second: float) -> Effect:
    """Best at 1e-3, 2e-3 `second` above it, the neighbours beyond clearly worse, λ = 0 worse."""
    return lambda s: {0.0: 1.0, 5e-4: 1.0, 1e-3: 0.0, 2e-3: second, 4e-3: 1.0}[s]


def test_an_undecided_contender_gets_the_next_seeds_with_the_best():
    ev = evidence(close_effect(0.005), CLOSE, (0, 1), seed_sd=0.02)
    a = assess(ev, SEEDED)
    other = 2e-3 if a.best == 1e-3 else 1e-3  # the seed noise may put either first
    assert a.verdicts[other] == UNDECIDED and a.contenders == (1e-3, 2e-3) and a.unresolved == ()
    r = next_round(ev, [explored(CLOSE)], SEEDED)
    assert isinstance(r, Round) and r.seeds == (2, 3)
    assert r.additions == (Addition(1e-3, "seeds"), Addition(2e-3, "seeds"))  # λ = 0 is worse: decided
    assert f"{label(other)} is undecided" in r.note


def test_by_default_an_undecided_edge_member_stays_in_the_region_and_the_sweep_confirms():
    ev = evidence(close_effect(0.005), CLOSE, (0, 1), seed_sd=0.02)
    a = assess(ev, OPTIONS)
    assert UNDECIDED in a.verdicts.values() and a.contenders == (1e-3, 2e-3) and a.unresolved == ()
    r = next_round(ev, [explored(CLOSE)], OPTIONS)
    assert OPTIONS.max_seeds is None and isinstance(r, Round) and r.confirming and r.number == 2
    assert r.additions == (Addition(0.0, "confirm"), Addition(a.best, "confirm"))


def test_seeds_stop_at_max_seeds_and_the_sweep_confirms():
    ev = evidence(close_effect(0.005), CLOSE, range(6), seed_sd=0.05)
    a = assess(ev, SEEDED)
    assert a.contenders == (1e-3, 2e-3) and UNDECIDED in a.verdicts.values()
    rounds = [explored(CLOSE), explored((0.0, 1e-3, 2e-3), (2, 3), 2), explored((0.0, 1e-3, 2e-3), (4, 5), 3)]
    ev = {s: ({k: v for k, v in by.items() if k < 2} if s in (5e-4, 4e-3) else by) for s, by in ev.items()}
    r = next_round(ev, rounds, SEEDED)
    assert isinstance(r, Round) and r.confirming and r.number == 4


def test_a_decided_state_confirms_the_best_against_zero_on_fresh_seeds():
    ev = evidence(close_effect(0.0), CLOSE, (0, 1), seed_sd=0.0005)
    a = assess(ev, OPTIONS)
    assert EQUIVALENT in a.verdicts.values() and a.verdicts[5e-4] == WORSE and a.region == (1e-3, 2e-3)
    r = next_round(ev, [explored(CLOSE)], OPTIONS)
    assert isinstance(r, Round) and r.confirming and r.number == 2
    assert r.additions == (Addition(0.0, "confirm"), Addition(a.best, "confirm"))
    assert r.seeds == (CONFIRM_SEED, CONFIRM_SEED + 1, CONFIRM_SEED + 2) == (10000, 10001, 10002)
    assert r.note.startswith("Decided")
    done = next_round(ev, [explored(CLOSE), r], OPTIONS)
    assert done == Finished(a.best, ())


def test_zero_best_confirms_the_lowest_nonzero_strength():
    ev = evidence(lambda s: 0.0 if s == 0 else 0.2 + 0.05 * (math.log10(s) + 7), START, (0, 1))
    a = assess(ev, OPTIONS)
    assert a.best == 0.0 and a.region == (0.0, 0.0) and a.bounded_low and a.bounded_high and a.unresolved == ()
    r = next_round(ev, [first_round(OPTIONS)], OPTIONS)
    assert isinstance(r, Round) and r.confirming and r.strengths == (0.0, 1e-7) and "no strength beats λ = 0" in r.note


def test_ties_go_to_the_smaller_strength_and_no_variance_is_undecided():
    ev = evidence(u_shape(flat=0.5), START, (0, 1))
    ev[1e-2] = {k: v.copy() for k, v in ev[1e-3].items()}
    a = assess(ev, OPTIONS)
    assert a.best == 1e-3 and a.verdicts[1e-2] == UNDECIDED  # identical values: no interval, never "beyond noise"


def test_a_budget_that_only_fits_the_confirmation_goes_to_it():
    start = first_round(OPTIONS)
    options = AdaptiveOptions(epochs=10, budget=start.arm_epochs(10) + confirmation_cost(OPTIONS))
    ev = evidence(u_shape(flat=0.5), START, (0, 1))
    r = next_round(ev, [start], options)
    assert isinstance(r, Round) and r.confirming and r.strengths == (0.0, 1e-3) and "budget" in r.note
    assert sum(x.arm_epochs(10) for x in (start, r)) == options.budget


def test_a_budget_too_small_for_anything_finishes_with_what_is_open():
    start = first_round(OPTIONS)
    options = AdaptiveOptions(epochs=10, budget=start.arm_epochs(10) + confirmation_cost(OPTIONS))
    ev = evidence(u_shape(flat=0.5), START + (1e-4,), (0, 1))
    done = next_round(ev, [start, explored([1e-4], number=2)], options)  # 20 more spent than planned (a resumed, shrunk budget)
    assert isinstance(done, Finished) and done.chosen is None
    assert "budget" in done.open[0] and "too few for the confirmation" in done.open[0]
    assert any("wider than 0.33 decade" in s for s in done.open[1:]) and all(s.endswith(".") for s in done.open)


def test_the_last_round_is_kept_for_the_confirmation():
    options = AdaptiveOptions(epochs=10, max_rounds=2)
    r = next_round(evidence(u_shape(flat=0.5), START, (0, 1)), [first_round(options)], options)
    assert isinstance(r, Round) and r.confirming and "last of 2" in r.note


@pytest.mark.parametrize("budget", [None, 1500])
def test_a_clear_u_is_resolved_and_confirmed_within_the_rounds(budget):
    """The runner's loop on a U with a flat bottom from 1e-4 to 1e-2: every round's arms are new, the last round
    confirms, and the region's edges end resolved to 1/3 decade (within the budget when there is one)."""
    options = AdaptiveOptions(epochs=10, budget=budget)
    effect = u_shape()
    ev: dict[float, dict[int, np.ndarray]] = {}
    rounds: list[Round] = []
    while not isinstance(r := next_round(ev, rounds, options), Finished):
        assert r.number == len(rounds) + 1 <= options.max_rounds
        assert list(r.strengths) == sorted(set(r.strengths)) and set(a.why for a in r.additions) <= set(WHY)
        assert r.seeds == tuple(range(r.seeds[0], r.seeds[0] + len(r.seeds)))
        rounds.append(r)
        if not r.confirming:
            assert r.seeds[-1] < CONFIRM_SEED
            train(ev, r, effect)
    assert rounds[-1].confirming and r.chosen == rounds[-1].strengths[1] and r.open == ()
    assert sum(1 for x in rounds if x.confirming) == 1
    if budget is not None:
        assert sum(x.arm_epochs(options.epochs) for x in rounds) <= budget
    a = assess(ev, options)
    assert 1e-4 <= a.region[0] <= 1e-3 <= a.region[1] <= 1e-2 and a.bounded_low and a.bounded_high
    if budget is None:
        tried = sorted(ev)
        lo, hi = tried.index(a.region[0]), tried.index(a.region[1])
        assert decades(tried[lo - 1], tried[lo]) <= options.resolution + 0.01
        assert decades(tried[hi], tried[hi + 1]) <= options.resolution + 0.01
        assert a.unresolved == ()


@pytest.mark.parametrize("kwargs, words", [
    ({"epochs": 0}, "epochs"),
    ({"epochs": 1.5}, "epochs"),
    ({"epochs": 10, "seeds": True}, "seeds"),
    ({"epochs": 10, "low": 0.0}, "low"),
    ({"epochs": 10, "high": math.nan}, "high"),
    ({"epochs": 10, "low": 1e-1, "high": 1e-3}, "below high"),
    ({"epochs": 10, "limit_low": 1e-6}, "limits"),
    ({"epochs": 10, "limit_high": 1e-2}, "limits"),
    ({"epochs": 10, "resolution": -1.0}, "resolution"),
    ({"epochs": 10, "margin": 0}, "margin"),
    ({"epochs": 10, "seeds": 4, "max_seeds": 3}, "max_seeds"),
    ({"epochs": 10, "max_seeds": 20_000}, "max_seeds"),
    ({"epochs": 10, "seed_step": 0}, "seed_step"),
    ({"epochs": 10, "confirm_seeds": 0}, "confirm_seeds"),
    ({"epochs": 10, "max_rounds": 1}, "max_rounds"),
    ({"epochs": 10, "budget": 0}, "budget"),
    ({"epochs": 10, "budget": 159}, "at least 160"),
])
def test_invalid_options_are_config_errors(kwargs, words):
    with pytest.raises(ConfigError, match=words) as caught:
        AdaptiveOptions(**kwargs)
    assert "\n" not in str(caught.value)


def test_labels_read_like_the_notes():
    assert [label(x) for x in (0.0, 1e-3, 3.16e-4, 1e-7, 10.0, 0.1)] == ["0", "1e-3", "3.16e-4", "1e-7", "10", "1e-1"]


def test_a_contender_shown_equivalent_gets_no_more_seeds():
    """Seeds go where they can still change the answer: the undecided and the best; a strength shown within the
    margin of the best is decided (and the claim against λ = 0 is the confirmation's)."""
    effect = lambda s: {0.0: 1.0, 5e-4: 1.0, 1e-3: 0.0, 1.41e-3: 0.0, 2e-3: 0.005, 4e-3: 1.0}[s]  # noqa: E731
    grid = (0.0, 5e-4, 1e-3, 1.41e-3, 2e-3, 4e-3)
    ev = evidence(effect, grid, (0, 1), seed_sd=0.0005, example_sd=0.001)
    ev[2e-3] = {k: v + np.random.default_rng(k).normal(0, 0.02) for k, v in ev[2e-3].items()}  # its seeds disagree
    a = assess(ev, SEEDED)
    undecided = [s for s, v in a.verdicts.items() if v == UNDECIDED]
    equivalent = [s for s, v in a.verdicts.items() if v == EQUIVALENT]
    assert undecided == [2e-3] and equivalent, a.verdicts
    r = next_round(ev, [explored(grid)], SEEDED)
    assert isinstance(r, Round) and set(r.strengths) == {a.best, 2e-3}
    assert not set(equivalent) & set(r.strengths)


def test_the_gaps_beside_an_interior_best_are_not_refined():
    """Only the region's edges need resolving: the flat bottom around the best is already equivalent."""
    ev = evidence(u_shape(centre=-4.0, flat=1.2), START + (1e-6, 1e-4, 1e-2), (0, 1))
    a = assess(ev, OPTIONS)
    inside = [s for s in a.means if a.region[0] <= s <= a.region[1]]
    assert inside == [1e-5, 1e-4, 1e-3] and a.unresolved, a  # a full decade between members: wider than 1/3
    assert all((x in inside) != (y in inside) for x, y in a.unresolved)


def test_a_tiny_gap_shown_beyond_noise_but_within_the_margin_is_equivalent_not_worse():
    """A network that barely varies (a tiny table) measures gaps of 1e-6: inside the margin they are flat, as the
    report's flat region says, in the plan and in the confirmation alike."""
    from reglab.analysis.adaptive import confirm, verdict
    from reglab.analysis.results import EQUIVALENT as SHOWN_EQUIVALENT

    rng = np.random.default_rng(4)
    base = rng.gamma(0.6, 0.5, N)
    ev = {0.0: {k: base + 1e-7 * rng.standard_normal(N) for k in (0, 1, 2)},
          1e-5: {k: base + 1e-6 + 1e-7 * rng.standard_normal(N) for k in (0, 1, 2)}}
    assert verdict(ev, 1e-5, 0.0, 0.01) == EQUIVALENT
    chosen, zero = np.stack([ev[1e-5][k] for k in (0, 1, 2)]), np.stack([ev[0.0][k] for k in (0, 1, 2)])
    c = confirm(chosen, zero, 0.01)
    assert c.crossed.low > 0 and c.benefit == SHOWN_EQUIVALENT


def test_an_undecided_strength_inside_the_region_gets_no_seeds():
    """It stays in the region whatever more seeds say: only the region's edges decide where it ends."""
    grid = (0.0, 3e-4, 5e-4, 7e-4, 1e-3, 1.4e-3, 2e-3)
    effect = lambda s: {0.0: 1.0, 3e-4: 1.0, 5e-4: 0.0, 7e-4: 0.0, 1e-3: 0.0, 1.4e-3: 0.0, 2e-3: 1.0}[s]  # noqa: E731
    ev = evidence(effect, grid, (0, 1), seed_sd=0.0005, example_sd=0.001)
    ev[7e-4] = {k: v + np.random.default_rng(k).normal(0, 0.02) for k, v in ev[7e-4].items()}  # its seeds disagree
    a = assess(ev, OPTIONS)
    assert a.verdicts[7e-4] == UNDECIDED and a.region == (5e-4, 1.4e-3), a
    r = next_round(ev, [explored(grid)], OPTIONS)
    assert isinstance(r, Round) and r.confirming


def test_a_best_that_already_has_the_seeds_is_not_trained_again():
    """Seeds go to the undecided edge member up to what the best already has; the best trains only seeds it lacks."""
    ev = evidence(close_effect(0.005), CLOSE, (0, 1), seed_sd=0.02)
    a = assess(ev, SEEDED)
    other = 2e-3 if a.best == 1e-3 else 1e-3
    for seed in (2, 3):
        ev[a.best][seed] = arm(a.best, seed, close_effect(0.005), seed_sd=0.02)
    a = assess(ev, SEEDED)
    assert a.verdicts.get(other) == UNDECIDED, a
    r = next_round(ev, [explored(CLOSE), explored((a.best,), (2, 3), 2)], SEEDED)
    assert isinstance(r, Round) and r.strengths == (other,) and r.seeds == (2, 3) and "the best has them" in r.note


# ---------------------------------------------------------------- a fixed grid, confirmed (reglab run --confirm)

GRID = (0.0, 1e-4, 1e-3, 1e-2)


def test_a_fixed_grid_is_round_one_at_its_seeds_and_its_best_is_confirmed_next():
    options = AdaptiveOptions(epochs=10, seeds=3, grid=(1e-2, 0.0, 1e-3, 1e-4))
    first = next_round({}, (), options)
    assert first == first_round(options) and first.strengths == GRID and first.seeds == (0, 1, 2)
    assert {a.why for a in first.additions} == {"grid"} and not first.confirming
    assert first.note == "The grid: λ = 0 and 3 strengths from 1e-4 to 1e-2, at 3 seeds."
    # the best sits in a wide gap at the edge of a U: an adaptive sweep would refine it, a fixed grid confirms it
    ev = evidence(u_shape(flat=0.5), GRID, (0, 1, 2))
    assert assess(ev, options).unresolved
    r = next_round(ev, [first], options)
    assert isinstance(r, Round) and r.confirming and r.number == 2
    assert r.additions == (Addition(0.0, "confirm"), Addition(1e-3, "confirm"))
    assert r.seeds == tuple(range(CONFIRM_SEED, CONFIRM_SEED + 3)) and r.note.startswith("The grid's best is 1e-3; confirming 1e-3")
    assert next_round(ev, [first, r], options) == Finished(1e-3, ())


def test_a_fixed_grid_whose_best_is_zero_confirms_the_closest_nonzero_strength():
    options = AdaptiveOptions(epochs=10, seeds=2, grid=GRID)
    ev = evidence(lambda s: 0.0 if s == 0 else 0.05 * (math.log10(s) + 5), GRID, (0, 1))
    r = next_round(ev, [first_round(options)], options)
    assert isinstance(r, Round) and r.confirming and r.strengths == (0.0, 1e-4)


@pytest.mark.parametrize("grid, words", [
    ((0.0,), "no nonzero strength"),
    ((), "no nonzero strength"),
    ((0.0, -1e-3), "finite strengths ≥ 0"),
    ((0.0, math.inf), "finite strengths ≥ 0"),
    ("0,1e-3", "finite strengths ≥ 0"),
])
def test_a_grid_with_nothing_to_confirm_or_a_bad_strength_is_refused(grid, words):
    with pytest.raises(ConfigError, match=words):
        AdaptiveOptions(epochs=10, grid=grid)


def test_a_grid_read_back_from_json_is_the_same_options():
    """adaptive.json stores the options as JSON (a list): they read back equal, so a resumed sweep plans the same."""
    options = AdaptiveOptions(epochs=10, seeds=3, grid=GRID)
    assert AdaptiveOptions(**{**options.__dict__, "grid": list(GRID)}) == options
