"""Data beyond ten-class images: scikit-learn's bundled datasets, CSV files, any number of classes, tables
standardized with training statistics only, --validation-split, CIFAR-10's honest error, and user models
whose output width must match the class count."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reglab.data.datasets as ds
from helpers import assert_each_bad_input_is_one_line
from reglab.cli import main
from reglab.config import SweepConfig
from reglab.data.datasets import CIFAR10_CLASSES, load_dataset
from reglab.data.splits import DataOptions, stratified_holdout
from reglab.data.tables import BUNDLED, held_out_split
from reglab.errors import ConfigError, DataError

FAST = settings(max_examples=60, deadline=None)


# ---------------------------------------------------------------- scikit-learn's bundled datasets

def _raw(name: str) -> tuple[np.ndarray, np.ndarray]:
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, BUNDLED[name][0])()
    return np.asarray(bunch.images if name == "digits" else bunch.data), np.asarray(bunch.target)


@pytest.mark.parametrize("name, shape, k", [("digits", (8, 8), 10), ("breast_cancer", (30,), 2), ("wine", (13,), 3)])
def test_bundled_datasets_load_offline_split_stratified(name, shape, k):
    s = load_dataset(name)
    _, y = _raw(name)
    i = s.info
    assert i.input_shape == shape and i.n_classes == k and not i.labels_renumbered
    assert i.n_train + i.n_val + i.n_test == len(y) and (len(s.x_train), len(s.x_val), len(s.x_test)) == (i.n_train, i.n_val, i.n_test)
    assert i.n_test == round(0.2 * len(y)) and i.n_val == round((len(y) - i.n_test) / 6)
    assert "stratified and seeded" in i.split and "scikit-learn" in i.source
    for part in (s.y_train, s.y_val, s.y_test):  # each class in proportion, to within one sample of rounding per split
        expected = np.bincount(y, minlength=k) * len(part) / len(y)
        assert np.all(np.abs(np.bincount(part, minlength=k) - expected) <= 2), (name, np.bincount(part), expected)
    assert load_dataset(name).info.sha256 == i.sha256  # seeded: the same split every time


def test_digits_are_images_scaled_by_their_own_maximum():
    s = load_dataset("digits")
    assert s.x_train.dtype == np.float32 and s.x_train.min() == 0.0 and s.x_train.max() == 1.0
    assert s.info.scaling == "pixels 0–16 divided by 16" and not s.info.feature_mean
    assert s.info.classes == tuple(str(i) for i in range(10))


@pytest.mark.parametrize("name", ["breast_cancer", "wine"])
def test_tables_are_standardized_with_training_statistics_only(name):
    s = load_dataset(name)
    x, y = _raw(name)
    train, val, test, _ = held_out_split(y, None)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    np.testing.assert_allclose(s.info.feature_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(s.info.feature_std, std, rtol=1e-12)
    np.testing.assert_allclose(s.x_val, (x[val] - mean) / std, rtol=1e-5, atol=1e-5)  # the training split's statistics
    np.testing.assert_allclose(s.x_test, (x[test] - mean) / std, rtol=1e-5, atol=1e-5)
    assert not np.allclose(s.x_test.mean(axis=0), 0, atol=1e-3)  # not the test split's own
    assert "training split's mean and standard deviation" in s.info.scaling


# ---------------------------------------------------------------- CSV files

def five_class_csv(path: Path, n: int = 200, seed: int = 0, header_extra: str = "") -> Path:
    """A generated table: 4 numeric features (two far outside [0, 1]) and a string label column of 5 classes."""
    rng = np.random.default_rng(seed)
    names = np.array(["ant", "bee", "cat", "dog", "emu"])
    label = rng.integers(0, 5, n)
    x = rng.normal(size=(n, 4)) + label[:, None] * np.array([1.0, -1.0, 50.0, 0.0])
    x[:, 3] = 1000 + 10 * x[:, 3]
    lines = ["f1,f2,f3,species,f4" + header_extra]
    lines += [f"{a:.6f},{b:.6f},{c:.6f},{names[k]},{d:.6f}" for (a, b, c, d), k in zip(x, label)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_csv_with_string_labels_is_numbered_split_and_standardized(tmp_path):
    p = five_class_csv(tmp_path / "zoo.csv")
    s = load_dataset(str(p), DataOptions(target="species"))
    i = s.info
    assert i.classes == ("ant", "bee", "cat", "dog", "emu") and i.labels_renumbered and i.input_shape == (4,)
    assert (i.n_train, i.n_val, i.n_test) == (133, 27, 40) and "target column 'species'" in i.source
    assert len(i.feature_mean) == 4 and abs(float(np.mean(s.x_train[:, 2]))) < 1e-5
    raw = np.array([[float(v) for v in line.split(",")[:3] + line.split(",")[4:]]
                    for line in p.read_text().splitlines()[1:]])
    restored = np.concatenate([s.x_train, s.x_val, s.x_test]) * i.feature_std + i.feature_mean
    assert sorted(map(tuple, np.round(restored, 3))) == sorted(map(tuple, np.round(raw, 3)))  # every row in one split


def test_a_csv_test_file_is_the_test_set_and_validation_the_last_share(tmp_path):
    train = five_class_csv(tmp_path / "train.csv", n=120)
    test = five_class_csv(tmp_path / "test.csv", n=30, seed=1)
    s = load_dataset(str(train), DataOptions(target="species", test_file=str(test), validation_split=0.25))
    assert (s.info.n_train, s.info.n_val, s.info.n_test) == (90, 30, 30)
    assert "last 0.25 of the training file" in s.info.split and "test file" in s.info.source


def bad_csvs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    def csv(name: str, text: str) -> str:
        (tmp / name).write_text(text)
        return str(tmp / name)

    good = five_class_csv(tmp / "good.csv", n=30)
    return {
        "non-numeric column": (["--dataset", csv("color.csv", "a,color,y\n1,red,x\n2,blue,y\n3,red,x\n"), "--target", "y"],
                               "column 'color' is not numeric (row 1: 'red')"),
        "missing value": (["--dataset", csv("gap.csv", "a,b,y\n1,2,x\n3,,y\n4,5,x\n"), "--target", "y"],
                          "missing value in row 2 (line 3 of the file), column 'b'"),
        "missing label": (["--dataset", csv("nolabel.csv", "a,b,y\n1,2,x\n3,4,\n4,5,x\n"), "--target", "y"],
                          "missing value in row 2 (line 3 of the file), column 'y'"),
        "one class only": (["--dataset", csv("one.csv", "a,y\n1,x\n2,x\n3,x\n4,x\n5,x\n6,x\n"), "--target", "y"],
                           "1 class (every label is 'x'); a classifier needs at least 2"),
        "no such target": (["--dataset", str(good), "--target", "kind"], "no column 'kind' for --target"),
        "empty file": (["--dataset", csv("empty.csv", ""), "--target", "y"], "is empty"),
        "header only": (["--dataset", csv("header.csv", "a,b,y\n"), "--target", "y"], "has a header but no rows"),
        "no target given": (["--dataset", str(good)], "--target COLUMN"),
        "target for a non-CSV": (["--dataset", "wine", "--target", "y"], "are for a CSV dataset"),
        "test file with other columns": (["--dataset", str(good), "--target", "species", "--test-file",
                                          csv("other.csv", "f1,species\n1,ant\n")], "the test file's feature columns"),
        "missing test file": (["--dataset", str(good), "--target", "species", "--test-file", str(tmp / "nope.csv")],
                              "test file not found"),
        "validation split 0": (["--dataset", "wine", "--validation-split", "0"], "validation_split must be a number between 0 and 1"),
        "validation split 1.5": (["--dataset", "wine", "--validation-split", "1.5"], "between 0 and 1"),
        "validation split text": (["--dataset", "wine", "--validation-split", "half"], "--validation-split"),
        "a model with 10 outputs on wine": (["--dataset", "wine", "--model", "examples/mlp_dropout.py:build_model"],
                                            "the model takes inputs of shape (28, 28), the data's inputs are (13,)"),
    }


def test_every_bad_data_input_gets_one_line_and_writes_nothing(tmp_path, capsys):
    assert_each_bad_input_is_one_line(bad_csvs(tmp_path), tmp_path, capsys, "--epochs", "1", "--seeds", "1")


# ---------------------------------------------------------------- validation split

@FAST
@given(st.lists(st.integers(0, 4), min_size=2, max_size=300), st.floats(0.01, 0.99), st.integers(0, 3))
def test_a_stratified_holdout_has_the_stated_size_and_each_class_in_proportion(labels, fraction, seed):
    y = np.array(labels)
    kept, held = stratified_holdout(y, fraction, seed)
    assert len(held) == min(max(1, round(fraction * len(y))), len(y) - 1)
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(len(y)))
    for c in np.unique(y):
        n_c = int(np.sum(y == c))
        assert abs(int(np.sum(y[held] == c)) - fraction * n_c) <= 1 + 1e-9 or len(held) in (1, len(y) - 1)
    again = stratified_holdout(y, fraction, seed)
    assert np.array_equal(again[1], held)  # seeded


@FAST
@given(st.one_of(st.floats(allow_nan=True), st.integers(-5, 5), st.booleans(), st.text(max_size=3)))
def test_validation_split_outside_0_to_1_is_refused(value):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1
    if ok:
        assert SweepConfig(validation_split=value).validation_split == float(value)
    else:
        with pytest.raises(ConfigError, match="validation_split must be a number between 0 and 1"):
            SweepConfig(validation_split=value)


def test_validation_split_takes_the_last_share_of_a_training_file_as_keras_does(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=rng.integers(0, 256, (100, 4, 4), dtype=np.uint8), y_train=np.arange(100) % 10,
             x_test=rng.integers(0, 256, (10, 4, 4), dtype=np.uint8), y_test=np.arange(10))
    s = load_dataset(str(path), DataOptions(validation_split=0.3))
    assert (s.info.n_train, s.info.n_val) == (70, 30) and "(30 of 100" in s.info.split
    np.testing.assert_array_equal(s.y_val, (np.arange(100) % 10)[70:])  # the last samples, in order
    default = load_dataset(str(path))
    assert (default.info.n_train, default.info.n_val) == (84, 16) and "last sixth" in default.info.split


def test_the_split_is_in_the_record_and_the_config_keeps_it(tmp_path):
    config = SweepConfig(dataset="wine", validation_split=0.25)
    assert config.to_dict()["validation_split"] == 0.25
    assert "validation_split" not in SweepConfig().to_dict()  # earlier runs' configurations stay as they were
    assert SweepConfig.from_mapping(config.to_dict()) == config


# ---------------------------------------------------------------- CIFAR-10

def test_cifar10_offline_is_one_line_naming_what_to_do(monkeypatch):
    def offline(which):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(ds, "_keras_load", offline)
    with pytest.raises(DataError) as info:
        load_dataset("cifar10")
    text = str(info.value)
    assert "no internet connection: could not download CIFAR-10" in text and ".npz" in text and "mnist" not in text


def test_cifar10_through_keras_s_loader(monkeypatch):
    rng = np.random.default_rng(0)
    fake = (rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8), (np.arange(60) % 10)[:, None],
            rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8), np.arange(10)[:, None])
    monkeypatch.setattr(ds, "_keras_load", lambda which: (fake, f"Keras loader keras.datasets.{which}"))
    s = load_dataset("cifar10")
    assert s.info.input_shape == (32, 32, 3) and s.info.classes == CIFAR10_CLASSES and s.info.n_classes == 10
    assert (s.info.n_train, s.info.n_val, s.info.n_test) == (50, 10, 10)


# ---------------------------------------------------------------- whole runs

MODEL_3 = """
import keras

def build_model():
    return keras.Sequential([keras.Input(shape=(13,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])
"""
MODEL_10 = MODEL_3.replace("Dense(3,", "Dense(10,")


@pytest.mark.slow
def test_a_user_model_s_outputs_must_match_the_class_count(tmp_path, capsys):
    (tmp_path / "m3.py").write_text(MODEL_3)
    (tmp_path / "m10.py").write_text(MODEL_10)
    out = tmp_path / "ten"
    assert main(["run", "--dataset", "wine", "--model", f"{tmp_path / 'm10.py'}:build_model", "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "must output 3 class probabilities" in lines[0] and "outputs shape (10,)" in lines[0]
    assert not out.exists()
    out = tmp_path / "three"
    assert main(["run", "--dataset", "wine", "--model", f"{tmp_path / 'm3.py'}:build_model", "--lambdas", "0,1e-3",
                 "--epochs", "2", "--seeds", "1", "--no-progress", "--out", str(out)]) == 0
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "completed" and len(meta["data"]["classes"]) == 3


RUNS = {
    "breast_cancer": (["--dataset", "breast_cancer"], ["2 classes (labels 0–1: 0 = malignant, 1 = benign)",
                                                       "379 train / 76 validation / 114 test", "standardized per feature"]),
    "wine": (["--dataset", "wine"], ["3 classes (labels 0–2: 0 = class\\_0", "118 train / 24 validation / 36 test",
                                     "13 features per sample; standardized"]),
    "digits": (["--dataset", "digits"], ["10 classes, labels 0–9", "1,198 train / 240 validation / 359 test",
                                         "images 8×8; pixels 0–16 divided by 16"]),
    "csv": (["--target", "species"], ["5 classes (the data's labels renumbered 0–4: 0 = ant, 1 = bee",
                                      "133 train / 27 validation / 40 test", "4 features per sample; standardized"]),
}


#: every kind of data under the default engine; the Keras engine on the user's file (its labels renumbered), as
#: it reads every kind through the same splits (wine and breast_cancer also train under it against fit below)
CASES = [(case, "fused") for case in RUNS] + [("csv", "keras")]


@pytest.mark.slow
@pytest.mark.parametrize("case, engine", CASES)
def test_every_kind_of_data_runs_offline_and_the_report_reads_right(tmp_path, engine, case, capsys):
    args, expected = RUNS[case]
    if case == "csv":
        args = ["--dataset", str(five_class_csv(tmp_path / "zoo.csv")), *args]
    out = tmp_path / "run"
    code = main(["run", *args, "--lambdas", "0,1e-3", "--epochs", "2", "--seeds", "1", "--engine", engine, "--no-progress",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    report = (out / "report.md").read_text()
    for text in expected:
        assert text in report, (case, text)
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "completed" and meta["engine"] == engine
    assert len(meta["data"]["classes"]) == int(expected[0].split()[0])
    assert all(0.0 <= arm["test"]["accuracy"] <= 1.0 for arm in meta["arms"])


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["wine", "breast_cancer"])
def test_the_fused_engine_trains_k_classes_and_tables_as_fit_does(tmp_path, dataset):
    """Three classes and two, standardized tables: the default engine's record is fit's (the same metrics)."""
    from reglab import run_sweep

    runs = {engine: run_sweep(SweepConfig(lambdas=(0.0, 1e-2), seeds=2, epochs=2, dataset=dataset, engine=engine),
                              out=tmp_path / engine, live=False, make_report=False) for engine in ("fused", "keras")}
    fused, keras = ({(r.arm, r.epoch): r for r in run.epochs} for run in (runs["fused"], runs["keras"]))
    assert fused.keys() == keras.keys() and len(fused) == 8
    for key, f in fused.items():
        k = keras[key]
        for field in ("loss", "accuracy", "data_loss", "val_loss", "val_accuracy", "val_data_loss", "kernel_norm"):
            assert getattr(f, field) == pytest.approx(getattr(k, field), rel=1e-5, abs=1e-6), (key, field)
