"""Per-example validation values: every engine's agree with its own metrics and with Keras, validation.npz
holds them as documented, a resumed run writes the same file, and a damaged file is refused in one line.
Also: the input features that are constant over the training data (`DataInfo.constant_inputs`)."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import Collect, mnist5k
from reglab._keras import keras
from reglab.config import Arm, SweepConfig
from reglab.data.datasets import load_dataset
from reglab.data.splits import DataInfo, Splits
from reglab.engines import fused, packed
from reglab.engines.keras_fit import train_arm
from reglab.errors import RunDirError, RunInterrupted
from reglab.model.build import build_seed_model
from reglab.record import checks as recordcheck
from reglab.record.arrays import ValidationStore, ValidationValues, read_validation
from reglab.record.checkpoint import CHECKPOINT_NPZ, read_checkpoint, write_checkpoint
from reglab.record.checks import check_meta
from reglab.record.reader import load_run
from reglab.record.rundir import TOP_LEVEL, read_manifest
from reglab.record.schema import VALIDATION_NPZ, read_metrics
from reglab.run import runner
from reglab.run.listeners import RecordListener


def mixed_splits(n_train: int = 300, n_val: int = 100, n_test: int = 64) -> Splits:
    """Every 10th image of the 5k digits (all ten classes; the first 300 are all zeros). 100 validation
    examples at batch 32 leave a partial last validation batch of 4."""
    s = mnist5k()
    pick = lambda a, n: a[::10][:n]  # noqa: E731
    info = DataInfo(**{**s.info.to_dict(), "input_shape": s.info.input_shape, "n_train": n_train, "n_val": n_val,
                       "n_test": n_test})
    return Splits(pick(s.x_train, n_train), pick(s.y_train, n_train), pick(s.x_val, n_val), pick(s.y_val, n_val),
                  pick(s.x_test, n_test), pick(s.y_test, n_test), info)


class Values(Collect):
    """A listener that also takes the per-example validation values: (arm, epoch) → (loss, correct)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def validation_values(self, epoch, arms, loss, correct):
        assert loss.dtype == np.float32 and correct.dtype == bool and loss.shape == correct.shape == (len(arms), loss.shape[1])
        for i, arm in enumerate(arms):
            assert (arm, epoch) not in self.values
            self.values[(arm, epoch)] = (loss[i].copy(), correct[i].copy())


def keras_values(splits: Splits, model) -> tuple[np.ndarray, np.ndarray]:
    """The reference: Keras's own loss function and accuracy on `model.predict`."""
    y_pred = model.predict(splits.x_val, verbose=0)
    loss = np.asarray(keras.losses.sparse_categorical_crossentropy(splits.y_val, y_pred))
    return loss, np.argmax(y_pred, axis=-1) == splits.y_val


def assert_values_match_records(listener: Values, n_val: int) -> None:
    assert len(listener.values) == len(listener.records)
    for r in listener.records:
        loss, correct = listener.values[(r.arm, r.epoch)]
        assert loss.shape == (n_val,)
        assert np.mean(loss, dtype=np.float64) == pytest.approx(r.val_data_loss, rel=2e-6, abs=1e-7), (r.arm, r.epoch)
        assert np.mean(correct) == pytest.approx(r.val_accuracy, abs=1e-6), (r.arm, r.epoch)


# ---------------------------------------------------------------- engines

@pytest.mark.parametrize("strategy, group", [("packed", None), pytest.param("packed", 2, marks=pytest.mark.slow),
                                             pytest.param("vmap", None, marks=pytest.mark.slow)])
@pytest.mark.slow
def test_fused_values_are_its_metrics_per_example_and_keras_s(strategy, group, monkeypatch):
    if group:
        monkeypatch.setattr(packed, "MAX_PACKED_ARMS", group)
    splits = mixed_splits()
    config = SweepConfig(lambdas=(0.0, 1e-3, 1e-2), seeds=2, seed=5, epochs=2, dataset="mnist-5k", engine="fused")
    listener = Values()
    weights = fused.train(config, splits, listener, strategy=strategy)
    assert_values_match_records(listener, len(splits.x_val))
    assert 0.3 < np.mean([r.val_accuracy for r in listener.records]) < 1.0  # a real mix of right and wrong
    for arm in config.arms():
        model = build_seed_model(splits.x_train.shape[1:], arm.strength)
        model.set_weights(weights[arm.index].trainable)
        want_loss, want_correct = keras_values(splits, model)
        loss, correct = listener.values[(arm.index, 2)]
        np.testing.assert_allclose(loss, want_loss, rtol=1e-5, atol=1e-6)
        assert np.array_equal(correct, want_correct) or np.mean(correct != want_correct) <= 0.01  # a near tie may flip


@pytest.mark.slow
def test_fused_sends_nothing_to_a_listener_without_the_hook():
    config = SweepConfig(lambdas=(0.0,), seeds=1, seed=5, epochs=1, dataset="mnist-5k", engine="fused")
    plain, with_values = Collect(), Values()
    fused.train(config, mixed_splits(), plain)
    fused.train(config, mixed_splits(), with_values)
    strip = lambda rs: [dataclasses.replace(r, seconds=0.0) for r in rs]  # noqa: E731
    assert strip(plain.records) == strip(with_values.records)  # the values change no metric


@pytest.mark.slow
def test_keras_values_are_keras_s_on_predict_and_leave_fit_untouched():
    """Per-example values from the model's own forward pass equal Keras's loss on `model.predict`, their means
    are the History's val_data_loss and val_accuracy, and the training is bit for bit a bare fit's."""
    from helpers import original_study_fit

    splits = mixed_splits()
    config = SweepConfig(lambdas=(1e-3,), seeds=1, epochs=2, batch_size=32, dataset="mnist-5k", engine="keras")
    listener = Values()
    history = train_arm(config, splits, Arm(0, 1e-3, 3), listener)
    assert_values_match_records(listener, len(splits.x_val))
    want_loss, want_correct = keras_values(splits, history.model)
    loss, correct = listener.values[(0, 2)]
    np.testing.assert_array_equal(loss, want_loss)
    np.testing.assert_array_equal(correct, want_correct)
    _, bare = original_study_fit(splits, 1e-3, seed=3, epochs=2)
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        assert [getattr(r, key) for r in listener.records] == bare.history[key], key


# ---------------------------------------------------------------- validation.npz through a whole run

N_VAL = 60  # the last sixth of the data file's 360 training images


_DATA: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def data_file(tmp_path_factory) -> Path:
    """An .npz of 360 of the 5k training digits, all ten classes in both splits (a resumed run loads its
    data by name, so the runs here use a file)."""
    s = mnist5k()
    pick = np.random.default_rng(0).permutation(len(s.x_train))[:360]
    path = tmp_path_factory.mktemp("data") / "mixed.npz"
    np.savez(path, x_train=s.x_train[pick], y_train=s.y_train[pick], x_test=s.x_test[::10][:64], y_test=s.y_test[::10][:64])
    _DATA[:] = [path]
    return path


def sweep(engine: str, **changes) -> SweepConfig:
    base = dict(lambdas=(0.0, 1e-2), seeds=1, seed=3, epochs=3, dataset=str(_DATA[0]), engine=engine)
    return SweepConfig(**{**base, **changes})


def run(config: SweepConfig, out: Path, **kwargs):
    return runner.run_sweep(config, out, make_report=False, live=False, **kwargs)


def npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("engine, executor", [("fused", "local"), pytest.param("keras", "local", marks=pytest.mark.slow), ("fused", "blocks")])
def test_validation_npz_holds_every_arm_s_values_as_metrics_csv_says(engine, executor, tmp_path):
    kwargs = {"executor": "blocks", "blocks": 2} if executor == "blocks" else {}
    record = run(sweep(engine, seeds=2), tmp_path / "run", **kwargs)
    n_arms, n_val = len(record.arms), record.data.n_val
    arrays = npz(tmp_path / "run" / VALIDATION_NPZ)
    assert {k: (v.dtype.str, v.shape) for k, v in arrays.items()} == {
        "final_loss": ("<f4", (n_arms, n_val)), "correct": ("|b1", (n_arms, n_val)), "has_values": ("|b1", (n_arms,)),
        "loss_by_epoch": ("<f4", (n_arms, 3, n_val))}
    values = record.validation()
    assert isinstance(values, ValidationValues) and values.has_values.all() and n_val == N_VAL
    assert 0.3 < values.correct.mean() < 1.0
    for r in record.epochs:
        at = values.at(r.arm, r.epoch)
        assert np.mean(at, dtype=np.float64) == pytest.approx(r.val_data_loss, rel=2e-6, abs=1e-7)
        if r.epoch == 3:
            np.testing.assert_array_equal(values.final(r.arm), at)
            assert np.mean(values.correct[r.arm]) == pytest.approx(r.val_accuracy, abs=1e-6)
    assert values.at(0, 4) is None and values.at(0, 0) is None
    assert VALIDATION_NPZ in TOP_LEVEL and VALIDATION_NPZ in read_manifest(tmp_path / "run")


def test_a_diverged_arm_has_no_final_values_and_keeps_its_recorded_epochs(tmp_path):
    record = run(sweep("fused", lambdas=(1e-3, 1e38), epochs=2), tmp_path / "run")
    assert [a["status"] for a in record.arms] == ["completed", "diverged"]
    values = record.validation()
    assert values.has_values.tolist() == [True, False]
    assert np.isnan(values.final_loss[1]).all() and not values.correct[1].any() and values.final(1) is None
    assert values.final(0) is not None
    assert np.isnan(values.loss_by_epoch[1, 1]).all()  # not trained after it diverged in epoch 1
    assert values.at(1, 2) is None


def test_an_arm_stopped_early_has_nan_for_the_epochs_it_did_not_train(tmp_path):
    record = run(sweep("fused", lambdas=(0.0,), epochs=12, early_stopping=1), tmp_path / "run")
    epochs = record.arms[0]["epochs_done"]
    assert record.arms[0]["status"] == "stopped" and epochs < 12, "the arm did not stop early; pick another setting"
    values = record.validation()
    assert values.at(0, epochs) is not None and values.at(0, epochs + 1) is None
    np.testing.assert_array_equal(values.final(0), values.at(0, epochs))


def test_above_max_epoch_values_only_the_last_epoch_is_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(recordcheck, "MAX_EPOCH_VALUES", 2 * 3 * N_VAL - 1)  # one value fewer than this run has
    record = run(sweep("fused"), tmp_path / "run")
    assert "loss_by_epoch" not in npz(tmp_path / "run" / VALIDATION_NPZ)
    values = record.validation()
    assert values.loss_by_epoch is None and values.at(0, 3) is None
    last = [r for r in record.epochs if r.epoch == 3]
    assert [np.mean(values.final(r.arm), dtype=np.float64) for r in last] == pytest.approx([r.val_data_loss for r in last], rel=2e-6)


# ---------------------------------------------------------------- resume

class _Kill(Exception):
    pass


def interrupted_run(config: SweepConfig, out: Path, before_checkpoint: int, monkeypatch, **kwargs) -> None:
    """Stop the run as a kill would, just before its n-th checkpoint is written: that epoch's rows are already
    in metrics.csv and its values in memory, the checkpoint on disk is the previous one."""
    calls = {"n": 0}
    original = RecordListener.checkpoint

    def checkpoint(self, arrays, meta):
        calls["n"] += 1
        if calls["n"] == before_checkpoint:
            raise KeyboardInterrupt
        original(self, arrays, meta)

    with monkeypatch.context() as m:
        m.setattr(RecordListener, "checkpoint", checkpoint)
        with pytest.raises(RunInterrupted):
            run(config, out, **kwargs)
    assert not (out / VALIDATION_NPZ).exists()


# fused: one checkpoint per epoch; keras: one per epoch of the arm in progress and one as each arm ends
# (the SIGKILL tests of test_resume_fused.py and test_resume_keras.py also compare validation.npz after resuming from random moments)
@pytest.mark.parametrize("engine, executor, stop", [("fused", "local", 2), pytest.param("keras", "local", 3, marks=pytest.mark.slow),
                                                         ("fused", "blocks", 3)])
def test_a_resumed_run_writes_the_validation_npz_of_an_uninterrupted_one(engine, executor, stop, tmp_path, monkeypatch):
    kwargs = {"executor": "blocks", "blocks": 2} if executor == "blocks" else {}
    if executor == "blocks":
        monkeypatch.setattr("reglab.run.cluster.CHECKPOINT_SECONDS", 0.0)  # the combined checkpoint after every epoch
    config = sweep(engine)
    run(config, tmp_path / "whole", **kwargs)
    interrupted_run(config, tmp_path / "part", stop, monkeypatch, **kwargs)
    checkpoint = read_checkpoint(tmp_path / "part")
    if checkpoint is not None:
        assert any(k.startswith(ValidationStore.PREFIX) for k in checkpoint[0])
    runner.resume_sweep(tmp_path / "part", make_report=False, live=False)
    whole, part = (tmp_path / "whole" / VALIDATION_NPZ).read_bytes(), (tmp_path / "part" / VALIDATION_NPZ).read_bytes()
    assert part == whole  # the same bytes: same values, bit for bit
    assert load_run(tmp_path / "part").validation().has_values.all()


def test_a_checkpoint_whose_values_do_not_cover_its_epochs_is_refused(tmp_path, monkeypatch):
    d = tmp_path / "part"
    interrupted_run(sweep("fused"), d, 3, monkeypatch)
    arrays, meta = read_checkpoint(d)
    arrays["validation:last_epoch"] = np.zeros_like(arrays["validation:last_epoch"])
    write_checkpoint(d, arrays, {k: v for k, v in meta.items() if k != "layout"})
    before = (d / "metrics.csv").read_bytes()
    with pytest.raises(RunDirError) as e:
        runner.resume_sweep(d, make_report=False, live=False)
    assert str(e.value).count("\n") == 0 and CHECKPOINT_NPZ in str(e.value) and "validation values" in str(e.value)
    assert "arm 0's values end at epoch 0" in str(e.value)
    assert (d / "metrics.csv").read_bytes() == before  # refused before the record was touched


def test_a_checkpoint_from_before_per_example_values_still_resumes(tmp_path, monkeypatch):
    d = tmp_path / "part"
    interrupted_run(sweep("fused"), d, 3, monkeypatch)
    arrays, meta = read_checkpoint(d)
    write_checkpoint(d, ValidationStore.split_checkpoint(arrays)[1], {k: v for k, v in meta.items() if k != "layout"})
    values = runner.resume_sweep(d, make_report=False, live=False).validation()
    assert values.has_values.all()  # the last epoch was trained after the resume
    assert values.at(0, 1) is None and values.at(0, 3) is not None  # epochs before the resume have no values


# ---------------------------------------------------------------- the reader

@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    run(sweep("fused", epochs=2), out)
    return out


def rewrite(run_dir: Path, arrays: dict[str, np.ndarray]) -> None:
    np.savez(run_dir / VALIDATION_NPZ, **arrays)


def copy_of(src: Path, tmp_path: Path) -> Path:
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".reglab.lock"))
    return dst


@pytest.mark.parametrize("damage, needle", [
    (lambda a: {**a, "final_loss": a["final_loss"][:, :-1]}, "array 'final_loss' is <f4 (2, 59), but run.json calls for <f4 (2, 60)"),
    (lambda a: {**a, "loss_by_epoch": a["loss_by_epoch"][:, :1]}, "array 'loss_by_epoch' is <f4 (2, 1, 60)"),
    (lambda a: {**a, "correct": a["correct"].astype(np.float32)}, "array 'correct' is <f4 (2, 60)"),
    (lambda a: {k: v for k, v in a.items() if k != "has_values"}, "array 'has_values' is missing"),
    (lambda a: {**a, "extra": np.zeros(3)}, "array 'extra' is not one reglab writes"),
    (lambda a: {**a, "final_loss": -a["final_loss"]}, "final_loss holds a negative loss (arm 0)"),
    (lambda a: {**a, "final_loss": np.full_like(a["final_loss"], np.nan)}, "has_values says arm 0 has values"),
])
def test_a_wrong_validation_file_is_refused_in_one_line(finished, tmp_path, damage, needle):
    d = copy_of(finished, tmp_path)
    rewrite(d, damage(npz(d / VALIDATION_NPZ)))
    with pytest.raises(RunDirError) as e:
        load_run(d).validation()
    message = str(e.value)
    assert message.count("\n") == 0 and message.startswith(str(d / VALIDATION_NPZ)) and needle in message, message


@pytest.mark.parametrize("content", [b"", b"not a zip archive", b"PK\x03\x04 truncated"])
def test_a_corrupt_validation_file_is_refused_in_one_line(finished, tmp_path, content):
    d = copy_of(finished, tmp_path)
    (d / VALIDATION_NPZ).write_bytes(content)
    with pytest.raises(RunDirError) as e:
        read_validation(d)
    assert str(e.value).count("\n") == 0 and str(d / VALIDATION_NPZ) in str(e.value)


def test_a_validation_file_that_is_not_a_regular_file_is_refused(finished, tmp_path):
    d = copy_of(finished, tmp_path)
    (d / VALIDATION_NPZ).unlink()
    (d / VALIDATION_NPZ).mkdir()
    with pytest.raises(RunDirError, match="not a regular file"):
        read_validation(d)


def test_a_record_without_validation_npz_reads_as_none(finished, tmp_path):
    d = copy_of(finished, tmp_path)
    (d / VALIDATION_NPZ).unlink()
    assert load_run(d).validation() is None and read_validation(d) is None


def test_final_and_at_answer_none_where_nothing_was_recorded():
    nan = np.float32(np.nan)
    values = ValidationValues(
        final_loss=np.array([[0.5, 1.5], [nan, nan]], np.float32), correct=np.array([[True, False], [False, False]]),
        has_values=np.array([True, False]),
        loss_by_epoch=np.array([[[0.7, 1.7], [0.5, 1.5]], [[0.9, nan], [nan, nan]]], np.float32))
    assert values.final(0).tolist() == [0.5, 1.5] and values.final(1) is None
    assert values.at(0, 1).tolist() == pytest.approx([0.7, 1.7]) and values.at(1, 1) is None and values.at(1, 2) is None
    assert values.at(0, 0) is None and values.at(0, 3) is None
    assert values._replace(loss_by_epoch=None).at(0, 1) is None
    assert values.loss is values.final_loss


def test_the_store_refuses_values_of_the_wrong_shape():
    store = ValidationStore(n_arms=2, epochs=3, n_val=4)
    with pytest.raises(ValueError):
        store.add(1, [0], np.zeros((1, 5), np.float32), np.zeros((1, 5), bool))
    with pytest.raises(ValueError):
        store.add(4, [0], np.zeros((1, 4), np.float32), np.zeros((1, 4), bool))
    store.add(2, [1], np.ones((1, 4), np.float32), np.ones((1, 4), bool))
    values = store.values()
    assert values.has_values.tolist() == [False, True] and values.at(1, 2).tolist() == [1.0] * 4 and values.at(1, 1) is None


# ---------------------------------------------------------------- constant inputs

def test_constant_inputs_are_the_features_with_one_value_over_the_training_data(tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.integers(1, 256, (60, 4, 5), dtype=np.uint8)
    x_train[:, :, 0] = 0  # a blank first column: flattened indices 0, 5, 10, 15
    x_train[:, 2, 3] = 7  # one pixel always 7: index 13
    x_test = rng.integers(0, 256, (10, 4, 5), dtype=np.uint8)  # the test set does not count
    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=x_train, y_train=np.arange(60) % 10, x_test=x_test, y_test=np.arange(10) % 10)
    splits = load_dataset(str(path))
    # the last sixth of x_train is the validation split; only the 50 training images count
    assert splits.info.constant_inputs == (0, 5, 10, 13, 15)
    flat = splits.x_train.reshape(len(splits.x_train), -1)
    assert all(len(np.unique(flat[:, i])) == 1 for i in splits.info.constant_inputs)
    assert all(len(np.unique(flat[:, i])) > 1 for i in set(range(20)) - set(splits.info.constant_inputs))
    d = splits.info.to_dict()
    assert d["constant_inputs"] == [0, 5, 10, 13, 15] and json.loads(json.dumps(d)) == d
    assert DataInfo.from_dict(json.loads(json.dumps(d))) == splits.info


def test_mnist_has_blank_border_pixels():
    info = mnist5k().info
    assert 0 in info.constant_inputs and 27 in info.constant_inputs and (14 * 28 + 14) not in info.constant_inputs


def test_a_run_json_without_constant_inputs_still_loads(finished, data_file, tmp_path):
    d = copy_of(finished, tmp_path)
    meta = json.loads((d / "run.json").read_text())
    assert meta["data"]["constant_inputs"] == list(load_dataset(str(data_file)).info.constant_inputs)
    del meta["data"]["constant_inputs"]
    (d / "run.json").write_text(json.dumps(meta))
    assert load_run(d).data.constant_inputs == ()


@pytest.mark.parametrize("value", ["0,1", [0, 784], [-1], [1.5], [True], [3, 3], None])
def test_check_meta_refuses_constant_inputs_that_are_not_input_indices(finished, value):
    meta = json.loads((finished / "run.json").read_text())
    meta["data"]["constant_inputs"] = value
    with pytest.raises(RunDirError) as e:
        check_meta(meta, "run.json")
    assert str(e.value).startswith("run.json: field data.constant_inputs must be a list of distinct input indices from 0 to 783")
    assert str(e.value).count("\n") == 0


def test_metrics_rows_of_the_finished_run_are_untouched(finished):
    """validation.npz sits beside the record; metrics.csv keeps its columns."""
    rows = list(read_metrics(finished / "metrics.csv", n_arms=2))
    assert len(rows) == 4
    assert zipfile.is_zipfile(finished / VALIDATION_NPZ)
