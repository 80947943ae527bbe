"""Learning rate × strength: the heat maps' grid, the coupling measurement and its rule, and the 2-D sweep end
to end (`--learning-rates`: a learning-rate column, one heat map per family, rebuilt by `reglab report`)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from helpers import hand_made_run, row
from reglab.analysis.analyze import analyze
from reglab.analysis.coupling import COUPLED, DECOUPLED, INCONCLUSIVE, slope, verdict
from reglab.cli import main
from reglab.config import SweepConfig
from reglab.record.reader import load_run
from reglab.record.schema import METRICS_CSV
from reglab.settings import Setting

RATES = (1e-4, 1e-3, 1e-2)
LAMBDAS = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


def best_l2(lr: float) -> float:
    """1e-3, 1e-4, 1e-5 at RATES: one decade of strength down per decade of learning rate up (grid values)."""
    return {1e-4: 1e-3, 1e-3: 1e-4, 1e-2: 1e-5}[lr]


def synthetic_run(noise: float = 1e-4):
    """A sweep whose validation data loss is a valley in log λ around a known best: for L2 the best moves
    with the learning rate (slope −1), for weight decay it stays at 1e-3 (slope 0); λ = 0 is worst."""
    config = SweepConfig(lambdas=LAMBDAS, seeds=3, epochs=1, dataset="fake", regularizers=("l2", "weight_decay"),
                         learning_rates=RATES)
    rng = np.random.default_rng(0)
    rows = []
    for a in config.arms():
        best = best_l2(a.learning_rate) if a.family == "l2" else 1e-3
        loss = 1.0 if a.strength == 0 else 0.3 + 0.1 * (math.log10(a.strength) - math.log10(best)) ** 2
        loss += noise * rng.standard_normal()
        rows.append(row(a.index, a.strength, 1, seed=a.seed, val_data_loss=loss, val_accuracy=1 - loss / 2,
                        regularizer=a.family, learning_rate=a.learning_rate))
    return hand_made_run(rows, config)


def test_slope_is_least_squares_in_log_log():
    rates = np.array(RATES)
    assert slope(rates, 1e-7 / rates) == pytest.approx(-1.0)
    assert slope(rates, np.full(3, 1e-3)) == pytest.approx(0.0)
    assert slope(rates, np.stack([1e-7 / rates, np.sqrt(rates)])) == pytest.approx([-1.0, 0.5])
    assert slope(np.array([1e-3, 1e-2, 1e-1]), np.array([1e-4, 1e-4, 1e-2])) == pytest.approx(1.0)


@pytest.mark.parametrize("interval, expected", [
    ((-1.2, -0.8), COUPLED), ((0.1, 0.6), COUPLED), ((-0.4, 0.3), DECOUPLED), ((-0.5, 0.5), DECOUPLED),
    ((-0.7, 0.2), INCONCLUSIVE), (None, INCONCLUSIVE),
])
def test_the_verdict_follows_the_stated_rule(interval, expected):
    assert verdict(interval) == expected


def test_coupled_and_decoupled_families_are_told_apart():
    analysis = analyze(synthetic_run(), kernels={})
    l2, wd = analysis.couplings["l2"], analysis.couplings["weight_decay"]
    assert [r.strength for r in l2.per_rate] == [best_l2(lr) for lr in RATES]
    assert l2.slope == pytest.approx(-1.0) and l2.verdict == COUPLED
    assert l2.interval[1] < 0
    assert [r.strength for r in wd.per_rate] == [1e-3] * 3
    assert wd.slope == pytest.approx(0.0) and wd.verdict == DECOUPLED
    # τ = 1/(lr·λ·steps): the fake data's 10 training examples are one batch of 32 → 1 step per epoch
    assert [r.tau_epochs for r in wd.per_rate] == pytest.approx([1 / (lr * 1e-3) for lr in RATES])
    assert wd.tau_spread == pytest.approx(100.0) and wd.tau_shared is False
    assert l2.tau_spread is None and l2.tau_shared is None


def test_heat_maps_mark_the_best_cell_and_the_cells_within_the_margin():
    analysis = analyze(synthetic_run(), kernels={})
    g = analysis.heat_maps["l2"].grids["val_data_loss"]
    assert g.learning_rates == RATES and g.strengths == LAMBDAS
    assert g.best.learning_rate in RATES and g.best.strength == best_l2(g.best.learning_rate)
    assert g.cell(g.best).difference is None
    # the three best cells (one per rate) are equal up to noise 1e-4; any other cell is 0.1 worse
    near = {c.setting for r in g.cells for c in r if c.within_margin}
    assert near <= {Setting("l2", best_l2(lr), lr) for lr in RATES}
    assert all(c.difference.mean > 0.05 for r in g.cells for c in r
               if c.setting.strength not in (best_l2(c.setting.learning_rate),))
    acc = analysis.heat_maps["l2"].grids["val_accuracy"]
    assert acc.best.strength == best_l2(acc.best.learning_rate)  # higher is better there
    # one analysis per family × learning rate, each keyed and labelled by both
    assert set(analysis.families) == {f"{f}@lr={lr!r}" for f in ("l2", "weight_decay") for lr in RATES}
    assert analysis.families["l2@lr=0.001"].label == "L2 at lr = 0.001"


def test_a_small_grid_gets_no_coupling_verdict():
    config = SweepConfig(lambdas=(0.0, 1e-3, 1e-2), seeds=1, epochs=1, dataset="fake", learning_rates=(1e-3, 1e-2))
    rows = [row(a.index, a.strength, 1, seed=a.seed, learning_rate=a.learning_rate) for a in config.arms()]
    analysis = analyze(hand_made_run(rows, config), kernels={})
    assert analysis.couplings == {} and set(analysis.heat_maps) == {"l2"}


@pytest.mark.slow
def test_a_two_dimensional_sweep_end_to_end(tmp_path, capsys):
    """The issue's command: a learning-rate column, one heat map per family, the section in the report, and
    `reglab report` draws them again from the record alone."""
    out = tmp_path / "run"
    assert main(["run", "--dataset", "mnist-5k", "--learning-rates", "1e-4,1e-3,1e-2", "--lambdas", "0,1e-4,1e-3",
                 "--regularizer", "l2,weight_decay", "--epochs", "2", "--seeds", "1", "--no-progress", "--out", str(out)]) == 0
    err = capsys.readouterr()
    assert "lr=0.01" in err.out + err.err  # progress lines name each arm's learning rate
    with open(out / METRICS_CSV) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 18 * 2 and {float(r["learning_rate"]) for r in rows} == set(RATES)
    heat_maps = {"heat_map_l2.png", "heat_map_weight_decay.png"}
    assert heat_maps <= {p.name for p in (out / "figures").iterdir()}
    report = (out / "report.md").read_text()
    assert "## Learning rate × strength" in report
    assert "needs at least 3 learning rates and 3 positive strengths" in report  # 2 positive strengths here
    for name in heat_maps:
        (out / "figures" / name).unlink()
    assert main(["report", str(out)]) == 0
    assert heat_maps <= {p.name for p in (out / "figures").iterdir()}
    run = load_run(out)
    assert {a["learning_rate"] for a in run.arms} == set(RATES)
    assert analyze(run).couplings == {}
