"""The public questions a record answers, each a thin view of its one analysis (`analyze`): the claims, the
families side by side, the recommended setting, and its model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reglab.analysis.analyze import analyze
from reglab.analysis.claims import Claim, one_family
from reglab.analysis.diagnose import Criteria
from reglab.analysis.families import FamilySummary, compare_analyses
from reglab.errors import RunDirError
from reglab.model.kept import load_arm_model
from reglab.record.reader import RunRecord, load_run
from reglab.settings import Setting


def check_claims(run: RunRecord, criteria: Criteria = Criteria(), family: str | None = None) -> list[Claim]:
    """The claims about one family of a run (`family`: required when the run compares several)."""
    return list(analyze(run, criteria).families[one_family(run, family)].claims)


def compare_families(run: RunRecord, kernels: dict[int, Any] | None = None) -> list[FamilySummary]:
    """Every family of the sweep, in the order given."""
    return compare_analyses(list(analyze(run, kernels=kernels).families.values()))


def recommended_setting(run: RunRecord) -> Setting | None:
    """The setting the report's answer recommends; None when no arm completed every epoch."""
    return analyze(run).recommended_setting


def load_model(run: str | Path | RunRecord, setting: Setting | None = None, seed: int | None = None) -> Any:
    """The model of one arm of `run` (a run directory or a `RunRecord`), compiled as the arm was, with the
    final weights kept in weights.npz (its trainable and non-trainable variables, exactly as trained).

    `setting`: a `reglab.Setting` of the run (None: the recommended one, as the report's answer says);
    `seed`: one of the run's seeds (None: its first). Anything that cannot be loaded is one `ReglabError` line.
    A user's model is built by running its model file (the one run.json names, unchanged since the run):
    a note on stderr says so.
    """
    record = run if isinstance(run, RunRecord) else load_run(run)
    if setting is None:
        setting = recommended_setting(record)
        if setting is None:
            raise RunDirError(f"{record.run_dir} has no recommended setting (no arm completed every epoch); pass setting=")
    return load_arm_model(record, setting, seed)
