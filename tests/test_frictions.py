"""Frictions a new user met in a learning-rate sweep's report, each pinned by a hand-made record."""

from __future__ import annotations

import dataclasses
from dataclasses import fields

import pytest

from helpers import hand_made_run, row
from reglab.analysis.analyze import analyze
from reglab.analysis.claims import pm
from reglab.analysis.stats import Estimate, mean_ci
from reglab.config import SweepConfig
from reglab.errors import ConfigError
from reglab.figures import figure_units
from reglab.report.answer import answer
from reglab.report.build import ci, setup_rows

LR_SWEEP = SweepConfig(lambdas=(0.0, 1e-5, 1e-4, 1e-3), learning_rates=(1e-4, 1e-3, 1e-2), epochs=10, seeds=2,
                       dataset="fake")


def _lr_sweep(improving: bool = True):
    """24 arms; every arm's validation data loss still falls when `improving`."""
    slope = 0.05 if improving else 0.0
    rows = [dataclasses.replace(row(a.index, a.strength, e, a.seed, val_data_loss=0.9 + 10 * a.strength + 0.01 * a.seed - slope * e
                                    + 0.002 * ((7 * e + 3 * a.seed) % 5), data_loss=0.8 - slope * e),
                                learning_rate=a.learning_rate) for a in LR_SWEEP.arms() for e in range(1, 11)]
    tests = [{"accuracy": 0.905, "data_loss": 0.3, "loss": 0.3} for _ in LR_SWEEP.arms()]  # every seed agrees
    return hand_made_run(rows, LR_SWEEP, tests=tests)


def test_figure_titles_put_the_learning_rate_after_strength():
    analysis = analyze(_lr_sweep(), kernels={})
    titles = [u.title for u in figure_units(analysis).values()]
    assert not any(" strength" in t and "at lr = " in t.split(" strength")[0] for t in titles), titles
    which = figure_units(analysis)["which_strength"].title
    assert which.startswith("Which L2 strength at lr = "), which


def test_a_zero_spread_over_seeds_is_not_printed_as_plus_minus_zero():
    agree = mean_ci([0.905, 0.905])
    tiny = Estimate(0.905, 1e-9, 2)
    for e in (agree, tiny):
        assert "±" not in ci(e) and "agree" in ci(e), ci(e)
        assert "±" not in pm(e) and "agree" in pm(e), pm(e)
    one = mean_ci([0.905])
    assert ci(one) == "0.9050" and pm(one) == "0.9050"  # one value: nothing to agree
    spread = mean_ci([0.90, 0.91])
    assert "±" in ci(spread) and "agree" not in ci(spread)


def test_the_report_tables_never_print_plus_minus_zero(tmp_path):
    from reglab.report.build import build_report

    run = dataclasses.replace(_lr_sweep(), run_dir=tmp_path / "run")
    (tmp_path / "run").mkdir()
    build_report(run)
    text = (tmp_path / "run" / "report.md").read_text()
    assert "± 0.0000" not in text and "(the seeds agree)" in text


def test_the_convergence_count_covers_every_arm_of_the_run():
    analysis = analyze(_lr_sweep(), kernels={})
    line = next(x for x in answer(analysis).lines if "still improving" in x)
    n = len(LR_SWEEP.arms())
    assert f"of {n} arms still improving" in line, line


def test_the_split_row_gives_the_sizes_once():
    run = _lr_sweep()
    split = "stratified 3,000 / 1,000 / 1,000 (train / validation / test), fixed order (seed 0)"
    data = dataclasses.replace(run.data, split=split, n_train=3000, n_val=1000, n_test=1000)
    analysis = analyze(dataclasses.replace(run, data=data), kernels={})
    text = str(dict(setup_rows(analysis))["split"])
    assert text.count("3,000") == 1 and text.count("1,000") == 2, text
    assert "stratified" in text and "fixed order (seed 0)" in text


def test_an_unknown_toml_key_lists_every_accepted_key():
    with pytest.raises(ConfigError) as e:
        SweepConfig.from_mapping({"lambda": [0.0]}, where="preset.toml")
    message = str(e.value)
    for f in fields(SweepConfig):
        assert f"{f.name}" in message.split("known:")[1], f.name
    assert "log" in message.split("known:")[1].replace(",", " ").split()
