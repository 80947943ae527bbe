"""The terminal summary: 80 columns unless asked wider, plurals right, penalty-free numbers, the answer last."""

from __future__ import annotations

import dataclasses

import pytest

from helpers import hand_made_run, row
from reglab.analysis.analyze import analyze
from reglab.analysis.diagnose import (
    GOOD,
    IMPROVING,
    LESS_CONFIDENT,
    NO_DATA,
    OVERFITTING,
    TOO_FEW,
    UNDERFITTING,
    UNSETTLED,
)
from reglab.analysis.results import CANT_TELL
from reglab.config import SweepConfig
from reglab.report.summary import SHORT_DIAGNOSIS, summary_lines


def _run(epochs: int, seeds: int, families=("l2",), fallback: str | None = None):
    config = SweepConfig(lambdas=(0.0, 1e-4, 1e-3, 1e-2), epochs=epochs, seeds=seeds, dataset="fake", regularizers=families)
    rows = [dataclasses.replace(row(a.index, a.strength, e, seed=a.seed, val_data_loss=0.3 + abs(a.strength - 1e-3) * 10 - e / 100,
                                    data_loss=0.2, accuracy=0.95, val_accuracy=0.9), regularizer=a.family)
            for a in config.arms() for e in range(1, epochs + 1)]
    run = hand_made_run(rows, config)
    if fallback:
        run = dataclasses.replace(run, data=dataclasses.replace(run.data, fallback_reason=fallback, requested="mnist"))
    return run


@pytest.mark.parametrize("epochs, seeds, families", [(1, 1, ("l2",)), (10, 3, ("l2",)), (3, 2, ("l2", "l1_l2:0.5", "weight_decay"))])
def test_the_summary_fits_80_columns_and_ends_with_the_answer(epochs, seeds, families):
    run = _run(epochs, seeds, families, fallback="no internet connection: could not download MNIST " * 3)
    lines = summary_lines(analyze(run, kernels={}))
    table = lines[2:2 + len(run.arms)]
    assert max(len(line) for line in lines if line not in table) <= 80
    assert max(len(line) for line in table) <= (80 if len(families) == 1 else 88)  # a family's name widens only its column
    words = {*(SHORT_DIAGNOSIS.get(d, d) for d in (TOO_FEW, UNDERFITTING, OVERFITTING, IMPROVING, GOOD, NO_DATA,
                                                      UNSETTLED, LESS_CONFIDENT)), "—"}
    assert all(any(line.endswith("  " + w) for w in words) for line in table), table  # the fit column is never cut
    head = lines[0]
    assert (f"{epochs} epoch," if epochs == 1 else f"{epochs} epochs,") in head
    assert (f"{seeds} seed" + ("" if seeds == 1 else "s")) in head
    assert lines[1].split()[:2] in (["λ", "seed"], ["setting", "seed"]) and "val CE" in lines[1] and "val_loss" not in lines[1]
    assert lines[-1].startswith("report: ") and lines[-1].endswith("report.html")
    headline = analyze(run, kernels={}).summary().splitlines()[0]
    assert " ".join(headline.split()) in " ".join(" ".join(lines).split())  # the answer's headline, wrapped


def test_a_wider_terminal_gets_wider_lines():
    run = _run(3, 1, fallback="x " * 100)
    assert max(len(line) for line in summary_lines(analyze(run, kernels={}), 160)) > 80


def test_a_learning_rate_sweep_keeps_the_fit_column_whole():
    """`--learning-rates 1e-4,1e-3,1e-2 --lambdas 0,1e-5,1e-4,1e-3 --seeds 2 --epochs 3` cut "still impro"."""
    config = SweepConfig(lambdas=(0.0, 1e-5, 1e-4, 1e-3), learning_rates=(1e-4, 1e-3, 1e-2), epochs=3, seeds=2, dataset="fake")
    rows = [dataclasses.replace(row(a.index, a.strength, e, a.seed, val_data_loss=1.0 - 0.05 * e, data_loss=1.0 - 0.05 * e),
                                learning_rate=a.learning_rate) for a in config.arms() for e in range(1, 4)]
    lines = summary_lines(analyze(hand_made_run(rows, config), kernels={}))
    table = lines[2:2 + len(config.arms())]
    assert all(line.endswith(("  still improving", "  can't tell", "  good fit", "  too few epochs")) for line in table), table


def _cant_tell_run(families=("l2",), gap: float = 0.01):
    """The best (1e-3) beats the rest by `gap`, less than its seeds vary: the grid cannot tell (or, with a wide gap, can)."""
    config = SweepConfig(lambdas=(0.0, 1e-4, 1e-3, 1e-2), epochs=3, seeds=3, dataset="fake", regularizers=families)
    rows = [dataclasses.replace(row(a.index, a.strength, e, seed=a.seed, data_loss=0.2, accuracy=0.95, val_accuracy=0.9,
                                    val_data_loss=0.3 + (0.0 if a.strength == 1e-3 else gap) + a.strength * (a.strength > 1e-3)
                                    + 0.02 * ((a.seed * 7 + round(a.strength * 1e4)) % 3)), regularizer=a.family)
            for a in config.arms() for e in range(1, 4)]
    return hand_made_run(rows, config)


def test_a_grid_that_cannot_tell_is_told_what_confirm_would_do_and_others_are_not():
    cant = analyze(_cant_tell_run(), kernels={})
    assert cant.main.recommended is not None and cant.main.recommended.benefit == CANT_TELL
    text = " ".join(summary_lines(cant))
    assert "next: `reglab run --confirm` with the same grid and seeds" in text
    assert "--confirm" not in cant.summary()  # the report's answer is the analysis's alone: the hint is the terminal's
    used = analyze(_cant_tell_run(gap=0.5), kernels={})
    assert used.summary().startswith("Use ")
    two = analyze(_cant_tell_run(("l2", "weight_decay")), kernels={})
    assert two.main.recommended is not None and two.main.recommended.benefit == CANT_TELL
    for other in (used, analyze(_run(3, 1), kernels={}), two):
        assert "--confirm" not in " ".join(summary_lines(other))  # decided, one seed, or two families (--confirm takes one)
