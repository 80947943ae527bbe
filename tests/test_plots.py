"""Figure data (asserted as data, not pixels) and that drawing writes whole PNG files."""

from __future__ import annotations

from helpers import hand_made_run, row
from reglab.config import SweepConfig
from reglab.plots import arm_curves_data, draw_all, kernel_norm_overlay_data, val_data_loss_overlay_data
from reglab.report import build_report, md

CONFIG = SweepConfig(lambdas=(0.0, 0.01), epochs=2, seeds=2, dataset="fake")


def rows():
    out = []
    for arm in CONFIG.arms():
        for epoch in (2, 1):  # out of order on purpose: figures sort by epoch
            out.append(row(arm.index, arm.lam, epoch, seed=arm.seed, loss=1.0 / epoch, val_data_loss=0.5 + arm.index / 10,
                           kernel_norm=10.0 - arm.lam * 100 - epoch))
    return out


def test_arm_curves_are_sorted_by_epoch():
    run = hand_made_run(rows(), CONFIG)
    c = arm_curves_data(run, 1)
    assert (c.lam, c.seed, c.epochs, c.loss) == (0.01, 0, [1, 2], [1.0, 0.5])
    assert arm_curves_data(run, 3).seed == 1


def test_overlays_have_one_labelled_series_per_arm():
    run = hand_made_run(rows(), CONFIG)
    ov = val_data_loss_overlay_data(run)
    assert "without L2 penalty" in ov.ylabel
    assert [s.label for s in ov.series] == ["λ=0 (baseline), seed 0", "λ=0.01, seed 0", "λ=0 (baseline), seed 1", "λ=0.01, seed 1"]
    assert ov.series[3].values == [0.8, 0.8]
    norms = kernel_norm_overlay_data(run)
    assert norms.series[1].values == [8.0, 7.0]


def test_draw_all_and_report_write_files(tmp_path):
    run = hand_made_run(rows(), CONFIG, run_dir=tmp_path)
    figures = draw_all(run)
    assert len(figures["arms"]) == 4 and len(figures["overlays"]) == 2
    for p in figures["arms"] + figures["overlays"]:
        assert p.read_bytes()[:4] == b"\x89PNG"
    assert not list((tmp_path / "figures").glob(".*"))  # no temporary files left
    report = build_report(run).read_text()
    assert report.count("![") == 6


def test_markdown_escapes_user_text():
    assert md("<script>alert(1)</script> | *x*") == "&lt;script&gt;alert(1)&lt;/script&gt; \\| \\*x\\*"
