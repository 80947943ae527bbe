"""The one analysis of a run (`analyze.analyze(run) -> RunAnalysis`, `reglab.analyze` for short): statistics with noise from seeds and validation
examples (`noise`, `stats`), the recommended setting confirmed against no regularization, per-arm
diagnoses, claims, families compared, heat maps and coupling. Result types live in `results`; figures and
report read them and compute nothing of their own. (The submodule `analyze` is not shadowed by its function
here, so `reglab.analysis.analyze` stays a module, as monkeypatching and `import … as` need.)
"""

from reglab.analysis.adaptive import (
    CONFIRM_SEED,
    EXPLORE_SEED,
    WHY,
    AdaptiveOptions,
    Addition,
    Assessment,
    Evidence,
    Finished,
    Round,
    assess,
    first_round,
    next_round,
)
from reglab.analysis.aggregate import LambdaStats
from reglab.analysis.arms import ArmSummary, arm_summaries
from reglab.analysis.claims import Claim
from reglab.analysis.diagnose import Criteria, Trend
from reglab.analysis.families import FamilySummary, family_view
from reglab.analysis.noise import Difference
from reglab.analysis.results import Comparison, FamilyAnalysis, Recommendation, RunAnalysis, WeightStats
from reglab.analysis.views import check_claims, compare_families, load_model, recommended_setting

__all__ = [
    "AdaptiveOptions", "Addition", "ArmSummary", "Assessment", "CONFIRM_SEED", "Claim", "Comparison", "Criteria",
    "Difference", "EXPLORE_SEED", "Evidence", "FamilyAnalysis", "FamilySummary", "Finished", "LambdaStats",
    "Recommendation", "Round", "RunAnalysis", "Trend", "WHY", "WeightStats",
    "arm_summaries", "assess", "check_claims", "compare_families", "family_view", "first_round", "load_model",
    "next_round", "recommended_setting",
]
