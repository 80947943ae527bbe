"""The plan of an adaptive sweep (`reglab run --adaptive`): which strengths and seeds the next round trains,
and when the answer is decided.

Pure: the runner trains what a `Round` names and hands back the per-example validation data loss of every
arm (`Evidence`); `next_round` reads it and plans the next round, or says the sweep is `Finished`. Nothing
here trains, reads files or draws random numbers, so a plan can be replayed from its evidence.

Every comparison is `noise.paired_difference` of a strength against the best on their shared seeds, the same
statistic the report shows, and the equivalence margin is `Criteria.loss_margin`'s (0.01 nats by default):

- *equivalent*: the interval lies below the margin (`noise.within_margin`): flat, even when a tiny gap is measurable;
- *worse*: otherwise, the interval of strength − best lies above 0;
- *undecided*: neither (or no interval: a difference without variance is never "beyond noise").

The best and every strength not shown worse are the *contenders*; the contiguous run of them around the best
is the *region* (the flat bottom of the loss over λ). A round widens the grid where the region touches its
top or bottom (*edge*), halves the gaps wider than `resolution` decades at the region's edges (*refine*), or, only
when `max_seeds` asks for it, adds seeds to the region's edge members still undecided and the best (*seeds*: they
narrow the region; a member inside it stays in it either way, and the claim against λ = 0 comes from the
confirmation, not from exploration, so by default the region is what the exploration seeds show). When none is needed, or the
budget or the rounds run out, the chosen strength and λ = 0 are trained once more on fresh seeds that no
exploration round used (*confirm*), so the final claim is not tested on the values that chose it.

With `AdaptiveOptions(grid=…)` (`reglab run --confirm`) there is no exploration: round 1 is the user's own grid
at its seeds, and the confirmation follows it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from reglab.analysis.noise import Difference, paired_difference, simultaneous_differences, t_quantile_at, within_margin
from reglab.analysis.results import BETTER, CANT_TELL, EQUIVALENT, WORSE
from reglab.errors import ConfigError

EXPLORE_SEED = 0  #: exploration seeds are 0, 1, 2, ...
CONFIRM_SEED = 10_000  #: confirmation seeds are CONFIRM_SEED, CONFIRM_SEED + 1, ... (never used in exploration)

WHY = ("start", "grid", "edge", "refine", "seeds", "confirm")  #: why a strength is in a round
UNDECIDED = "undecided"  #: a strength against the best: WORSE, EQUIVALENT (the analysis's words) or this

#: Rounding strengths to 3 significant digits moves them by up to 0.002 decade: gaps are compared with this slack.
TOLERANCE = 0.01

#: strength → seed → per-example validation data loss at the final epoch (1-D, the same examples everywhere).
Evidence = Mapping[float, Mapping[int, np.ndarray]]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class AdaptiveOptions:
    """How an adaptive sweep explores, how finely it resolves the region, and what it may spend."""

    epochs: int  # per arm (the cost of an arm is `epochs` arm-epochs)
    low: float = 1e-7  # the start grid: λ = 0 plus `low`, then every `start_step` decades up to `high`
    high: float = 1e-1
    start_step: float = 2.0  # decades between start strengths (1e-7, 1e-5, 1e-3, 1e-1)
    limit_low: float = 1e-10  # never extend below / above these
    limit_high: float = 10.0
    resolution: float = 1 / 3  # decades: the region's edges are resolved to this step
    seeds: int = 2  # exploration seeds of every strength
    # seeds rounds: the region's undecided edge members get seeds added until they have this many; None (the
    # default): none, the region is what `seeds` seeds show (docs/adaptive.md says why)
    max_seeds: int | None = None
    seed_step: int = 2  # seeds added per seeds round
    confirm_seeds: int = 3  # fresh seeds of the chosen strength and λ = 0 in the confirmation round
    budget: int | None = None  # arm-epochs in all, the confirmation included; None = no limit
    margin: float = 0.01  # equivalence margin on validation data loss (`Criteria.loss_margin`)
    max_rounds: int = 12  # rounds in all, the confirmation included
    # a fixed grid instead of exploration (`reglab run --confirm`): round 1 trains exactly these strengths at `seeds`
    # seeds, and the confirmation follows it; None (the default): the start grid, extended and refined in rounds
    grid: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.grid is not None:
            if isinstance(self.grid, (str, bytes)) or not all(_is_number(x) and x >= 0 for x in self.grid):
                raise ConfigError(f"the adaptive grid must be finite strengths ≥ 0, got {self.grid!r}")
            object.__setattr__(self, "grid", tuple(sorted({float(x) for x in self.grid})))
            if not any(x > 0 for x in self.grid):
                raise ConfigError("the grid has no nonzero strength: there is nothing to confirm against λ = 0")
        for name in ("epochs", "seeds", "max_seeds", "seed_step", "confirm_seeds", "max_rounds"):
            value = getattr(self, name)
            if name == "max_seeds" and value is None:
                continue
            if not _is_int(value) or value < 1:
                raise ConfigError(f"adaptive {name} must be a whole number of at least 1, got {value!r}")
        for name in ("low", "high", "start_step", "limit_low", "limit_high", "resolution", "margin"):
            value = getattr(self, name)
            if not _is_number(value) or value <= 0:
                raise ConfigError(f"adaptive {name} must be a positive number, got {value!r}")
        if not self.low < self.high:
            raise ConfigError(f"adaptive low ({self.low:g}) must be below high ({self.high:g})")
        if not self.limit_low <= self.low or not self.high <= self.limit_high:
            raise ConfigError(f"adaptive limits [{self.limit_low:g}, {self.limit_high:g}] must contain the start range "
                              f"[{self.low:g}, {self.high:g}]")
        if self.seed_limit < self.seeds:
            raise ConfigError(f"adaptive max_seeds ({self.max_seeds}) must be at least seeds ({self.seeds})")
        if self.seed_limit >= CONFIRM_SEED - EXPLORE_SEED:
            name = "seeds" if self.max_seeds is None else "max_seeds"
            raise ConfigError(f"adaptive {name} must be below {CONFIRM_SEED - EXPLORE_SEED} (the confirmation's fresh seeds "
                              f"start there), got {self.seed_limit}")
        if self.max_rounds < 2:
            raise ConfigError(f"adaptive max_rounds must be at least 2 (the start round and the confirmation), got {self.max_rounds}")
        if self.budget is not None:
            if not _is_int(self.budget) or self.budget < 1:
                raise ConfigError(f"adaptive budget must be a whole number of arm-epochs of at least 1, got {self.budget!r}")
            start, confirm = first_round(self).arm_epochs(self.epochs), confirmation_cost(self)
            if self.budget < start + confirm:
                raise ConfigError(f"adaptive budget of {self.budget:,} arm-epochs cannot pay for the start round ({start:,}) and "
                                  f"the confirmation ({confirm:,}): give at least {start + confirm:,}")

    @property
    def seed_limit(self) -> int:
        """The most exploration seeds a strength gets (`seeds` when there are no seeds rounds)."""
        return self.seeds if self.max_seeds is None else self.max_seeds


class Addition(NamedTuple):
    """One strength of a round and why it is there (one of `WHY`)."""

    strength: float
    why: str


class Round(NamedTuple):
    """What the runner trains next: every addition at every one of `seeds`."""

    number: int  # 1-based
    additions: tuple[Addition, ...]  # ascending strength, no repeats; 0.0 allowed
    seeds: tuple[int, ...]  # contiguous ascending seed numbers
    note: str  # one sentence a user reads: why this round

    @property
    def strengths(self) -> tuple[float, ...]:
        return tuple(a.strength for a in self.additions)

    @property
    def confirming(self) -> bool:
        """The confirmation round: its values test the choice and never feed `next_round`."""
        return any(a.why == "confirm" for a in self.additions)

    def arm_epochs(self, epochs: int) -> int:
        return len(self.additions) * len(self.seeds) * epochs


class Finished(NamedTuple):
    """The sweep is over: the strength the confirmation tests (None if nothing was confirmed) and what is open."""

    chosen: float | None
    open: tuple[str, ...]  # one sentence each; empty when decided


class Assessment(NamedTuple):
    """The state the decisions read, and the report shows."""

    best: float  # the lowest mean over seeds × examples (ties: the smaller strength)
    verdicts: Mapping[float, str]  # every other strength against the best: WORSE, EQUIVALENT or UNDECIDED
    contenders: tuple[float, ...]  # the best and every strength not shown worse, ascending
    region: tuple[float, float]  # the contiguous run of contenders around the best (λ = 0 the lowest strength)
    bounded_low: bool  # the region reaches λ = 0, or a nonzero strength below it is worse
    bounded_high: bool  # a strength above it is worse
    unresolved: tuple[tuple[float, float], ...]  # gaps wider than `resolution` at the region's edges
    means: Mapping[float, float]  # every strength tried → its mean over seeds × examples


def round_strength(x: float) -> float:
    """3 significant digits: strengths a person can read and type back."""
    return float(f"{x:.3g}")


def label(x: float) -> str:
    """A strength in a sentence: 0, 1e-3, 3.16e-4, 10."""
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:.2e}".split("e")
    power = int(exponent)
    if 0 <= power <= 2:
        return f"{x:g}"
    return f"{mantissa.rstrip('0').rstrip('.')}e{power}"


def decades(a: float, b: float) -> float:
    """The log10 distance between two nonzero strengths."""
    return abs(math.log10(b) - math.log10(a))


def start_strengths(options: AdaptiveOptions) -> tuple[float, ...]:
    """λ = 0, then `low` and every `start_step` decades up to `high`."""
    first, last = math.log10(options.low), math.log10(options.high)
    steps = int(math.floor((last - first) / options.start_step + 1e-9))
    return (0.0,) + tuple(round_strength(10 ** (first + k * options.start_step)) for k in range(steps + 1))


def exploration_seeds(options: AdaptiveOptions) -> tuple[int, ...]:
    return tuple(range(EXPLORE_SEED, EXPLORE_SEED + options.seeds))


def confirmation_seeds(options: AdaptiveOptions) -> tuple[int, ...]:
    return tuple(range(CONFIRM_SEED, CONFIRM_SEED + options.confirm_seeds))


def confirmation_cost(options: AdaptiveOptions) -> int:
    """λ = 0 and the chosen strength at every confirmation seed."""
    return 2 * options.confirm_seeds * options.epochs


def first_round(options: AdaptiveOptions) -> Round:
    if options.grid is not None:
        nonzero = [s for s in options.grid if s > 0]
        span = f"{label(nonzero[0])}" if len(nonzero) == 1 else f"{len(nonzero)} strengths from {label(nonzero[0])} to {label(nonzero[-1])}"
        note = f"The grid: {'λ = 0 and ' if 0.0 in options.grid else ''}{span}, at {options.seeds} seed{'s' if options.seeds > 1 else ''}."
        return Round(1, tuple(Addition(s, "grid") for s in options.grid), exploration_seeds(options), note)
    strengths = start_strengths(options)
    note = (f"Start: λ = 0 and {len(strengths) - 1} strengths from {label(strengths[1])} to {label(strengths[-1])}, "
            f"every {options.start_step:g} decades, at {options.seeds} seeds.")
    return Round(1, tuple(Addition(s, "start") for s in strengths), exploration_seeds(options), note)


def _table(by_seed: Mapping[int, np.ndarray], seeds: Sequence[int]) -> np.ndarray:
    """[seeds × examples] of one strength, rows in the order of `seeds`."""
    return np.stack([np.asarray(by_seed[s], dtype=np.float64).ravel() for s in seeds])


def _mean(by_seed: Mapping[int, np.ndarray]) -> float:
    mean = float(_table(by_seed, sorted(by_seed)).mean())
    return mean if math.isfinite(mean) else math.inf  # a diverged strength is never the best


def verdict(evidence: Evidence, strength: float, best: float, margin: float) -> str:
    """`strength` against `best` on their shared seeds, paired. A strength with values that are not finite
    (diverged) where the best's are is worse: it cannot be a contender however wide its (absent) interval."""
    shared = sorted(set(evidence[strength]) & set(evidence[best]))
    if not shared:
        return UNDECIDED
    a, b = _table(evidence[strength], shared), _table(evidence[best], shared)
    if not np.isfinite(a).all() and np.isfinite(b).all():
        return WORSE
    d = paired_difference(a, b)
    if within_margin(d, True, margin):  # shown within the margin: flat, even when a tiny gap is measurable
        return EQUIVALENT
    return WORSE if d.has_interval and d.low > 0 else UNDECIDED


def assess(evidence: Evidence, options: AdaptiveOptions) -> Assessment:
    """The best strength, every other one against it, the region of contenders around it and its open gaps."""
    tried = sorted(s for s, by_seed in evidence.items() if len(by_seed))
    if not tried:
        raise ValueError("assess needs evidence of at least one strength")
    means = {s: _mean(evidence[s]) for s in tried}
    best = min(tried, key=lambda s: (means[s], s))
    verdicts = {s: verdict(evidence, s, best, options.margin) for s in tried if s != best}
    contenders = tuple(s for s in tried if s == best or verdicts[s] != WORSE)
    at = tried.index(best)
    lo = hi = at
    while lo > 0 and tried[lo - 1] in contenders:
        lo -= 1
    while hi < len(tried) - 1 and tried[hi + 1] in contenders:
        hi += 1
    edges = ([(tried[lo - 1], tried[lo])] if lo > 0 else []) + ([(tried[hi], tried[hi + 1])] if hi < len(tried) - 1 else [])
    unresolved = tuple(sorted({(a, b) for a, b in edges if a > 0 and decades(a, b) > options.resolution + TOLERANCE}))
    return Assessment(best=best, verdicts=verdicts, contenders=contenders, region=(tried[lo], tried[hi]),
                      bounded_low=tried[lo] == 0 or (lo > 0 and tried[lo - 1] > 0), bounded_high=hi < len(tried) - 1,
                      unresolved=unresolved, means=means)


class _Step(NamedTuple):
    """Strengths one rule adds to the grid, and the clause that says why."""

    additions: tuple[Addition, ...]
    finding: str  # what the evidence shows
    action: str  # what the round does about it

    @property
    def clause(self) -> str:
        return f"{self.finding}: {self.action}"


def _edges(a: Assessment, options: AdaptiveOptions) -> list[_Step]:
    """Widen the grid where a contender sits at its top, or at its nonzero bottom while λ = 0 is worse."""
    tried = sorted(a.means)
    nonzero = [s for s in tried if s > 0]
    steps: list[_Step] = []
    if not nonzero:
        return steps
    top, bottom = nonzero[-1], nonzero[0]
    up = min(round_strength(top * 10 ** options.start_step), options.limit_high)
    if top in a.contenders and top < options.limit_high and up not in tried:
        who = f"the best strength, {label(top)}, is" if top == a.best else f"{label(top)}, the highest strength, is not worse than the best and"
        steps.append(_Step((Addition(up, "edge"),), f"{who} at the top of the grid", f"extending it to {label(up)}"))
    down = max(round_strength(bottom / 10 ** options.start_step), options.limit_low)
    if bottom in a.contenders and a.verdicts.get(0.0) == WORSE and bottom > options.limit_low and down not in tried:
        who = (f"the best strength, {label(bottom)}, is" if bottom == a.best
               else f"{label(bottom)}, the lowest strength, is not worse than the best and")
        steps.append(_Step((Addition(down, "edge"),), f"{who} at the bottom of the grid, with λ = 0 worse", f"extending it to {label(down)}"))
    return steps


def _refinements(a: Assessment, options: AdaptiveOptions) -> list[_Step]:
    """The log midpoint of every unresolved gap."""
    tried = set(a.means)
    mids = [round_strength(10 ** ((math.log10(x) + math.log10(y)) / 2)) for x, y in a.unresolved]
    new = tuple(Addition(m, "refine") for m in sorted(set(mids)) if m not in tried)
    if not new:
        return []
    where = f"the region {label(a.region[0])} to {label(a.region[1])}" if a.region[0] != a.region[1] else f"the best, {label(a.best)},"
    finding = f"gaps around {where} are wider than {options.resolution:.2g} decade"
    return [_Step(new, finding, f"adding {', '.join(label(x.strength) for x in new)}")]


def _undecided(evidence: Evidence, a: Assessment, options: AdaptiveOptions) -> tuple[float, ...]:
    """The region's edge members (not λ = 0, which bounds itself) still undecided against the best, that more
    seeds may settle: they say where the region ends. A member inside it stays in the region either way."""
    edges = {s for s in a.region if s > 0}
    return tuple(s for s in a.contenders if s in edges and a.verdicts.get(s) == UNDECIDED and len(evidence[s]) < options.seed_limit)


def _seeds_words(seeds: Sequence[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}–{seeds[-1]}"


def _sentence(clauses: Sequence[str]) -> str:
    text = "; ".join(clauses)
    return text[:1].upper() + text[1:] + "."


def _exploration(evidence: Evidence, a: Assessment, rounds: Sequence[Round], options: AdaptiveOptions) -> Round | None:
    """The grid round if the grid needs one, else the seeds round if a contender needs one, else None."""
    number = len(rounds) + 1
    steps = _edges(a, options) + _refinements(a, options)
    if steps:
        additions = sorted({x.strength: x for step in steps for x in step.additions}.values())  # edges and midpoints never meet
        return Round(number, tuple(additions), exploration_seeds(options), _sentence([s.clause for s in steps]))
    undecided = _undecided(evidence, a, options)
    if not undecided:
        return None
    # every strength's exploration seeds run on from EXPLORE_SEED without a gap (each round adds the next ones), so
    # the fewest-seeded undecided members take the next seeds, and the best only where it lacks all of them
    have = min(len(evidence[s]) for s in undecided)
    group = [s for s in undecided if len(evidence[s]) == have]
    seeds = tuple(range(EXPLORE_SEED + have, EXPLORE_SEED + min(have + options.seed_step, options.seed_limit)))
    with_best = not any(seed in evidence[a.best] for seed in seeds)
    strengths = sorted(set(group) | ({a.best} if with_best else set()))
    note = (f"{', '.join(label(s) for s in group)} {'is' if len(group) == 1 else 'are'} undecided against the best, "
            f"{label(a.best)}: adding {_seeds_words(seeds)} to {'it' if len(group) == 1 else 'them'}"
            + (" and the best" if with_best else " (the best has them)"))
    return Round(number, tuple(Addition(s, "seeds") for s in strengths), seeds, _sentence([note]))


def chosen_strength(a: Assessment) -> float | None:
    """What the confirmation tests: the best if nonzero, else the nonzero contender with the lowest mean, else the
    lowest nonzero strength tried (λ = 0 against itself would confirm nothing)."""
    if a.best > 0:
        return a.best
    others = [s for s in a.contenders if s > 0]
    if others:
        return min(others, key=lambda s: (a.means[s], s))
    nonzero = sorted(s for s in a.means if s > 0)
    return nonzero[0] if nonzero else None


def open_questions(evidence: Evidence, a: Assessment, options: AdaptiveOptions) -> tuple[str, ...]:
    """What more exploration would still settle, one sentence each."""
    out = [_sentence([step.finding]) for step in _edges(a, options)]
    out += [f"The gap from {label(x)} to {label(y)} is wider than {options.resolution:.2g} decade." for x, y in a.unresolved]
    out += [f"{label(s)} is undecided against the best, {label(a.best)}, at {len(evidence[s])} seeds." for s in _undecided(evidence, a, options)]
    return tuple(out)


def _confirmation(a: Assessment, chosen: float, number: int, options: AdaptiveOptions, cut: str) -> Round:
    seeds = confirmation_seeds(options)
    if cut:
        lead = cut
    elif a.best == 0:
        lead = f"decided: no strength beats λ = 0, and {label(chosen)} is the closest"
    elif options.grid is not None:
        lead = f"the grid's best is {label(chosen)}"
    else:
        lead = f"decided: the best is {label(chosen)}, within the region {label(a.region[0])} to {label(a.region[1])}"
    note = f"{lead}; confirming {label(chosen)} against λ = 0 on {len(seeds)} fresh seeds ({seeds[0]}–{seeds[-1]})"
    return Round(number, (Addition(0.0, "confirm"), Addition(chosen, "confirm")), seeds, _sentence([note]))


def next_round(evidence: Evidence, rounds: Sequence[Round], options: AdaptiveOptions) -> Round | Finished:
    """The next round from the exploration evidence of all `rounds` so far, or Finished after the confirmation
    (or when not even the confirmation fits). An exploration round is planned only if the confirmation still fits
    after it, in the budget and in `max_rounds`."""
    if not rounds:
        return first_round(options)
    confirmed = next((r for r in rounds if r.confirming), None)
    if confirmed is not None:
        return Finished(next((s for s in confirmed.strengths if s > 0), None), ())
    a = assess(evidence, options)
    number = len(rounds) + 1
    spent = sum(r.arm_epochs(options.epochs) for r in rounds)
    left = math.inf if options.budget is None else options.budget - spent
    confirm = confirmation_cost(options)
    plan = _exploration(evidence, a, rounds, options) if options.grid is None else None  # a fixed grid: confirm it
    cut = ""
    if plan is not None:
        if plan.arm_epochs(options.epochs) + confirm > left:
            cut = f"the budget has {max(0, left):,} arm-epochs left, too few for round {number} and the confirmation"
        elif number + 1 > options.max_rounds:
            cut = f"round {number} is the last of {options.max_rounds}"
        else:
            return plan
    chosen = chosen_strength(a)
    if chosen is not None and confirm <= left and number <= options.max_rounds:
        return _confirmation(a, chosen, number, options, cut)
    if chosen is None:
        reason = "No nonzero strength was tried: there is nothing to confirm."
    elif confirm > left:
        reason = f"The budget has {max(0, left):,} arm-epochs left, too few for the confirmation ({confirm:,})."
    else:
        reason = f"All {options.max_rounds} rounds were used before the confirmation."
    return Finished(None, (reason,) + open_questions(evidence, a, options))


# ---------------------------------------------------------------- the confirmation

#: The confirmation's one comparison: two-sided at this level, so each one-sided claim is wrong ≤ 5 % of the time.
CONFIRM_LEVEL = 0.90


class Confirmation(NamedTuple):
    """The chosen strength − λ = 0 on the confirmation round's values, and the verdict both intervals give."""

    benefit: str  # BETTER, EQUIVALENT, WORSE or CANT_TELL
    crossed: Difference  # seeds × examples, the analysis's paired variance (Satterthwaite df)
    over_seeds: Difference  # the per-seed mean differences, t with seeds − 1 df


def confirm(chosen: np.ndarray, zero: np.ndarray, margin: float, level: float = CONFIRM_LEVEL) -> Confirmation:
    """chosen, zero: [seeds × examples] on the confirmation round's fresh seeds and test examples. One comparison,
    named before its values existed, so no correction for the rounds that chose it. A verdict needs both intervals
    to agree: the crossed one is valid when examples carry the noise, but with 3 seeds its Satterthwaite df runs
    high when the seed part dominates and is small by chance (5.75 % false "Use" in 400 null experiments where
    seeds dominate); the t over seeds is valid there (the seed part is what varies between seeds) and too narrow
    where the shared test examples carry the noise. Each is right where the other is not, so "better" needs both."""
    sim = simultaneous_differences(np.stack([zero, chosen]), 0, level)
    crossed = sim.differences[0] if sim is not None else paired_difference(chosen, zero)
    per_seed = (np.asarray(chosen, dtype=np.float64) - np.asarray(zero, dtype=np.float64)).mean(axis=1)
    over_seeds = _t_over_seeds(per_seed, level)
    both = (crossed, over_seeds)
    if not all(d.has_interval for d in both):
        return Confirmation(CANT_TELL, crossed, over_seeds)
    if all(d.high < 0 for d in both):
        benefit = BETTER
    elif all(-margin < d.low and d.high < margin for d in both):  # a measurable but negligible gap is no loss
        benefit = EQUIVALENT
    elif all(d.low > 0 for d in both):
        benefit = WORSE
    else:
        benefit = CANT_TELL
    return Confirmation(benefit, crossed, over_seeds)


def _t_over_seeds(per_seed: np.ndarray, level: float) -> Difference:
    n = len(per_seed)
    mean = float(per_seed.mean()) if n else math.nan
    if n < 2 or not np.isfinite(per_seed).all():
        return Difference(mean, math.nan, math.nan, n, "")
    sd = float(per_seed.std(ddof=1))
    if not sd > 0:
        return Difference(mean, math.nan, math.nan, n, "")
    half = t_quantile_at(1 - (1 - level) / 2, n - 1) * sd / math.sqrt(n)
    return Difference(mean, mean - half, mean + half, n, "t over seeds")
