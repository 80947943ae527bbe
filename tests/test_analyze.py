"""One analysis per run, keyed by setting, with noise from seeds and validation sampling, and diagnoses
stated as rules — tested on hand-made records with known answers."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from helpers import fake_info, hand_made_run, row
from reglab.aggregate import lambda_stats
from reglab.analysis import validation_trends
from reglab.analyze import analyze
from reglab.config import SweepConfig
from reglab.diagnose import GOOD, IMPROVING, OVERFITTING, TOO_FEW, UNDERFITTING
from reglab.record import EpochRecord, RunRecord, ValidationValues
from reglab.settings import Family, Setting


@dataclasses.dataclass(frozen=True)
class WithValues(RunRecord):
    """A hand-made record with per-example validation values, as validation.npz would give them."""

    values: Any = None

    def validation(self) -> Any:
        return self.values

    def kernels(self) -> dict:
        return {}


def with_values(run: RunRecord, loss: np.ndarray, correct: np.ndarray, by_epoch: dict[int, np.ndarray] | None = None) -> WithValues:
    """`by_epoch`: epoch → [arms, n_val] values after that epoch (the others NaN), as validation.npz keeps them."""
    fields = {f.name: getattr(run, f.name) for f in dataclasses.fields(RunRecord)}
    kept = None
    if by_epoch is not None:
        kept = np.full((len(loss), run.config.epochs, loss.shape[1]), np.nan, dtype=np.float32)
        for epoch, values in by_epoch.items():
            kept[:, epoch - 1] = values
    return WithValues(**fields, values=ValidationValues(loss, correct, np.ones(len(loss), dtype=bool), kept))


def family_rows(config: SweepConfig, curve) -> list[EpochRecord]:
    rows = []
    for a in config.arms():
        for e in range(1, config.epochs + 1):
            values = curve(a, e)
            rows.append(dataclasses.replace(row(a.index, a.lam, e, seed=a.seed, **values), regularizer=a.family))
    return rows


def test_two_families_at_the_same_strength_and_seed_never_mix():
    config = SweepConfig(lambdas=(0.0, 1e-3), seeds=2, epochs=2, dataset="fake", regularizers=("l2", "weight_decay"))
    # L2 arms score 0.30, weight-decay arms 0.90: any mixing would show as a value in between
    rows = family_rows(config, lambda a, e: dict(val_data_loss=0.30 if a.family == "l2" else 0.90, data_loss=0.1,
                                                  kernel_norm=5.0 if a.family == "l2" else 50.0, accuracy=0.9))
    run = hand_made_run(rows, config)
    run.meta["arms"] = [{**m, "regularizer": a.family} for m, a in zip(run.meta["arms"], config.arms())]
    analysis = analyze(run, kernels={})
    assert set(analysis.families) == {"l2", "weight_decay"}
    for family, value in (("l2", 0.30), ("weight_decay", 0.90)):
        fa = analysis.families[family]
        assert [s["val_data_loss"].mean for s in fa.stats] == pytest.approx([value, value])
        assert all(t.setting.family == family for t in fa.trends)
        assert fa.recommended.setting.family == family
    with pytest.raises(ValueError, match="compares l2, weight_decay"):
        lambda_stats(run)  # a λ-keyed function refuses a multi-family run rather than mixing it
    trends = validation_trends(run)  # keyed by setting, the run's arm indices
    assert [t.setting.family for t in trends] == [a.family for a in config.arms()]


def decreasing(a, e, epochs=10):
    """The default run's shape: validation data loss lowest at the last epoch and still falling."""
    return dict(val_data_loss=0.30 + 0.2 * (epochs - e) / epochs, data_loss=0.05 + 0.1 * (epochs - e) / epochs,
                accuracy=0.97, val_accuracy=0.91)


def test_the_default_runs_shape_is_still_improving_not_overfitting():
    config = SweepConfig(lambdas=(0.0, 1e-4, 1e-3), seeds=1, epochs=10, dataset="fake")
    run = hand_made_run(family_rows(config, decreasing), config)
    rng = np.random.default_rng(0)
    difficulty = rng.gamma(0.5, 0.6, (1, 1000))
    loss = difficulty * np.ones((3, 1))  # mean 0.30: the final values
    window = loss + 0.04 + rng.normal(0, 0.02, (3, 1000))  # two epochs earlier, paired example by example
    correct = rng.random((3, 1000)) < 0.91
    # per-example values at the best epoch (the last) and at the start of the 3-epoch window (epoch 8)
    analysis = analyze(with_values(run, loss, correct, by_epoch={10: loss, 8: window}), kernels={})
    fa = analysis.main
    assert {t.diagnosis for t in fa.trends} == {IMPROVING}
    assert all(t.converged is False for t in fa.trends)
    assert fa.converged() is False
    assert "had not converged" in analysis.summary()
    # without the paired values, the conservative unpaired margin (√2 standard errors) is used: never overfitting
    unpaired = analyze(with_values(run, loss, correct), kernels={})
    assert OVERFITTING not in {t.diagnosis for t in unpaired.main.trends}


def test_a_rise_beyond_noise_is_overfitting_and_within_noise_is_not():
    config = SweepConfig(lambdas=(0.0,), seeds=1, epochs=4, dataset="fake")
    rng = np.random.default_rng(1)
    final = rng.gamma(0.5, 0.6, (1, 1000))
    se = final.std() / math.sqrt(1000)

    def curve(rise):
        return lambda a, e: dict(val_data_loss=[0.40, 0.30, 0.30 + rise / 2, 0.30 + rise][e - 1], data_loss=0.1)

    big = analyze(with_values(hand_made_run(family_rows(config, curve(6 * se)), config), final, final < 1), kernels={})
    small = analyze(with_values(hand_made_run(family_rows(config, curve(0.5 * se)), config), final, final < 1), kernels={})
    assert big.main.trends[0].diagnosis == OVERFITTING
    assert small.main.trends[0].diagnosis == GOOD and small.main.trends[0].converged


def test_too_few_epochs_is_said_and_nothing_is_nan():
    config = SweepConfig(lambdas=(0.0, 1e-3), seeds=1, epochs=1, dataset="fake")
    run = hand_made_run(family_rows(config, lambda a, e: dict(val_data_loss=0.3 + a.lam, data_loss=0.2)), config)
    analysis = analyze(run, kernels={})
    assert {t.diagnosis for t in analysis.main.trends} == {TOO_FEW}
    text = analysis.summary()
    assert "nan" not in text.lower() and "too few epochs" in text


def test_underfitting_is_measured_against_the_recommended_setting():
    config = SweepConfig(lambdas=(0.0, 1e-3, 1e-1), seeds=1, epochs=3, dataset="fake")
    acc = {0.0: 0.99, 1e-3: 0.985, 1e-1: 0.90}
    val = {0.0: 0.31, 1e-3: 0.30, 1e-1: 0.45}
    run = hand_made_run(family_rows(config, lambda a, e: dict(val_data_loss=val[a.lam] + 0.01 * (3 - e) ** 2,
                                                              data_loss=1 - acc[a.lam], accuracy=acc[a.lam])), config)
    run = dataclasses.replace(run, data=dataclasses.replace(fake_info(), n_train=3000))
    rng = np.random.default_rng(2)
    analysis = analyze(with_values(run, rng.gamma(0.5, 0.6, (3, 1000)), rng.random((3, 1000)) < 0.9), kernels={})
    fa = analysis.main
    assert fa.recommended.setting == Setting("l2", 1e-3)
    by_lam = {t.lam: t.diagnosis for t in fa.trends}
    assert by_lam[1e-1] == UNDERFITTING and by_lam[0.0] != UNDERFITTING and by_lam[1e-3] != UNDERFITTING


def test_one_seed_decides_a_large_weight_shrink_and_names_the_best_without_claiming_it():
    config = SweepConfig(lambdas=(0.0, 1e-4, 1e-3, 1e-2), seeds=1, epochs=4, dataset="fake")
    norms = {0.0: 20.0, 1e-4: 15.0, 1e-3: 10.0, 1e-2: 4.0}
    val = {0.0: 0.36, 1e-4: 0.33, 1e-3: 0.25, 1e-2: 0.40}
    run = hand_made_run(family_rows(config, lambda a, e: dict(val_data_loss=val[a.lam] + 0.04 * (4 - e), data_loss=0.1,
                                                              kernel_norm=norms[a.lam], accuracy=0.95)), config)
    rng = np.random.default_rng(3)
    base = rng.gamma(0.5, 0.6, 1000)
    loss = np.stack([base * val[lam] / base.mean() for lam in config.lambdas])  # exact means, shared difficulty
    analysis = analyze(with_values(run, loss, loss < 1), kernels={})
    claims = {c.key: c.verdict for c in analysis.main.claims}
    assert claims["weights"] == "supported"  # a 5× drop is not "inconclusive" with one seed
    assert claims["moderate"] == "inconclusive"  # one seed never claims: seed noise is unmeasured
    rec = analysis.main.recommended
    assert rec.setting == Setting("l2", 1e-3) and rec.beats_baseline is None and rec.benefit == "one seed"
    assert analysis.summary().startswith("Best in this one seed: L2 λ = 0.001.")
    assert "Use " not in analysis.summary()


def test_within_noise_of_no_regularization_is_no_measurable_benefit():
    config = SweepConfig(lambdas=(0.0, 1e-4, 1e-3), seeds=3, epochs=3, dataset="fake")
    val = {0.0: 0.300, 1e-4: 0.299, 1e-3: 0.33}
    run = hand_made_run(family_rows(config, lambda a, e: dict(val_data_loss=val[a.lam] + 0.003 * a.seed + 0.01 * (3 - e),
                                                              data_loss=0.1)), config)
    rng = np.random.default_rng(4)
    base = rng.gamma(0.5, 0.6, 1000)
    loss = np.stack([base * (val[a.lam] + 0.003 * a.seed) / base.mean() + rng.normal(0, 0.05, 1000)
                     for a in config.arms()])
    analysis = analyze(with_values(run, loss, loss < 1), kernels={})
    assert analysis.main.recommended.beats_baseline is False
    assert analysis.summary().startswith("No measurable benefit over no regularization")


def test_dead_inputs_are_set_apart_in_the_weight_statistics():
    from reglab.analyze import _weight_stats
    from reglab.families import family_view

    config = SweepConfig(lambdas=(0.0, 1e-3), seeds=1, epochs=1, dataset="fake")
    run = hand_made_run([row(0, 0.0, 1), row(1, 1e-3, 1)], config)
    rng = np.random.default_rng(5)
    dead = tuple(range(100))
    k0 = rng.normal(0, 0.05, (784, 8))
    k1 = k0 * 0.7
    k1[list(dead)] = 1e-5  # pinned by the penalty: no data gradient reaches them
    stats = _weight_stats(family_view(run, "l2"), {0: k0, 1: k1}, dead, 784)
    assert stats[1].dead_rows == 100 and stats[1].dead_near_zero == 1.0
    live_share = float(np.mean(np.abs(k1[100:]) < 1e-3))
    assert stats[1].near_zero == pytest.approx(live_share) and stats[1].near_zero < 0.05


def test_every_family_is_described_as_itself():
    wd, l1 = Family.of("weight_decay"), Family.of("l1_l2:0.5")
    assert "L2" not in wd.label + wd.formula + wd.strength_axis + wd.keras and not wd.in_loss
    assert l1.label == "L1 + 0.5·L2" and "0.5·λ·ΣW²" in l1.formula


def test_one_record_object_is_analysed_once(tmp_path):
    """`reglab run` draws the report and prints the summary from one analysis of the record it just read."""
    config = SweepConfig(lambdas=(0.0, 1e-3), seeds=1, epochs=2, dataset="fake")
    run = hand_made_run(family_rows(config, lambda a, e: dict(val_data_loss=0.3 + a.lam)), config, run_dir=tmp_path)
    first = analyze(run)
    assert analyze(run) is first
    assert analyze(run, kernels={}) is not first  # given kernels: computed from them
    same_files = hand_made_run(list(run.epochs), config, run_dir=tmp_path)
    assert analyze(same_files) is not first  # another record object (it may have been read again): analysed anew
