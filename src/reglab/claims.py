"""The usual claims about L2, each checked against this run's own numbers.

Every verdict is one of SUPPORTED, NOT_SUPPORTED or INCONCLUSIVE, decided by a rule stated in the
claim's `rule` field. Differences between λ values are judged per seed (paired: arms of one seed share
initialization and batches), by whether the 95 % interval of the mean difference excludes zero;
diagnoses (overfitting, underfitting) must agree across seeds. With one seed there is no measure of
seed noise, so every claim is INCONCLUSIVE and the evidence says which way the single values point.
"""

from __future__ import annotations

from typing import NamedTuple

from .aggregate import PerSeed, choose_lambda, final_values
from .analysis import Criteria, Trend, validation_trends
from .formatting import lam_label
from .record import RunRecord
from .stats import Estimate, mean_ci, paired_difference

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"


class Claim(NamedTuple):
    key: str
    statement: str  # the claim as it is usually made
    verdict: str
    evidence: str  # the numbers behind the verdict, as a sentence
    rule: str  # how the verdict is decided


def pm(e: Estimate, digits: int = 4) -> str:
    """'0.2840 ± 0.0123 (n = 3)', or the single value when there is no interval."""
    if e.n == 0:
        return "—"
    if not e.has_interval:
        return f"{e.mean:.{digits}f} (one seed)"
    return f"{e.mean:.{digits}f} ± {e.half_width:.{digits}f} (n = {e.n})"


def _one_seed(finals: dict[str, PerSeed]) -> bool:
    return max((len(s) for s in finals["val_data_loss"].values()), default=0) < 2


_ONE_SEED = "one seed measures no seed noise: rerun with --seeds 3 (or more) to test this"


def weights_shrink(finals: dict[str, PerSeed]) -> Claim:
    statement = "A stronger λ gives smaller weights."
    rule = ("For each pair of neighbouring λ values, the per-seed difference in final kernel norm: supported when every "
            "difference's 95 % interval lies below 0, not supported when any lies above 0, else inconclusive.")
    norms = finals["kernel_norm"]
    lams = sorted(norms)
    if len(lams) < 2:
        return Claim("weights", statement, INCONCLUSIVE, "needs at least two λ values", rule)
    means = " → ".join(f"{mean_ci(norms[lam].values()).mean:.2f}" for lam in lams)
    steps = [(lo, hi, paired_difference(norms[hi], norms[lo])) for lo, hi in zip(lams, lams[1:])]
    evidence = f"mean final ‖W‖ by rising λ ({', '.join(lam_label(x) for x in lams)}): {means}"
    if _one_seed(finals):
        falls = all(d.mean < 0 for _, _, d in steps)
        return Claim("weights", statement, INCONCLUSIVE,
                     f"{evidence}; the single values {'fall at every step' if falls else 'do not fall at every step'}, but {_ONE_SEED}", rule)
    diffs = "; ".join(f"{lam_label(hi)} vs {lam_label(lo)}: {pm(d, 3)}" for lo, hi, d in steps)
    evidence += f". Paired differences: {diffs}"
    if all(d.has_interval and d.high < 0 for _, _, d in steps):
        return Claim("weights", statement, SUPPORTED, evidence, rule)
    if any(d.has_interval and d.low > 0 for _, _, d in steps):
        return Claim("weights", statement, NOT_SUPPORTED, evidence, rule)
    return Claim("weights", statement, INCONCLUSIVE, evidence + " (some steps are within seed noise)", rule)


def _diagnoses(trends: list[Trend], lam: float, seeds: set[int]) -> list[str]:
    return [t.diagnosis for t in trends if t.lam == lam and t.seed in seeds]


def _agreement(kind: str, diagnoses: list[str], one_seed: bool) -> str:
    if one_seed or not diagnoses:
        return INCONCLUSIVE
    hits = sum(d == kind for d in diagnoses)
    return SUPPORTED if hits == len(diagnoses) else NOT_SUPPORTED if hits == 0 else INCONCLUSIVE


def small_lambda_overfits(finals: dict[str, PerSeed], trends: list[Trend], criteria: Criteria) -> Claim:
    statement = "Too small a λ still overfits, much like no regularization."
    rule = (f"The smallest λ > 0 is diagnosed per seed by the stated criteria (overfitting: validation data loss ends "
            f"> {100 * criteria.overfit_rise:g} % above its minimum or > {criteria.overfit_gap:g} above the training data "
            "loss): supported when every seed overfits, not supported when none does, inconclusive when seeds disagree.")
    positive = sorted(lam for lam in finals["loss_gap"] if lam > 0)
    if not positive:
        return Claim("small", statement, INCONCLUSIVE, "the run has no λ > 0", rule)
    lam = positive[0]
    gaps = finals["loss_gap"][lam]
    diagnoses = _diagnoses(trends, lam, set(gaps))
    evidence = (f"at λ = {lam_label(lam)}, {diagnoses.count('overfitting')} of {len(diagnoses)} seeds overfit; "
                f"final loss gap (val − train data loss) {pm(mean_ci(gaps.values()))}")
    if 0.0 in finals["loss_gap"]:
        base = finals["loss_gap"][0.0]
        evidence += f", against {pm(mean_ci(base.values()))} with no regularization"
        d = paired_difference(gaps, base)
        if d.has_interval:
            evidence += f" (paired difference {pm(d)})"
    verdict = _agreement("overfitting", diagnoses, _one_seed(finals))
    if _one_seed(finals):
        evidence += f"; {_ONE_SEED}"
    return Claim("small", statement, verdict, evidence, rule)


def moderate_lambda_best(run: RunRecord, finals: dict[str, PerSeed]) -> Claim:
    statement = "A moderate λ generalizes best."
    rule = ("The λ with the lowest mean final validation data loss is compared per seed with its neighbours on the grid: "
            "supported when it is an inner grid value and both paired differences' 95 % intervals lie below 0; not "
            "supported when the best is at an end of the grid and beats its neighbour beyond noise; else inconclusive.")
    lams = sorted(finals["val_data_loss"])
    choice = choose_lambda(run, "val_data_loss", finals)
    if choice is None or len(lams) < 3:
        return Claim("moderate", statement, INCONCLUSIVE, "needs at least three λ values with completed arms", rule)
    parts = [f"λ = {lam_label(choice.lam)} has the lowest validation data loss, {pm(choice.estimate)}"]
    parts += [f"against λ = {lam_label(c.other)}: {pm(c.difference)}" for c in choice.neighbours]
    evidence = "; ".join(parts)
    if _one_seed(finals):
        return Claim("moderate", statement, INCONCLUSIVE, f"{evidence}; {_ONE_SEED}", rule)
    beats_all = all(c.distinguishable and c.difference.mean < 0 for c in choice.neighbours)
    if not beats_all:
        near = ", ".join(lam_label(c.other) for c in choice.neighbours if not c.distinguishable)
        return Claim("moderate", statement, INCONCLUSIVE, f"{evidence} (within seed noise of λ = {near})", rule)
    if choice.at_grid_edge:
        where = "no regularization" if choice.lam == lams[0] and choice.lam == 0 else (
            "the weakest λ tried" if choice.lam == lams[0] else "the strongest λ tried (the grid may stop too early)")
        return Claim("moderate", statement, NOT_SUPPORTED, f"{evidence}: the best is {where}", rule)
    return Claim("moderate", statement, SUPPORTED, evidence, rule)


def large_lambda_underfits(finals: dict[str, PerSeed], trends: list[Trend], criteria: Criteria) -> Claim:
    statement = "Too large a λ underfits."
    rule = (f"The largest λ is diagnosed per seed (underfitting: final training accuracy > {100 * criteria.underfit_points:g} "
            "points below the best arm of the same seed): supported when every seed underfits, not supported when none "
            "does, inconclusive when seeds disagree.")
    lams = sorted(finals["accuracy"])
    if len(lams) < 2:
        return Claim("large", statement, INCONCLUSIVE, "needs at least two λ values", rule)
    lam = lams[-1]
    acc = finals["accuracy"]
    best = {s: max(acc[x][s] for x in lams if s in acc[x]) for s in acc[lam]}
    deficit = mean_ci(100 * (best[s] - acc[lam][s]) for s in acc[lam])
    diagnoses = _diagnoses(trends, lam, set(acc[lam]))
    evidence = (f"at λ = {lam_label(lam)}, {diagnoses.count('underfitting')} of {len(diagnoses)} seeds underfit; final "
                f"training accuracy {pm(mean_ci(acc[lam].values()))}, {pm(deficit, 2)} points below the best arm's")
    if _one_seed(finals):
        evidence += f"; {_ONE_SEED}"
    return Claim("large", statement, _agreement("underfitting", diagnoses, _one_seed(finals)), evidence, rule)


def check_claims(run: RunRecord, criteria: Criteria = Criteria()) -> list[Claim]:
    """The four usual claims about L2, in the order the original study makes them."""
    finals = final_values(run)
    trends = validation_trends(run, criteria)
    return [
        weights_shrink(finals),
        small_lambda_overfits(finals, trends, criteria),
        moderate_lambda_best(run, finals),
        large_lambda_underfits(finals, trends, criteria),
    ]
