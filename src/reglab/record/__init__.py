"""The run record on disk: what a run directory holds (`schema`), how a run writes it as it trains (`writer`),
the arrays beside the rows (`arrays`), the checks every reader applies (`checks`), the run directory's
manifest and lock (`rundir`), the checkpoint a resume continues from (`checkpoint`), and a record read back
(`reader`: `load_run` → `RunRecord`).
"""

from reglab.record.arrays import FinalWeights, ValidationValues, read_kernels, read_validation, read_weights
from reglab.record.reader import RunRecord, load_run
from reglab.record.schema import COLUMNS, METRICS_CSV, RUN_JSON, ArmRecord, EpochRecord, read_run_meta
from reglab.record.writer import Recorder

__all__ = [
    "ArmRecord", "COLUMNS", "EpochRecord", "FinalWeights", "METRICS_CSV", "RUN_JSON", "Recorder", "RunRecord",
    "ValidationValues", "load_run", "read_kernels", "read_run_meta", "read_validation", "read_weights",
]
