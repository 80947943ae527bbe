"""One analysis per run, built once from the record: `analyze(run) -> RunAnalysis`.

Everything figures and reports say is computed here, once, and read by them: per-setting statistics,
paired comparisons with noise from seeds and validation sampling (`noise`), the recommended setting and
the flat region around it, per-arm diagnoses (`diagnose`), weight statistics that set dead inputs
apart, the claims, and the epoch bands the figures draw. Results are keyed by `Setting` (a family at a
strength) and computed family by family: strengths are compared within a family, families with each
other only in `RunAnalysis.families_compared`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from reglab.analysis import noise
from reglab.analysis.aggregate import (
    PerSeed,
    comparable_arms,
    epoch_bands,
    excluded_arms,
    final_values,
    gap_against_norm,
    lambda_stats,
    weight_histograms,
)
from reglab.analysis.arms import NEAR_ZERO, arm_summaries
from reglab.analysis.claims import family_claims
from reglab.analysis.coupling import couplings
from reglab.analysis.diagnose import ArmValidation, Criteria, Reference, diagnose
from reglab.analysis.families import FamilyRun, compare_analyses, family_view, primary_family
from reglab.analysis.heatmap import heat_maps
from reglab.analysis.noise import LOWER_IS_BETTER
from reglab.analysis.per_example import PerExampleValues
from reglab.analysis.results import (
    BETTER,
    CANT_TELL,
    EQUIVALENT,
    IS_BASELINE,
    NAN,
    NO_BASELINE,
    ONE_SEED,
    WORSE,
    Comparison,
    FamilyAnalysis,
    Recommendation,
    RunAnalysis,
    WeightStats,
)
from reglab.analysis.stats import mean_ci
from reglab.engines.base import clipped_batch, steps_per_epoch
from reglab.record.arrays import ValidationValues
from reglab.record.reader import RunRecord
from reglab.record.schema import EpochRecord
from reglab.settings import Family, Setting

#: Per-epoch quantities the figures draw as bands (mean over seeds, 95 % interval).
BAND_COLUMNS = ("loss", "val_loss", "data_loss", "val_data_loss", "accuracy", "val_accuracy", "kernel_norm")


#: Simultaneous intervals against the baseline: two-sided at this level, so each bound holds at 95 %.
SIMULTANEOUS_LEVEL = 0.90


# ---------------------------------------------------------------- per-example values, by setting and seed

def _per_example(values: ValidationValues | None, view: FamilyRun, comparable: list[int]) -> PerExampleValues:
    loss: dict[float, dict[int, np.ndarray]] = {}
    correct: dict[float, dict[int, np.ndarray]] = {}
    complete = values is not None
    for i in comparable:
        arm = view.arm_records[i]
        lam, seed, full = arm.strength, arm.seed, view.arm_ids[i]
        if values is None or not values.has_values[full]:
            complete = False
            continue
        loss.setdefault(lam, {})[seed] = np.asarray(values.loss[full], dtype=np.float64)
        correct.setdefault(lam, {})[seed] = np.asarray(values.correct[full], dtype=np.float64)
    return PerExampleValues(loss, correct, complete and bool(comparable))


def _arm_validation(values: ValidationValues | None, full_index: int) -> ArmValidation:
    if values is None or not values.has_values[full_index]:
        return ArmValidation()
    return ArmValidation(final=np.asarray(values.loss[full_index], dtype=np.float64),
                         by_epoch=lambda epoch: values.at(full_index, epoch))


def _difference(values: PerExampleValues, finals: dict[str, PerSeed], metric: str, a: float, b: float,
                seeds: tuple[int, ...] | None = None) -> noise.Difference:
    """a − b for `metric`, paired on seeds (and on examples, where recorded); only `seeds` when given."""
    table = values.loss if metric == "val_data_loss" else values.correct
    if metric in LOWER_IS_BETTER and values.complete and a in table and b in table:
        common = sorted(set(table[a]) & set(table[b]) & (set(seeds) if seeds is not None else set(table[a])))
        if common:
            return noise.paired_difference(np.stack([table[a][s] for s in common]), np.stack([table[b][s] for s in common]))
    pa, pb = finals[metric].get(a, {}), finals[metric].get(b, {})
    if seeds is not None:
        pa, pb = {s: v for s, v in pa.items() if s in seeds}, {s: v for s, v in pb.items() if s in seeds}
    return noise.seed_only_difference(pa, pb)


# ---------------------------------------------------------------- the recommendation

def _diverged_strengths(view: FamilyRun, rows: dict[int, list[EpochRecord]]) -> set[float]:
    """Strengths with an arm that diverged (or failed) in some seed: a result to name, never a recommendation."""
    out = set()
    for a in view.arm_records:
        bad_rows = any(not np.isfinite(r.loss) for r in rows.get(a.index, []))
        if a.status in ("diverged", "failed") or bad_rows:
            out.add(a.strength)
    return out


def _recommend(family: Family, learning_rate: float, finals: dict[str, PerSeed], values: PerExampleValues, metric: str,
               diverged: set[float], margin: float) -> Recommendation | None:
    per = finals[metric]
    setting = lambda lam: Setting(family.name, lam, learning_rate)  # noqa: E731
    lams = sorted(lam for lam, by_seed in per.items() if by_seed and lam not in diverged)
    if not lams:
        return None
    seeds = tuple(sorted(set.intersection(*(set(per[lam]) for lam in lams))))
    if not seeds:  # an interrupted run: settings share no seed, so nothing is paired
        seeds = tuple(sorted(per[lams[0]]))
        lams = [lam for lam in lams if set(seeds) <= set(per[lam])]
    sign = 1.0 if LOWER_IS_BETTER[metric] else -1.0
    means = {lam: mean_ci(per[lam][s] for s in seeds) for lam in lams}
    best = min(lams, key=lambda lam: (sign * means[lam].mean, lam))
    k = lams.index(best)
    paired = lambda a, b: _difference(values, finals, metric, a, b, seeds)  # noqa: E731
    neighbours = tuple(Comparison(setting(lams[j]), paired(best, lams[j])) for j in (k - 1, k + 1) if 0 <= j < len(lams))
    baseline, benefit, n_compared = _against_baseline(setting(0.0), lams, best, values, finals, metric, seeds, margin)
    to_best = {lam: paired(lam, best) for lam in lams if lam != best}  # each strength − the best, for both regions
    flat = _region(lams, k, lambda lam: _within_margin(to_best[lam], metric, margin)) if len(seeds) >= 2 else (k, k)
    indistinct = _region(lams, k, lambda lam: _within_noise(to_best[lam]))
    interval = _best_interval(lams, values, metric, per)
    return Recommendation(
        metric, setting(best), means[best], neighbours, baseline,
        (setting(lams[interval[0]]), setting(lams[interval[1]])) if interval else None,
        (setting(lams[flat[0]]), setting(lams[flat[1]])),
        mean_ci(finals["test_accuracy"].get(best, {}).values()), mean_ci(finals["test_data_loss"].get(best, {}).values()),
        benefit, margin, seeds, tuple(setting(lam) for lam in sorted(diverged)),
        (setting(lams[indistinct[0]]), setting(lams[indistinct[1]])), n_compared,
    )


def _region(lams: list[float], k: int, inside) -> tuple[int, int]:
    """The contiguous run of grid indices around `k` whose strengths satisfy `inside`."""
    ends = []
    for step in (-1, 1):
        j = k
        while 0 <= j + step < len(lams) and inside(lams[j + step]):
            j += step
        ends.append(j)
    return ends[0], ends[1]


def _within_noise(d: noise.Difference) -> bool:
    """Can't be told apart: an interval that holds 0 (without an interval, nothing is within noise)."""
    return d.has_interval and not d.excludes_zero()


def _within_margin(d: noise.Difference, metric: str, margin: float) -> bool:
    return noise.within_margin(d, LOWER_IS_BETTER[metric], margin)


def _against_baseline(base: Setting, lams: list[float], best: float, values: PerExampleValues, finals: dict[str, PerSeed], metric: str,
                      seeds: tuple[int, ...], margin: float) -> tuple[Comparison | None, str, int]:
    """The best − strength 0 on intervals that hold for every strength at once, and the verdict they give."""
    if best == 0.0:
        return None, IS_BASELINE, 0
    if 0.0 not in lams:
        return None, NO_BASELINE, 0
    others = [lam for lam in lams if lam != 0.0]
    if len(seeds) < 2:
        d1 = _difference(values, finals, metric, best, 0.0, seeds)
        return Comparison(base, noise.Difference(d1.mean, NAN, NAN, d1.n_seeds, "")), ONE_SEED, len(others)
    d = _simultaneous(others, values, finals, metric, seeds).get(best)
    if d is None or not d.has_interval:
        return (Comparison(base, d) if d is not None else None), CANT_TELL, len(others)
    good = (d.high < 0) if LOWER_IS_BETTER[metric] else (d.low > 0)
    bad = (d.low > 0) if LOWER_IS_BETTER[metric] else (d.high < 0)
    verdict = BETTER if good else WORSE if bad else EQUIVALENT if -margin < d.low and d.high < margin else CANT_TELL
    return Comparison(base, d), verdict, len(others)


def _simultaneous(others: list[float], values: PerExampleValues, finals: dict[str, PerSeed], metric: str,
                  seeds: tuple[int, ...]) -> dict[float, noise.Difference]:
    """strength → its − strength 0 on simultaneous intervals: per-example values where recorded, else each
    arm's final value (the paired t over seeds, at the same level; a difference without spread is left out)."""
    table = values.loss if metric == "val_data_loss" else values.correct
    have = values.complete and all(lam in table and all(s in table[lam] for s in seeds) for lam in [0.0, *others])
    if have:
        x = np.stack([np.stack([table[lam][s] for s in seeds]) for lam in [0.0, *others]])
    else:
        x = np.array([[[finals[metric][lam][s]] for s in seeds] for lam in [0.0, *others]])
    sim = noise.simultaneous_differences(x, 0, SIMULTANEOUS_LEVEL)
    if sim is None:
        return {}
    return {lam: d for lam, d in zip(others, sim.differences) if have or d.has_interval}


def _best_interval(lams: list[float], values: PerExampleValues, metric: str, per: PerSeed) -> tuple[int, int] | None:
    """Grid indices of the 2.5 % and 97.5 % quantiles of the best strength under resampling: seeds and
    examples where per-example values exist, seeds alone otherwise (None with one seed and no examples)."""
    table = values.loss if metric == "val_data_loss" else values.correct
    seeds = sorted(set.intersection(*(set(per[lam]) for lam in lams)))
    if not seeds:
        return None
    if values.complete and all(lam in table and all(s in table[lam] for s in seeds) for lam in lams):
        x = np.stack([np.stack([table[lam][s] for s in seeds]) for lam in lams])  # [settings, seeds, examples]
        return noise.best_setting_interval(x, LOWER_IS_BETTER[metric], noise.Design(len(seeds), x.shape[2]))
    if len(seeds) < 2:
        return None
    sign = 1.0 if LOWER_IS_BETTER[metric] else -1.0
    t = np.array([[per[lam][s] for s in seeds] for lam in lams])
    rng = np.random.default_rng(noise.BOOT_SEED)
    picks = rng.integers(0, len(seeds), size=(noise.N_BOOT, len(seeds)))
    best = np.argmin(sign * t[:, picks].mean(axis=2), axis=0)
    lo, hi = np.quantile(best, [0.025, 0.975], method="inverted_cdf")
    return int(lo), int(hi)


# ---------------------------------------------------------------- weights

def _weight_stats(view: FamilyRun, kernels: dict[int, Any], dead: tuple[int, ...], n_features: int) -> tuple[WeightStats, ...]:
    norms = {i: float(np.linalg.norm(np.asarray(k, dtype=np.float64))) for i, k in kernels.items()}
    baseline = {a.seed: norms.get(a.index) for a in view.arm_records if a.strength == 0.0}
    out = []
    for a in view.arm_records:
        i = a.index
        if i not in kernels:
            continue
        k = np.abs(np.asarray(kernels[i], dtype=np.float64))
        rows_are_inputs = k.ndim == 2 and k.shape[0] == n_features and dead
        mask = np.zeros(k.shape[0] if k.ndim else 0, dtype=bool)
        if rows_are_inputs:
            mask[list(dead)] = True
        live = k[~mask] if rows_are_inputs else k.ravel()
        dead_w = k[mask] if rows_are_inputs else np.empty(0)
        base = baseline.get(a.seed)
        out.append(WeightStats(
            i, Setting(view.family, a.strength, view.learning_rate), a.seed, norms[i], norms[i] / base if base else NAN,
            float(np.mean(live < NEAR_ZERO)) if live.size else NAN, float(np.mean(live == 0.0)) if live.size else NAN,
            int(mask.sum()) if rows_are_inputs else 0, float(np.mean(dead_w < NEAR_ZERO)) if dead_w.size else NAN,
        ))
    return tuple(out)


# ---------------------------------------------------------------- one family

def analyze_family(run: RunRecord, family: str, kernels: dict[int, Any], validation: Any = None,
                   criteria: Criteria = Criteria(), learning_rate: float | None = None) -> FamilyAnalysis:
    """One series' analysis: `family`'s strengths at `learning_rate` (the sweep's only one when left out);
    `kernels` and `validation` are the whole run's (read once by `analyze`)."""

    view = family_view(run, family, learning_rate) if not isinstance(run, FamilyRun) else run
    fam = Family.of(family)
    comparable = comparable_arms(view)
    finals = final_values(view)
    values = _per_example(validation, view, comparable)
    stats = tuple(lambda_stats(view, finals))
    rows: dict[int, list[EpochRecord]] = {}
    for r in view.epochs:
        rows.setdefault(r.arm, []).append(r)
    diverged = _diverged_strengths(view, rows)
    recommended = _recommend(fam, view.learning_rate, finals, values, "val_data_loss", diverged, criteria.loss_margin)
    by_accuracy = _recommend(fam, view.learning_rate, finals, values, "val_accuracy", diverged, criteria.accuracy_margin)
    against = {m: {lam: _difference(values, finals, m, lam, recommended.strength) for lam in sorted(finals[m])}
               for m in LOWER_IS_BETTER} if recommended is not None else {}
    references: dict[int, Reference] = {}
    if recommended is not None:
        for a in view.arm_records:
            i = a.index
            if a.strength == recommended.strength and i in comparable:
                last = sorted(rows[i], key=lambda r: r.epoch)[-1]
                references[a.seed] = Reference(recommended.setting, last.accuracy, last.data_loss)
    trends = tuple(
        diagnose(a.index, Setting(fam.name, a.strength, view.learning_rate), a.seed,
                 sorted(rows.get(a.index, []), key=lambda r: r.epoch), _arm_validation(validation, view.arm_ids[a.index]),
                 references.get(a.seed), run.data.n_train, criteria)
        for a in view.arm_records)
    own = view.own(kernels)
    dead = tuple(getattr(run.data, "constant_inputs", ()) or ())
    weights = _weight_stats(view, own, dead, int(np.prod(run.data.input_shape)))
    fa = FamilyAnalysis(
        fam, view, tuple(Setting(fam.name, lam, view.learning_rate) for lam in view.config.lambdas), tuple(arm_summaries(view)),
        tuple(comparable), tuple(excluded_arms(view)), finals, stats,
        (noise.METHOD if view.config.seeds > 1 else noise.SAMPLING_ONLY) if values.complete else noise.T_OVER_SEEDS,
        recommended, by_accuracy, against, trends, weights,
        {c: tuple(epoch_bands(view, c)) for c in BAND_COLUMNS}, gap_against_norm(view, finals),
        tuple(weight_histograms(view, own)), values,
    )
    return dataclasses.replace(fa, claims=tuple(family_claims(fa, criteria)), equivalent=_equivalent(recommended, against, criteria))


def _equivalent(rec: Recommendation | None, against: dict[str, dict[float, noise.Difference]],
                criteria: Criteria) -> dict[str, tuple[Setting, Setting]]:
    """Per metric, the strengths shown within its margin of the recommended one: the loss's is `rec.flat`
    itself, the accuracy's follows the same rule on accuracy, so each figure panel shades its own metric's."""
    if rec is None:
        return {}
    out = {"val_data_loss": rec.flat}
    lams = sorted(against.get("val_accuracy", {}))
    if rec.strength in lams:
        margin = criteria.accuracy_margin
        inside = (lambda lam: _within_margin(against["val_accuracy"][lam], "val_accuracy", margin)) if len(rec.seeds) >= 2 else (lambda lam: False)
        lo, hi = _region(lams, lams.index(rec.strength), inside)
        at = lambda lam: Setting(rec.setting.family, lam, rec.setting.learning_rate)  # noqa: E731
        out["val_accuracy"] = (at(lams[lo]), at(lams[hi]))
    return out


# ---------------------------------------------------------------- the run

def primary_series(run: RunRecord, series: dict[str, FamilyAnalysis]) -> str:
    """The series the report's single-family sections describe: the primary family's, at the learning rate
    whose recommended strength has the lowest validation data loss (the first rate when none has one)."""
    own = [fa for fa in series.values() if fa.family.name == primary_family(run)]
    scored = [(fa, fa.recommended) for fa in own if fa.recommended is not None]  # each with its (checked) recommendation
    return min(scored, key=lambda p: p[1].estimate.mean)[0].name if scored else own[0].name


#: The last analysis of a record object read from disk: `reglab run` draws the report and prints the summary
#: from one analysis. Keyed by the very RunRecord object (held here, so its id cannot be reused) and criteria.
def analyze(run: RunRecord, criteria: Criteria = Criteria(), kernels: dict[int, Any] | None = None) -> RunAnalysis:
    """The whole analysis of a run (kernels.npz and validation.npz read once). Callers that need it twice keep
    the one they got (see `run.runner.report_run`): nothing is cached here."""
    kernels = run.kernels() if kernels is None else kernels
    validation = run.validation()  # record.ValidationValues, or None for a record without them
    families = {}
    for f in run.config.regularizers:
        for lr in run.config.learning_rates:
            fa = analyze_family(run, f, kernels, validation, criteria, lr)
            families[fa.name] = fa
    compared = tuple(compare_analyses(list(families.values()))) if len(families) > 1 else ()
    steps = steps_per_epoch(run.data.n_train, clipped_batch(run.config.batch_size, run.data.n_train))
    maps = heat_maps(families, {m: criteria.margin(m) for m in LOWER_IS_BETTER})
    analysis = RunAnalysis(run, criteria, families, primary_series(run, families), compared, maps,
                           couplings(families, steps) if run.config.several_learning_rates else {})
    return analysis

