"""Blocks of arms, one after another or as Ray tasks: the same record as one process, nothing lost
when a worker dies, and a driver that dies resumes like any run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import metric_values, reglab_argv, spawned
from reglab.config import SweepConfig
from reglab.engines.base import Listener
from reglab.run.cluster import Block, StrategyChosen, _Driver, _layout, block_config, blocks_of, global_arm, make_blocks
from reglab.settings import Setting

ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")  # CI installs reglab[ray]


@pytest.mark.parametrize("learning_rates", [(0.001,), (0.01, 0.001, 0.1)])
@pytest.mark.parametrize("families", [("l2",), ("l2", "weight_decay", "l1_l2:0.5")])
@pytest.mark.parametrize("seeds, lams, n", [(1, 5, 2), (3, 4, 2), (3, 4, 5), (2, 3, 100), (4, 1, 3)])
def test_blocks_cover_every_arm_once(seeds, lams, n, families, learning_rates):
    config = SweepConfig(lambdas=tuple(0.001 * i for i in range(lams)), seeds=seeds, seed=7, dataset="x",
                         regularizers=families, strengths={"weight_decay": (0.0, 0.5)} if len(families) > 1 else {},
                         learning_rates=learning_rates)
    blocks = make_blocks(config, n)
    covered = sorted(global_arm(config, b, local) for b in blocks for local in range(len(b.seeds) * len(b.settings)))
    assert covered == list(range(len(config.arms())))
    assert len(blocks) == min(n, len(config.arms())) or n < seeds or len(blocks) >= n
    arms = config.arms()
    for b in blocks:
        assert list(b.seeds) == list(range(b.seeds[0], b.seeds[0] + len(b.seeds)))  # contiguous seeds
        # the block's own sweep trains exactly its arms, in the sweep's order
        sub = block_config(config, b).arms()
        assert [(a.seed, a.setting) for a in sub] == [
            (arms[g].seed, arms[g].setting) for g in (global_arm(config, b, i) for i in range(len(sub)))]
    assert blocks_of(_layout(blocks)) == blocks  # as a checkpoint keeps them


def test_global_arm_maps_block_arms_to_the_sweep():
    config = SweepConfig(lambdas=(0.0, 0.1, 0.2), seeds=2, seed=5, dataset="x")
    block = Block(0, (6,), (Setting("l2", 0.1), Setting("l2", 0.2)))
    assert [global_arm(config, block, i) for i in range(2)] == [4, 5]
    assert [(a.seed, a.strength) for a in config.arms()][4:] == [(6, 0.1), (6, 0.2)]


def test_the_driver_names_every_strategy_its_blocks_used_once():
    said = []

    class Said(Listener):
        def strategy_chosen(self, name: str) -> None:
            said.append(name)

    config = SweepConfig(lambdas=(0.0, 0.1), seeds=2, dataset="x")
    driver = _Driver(config, make_blocks(config, 3), Said(), None)
    for index, name in [(0, "packed"), (1, "packed"), (2, "vmap"), (0, "packed")]:
        driver.handle(index, StrategyChosen(name))
    assert said == ["packed", "packed, vmap"]  # run.json keeps the last: both, in the order first used


def reglab(*args: str):
    """`python -m reglab ARGS` as a context manager: killed and reaped on every way out of the block."""
    return spawned(reglab_argv(*args))


def finish(proc: subprocess.Popen) -> str:
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return err


def run_to_end(*args: str) -> str:
    with reglab(*args) as proc:
        return finish(proc)


SWEEP = ["--dataset", "mnist-5k", "--lambdas", "0,0.001,0.01", "--seeds", "2", "--batch-size", "16", "--no-progress", "--no-report"]


@pytest.fixture(scope="module")
def blocks_reference(tmp_path_factory) -> Path:
    """The reference: the same 2 blocks trained one after another in one process."""
    d = tmp_path_factory.mktemp("cluster") / "blocks"
    err = run_to_end("run", *SWEEP, "--epochs", "6", "--executor", "blocks", "--blocks", "2", "--out", str(d))
    assert "block 2/2 reported; 36/36 arm-epochs done; best λ so far" in err  # one progress line for the sweep
    assert json.loads((d / "run.json").read_text())["engine_strategy"] == "packed"  # both blocks said it; named once
    return d


def ray_block_workers() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "ray::_ray_block" in line]


@pytest.mark.slow
def test_ray_gives_the_record_of_the_same_blocks_in_one_process_even_when_a_worker_is_killed(blocks_reference, tmp_path):
    """One Ray run (each start of Ray costs tens of seconds here): a worker killed mid-block is retried, and the
    record is the one the same blocks give one after another in one process: nothing lost, nothing twice."""
    d = tmp_path / "ray-kill"
    with reglab("run", *SWEEP, "--epochs", "6", "--executor", "ray", "--blocks", "2", "--out", str(d)) as proc:
        deadline = time.monotonic() + 300
        killed = None
        while proc.poll() is None and time.monotonic() < deadline and killed is None:
            metrics = d / "metrics.csv"
            if metrics.exists() and metrics.read_text().count("\n") >= 3:  # some epochs recorded: the blocks are mid-way
                workers = ray_block_workers()
                if workers:
                    killed = workers[0]
                    os.kill(killed, signal.SIGKILL)
            time.sleep(0.05)
        assert killed is not None, "no Ray worker was found running a block"
        finish(proc)
    assert metric_values(d) == metric_values(blocks_reference)  # nothing lost, nothing recorded twice
    assert (d / "validation.npz").read_bytes() == (blocks_reference / "validation.npz").read_bytes()
    meta = json.loads((d / "run.json").read_text())
    assert meta["executor"]["name"] == "ray" and meta["executor"]["blocks"] == 2
    assert meta["executor"]["cluster"]["nodes"] == 1 and meta["executor"]["cluster"]["CPU"] >= 1
    ref = json.loads((blocks_reference / "run.json").read_text())
    assert [a["test"] for a in meta["arms"]] == [a["test"] for a in ref["arms"]]
    assert meta["engine_strategy"] == "packed"  # said by the Ray workers, through the coordinator


@pytest.mark.slow
def test_blocks_of_a_learning_rate_sweep_give_the_record_of_one_program(tmp_path):
    """Two learning rates in 3 blocks (blocks never span two rates): the same record as all arms in one program."""
    args = ["--dataset", "mnist-5k", "--lambdas", "0,0.01", "--learning-rates", "1e-3,3e-3", "--batch-size", "16",
            "--epochs", "2", "--seeds", "1", "--no-progress"]
    run_to_end("run", *args, "--out", str(tmp_path / "local"))
    run_to_end("run", *args, "--executor", "blocks", "--blocks", "3", "--out", str(tmp_path / "blocks"))
    assert metric_values(tmp_path / "blocks") == metric_values(tmp_path / "local")
    assert {r[-1] for r in metric_values(tmp_path / "blocks")} == {"0.001", "0.003"}  # the learning_rate column
    meta = json.loads((tmp_path / "blocks" / "run.json").read_text())
    assert [a["learning_rate"] for a in meta["arms"]] == [0.001, 0.001, 0.003, 0.003]


@pytest.mark.slow
def test_a_killed_driver_resumes(blocks_reference, tmp_path):
    d = tmp_path / "blocks-kill"
    with reglab("run", *SWEEP, "--epochs", "6", "--executor", "blocks", "--blocks", "2", "--out", str(d)) as proc:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            metrics = d / "metrics.csv"
            if metrics.exists() and metrics.read_text().count("\n") >= 8:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    run_to_end("run", "--resume", str(d))
    assert metric_values(d) == metric_values(blocks_reference)
    assert (d / "validation.npz").read_bytes() == (blocks_reference / "validation.npz").read_bytes()


def test_executor_flags_are_checked(tmp_path, capsys):
    from reglab.cli import main

    out = str(tmp_path / "x")
    assert main(["run", "--blocks", "2", "--out", out]) == 2
    assert "--blocks and --address need --executor" in capsys.readouterr().err
    assert main(["run", "--executor", "ray", "--engine", "keras", "--out", out]) == 2
    assert "cannot be used with it" in capsys.readouterr().err
    assert main(["run", "--executor", "blocks", "--blocks", "0", "--out", out]) == 2
    assert "--blocks must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_without_ray_installed_the_error_says_how_to_get_it(monkeypatch, tmp_path, capsys):
    from reglab.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    assert main(["run", "--executor", "ray", "--dataset", "mnist-5k", "--epochs", "1", "--out", str(tmp_path / "x")]) == 2
    assert "pip install 'reglab[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # refused before anything was written
