"""What every figure shares: the drawing context, colours by strength, log strength axes, file names.

Nothing here knows about a run: helpers take strengths and matplotlib axes, and `figure` writes a finished
figure through the one atomic-write helper, listed in the run's manifest first.
"""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from reglab.fileio import write_atomic
from reglab.record.rundir import register

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

FIGURES = "figures"
DPI = 100
NAN = float("nan")
#: Smallest legend and tick text, in points: legible when a figure is shown at its full width.
LEGEND_PT = 8.5
#: Up to this many strengths > 0, a figure names each in its legend; beyond, colour follows log λ along a bar.
MAX_LEGEND_LAMBDAS = 12
#: Text sizes of every figure (points).
RC: dict[RcKeyType, Any] = {"legend.fontsize": LEGEND_PT, "legend.title_fontsize": LEGEND_PT, "xtick.labelsize": 9, "ytick.labelsize": 9,
      "axes.labelsize": 10, "axes.titlesize": 11, "figure.titlesize": 12}

def spread_picks(n: int, k: int, must: tuple[int, ...] = ()) -> list[int]:
    """At most `k` of range(n), ascending: all when n <= k, else evenly spaced with the first and last, each
    of `must` taking the place of the nearest inner pick. Why: a bounded, representative set of figures."""
    if n <= k:
        return list(range(n))
    if k <= 1:
        return [next((m for m in must if 0 <= m < n), 0)][:max(k, 0)]
    picks = [round(j * (n - 1) / (k - 1)) for j in range(k)]
    for m in must:
        if 0 <= m < n and m not in picks and k > 2:
            nearest = min(range(1, k - 1), key=lambda j: abs(picks[j] - m))
            picks[nearest] = m
    return sorted(set(picks))


def num(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def dense_grid(lams: Any) -> bool:
    """More λ > 0 than a legend can name (MAX_LEGEND_LAMBDAS): colour by log λ with a colour bar instead."""
    return len({lam for lam in lams if lam > 0}) > MAX_LEGEND_LAMBDAS


#: log10 of the largest and of the smallest positive float: any finite λ > 0 lies between them
_LOG10_MAX = math.log10(sys.float_info.max)
_LOG10_TINY = math.log10(5e-324)


def pow10(x: float) -> float:
    """10**x, kept within the positive finite floats (a log axis limit must be neither 0 nor inf)."""
    x = min(max(x, _LOG10_TINY), _LOG10_MAX)
    try:
        value = 10.0 ** x
    except OverflowError:
        return sys.float_info.max
    return min(max(value, 5e-324), sys.float_info.max)


def log_limits(lams: Any, pad: float = 0.5) -> tuple[float, float]:
    """Limits of a log axis showing every finite λ > 0 with `pad` decades to spare, computed in log space:
    7e307 × 3 is inf and 5e-324 / 3 is 0, either of which matplotlib refuses. One λ gets `pad` on each side."""
    logs = [math.log10(lam) for lam in lams if lam > 0 and math.isfinite(lam)]
    if not logs:
        return 0.1, 10.0
    pad = max(pad, 0.04 * (max(logs) - min(logs)))  # a wide grid's ends stay off the frame, as matplotlib's margins
    lo, hi = pow10(min(logs) - pad), pow10(max(logs) + pad)
    return (lo, hi) if lo < hi else (lo * 0.5 if lo > 5e-324 else lo, hi * 2 if hi < sys.float_info.max / 2 else hi)


def decade_ticks(lo: float, hi: float, most: int = 8) -> tuple[list[float], bool]:
    """Powers of ten within [lo, hi], at most `most` (every k-th decade), and whether minor ticks may be left to
    matplotlib: its LogLocator computes decades past the axis ends, and 10**309 overflows, so a range within
    reach of either float limit, or one that skips decades, gets these ticks alone."""
    a, b = math.ceil(math.log10(lo)), math.floor(math.log10(hi))
    if a > b:
        return [], False
    need = (b - a + 1) / most
    stride = next((s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200) if s >= need), 400)  # round numbers of decades
    first = -(-a // stride) * stride  # multiples of the stride: 10^-300, 10^-200, …, not 10^-300, 10^-224, …
    return [10.0 ** k for k in range(first, b + 1, stride)], stride == 1 and -300 < a and b < 300


def log_lambda_axis(ax, lams: Any) -> tuple[float, float]:
    """A log x axis showing every finite λ > 0: limits in log space (`log_limits`), decade ticks set by hand."""
    from matplotlib.ticker import FixedLocator, NullLocator

    lo, hi = log_limits(lams)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ticks, minor = decade_ticks(lo, hi)
    if ticks:
        ax.xaxis.set_major_locator(FixedLocator(ticks))
    if not minor:
        ax.xaxis.set_minor_locator(NullLocator())
    return lo, hi


def lam_token(lam: float) -> str:
    """λ in a file name: short (`0.001`, `1e-05`) unless that would merge two different values."""
    short = f"{lam:g}"
    return short if float(short) == lam else repr(lam)


def arm_figure_name(lam: float, seed: int, arm: int) -> str:
    return f"arm{arm:02d}_lambda-{lam_token(lam)}_seed-{seed}.png"


def curves_figure_name(lam: float) -> str:
    return f"curves_lambda-{lam_token(lam)}.png"


def pyplot():
    """pyplot for a figure the user asked to see (`Display.plot` without axes), on whatever backend is theirs:
    reglab never switches a notebook's backend (its own files are drawn without pyplot, see `figure`)."""
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> None:
    """Write whole or not at all, never through a link (fileio); a run's figure is listed in its manifest first."""
    if path.parent.name == FIGURES:
        register(path.parent.parent, [f"{FIGURES}/{path.name}"])
    write_atomic(path, lambda f: fig.savefig(f, dpi=DPI, format="png"))


@contextmanager
def figure(path: Path, *args: Any, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
    """`plt.subplots(*args, **kwargs)` on a pyplot-free Figure; after the block, lay out and save to `path`.

    Floating-point overflow is not warned about: a log axis that reaches the largest float (λ = 1.8e308)
    makes matplotlib's axes → data transform round just past it to inf, which matplotlib itself handles."""
    import matplotlib
    from matplotlib.figure import Figure

    with np.errstate(over="ignore"), matplotlib.rc_context(RC):
        fig = Figure(figsize=kwargs.pop("figsize", None))  # no pyplot: no backend chosen, nothing to close
        axes = fig.subplots(*args, **kwargs)
        yield fig, axes
        fig.tight_layout()
        save(fig, path)


def lam_colors(lams) -> dict[float, Any]:
    """One colour per λ, shared by every figure: λ = 0 dark grey, λ > 0 along viridis (blue → green)."""
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    pos = sorted(lam for lam in set(lams) if lam > 0)
    out: dict[float, Any] = {0.0: "0.25"}
    if dense_grid(pos):  # colour by log λ, as the colour bar reads it (`_lam_colorbar`)
        lo, hi = math.log10(pos[0]), math.log10(pos[-1])
        return {**out, **{lam: cmap(0.2 + 0.65 * (math.log10(lam) - lo) / (hi - lo)) for lam in pos}}
    for i, lam in enumerate(pos):
        out[lam] = cmap(0.2 + 0.65 * i / (len(pos) - 1) if len(pos) > 1 else 0.5)
    return out


def lam_colorbar(fig, ax, lams: Any) -> None:
    """A colour bar for a dense grid's λ > 0 (log scale, the colours of `lam_colors`); λ = 0 stays dark grey."""
    import matplotlib
    from matplotlib.colors import ListedColormap, LogNorm

    pos = sorted({lam for lam in lams if lam > 0})
    cmap = ListedColormap(matplotlib.colormaps["viridis"](np.linspace(0.2, 0.85, 256)))
    mappable = matplotlib.cm.ScalarMappable(norm=LogNorm(pos[0], pos[-1]), cmap=cmap)
    bar = fig.colorbar(mappable, ax=ax, pad=0.02)
    ticks, minor = decade_ticks(pos[0], pos[-1])
    if ticks:
        bar.set_ticks(ticks)
    if not minor:
        bar.minorticks_off()
    bar.set_label(f"λ ({len(pos):,} values > 0, log scale)" + ("; λ = 0: dark grey" if 0.0 in set(lams) else ""))


def finite(xs) -> list[float]:
    return [x if x is not None and math.isfinite(x) else NAN for x in xs]


def markers(epochs: list[int]) -> str:
    return "o" if len(epochs) <= 20 else ""


def epoch_ticks(ax, epochs: list[int]) -> None:
    if 0 < len(epochs) <= 20:
        ax.set_xticks(epochs)


def band(ax, epochs: list[int], mean: list[float], low: list[float], high: list[float], color: Any, style: str,
         label: str, marker: str) -> None:
    """A mean line with its 95 % band (when it has one); the band has its own legend entry only via the caller."""
    ax.plot(epochs, finite(mean), linestyle=style, marker=marker, markersize=4, color=color, label=label)
    if any(math.isfinite(v) for v in low):
        ax.fill_between(epochs, finite(low), finite(high), color=color, alpha=0.2, linewidth=0)


def yerr(mean: list[float], low: list[float], high: list[float]) -> list[list[float]] | None:
    """matplotlib's asymmetric error bars, 0 where a point has no interval; None when none has one."""
    ok = [math.isfinite(m) and math.isfinite(lo) and math.isfinite(hi) for m, lo, hi in zip(mean, low, high)]
    if not any(ok):
        return None
    return [[m - lo if k else 0.0 for m, lo, k in zip(mean, low, ok)],
            [hi - m if k else 0.0 for m, hi, k in zip(mean, high, ok)]]


def shared_limits(series: list[list[float]], pad: float = 0.05) -> tuple[float, float] | None:
    """One y-range for panels that are compared by eye: the finite values of every series, padded."""
    values = [v for xs in series for v in xs if v is not None and math.isfinite(v)]
    if not values:
        return None
    lo, hi = min(values), max(values)
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.1
    return lo - pad * span, hi + pad * span
