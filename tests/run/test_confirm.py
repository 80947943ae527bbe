"""reglab run --confirm: the user's grid as round 1 (an ordinary run with its own report), then its best strength and
λ = 0 on fresh seeds scored on the test set, the answer's claim; one-line refusals; resume between the two rounds."""

from __future__ import annotations

import contextlib
import html
import io
import json

import pytest

import reglab
from helpers import assert_refused_in_one_line, cut_adaptive_sweep
from reglab.analysis.adaptive import CONFIRM_SEED
from reglab.cli import main
from reglab.record.schema import read_run_meta
from reglab.report.adaptive import GRID_INTRO
from reglab.run.adaptive import ADAPTIVE_JSON, load_adaptive

GRID = (0.0, 1e-3, 1e-1)
ARGS = ["--confirm", "--dataset", "wine", "--epochs", "2", "--lambdas", "0,1e-3,1e-1", "--seeds", "2", "--no-progress"]


@pytest.mark.parametrize("extra, words", [
    (["--adaptive"], "--confirm cannot be used with --adaptive"),
    (["--budget", "100"], "--budget is for --adaptive sweeps"),
    (["--seed", "5"], "--seed cannot be used with --confirm"),
    (["--executor", "blocks"], "--executor cannot be used with --confirm"),
    (["--no-report"], "--no-report cannot be used with --confirm"),
    (["--regularizer", "l2,l1"], "one regularizer family"),
    (["--learning-rates", "1e-3,1e-2"], "at one learning rate"),
    (["--early-stopping", "2"], "no early stopping"),
    (["--lambdas", "0"], "no nonzero strength"),
    (["--strengths", "l2=0,1e-3"], "--strengths cannot be used with --confirm"),
    (["--max-arms", "4"], "more than the cap of 4"),
])
def test_what_a_confirmed_grid_cannot_do_is_refused_in_one_line(extra, words, tmp_path, capsys):
    out = tmp_path / "run"
    assert_refused_in_one_line(["run", *ARGS, *extra, "--out", str(out)], words, out, capsys)


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory):
    """`reglab run --confirm` on wine: 3 strengths × 2 seeds, 2 epochs an arm; its directory and stdout."""
    out = tmp_path_factory.mktemp("confirm") / "run"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["run", *ARGS, "--out", str(out)]) == 0
    return out, buf.getvalue()


@pytest.mark.slow
def test_the_grid_is_round_one_exactly_as_given_with_its_own_report(confirmed):
    out, _ = confirmed
    run = load_adaptive(out)
    grid = run.rounds[0]
    assert run.options.grid == GRID and grid.strengths == GRID and grid.seeds == (0, 1) and not grid.confirming
    meta = read_run_meta(run.round_dir(grid))
    assert meta["config"].get("score_on", "validation") == "validation" and len(meta["arms"]) == 6 and meta["status"] == "completed"
    assert (run.round_dir(grid) / "report.html").is_file() and (run.round_dir(grid) / "figures").is_dir()
    assert len(run.rounds) == 2 and run.status == "completed"


@pytest.mark.slow
def test_the_grids_own_best_is_confirmed_on_fresh_seeds_scored_on_the_test_set(confirmed):
    out, stdout = confirmed
    run = load_adaptive(out)
    last = run.rounds[-1]
    assert last.confirming and last.seeds == (CONFIRM_SEED, CONFIRM_SEED + 1, CONFIRM_SEED + 2)
    assert read_run_meta(run.round_dir(last))["config"]["score_on"] == "test"
    grid = reglab.analyze(reglab.load_run(run.round_dir(run.rounds[0])))
    best = grid.main.recommended.strength
    assert run.verdict is not None and run.verdict.best == best  # the grid's answer chose it, as its report says
    # the grid's own answer is said beside the confirmation's, so its report (round 1) never reads as a contradiction
    headline = grid.summary().splitlines()[0]
    assert run.verdict.grid_answer == headline
    assert f"The grid alone (round 1, its intervals simultaneous over its strengths) said: {headline}" in stdout
    assert last.strengths == (0.0, best if best > 0 else run.verdict.chosen) and run.verdict.seeds == last.seeds
    assert stdout.strip() == run.summary().strip()
    assert "The grid's own report, every strength drawn: rounds/01/report.html" in stdout
    assert "How: the grid, then its confirmation on fresh seeds: 2 rounds, 12 arms, 24 arm-epochs:" in stdout
    page = (out / "report.html").read_text()
    assert html.escape(GRID_INTRO) in page and "href='rounds/01/report.html'" in page


@pytest.mark.slow
def test_stopped_after_the_grid_and_resumed_it_confirms_as_an_uninterrupted_run(confirmed, tmp_path, capsys):
    out, _ = confirmed
    whole = load_adaptive(out)
    d = cut_adaptive_sweep(out, tmp_path / "run", keep=1)
    assert json.loads((d / ADAPTIVE_JSON).read_text())["options"]["grid"] == list(GRID)
    assert main(["run", "--resume", str(d), "--no-progress"]) == 0
    again = load_adaptive(d)
    assert again.rounds == whole.rounds and again.verdict == whole.verdict and again.options == whole.options
    assert capsys.readouterr().out.strip() == again.summary().strip()
