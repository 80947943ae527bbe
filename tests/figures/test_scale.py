"""reglab's scale limits in the report: a batch above the data size and a grid too large for a figure per arm."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import hand_made_run, row
from reglab.analysis.analyze import analyze
from reglab.config import SweepConfig
from reglab.figures import MAX_CURVE_FIGURES
from reglab.record.arrays import write_kernels
from reglab.report import document as d
from reglab.report.build import build_report, setup


def _rows(config: SweepConfig) -> list:
    n = len(config.settings())
    return [row(a.index, a.strength, epoch, seed=a.seed, val_data_loss=0.5 + ((a.index % n - n / 3) / n) ** 2 - epoch / 50,
                kernel_norm=10.0 - 5 * (a.index % n) / n - epoch / 10 + a.seed / 10)
            for a in config.arms() for epoch in (1, 2)]


def test_the_setup_says_when_the_batch_was_clipped_to_the_data(tmp_path):
    """Keras's fit takes one batch of every sample when the batch is larger than the data: the setup says so."""
    big = SweepConfig(lambdas=(0.0, 0.01), seeds=1, epochs=2, batch_size=1_048_576, dataset="fake")
    text = d.to_markdown(setup(analyze(hand_made_run(_rows(big), big, run_dir=tmp_path))), tmp_path)
    assert "batch size 1,048,576 (one batch of 10: the whole training set, every epoch)" in text  # fake data: 10 train
    small = big.replace(batch_size=10)
    assert "one batch of" not in d.to_markdown(setup(analyze(hand_made_run(_rows(small), small, run_dir=tmp_path))), tmp_path)


@pytest.mark.slow
def test_a_large_one_seed_grid_draws_some_arms_and_says_where_the_others_are(tmp_path):
    config = SweepConfig(lambdas=(0.0,) + tuple(np.logspace(-6, -1, 59)), epochs=2, seeds=1, dataset="fake")
    run = hand_made_run(_rows(config), config, run_dir=tmp_path)
    write_kernels(tmp_path, {a.index: np.random.default_rng(a.index).normal(size=(6, 4)) for a in config.arms()})
    text = (build_report(run).parent / "report.md").read_text()
    assert (f"Curves for {MAX_CURVE_FIGURES} of the 60 arms, evenly spaced over the grid" in text
            and "every arm's numbers are in the table below and in metrics.csv" in text)
    assert len(list((tmp_path / "figures").glob("arm*.png"))) == MAX_CURVE_FIGURES


def test_a_small_grid_has_no_such_sentence(tmp_path):
    config = SweepConfig(lambdas=(0.0, 0.001, 0.01), epochs=2, seeds=2, dataset="fake")
    run = hand_made_run(_rows(config), config, run_dir=tmp_path)
    text = (build_report(run).parent / "report.md").read_text()
    assert "Curves for" not in text
