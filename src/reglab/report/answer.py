"""The answer, first: a headline and a few lines that a busy person reads in a minute.

Built from the analysis alone, and shared by the report's opening box, the terminal summary, `reglab
report`, and `RunAnalysis.summary()` in a notebook, so all of them say the same thing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

from reglab.analysis.claims import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, diff_text, strength_words
from reglab.analysis.diagnose import GOOD, IMPROVING, NO_DATA, OVERFITTING, TOO_FEW, UNSETTLED
from reglab.analysis.results import BETTER, EQUIVALENT, IS_BASELINE, NO_BASELINE, ONE_SEED
from reglab.analysis.stats import mean_ci
from reglab.formatting import lam_label
from reglab.rendering import register

if TYPE_CHECKING:
    from reglab.analysis.results import FamilyAnalysis, Recommendation, RunAnalysis

MARKS = {SUPPORTED: "supported", NOT_SUPPORTED: "not supported", INCONCLUSIVE: "inconclusive"}


class AnswerText(NamedTuple):
    """`headline`: the recommendation in one sentence; `lines`: the evidence, one short line each;
    `conditions`: what holds for the whole run (one seed, fallback data), said once."""

    headline: str
    lines: tuple[str, ...]
    conditions: tuple[str, ...]

    def text(self) -> str:
        return "\n".join([self.headline] + [f"- {line}" for line in self.lines]
                         + [f"Note: {c}" for c in self.conditions])


def _setting(fa: FamilyAnalysis, lam: float) -> str:
    several = fa.label != fa.family.label  # a sweep of several learning rates: every setting names its rate
    if lam == 0:
        return f"no regularization at lr = {lam_label(fa.learning_rate)}" if several else "no regularization"
    return fa.setting(lam).label(with_learning_rate=several)


def _recommended(fa: FamilyAnalysis) -> Recommendation:
    """`fa.recommended` where the caller has made sure there is one."""
    assert fa.recommended is not None
    return fa.recommended


def _flat(fa: FamilyAnalysis) -> str:
    rec = _recommended(fa)
    lo, hi = rec.flat
    if lo == hi:
        return ""
    return (f"; every strength from {lam_label(lo.strength)} to {lam_label(hi.strength)} is shown within "
            f"{_margin(rec)} of it")


def _margin(rec) -> str:
    return f"{100 * rec.margin:g} points" if rec.metric == "val_accuracy" else f"{rec.margin:g}"


def headline(fa: FamilyAnalysis) -> str:
    """The recommendation, worded by what was shown: "Use" only when the benefit over no regularization is
    confirmed on intervals that hold for every strength at once; otherwise what is known, and no more."""
    rec = fa.recommended
    if rec is None:
        return "No arm completed every epoch, so no strength can be recommended from this run."
    best = _setting(fa, rec.strength)
    if rec.benefit == IS_BASELINE:
        return f"No {strength_words(fa)} tried measured better than no regularization (the best here is λ = 0{_flat(fa)})."
    if rec.benefit == ONE_SEED:
        return f"Best in this one seed: {best} (one seed cannot show a benefit: run --seeds 3 or more)."
    if rec.benefit == BETTER:
        return f"Use {best}{_flat(fa)}: it beats no regularization (confirmed over all {rec.n_compared} strengths at once)."
    if rec.benefit == EQUIVALENT:
        return (f"No measurable benefit over no regularization: the best, {best}, is shown within {_margin(rec)} of "
                "λ = 0.")
    if rec.benefit == NO_BASELINE:
        return f"Best here: {best}{_flat(fa)} (not confirmed: the grid has no λ = 0 arm to compare with)."
    return (f"Best here: {best}{_flat(fa)}; not confirmed: not shown better than no regularization, nor within "
            f"{_margin(rec)} of it (can't tell).")


def family_lines(fa: FamilyAnalysis, analysis: RunAnalysis | None = None) -> list[str]:
    rec = fa.recommended
    if rec is None:
        return []
    lines = []
    val = f"validation data loss {rec.estimate.mean:.4f} over {_seeds(rec.seeds)}"
    if rec.baseline is not None:
        d = rec.baseline.difference
        val += f"; {diff_text(d)} against no regularization" + (
            f" (simultaneous over {rec.n_compared} strengths, each bound 95 %)" if d.has_interval else " (no interval)")
    if _finite(rec.test_accuracy.mean):
        val += f"; test accuracy {100 * rec.test_accuracy.mean:.2f} % (did not choose)"
    lines.append(val)
    shrink = fa.finals["shrink"].get(rec.strength)
    if shrink and rec.strength > 0:
        lines.append(f"weights: {_setting(fa, rec.strength)} left the kernel at "
                     f"×{mean_ci(shrink.values()).mean:.2f} of its unregularized norm")
    if rec.diverged:
        lines.append("diverged (in some seed, so never recommended): " + ", ".join(_setting(fa, d.strength) for d in rec.diverged))
    lines.append(convergence(fa, analysis))
    for c in fa.claims:
        lines.append(f"{MARKS[c.verdict]}: {c.statement[:-1] if c.statement.endswith('.') else c.statement}")
    return lines


def _seeds(seeds: tuple[int, ...]) -> str:
    return f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})"


def convergence(fa: FamilyAnalysis, analysis: RunAnalysis | None = None) -> str:
    """Whether training converged: "converged" only when every comparable arm's validation data loss was shown
    to change by less than the stated margin over its late window (`diagnose`); otherwise what was shown and
    what was not, each count out of the comparable arms (an underfitting arm counts by its trend). Given the
    analysis, the counts cover the comparable arms of every series of the run (each learning rate and family),
    each arm once, so "of N arms" means the run's arms, not one learning rate's."""
    series = list(analysis.families.values()) if analysis is not None else [fa]
    by_arm: dict[Any, Any] = {}
    for f in series:
        ids = getattr(f.view, "arm_ids", ())
        for t in f.trends:
            if t.arm in f.comparable:
                by_arm.setdefault(ids[t.arm] if t.arm < len(ids) else (f.name, t.arm), t)
    trends = list(by_arm.values())
    n = len(trends)
    if not n:
        return "training: no comparable arm, so whether training converged cannot be told"
    verdicts = [t.trend or t.diagnosis for t in trends]
    count = {k: verdicts.count(k) for k in (GOOD, IMPROVING, OVERFITTING, UNSETTLED)}
    few = sum(v in (TOO_FEW, NO_DATA) for v in verdicts)
    margins = sorted({t.margin for t in trends if math.isfinite(t.margin)})
    margin = "±" + " / ±".join(f"{m:g}" for m in margins) if margins else "the margin"
    shown = f"settled (shown within {margin} an epoch)"
    if count[GOOD] == n:
        return f"training converged: {'the one arm was' if n == 1 else f'all {n} arms were'} {shown}"
    parts = []
    if count[IMPROVING]:
        parts.append(f"{count[IMPROVING]} of {n} arms still improving beyond noise")
    if count[OVERFITTING]:
        parts.append(f"{count[OVERFITTING]} of {n} arms overfitting (validation loss rising beyond noise)")
    if count[UNSETTLED]:
        parts.append(f"{count[UNSETTLED]} of {n} can't tell (no trend beyond noise, not shown within {margin} an epoch)")
    if few:
        parts.append(f"{few} of {n} arms with too few epochs to tell")
    if count[GOOD]:
        parts.append(f"{count[GOOD]} of {n} arms {shown}")
    if count[IMPROVING]:
        return "training had not converged: " + "; ".join(parts) + "; compared as unconverged models (try more epochs)"
    return "training not shown converged in every arm: " + "; ".join(parts)


def conditions(analysis: RunAnalysis) -> list[str]:
    run = analysis.run
    out = []
    if run.config.seeds == 1:
        out.append("one seed: intervals cover validation sampling only, not seed-to-seed variation (use --seeds 3)")
    if run.data.fallback_reason:
        out.append(f"trained on {run.data.name}, not {run.data.requested}: {run.data.fallback_reason}")
    method = analysis.main.noise_method
    if "no per-example" in method:
        out.append("this record has no per-example validation values: intervals cover seeds only")
    return out


def answer(analysis: RunAnalysis) -> AnswerText:
    fa = analysis.main
    lines = family_lines(fa, analysis)
    if analysis.run.config.several_learning_rates:
        lines.insert(0, _best_per_family(analysis))
        if analysis.couplings:
            lines.insert(1, "best strength against learning rate: " + "; ".join(
                f"{c.family.label} {c.verdict} (slope {c.slope:+.2f}"
                + (f", 95 % interval {c.interval[0]:+.2f} … {c.interval[1]:+.2f})" if c.interval else ", no interval)")
                for c in analysis.couplings.values()))
    elif len(analysis.families) > 1:
        ranked = [f for f in analysis.families.values() if f.recommended is not None]
        if ranked:
            best = min(ranked, key=lambda f: _recommended(f).estimate.mean)
            lines.insert(0, "families compared: " + "; ".join(
                f"{f.family.label} best at λ = {lam_label(_recommended(f).strength)} ({_recommended(f).estimate.mean:.4f})"
                for f in ranked) + f" — lowest: {best.family.label}")
    return AnswerText(headline(fa), tuple(x for x in lines if x), tuple(conditions(analysis)))


def _best_per_family(analysis: RunAnalysis) -> str:
    """Each family's best cell of its learning rate × strength grid, by mean validation data loss."""
    best: dict[str, FamilyAnalysis] = {}
    for f in analysis.families.values():
        if f.recommended is not None and (f.family.name not in best
                                          or f.recommended.estimate.mean < _recommended(best[f.family.name]).estimate.mean):
            best[f.family.name] = f
    if not best:
        return ""
    return f"best over {len(analysis.run.config.learning_rates)} learning rates: " + "; ".join(
        f"{_setting(f, _recommended(f).strength)} ({_recommended(f).estimate.mean:.4f})" for f in best.values())


def _finite(x: float) -> bool:
    return x is not None and math.isfinite(x)


def answer_text(analysis: RunAnalysis) -> str:
    """`RunAnalysis.summary()`: the answer in plain text."""
    return answer(analysis).text()


register("analysis_text", answer_text)
