"""The usual claims about a regularizer, each checked against this run's own numbers, family by family.

Every verdict is SUPPORTED, NOT_SUPPORTED or INCONCLUSIVE, decided by the rule in the claim's `rule`
field. Differences between strengths are judged by intervals that carry noise from both sources, seeds
and validation sampling (`noise`), so one seed can still decide a large effect; diagnoses (overfitting,
underfitting) must agree across seeds. Claims are made about one family at a time (`family_claims`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

from reglab.analysis.diagnose import IMPROVING, NO_DATA, OVERFITTING, TOO_FEW, UNDERFITTING, UNSETTLED, Criteria
from reglab.analysis.noise import seed_only_difference
from reglab.analysis.stats import Estimate, mean_ci
from reglab.formatting import lam_label

if TYPE_CHECKING:
    from reglab.analysis.results import FamilyAnalysis
    from reglab.record.reader import RunRecord

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
#: With one seed, a weight-norm step counts when it is larger than this share (the norm has no sampling
#: noise, and its spread across seeds is far smaller: under 2 % in every run measured here).
ONE_SEED_NORM_STEP = 0.10


class Claim(NamedTuple):
    key: str
    statement: str  # the claim as it is usually made
    verdict: str
    evidence: str  # the numbers behind the verdict, as a sentence
    rule: str  # how the verdict is decided


def strength_words(fa: Any) -> str:
    """"L2 strength", and the learning rate after it where the sweep has several: "L2 strength at lr = 0.001"
    (never "L2 at lr = 0.001 strength")."""
    base = fa.family.label
    return f"{base} strength{fa.label[len(base):]}" if fa.label.startswith(base) else f"{fa.label} strength"


def seeds_agree(e: Estimate, digits: int = 4) -> bool:
    """Two or more finite values whose 95 % interval is 0 at the printed digits: "± 0.0000" is no spread worth
    printing, so the value is said to agree over the seeds instead (one value: nothing to agree)."""
    return (e.n >= 2 and math.isfinite(e.mean) and math.isfinite(e.half_width)
            and round(e.half_width, digits) == 0)


def pm(e: Estimate, digits: int = 4) -> str:
    """'0.2840 ± 0.0123 (n = 3)', or the single value when there is no interval (with "(the n seeds agree)"
    when several values agree to the printed digits)."""
    if e.n == 0:
        return "—"
    if not e.has_interval or round(e.half_width, digits) == 0:
        return f"{e.mean:.{digits}f}" + (f" (the {e.n} seeds agree)" if seeds_agree(e, digits) else "")
    return f"{e.mean:.{digits}f} ± {e.half_width:.{digits}f} (n = {e.n})"


def diff_text(d, digits: int = 4) -> str:
    """A noise.Difference as '−0.0123 [−0.0201, −0.0045]'."""
    if not d.n_seeds and not d.has_interval:
        return "—"
    if not d.has_interval:
        return f"{d.mean:+.{digits}f}"
    return f"{d.mean:+.{digits}f} [{d.low:+.{digits}f}, {d.high:+.{digits}f}]"


def weights_shrink(fa: "FamilyAnalysis") -> Claim:
    label = fa.label
    statement = f"A stronger {label} gives smaller weights."
    rule = ("each step up the grid must lower the final ‖W‖: beyond seed noise (paired, 95 %), or with one seed by "
            f"more than {100 * ONE_SEED_NORM_STEP:.0f} % (‖W‖ has no sampling noise).")
    norms = fa.finals["kernel_norm"]
    lams = sorted(norms)
    if len(lams) < 2:
        return Claim("weights", statement, INCONCLUSIVE, "needs at least two strengths", rule)
    means = [mean_ci(norms[lam].values()).mean for lam in lams]
    evidence = "final ‖W‖ " + " → ".join(f"{m:.2f}" for m in means)
    seeds = max(len(v) for v in norms.values())
    if seeds < 2:
        ratios = [b / a if a else float("nan") for a, b in zip(means, means[1:])]
        evidence += " (steps ×" + ", ×".join(f"{r:.2f}" for r in ratios) + ")"
        if all(r < 1 - ONE_SEED_NORM_STEP for r in ratios):
            return Claim("weights", statement, SUPPORTED, evidence, rule)
        if any(r > 1 + ONE_SEED_NORM_STEP for r in ratios):
            return Claim("weights", statement, NOT_SUPPORTED, evidence, rule)
        return Claim("weights", statement, INCONCLUSIVE, evidence + " (some steps are smaller than the stated margin)", rule)
    steps = [(lo, hi, seed_only_difference(norms[hi], norms[lo])) for lo, hi in zip(lams, lams[1:])]
    evidence += "; steps " + ", ".join(pm(Estimate(d.mean, d.half_width, d.n_seeds), 2) for _, _, d in steps)
    if all(d.has_interval and d.high < 0 for _, _, d in steps):
        return Claim("weights", statement, SUPPORTED, evidence, rule)
    if any(d.has_interval and d.low > 0 for _, _, d in steps):
        return Claim("weights", statement, NOT_SUPPORTED, evidence, rule)
    return Claim("weights", statement, INCONCLUSIVE, evidence + " (some steps are within seed noise)", rule)


def _diagnoses(fa: "FamilyAnalysis", lam: float, trend: bool = False) -> list[str]:
    """The diagnoses of strength `lam`'s comparable arms (one per seed); `trend`: each arm's trend verdict
    instead, which an underfitting arm has too."""
    return [(t.trend or t.diagnosis) if trend else t.diagnosis
            for t in fa.trends if t.setting.strength == lam and t.arm in fa.comparable]


def _agreement(kind: str, diagnoses: list[str], undecided: frozenset[str] = frozenset({TOO_FEW})) -> str:
    """SUPPORTED when every seed is diagnosed `kind`; NOT_SUPPORTED when none is and none is `undecided` (a
    diagnosis under which `kind` could not show yet); otherwise INCONCLUSIVE."""
    if not diagnoses:
        return INCONCLUSIVE
    hits = sum(d == kind for d in diagnoses)
    if hits == len(diagnoses):
        return SUPPORTED
    if hits == 0 and not any(d in undecided for d in diagnoses):
        return NOT_SUPPORTED
    return INCONCLUSIVE


def _count(diagnoses: list[str], kind: str) -> str:
    """'2 of 3 seeds': how many of the diagnoses (one per seed) are `kind`."""
    n = len(diagnoses)
    return f"{sum(d == kind for d in diagnoses)} of {n} seed{'s' if n != 1 else ''}"


def small_strength_overfits(fa: "FamilyAnalysis", criteria: Criteria) -> Claim:
    statement = f"Too little {fa.label} still overfits, much like no regularization."
    rule = ("the smallest strength > 0 must be diagnosed overfitting (validation loss rising beyond noise over the "
            "late window) in every seed; not supported only when no seed overfits and none is still improving or "
            "can't tell (there overfitting could not show yet: inconclusive).")
    positive = sorted(lam for lam in fa.finals["loss_gap"] if lam > 0)
    if not positive:
        return Claim("small", statement, INCONCLUSIVE, "the run has no strength > 0", rule)
    lam = positive[0]
    diagnoses = _diagnoses(fa, lam, trend=True)
    evidence = f"at λ = {lam_label(lam)}, {_count(diagnoses, OVERFITTING)} overfit"
    if IMPROVING in diagnoses:
        evidence += f"; {_count(diagnoses, IMPROVING)} still improving when training stopped"
    if UNSETTLED in diagnoses:
        evidence += f"; {_count(diagnoses, UNSETTLED)} can't tell (no trend beyond noise, not shown settled)"
    if TOO_FEW in diagnoses:
        evidence += f"; {_count(diagnoses, TOO_FEW)} too few epochs to tell"
    gaps = fa.finals["loss_gap"][lam]
    evidence += f"; loss gap {pm(mean_ci(gaps.values()))}"
    if 0.0 in fa.finals["loss_gap"]:
        evidence += f" (λ = 0: {pm(mean_ci(fa.finals['loss_gap'][0.0].values()))})"
    return Claim("small", statement,
                 _agreement(OVERFITTING, diagnoses, frozenset({TOO_FEW, NO_DATA, IMPROVING, UNSETTLED})), evidence, rule)


def moderate_strength_best(fa: "FamilyAnalysis") -> Claim:
    statement = f"A moderate {fa.label} generalizes best."
    rule = ("the best strength must be inside the grid, beat both neighbours beyond noise, and be shown better than "
            "strength 0 on intervals that hold for every strength at once; it needs a strength-0 arm and at least two "
            "seeds (at an end of the grid and beating its neighbour: not supported).")
    rec = fa.recommended
    lams = sorted(fa.finals["val_data_loss"])
    if rec is None or len(lams) < 3:
        return Claim("moderate", statement, INCONCLUSIVE, "needs at least three strengths with completed arms", rule)
    parts = [f"best λ = {lam_label(rec.strength)}"]
    parts += [f"− λ = {lam_label(c.other.strength)}: {diff_text(c.difference)}" for c in rec.neighbours]
    if rec.baseline is not None and all(c.other != rec.baseline.other for c in rec.neighbours):
        parts.append(f"− λ = 0: {diff_text(rec.baseline.difference)}")
    evidence = "; ".join(parts)
    if 0.0 not in lams:
        return Claim("moderate", statement, INCONCLUSIVE, f"{evidence} (the grid has no strength-0 arm to compare with)", rule)
    if len(rec.seeds) < 2:
        return Claim("moderate", statement, INCONCLUSIVE, f"{evidence} (one seed: seed noise unmeasured)", rule)
    better = (lambda d: d.high < 0) if rec.metric == "val_data_loss" else (lambda d: d.low > 0)
    beats = [c.distinguishable is True and better(c.difference) for c in rec.neighbours]
    if not all(beats):
        near = ", ".join(lam_label(c.other.strength) for c, b in zip(rec.neighbours, beats) if not b)
        return Claim("moderate", statement, INCONCLUSIVE, f"{evidence} (not shown better than λ = {near})", rule)
    if rec.at_grid_edge:
        where = "no regularization" if rec.strength == 0 else (
            "the weakest strength tried" if rec.strength == lams[0] else "the strongest strength tried (the grid may stop too early)")
        return Claim("moderate", statement, NOT_SUPPORTED, f"{evidence}: the best is {where}", rule)
    if rec.beats_baseline is not True:
        return Claim("moderate", statement, INCONCLUSIVE, f"{evidence} (not shown better than no regularization)", rule)
    return Claim("moderate", statement, SUPPORTED, evidence, rule)


def large_strength_underfits(fa: "FamilyAnalysis") -> Claim:
    statement = f"Too much {fa.label} underfits."
    rule = ("the largest strength must be diagnosed underfitting — training accuracy below the recommended "
            "strength's beyond noise — in every seed (none: not supported; a higher training loss with accuracy "
            "within noise is only less confident, not underfitting).")
    lams = sorted(fa.finals["accuracy"])
    if len(lams) < 2:
        return Claim("large", statement, INCONCLUSIVE, "needs at least two strengths", rule)
    lam = lams[-1]
    diagnoses = _diagnoses(fa, lam)
    acc = fa.finals["accuracy"]
    evidence = (f"at λ = {lam_label(lam)}, {_count(diagnoses, UNDERFITTING)} underfit; train accuracy "
                f"{pm(mean_ci(acc[lam].values()))}")
    if fa.recommended is not None and fa.recommended.strength in acc:
        evidence += f" (λ = {lam_label(fa.recommended.strength)}: {pm(mean_ci(acc[fa.recommended.strength].values()))})"
    shy = sum(t.less_confident for t in fa.trends if t.setting.strength == lam and t.arm in fa.comparable)
    if shy:
        evidence += (f"; {shy} of {len(diagnoses)} only less confident (higher train loss, accuracy within noise: "
                     "not counted as underfitting)")
    return Claim("large", statement, _agreement(UNDERFITTING, diagnoses, frozenset({TOO_FEW, NO_DATA})), evidence, rule)


def family_claims(fa: "FamilyAnalysis", criteria: Criteria = Criteria()) -> list[Claim]:
    """The four usual claims about one family, in the order the original study makes them."""
    return [weights_shrink(fa), small_strength_overfits(fa, criteria), moderate_strength_best(fa),
            large_strength_underfits(fa)]


def one_family(run: "RunRecord", family: str | None) -> str:
    families = run.config.regularizers
    if family is None:
        if len(families) > 1:
            raise ValueError(f"this run compares {', '.join(families)}: name one (family=...), or use reglab.analyze(run)")
        return families[0]
    if family not in families:
        raise ValueError(f"{family!r} is not among this run's regularizers ({', '.join(families)})")
    return family
