"""Running a sweep: `run_sweep` (a config → a record, resumable, crash-safe), `sweep` (a notebook's arrays and
model function → a record), the progress display, and the executor that spreads blocks of arms over
processes or a Ray cluster.
"""

from reglab.run.on_arrays import run_splits, sweep
from reglab.run.runner import resume_sweep, run_sweep

__all__ = ["resume_sweep", "run_splits", "run_sweep", "sweep"]
