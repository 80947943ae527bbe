"""reglab: regularization experiments on Keras models, measured and explained.

Notebook use::

    import reglab
    run = reglab.run_sweep(reglab.SweepConfig(lambdas=(0, 1e-3), epochs=2, dataset="mnist-5k"), out="runs/try")
    analysis = reglab.analyze(run)   # everything the report says, computed once
    print(analysis.summary())        # the answer
    same = reglab.load_run("runs/try")
    model = reglab.load_model(run)   # the recommended setting's model, compiled, with its final weights
"""

from .analysis import (
    ArmSummary, ArmWeights, Criteria, Trend, arm_summaries, norm_monotone_in_lambda, validation_trends, weight_magnitudes,
)
from .aggregate import Choice, LambdaStats, Optimum, choose_lambda, lambda_stats, locate_optimum
from .analyze import FamilyAnalysis, Recommendation, RunAnalysis, WeightStats, analyze
from .noise import Difference
from .settings import Family, Setting
from .claims import Claim, check_claims
from .config import DEFAULT_LAMBDAS, Arm, SweepConfig, parse_lambdas
from .datasets import DataInfo, Splits, load_dataset
from .errors import ConfigError, DataError, ReglabError, RunDirError
from .families import FamilySummary, compare_families, family_view
from .kept import load_model
from .record import COLUMNS, EpochRecord, RunRecord, load_run
from .report import build_report
from .runner import run_sweep

__version__ = "0.1.0"

__all__ = [
    "Arm", "ArmSummary", "Choice", "Claim", "LambdaStats", "Optimum", "locate_optimum", "check_claims", "choose_lambda", "lambda_stats", "ArmWeights", "COLUMNS", "Criteria", "Trend", "ConfigError", "DEFAULT_LAMBDAS", "DataError", "DataInfo", "EpochRecord",
    "ReglabError", "RunDirError", "RunRecord", "Splits", "SweepConfig", "arm_summaries", "build_report",
    "load_dataset", "load_run", "norm_monotone_in_lambda", "parse_lambdas", "run_sweep", "validation_trends", "weight_magnitudes",
    "FamilySummary", "compare_families", "family_view",
    "analyze", "RunAnalysis", "FamilyAnalysis", "Recommendation", "WeightStats", "Difference", "Family", "Setting",
    "load_model",
]
