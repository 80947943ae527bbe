"""A report as a list of blocks, rendered to Markdown and to one self-contained HTML page.

Both renderings come from the same blocks, so report.md and report.html always say the same thing.
Every piece of text is escaped by the renderer (run names and paths come from users); the HTML page
embeds its images as data URIs, carries its own CSS, and forbids scripts and network loads with a
Content-Security-Policy, so it opens anywhere, offline, and cannot run code.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import NamedTuple, Sequence, Union


class Span(NamedTuple):
    """Inline text: style is "" (plain), "strong", "em" or "code"."""

    text: str
    style: str = ""


Inline = Union[str, Span, Sequence[Union[str, Span]]]


def strong(text: str) -> Span:
    return Span(str(text), "strong")


def em(text: str) -> Span:
    return Span(str(text), "em")


def code(text: str) -> Span:
    return Span(str(text), "code")


class Heading(NamedTuple):
    level: int
    text: str
    anchor: str = ""


class Para(NamedTuple):
    content: Inline


class Note(NamedTuple):
    """A highlighted paragraph (a data fallback, a warning)."""

    content: Inline


class Bullets(NamedTuple):
    items: Sequence[Inline]


class Table(NamedTuple):
    header: Sequence[str]
    rows: Sequence[Sequence[Inline]]


class KeyValues(NamedTuple):
    """Two columns, a name and its value: the value left-aligned and wrapping, so it stays in view on a phone."""

    rows: Sequence[tuple[str, Inline]]


class Answer(NamedTuple):
    """The report's opening box: a headline and a few short lines."""

    headline: Inline
    lines: Sequence[Inline]


class Image(NamedTuple):
    path: Path  # the file on disk; rendered relative to the report's folder
    alt: str
    caption: str = ""


Block = Union[Heading, Para, Note, Bullets, Table, KeyValues, Answer, Image]


def _spans(content: Inline) -> list[Span]:
    if isinstance(content, Span):
        return [content]
    if isinstance(content, str):
        return [Span(content)]
    return [c if isinstance(c, Span) else Span(str(c)) for c in content]


# ---------------------------------------------------------------- Markdown

def md_escape(text: str) -> str:
    """Text safe inside Markdown (also inside a table cell): no raw HTML, no markup, one line."""
    s = html.escape(str(text), quote=False)
    for ch in "\\`*_[]|#":
        s = s.replace(ch, "\\" + ch)
    return re.sub(r"\s+", " ", s)  # one line; a span's edge spaces stay (they separate it from its neighbours)


def _md_inline(content: Inline, in_table: bool = False) -> str:
    """One line of Markdown. In a table cell a `|`, even inside a code span, would end the cell (GFM splits
    rows before it parses code), so there it is written `\\|`, which GFM shows as `|` in code too."""
    out = []
    for s in _spans(content):
        if s.style == "code":
            body = " ".join(str(s.text).replace("`", "'").split())
            out.append(f"`{body.replace('|', chr(92) + '|') if in_table else body}`")
        elif s.style in ("strong", "em"):
            # CommonMark: a delimiter run next to a space does not open or close emphasis, so edge spaces go outside
            text = md_escape(s.text)
            core = text.strip()
            mark = "**" if s.style == "strong" else "*"
            out.append(text[: len(text) - len(text.lstrip())] + (f"{mark}{core}{mark}" if core else "")
                       + text[len(text.rstrip()):])
        else:
            out.append(md_escape(s.text))
    return "".join(out)


def to_markdown(blocks: Sequence[Block], base: Path) -> str:
    lines: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            lines += ["#" * b.level + " " + md_escape(b.text), ""]
        elif isinstance(b, Para):
            lines += [_md_inline(b.content), ""]
        elif isinstance(b, Note):
            lines += ["> " + _md_inline(b.content), ""]
        elif isinstance(b, Bullets):
            lines += [f"- {_md_inline(item)}" for item in b.items] + [""]
        elif isinstance(b, Table):
            lines.append("| " + " | ".join(md_escape(h) for h in b.header) + " |")
            lines.append("|" + "---|" * len(b.header))
            lines += ["| " + " | ".join(_md_inline(c, in_table=True) for c in row) + " |" for row in b.rows]
            lines.append("")
        elif isinstance(b, KeyValues):
            lines += ["| | |", "|---|---|"] + [f"| {md_escape(k)} | {_md_inline(v, in_table=True)} |" for k, v in b.rows] + [""]
        elif isinstance(b, Answer):
            lines += ["> " + _md_inline(b.headline), ">"] + [f"> - {_md_inline(line)}" for line in b.lines] + [""]
        elif isinstance(b, Image):
            rel = b.path.relative_to(base).as_posix() if b.path.is_relative_to(base) else b.path.name
            target = "".join(ch if ch.isalnum() or ch in "/._-" else f"%{ord(ch):02X}" for ch in rel)
            lines += [f"![{md_escape(b.alt)}]({target})", ""]
            if b.caption:
                lines += [f"*{md_escape(b.caption)}*", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- HTML

CSS = """
:root { color-scheme: light; --ink: #1d2330; --muted: #5b6474; --line: #d9dee7; --accent: #2458a6; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: #fff; }
main { max-width: 1000px; margin: 0 auto; padding: 1rem 1.1rem 3rem; }
h1 { font-size: 1.6rem; line-height: 1.25; margin: 1rem 0 0.5rem; overflow-wrap: anywhere; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 0.6rem; padding-top: 0.4rem; border-top: 2px solid var(--line); }
h3 { font-size: 1.08rem; margin: 1.4rem 0 0.4rem; }
p, li { overflow-wrap: anywhere; }
code { font: 0.9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f1f3f7; padding: 0 0.2em; border-radius: 3px; }
.note { border-left: 4px solid #c98a00; background: #fff8e6; padding: 0.6rem 0.9rem; margin: 1rem 0; }
.scroll { overflow-x: auto; margin: 0.6rem 0 1rem; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; font-size: 0.88rem; min-width: 60%; }
th, td { border: 1px solid var(--line); padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f5f7fa; }
td.num { text-align: right; white-space: nowrap; }
td.text { min-width: 14rem; }
figure { margin: 1rem 0 1.6rem; }
.fig { overflow-x: auto; -webkit-overflow-scrolling: touch; }
figure img { display: block; width: 100%; min-width: 560px; height: auto; border: 1px solid var(--line); }
.scroll th:first-child, .scroll td:first-child { position: sticky; left: 0; background: #fff; box-shadow: 1px 0 0 var(--line); }
.scroll th:first-child { background: #f5f7fa; }
table.kv { width: 100%; font-size: 0.92rem; }
table.kv th { width: 30%; font-weight: 600; white-space: normal; }
table.kv td { overflow-wrap: anywhere; }
.answer { border: 2px solid var(--accent); border-radius: 6px; background: #f3f7fd; padding: 0.7rem 1rem; margin: 0.8rem 0 1rem; }
.answer .headline { font-size: 1.12rem; font-weight: 600; margin: 0 0 0.4rem; }
.answer ul { margin: 0; padding-left: 1.2rem; }
figcaption { color: var(--muted); font-size: 0.9rem; margin-top: 0.3rem; }
nav { display: flex; flex-wrap: wrap; gap: 0.2rem 0.9rem; font-size: 0.92rem; }
nav a { color: var(--accent); white-space: nowrap; }
.verdict-supported { color: #17693a; font-weight: 600; }
.verdict-not-supported { color: #a12a2a; font-weight: 600; }
.verdict-inconclusive { color: #8a6100; font-weight: 600; }
"""

#: No scripts, no network: images only from data: URIs, styles only from the page itself.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_VERDICT_CLASSES = {"supported": "verdict-supported", "not supported": "verdict-not-supported",
                    "inconclusive": "verdict-inconclusive"}


def _h(text: str) -> str:
    return html.escape(str(text), quote=True)


def _html_inline(content: Inline) -> str:
    out = []
    for s in _spans(content):
        if s.style == "strong" and str(s.text) in _VERDICT_CLASSES:
            out.append(f'<strong class="{_VERDICT_CLASSES[str(s.text)]}">{_h(s.text)}</strong>')
        elif s.style in ("strong", "em", "code"):
            out.append(f"<{s.style}>{_h(s.text)}</{s.style}>")
        else:
            out.append(_h(s.text))
    return "".join(out)


def _data_uri(path: Path) -> str:
    data = path.read_bytes()
    kind = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "application/octet-stream"
    return f"data:{kind};base64," + base64.b64encode(data).decode("ascii")


def _cell_class(content: Inline) -> str:
    """Numbers right-aligned (and kept on one line), long text given room, the rest left as is."""
    text = "".join(s.text for s in _spans(content))
    if re.fullmatch(r"[-−+]?\d[\d.,]*( ± [\d.,]+)?( %)?|—", text.strip()):
        return ' class="num"'
    return ' class="text"' if len(text) > 40 else ""


def to_html(blocks: Sequence[Block], title: str) -> str:
    """One self-contained page: inline CSS, images embedded, a navigation line built from the h2 anchors."""
    body: list[str] = []
    nav = [(b.anchor, b.text) for b in blocks if isinstance(b, Heading) and b.level == 2 and b.anchor]
    for b in blocks:
        if isinstance(b, Heading):
            anchor = f' id="{_h(b.anchor)}"' if b.anchor else ""
            body.append(f"<h{b.level}{anchor}>{_h(b.text)}</h{b.level}>")
            if b.level == 1 and nav:
                body.append("<nav>" + " ".join(f'<a href="#{_h(a)}">{_h(t)}</a>' for a, t in nav) + "</nav>")
        elif isinstance(b, Para):
            body.append(f"<p>{_html_inline(b.content)}</p>")
        elif isinstance(b, Note):
            body.append(f'<p class="note">{_html_inline(b.content)}</p>')
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_html_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{_h(h)}</th>" for h in b.header)
            rows = "".join(
                "<tr>" + "".join(f"<td{_cell_class(c)}>{_html_inline(c)}</td>" for c in row) + "</tr>"
                for row in b.rows
            )
            body.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>')
        elif isinstance(b, KeyValues):
            rows = "".join(f"<tr><th scope=\"row\">{_h(k)}</th><td>{_html_inline(v)}</td></tr>" for k, v in b.rows)
            body.append(f'<table class="kv"><tbody>{rows}</tbody></table>')
        elif isinstance(b, Answer):
            items = "".join(f"<li>{_html_inline(line)}</li>" for line in b.lines)
            body.append(f'<section class="answer" id="answer"><p class="headline">{_html_inline(b.headline)}</p>'
                        f"<ul>{items}</ul></section>")
        elif isinstance(b, Image):
            cap = f"<figcaption>{_h(b.caption)}</figcaption>" if b.caption else ""
            body.append(f'<figure><div class="fig"><img src="{_data_uri(b.path)}" alt="{_h(b.alt)}"></div>{cap}</figure>')
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_h(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(body)
        + "\n</main>\n</body>\n</html>\n"
    )
