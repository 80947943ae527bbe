"""`reglab.sweep`: a notebook's own def and arrays, in Keras's `fit` words; the run reruns in a new process from
what it saved (inputs/model.py, inputs/data.npz in the run directory, found there wherever the run
directory is moved), and `run_splits` gives back the exact arrays it used."""

from __future__ import annotations

import linecache
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from rich.console import Console
from sklearn.datasets import load_wine

import faults
import reglab
from helpers import cut_adaptive_sweep
from reglab._keras import keras
from reglab.analysis.views import recommended_setting
from reglab.errors import ConfigError, DataError, RunDirError, RunFailed
from reglab.model.callable_source import ModelSource, check_saved, model_source, source_of
from reglab.record.rundir import read_manifest
from reglab.record.schema import ArmRecord, read_run_meta
from reglab.run.on_arrays import exact_share, split_arrays

# ---------------------------------------------------------------- a model as a notebook defines it

HIDDEN = (16,)
WEIGHTS = np.ones(3)  # a live object: a builder that reads it cannot be saved as source


def hidden_layer(units):
    return keras.layers.Dense(units, activation="relu")


def build_model():
    inputs = keras.Input(shape=(13,))
    x = inputs
    for units in HIDDEN:
        x = hidden_layer(int(np.sqrt(units) ** 2))(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def build_from_array():
    return keras.Sequential([keras.Input((13,)), keras.layers.Dense(int(WEIGHTS.sum()), activation="softmax")])


def build_with_argument(units):
    return keras.Sequential([keras.Input((13,)), keras.layers.Dense(units, activation="softmax")])


def closure(units: int):
    def build():
        return keras.Sequential([keras.Input((13,)), keras.layers.Dense(units, activation="softmax")])
    return build


TINY = {"lambdas": [0, 1e-2], "seeds": 2, "epochs": 2, "progress": False}


@pytest.fixture(scope="module")
def wine():
    return load_wine(return_X_y=True)


@pytest.fixture(scope="module")
def result(wine, tmp_path_factory):
    x, y = wine
    return reglab.sweep(build_model, x, y, out=tmp_path_factory.mktemp("sweep") / "run", **TINY)


def recommended_arm(run) -> dict:
    setting = recommended_setting(run)
    return next(a for a in run.arms if ArmRecord.of(a).setting == setting and a["seed"] == run.config.seed_values[0])


# ---------------------------------------------------------------- a sweep, and its record in a new process

@pytest.mark.slow
def test_a_notebook_function_is_saved_as_a_module_in_the_run_directory(result):
    run = result.run
    inputs = run.run_dir / "inputs"
    assert isinstance(result, reglab.RunAnalysis) and result.summary()
    assert run.config.model == "inputs/model.py:build_model" and run.config.dataset == "inputs/data.npz"
    assert run.meta["inputs"] == ["inputs/data.npz", "inputs/model.py"]
    assert not {"dataset", "model"} & set(run.meta["paths"])  # found from the run directory, not by absolute path
    assert {"inputs/data.npz", "inputs/model.py"} <= set(read_manifest(run.run_dir))  # --force removes them
    assert not run.run_dir.with_name("run.inputs").exists()
    source = (inputs / "model.py").read_text()
    for line in ("import numpy as np", "import keras", "HIDDEN = (16,)", "def hidden_layer(units):", "def build_model():"):
        assert line in source
    assert run.data.split.startswith("stratified and seeded: a fifth held out for test")


@pytest.mark.slow
def test_the_run_reruns_in_a_new_process(result, tmp_path):
    run_dir = result.run.run_dir
    code = f"import reglab; print(reglab.load_model({str(run_dir)!r}).count_params())"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    assert int(loaded.stdout.split()[-1]) == build_model().count_params()
    report = subprocess.run([sys.executable, "-m", "reglab", "report", str(run_dir)], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert report.returncode == 0, report.stderr
    assert (run_dir / "report.html").is_file()


def test_run_splits_and_the_saved_model_give_the_recorded_test_numbers(result, wine):
    run = result.run
    splits = reglab.run_splits(run.run_dir)
    assert splits.info == run.data
    sizes = (len(splits.x_train), len(splits.x_val), len(splits.x_test))
    assert sizes == (run.data.n_train, run.data.n_val, run.data.n_test)
    got = reglab.load_model(run).evaluate(splits.x_test, splits.y_test, batch_size=1000, return_dict=True, verbose=0)
    want = recommended_arm(run)["test"]
    assert got["loss"] == pytest.approx(want["loss"], abs=1e-5)
    assert got["accuracy"] == pytest.approx(want["accuracy"], abs=1e-5)
    with np.load(run.run_dir / run.config.dataset) as raw:  # the arrays as given, each sample once: train, validation and test
        rows = np.concatenate([raw["x_train"], raw["x_test"]])
        labels = np.concatenate([raw["y_train"], raw["y_test"]])
    x, y = wine
    assert sorted(map(tuple, np.column_stack([rows, labels]))) == sorted(map(tuple, np.column_stack([x, y])))


def test_run_splits_refuses_data_that_changed(result):
    path = result.run.run_dir / "inputs" / "data.npz"
    original = path.read_bytes()
    try:
        with np.load(path) as raw:
            arrays = dict(raw)
        arrays["y_test"] = (arrays["y_test"] + 1) % 3
        np.savez(path, **arrays)
        with pytest.raises(DataError, match="have changed since the run") as e:
            reglab.run_splits(result.run)
        assert "\n" not in str(e.value)
    finally:
        path.write_bytes(original)


@pytest.mark.slow
def test_a_stopped_sweep_resumes_in_a_new_process(wine, tmp_path, monkeypatch):
    with monkeypatch.context() as patched:
        faults.install("checkpoint-disk-full:2", patched)  # the second checkpoint fails, as on a full disk
        with pytest.raises(RunFailed):
            reglab.sweep(build_model, *wine, out=tmp_path / "run", **TINY)
    assert read_run_meta(tmp_path / "run")["status"] == "failed"
    assert (tmp_path / "run" / "inputs" / "model.py").is_file()  # a record names them: kept
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = subprocess.run([sys.executable, "-m", "reglab", "run", "--resume", str(tmp_path / "run")],
                             capture_output=True, text=True, cwd=elsewhere, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "arm-epochs of 8 already recorded" in resumed.stderr
    assert reglab.load_run(tmp_path / "run").meta["status"] == "completed"


@pytest.mark.slow
def test_a_moved_run_directory_loads_reports_and_splits_in_a_new_process(wine, tmp_path):
    reglab.sweep(build_model, *wine, out=tmp_path / "a", **TINY)
    shutil.move(tmp_path / "a", tmp_path / "b")  # nothing else is touched: the inputs move with the run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = str(tmp_path / "b")
    code = (f"import reglab; print(reglab.load_model({moved!r}).count_params()); "
            f"s = reglab.run_splits({moved!r}); print(len(s.x_train), len(s.x_val), len(s.x_test))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=elsewhere, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    run = reglab.load_run(moved)
    assert loaded.stdout.split()[-4:] == [str(build_model().count_params()), str(run.data.n_train),
                                          str(run.data.n_val), str(run.data.n_test)]
    (tmp_path / "b" / "report.html").unlink()
    report = subprocess.run([sys.executable, "-m", "reglab", "report", moved], capture_output=True, text=True,
                            cwd=elsewhere, timeout=300)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "b" / "report.html").is_file()


@pytest.mark.slow
def test_force_over_a_sweep_removes_its_inputs_and_keeps_the_users_files(wine, tmp_path):
    run_dir = tmp_path / "run"
    reglab.sweep(build_model, *wine, out=run_dir, **TINY)
    (run_dir / "inputs" / "notes.txt").write_text("mine")
    (run_dir / "inputs" / "model.py").write_text("# edited\n")
    reglab.sweep(build_model, *wine, out=run_dir, force=True, **TINY)  # a fresh run's inputs, not the edited ones
    assert "# edited" not in (run_dir / "inputs" / "model.py").read_text()
    assert (run_dir / "inputs" / "notes.txt").read_text() == "mine"
    from reglab.record.rundir import clear_run_dir

    clear_run_dir(run_dir)  # what --force removes: every listed file, the inputs too
    left = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.name != ".reglab.lock")
    assert left == ["inputs", "inputs/notes.txt"]


def test_inputs_reached_through_a_link_are_not_read(result, tmp_path):
    moved = tmp_path / "run"
    shutil.copytree(result.run.run_dir, moved)
    shutil.move(moved / "inputs", tmp_path / "elsewhere")
    (moved / "inputs").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="symbolic link"):
        reglab.run_splits(moved)


def test_an_existing_run_is_not_overwritten_without_force(result, wine):
    data = result.run.run_dir / "inputs" / "data.npz"
    before = data.read_bytes()
    with pytest.raises(RunDirError, match="already exists"):
        reglab.sweep(build_model, *wine, out=result.run.run_dir, **TINY)
    assert data.read_bytes() == before


# ---------------------------------------------------------------- callables that cannot be saved

@pytest.mark.parametrize("build, words", [
    (lambda: build_model(), "is a lambda"),
    (closure(3), "uses its variables (units)"),
    (build_from_array, "uses the global WEIGHTS (a numpy.ndarray)"),
    (build_with_argument, "must take no arguments"),
    (len, "is a built-in function"),
])
def test_a_builder_that_cannot_be_saved_is_one_clear_error_and_nothing_is_written(build, words, wine, tmp_path):
    with pytest.raises(ConfigError) as e:
        reglab.sweep(build, *wine, out=tmp_path / "run", **TINY)
    message = str(e.value)
    assert words in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_a_notebook_cell_with_a_class_and_constants_is_saved_whole():
    """As Jupyter runs a cell: source kept by linecache under the cell's name, globals in `__main__`'s namespace."""
    cell = ("import numpy as np\nfrom reglab._keras import keras\nfrom keras import layers as L\n"
            "SIZES = [8, 4]\nRATE = 0.5\n\n"
            "class Widths:\n    factor = 2\n\n    def of(self, n):\n        return n * self.factor\n\n"
            "def block(units, rate=RATE):\n    return [L.Dense(units, activation='relu'), L.Dropout(rate)]\n\n"
            "def build_model() -> keras.Model:\n    layers = [keras.Input((13,))]\n    for n in SIZES:\n"
            "        layers += block(Widths().of(int(np.int64(n))))\n"
            "    return keras.Sequential(layers + [L.Dense(3, activation='softmax')])\n")
    name = "<ipython-input-7-reglab-test>"
    linecache.cache[name] = (len(cell), None, cell.splitlines(True), name)
    try:
        namespace = {"__name__": "__main__"}
        exec(compile(cell, name, "exec"), namespace)
        text = source_of(namespace["build_model"])
        saved = model_source(namespace["build_model"])  # run in a fresh namespace: the same Keras config
    finally:
        del linecache.cache[name]
    assert saved.text == text
    for line in ("import keras.layers as L", "SIZES = [8, 4]", "RATE = 0.5", "class Widths:",
                 "def block(units, rate=RATE):"):
        assert line in text
    assert text.index("RATE = 0.5") < text.index("def block")  # what a def's defaults read comes first


def test_a_saved_source_that_builds_another_model_is_refused():
    original = build_model()
    other = ModelSource("import keras\n\ndef build_model():\n    return keras.Sequential([keras.Input((13,)), "
                        "keras.layers.Dense(3, activation='softmax')])\n", "build_model")
    with pytest.raises(ConfigError, match="builds another model"):
        check_saved(other, original, __name__)


# ---------------------------------------------------------------- the data: labels, pandas, given splits

def test_pandas_input_with_string_labels_in_a_temporary_run(wine, tmp_path, monkeypatch, capsys):
    import pandas as pd

    x, y = wine
    names = np.array(["barolo", "grignolino", "barbera"])
    frame = pd.DataFrame(x, columns=[f"feature {i}" for i in range(13)])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = reglab.sweep(build_model, frame, pd.Series(names[y]), **TINY)
    said = re.findall(r"reglab: run written to (.+)", capsys.readouterr().err)
    assert said == [str(result.run.run_dir)] and result.run.run_dir.is_relative_to(tmp_path)
    assert result.run.data.classes == ("barbera", "barolo", "grignolino") and result.run.data.labels_renumbered
    splits = reglab.run_splits(result.run)
    with np.load(result.run.run_dir / result.run.config.dataset) as raw:
        assert raw["y_test"].dtype.kind == "U"  # text in the file, as given; class indices once prepared
        assert [result.run.data.classes[i] for i in splits.y_test] == raw["y_test"].tolist()


@pytest.mark.slow
def test_validation_and_test_data_as_given_and_a_model_object(wine, tmp_path):
    x, y = wine
    order = np.random.default_rng(0).permutation(len(x))
    train, val, test = order[:120], order[120:150], order[150:]
    model = build_model()
    result = reglab.sweep(model, x[train], y[train], validation_data=(x[val], y[val]), test_data=(x[test], y[test]),
                          out=tmp_path / "run", **TINY)
    splits = reglab.run_splits(result.run)
    for got, want in ((splits.y_train, y[train]), (splits.y_val, y[val]), (splits.y_test, y[test])):
        np.testing.assert_array_equal(got, want)
    mean, std = np.array(splits.info.feature_mean), np.array(splits.info.feature_std)
    np.testing.assert_allclose(splits.x_val, (x[val] - mean) / std, rtol=1e-5, atol=1e-5)
    assert splits.info.split == "validation_data and test_data as given"
    assert "model_from_json" in (tmp_path / "run" / "inputs" / "model.py").read_text()


def test_validation_data_alone_holds_out_a_stratified_fifth_of_x_for_test(wine):
    x, y = wine
    arrays = split_arrays(x[:150], y[:150], validation_data=(x[150:], y[150:]))
    assert len(arrays.x_test) == 30 and arrays.n_val == 28
    np.testing.assert_array_equal(arrays.y_train[-28:], y[150:])  # validation last, for the loader's share to take
    per_class = np.bincount(arrays.y_test, minlength=3), np.bincount(y[:150], minlength=3)
    assert all(abs(held - 0.2 * whole) <= 1 for held, whole in zip(*per_class))


def test_test_data_alone_leaves_validation_to_the_loaders_last_share(wine):
    x, y = wine
    arrays = split_arrays(x[:150], y[:150], test_data=(x[150:], y[150:]), validation_split=0.2)
    assert arrays.n_val is None and arrays.validation_split == 0.2 and arrays.split is None
    assert len(arrays.x_train) == 150


@pytest.mark.parametrize("bad, error, words", [
    ({"validation_data": ([[1.0] * 13], [0]), "validation_split": 0.2}, ConfigError, "not both"),
    ({"validation_data": ([[1.0] * 13], [0], [1.0])}, ConfigError, "must be a pair (x, y), got tuple of 3"),
    ({"test_data": (np.ones((0, 13)), [])}, DataError, "test_data is empty"),
])
def test_given_splits_that_cannot_work_are_one_line(bad, error, words, wine):
    with pytest.raises(error) as e:
        split_arrays(*wine, **bad)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_the_validation_share_takes_exactly_the_validation_samples():
    for n_file in range(2, 400):
        for n_val in range(1, n_file):
            share = exact_share(n_val, n_file)
            assert 0 < share < 1 and n_file - int(n_file * (1.0 - share)) == n_val


def test_drawing_a_report_leaves_the_plotting_backend_as_it_was(wine, tmp_path):
    """A notebook's backend is its own: the report's figures are drawn without pyplot (figures.axes.figure)."""
    import matplotlib
    import matplotlib.pyplot  # noqa: F401 - in use, as in a notebook

    matplotlib.use("pdf")
    try:
        reglab.sweep(build_model, *wine, out=tmp_path / "run", **TINY)
        assert matplotlib.get_backend().lower() == "pdf"
    finally:
        matplotlib.use("Agg")


# ---------------------------------------------------------------- adaptive=True

def test_adaptive_refuses_a_grid_and_a_budget_needs_it(wine, tmp_path):
    with pytest.raises(ConfigError, match="lambdas and seeds cannot be given with adaptive=True"):
        reglab.sweep(build_model, *wine, adaptive=True, lambdas=[0, 1e-3], out=tmp_path / "run")
    with pytest.raises(ConfigError, match="budget is for adaptive=True"):
        reglab.sweep(build_model, *wine, budget=500, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_an_adaptive_sweep_on_arrays_keeps_its_inputs_in_every_round(wine, tmp_path):
    from reglab.run.adaptive import AdaptiveRun, load_adaptive

    got = reglab.sweep(build_model, *wine, adaptive=True, epochs=2, progress=False, out=tmp_path / "run")
    assert isinstance(got, AdaptiveRun) and got.status == "completed" and got.verdict is not None
    assert load_adaptive(tmp_path / "run") == got
    for r in got.rounds:
        meta = read_run_meta(got.round_dir(r))
        assert meta["inputs"] and (got.round_dir(r) / "inputs" / "data.npz").is_file()
        assert (meta["data"]["n_val"] == meta["data"]["n_test"]) == r.confirming  # wine: 24 validation, 36 test examples
    last = read_run_meta(got.round_dir(got.rounds[-1]))
    assert last["config"]["score_on"] == "test"
    assert "fresh seeds scored on the test set" in got._repr_html_()

    # stopped after round 2 (its plan had not named round 3 yet): a resume starts round 3 from the kept inputs
    assert len(got.rounds) > 2
    from reglab.run.adaptive import resume_adaptive

    cut = cut_adaptive_sweep(tmp_path / "run", tmp_path / "cut", 2)
    again = resume_adaptive(cut, console=Console(quiet=True), live=False)
    assert again.rounds == got.rounds and again.verdict == got.verdict


# ---------------------------------------------------------------- confirm=True

def test_confirm_refuses_adaptive_and_a_grid_without_a_nonzero_strength(wine, tmp_path):
    with pytest.raises(ConfigError, match="confirm=True cannot be used with adaptive=True"):
        reglab.sweep(build_model, *wine, adaptive=True, confirm=True, out=tmp_path / "run")
    with pytest.raises(ConfigError, match="no nonzero strength"):
        reglab.sweep(build_model, *wine, confirm=True, lambdas=[0], out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_confirmed_grid_on_arrays_is_the_grid_then_fresh_seeds_on_the_test_set(wine, tmp_path):
    from reglab.run.adaptive import AdaptiveRun

    got = reglab.sweep(build_model, *wine, confirm=True, lambdas=[0, 1e-3], seeds=2, epochs=2, progress=False,
                       out=tmp_path / "run")
    assert isinstance(got, AdaptiveRun) and got.status == "completed" and got.verdict is not None
    grid, last = got.rounds
    assert grid.strengths == (0.0, 1e-3) and grid.seeds == (0, 1) and last.confirming and last.strengths == (0.0, 1e-3)
    for r in got.rounds:
        assert (got.round_dir(r) / "inputs" / "data.npz").is_file() and (got.round_dir(r) / "report.html").is_file()
    assert read_run_meta(got.round_dir(last))["config"]["score_on"] == "test"
