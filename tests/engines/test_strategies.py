"""Every strategy of the fused engine trains any model step for step as Keras's `fit` does: a CNN, an MLP
with Dropout (whose layers draw from per-seed RNG state) and a model with BatchNormalization (non-trainable
state updated by every step), each with 2 seeds and 2 strengths."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest

from helpers import BATCHNORM_MODEL, Collect, small_splits
from reglab.config import SweepConfig
from reglab.engines import fused, get_engine
from reglab.engines import workers as engine_workers

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


#: Per-arm strategies run Keras's own step, unbatched: training metrics bit for bit, evaluation means
#: (summed in calls of 1,000 rows rather than batches of 32) within ~2e-7. Vmapped arms sum in another
#: order; with BatchNormalization the moving statistics carry that into val_loss (3.4e-5 after two epochs).
#: Either way far below the 1e-2 of a wrong seed's Dropout state.
TOLERANCE = {"vmap": dict(rel=1e-4, abs=1e-5), "per-arm-steps": dict(rel=1e-6, abs=1e-7), "per-arm-chunks": dict(rel=1e-6, abs=1e-7)}

COLUMNS = ("loss", "val_loss", "accuracy", "val_accuracy", "data_loss", "val_data_loss", "penalty")


def model_spec(name: str, tmp_path_factory) -> str:
    if name == "batchnorm":
        path = tmp_path_factory.getbasetemp() / "batchnorm_model.py"
        path.write_text(BATCHNORM_MODEL)
        return f"{path}:build_model"
    return f"{EXAMPLES / name}:build_model"


def config_for(spec: str, engine: str) -> SweepConfig:
    return SweepConfig(lambdas=(0.0, 1e-3), seeds=2, seed=3, epochs=2, dataset="mnist-5k", model=spec, engine=engine)


@functools.lru_cache(maxsize=None)
def keras_records(spec: str) -> dict:
    listener = Collect()
    get_engine("keras")(config_for(spec, "keras"), small_splits(), listener)
    return {(r.arm, r.epoch): r for r in listener.records}


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cnn.py", "mlp_dropout.py", "batchnorm"])
@pytest.mark.parametrize("strategy", ["vmap", "per-arm-steps", "per-arm-chunks"])
def test_every_strategy_trains_as_fit_does_with_two_seeds_and_two_strengths(model, strategy, tmp_path_factory):
    spec = model_spec(model, tmp_path_factory)
    listener = Collect()
    fused.train(config_for(spec, "fused"), small_splits(), listener, strategy=strategy)
    got = {(r.arm, r.epoch): r for r in listener.records}
    want = keras_records(spec)
    assert got.keys() == want.keys() and len(got) == 8
    for key, a in got.items():
        b = want[key]
        for col in COLUMNS:
            assert getattr(a, col) == pytest.approx(getattr(b, col), **TOLERANCE[strategy]), (model, strategy, key, col)
        assert a.kernel_norm == pytest.approx(b.kernel_norm, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["per-arm-steps", "per-arm-chunks"])
def test_per_arm_records_do_not_depend_on_how_many_workers_share_the_arms(strategy, monkeypatch, tmp_path_factory):
    """Workers only schedule arms on threads: 1 or 3 workers give the same record and weights, bit for bit."""
    spec = model_spec("mlp_dropout.py", tmp_path_factory)
    config = dataclasses.replace(config_for(spec, "fused"), lambdas=(0.0, 1e-3, 1e-2), epochs=1)
    runs = []
    for workers in (1, 3):
        monkeypatch.setattr(engine_workers, "WORKERS", workers)
        listener = Collect()
        weights = fused.train(config, small_splits(), listener, strategy=strategy)
        runs.append(([dataclasses.replace(r, seconds=0.0) for r in listener.records], listener.finished, weights))
    assert runs[1][0] == runs[0][0] and runs[1][1] == runs[0][1] and len(runs[0][0]) == 6
    assert all(np.array_equal(x, y) for i in runs[0][2] for x, y in zip(runs[0][2][i].trainable + runs[0][2][i].non_trainable,
                                                                  runs[1][2][i].trainable + runs[1][2][i].non_trainable))


@pytest.mark.slow
def test_the_rule_picks_a_strategy_by_model_and_backend():
    from reglab.model.build import build_model

    cnn = build_model(f"{EXAMPLES / 'cnn.py'}:build_model", (28, 28), 0.0)
    mlp = build_model(f"{EXAMPLES / 'mlp_dropout.py'}:build_model", (28, 28), 0.0)
    original = build_model("", (28, 28), 0.0)
    assert [fused.strategy_for(m, "cpu") for m in (original, cnn, mlp)] == ["packed", "per-arm-steps", "per-arm-chunks"]
    assert [fused.strategy_for(m, "gpu") for m in (original, cnn, mlp)] == ["packed", "vmap", "vmap"]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["per-arm-chunks", pytest.param("vmap", marks=pytest.mark.slow)])
def test_a_checkpoint_resumes_bit_for_bit_and_only_with_its_own_strategy(strategy, tmp_path_factory):
    """Dropout's RNG state travels in the checkpoint: epoch 2 after a resume is epoch 2 without one."""
    from reglab.errors import RunDirError

    config = config_for(model_spec("mlp_dropout.py", tmp_path_factory), "fused")
    whole = Collect()
    fused.train(config, small_splits(), whole, strategy=strategy)
    first = Collect()
    fused.train(dataclasses.replace(config, epochs=1), small_splits(), first, strategy=strategy)
    resumed = Collect()
    fused.train(config, small_splits(), resumed, strategy=strategy, resume=first.last_checkpoint)
    strip = lambda records: [dataclasses.replace(r, seconds=0.0) for r in records]  # noqa: E731
    assert strip(first.records + resumed.records) == strip(whole.records) and resumed.finished == whole.finished
    other = "per-arm-steps" if strategy == "per-arm-chunks" else "per-arm-chunks"
    with pytest.raises(RunDirError, match=f"written by the {strategy} strategy; this run uses {other}"):
        fused.train(config, small_splits(), Collect(), strategy=other, resume=first.last_checkpoint)
