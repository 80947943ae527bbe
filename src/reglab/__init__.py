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

from . import answer, notebook  # noqa: F401  (they register the renderers a result type asks for)
from ._version import __version__  # noqa: F401  (reglab.__version__)
from .aggregate import LambdaStats
from .analysis import ArmSummary, arm_summaries
from .analyze import FamilyAnalysis, Recommendation, RunAnalysis, WeightStats, analyze
from .claims import Claim
from .config import DEFAULT_LAMBDAS, Arm, SweepConfig, parse_lambdas
from .datasets import DataInfo, Splits, load_dataset
from .diagnose import Criteria, Trend
from .errors import ConfigError, DataError, ReglabError, RunDirError
from .families import FamilySummary, family_view
from .noise import Difference
from .record import COLUMNS, EpochRecord, RunRecord, load_run
from .report import build_report
from .runner import run_sweep
from .settings import Family, Setting
from .sweep import run_splits, sweep
from .views import check_claims, compare_families, load_model


__all__ = [
    "Arm", "ArmSummary", "COLUMNS", "Claim", "ConfigError", "Criteria", "DEFAULT_LAMBDAS", "DataError",
    "DataInfo", "Difference", "EpochRecord", "Family", "FamilyAnalysis", "FamilySummary", "LambdaStats",
    "Recommendation", "ReglabError", "RunAnalysis", "RunDirError", "RunRecord", "Setting", "Splits",
    "SweepConfig", "Trend", "WeightStats", "analyze", "arm_summaries", "build_report", "check_claims",
    "compare_families", "family_view", "load_dataset", "load_model", "load_run", "parse_lambdas", "run_splits",
    "run_sweep", "sweep",
]
