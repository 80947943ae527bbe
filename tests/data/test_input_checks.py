"""Input data and settings that used to pass unnoticed (issue 27): each is either handled exactly or refused
with one `reglab: error:` line before anything is written.

- huge feature values: the standard deviation is computed without overflow; a standardized value that float32
  cannot hold is refused;
- CSV labels are classes by their exact text unless every label is a canonical integer ('7' and '007' differ);
- classes come from the training labels: a validation or test label without training samples, and a training
  set of one class, are refused;
- a duplicated header names the duplicated column;
- strengths and learning rates must be normal float32 numbers (or 0); seeds at most 2**31 − 1;
- run.json keeps absolute paths, so --resume and load_model work from any directory;
- a user's model must end in softmax; a model with two outputs is told so in words.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reglab.cli import build_parser, main
from reglab.config import SweepConfig, parse_lambdas, parse_learning_rates
from reglab.data.datasets import load_dataset
from reglab.data.splits import DataOptions
from reglab.errors import ConfigError, DataError
from reglab.record.reader import load_run

FAST = ["--epochs", "1", "--seeds", "1", "--lambdas", "0,0.01", "--no-progress"]


def write_csv(path: Path, labels: list, features: np.ndarray | None = None, header: str = "a,b,label") -> Path:
    """A CSV of two numeric features and a label column (`header` names the three columns)."""
    rng = np.random.default_rng(len(labels))
    x = rng.normal(size=(len(labels), 2)) if features is None else features
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header] + [f"{a!r},{b!r},{y}" for (a, b), y in zip(x.tolist(), labels)]) + "\n")
    return path


def labels_of(k: int, n: int) -> list[int]:
    return [i % k for i in range(n)]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("reglab: error: "), err
    return lines[0]


def refused(capsys, tmp_path: Path, *args: str) -> str:
    """Run with `args`: exit status 2, one error line (returned), and no run directory written."""
    out = tmp_path / "refused-run"
    assert main(["run", "--out", str(out), *FAST, *args]) == 2
    line = one_error_line(capsys)
    assert not out.exists(), line
    return line


# ---------------------------------------------------------------- 3: huge values, standardization

def test_feature_values_beyond_1e154_standardize_to_finite_values(tmp_path):
    x = np.random.default_rng(0).normal(size=(60, 2))
    x[:, 1] *= 1e200  # squares overflow float64: the std used to be inf and the column all zeros
    s = load_dataset(str(write_csv(tmp_path / "big.csv", labels_of(3, 60), x)), DataOptions(target="label"))
    assert all(np.isfinite(v) for v in s.info.feature_std + s.info.feature_mean)
    assert 1e199 < s.info.feature_std[1] < 1e201
    for part in (s.x_train, s.x_val, s.x_test):
        assert np.isfinite(part).all()
    assert np.std(s.x_train[:, 1]) > 0.5  # standardized, not zeroed


@pytest.mark.slow
def test_a_run_on_huge_values_records_a_valid_run_json(tmp_path):
    x = np.random.default_rng(1).normal(size=(60, 2)) * np.array([1.0, 1e300])
    data = write_csv(tmp_path / "big.csv", labels_of(2, 60), x)
    out = tmp_path / "run"
    assert main(["run", "--dataset", str(data), "--target", "label", "--out", str(out), *FAST]) == 0
    assert all(np.isfinite(load_run(out).data.feature_std))  # reglab's own check of run.json passes


def test_a_standardized_value_float32_cannot_hold_is_one_line(tmp_path, capsys):
    x = np.column_stack([np.linspace(0, 1, 60), np.tile([0.0, 1e-30], 30)])  # std 5e-31
    train = write_csv(tmp_path / "train.csv", labels_of(2, 60), x)
    test = write_csv(tmp_path / "test.csv", labels_of(2, 4), np.array([[0.5, 0.0], [0.5, 1e10], [0.1, 0.0], [0.2, 0.0]]))
    line = refused(capsys, tmp_path, "--dataset", str(train), "--target", "label", "--test-file", str(test))
    assert "'b'" in line and "float32" in line


# ---------------------------------------------------------------- 5: labels by their exact text

def test_csv_labels_are_classes_by_their_exact_text(tmp_path):
    labels = ["7", "007", "12"] * 20
    s = load_dataset(str(write_csv(tmp_path / "t.csv", labels)), DataOptions(target="label"))
    assert s.info.classes == ("007", "12", "7") and s.info.labels_renumbered


def test_canonical_integer_labels_stay_integers(tmp_path):
    s = load_dataset(str(write_csv(tmp_path / "t.csv", labels_of(3, 60))), DataOptions(target="label"))
    assert s.info.classes == ("0", "1", "2") and not s.info.labels_renumbered


def test_the_text_rule_holds_across_the_training_and_test_files(tmp_path, capsys):
    train = write_csv(tmp_path / "train.csv", ["7", "12"] * 30)
    test = write_csv(tmp_path / "test.csv", ["007", "12"])
    line = refused(capsys, tmp_path, "--dataset", str(train), "--target", "label", "--test-file", str(test))
    assert "'007'" in line and "test file" in line


# ---------------------------------------------------------------- 6: classes come from the training labels

def test_a_test_label_unseen_in_training_is_one_line_naming_it_and_the_file(tmp_path, capsys):
    train = write_csv(tmp_path / "train.csv", labels_of(3, 60))
    test = write_csv(tmp_path / "test.csv", [0, 1, 7])
    line = refused(capsys, tmp_path, "--dataset", str(train), "--target", "label", "--test-file", str(test))
    assert "label 7" in line and "test file" in line and "test.csv" in line


def test_a_training_set_of_one_class_is_one_line(tmp_path, capsys):
    train = write_csv(tmp_path / "train.csv", ["a"] * 60)
    test = write_csv(tmp_path / "test.csv", ["a", "b"])
    line = refused(capsys, tmp_path, "--dataset", str(train), "--target", "label", "--test-file", str(test))
    assert "training" in line and "1 class" in line


def test_classes_are_the_training_labels_only(tmp_path):
    train = write_csv(tmp_path / "train.csv", ["x", "y", "z"] * 20)
    test = write_csv(tmp_path / "test.csv", ["y", "z"])
    s = load_dataset(str(train), DataOptions(target="label", test_file=str(test)))
    assert s.info.classes == ("x", "y", "z")


def test_integer_indices_kept_as_they_are_span_the_training_maximum(tmp_path, capsys):
    """Indices 0…K−1 stay as they are, K − 1 the training maximum: a digit the training rows lack is still a
    class (a small file may lack one), a label above the maximum is not."""
    train = write_csv(tmp_path / "train.csv", [0, 1, 3] * 20)
    s = load_dataset(str(train), DataOptions(target="label", test_file=str(write_csv(tmp_path / "test.csv", [2, 3]))))
    assert s.info.classes == ("0", "1", "2", "3") and not s.info.labels_renumbered
    line = refused(capsys, tmp_path, "--dataset", str(train), "--target", "label", "--test-file",
                   str(write_csv(tmp_path / "test4.csv", [4, 3])))
    assert "label 4 in the test file" in line


# ---------------------------------------------------------------- 16: a duplicated header

def test_a_duplicated_target_header_names_the_column(tmp_path, capsys):
    data = write_csv(tmp_path / "dup.csv", labels_of(2, 60), header="label,b,label")
    line = refused(capsys, tmp_path, "--dataset", str(data), "--target", "label")
    assert "'label'" in line and "twice" in line and "not integers" not in line


def test_a_duplicated_feature_header_names_the_column(tmp_path):
    data = write_csv(tmp_path / "dup.csv", labels_of(2, 60), header="a,a,label")
    with pytest.raises(DataError, match="column 'a' appears twice"):
        load_dataset(str(data), DataOptions(target="label"))


# ---------------------------------------------------------------- 9: strengths and learning rates in float32

@pytest.mark.parametrize("flag, value", [("--lambdas", "1e-320"), ("--lambdas", "0,1e-39"), ("--learning-rates", "1e-320"),
                                         ("--lambdas", "1e39"), ("--learning-rates", "4e38")])
def test_values_float32_cannot_hold_are_one_line(tmp_path, capsys, flag, value):
    data = write_csv(tmp_path / "t.csv", labels_of(2, 60))
    args = ["run", "--out", str(tmp_path / "run"), "--dataset", str(data), "--target", "label", "--epochs", "1",
            "--seeds", "1", flag, value]
    assert main(args) == 2
    assert "float32" in one_error_line(capsys) and not (tmp_path / "run").exists()


def test_float32_limits_apply_to_every_way_of_giving_values():
    tiny = float(np.finfo(np.float32).tiny)
    assert parse_lambdas(f"0,{tiny!r}") == (0.0, tiny)  # 0 and the smallest normal float32 are fine
    assert parse_learning_rates("3e38") == (3e38,)
    for bad in ({"lambdas": [1e-320]}, {"learning_rates": [1e-45]}, {"lambdas": "logspace:1e-50:1e-3:4"},
                {"strengths": {"l2": [0.0, 1e39]}}):
        with pytest.raises(ConfigError, match="float32"):
            SweepConfig.from_mapping(bad)


# ---------------------------------------------------------------- 17a: seeds at most 2**31 − 1

def test_seeds_are_at_most_2_to_the_31_minus_1():
    top = 2**31 - 1
    assert SweepConfig(seed=top, seeds=1).seed_values == (top,)
    assert SweepConfig(seed=top - 2, seeds=3).seed_values[-1] == top
    for seed, seeds in ((top + 1, 1), (top, 2), (top - 1, 3)):
        with pytest.raises(ConfigError, match=str(top)):
            SweepConfig(seed=seed, seeds=seeds)


def test_a_seed_above_the_maximum_is_one_line_and_the_help_says_the_maximum(tmp_path, capsys):
    line = refused(capsys, tmp_path, "--seed", str(2**31), "--dataset", "wine")
    assert str(2**31 - 1) in line
    run = next(a for a in build_parser()._actions if a.dest == "command").choices["run"]
    seed_help = next(a.help for a in run._actions if a.dest == "seed")
    assert str(2**31 - 1) in seed_help


# ---------------------------------------------------------------- 15: absolute paths in run.json

MODEL = '''
import keras


def build():
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])
'''


@pytest.mark.slow
def test_resume_and_load_model_use_the_absolute_paths_from_any_directory(tmp_path, monkeypatch, capsys):
    import reglab

    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    write_csv(here / "csv" / "train.csv", labels_of(3, 60))
    write_csv(here / "csv" / "test.csv", labels_of(3, 9))
    (here / "model.py").write_text(MODEL)
    write_csv(elsewhere / "csv" / "train.csv", labels_of(3, 90))  # the same relative names, other data
    write_csv(elsewhere / "csv" / "test.csv", labels_of(3, 12))
    out = tmp_path / "run"
    monkeypatch.chdir(here)
    assert main(["run", "--dataset", "csv/train.csv", "--target", "label", "--test-file", "csv/test.csv",
                 "--model", "model.py:build", "--out", str(out), *FAST]) == 0

    monkeypatch.chdir(elsewhere)  # no model.py here, and another csv/train.csv
    model = reglab.load_model(out)
    assert model.output_shape == (None, 3)
    meta = json.loads((out / "run.json").read_text())
    meta["status"] = "interrupted"
    (out / "run.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0, capsys.readouterr().err
    assert f"reglab: running model file {here.resolve() / 'model.py'} to rebuild the model" in capsys.readouterr().err
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "completed" and meta["config"]["dataset"] == "csv/train.csv"  # as given, for display
    real = here.resolve()
    assert meta["paths"] == {"dataset": str(real / "csv" / "train.csv"), "test_file": str(real / "csv" / "test.csv"),
                             "model": f"{real / 'model.py'}:build"}


@pytest.mark.slow
def test_a_record_without_absolute_paths_resumes_from_where_it_was_started(tmp_path, monkeypatch, capsys):
    write_csv(tmp_path / "csv" / "train.csv", labels_of(3, 60))
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--dataset", "csv/train.csv", "--target", "label", "--out", "run", *FAST]) == 0
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    del meta["paths"]  # as reglab wrote it before it kept them
    meta["status"] = "interrupted"
    (tmp_path / "run" / "run.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(["run", "--resume", "run", "--no-progress"]) == 0, capsys.readouterr().err


# ---------------------------------------------------------------- 7, 17c: the user's model ends in softmax

def model_file(tmp_path: Path, last: str, extra: str = "") -> str:
    (tmp_path / "m.py").write_text("import keras\n" + extra + "\n\ndef build():\n    return keras.Sequential([keras.Input((2,)), "
                                   f"keras.layers.Dense(8, activation='relu'), {last}])\n")
    return f"{tmp_path / 'm.py'}:build"


@pytest.mark.parametrize("last", ["keras.layers.Dense(3)", "keras.layers.Dense(3, activation='sigmoid')",
                                  "keras.layers.Dense(3), keras.layers.Activation('relu')",
                                  "keras.layers.Dense(3), keras.layers.Lambda(lambda t: t * 1.0)"])
def test_a_model_that_does_not_end_in_softmax_is_one_line(tmp_path, capsys, last):
    data = write_csv(tmp_path / "t.csv", labels_of(3, 60))
    line = refused(capsys, tmp_path, "--dataset", str(data), "--target", "label", "--model", model_file(tmp_path, last))
    assert "softmax" in line and "end" in line


@pytest.mark.parametrize("last", ["keras.layers.Dense(3, activation='softmax')",
                                  "keras.layers.Dense(3), keras.layers.Softmax()",
                                  "keras.layers.Dense(3), keras.layers.Activation('softmax')",
                                  "keras.layers.Dense(3), keras.layers.Lambda(keras.ops.softmax)"])
def test_a_model_that_ends_in_softmax_is_accepted(tmp_path, last):
    from reglab.model.build import build_user_model

    sample = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
    model, _, _ = build_user_model(model_file(tmp_path, last), (2,), 0.0, n_classes=3, sample=sample)
    assert model.output_shape == (None, 3)


def test_a_two_output_model_is_told_so_in_a_sentence(tmp_path, capsys):
    (tmp_path / "two.py").write_text(
        "import keras\n\ndef build():\n    i = keras.Input((2,))\n    h = keras.layers.Dense(8)(i)\n"
        "    return keras.Model(i, [keras.layers.Dense(3, activation='softmax')(h), "
        "keras.layers.Dense(3, activation='softmax')(h)])\n")
    data = write_csv(tmp_path / "t.csv", labels_of(3, 60))
    line = refused(capsys, tmp_path, "--dataset", str(data), "--target", "label", "--model", f"{tmp_path / 'two.py'}:build")
    assert "2 outputs" in line and "((" not in line and "(None" not in line


def test_a_float_label_beyond_exact_integers_is_one_line():
    """A float32 label of 2**63 (hypothesis found it) overflowed int64 in a cast: a warning, now a DataError."""
    from reglab.data.encoding import encode_labels
    from reglab.errors import DataError

    with pytest.raises(DataError, match="too large to be a class number"):
        encode_labels([("y_train", np.array([0, 1, 0], np.uint8)), ("y_test", np.array([2.0**63], np.float32))], "data.npz")
