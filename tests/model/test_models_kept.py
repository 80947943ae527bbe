"""Models kept: every finished arm's final weights in weights.npz, `reglab.load_model` giving back an arm's
compiled model with its recorded test metrics, and the recommended model as a plain Keras file."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil

import numpy as np
import pytest
from rich.console import Console

import reglab
from helpers import BATCHNORM_MODEL, small_splits
from reglab.analysis.views import recommended_setting
from reglab.engines import fused
from reglab.errors import ConfigError, RunDirError
from reglab.model import kept
from reglab.record.arrays import read_kernels, read_weights, weights_kept
from reglab.record.rundir import read_manifest
from reglab.record.schema import WEIGHTS_NPZ, ArmRecord
from reglab.settings import Setting

CONFIG = reglab.SweepConfig(lambdas=(0.0, 1e-3), seeds=2, seed=4, epochs=2, dataset="mnist-5k")



def sweep(config, out, **kwargs):
    return reglab.run_sweep(config, out=out, splits=small_splits(), console=Console(file=io.StringIO()), live=False, **kwargs)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same tiny sweep with each engine; the fused one draws its report (and so recommended.keras)."""
    base = tmp_path_factory.mktemp("kept")
    return {engine: sweep(dataclasses.replace(CONFIG, engine=engine), base / engine, make_report=engine == "fused")
            for engine in ("fused", "keras")}


def arm_of(run, setting, seed):
    return next(a for a in run.arms if ArmRecord.of(a).setting == setting and a["seed"] == seed)


def assert_reproduces(run, setting, seed, model=None):
    splits = small_splits()
    model = model if model is not None else reglab.load_model(run, setting, seed)
    got = model.evaluate(splits.x_test, splits.y_test, batch_size=1000, return_dict=True, verbose=0)
    want = arm_of(run, setting, seed)["test"]
    assert got["accuracy"] == pytest.approx(want["accuracy"], abs=1e-6), (setting, seed)
    assert got["loss"] == pytest.approx(want["loss"], abs=1e-5), (setting, seed)
    assert got["data_loss"] == pytest.approx(want["data_loss"], abs=1e-5), (setting, seed)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["fused", "keras"])
def test_load_model_reproduces_the_recorded_test_metrics(runs, engine):
    run = runs[engine]
    assert weights_kept(run.run_dir) == [0, 1, 2, 3] and WEIGHTS_NPZ in read_manifest(run.run_dir)
    setting = recommended_setting(run)
    for seed in run.config.seed_values:
        assert_reproduces(run, setting, seed)
    model = reglab.load_model(run)  # the recommended setting at the first seed, compiled as the arm was
    assert model.compiled and float(model.optimizer.learning_rate) == pytest.approx(setting.learning_rate)
    first = read_weights(run.run_dir, arm_of(run, setting, 4)["arm"])
    assert all(np.array_equal(v, w) for v, w in zip(model.get_weights(), first.trainable, strict=True))
    assert all(w.dtype == np.float32 for w in first.trainable)
    kernels = read_kernels(run.run_dir)
    for arm in range(4):  # kernels.npz is still each arm's regularized kernel: the first trainable array
        np.testing.assert_array_equal(kernels[arm], read_weights(run.run_dir, arm).trainable[0])


@pytest.mark.slow
def test_the_engines_keep_the_same_weights(runs):
    for arm in range(4):
        for a, b in zip(read_weights(runs["fused"].run_dir, arm).trainable, read_weights(runs["keras"].run_dir, arm).trainable):
            np.testing.assert_allclose(a, b, atol=1e-5 * float(np.max(np.abs(b))))


def test_recommended_keras_is_a_plain_keras_file_named_by_the_report(runs):
    from reglab._keras import keras

    run = runs["fused"]
    path = run.run_dir / kept.RECOMMENDED_KERAS
    assert kept.RECOMMENDED_KERAS in read_manifest(run.run_dir)
    plain = keras.models.load_model(path)
    ours = reglab.load_model(run)
    x = small_splits().x_test
    np.testing.assert_array_equal(plain.predict(x, verbose=0), ours.predict(x, verbose=0))
    assert_reproduces(run, recommended_setting(run), 4, model=plain)  # compiled: loss, accuracy, data_loss
    report = (run.run_dir / "report.md").read_text()
    setting = recommended_setting(run)
    assert f"The recommended model — {setting.label()}, seed 4 — is saved" in report and "recommended.keras" in report
    assert "reglab.load_model(RUN_DIR)" in report and "pixels 0–255 divided by 255" in report
    # drawn again, the report keeps the file that already holds the recommended arm (no Keras needed)
    before = path.stat().st_ino
    again = kept.keep_recommended(run, reglab.analyze(run).recommended_setting)
    assert again.path == path and path.stat().st_ino == before


def test_the_report_says_how_to_prepare_a_standardized_tables_inputs(runs):
    from reglab.report import document as d
    from reglab.report.build import kept_model_blocks

    run = runs["fused"]
    table = dataclasses.replace(run, data=dataclasses.replace(run.data, input_shape=(3,), feature_mean=(0.5, 1.0, 2.0),
                                                              feature_std=(1.0, 2.0, 3.0), scaling="standardized"))
    model = kept.KeptModel(run.run_dir / kept.RECOMMENDED_KERAS, Setting("l2", 1e-3), 4, 1)
    text = d.to_markdown(kept_model_blocks(table, model), run.run_dir)
    assert "subtract `run.data.feature_mean` and divide by `run.data.feature_std`" in text
    failed = d.to_markdown(kept_model_blocks(run, model._replace(path=None, problem="Keras could not save it (…).")), run.run_dir)
    assert failed.strip() == "The recommended model — L2 λ = 0.001, seed 4 — is not saved as a Keras file: Keras could not save it (…)."


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["per-arm-chunks", pytest.param("vmap", marks=pytest.mark.slow)])
def test_batch_normalization_statistics_are_kept(strategy, tmp_path, monkeypatch):
    """A model with non-trainable state: its moving statistics come back with it (the fused engine's per-arm
    strategy on a CPU, and the vmap one it uses on an accelerator)."""
    monkeypatch.setattr(fused, "strategy_for", lambda model, backend: strategy)
    spec = tmp_path / "bn_model.py"
    spec.write_text(BATCHNORM_MODEL)
    # vmap: every arm sliced from one state, in test_strategies.py's 2 × 2 grid (the same compiled program)
    grid = {"lambdas": (0.0, 1e-3), "seeds": 2} if strategy == "vmap" else {"lambdas": (1e-3,), "seeds": 1}
    config = dataclasses.replace(CONFIG, model=f"{spec}:build_model", epochs=1, engine="fused", **grid)
    run = sweep(config, tmp_path / "run", make_report=False)
    assert run.meta["engine_strategy"] == strategy
    for arm in run.arms:
        w = read_weights(run.run_dir, arm["arm"])
        assert len(w.non_trainable) == 2 and np.any(w.non_trainable[0] != 0)  # moving mean, moving variance: trained
        assert_reproduces(run, ArmRecord.of(arm).setting, arm["seed"])


def test_blocks_keep_every_arm_as_one_program_does(runs, tmp_path):
    run = sweep(CONFIG, tmp_path / "run", make_report=False, executor="blocks", blocks=2)
    assert weights_kept(run.run_dir) == [0, 1, 2, 3]
    for arm in range(4):
        mine, ref = read_weights(run.run_dir, arm), read_weights(runs["fused"].run_dir, arm)
        for a, b in zip(mine.trainable + mine.non_trainable, ref.trainable + ref.non_trainable, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_diverged_arm_is_not_kept_and_says_so(tmp_path):
    config = dataclasses.replace(CONFIG, lambdas=(0.0, 1e38), seeds=1, epochs=1)
    run = sweep(config, tmp_path / "run", make_report=False)
    assert [a["status"] for a in run.arms] == ["completed", "diverged"] and weights_kept(run.run_dir) == [0]
    with pytest.raises(RunDirError, match=r"^arm 1 \(L2 λ = 1e\+38, seed 4\) has no weights in .*: it diverged"):
        reglab.load_model(run, Setting("l2", 1e38), 4)


def one_line(e):
    return "\n" not in str(e.value) and str(e.value)


def test_what_cannot_be_loaded_is_one_line(runs, tmp_path):
    run = runs["keras"]
    with pytest.raises(ConfigError, match=r"^L2 λ = 0\.5 is not a setting of .* \(it has 2: L2 λ = 0 \(baseline\), L2 λ = 0\.001\)$") as e:
        reglab.load_model(run, Setting("l2", 0.5))
    assert one_line(e)
    with pytest.raises(ConfigError, match=r"seed 9 is not a seed of .* \(its seeds: 4, 5\)"):
        reglab.load_model(run, Setting("l2", 0.0), 9)
    with pytest.raises(ConfigError, match="must be a reglab.Setting"):
        reglab.load_model(run, 0.001)

    copy = shutil.copytree(run.run_dir, tmp_path / "copy")
    (copy / WEIGHTS_NPZ).unlink()
    with pytest.raises(RunDirError, match=r"has no weights\.npz: it was recorded by a reglab that kept no weights") as e:
        reglab.load_model(copy)
    assert one_line(e)
    (copy / WEIGHTS_NPZ).write_bytes(b"not a zip")
    with pytest.raises(RunDirError, match=r"weights\.npz: not a readable weights file"):
        reglab.load_model(copy)


def test_a_large_sweep_keeps_the_recommended_settings_arms(runs, tmp_path, monkeypatch):
    run = runs["keras"]
    copy = shutil.copytree(run.run_dir, tmp_path / "copy")
    weights = {a["arm"]: read_weights(copy, a["arm"]) for a in run.arms}
    monkeypatch.setattr(kept, "MAX_WEIGHTS_BYTES", 1)
    chosen = recommended_setting(run)
    assert kept.keep_weights(copy, weights, [a["status"] for a in run.arms], recommended_setting) == [
        a["arm"] for a in run.arms if ArmRecord.of(a).setting == chosen]
    other = next(a for a in run.arms if ArmRecord.of(a).setting != chosen)
    with pytest.raises(RunDirError, match="keeps only the recommended setting's arms when all of them would take more than"):
        reglab.load_model(copy, ArmRecord.of(other).setting, other["seed"])
    assert_reproduces(reglab.load_run(copy), chosen, 5)
    assert json.loads((copy / "run.json").read_text())["status"] == "completed"
