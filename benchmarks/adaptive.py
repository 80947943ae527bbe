"""The adaptive sweep (`reglab run --adaptive`) against a dense grid: what it costs, and whether it gives the same answer.

    python benchmarks/adaptive.py                                   # fashion_mnist, digits, breast_cancer at the defaults (hours on 2 cores)
    python benchmarks/adaptive.py --datasets digits,breast_cancer --epochs 3 --dense-seeds 2 --dense-strengths 6   # a smoke test
    python benchmarks/adaptive.py --out runs/bench --reuse          # reprint the table from the run directories already there

Per dataset, through the public Python API, two runs of the same model, epochs and batch size (the default network,
the original study's: 10 epochs, batch 32; on breast_cancer and digits it is the same MLP, fed the table's features):

- the dense grid: λ = 0 plus `--dense-strengths` strengths log-spaced from 1e-7 to 1e-1, × `--dense-seeds` seeds, one
  `reglab.run_sweep` with the fused engine (no report), analysed with `reglab.analyze`;
- the adaptive sweep: `reglab.run.adaptive.run_adaptive` with the default `AdaptiveOptions` (no budget), as
  `reglab run --adaptive` runs it.

What it prints, one row per dataset:

- arm-epochs: adaptive / dense (arms × epochs as planned) and their ratio;
- wall time in seconds of each, measured around each call in this process (compilation, data loading and the
  adaptive confirmation round's report included). With --reuse a run that was not trained now shows the time
  recorded when this benchmark trained it (marked *), or "-" when there is none;
- the dense grid's recommended strength, its flat region (`RunAnalysis.main.recommended.flat`: the contiguous
  strengths shown within the margin of the best) and its verdict against λ = 0 (`recommended.benefit`, on
  validation data);
- the adaptive sweep's chosen strength and its verdict (`AdaptiveRun.verdict.benefit`: the chosen strength against
  λ = 0 on fresh seeds scored on the test set);
- in flat: the adaptive chosen strength lies in [flat low, flat high] of the dense grid, inclusive, compared as
  numbers. When the flat region starts at λ = 0, strengths between 0 and the smallest nonzero dense strength
  (which the dense grid never tried) count as inside too; this only matters when the flat region is λ = 0 alone;
- agrees: the verdicts agree when both are "better", or neither is (any of equivalent, worse, can't tell, is the
  baseline on either side counts as "not better").

Then each adaptive sweep's own account of its rounds (`AdaptiveRun.summary()`), and a last line with the done
criteria per dataset: arm-epoch ratio ≤ 0.30, in flat region, verdicts agree. A dataset that cannot be loaded
(fashion_mnist needs Debian's dataset-fashion-mnist in /usr/share/datasets/fashion-mnist, or Keras's cache) is
reported as skipped with the reason, and fails the criteria.

Run directories: OUT/DATASET/dense and OUT/DATASET/adaptive (`reglab report` reads either); the measured times
are kept in OUT/times.json for --reuse. Without --out, a new temporary directory (its path is printed).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from rich.console import Console

import reglab
from reglab.analysis.adaptive import AdaptiveOptions
from reglab.analysis.results import BETTER
from reglab.record.schema import RUN_JSON, read_run_meta
from reglab.run.adaptive import AdaptiveRun, is_adaptive, load_adaptive, resume_adaptive, run_adaptive
from reglab.run.runner import resume_sweep

DATASETS = ("fashion_mnist", "digits", "breast_cancer")
RATIO_TARGET = 0.30
TIMES_JSON = "times.json"


class Timed(NamedTuple):
    seconds: float | None  # None: reused, and no time was recorded
    how: str  # "trained", "resumed" (the time covers only what was left) or "reused" (the time is the recorded one)


class Row(NamedTuple):
    dataset: str
    skipped: str  # why the dataset was not measured ("" when it was)
    dense_epochs: int = 0
    adaptive_epochs: int = 0
    dense_time: Timed | None = None
    adaptive_time: Timed | None = None
    dense_best: float | None = None
    flat: tuple[float, float] | None = None
    dense_benefit: str = ""
    chosen: float | None = None
    adaptive_benefit: str = ""
    in_flat: bool | None = None
    agrees: bool | None = None
    summary: str = ""

    @property
    def ratio(self) -> float:
        return self.adaptive_epochs / self.dense_epochs if self.dense_epochs else math.nan

    def met(self) -> list[str]:
        """The done criteria this row fails, in words (empty: all met)."""
        if self.skipped:
            return ["skipped" if self.skipped.startswith("skipped") else "not measured"]
        out = []
        if not self.ratio <= RATIO_TARGET:
            out.append(f"ratio {self.ratio:.2f} > {RATIO_TARGET:.2f}")
        if not self.in_flat:
            out.append("chosen strength outside the dense flat region")
        if not self.agrees:
            out.append("verdicts disagree")
        return out


def fmt(x: float | None) -> str:
    """A strength: 0, 1e-03, 3.98e-05; "-" when there is none."""
    if x is None:
        return "-"
    return "0" if x == 0 else f"{x:.3g}"


def dense_strengths(n: int) -> tuple[float, ...]:
    return (0.0,) + tuple(float(x) for x in np.logspace(-7, -1, n))


def in_flat(chosen: float, flat: tuple[float, float], strengths: tuple[float, ...]) -> bool:
    low, high = flat
    if low <= chosen <= high:
        return True
    nonzero = [s for s in strengths if s > 0]
    return low == 0 and bool(nonzero) and 0 < chosen < min(nonzero)


def verdicts_agree(dense: str, adaptive: str) -> bool:
    return (dense == BETTER) == (adaptive == BETTER)


# ---------------------------------------------------------------- running (or reusing) each run

def _times(out: Path) -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in json.loads((out / TIMES_JSON).read_text(encoding="utf-8")).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _keep_time(out: Path, key: str, seconds: float) -> None:
    times = _times(out)
    times[key] = seconds
    (out / TIMES_JSON).write_text(json.dumps(times, indent=1) + "\n", encoding="utf-8")


class Mismatch(Exception):
    """A reused run directory was trained with other settings than the ones asked for."""


def _same(found: reglab.SweepConfig, wanted: reglab.SweepConfig, run_dir: Path) -> None:
    """--reuse only reads a run of the very experiment asked for: the fields that make it (not where files are)."""
    for name in ("dataset", "epochs", "batch_size", "engine", "model", "regularizers", "learning_rates", "optimizer", "lambdas", "seeds", "seed"):
        if name in ("lambdas", "seeds", "seed") and run_dir.name == "adaptive":
            continue  # an adaptive sweep's base keeps the defaults: each round chooses its own
        if getattr(found, name) != getattr(wanted, name):
            raise Mismatch(f"{run_dir} was run with {name} = {getattr(found, name)!r}, not {getattr(wanted, name)!r}: "
                           "use another --out, or the settings it was run with")


def dense_run(config: reglab.SweepConfig, out: Path, key: str, reuse: bool, console: Console) -> tuple[reglab.RunRecord, Timed]:
    run_dir = out / key
    if reuse and (run_dir / RUN_JSON).is_file():
        _same(reglab.load_run(run_dir).config, config, run_dir)
        if read_run_meta(run_dir).get("status") == "completed":
            return reglab.load_run(run_dir), Timed(_times(out).get(key), "reused")
        t0 = time.perf_counter()
        run = resume_sweep(run_dir, console=console, live=False, make_report=False)
        return run, Timed(time.perf_counter() - t0, "resumed")
    t0 = time.perf_counter()
    run = reglab.run_sweep(config, run_dir, console=console, live=False, make_report=False)
    seconds = time.perf_counter() - t0
    _keep_time(out, key, seconds)
    return run, Timed(seconds, "trained")


def adaptive_run(config: reglab.SweepConfig, options: AdaptiveOptions, out: Path, key: str, reuse: bool,
                 console: Console) -> tuple[AdaptiveRun, Timed]:
    run_dir = out / key
    if reuse and is_adaptive(run_dir):
        run = load_adaptive(run_dir)
        _same(run.config, config, run_dir)
        if run.options != options:
            raise Mismatch(f"{run_dir} was run with other adaptive options ({run.options}): use another --out")
        if run.status == "completed":
            return run, Timed(_times(out).get(key), "reused")
        t0 = time.perf_counter()
        run = resume_adaptive(run_dir, console=console, live=False)
        return run, Timed(time.perf_counter() - t0, "resumed")
    t0 = time.perf_counter()
    run = run_adaptive(config, options, run_dir, console=console, live=False)
    seconds = time.perf_counter() - t0
    _keep_time(out, key, seconds)
    return run, Timed(seconds, "trained")


def measure(dataset: str, args: argparse.Namespace, out: Path, console: Console) -> Row:
    try:
        reglab.load_dataset(dataset)
    except reglab.ReglabError as e:
        return Row(dataset, f"skipped, cannot load: {' '.join(str(e).split())}")
    base = reglab.SweepConfig(dataset=dataset, epochs=args.epochs, batch_size=32, engine="fused")
    strengths = dense_strengths(args.dense_strengths)
    dense_config = base.replace(lambdas=strengths, seeds=args.dense_seeds, seed=0)
    say(f"{dataset}: dense grid, {len(dense_config.arms())} arms × {args.epochs} epochs")
    try:
        record, dense_time = dense_run(dense_config, out, f"{dataset}/dense", args.reuse, console)
        say(f"{dataset}: adaptive sweep")
        ad, adaptive_time = adaptive_run(base, AdaptiveOptions(epochs=args.epochs), out, f"{dataset}/adaptive", args.reuse, console)
    except (reglab.ReglabError, Mismatch) as e:
        hint = " (here: --reuse, or another --out)" if isinstance(e, reglab.RunDirError) else ""
        return Row(dataset, f"not measured: {' '.join(str(e).split())}{hint}")
    if record.meta.get("status") != "completed":
        return Row(dataset, f"not measured: the dense run is {record.meta.get('status')}: {record.run_dir}")
    rec = reglab.analyze(record).main.recommended
    if rec is None:
        return Row(dataset, f"not measured: the dense run recommends nothing (every arm diverged or failed?): {record.run_dir}")
    dense_epochs = len(record.arm_records) * record.config.epochs  # arms × epochs, planned, as the adaptive count is
    flat = (rec.flat[0].strength, rec.flat[1].strength)
    v = ad.verdict
    chosen = v.chosen if v is not None else None
    benefit = v.benefit if v is not None else "no verdict"
    return Row(dataset, "", dense_epochs, ad.arm_epochs, dense_time, adaptive_time, rec.strength, flat, rec.benefit, chosen, benefit,
               in_flat(chosen, flat, record.config.lambdas) if chosen is not None else False,
               verdicts_agree(rec.benefit, benefit), ad.summary())


# ---------------------------------------------------------------- printing

def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _time(t: Timed | None) -> str:
    if t is None or t.seconds is None:
        return "-"
    return f"{t.seconds:.0f}" + {"trained": "", "reused": "*", "resumed": "+"}[t.how]


def _yes(x: bool | None) -> str:
    return "-" if x is None else ("yes" if x else "NO")


def print_table(rows: list[Row]) -> None:
    head = (f"{'dataset':14} {'arm-epochs ad/dense':>22} {'ratio':>6} {'wall s ad/dense':>16}  {'dense best':>10} "
            f"{'dense flat region':>20} {'dense verdict':>16}  {'ad chosen':>9} {'ad verdict':>12}  {'in flat':>7} {'agrees':>6}")
    print(head)
    print("-" * len(head))
    for r in rows:
        if r.skipped:
            print(f"{r.dataset:14} {r.skipped}")
            continue
        flat = f"{fmt(r.flat[0])} … {fmt(r.flat[1])}" if r.flat else "-"
        epochs = f"{r.adaptive_epochs:,} / {r.dense_epochs:,}"
        times = f"{_time(r.adaptive_time)} / {_time(r.dense_time)}"
        print(f"{r.dataset:14} {epochs:>22} {r.ratio:6.2f} {times:>16}  {fmt(r.dense_best):>10} {flat:>20} {r.dense_benefit:>16}  "
              f"{fmt(r.chosen):>9} {r.adaptive_benefit:>12}  {_yes(r.in_flat):>7} {_yes(r.agrees):>6}")
    if any(t is not None and t.how == "reused" and t.seconds is not None for r in rows for t in (r.dense_time, r.adaptive_time)):
        print("* reused run directory: the wall time recorded when this benchmark trained it, not measured now")
    if any(t is not None and t.how == "resumed" for r in rows for t in (r.dense_time, r.adaptive_time)):
        print("+ resumed run directory: the wall time of the part trained now only")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated (default {','.join(DATASETS)})")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per arm, both sweeps (default 10)")
    parser.add_argument("--dense-seeds", type=int, default=5, help="seeds of the dense grid (default 5)")
    parser.add_argument("--dense-strengths", type=int, default=16,
                        help="nonzero strengths of the dense grid, log-spaced 1e-7 to 1e-1, plus λ = 0 (default 16)")
    parser.add_argument("--out", type=Path, help="where the run directories go (default: a new temporary directory)")
    parser.add_argument("--reuse", action="store_true", help="read completed run directories already in --out instead of "
                        "training them again (an interrupted one is resumed)")
    parser.add_argument("--verbose", action="store_true", help="show reglab's own progress lines on stderr")
    args = parser.parse_args(argv)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if not datasets or args.epochs < 1 or args.dense_seeds < 1 or args.dense_strengths < 1:
        parser.error("--datasets must name one or more; --epochs, --dense-seeds and --dense-strengths must be at least 1")
    out = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="reglab-adaptive-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True, quiet=not args.verbose)
    start = time.perf_counter()
    rows = [measure(d, args, out, console) for d in datasets]

    print(f"reglab adaptive sweep vs dense grid: {args.epochs} epochs per arm, batch 32, default model, fused engine; dense grid "
          f"λ = 0 + {args.dense_strengths} strengths 1e-7…1e-1 × {args.dense_seeds} seeds; adaptive: default options, no budget")
    print(f"run directories: {out}\n")
    print_table(rows)
    for r in rows:
        if r.summary:
            print(f"\n{r.dataset}, adaptive:\n" + "\n".join("  " + line for line in r.summary.splitlines()))
    verdicts = []
    for r in rows:
        failed = r.met()
        verdicts.append(f"{r.dataset} " + ("met" if not failed else "NOT met (" + "; ".join(failed) + ")"))
    every = all(not r.met() for r in rows)
    print(f"\n(total {time.perf_counter() - start:.0f} s)")
    print(f"done criteria (arm-epoch ratio ≤ {RATIO_TARGET:.2f}, chosen in the dense flat region, verdicts agree): "
          + ("ALL MET" if every else "not all met") + " — " + "; ".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
