"""reglab run --adaptive: rounds recorded as ordinary runs, the plan in adaptive.json, a confirmation on fresh seeds
scored on the test set, the rounds merged into one metrics.csv and run.json, resume across rounds to the very record an
uninterrupted sweep writes, and one-line refusals."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import time
from pathlib import Path

import pytest
from rich.console import Console

import reglab
from helpers import assert_refused_in_one_line, cut_adaptive_sweep, metric_values, reglab_argv, rows_without_seconds, spawned
from reglab.analysis.adaptive import CONFIRM_SEED, AdaptiveOptions, first_round
from reglab.cli import main
from reglab.config import SweepConfig
from reglab.errors import RunDirError
from reglab.record.schema import COLUMNS, read_run_meta
from reglab.run.adaptive import (
    ADAPTIVE_JSON,
    SWEEP_RUN_FORMAT,
    clear_adaptive_dir,
    load_adaptive,
    resume_adaptive,
    round_config,
    run_adaptive,
)

ARGS = ["--adaptive", "--dataset", "wine", "--epochs", "2", "--no-progress"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One uninterrupted adaptive sweep on wine, 2 epochs an arm (in this process)."""
    out = tmp_path_factory.mktemp("adaptive") / "run"
    config = SweepConfig(dataset="wine", epochs=2)
    return run_adaptive(config, AdaptiveOptions(epochs=2), out, console=Console(quiet=True), live=False)


@pytest.mark.parametrize("extra, words", [
    (["--lambdas", "0,1e-3"], "--lambdas cannot be used with --adaptive"),
    (["--seeds", "3"], "--seeds cannot be used with --adaptive"),
    (["--executor", "blocks"], "--executor cannot be used with --adaptive"),
    (["--regularizer", "l2,l1"], "one regularizer family"),
    (["--learning-rates", "1e-3,1e-2"], "at one learning rate"),
    (["--early-stopping", "2"], "no early stopping"),
    (["--budget", "10"], "cannot pay for the start round"),
])
def test_what_an_adaptive_sweep_chooses_itself_is_refused_in_one_line(extra, words, tmp_path, capsys):
    out = tmp_path / "run"
    assert_refused_in_one_line(["run", *ARGS, *extra, "--out", str(out)], words, out, capsys)


def test_a_budget_without_adaptive_is_refused(tmp_path, capsys):
    assert main(["run", "--dataset", "wine", "--budget", "100", "--out", str(tmp_path / "run")]) == 2
    assert "--budget is for --adaptive sweeps" in capsys.readouterr().err


def test_a_damaged_adaptive_record_is_one_line(tmp_path):
    (tmp_path / ADAPTIVE_JSON).write_text('{"format": "reglab-adaptive/1", "rounds": [')
    with pytest.raises(RunDirError, match="adaptive.json: unreadable"):
        load_adaptive(tmp_path)


@pytest.mark.slow
def test_every_round_is_a_complete_run_of_exactly_the_arms_it_planned(swept):
    rounds = swept.rounds
    assert rounds[0] == first_round(swept.options)
    arms = []
    for r in rounds:
        meta = read_run_meta(swept.round_dir(r))
        assert meta["status"] == "completed"
        config = SweepConfig.from_mapping(meta["config"])
        assert config == round_config(swept.config, r)
        arms += [(a["lambda"], a["seed"]) for a in meta["arms"]]
    assert len(arms) == len(set(arms)), "an arm trained twice"
    assert sum(len(r.strengths) * len(r.seeds) for r in rounds) == len(arms)
    assert swept.arm_epochs == 2 * len(arms)


@pytest.mark.slow
def test_the_confirmation_uses_fresh_seeds_scored_on_the_test_set(swept):
    last = swept.rounds[-1]
    assert last.confirming and all(r.confirming is False for r in swept.rounds[:-1])
    assert min(last.seeds) >= CONFIRM_SEED > max(s for r in swept.rounds[:-1] for s in r.seeds)
    meta = read_run_meta(swept.round_dir(last))
    assert meta["config"]["score_on"] == "test" and meta["data"]["n_val"] == meta["data"]["n_test"]
    assert swept.verdict is not None and swept.verdict.chosen in last.strengths and swept.verdict.seeds == last.seeds
    assert swept.status == "completed" and swept.finished is not None and swept.finished.open == ()
    exploration = {r.number for r in swept.rounds if not r.confirming}
    assert len(exploration) == len(swept.rounds) - 1


@pytest.mark.slow
def test_the_record_reads_back_and_reglab_report_prints_the_answer(swept, capsys):
    again = load_adaptive(swept.run_dir)
    assert again == swept
    assert (swept.run_dir / "report.html").is_file() and (swept.run_dir / "figures" / "adaptive_path.png").is_file()
    (swept.run_dir / "report.html").unlink()
    assert main(["report", str(swept.run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"{swept.summary()}\nreport: {swept.run_dir / 'report.html'}"
    page = (swept.run_dir / "report.html").read_text()
    assert "comes from an adaptive sweep" in page and "data:image/png;base64," in page
    assert "fresh seeds scored on the test set" in out and f"round {len(swept.rounds)} (confirm" in out
    assert main(["run", "--resume", str(swept.run_dir)]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def _merged_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _merged_values(run_dir: Path) -> tuple[list[list[str]], list[dict]]:
    """The merged metrics.csv without its seconds column (rows in file order) and run.json's arms without their
    times: what equal sweeps write alike."""
    rows = rows_without_seconds(run_dir)
    times = {"started_at", "ended_at", "seconds"}
    arms = [{k: v for k, v in arm.items() if k not in times} for arm in json.loads((run_dir / "run.json").read_text())["arms"]]
    return rows, arms


@pytest.mark.slow
def test_the_merged_metrics_csv_holds_every_rounds_rows_with_its_round_and_why(swept):
    rows = _merged_rows(swept.run_dir)
    assert list(rows[0]) == ["round", "why", *COLUMNS]
    arm_epochs = [(int(r["arm"]), int(r["epoch"])) for r in rows]
    assert len(arm_epochs) == len(set(arm_epochs)) == swept.arm_epochs  # one row per arm and epoch
    assert sorted({a for a, _ in arm_epochs}) == list(range(swept.arm_epochs // swept.options.epochs))
    first = 0
    for r in swept.rounds:
        mine = [row for row in rows if row["round"] == str(r.number)]
        why = {a.strength: a.why for a in r.additions}
        assert all(row["why"] == why[float(row["lambda"])] for row in mine)
        with open(swept.round_dir(r) / "metrics.csv", newline="") as f:
            own = list(csv.DictReader(f))
        assert sorted(tuple({**row, "arm": str(int(row["arm"]) + first)}.values()) for row in own) == \
            sorted(tuple(v for k, v in row.items() if k not in ("round", "why")) for row in mine)  # copied, as text
        first += len(r.additions) * len(r.seeds)
    assert [int(row["round"]) for row in rows] == sorted(int(row["round"]) for row in rows)  # in round order


@pytest.mark.slow
def test_the_merged_run_json_lists_every_arm_once_with_its_round_and_why(swept):
    meta = json.loads((swept.run_dir / "run.json").read_text())
    assert (meta["format"], meta["status"], meta["arm_epochs"]) == (SWEEP_RUN_FORMAT, "completed", swept.arm_epochs)
    arms = meta["arms"]
    assert [a["arm"] for a in arms] == list(range(len(arms)))
    merged_rows = {(int(row["arm"]), row["round"], row["why"]) for row in _merged_rows(swept.run_dir)}
    assert merged_rows == {(a["arm"], str(a["round"]), a["why"]) for a in arms}  # the same numbers as metrics.csv
    for r in swept.rounds:
        mine = [a for a in arms if a["round"] == r.number]
        own = read_run_meta(swept.round_dir(r))["arms"]
        assert [a["round_arm"] for a in mine] == [a["arm"] for a in own]
        why = {a.strength: a.why for a in r.additions}
        for a, o in zip(mine, own, strict=True):
            assert a["why"] == why[a["lambda"]] and a["dir"] == f"rounds/{r.number:02d}"
            assert a["scored_on"] == ("test" if r.confirming else "validation")
            assert {k: v for k, v in a.items() if k not in ("arm", "round", "round_arm", "why", "dir", "scored_on")} == \
                {k: v for k, v in o.items() if k != "arm"}


def test_load_run_on_an_adaptive_sweep_says_what_reads_it_in_one_line(tmp_path):
    (tmp_path / ADAPTIVE_JSON).write_text("{}")
    (tmp_path / "run.json").write_text(json.dumps({"format": SWEEP_RUN_FORMAT, "arms": []}))
    with pytest.raises(RunDirError) as e:
        reglab.load_run(tmp_path)
    assert "is an adaptive sweep" in str(e.value) and f"reglab report {tmp_path}" in str(e.value)
    assert len(str(e.value).splitlines()) == 1


@pytest.mark.slow
def test_readers_of_one_run_refuse_the_sweep_but_read_its_rounds(swept):
    for read in (reglab.load_run, reglab.run_splits, reglab.load_model):
        with pytest.raises(RunDirError, match="is an adaptive sweep, not one run"):
            read(swept.run_dir)
    assert len(reglab.load_run(swept.round_dir(swept.rounds[0])).arm_records) == len(read_run_meta(swept.round_dir(swept.rounds[0]))["arms"])


@pytest.mark.slow
def test_clearing_an_adaptive_sweep_removes_the_merged_record_and_keeps_the_users_files(swept, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(swept.run_dir, d)
    (d / "notes.txt").write_text("mine")
    listed = json.loads((d / "manifest.json").read_text())["files"]
    assert {"run.json", "metrics.csv"} <= set(listed)
    clear_adaptive_dir(d)
    left = sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and p.name != ".reglab.lock")
    assert left == ["notes.txt"] and (d / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_rounds_whose_columns_differ_are_not_merged_but_refused_in_one_line(swept, tmp_path):
    """A round with metrics.csv as reglab wrote it before learning rates were swept reads back as a run, but its
    rows have a column fewer than round 1's: the merged metrics.csv would be ragged, so the sweep says which file."""
    d = cut_adaptive_sweep(swept.run_dir, tmp_path / "run", 2)
    path = d / "rounds" / "02" / "metrics.csv"
    path.write_text("".join(line.rpartition(",")[0] + "\n" for line in path.read_text().splitlines()))
    with pytest.raises(RunDirError) as e:
        resume_adaptive(d, console=Console(quiet=True), live=False)
    assert str(e.value).startswith(f"{path}: its columns differ from round 1's") and len(str(e.value).splitlines()) == 1


def _wait_for(path: Path, proc, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.exists(), f"{path} never appeared"


@pytest.mark.slow
def test_killed_across_a_round_boundary_and_resumed_the_sweep_is_the_uninterrupted_one(swept, tmp_path):
    """SIGKILL as soon as round 2 is planned (its directory appears), then again as round 3's appears; each resume
    finishes the round it finds and plans the very rounds an uninterrupted sweep planned, bit for bit."""
    d = tmp_path / "run"
    with spawned(reglab_argv("run", *ARGS, "--out", str(d))) as proc:
        _wait_for(d / "rounds" / "02", proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    assert json.loads((d / ADAPTIVE_JSON).read_text())["status"] == "running"  # killed: nobody wrote "interrupted"
    with spawned(reglab_argv("run", "--resume", str(d), "--no-progress")) as proc:
        if len(swept.rounds) > 3:
            _wait_for(d / "rounds" / "03", proc)
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=600)
    with spawned(reglab_argv("run", "--resume", str(d), "--no-progress")) as proc:
        out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    got = load_adaptive(d)
    assert got.rounds == swept.rounds and got.verdict == swept.verdict and got.status == "completed"
    for r in swept.rounds:
        mine, ref = got.round_dir(r), swept.round_dir(r)
        assert metric_values(mine) == metric_values(ref), r.number
        assert (mine / "validation.npz").read_bytes() == (ref / "validation.npz").read_bytes(), r.number
    assert _merged_values(d) == _merged_values(swept.run_dir)
    assert json.loads((d / "run.json").read_text())["status"] == "completed"
    assert out.strip() == swept.summary().replace(str(swept.run_dir), str(d)).strip()


@pytest.mark.slow
def test_force_replaces_an_adaptive_sweep_and_keeps_the_users_files(swept, tmp_path, capsys):
    d = tmp_path / "run"
    shutil.copytree(swept.run_dir, d)  # a completed sweep (the same ARGS; trained once per module)
    (d / "notes.txt").write_text("mine")
    assert main(["run", *ARGS, "--out", str(d)]) == 2
    assert "already exists" in capsys.readouterr().err
    (d / "metrics.csv").write_text("left by the sweep --force replaces\n")
    assert main(["run", *ARGS, "--out", str(d), "--force"]) == 0
    assert (d / "notes.txt").read_text() == "mine"
    assert load_adaptive(d).rounds == swept.rounds
    assert _merged_values(d) == _merged_values(swept.run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("left", [("run.json", "manifest.json", ".config.toml.tmp"), ("manifest.json", ".run.json.tmp"),
                                  (".manifest.json.tmp",)])
def test_a_round_killed_while_its_record_was_being_started_is_started_over(swept, tmp_path, left):
    """Found by the kill test: a round killed after its run.json (or before it, or before its manifest, was in
    place) but before anything was recorded is not a run `--resume` can continue; the sweep starts that round
    over, to the same record."""
    d = cut_adaptive_sweep(swept.run_dir, tmp_path / "run", 2, status="running")
    second = d / "rounds" / "02"
    run_meta = json.loads((second / "run.json").read_text())
    (second / "run.json").write_text(json.dumps({**run_meta, "status": "running"}))  # as a run just started says
    if ".run.json.tmp" in left:
        (second / "run.json").rename(second / ".run.json.tmp")
    for f in second.iterdir():
        if f.name not in left:
            f.unlink() if f.is_file() else shutil.rmtree(f)
    for name in left:
        if name.endswith(".tmp") and not (second / name).exists():  # a first write cut short
            (second / name).write_text("")
    got = resume_adaptive(d, console=Console(quiet=True), live=False)
    assert got.rounds == swept.rounds and got.verdict == swept.verdict
    assert metric_values(second) == metric_values(swept.round_dir(swept.rounds[1]))
