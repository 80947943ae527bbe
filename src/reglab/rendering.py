"""How a record or an analysis shows itself (`summary()`, `_repr_html_`) without importing what renders it.

A result type sits below the report that writes it in words and the figures that draw it, so it cannot import
them. It asks for a renderer by name instead, and the `report` package registers its renderers when it is
imported (importing `reglab` imports it), as a registry of formats does: the lower layer names what it needs,
the higher one provides it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: The renderers a result type may ask for, and what each returns.
KINDS = {
    "analysis_text": "a RunAnalysis's answer in plain text",
    "analysis_html": "a RunAnalysis's answer block and key figure, as one HTML fragment",
    "record_html": "a RunRecord analysed, as analysis_html",
}

_RENDERERS: dict[str, Callable[[Any], str]] = {}


def register(kind: str, renderer: Callable[[Any], str]) -> None:
    """Provide the renderer of `kind` (one of `KINDS`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown renderer kind {kind!r} (known: {', '.join(KINDS)})")
    _RENDERERS[kind] = renderer


def render(kind: str, obj: Any) -> str:
    """`obj` rendered by the registered renderer of `kind`."""
    try:
        renderer = _RENDERERS[kind]
    except KeyError:
        raise LookupError(f"no renderer for {KINDS.get(kind, kind)}: import reglab (its report package provides it)") from None
    return renderer(obj)
