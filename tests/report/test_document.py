"""Markdown tables in report.md: a cell's text (a user's path, a run name) can never break its row."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt  # rich's own dependency: GFM tables as GitHub renders them

from reglab.report.document import Table, code, em, strong, to_markdown


def cells(line: str) -> list[str]:
    """A GFM table row's cells: split at each `|` that is not escaped as `\\|` (also inside code spans)."""
    assert line.startswith("| ") and line.endswith(" |"), line
    return re.split(r"(?<!\\)\|", line[2:-2].replace("\\\\", "\0\0"))


def rendered_cells(md: str) -> list[list[str]]:
    """The text of every body cell, as a GFM renderer shows it."""
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    rows, row, in_body = [], None, False
    for t in tokens:
        if t.type == "tbody_open":
            in_body = True
        elif in_body and t.type == "tr_open":
            row = []
        elif in_body and t.type == "inline" and row is not None:
            row.append("".join(c.content for c in t.children or []))
        elif in_body and t.type == "tr_close":
            rows.append(row)
            row = None
    return rows


def test_a_pipe_in_a_model_path_stays_in_its_cell():
    md = to_markdown([Table(["setting", "value"], [["model", code("a|b.py:build")], ["dataset", "x|y\nz"]])], Path("."))
    rows = [line for line in md.splitlines() if line.startswith("| ")][1:]
    assert [len(cells(r)) for r in rows] == [2, 2]
    assert rendered_cells(md) == [["model", "a|b.py:build"], ["dataset", "x|y z"]]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["", "code", "strong", "em"]), st.text(max_size=20)), min_size=1, max_size=3),
       st.text(max_size=20))
@example([("code", "a|b.py:build")], "x")
@example([("code", "a\\|b"), ("", "|\n|")], "\\|\u2028")
def test_no_cell_text_breaks_a_table_row(spans, other):
    """Any text, in any style, with pipes, backslashes, backticks or newlines: one line per row, and the cell after
    it (a sentinel) is still the third cell (GFM drops cells beyond the header's count, so a cut row shows as a
    shifted one)."""
    styled = [{"code": code, "strong": strong, "em": em}.get(style, str)(text) for style, text in spans]
    md = to_markdown([Table(["a", "b", "c"], [[styled, other, "END"]])], Path("."))
    lines = md.splitlines()
    assert len(lines) == 3  # header, rule, the one row (no line break of any kind inside it)
    rows = rendered_cells(md)
    assert len(rows) == 1 and len(rows[0]) == 3 and rows[0][2] == "END", md
