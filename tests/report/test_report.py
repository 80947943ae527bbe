"""report.md and report.html: the same content, numbers that match the record, escaped user text,
a page that needs no network and runs no code."""

from __future__ import annotations

import html
import re
import statistics

import numpy as np
import pytest

from helpers import hand_made_run, row
from reglab.analysis.stats import t_critical
from reglab.config import SweepConfig
from reglab.record.arrays import write_kernels
from reglab.report.build import build_report
from reglab.report.document import Heading, Image, Para, Span, Table, code, md_escape, strong, to_html, to_markdown

CONFIG = SweepConfig(lambdas=(0.0, 0.001, 0.01), seeds=2, epochs=3, dataset="fake")


def make_run(tmp_path, name="run"):
    rows = []
    for a in CONFIG.arms():
        for epoch in (1, 2, 3):
            val = 0.3 + 5 * a.strength + 0.01 * a.seed + (0.02 if epoch == 3 and a.strength == 0 else 0) - 0.01 * epoch
            rows.append(row(a.index, a.strength, epoch, seed=a.seed, val_data_loss=val, data_loss=val - 0.05 - 0.01 * epoch,
                            accuracy=0.95 - 3 * a.strength - 0.002 * a.seed, val_accuracy=0.93 - 3 * a.strength + 0.001 * epoch,
                            kernel_norm=12 - 700 * a.strength + 0.2 * a.seed + 0.1 * epoch, loss=val + a.strength, val_loss=val + 2 * a.strength))
    tests = [{"accuracy": 0.9 + 0.01 * a.index, "data_loss": 0.31, "loss": 0.32} for a in CONFIG.arms()]
    run_dir = tmp_path / name
    run_dir.mkdir()
    write_kernels(run_dir, {a.index: np.random.default_rng(a.index).normal(0, 0.05 / (1 + 100 * a.strength), (30, 8))
                            for a in CONFIG.arms()})
    return hand_made_run(rows, CONFIG, tests=tests, run_dir=run_dir), rows


def test_both_reports_are_written_with_the_study_sections(tmp_path):
    run, _ = make_run(tmp_path)
    path = build_report(run)
    assert path.name == "report.html"
    page, text = path.read_text(), (path.parent / "report.md").read_text()
    for anchor in ("objective", "setup", "results", "analysis", "claims", "takeaway", "l2-in-keras"):
        assert f'id="{anchor}"' in page
    titles = ("## Objective", "## Setup", "## Results", "## Analysis", "### Weights", "### Generalization",
              "### Convergence and fit", "### How sure", "## Claims checked", "## Takeaway", "## What “L2 in Keras” means")
    assert all(title in text for title in titles)
    assert [text.index(t) for t in titles] == sorted(text.index(t) for t in titles)  # the original study's order
    assert text.index("> ") < text.index("## Objective")  # the answer comes first
    assert "λ·ΣW²" in text and "weight decay" in text
    assert "By validation data loss: λ = 0.001" in text and "under resampling the best falls in" in text


def test_report_numbers_match_the_record(tmp_path):
    run, rows = make_run(tmp_path)
    text = (build_report(run).parent / "report.md").read_text()
    # independently: the mean final validation data loss of λ = 0.001 over its 2 seeds, with its t-interval
    finals = [r.val_data_loss for r in rows if r.strength == 0.001 and r.epoch == 3]
    mean, sd = statistics.mean(finals), statistics.stdev(finals)
    half = t_critical(1) * sd / len(finals) ** 0.5
    assert f"{mean:.4f} ± {half:.4f}" in text
    # every arm's final row is in the per-arm table
    for r in rows:
        if r.epoch == 3:
            assert f"{r.val_data_loss:.4f}" in text and f"{r.kernel_norm:.2f}" in text


def test_markdown_and_html_carry_the_same_claims(tmp_path):
    run, _ = make_run(tmp_path)
    path = build_report(run)
    page, text = path.read_text(), (path.parent / "report.md").read_text()
    verdicts = re.findall(r"\| \*\*(supported|not supported|inconclusive)\*\* \|", text)
    assert len(verdicts) == 4
    assert re.findall(r'<strong class="verdict-[a-z-]+">([a-z ]+)</strong>', page) [:4] == verdicts


def test_html_is_self_contained_and_runs_no_code(tmp_path):
    run, _ = make_run(tmp_path, name="<img src=x onerror=alert(1)><script>")
    page = build_report(run).read_text()
    assert "<script" not in page.lower() and "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) >= 6 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert '<meta name="viewport"' in page


@pytest.mark.slow
def test_report_is_rebuilt_identically(tmp_path):
    run, _ = make_run(tmp_path)
    first = (build_report(run).parent / "report.md").read_text()
    (run.run_dir / "report.md").unlink()
    assert (build_report(run).parent / "report.md").read_text() == first


def test_document_renderers_escape_every_piece_of_text(tmp_path):
    img = tmp_path / "figures" / "a b.png"
    img.parent.mkdir()
    img.write_bytes(b"\x89PNG\r\n\x1a\n")
    blocks = [Heading(1, "T <i>", "t"), Para(["a *b* | c ", strong("<b>"), code("x`y")]),
              Table(["h|1"], [[Span("<td>")]]), Image(img, "alt [x]", "cap <c>")]
    text = to_markdown(blocks, tmp_path)
    assert "# T &lt;i&gt;" in text and "a \\*b\\* \\| c **&lt;b&gt;**`x'y`" in text
    assert "| h\\|1 |" in text and "![alt \\[x\\]](figures/a%20b.png)" in text
    page = to_html(blocks, "t <x>")
    assert "<title>t &lt;x&gt;</title>" in page and "&lt;td&gt;" in page and "cap &lt;c&gt;" in page
    assert html.unescape(page).count("<i>") == 1  # only the escaped title text, never a live tag


def test_markdown_escapes_user_text():
    assert md_escape("<script>alert(1)</script> | *x*") == "&lt;script&gt;alert(1)&lt;/script&gt; \\| \\*x\\*"


def test_a_run_with_arms_stopped_early_reports_every_epoch_they_ran(tmp_path):
    config = SweepConfig(lambdas=(0.0, 0.01), seeds=2, epochs=5, dataset="fake", early_stopping=1)
    lengths = {0: 3, 1: 5, 2: 4, 3: 2}
    rows = [row(a.index, a.strength, e, seed=a.seed, val_data_loss=0.3 + 0.01 * e + a.strength, data_loss=0.2, kernel_norm=5 - e * a.strength)
            for a in config.arms() for e in range(1, lengths[a.index] + 1)]
    statuses = ["stopped" if lengths[a.index] < 5 else "completed" for a in config.arms()]
    run = hand_made_run(rows, config, statuses=statuses, run_dir=tmp_path)
    text = (build_report(run).parent / "report.md").read_text()
    assert "patience 1 on the validation data loss" in text
    arms = [line.split("|")[1:5] for line in text.split("### Every arm")[1].split("\n#")[0].splitlines() if line.startswith("| 0")]
    assert [(c[1].strip(), c[2].strip(), c[3].strip()) for c in arms] == [  # every arm, with the epochs it ran
        ("0", "stopped", "3"), ("0", "completed", "5"), ("1", "stopped", "4"), ("1", "stopped", "2")]
    assert "Left out of the comparisons" not in text  # stopped arms are compared, not excluded


def test_report_md_renders_as_commonmark(tmp_path):
    """Parsed by a CommonMark parser (markdown-it-py, tables on as GitHub renders them): no literal asterisks or
    backslashes, every heading, figure and table rendered, bold verdicts really bold."""
    from markdown_it import MarkdownIt

    run, _ = make_run(tmp_path)
    text = (build_report(run).parent / "report.md").read_text()
    page = MarkdownIt("commonmark").enable("table").render(text)
    visible = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert "**" not in visible and "\\*" not in visible and "\\_" not in visible and "\\|" not in visible
    assert page.count("<h2>") == text.count("\n## ") and page.count("<h3>") == text.count("\n### ")
    assert page.count("<img ") == text.count("![") and page.count("<table>") == len(re.findall(r"^\|---", text, re.M))
    assert re.search(r"<strong>(supported|not supported|inconclusive)</strong>", page)
    assert "<blockquote>" in page and page.index("<blockquote>") < page.index("<h2>")  # the answer first


def _family_run(tmp_path, families, epochs=3, seeds=2, value=lambda a, e: 0.3 + a.strength):
    import dataclasses

    config = SweepConfig(lambdas=(0.0, 1e-3, 1e-2), seeds=seeds, epochs=epochs, dataset="fake", regularizers=families)
    rows = [dataclasses.replace(row(a.index, a.strength, e, seed=a.seed, val_data_loss=value(a, e), data_loss=0.2,
                                    kernel_norm=10 - 100 * a.strength), regularizer=a.family)
            for a in config.arms() for e in range(1, epochs + 1)]
    return hand_made_run(rows, config, run_dir=tmp_path)


def test_a_weight_decay_report_never_speaks_of_l2(tmp_path):
    text = (build_report(_family_run(tmp_path, ("weight_decay",))).parent / "report.md").read_text()
    assert "L2" not in text and "l2(" not in text and "weight decay" in text
    assert "Adam(weight_decay=λ)" in text and "What weight decay means here" in text


def test_one_epoch_reports_no_nan(tmp_path):
    text = (build_report(_family_run(tmp_path, ("l2",), epochs=1)).parent / "report.md").read_text()
    body = text.split("\n", 1)[1]  # the title holds the run directory's name
    assert not re.search(r"\bnan\b", body.lower()) and "too few epochs to tell" in body


def test_two_families_at_one_strength_never_mix_in_the_report(tmp_path):
    """L2 arms score 0.30, weight-decay arms 0.90 at every strength and seed: a mixed number would fall between."""
    run = _family_run(tmp_path, ("l2", "weight_decay"), value=lambda a, e: 0.30 if a.family == "l2" else 0.90)
    text = (build_report(run).parent / "report.md").read_text()
    results = text.split("## Results")[1].split("\n#")[0]
    rows = [line.split("|")[3].strip() for line in results.splitlines() if line.startswith("| ") and "λ" not in line]
    assert rows and all(cell.startswith("0.3000") for cell in rows), rows  # the L2 arms' table: L2 alone
    families = text.split("## Regularizers compared")[1].split("\n## ")[0]
    best = {line.split("|")[1].strip(): line.split("|")[6].strip() for line in families.splitlines()
            if line.startswith("| ") and "regularizer" not in line}
    assert best["L2"].startswith("0.3000") and best["weight decay"].startswith("0.9000"), best
