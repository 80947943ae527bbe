"""`reglab run` and `reglab report` end to end, and every bad input's one-line error."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import assert_each_bad_input_is_one_line, spawned
from reglab.cli import main
from reglab.record.schema import COLUMNS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def reglab(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reglab", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=600)


ENGINES = ("fused", "keras")


def _e2e(tmp_path_factory, engine: str) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("e2e") / f"run-{engine}"
    engine_flag = [] if engine == "fused" else ["--engine", engine]  # fused is the default
    return out, reglab("run", "--dataset", "mnist-5k", "--lambdas", "0,0.01", "--epochs", "2", "--seeds", "1", "--out", str(out),
                       *engine_flag)


@pytest.fixture(scope="module")
def e2e_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One real `reglab run` in a process (the fused engine): what the fast tests read."""
    return _e2e(tmp_path_factory, "fused")


@pytest.fixture(scope="module")
def e2e_runs(e2e_run, tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """The same run with each engine (the keras one only for the slow tests that compare them)."""
    return {"fused": e2e_run, "keras": _e2e(tmp_path_factory, "keras")}


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_run_writes_the_whole_record(e2e_runs, engine):
    out, proc = e2e_runs[engine]
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"report: {out / 'report.html'}" in proc.stdout
    assert "epoch 2/2" in proc.stderr  # progress lines

    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "completed" and meta["engine"] == engine
    assert meta["config"]["lambdas"] == [0.0, 0.01] and meta["config"]["epochs"] == 2
    assert meta["data"]["name"] == "mnist-5k" and meta["data"]["fallback_reason"] is None
    assert (meta["data"]["n_train"], meta["data"]["n_val"], meta["data"]["n_test"]) == (3000, 1000, 1000)
    assert len(meta["data"]["sha256"]) == 64
    assert set(meta["versions"]) >= {"reglab", "keras", "jax", "numpy", "python"}
    assert meta["started_at"] and meta["ended_at"]
    assert [a["status"] for a in meta["arms"]] == ["completed", "completed"]
    for arm in meta["arms"]:
        assert arm["epochs_done"] == 2
        assert 0.5 < arm["test"]["accuracy"] <= 1.0 and arm["test"]["data_loss"] > 0

    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert tuple(rows[0]) == COLUMNS
    # rows are appended as epochs end: arm after arm (keras), or epoch after epoch for all arms (fused)
    assert sorted((r["arm"], r["lambda"], r["epoch"]) for r in rows) == [("0", "0.0", "1"), ("0", "0.0", "2"), ("1", "0.01", "1"), ("1", "0.01", "2")]
    assert all(float(r["seconds"]) > 0 for r in rows)

    assert tomllib.loads((out / "config.toml").read_text()) == meta["config"]

    with np.load(out / "kernels.npz", allow_pickle=False) as z:  # each arm's final regularized kernel
        assert sorted(z.files) == ["arm0", "arm1"]
        for arm in (0, 1):
            last = [r for r in rows if r["arm"] == str(arm) and r["epoch"] == "2"][0]
            assert z[f"arm{arm}"].shape == (784, 128)
            assert np.linalg.norm(z[f"arm{arm}"].astype(np.float64)) == pytest.approx(float(last["kernel_norm"]), rel=1e-6)

    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == ["arm00_lambda-0_seed-0.png", "arm01_lambda-0.01_seed-0.png", "gap_vs_norm.png", "kernel_norm.png",
                       "val_data_loss.png", "weight_histograms.png", "which_strength.png"]
    for name in figures:
        assert (out / "figures" / name).read_bytes()[:8] == PNG_MAGIC
    report = (out / "report.md").read_text()
    for name in figures:
        assert f"(figures/{name})" in report
    assert "including the penalty" in report and "| 0.01 | 1 | " in report and "### Every arm" not in report  # one seed: one table
    assert "### Weights" in report and "### Convergence and fit" in report and "## Claims checked" in report
    headline = report.split("\n> ", 1)[1].splitlines()[0]  # one seed names the best (or λ = 0) and never says "Use …"
    assert headline.startswith(("Best in this one seed: ", "No L2 strength tried measured better")), headline
    assert "one seed: intervals cover validation sampling only, not seed-to-seed variation" in report
    verdicts = ("good fit", "overfitting", "underfitting", "still improving", "can't tell", "too few epochs to tell")
    assert sum(report.count(f"| **{v}** |") for v in verdicts) == 2  # one diagnosis per arm
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(figures) and "<script" not in page


@pytest.mark.slow
def test_both_engines_leave_the_same_record(e2e_runs):
    """Same seeds, same batches: the fused engine's numbers are Keras's to float32 precision."""
    from reglab import load_run

    fused, keras = (load_run(e2e_runs[e][0]) for e in ENGINES)
    rows = lambda run: {(r.arm, r.epoch): r for r in run.epochs}  # noqa: E731
    a, b = rows(fused), rows(keras)
    assert a.keys() == b.keys()
    for key in a:
        for col in ("loss", "val_loss", "accuracy", "val_accuracy", "data_loss", "val_data_loss", "penalty"):
            assert getattr(a[key], col) == pytest.approx(getattr(b[key], col), abs=1e-5), (key, col)
        assert a[key].kernel_norm == pytest.approx(b[key].kernel_norm, rel=1e-5)
    for x, y in zip(fused.arms, keras.arms):
        assert x["test"]["accuracy"] == pytest.approx(y["test"]["accuracy"], abs=1e-5)
    report = lambda e: (e2e_runs[e][0] / "report.md").read_text().splitlines()  # noqa: E731
    assert len(report("fused")) == len(report("keras"))  # the same report, section for section


def test_report_rebuilds_figures_and_report_from_the_record(e2e_run):
    out, _ = e2e_run
    before = (out / "report.md").read_text()
    for p in (out / "figures").iterdir():
        p.unlink()
    (out / "report.md").unlink()
    proc = reglab("report", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / "report.md").read_text() == before
    assert len(list((out / "figures").glob("*.png"))) == 7
    assert f"report: {out / 'report.html'}" in proc.stdout


@pytest.mark.slow
def test_no_report_records_the_run_and_the_answer_and_draws_nothing(tmp_path, capsys):
    """--no-report: the whole record, recommended.keras and the answer, no figures and no report; `reglab report`
    draws them later. A report drawn earlier (of an interrupted state) is removed, never left to be read as this one."""
    from reglab.record.reader import load_run
    from reglab.run.runner import report_run

    out = tmp_path / "run"
    args = ["run", "--dataset", "wine", "--lambdas", "0,0.01", "--seeds", "2", "--epochs", "2", "--no-progress", "--out", str(out)]
    assert main([*args, "--no-report"]) == 0
    said = capsys.readouterr().out
    assert f"report: not drawn (--no-report); `reglab report {out}` draws it" in said.splitlines()
    assert {"run.json", "metrics.csv", "validation.npz", "kernels.npz", "recommended.keras"} <= {p.name for p in out.iterdir()}
    assert not any((out / name).exists() for name in ("report.md", "report.html", "figures"))
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").is_file() and list((out / "figures").glob("*.png"))
    (out / "figures" / "notes.txt").write_text("the user's own file")
    report_run(load_run(out), draw=False)
    assert not (out / "report.md").exists() and not (out / "report.html").exists()
    assert [p.name for p in (out / "figures").iterdir()] == ["notes.txt"] and (out / "recommended.keras").is_file()
    capsys.readouterr()
    assert main(["run", "--adaptive", "--no-report", "--dataset", "wine", "--out", str(tmp_path / "sweep")]) == 2
    assert "--no-report is for single runs" in capsys.readouterr().err and not (tmp_path / "sweep").exists()


@pytest.mark.slow
def test_report_open_hands_the_page_to_the_browser(e2e_run, monkeypatch, capsys):
    import webbrowser

    from reglab.cli import main

    out, _ = e2e_run
    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    assert main(["report", str(out), "--open"]) == 0
    assert opened == [(out / "report.html").resolve().as_uri()]
    monkeypatch.setattr(webbrowser, "open", lambda url: False)  # a machine without a browser: say so, still succeed
    assert main(["report", str(out), "--open"]) == 0
    assert "no web browser found here" in capsys.readouterr().err


def test_seed_config_is_the_original_experiment():
    from reglab.cli import build_parser, config_from_args

    config = config_from_args(build_parser().parse_args(["run", "--config", "configs/seed.toml"]))
    assert config.lambdas == (0.0, 1e-4, 1e-3, 1e-2)
    assert (config.epochs, config.batch_size, config.seeds, config.dataset, config.engine) == (10, 32, 1, "mnist", "fused")
    overridden = config_from_args(build_parser().parse_args(["run", "--config", "configs/seed.toml", "--epochs", "3"]))
    assert overridden.epochs == 3 and overridden.lambdas == config.lambdas


@pytest.mark.slow
def test_mnist_falls_back_to_5k_offline_and_says_so(tmp_path):
    """An empty Keras cache and no network (a proxy that refuses): the run uses mnist-5k, plainly."""
    out = tmp_path / "run"
    keras_home = tmp_path / "keras-home"
    keras_home.mkdir()
    dead = "http://127.0.0.1:9"
    proc = reglab("run", "--lambdas", "0.001", "--epochs", "1", "--seeds", "1", "--out", str(out),
                  env={"KERAS_HOME": str(keras_home), "https_proxy": dead, "HTTPS_PROXY": dead, "http_proxy": dead,
                       "HTTP_PROXY": dead, "no_proxy": "", "NO_PROXY": ""})
    assert proc.returncode == 0, proc.stderr
    assert "no internet connection: could not download MNIST" in proc.stderr and "using mnist-5k instead" in proc.stderr
    assert proc.stderr.count("instead") == 1 and "Downloading data from" not in proc.stderr + proc.stdout  # said once
    assert "note: trained on mnist-5k, not mnist" in proc.stdout
    meta = json.loads((out / "run.json").read_text())
    assert meta["data"]["requested"] == "mnist" and meta["data"]["name"] == "mnist-5k"
    assert meta["data"]["fallback_reason"].startswith("no internet connection: could not download MNIST")
    assert "127.0.0.1" in meta["data"]["fallback_error"] or "Errno" in meta["data"]["fallback_error"]  # the raw error, kept
    report = (out / "report.md").read_text()
    assert "trained on mnist-5k, not mnist" in report and report.count("trained on mnist-5k, not mnist") == 1  # said once


# ---------------------------------------------------------------- bad input

def _npz(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def good_arrays(n=12, side=28):
    rng = np.random.default_rng(0)
    return dict(x_train=rng.integers(0, 256, (n, side, side), dtype=np.uint8), y_train=np.arange(n) % 10,
                x_test=rng.integers(0, 256, (4, side, side), dtype=np.uint8), y_test=np.arange(4))


def bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    g = good_arrays()
    corrupt = tmp / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip")
    missing_keys = {k: v for k, v in g.items() if k != "y_test"}
    return {
        "negative λ": (["--lambdas", "0,-0.01"], "non-negative"),
        "NaN λ": (["--lambdas", "nan"], "finite"),
        "infinite λ": (["--lambdas", "0.1,inf"], "finite"),
        "empty λ list": (["--lambdas", ""], "empty"),
        "non-numeric λ": (["--lambdas", "0,abc"], "not a number"),
        "epochs < 1": (["--epochs", "0"], "epochs"),
        "batch size < 1": (["--batch-size", "-3"], "batch_size"),
        "seeds < 1": (["--seeds", "0"], "seeds"),
        "non-integer epochs": (["--epochs", "2.5"], "--epochs"),
        "unknown dataset": (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        "missing data file": (["--dataset", str(tmp / "nope.npz")], "not found"),
        "corrupt npz": (["--dataset", str(corrupt)], "not a readable .npz"),
        "npz missing keys": (["--dataset", _npz(tmp / "mk.npz", **missing_keys)], "missing array(s) y_test"),
        "npz mismatched lengths": (["--dataset", _npz(tmp / "len.npz", **{**g, "y_train": g["y_train"][:-1]})], "labels for"),
        "npz a table and images": (["--dataset", _npz(tmp / "shape.npz", **{**g, "x_train": g["x_train"].reshape(12, -1)})],
                                   "x_train samples are (784,) but x_test samples are (28, 28)"),
        "npz train/test shapes differ": (["--dataset", _npz(tmp / "diff.npz", **{**g, "x_test": g["x_test"][:, :20, :20]})], "x_test samples"),
        "one class only": (["--dataset", _npz(tmp / "one.npz", **{**g, "y_train": np.full(12, 3), "y_test": np.full(4, 3)})],
                           "the training labels hold 1 class (every label is 3); a classifier needs at least 2"),
        "non-integer labels": (["--dataset", _npz(tmp / "flt.npz", **{**g, "y_train": np.arange(12) + 0.5})], "not integers"),
        "string and number labels": (["--dataset", _npz(tmp / "str.npz", **{**g, "y_train": np.array(["a"] * 12)})],
                                     "the labels mix numbers and strings"),
        "NaN pixels": (["--dataset", _npz(tmp / "nan.npz", **{**g, "x_test": np.full((4, 28, 28), np.nan)})], "NaN"),
        "unknown option": (["--momentum", "3"], "unrecognized arguments: --momentum"),
        "learning rate 0": (["--learning-rates", "0,1e-3"], "learning rate must be positive, got 0.0"),
        "learning rate not a number": (["--learning-rates", "fast"], "learning rate 'fast' is not a number"),
        "unknown engine": (["--engine", "torch"], "invalid choice: 'torch'"),
        "missing config file": (["--config", str(tmp / "nope.toml")], "config file not found"),
    }


def test_every_bad_input_gets_one_line_and_writes_nothing(tmp_path, capsys):
    assert_each_bad_input_is_one_line(bad_inputs(tmp_path), tmp_path, capsys, "--seeds", "1")  # "seeds < 1" overrides it


@pytest.mark.slow
def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    proc = reglab("run", "--lambdas", "-1", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "reglab: error: λ must be non-negative, got -1.0"
    proc = reglab("frobnicate")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "invalid choice" in proc.stderr


def test_existing_run_dir_is_refused_unless_force(e2e_run, tmp_path, capsys):
    out, _ = e2e_run
    before = (out / "metrics.csv").read_bytes()
    assert main(["run", "--dataset", "mnist-5k", "--epochs", "1", "--out", str(out)]) == 2
    assert "already exists (use --force" in capsys.readouterr().err
    assert (out / "metrics.csv").read_bytes() == before

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    assert main(["run", "--dataset", "mnist-5k", "--epochs", "1", "--out", str(foreign), "--force"]) == 2
    assert "not a reglab run directory" in capsys.readouterr().err
    assert (foreign / "thesis.tex").read_text() == "precious"


@pytest.mark.slow
def test_force_replaces_a_previous_run(tmp_path, capsys):
    g = good_arrays(n=60)
    data = _npz(tmp_path / "tiny.npz", **g)
    out = tmp_path / "run"
    assert main(["run", "--dataset", data, "--lambdas", "0", "--epochs", "1", "--seeds", "1", "--out", str(out), "--no-progress"]) == 0
    assert main(["run", "--dataset", data, "--lambdas", "0,0.1", "--epochs", "1", "--seeds", "1", "--out", str(out), "--force",
                 "--no-progress"]) == 0
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert [r["lambda"] for r in rows] == ["0.0", "0.1"]
    capsys.readouterr()


def test_report_on_something_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "not a reglab run directory" in capsys.readouterr().err


@pytest.mark.slow
def test_other_image_sizes_follow_the_data(tmp_path, capsys):
    data = _npz(tmp_path / "small.npz", **good_arrays(n=60, side=8))
    out = tmp_path / "run"
    assert main(["run", "--dataset", data, "--lambdas", "0.001", "--epochs", "1", "--seeds", "1", "--out", str(out), "--no-progress"]) == 0
    meta = json.loads((out / "run.json").read_text())
    assert meta["data"]["input_shape"] == [8, 8] and meta["data"]["n_train"] == 50 and meta["data"]["n_val"] == 10
    capsys.readouterr()


def test_help_documents_every_option():
    proc = reglab("run", "--help")
    assert proc.returncode == 0
    for option in ("--config", "--lambdas", "--seeds", "--seed", "--epochs", "--batch-size", "--dataset", "--engine",
                   "--out", "--force", "--no-progress", "--no-report", "--resume", "--executor", "--blocks", "--address"):
        assert option in proc.stdout
    seeds_help = " ".join(proc.stdout.split("--seeds N", 2)[2].split("--seed S")[0].split())  # the option's own entry
    assert seeds_help.endswith("(default: 3)") and "claims nothing" in seeds_help  # three seeds unless told; one claims nothing


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["fused", pytest.param("keras", marks=pytest.mark.slow)])
def test_ctrl_c_keeps_finished_epochs_and_a_consistent_record(tmp_path, engine):
    import signal
    import time

    out = tmp_path / "run"
    args = ["run", "--dataset", "mnist-5k", "--lambdas", "0,0.001", "--epochs", "200", "--seeds", "1", "--out", str(out), "--no-progress",
            "--engine", engine]
    # As in a terminal: a background job (CI may run us as one) inherits SIGINT ignored, so restore Python's handler.
    code = f"import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); from reglab.cli import main; sys.exit(main({args!r}))"
    with spawned([sys.executable, "-c", code]) as proc:
        metrics = out / "metrics.csv"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and (not metrics.exists() or metrics.read_text().count("\n") < 3):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("reglab: interrupted; finished epochs are kept in") and f"reglab run --resume {out}" in last
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "interrupted" and meta["arms"][0]["status"] == "interrupted"
    rows = list(csv.DictReader(metrics.read_text().splitlines()))
    assert 2 <= len(rows) < 400
    for arm in ("0", "1"):
        epochs = [int(r["epoch"]) for r in rows if r["arm"] == arm]
        assert epochs == list(range(1, len(epochs) + 1))  # whole epochs only, none lost or repeated
    assert main(["report", str(out)]) == 0  # what was finished can be drawn


def test_a_sweep_over_the_arm_cap_is_refused_before_the_data_are_loaded(tmp_path, capsys):
    """One line, exit 2, nothing written, and before the dataset is read (a missing file would say so first)."""
    out, missing = tmp_path / "out", str(tmp_path / "nope.npz")
    assert main(["run", "--lambdas", "0,logspace:1e-6:1e-1:1000", "--seeds", "1", "--dataset", missing, "--out", str(out)]) == 2
    assert capsys.readouterr().err == ("reglab: error: this sweep has 1,001 arms (1,001 settings × 1 seed), more than the "
                                       "cap of 1,000; pass --max-arms 1001 to allow it\n")
    assert main(["run", "--lambdas", "0,0.001", "--seeds", "3", "--max-arms", "5", "--dataset", missing, "--out", str(out)]) == 2
    assert capsys.readouterr().err == ("reglab: error: this sweep has 6 arms (2 settings × 3 seeds), more than the cap "
                                       "of 5; pass --max-arms 6 to allow it\n")
    assert main(["run", "--max-arms", "0", "--out", str(out)]) == 2
    assert "--max-arms must be a positive integer" in capsys.readouterr().err
    # allowed: the next check is the dataset's
    assert main(["run", "--lambdas", "0,0.001", "--seeds", "3", "--max-arms", "6", "--dataset", missing, "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    assert not out.exists()


def test_the_arm_cap_is_not_part_of_the_config_and_is_ignored_on_resume(tmp_path, capsys):
    """A stored config of any size reads back (a resumed run is never refused), and --max-arms is accepted beside
    --resume (the run was allowed when it started): the error here is the missing run's, not the flag's."""
    from reglab.config import MAX_ARMS, SweepConfig, parse_lambdas

    big = SweepConfig(lambdas=parse_lambdas("0,logspace:1e-6:1e-1:1000"), seeds=2)
    assert len(big.arms()) == 2002 > MAX_ARMS
    assert SweepConfig.from_mapping(big.to_dict()) == big
    assert main(["run", "--resume", str(tmp_path / "missing"), "--max-arms", "5"]) == 2
    err = capsys.readouterr().err
    assert "--max-arms" not in err and "not found" in err


# ---------------------------------------------------------------- inputs that would block, or flood the terminal

def one_line_exit_2(capsys, argv: list[str], out: Path, *expected: str) -> str:
    import time

    t0 = time.monotonic()
    assert main([*argv[:1], "--out", str(out), *argv[1:]]) == 2
    assert time.monotonic() - t0 < 60
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("reglab: error: "), lines
    for e in expected:
        assert e in lines[0], lines[0]
    assert not out.exists()
    return lines[0]


def test_a_fifo_or_a_device_as_config_is_refused_at_once(tmp_path, capsys):
    fifo = tmp_path / "x.toml"
    os.mkfifo(fifo)
    one_line_exit_2(capsys, ["run", "--config", str(fifo)], tmp_path / "out", str(fifo), "FIFO")
    one_line_exit_2(capsys, ["run", "--config", "/dev/zero"], tmp_path / "out", "/dev/zero", "character device")
    one_line_exit_2(capsys, ["run", "--config", str(tmp_path)], tmp_path / "out", "a directory")


def test_a_fifo_as_dataset_is_refused_at_once(tmp_path, capsys):
    fifo = tmp_path / "x.npz"
    os.mkfifo(fifo)
    one_line_exit_2(capsys, ["run", "--dataset", str(fifo)], tmp_path / "out", str(fifo), "FIFO")


def test_a_config_over_1_mib_is_refused(tmp_path, capsys):
    big = tmp_path / "big.toml"
    big.write_text('dataset = "' + "x" * (5 << 20) + '"\n')
    line = one_line_exit_2(capsys, ["run", "--config", str(big)], tmp_path / "out", "more than reglab reads")
    assert len(line) <= 300


@pytest.mark.slow
@pytest.mark.parametrize("what", ["config", "dataset"])
def test_a_fifo_never_hangs_a_real_process(tmp_path, what):
    fifo = tmp_path / ("x.toml" if what == "config" else "x.npz")
    os.mkfifo(fifo)
    with spawned([sys.executable, "-m", "reglab", "run", f"--{what}", str(fifo), "--out", str(tmp_path / "out")]) as proc:
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("reglab: error: ") and "FIFO" in stderr, stderr
    assert not (tmp_path / "out").exists()


def test_error_lines_are_cut_to_a_readable_length(tmp_path, capsys):
    long_path = tmp_path / ("d" * 200) / ("e" * 200) / ("f" * 200 + ".toml")
    line = one_line_exit_2(capsys, ["run", "--config", str(long_path)], tmp_path / "out", "config file not found")
    assert len(line) == 300 and line.endswith("…")
    newline = tmp_path / "a\nb\r\nc.toml"
    line = one_line_exit_2(capsys, ["run", "--config", str(newline)], tmp_path / "out", "config file not found")
    assert line.endswith("a b c.toml")


def test_a_5_mb_value_comes_back_short(tmp_path, capsys):
    for args in (["--lambdas", "1," + "9" * (5 << 20)], ["--lambdas", "x" * (5 << 20)], ["--dataset", "q" * (5 << 20)],
                 ["--model", "m" * (5 << 20)], ["--regularizer", "r" * (5 << 20)]):
        line = one_line_exit_2(capsys, ["run", *args], tmp_path / "out")
        assert len(line) <= 300, args[0]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=2000))
def test_any_lambdas_text_gives_one_short_line(tmp_path, capsys, text):
    """--epochs 0 makes every run invalid, so whatever the λ text, the answer is one line of at most 300 characters."""
    line = one_line_exit_2(capsys, ["run", f"--lambdas={text}", "--epochs", "0"], tmp_path / "out")
    assert len(line) <= 300


def test_paths_the_system_refuses_are_one_line(tmp_path, capsys):
    """A name too long for the system, or one with a NUL (possible in a TOML preset): exit 2, never exit 1 or a traceback."""
    one_line_exit_2(capsys, ["run", "--dataset", "q" * 5000], tmp_path / "out", "unknown dataset")
    one_line_exit_2(capsys, ["run", "--dataset", "q/" + "q" * 5000 + ".npz"], tmp_path / "out", "File name too long")
    for setting, expected in (("dataset", "not found: a\\x00b.npz"), ("model", "NUL")):
        preset = tmp_path / f"{setting}.toml"
        preset.write_text(f'{setting} = "a\\u0000b.npz{":build" if setting == "model" else ""}"\n')
        line = one_line_exit_2(capsys, ["run", "--config", str(preset), "--lambdas", "0",
                                        *(["--dataset", "mnist-5k"] if setting == "model" else [])], tmp_path / "out", expected)
        assert "\x00" not in line


def test_control_characters_in_an_error_line_are_shown_escaped(tmp_path, capsys):
    """A terminal escape in a path (here: clear the screen) is printed as text, not obeyed."""
    line = one_line_exit_2(capsys, ["run", "--config", str(tmp_path / "\x1b[2J\x07.toml")], tmp_path / "out", "not found")
    assert line.endswith("\\x1b[2J\\x07.toml") and "\x1b" not in line


KERAS_IMPORT_CHECK = """
import sys
{before}
from reglab.model.keras_import import import_keras_for_a_run
import_keras_for_a_run()
from keras.src.trainers.data_adapters import array_slicing
from keras.src.wrappers import fixes
print(array_slicing.pandas is not None, fixes.sklearn is not None, "pandas" in sys.modules, "sklearn" in sys.modules)
import pandas, sklearn.datasets  # the real modules, for reglab's CSV reader and bundled tables
from reglab._keras import keras
print(type(pandas.DataFrame).__name__, len(sklearn.datasets.load_wine().target), keras.backend.backend())
"""


@pytest.mark.slow
@pytest.mark.parametrize("before", ["", pytest.param("import pandas, sklearn", marks=pytest.mark.slow)])
def test_a_run_imports_keras_without_pandas_and_scikit_learn_unless_already_there(before):
    """Keras's optional integrations cost a run 2 s of start-up and serve nothing reglab does; a process that
    already holds pandas and scikit-learn keeps them, and both import normally afterwards."""
    out = subprocess.run([sys.executable, "-c", KERAS_IMPORT_CHECK.format(before=before)], capture_output=True,
                         text=True, timeout=300, check=False, env={**os.environ, "REGLAB_DEBUG": "1"})
    assert out.returncode == 0, out.stderr
    integrations, real_modules = out.stdout.splitlines()
    assert integrations == ("True True True True" if before else "False False False False")
    assert real_modules == "type 178 jax"


REFUSED_BEFORE_KERAS = """
import sys
from reglab.cli import main
codes = [main(argv) for argv in {cases!r}]
print(codes, "keras" in sys.modules, "jax" in sys.modules)
"""


def test_a_refused_flag_is_said_before_keras_is_imported(tmp_path):
    """A mistyped flag costs the user under a second, not Keras's start-up: the run's flags, its config file
    and the --resume, --adaptive and --confirm refusals are all checked first."""
    cases = [["run", "--epochs", "0"], ["run", "--lambdas", "0,x"], ["run", "--config", str(tmp_path / "no.toml")],
             ["run", "--resume", str(tmp_path), "--epochs", "2"], ["run", "--adaptive", "--seeds", "2"],
             ["run", "--blocks", "2"], ["run", "--budget", "10"], ["run", "--confirm", "--lambdas", "0"],
             ["run", "--confirm", "--seed", "3"]]
    out = subprocess.run([sys.executable, "-c", REFUSED_BEFORE_KERAS.format(cases=cases)], capture_output=True,
                         text=True, timeout=120, check=False, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == f"{[2] * len(cases)} False False", out.stdout
    assert len(out.stderr.strip().splitlines()) == len(cases)  # one line each


def test_run_help_shows_the_logspace_syntax(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "logspace:START:STOP:N" in out and "original study" in out
