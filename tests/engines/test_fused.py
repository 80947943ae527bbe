"""The fused engine against Keras `fit`: the same weights and metrics, step for step, for every arm."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from helpers import Collect, assert_trains_like_fit, original_study_fit, small_splits
from reglab._keras import keras
from reglab.config import SweepConfig
from reglab.engines import fused, packed, packing
from reglab.engines import workers as engine_workers
from reglab.engines.arm_status import ArmStatus, ArmStatuses
from reglab.model.build import build_seed_model

LAMBDAS = (0.0, 1e-3, 1e-2)


def run_fused(lambdas=LAMBDAS, seeds=2, epochs=2, strategy="auto", splits=None):
    config = SweepConfig(lambdas=lambdas, seeds=seeds, seed=5, epochs=epochs, dataset="mnist-5k", engine="fused")
    listener = Collect()
    weights = fused.train(config, splits or small_splits(), listener, strategy=strategy)
    return config, listener, weights


@pytest.mark.parametrize("strategy, group", [("packed", None), *(pytest.param(*p, marks=pytest.mark.slow)
                                                                for p in [("packed", 25), ("packed", 2), ("vmap", None)])])
@pytest.mark.slow
def test_every_arm_matches_keras_fit_step_for_step(strategy, group, monkeypatch):
    """Same seeds → same initial weights and the same shuffled batches as `fit`; after 2 epochs of
    300 samples (10 steps each, the last one partial), weights agree to 1e-5 of each tensor's scale.
    Packed groups: the backend's default (one arm each on a CPU), all 3 λ of a seed in one, and 2 + 1."""
    if group:
        monkeypatch.setattr(packed, "MAX_PACKED_ARMS", group)
    splits = small_splits()
    config, listener, weights = run_fused(strategy=strategy, splits=splits)
    records = listener.by_arm()
    assert len(weights) == len(config.arms()) == 6
    for arm in config.arms():
        model, history = original_study_fit(splits, arm.strength, arm.seed, epochs=2)
        assert_trains_like_fit((arm, strategy), weights[arm.index].trainable, records[arm.index], model, history)


def test_val_loss_is_data_loss_plus_penalty_and_test_metrics_are_kept():
    config, listener, _ = run_fused(seeds=1)
    for r in listener.records:
        assert r.val_loss == pytest.approx(r.val_data_loss + r.penalty, rel=2e-6, abs=1e-6)
        assert r.penalty == pytest.approx(r.strength * r.kernel_norm**2, rel=1e-5)
    assert [status for _, status, _ in listener.finished] == ["completed"] * 3
    assert all(0 < test["accuracy"] <= 1 and test["data_loss"] > 0 for _, _, test in listener.finished)


def test_same_config_gives_the_same_record():
    strip = lambda records: [dataclasses.replace(r, seconds=0.0) for r in records]  # noqa: E731
    _, a, wa = run_fused(seeds=1)
    _, b, wb = run_fused(seeds=1)
    assert strip(a.records) == strip(b.records)
    assert all(np.array_equal(x, y) for i in wa for x, y in zip(wa[i].trainable, wb[i].trainable))


def test_a_diverging_arm_stops_and_leaves_the_others_untouched():
    _, calm, _ = run_fused(lambdas=(1e-3, 1e-2), seeds=1, epochs=3)
    _, wild, weights = run_fused(lambdas=(1e-3, 1e38), seeds=1, epochs=3)
    assert [s for _, s, _ in wild.finished] == ["completed", "diverged"]
    diverged = [r for r in wild.records if r.arm == 1]
    assert len(diverged) == 1 and not np.isfinite(diverged[0].loss)
    strip = lambda rs: [dataclasses.replace(r, seconds=0.0) for r in rs if r.arm == 0]  # noqa: E731
    assert strip(wild.records) == strip(calm.records)


def test_arm_statuses_are_spelled_as_run_json_and_old_checkpoints_spell_them():
    """Checkpoints have always written an arm still training as "completed": such rows still resume, the
    arm training; the listener hears the same strings as ever."""
    assert [s.recorded for s in ArmStatus] == ["completed", "completed", "diverged", "stopped"]
    old = [["completed", "diverged"], ["stopped", "completed"]]
    statuses = ArmStatuses.from_recorded(old, (2, 2))
    assert statuses[0, 0] is ArmStatus.TRAINING and statuses[1, 0] is ArmStatus.STOPPED_EARLY
    assert statuses.training_mask().tolist() == [[True, False], [False, True]]
    assert statuses.to_recorded() == old
    statuses.mark(np.array([[False, False], [False, True]]), ArmStatus.STOPPED_EARLY)
    statuses.finish()
    assert [[statuses[i, j] for j in range(2)] for i in range(2)] == [
        [ArmStatus.COMPLETED, ArmStatus.DIVERGED], [ArmStatus.STOPPED_EARLY, ArmStatus.STOPPED_EARLY]]
    assert statuses.to_recorded() == [["completed", "diverged"], ["stopped", "stopped"]]
    for bad in (["completed"], [["training", "completed"], ["completed", "completed"]]):
        with pytest.raises(ValueError):
            ArmStatuses.from_recorded(bad, (2, 2))


def test_the_checkpoint_writes_statuses_as_strings_and_a_diverged_arm_stays_diverged_on_resume():
    """The checkpoint's `status` rows are the strings they always were; resuming from one gives the rest of
    the run, the diverged arm included, exactly as the uninterrupted run."""
    config = SweepConfig(lambdas=(1e-3, 1e38), seeds=1, seed=5, epochs=3, dataset="mnist-5k", engine="fused")
    splits = small_splits()

    class Keep(Collect):
        def __init__(self):
            super().__init__()
            self.kept = []

        def checkpoint(self, arrays, meta):
            self.kept.append((arrays, meta))

    whole = Keep()
    fused.train(config, splits, whole)
    arrays, meta = whole.kept[0]
    assert meta["status"] == [["completed", "diverged"]] and meta["epochs_done"] == {"0": 1, "1": 1}
    rest = Collect()
    fused.train(config, splits, rest, resume=(arrays, meta))
    strip = lambda rs: [dataclasses.replace(r, seconds=0.0) for r in rs]  # noqa: E731
    assert strip(rest.records) == strip([r for r in whole.records if r.epoch > 1])
    assert [(a, s) for a, s, _ in rest.finished] == [(a, s) for a, s, _ in whole.finished]
    assert [s for _, s, _ in rest.finished] == ["completed", "diverged"]
    np.testing.assert_equal([t for _, _, t in rest.finished], [t for _, _, t in whole.finished])  # NaN for the diverged arm


def test_packing_round_trips_and_computes_what_each_arm_computes():
    keras.utils.set_random_seed(0)
    models = [build_seed_model((28, 28), lam) for lam in LAMBDAS]
    per_arm = [[np.asarray(v.value) for v in m.trainable_variables] for m in models]
    packed = packing.pack_model(models[0], len(models))
    values = packed.pack(per_arm)
    assert values[0].shape == (784, 3 * 128) and values[2].shape == (3, 128, 10)
    assert all(np.array_equal(a, b) for arm, back in zip(per_arm, packed.unpack(values)) for a, b in zip(arm, back))
    x = small_splits().x_val[:16]
    y_packed, _ = packed.model.stateless_call(values, [], x)
    for a, m in enumerate(models):
        np.testing.assert_allclose(np.asarray(y_packed)[:, a], np.asarray(m(x)), rtol=1e-5, atol=1e-7)
    assert [pv.regularized for pv in packed.variables] == [True, False, False, False]


def test_models_with_other_layers_are_not_packed():
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                              keras.layers.Dense(8, kernel_regularizer=keras.regularizers.l2(1e-3)),
                              keras.layers.Dropout(0.5), keras.layers.Dense(10, activation="softmax")])
    assert packing.pack_model(model, 2) is None


@pytest.mark.slow
@pytest.mark.parametrize("group", [None, pytest.param(2, marks=pytest.mark.slow)])
def test_the_record_does_not_depend_on_how_many_cores_share_the_work(group, monkeypatch):
    """Workers only schedule groups' calls on threads: 1 or 3 workers give the same record and weights, bit
    for bit (with 3, the 5 or 3 groups per seed go to whichever worker is free)."""
    monkeypatch.setattr(packed, "MAX_PACKED_ARMS", group)
    lambdas = (0.0, 1e-4, 1e-3, 1e-2, 3e-2)
    strip = lambda records: [dataclasses.replace(r, seconds=0.0) for r in records]  # noqa: E731
    runs = []
    for workers in (1, 3):
        monkeypatch.setattr(engine_workers, "WORKERS", workers)
        _, listener, weights = run_fused(lambdas=lambdas, seeds=2, epochs=1)
        runs.append((strip(listener.records), listener.finished, weights))
    for records, finished, weights in runs[1:]:
        assert records == runs[0][0] and finished == runs[0][1]
        assert all(np.array_equal(x, y) for i in weights for x, y in zip(weights[i].trainable, runs[0][2][i].trainable))


def test_split_evenly():
    assert packed.split_evenly(100, 25) == [(0, 25), (25, 50), (50, 75), (75, 100)]
    assert packed.split_evenly(30, 25) == [(0, 15), (15, 30)]
    assert packed.split_evenly(3, 25) == [(0, 3)]


def test_chunk_length_divides_the_epoch():
    assert fused.chunk_length(1562) == 142 and 1562 % 142 == 0
    assert fused.chunk_length(1563) == 521  # 50,000 samples at batch 32, the partial batch padded
    assert fused.chunk_length(94) == 94 and fused.chunk_length(1) == 1
    assert fused.chunk_length(1009) == 1009  # a prime, but small enough for one chunk
    assert fused.chunk_length(2003) == fused.CHUNK_STEPS  # a larger prime: one extra compile for the rest


def _plain_fit(splits, lam: float, seed: int, epochs: int, batch_size: int):
    """The original study's `fit`, at any batch size (`original_study_fit` is fixed at 32)."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=(28, 28)), keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu", kernel_regularizer=keras.regularizers.l2(lam)),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(splits.x_train, splits.y_train, epochs=epochs, batch_size=batch_size,
                        validation_data=(splits.x_val, splits.y_val), verbose=0)
    test = model.evaluate(splits.x_test, splits.y_test, batch_size=batch_size, verbose=0, return_dict=True)
    return model, history, test


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["packed", "vmap"])
def test_a_batch_above_the_data_size_is_kerass_one_batch_of_every_sample(strategy):
    """batch_size = 10 × n_train: Keras's `fit` trains one batch of all samples per epoch (and validates and
    tests in one batch each); the fused engine gives the same numbers with a batch clipped to the data, so
    nothing is allocated for the requested size. The validation set is larger than the training set here,
    so a validation batch clipped to the training set's size would show."""
    splits = small_splits(n_train=64, n_val=96, n_test=80)
    big = 10 * len(splits.x_train)
    config = SweepConfig(lambdas=(0.0, 1e-2), seeds=1, seed=5, epochs=3, batch_size=big, dataset="mnist-5k")
    listener = Collect()
    weights = fused.train(config, splits, listener, strategy=strategy)
    assert listener.steps == 1
    records = listener.by_arm()
    for arm in config.arms():
        model, history, test = _plain_fit(splits, arm.strength, arm.seed, 3, big)
        assert_trains_like_fit(arm, weights[arm.index].trainable, records[arm.index], model, history)
        _, _, ours = listener.finished[arm.index]
        np.testing.assert_allclose([ours["loss"], ours["accuracy"]], [test["loss"], test["accuracy"]], atol=1e-5)


@pytest.mark.slow
def test_the_keras_engine_with_a_batch_above_the_data_size_is_bit_for_bit_fit():
    """The reference engine clips its batch (training, validation, test) to each set's size: the same
    batches as `fit(batch_size=10 × n_train)`, so the same numbers to the bit."""
    from reglab.engines import keras_fit

    splits = small_splits(n_train=64, n_val=96, n_test=80)
    big = 10 * len(splits.x_train)
    config = SweepConfig(lambdas=(1e-2,), seeds=1, seed=5, epochs=2, batch_size=big, dataset="mnist-5k", engine="keras")
    listener = Collect()
    keras_fit.train(config, splits, listener)
    _, history, test = _plain_fit(splits, 1e-2, 5, 2, big)
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        assert [getattr(r, key) for r in listener.records] == history.history[key], key
    assert listener.steps == 1
    assert listener.finished[0][2]["loss"] == test["loss"] and listener.finished[0][2]["accuracy"] == test["accuracy"]
