"""Early stopping per arm: where Keras's EarlyStopping would stop, in both engines, and across a resume."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from helpers import Collect, StopAfter, small_splits
from helpers import record_values as values
from reglab._keras import keras
from reglab.config import SweepConfig
from reglab.engines import get_engine
from reglab.engines.fused import EarlyStopping

CONFIG = SweepConfig(lambdas=(0.0, 1e-2), seeds=1, seed=3, epochs=8, dataset="mnist-5k", early_stopping=1, restore_best=True)


def stopped_epochs(listener: Collect) -> dict[int, int]:
    return {arm: max(r.epoch for r in rs) for arm, rs in listener.by_arm().items()}


def keras_reference(splits, lam: float, seed: int):
    """The original study's code with Keras's EarlyStopping on the penalty-free validation loss."""
    from reglab.model.build import build_seed_model

    keras.utils.set_random_seed(seed)
    model = build_seed_model(splits.x_train.shape[1:], lam)
    stop = keras.callbacks.EarlyStopping(monitor="val_data_loss", mode="min", patience=CONFIG.early_stopping,
                                         restore_best_weights=True)
    history = model.fit(splits.x_train, splits.y_train, epochs=CONFIG.epochs, batch_size=32,
                        validation_data=(splits.x_val, splits.y_val), callbacks=[stop], verbose=0)
    return model, history


@pytest.fixture(scope="module")
def runs():
    splits = small_splits()
    out = {}
    for engine in ("fused", "keras"):
        listener = Collect()
        weights = get_engine(engine)(dataclasses.replace(CONFIG, engine=engine), splits, listener)
        out[engine] = (listener, weights)
    return splits, out


def test_both_engines_stop_where_keras_early_stopping_stops(runs):
    splits, out = runs
    for arm in CONFIG.arms():
        model, history = keras_reference(splits, arm.strength, arm.seed)
        want = len(history.history["loss"])
        for engine, (listener, weights) in out.items():
            assert stopped_epochs(listener)[arm.index] == want, (engine, arm)
            status = {a.index: s for a, s, _ in listener.finished}[arm.index]
            assert status == ("stopped" if want < CONFIG.epochs else "completed")
            for got, ref in zip(weights[arm.index].trainable, model.get_weights()):  # the best epoch's weights, restored
                np.testing.assert_allclose(got, ref, atol=1e-5 * float(np.max(np.abs(ref))))
    assert min(stopped_epochs(out["fused"][0]).values()) < CONFIG.epochs  # the test data do stop an arm early


def test_test_metrics_use_the_restored_weights(runs):
    splits, out = runs
    fused = {a.index: t for a, _, t in out["fused"][0].finished}
    keras_ = {a.index: t for a, _, t in out["keras"][0].finished}
    for arm in CONFIG.arms():
        assert fused[arm.index]["data_loss"] == pytest.approx(keras_[arm.index]["data_loss"], abs=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["fused", "keras"])
def test_early_stopping_survives_a_resume(runs, engine):
    splits, out = runs
    whole = out[engine][0]
    config = dataclasses.replace(CONFIG, engine=engine)
    first = StopAfter(2)
    with pytest.raises(KeyboardInterrupt):
        get_engine(engine)(config, splits, first)
    rest = Collect()
    weights = get_engine(engine)(config, splits, rest, resume=first.last_checkpoint)
    done = {int(a): e for a, e in first.last_checkpoint[1]["epochs_done"].items()}
    kept = [r for r in first.records if r.epoch <= done.get(r.arm, 0)]
    assert sorted(map(values, kept + rest.records)) == sorted(map(values, whole.records))
    for arm, ws in out[engine][1].items():
        for a, b in zip(ws.trainable + ws.non_trainable, weights[arm].trainable + weights[arm].non_trainable, strict=True):
            np.testing.assert_array_equal(a, b)


def test_the_rule_is_kerass():
    es = EarlyStopping(patience=2, shape=(1, 1))
    active = np.ones((1, 1), dtype=bool)
    seq = [0.5, 0.4, 0.45, 0.39, 0.5, 0.6]  # improves at 1, 2, 4; stops at 6: two epochs without improvement
    stops = []
    for epoch, v in enumerate(seq, start=1):
        improved, stop = es.update(epoch, np.array([[v]]), active)
        active &= ~stop
        stops.append(bool(stop[0, 0]))
    assert stops == [False] * 5 + [True] and es.best_epoch[0, 0] == 4 and es.stopped_epoch[0, 0] == 6
    nan = EarlyStopping(patience=1, shape=(1, 1))  # NaN is never an improvement, as in Keras
    nan.update(1, np.array([[0.3]]), np.ones((1, 1), dtype=bool))
    assert nan.update(2, np.array([[np.nan]]), np.ones((1, 1), dtype=bool))[1][0, 0]
