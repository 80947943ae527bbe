"""What an analysis finds, as values: a comparison, the recommended setting and its flat region, weight
statistics, one family's analysis and the run's. Computed by `analyze`, read by figures and report; they
know nothing of how they are drawn or written (`summary()` and `_repr_html_` ask `rendering` for that)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from reglab.analysis import noise
from reglab.analysis.aggregate import Band, GapNorm, Histogram, LambdaStats, PerSeed
from reglab.analysis.arms import ArmSummary
from reglab.analysis.claims import Claim
from reglab.analysis.coupling import Coupling
from reglab.analysis.diagnose import Criteria, Trend
from reglab.analysis.families import FamilyRun, FamilySummary, series_key, sweep_config
from reglab.analysis.heatmap import HeatMap
from reglab.analysis.per_example import PerExampleValues
from reglab.analysis.stats import Estimate
from reglab.formatting import lam_label
from reglab.record.reader import RunRecord
from reglab.rendering import render
from reglab.settings import Family, Setting

NAN = float("nan")
#: How the recommended strength stands against no regularization (`Recommendation.benefit`).
BETTER, EQUIVALENT, WORSE, CANT_TELL = "better", "equivalent", "worse", "can't tell"
ONE_SEED, NO_BASELINE, IS_BASELINE = "one seed", "no baseline", "is the baseline"


class Comparison(NamedTuple):
    """The recommended setting against another of its family: recommended − other, with noise from both sources."""

    other: Setting
    difference: noise.Difference

    @property
    def distinguishable(self) -> bool | None:
        return self.difference.excludes_zero() if self.difference.has_interval else None


class Recommendation(NamedTuple):
    """The best setting of a family by one validation metric, how sure that is, and its test numbers.

    Chosen, then confirmed: the best is the lowest (highest) seed-mean on the validation values; its benefit
    over strength 0 is read from simultaneous intervals over every strength against strength 0 (Šidák), so
    choosing the best of K does not inflate the claim. `benefit` is the three-way verdict at `margin`."""

    metric: str
    setting: Setting
    estimate: Estimate  # mean over seeds (t-interval over seeds)
    neighbours: tuple[Comparison, ...]  # against the neighbouring strengths on the grid
    baseline: Comparison | None  # against strength 0 (simultaneous interval), when the grid has it and it is not the best
    interval: tuple[Setting, Setting] | None  # where the best falls when seeds and examples are resampled
    flat: tuple[Setting, Setting]  # contiguous strengths shown within `margin` of the best (equivalent)
    test_accuracy: Estimate
    test_data_loss: Estimate
    benefit: str = CANT_TELL  # BETTER, EQUIVALENT, WORSE, CANT_TELL, ONE_SEED, NO_BASELINE or IS_BASELINE
    margin: float = NAN
    seeds: tuple[int, ...] = ()  # the seeds every comparison used
    diverged: tuple[Setting, ...] = ()  # settings that diverged (or failed) in some seed: never recommended
    indistinct: tuple[Setting, Setting] | None = None  # contiguous strengths within noise of the best (can't tell apart)
    n_compared: int = 0  # strengths compared with strength 0 at once

    @property
    def strength(self) -> float:
        return self.setting.strength

    @property
    def at_grid_edge(self) -> bool:
        return len(self.neighbours) < 2

    @property
    def beats_baseline(self) -> bool | None:
        """True: shown better than no regularization (simultaneous interval); False: shown equivalent or
        worse, or it is no regularization; None: can't tell (one seed, no baseline, no interval)."""
        if self.setting.is_baseline:
            return False
        return {BETTER: True, EQUIVALENT: False, WORSE: False}.get(self.benefit)


class WeightStats(NamedTuple):
    """One arm's final regularized kernel: norm, shrink against the same seed's strength-0 arm, and how many
    weights sit near zero, over the inputs that vary in the training data (`dead` rows set apart)."""

    arm: int
    setting: Setting
    seed: int
    norm: float
    shrink: float
    near_zero: float  # share of live weights with |w| < NEAR_ZERO
    exactly_zero: float  # share of live weights exactly 0
    dead_rows: int  # input features that never vary in the training data (their weights see no data gradient)
    dead_near_zero: float  # share of the dead rows' weights with |w| < NEAR_ZERO


@dataclass(frozen=True)
class FamilyAnalysis:
    """Everything measured about one family's strengths."""

    family: Family
    view: FamilyRun
    settings: tuple[Setting, ...]
    arms: tuple[ArmSummary, ...]
    comparable: tuple[int, ...]  # the view's arm indices that enter comparisons
    excluded: tuple[tuple[int, float, int, str], ...]
    finals: dict[str, PerSeed]
    stats: tuple[LambdaStats, ...]
    noise_method: str
    recommended: Recommendation | None  # by validation data loss
    by_accuracy: Recommendation | None
    against_recommended: dict[str, dict[float, noise.Difference]]  # metric → strength → it − the recommended (by loss)
    trends: tuple[Trend, ...]
    weights: tuple[WeightStats, ...]
    bands: dict[str, tuple[Band, ...]]
    gap_norm: GapNorm
    histograms: tuple[Histogram, ...]
    per_example: PerExampleValues | None = None
    claims: tuple[Claim, ...] = ()
    #: metric → the contiguous strengths shown within that metric's margin of the recommended one (by loss)
    equivalent: dict[str, tuple[Setting, Setting]] = field(default_factory=dict)

    @property
    def learning_rate(self) -> float:
        return self.view.learning_rate

    @property
    def name(self) -> str:
        """The key of this series in `RunAnalysis.families`."""
        return series_key(self.family.name, self.learning_rate, sweep_config(self.view))

    @property
    def label(self) -> str:
        """The family's label, and the learning rate where the sweep has several: "L2", "L2 at lr = 1e-3"."""
        if sweep_config(self.view).several_learning_rates:
            return f"{self.family.label} at lr = {lam_label(self.learning_rate)}"
        return self.family.label

    def setting(self, lam: float) -> Setting:
        return Setting(self.family.name, lam, self.learning_rate)

    def converged(self) -> bool | None:
        """Whether every comparable arm converged (None when some cannot tell)."""
        states = [t.converged for t in self.trends if t.arm in self.comparable]
        if not states:
            return None
        if any(s is False for s in states):
            return False
        return True if all(s is True for s in states) else None


@dataclass(frozen=True)
class RunAnalysis:
    """A run's analysis: per family, and the families against each other."""

    run: RunRecord
    criteria: Criteria
    families: dict[str, FamilyAnalysis]
    primary: str
    families_compared: tuple[FamilySummary, ...] = field(default=())
    heat_maps: dict[str, HeatMap] = field(default_factory=dict)  # family → its heat map (several learning rates)
    couplings: dict[str, Coupling] = field(default_factory=dict)  # family → its coupling verdict (≥ 3 rates × 3 strengths)

    @property
    def main(self) -> FamilyAnalysis:
        """The family the report's single-family sections describe: L2 when swept, else the first."""
        return self.families[self.primary]

    def summary(self) -> str:
        """The answer in plain text: what the report opens with, `reglab report` prints and a notebook shows."""
        return render("analysis_text", self)

    @property
    def recommended_setting(self) -> Setting | None:
        """The setting the answer recommends (the main series', by validation data loss); None when no arm
        completed every epoch."""
        rec = self.main.recommended
        return None if rec is None else rec.setting

    def __repr__(self) -> str:
        """Short: a notebook stores the plain repr beside the HTML, and the dataclass's would be ~90 KB."""
        families = f"{len(self.families)} famil{'y' if len(self.families) == 1 else 'ies'}"
        return f"<RunAnalysis of {self.run.run_dir}: {families}; .summary() for the answer>"

    def _repr_html_(self) -> str:
        """In Jupyter: the answer block and the key figure (see `report.notebook`)."""
        return render("analysis_html", self)
