"""How numbers are shown to people: the terminal, figures and reports share these."""

from __future__ import annotations

import math


def fmt(value: float, digits: int = 4) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def lam_label(lam: float) -> str:
    return "0 (baseline)" if lam == 0 else f"{lam:g}"


def setting_label(family: str, lam: float, learning_rate: float | None = None) -> str:
    """An arm's setting in a line of progress: `λ=0.001` for L2 (the study's), `l1 λ=0.001` otherwise, and
    ` lr=0.01` when the sweep has several learning rates (`learning_rate` given)."""
    text = f"λ={lam_label(lam)}" if family == "l2" else f"{family} λ={lam_label(lam)}"
    return text if learning_rate is None else f"{text} lr={lam_label(learning_rate)}"


def plural(n: int, word: str) -> str:
    """'1 seed', '3 seeds', '1,000 arms'."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")
