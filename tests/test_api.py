"""The notebook API: run_sweep returns what load_run reads back."""

from __future__ import annotations

import io

from rich.console import Console

import reglab
from helpers import small_splits


def test_run_sweep_and_load_run_agree(tmp_path):
    console = Console(file=io.StringIO())
    config = reglab.SweepConfig(lambdas=(0.0, 0.01), seeds=1, epochs=2, dataset="mnist-5k")
    run = reglab.run_sweep(config, out=tmp_path / "run", splits=small_splits(), console=console)
    assert run == reglab.load_run(tmp_path / "run")
    assert [len(run.history(arm)["val_data_loss"]) for arm in (0, 1)] == [2, 2]
    summaries = reglab.arm_summaries(run)
    assert summaries[1].final_kernel_norm < summaries[0].final_kernel_norm
    assert (tmp_path / "run" / "report.md").is_file()
    frame = run.to_pandas()
    assert list(frame.columns) == list(reglab.COLUMNS) and len(frame) == 4
    assert "epoch 2/2" in console.file.getvalue()
