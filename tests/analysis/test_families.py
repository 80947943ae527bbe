"""A sweep of several regularizer families end to end: the record, the per-family analysis and the report,
checked against numbers recomputed here from metrics.csv, run.json and kernels.npz."""

from __future__ import annotations

import csv
import json
import statistics

import numpy as np
import pytest

from reglab.analysis.families import family_view
from reglab.analysis.views import compare_families
from reglab.cli import main
from reglab.record.reader import load_run

ARGS = ["--dataset", "mnist-5k", "--regularizer", "l2,l1,weight_decay", "--lambdas", "0,0.001,0.01",
        "--strengths", "weight_decay=0,0.05", "--seeds", "2", "--epochs", "2", "--no-progress"]


@pytest.fixture(scope="module")
def family_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("families") / "run"
    assert main(["run", *ARGS, "--out", str(out)]) == 0
    return out


def finals_from_csv(out):
    """(family, λ) → seed → final validation data loss, straight from metrics.csv."""
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    last = {}
    for r in rows:
        last[int(r["arm"])] = r  # rows come in epoch order
    table: dict[tuple[str, float], dict[int, float]] = {}
    for r in last.values():
        table.setdefault((r["regularizer"], float(r["lambda"])), {})[int(r["seed"])] = float(r["val_data_loss"])
    return table


@pytest.mark.slow
def test_the_record_says_which_family_each_arm_is(family_run):
    meta = json.loads((family_run / "run.json").read_text())
    got = [(a["regularizer"], a["lambda"], a["seed"]) for a in meta["arms"]]
    per_seed = [("l2", 0.0), ("l2", 0.001), ("l2", 0.01), ("l1", 0.0), ("l1", 0.001), ("l1", 0.01),
                ("weight_decay", 0.0), ("weight_decay", 0.05)]
    assert got == [(f, lam, s) for s in (0, 1) for f, lam in per_seed]
    rows = list(csv.DictReader((family_run / "metrics.csv").read_text().splitlines()))
    assert len(rows) == 16 * 2
    for r in rows:
        assert r["regularizer"] == meta["arms"][int(r["arm"])]["regularizer"]
        if r["regularizer"] == "weight_decay":
            assert float(r["penalty"]) == 0.0
        elif float(r["lambda"]) > 0:
            assert float(r["penalty"]) > 0


def test_each_family_best_strength_is_what_metrics_csv_says(family_run):
    table = finals_from_csv(family_run)
    summaries = {s.family: s for s in compare_families(load_run(family_run))}
    assert list(summaries) == ["l2", "l1", "weight_decay"]
    for family, s in summaries.items():
        means = {lam: statistics.fmean(v.values()) for (f, lam), v in table.items() if f == family}
        best = min(means, key=lambda lam: (means[lam], lam))
        assert s.recommended.strength == best and s.recommended.setting.family == family
        assert s.recommended.estimate.mean == pytest.approx(means[best], abs=1e-12)
        assert s.loss_range == pytest.approx(max(means.values()) - min(means.values()), abs=1e-12)


def test_l1_sparsity_and_shrink_are_what_the_kernels_say(family_run):
    run = load_run(family_run)
    kernels = np.load(family_run / "kernels.npz")
    summaries = {s.family: s for s in compare_families(run)}
    live = np.ones(784, dtype=bool)
    live[list(run.data.constant_inputs)] = False  # inputs blank in every training image are set apart
    assert 100 < (~live).sum() < 200
    l1_top = [kernels[f"arm{a['arm']}"][live] for a in run.arms if a["regularizer"] == "l1" and a["lambda"] == 0.01]
    w = np.abs(np.concatenate([k.ravel() for k in l1_top]))
    zeros = [float(np.mean(np.abs(k) == 0)) for k in l1_top], [float(np.mean(np.abs(k) < 1e-3)) for k in l1_top]
    assert summaries["l1"].zeros_at_max == (pytest.approx(np.mean(zeros[0])), pytest.approx(np.mean(zeros[1])))
    # L1 at 0.01 pins more weights near zero than no regularization does
    base = [kernels[f"arm{a['arm']}"] for a in run.arms if a["regularizer"] == "l1" and a["lambda"] == 0.0]
    assert np.mean(w < 1e-3) > np.mean(np.abs(np.concatenate([k.ravel() for k in base])) < 1e-3)
    # shrink: ‖W‖ at the largest strength over the same seed's strength-0 arm, per seed, averaged
    norms = {(a["regularizer"], a["lambda"], a["seed"]): float(np.linalg.norm(kernels[f"arm{a['arm']}"].astype(np.float64)))
             for a in run.arms}
    for family, top in (("l2", 0.01), ("weight_decay", 0.05)):
        want = statistics.fmean(norms[(family, top, s)] / norms[(family, 0.0, s)] for s in (0, 1))
        assert summaries[family].shrink_at_max.mean == pytest.approx(want, rel=1e-5)
        assert want < 1


def test_a_family_view_is_a_run_of_its_own(family_run):
    run = load_run(family_run)
    view = family_view(run, "weight_decay")
    assert [a["arm"] for a in view.arms] == [0, 1, 2, 3]
    assert [(a["lambda"], a["seed"]) for a in view.arms] == [(0.0, 0), (0.05, 0), (0.0, 1), (0.05, 1)]
    assert view.config.lambdas == (0.0, 0.05) and view.config.regularizers == ("weight_decay",)
    assert sorted({r.arm for r in view.epochs}) == [0, 1, 2, 3] and all(r.regularizer == "weight_decay" for r in view.epochs)
    original = run.kernels()
    assert all(np.array_equal(view.kernels()[new], original[old]) for new, old in enumerate(view.arm_ids))


def test_the_report_compares_the_families_side_by_side(family_run):
    md = (family_run / "report.md").read_text()
    html = (family_run / "report.html").read_text()
    assert "## Regularizers compared" in md and "Regularizers compared" in html
    section = md.split("## Regularizers compared")[1].split("\n## ")[0]
    table = [line.replace("\\_", "_") for line in section.splitlines() if line.startswith("| ")][1:]  # rows, no header
    assert [line.split("|")[1].strip() for line in table] == ["L2", "L1", "weight decay"]
    best = {s.family: s.recommended.strength for s in compare_families(load_run(family_run))}
    for line, family in zip(table, ("l2", "l1", "weight_decay")):
        assert line.split("|")[3].strip().startswith(f"{best[family]:g}" if best[family] else "0 (baseline)")
    assert "Weight decay at its best minus L2 at its best" in section
    assert "figures/families.png" in section and (family_run / "figures" / "families.png").stat().st_size > 10_000
    setup = md.split("## Setup")[1].split("\n## ")[0]
    assert all(f"{label} strengths λ" in setup for label in ("L2", "L1", "weight decay"))  # every family's grid


@pytest.mark.parametrize("args, message", [
    (["--strengths", "l1=0.001"], "strengths for l1, which is not among the regularizers"),
    (["--regularizer", "l3"], "unknown regularizer 'l3'"),
    (["--regularizer", "l2,l2"], "regularizer l2 is given twice"),
    (["--regularizer", "l1_l2:x"], "RATIO"),
    (["--regularizer", "l2,l1", "--strengths", "l1"], "FAMILY=VALUES"),
])
def test_bad_family_flags_get_one_line_and_write_nothing(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--dataset", "mnist-5k", "--epochs", "1", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reglab: error:") and message in err and "\n" not in err
    assert not out.exists()
