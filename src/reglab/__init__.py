"""reglab: regularization experiments on Keras models, measured and explained.

Notebook use::

    import reglab
    run = reglab.run_sweep(reglab.SweepConfig(lambdas=(0, 1e-3), epochs=2, dataset="mnist-5k"), out="runs/try")
    analysis = reglab.analyze(run)   # everything the report says, computed once
    print(analysis.summary())        # the answer
    same = reglab.load_run("runs/try")
    model = reglab.load_model(run)   # the recommended setting's model, compiled, with its final weights

    result = reglab.sweep(build_model, x, y, lambdas=[0, 1e-3], epochs=5)  # your own def and arrays, in fit's words
    splits = reglab.run_splits(result.run)  # the exact arrays it trained, validated and tested on
"""

from reglab._version import __version__  # noqa: F401  (reglab.__version__)
from reglab.analysis.aggregate import LambdaStats
from reglab.analysis.analyze import analyze
from reglab.analysis.arms import ArmSummary, arm_summaries
from reglab.analysis.claims import Claim
from reglab.analysis.diagnose import Criteria, Trend
from reglab.analysis.families import FamilySummary, family_view
from reglab.analysis.noise import Difference
from reglab.analysis.results import FamilyAnalysis, Recommendation, RunAnalysis, WeightStats
from reglab.analysis.views import check_claims, compare_families, load_model
from reglab.config import DEFAULT_LAMBDAS, Arm, SweepConfig, parse_lambdas
from reglab.data.datasets import load_dataset
from reglab.data.splits import DataInfo, Splits
from reglab.errors import ConfigError, DataError, ReglabError, RunDirError
from reglab.record.reader import RunRecord, load_run
from reglab.record.schema import COLUMNS, EpochRecord
from reglab.report.build import build_report  # importing reglab.report registers the renderers result types ask for
from reglab.run.on_arrays import run_splits, sweep
from reglab.run.runner import run_sweep
from reglab.settings import Family, Setting

__all__ = [
    "Arm", "ArmSummary", "COLUMNS", "Claim", "ConfigError", "Criteria", "DEFAULT_LAMBDAS", "DataError",
    "DataInfo", "Difference", "EpochRecord", "Family", "FamilyAnalysis", "FamilySummary", "LambdaStats",
    "Recommendation", "ReglabError", "RunAnalysis", "RunDirError", "RunRecord", "Setting", "Splits",
    "SweepConfig", "Trend", "WeightStats", "analyze", "arm_summaries", "build_report", "check_claims",
    "compare_families", "family_view", "load_dataset", "load_model", "load_run", "parse_lambdas", "run_splits",
    "run_sweep", "sweep",
]
