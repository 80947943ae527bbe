"""The one analysis of a run (`analyze.analyze(run) -> RunAnalysis`, `reglab.analyze` for short): statistics with noise from seeds and validation
examples (`noise`, `stats`), the recommended setting confirmed against no regularization, per-arm
diagnoses, claims, families compared, heat maps and coupling. Result types live in `results`; figures and
report read them and compute nothing of their own. (The submodule `analyze` is not shadowed by its function
here, so `reglab.analysis.analyze` stays a module, as monkeypatching and `import … as` need.)
"""

from reglab.analysis.aggregate import LambdaStats
from reglab.analysis.arms import ArmSummary, arm_summaries
from reglab.analysis.claims import Claim
from reglab.analysis.diagnose import Criteria, Trend
from reglab.analysis.families import FamilySummary, family_view
from reglab.analysis.noise import Difference
from reglab.analysis.results import Comparison, FamilyAnalysis, Recommendation, RunAnalysis, WeightStats
from reglab.analysis.views import check_claims, compare_families, load_model, recommended_setting

__all__ = [
    "ArmSummary", "Claim", "Comparison", "Criteria", "Difference", "FamilyAnalysis", "FamilySummary",
    "LambdaStats", "Recommendation", "RunAnalysis", "Trend", "WeightStats",
    "arm_summaries", "check_claims", "compare_families", "family_view", "load_model", "recommended_setting",
]
