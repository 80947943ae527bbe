"""An adaptive sweep (`reglab run --adaptive`): rounds of ordinary runs in one directory, each planned from the
rounds before it (`reglab.analysis.adaptive`), and a final confirmation round whose fresh seeds are scored on
the test set, so the answer's claim rests on evidence the adaptation never looked at.

The directory holds `adaptive.json` (the plan: every round, its arms and why, and the answer) and
`rounds/NN/`, each a complete reglab run record (`reglab report rounds/NN` draws it). Beside them, `metrics.csv`
and `run.json` merge every finished round's rows and arms into one record of the sweep, each arm numbered across
the sweep and marked with the round that added it and why; they only copy the rounds' records, rewritten as each
round finishes. Planning reads only completed rounds and is deterministic, so a resumed sweep plans the very
rounds an uninterrupted one did, and each round's own record resumes bit-identically.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import html
import io
import json
import math
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from rich.console import Console

from reglab.analysis.adaptive import (
    AdaptiveOptions,
    Addition,
    Evidence,
    Finished,
    Round,
    assess,
    confirm,
    label,
    next_round,
)
from reglab.analysis.analyze import analyze
from reglab.analysis.results import BETTER, CANT_TELL, EQUIVALENT, WORSE, RunAnalysis
from reglab.config import INPUT_FILES, SweepConfig
from reglab.data.splits import Splits, scored_on_test
from reglab.errors import ConfigError, ReglabError, RunDirError
from reglab.fileio import ensure_dir, remove_file, temporary_name, write_atomic
from reglab.record.checkpoint import CHECKPOINT_NPZ
from reglab.record.reader import RunRecord, load_run
from reglab.record.rundir import (
    ADAPTIVE_JSON,
    MANIFEST,
    TOP_LEVEL,
    check_run_dir,
    clear_run_dir,
    is_adaptive,
    is_reglab_run,
    locked,
    register,
    reserve_default_run_dir,
)
from reglab.record.schema import METRICS_CSV, RUN_JSON, read_run_meta
from reglab.report.adaptive import build_adaptive_report
from reglab.run.runner import MAX_ARMS, resume_sweep, run_sweep

ADAPTIVE_FORMAT = "reglab-adaptive/1"
SWEEP_RUN_FORMAT = "reglab-adaptive-run/1"  #: the merged run.json at the top of an adaptive sweep
ROUNDS = "rounds"
_ROUND_NAME = re.compile(r"\d{2,3}")


class Verdict(NamedTuple):
    """The confirmation round's answer: the chosen strength − λ = 0 on fresh seeds scored on the test set."""

    chosen: float
    benefit: str  # BETTER, EQUIVALENT, WORSE or CANT_TELL
    mean: float  # chosen − λ = 0, test data loss per example
    low: float
    high: float
    seeds: tuple[int, ...]
    margin: float
    best: float = math.nan  # the exploration's best strength (λ = 0 when nothing beat it there)
    region: tuple[float, float] = (math.nan, math.nan)  # the exploration's region of contenders around the best
    grid_answer: str = ""  # a fixed grid's (`--confirm`): the headline its own analysis gives, before the confirmation


@dataclasses.dataclass(frozen=True)
class AdaptiveRun:
    """An adaptive sweep as recorded: its base configuration, its options, the rounds so far and the answer."""

    run_dir: Path
    config: SweepConfig  # the base: every round is this with its own strengths and seeds
    options: AdaptiveOptions
    rounds: tuple[Round, ...]
    status: str  # "running", "interrupted" or "completed"
    finished: Finished | None = None
    verdict: Verdict | None = None

    @property
    def arm_epochs(self) -> int:
        return sum(r.arm_epochs(self.options.epochs) for r in self.rounds)

    def round_dir(self, r: Round) -> Path:
        return self.run_dir / ROUNDS / f"{r.number:02d}"

    def summary(self) -> str:
        return adaptive_summary(self)

    def _repr_html_(self) -> str:
        """In Jupyter: the answer and the path, as `reglab report` prints them."""
        return f"<pre>{html.escape(self.summary())}</pre>"


# ---------------------------------------------------------------- configuration of each round

def check_adaptive(config: SweepConfig, flag: str = "--adaptive", what: str = "tunes") -> None:
    """What an adaptive sweep (or, with `flag` "--confirm" and `what` "confirms", a grid confirmed on fresh seeds)
    chooses itself, or cannot mix with, refused in one line before anything is written."""
    if len(config.regularizers) != 1 or config.strengths:
        raise ConfigError(f"{flag} {what} one regularizer family's strength: give one family (--regularizer)")
    if len(config.learning_rates) != 1:
        raise ConfigError(f"{flag} {what} the strength at one learning rate: give one (--learning-rates)")
    if config.early_stopping:
        raise ConfigError(f"{flag} trains every arm fully (no early stopping: early epochs favour weak "
                          "regularization); drop --early-stopping")
    if config.score_on != "validation":
        raise ConfigError(f"{flag} chooses what each round scores on; leave score_on at 'validation'")


def confirm_options(config: SweepConfig) -> AdaptiveOptions:
    """`reglab run --confirm`: the configuration's own grid and seeds as round 1, then the confirmation."""
    if config.strengths:
        raise ConfigError("--strengths cannot be used with --confirm: give the grid with --lambdas")
    check_adaptive(config, "--confirm", "confirms")
    if config.seed != 0:
        raise ConfigError("--seed cannot be used with --confirm: the grid trains seeds 0, 1, … and the confirmation "
                          "fresh seeds from 10000")
    return AdaptiveOptions(epochs=config.epochs, seeds=config.seeds, grid=tuple(config.lambdas))


def round_config(config: SweepConfig, r: Round) -> SweepConfig:
    return config.replace(lambdas=list(r.strengths), seed=r.seeds[0], seeds=len(r.seeds),
                          score_on="test" if r.confirming else "validation")


# ---------------------------------------------------------------- adaptive.json

def _round_json(r: Round) -> dict[str, Any]:
    return {"number": r.number, "additions": [[a.strength, a.why] for a in r.additions], "seeds": list(r.seeds),
            "note": r.note, "dir": f"{ROUNDS}/{r.number:02d}"}


def _write(run: AdaptiveRun) -> None:
    meta: dict[str, Any] = {
        "format": ADAPTIVE_FORMAT, "status": run.status, "config": run.config.to_dict(),
        "options": dataclasses.asdict(run.options), "arm_epochs": run.arm_epochs,
        "rounds": [_round_json(r) for r in run.rounds],
    }
    if run.finished is not None:
        meta["finished"] = {"chosen": run.finished.chosen, "open": list(run.finished.open)}
    if run.verdict is not None:
        meta["verdict"] = {**run.verdict._asdict(), "seeds": list(run.verdict.seeds), "region": list(run.verdict.region)}
    register(run.run_dir, [ADAPTIVE_JSON])
    write_atomic(run.run_dir / ADAPTIVE_JSON, json.dumps(meta, indent=1, allow_nan=True) + "\n")


# ---------------------------------------------------------------- the merged record: metrics.csv and run.json

class _Copied(NamedTuple):
    """One finished round as the merged record copies it: its metrics.csv header and rows, as text, and its
    run.json arms."""

    round: Round
    header: list[str]
    rows: list[list[str]]
    arms: list[dict[str, Any]]


def _copied(run: AdaptiveRun, r: Round, record: RunRecord) -> _Copied:
    """Round `r`'s finished record as written, its rows by arm then epoch (the order a resume may change)."""
    path = run.round_dir(r) / METRICS_CSV
    try:
        header, *rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
        arm, epoch = header.index("arm"), header.index("epoch")
        rows.sort(key=lambda row: (int(row[arm]), int(row[epoch])))
    except (OSError, UnicodeDecodeError, csv.Error, ValueError, IndexError) as e:
        raise RunDirError(f"{path}: cannot be merged into the sweep's {METRICS_CSV} ({' '.join(str(e).split())[:200]})") from None
    return _Copied(r, header, rows, list(record.arms))


def _merged_arms(run: AdaptiveRun, c: _Copied, first: int) -> list[dict[str, Any]]:
    """Round `c`'s arms in run.json's order, numbered across the sweep from `first`, each with the round and why."""
    why = {a.strength: a.why for a in c.round.additions}  # strengths are unique within a round
    where = f"{ROUNDS}/{c.round.number:02d}"
    out = []
    for i, arm in enumerate(c.arms):
        if arm.get("arm") != i or float(arm.get("lambda", math.nan)) not in why:
            raise RunDirError(f"{run.run_dir / where / RUN_JSON}: arm {i} is not one round {c.round.number} planned")
        rest = {k: v for k, v in arm.items() if k != "arm"}
        out.append({"arm": first + i, "round": c.round.number, "round_arm": i, "why": why[float(arm["lambda"])],
                    "dir": where, "scored_on": "test" if c.round.confirming else "validation", **rest})
    return out


def _merged(run: AdaptiveRun, done: list[_Copied], status: str) -> tuple[str, dict[str, Any]]:
    """The sweep's metrics.csv text and run.json: every finished round's rows and arms in round order, with the
    arm renumbered across the sweep and `round`, `why` in front."""
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(["round", "why", *done[0].header])
    arms: list[dict[str, Any]] = []
    for c in done:
        if c.header != done[0].header:
            raise RunDirError(f"{run.round_dir(c.round) / METRICS_CSV}: its columns differ from round "
                              f"{done[0].round.number}'s; the rounds cannot be merged into one {METRICS_CSV}")
        mine = _merged_arms(run, c, len(arms))
        arm = c.header.index("arm")
        for row in c.rows:
            a = mine[int(row[arm])]
            out.writerow([c.round.number, a["why"], *row[:arm], a["arm"], *row[arm + 1:]])
        arms += mine
    meta = {"format": SWEEP_RUN_FORMAT, "status": status,
            "arm_epochs": sum(c.round.arm_epochs(run.options.epochs) for c in done), "arms": arms}
    return buf.getvalue(), meta


def _write_merged(run: AdaptiveRun, done: list[_Copied], status: str) -> None:
    """RUN_DIR/metrics.csv and run.json, merged from the finished rounds (none yet: nothing written)."""
    if not done:
        return
    text, meta = _merged(run, done, status)
    register(run.run_dir, [METRICS_CSV, RUN_JSON])
    write_atomic(run.run_dir / METRICS_CSV, text)
    write_atomic(run.run_dir / RUN_JSON, json.dumps(meta, indent=1, allow_nan=True) + "\n")


def load_adaptive(run_dir: str | Path) -> AdaptiveRun:
    """RUN_DIR/adaptive.json, checked: a damaged file is one `RunDirError` line naming it."""
    run_dir = Path(run_dir)
    path = run_dir / ADAPTIVE_JSON
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != ADAPTIVE_FORMAT:
            raise ValueError(f"not a {ADAPTIVE_FORMAT} file")
        config = SweepConfig.from_mapping(meta["config"], where=str(path))
        options = AdaptiveOptions(**meta["options"])
        rounds = tuple(Round(int(r["number"]), tuple(Addition(float(s), str(w)) for s, w in r["additions"]),
                             tuple(int(s) for s in r["seeds"]), str(r["note"])) for r in meta["rounds"])
        if [r.number for r in rounds] != list(range(1, len(rounds) + 1)):
            raise ValueError("rounds are not numbered 1, 2, …")
        finished = (Finished(meta["finished"]["chosen"], tuple(meta["finished"]["open"])) if "finished" in meta else None)
        verdict = None
        if "verdict" in meta:
            v = meta["verdict"]
            verdict = Verdict(float(v["chosen"]), str(v["benefit"]), float(v["mean"]), float(v["low"]), float(v["high"]),
                              tuple(int(s) for s in v["seeds"]), float(v["margin"]), float(v["best"]),
                              (float(v["region"][0]), float(v["region"][1])), str(v.get("grid_answer", "")))
        status = str(meta["status"])
    except FileNotFoundError:
        raise RunDirError(f"{run_dir} is not an adaptive sweep (no {ADAPTIVE_JSON})") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, ConfigError) as e:
        raise RunDirError(f"{path}: unreadable ({' '.join(str(e).split())[:200]})") from None
    return AdaptiveRun(run_dir, config, options, rounds, status, finished, verdict)


# ---------------------------------------------------------------- evidence and the answer

def evidence_of(records: list[RunRecord]) -> Evidence:
    """strength → seed → per-example validation data loss at the final epoch, over exploration rounds; arms
    without values (diverged, failed) are left out, so the planner never builds on them."""
    out: dict[float, dict[int, np.ndarray]] = {}
    for run in records:
        values = run.validation()
        if values is None:
            continue
        for arm in run.arm_records:
            if values.has_values[arm.index]:
                out.setdefault(arm.strength, {})[arm.seed] = np.asarray(values.final_loss[arm.index], dtype=np.float64)
    return out


def verdict_of(analysis: RunAnalysis, chosen: float, margin: float) -> Verdict:
    """chosen − λ = 0 in the confirmation round (`reglab.analysis.adaptive.confirm`), read from its analysis's
    per-example values: the test set's, at the confirmation's fresh seeds."""
    values = analysis.main.per_example
    table = values.loss if values is not None else {}
    seeds = tuple(sorted(set(table.get(chosen, {})) & set(table.get(0.0, {}))))
    if not seeds:
        return Verdict(chosen, CANT_TELL, math.nan, math.nan, math.nan, (), margin)
    c = confirm(np.stack([table[chosen][s] for s in seeds]), np.stack([table[0.0][s] for s in seeds]), margin)
    d = c.crossed
    return Verdict(chosen, c.benefit, d.mean, d.low, d.high, seeds, margin)


def _signed(x: float) -> str:
    """A difference as the answer prints it: four decimals, or two significant digits when smaller than that."""
    return f"{x:+.4f}" if not math.isfinite(x) or x == 0 or abs(x) >= 5e-5 else f"{x:+.1e}"


def adaptive_summary(run: AdaptiveRun) -> str:
    """The answer first, then how it was reached, round by round."""
    n_arms = sum(len(r.additions) * len(r.seeds) for r in run.rounds)
    lines = []
    v = run.verdict
    if v is not None:
        chosen = f"λ = {label(v.chosen)}"
        found = f"{chosen}, the best found," if v.best == v.chosen else f"{chosen}, the closest strength to the best, λ = 0,"
        seeds = f"{len(v.seeds)} fresh seeds scored on the test set"
        interval = f"test data loss {_signed(v.mean)} [{_signed(v.low)}, {_signed(v.high)}] against λ = 0"
        if v.benefit == BETTER:
            lines.append(f"Use {chosen}: it beats no regularization, confirmed on {seeds} ({interval}).")
        elif v.benefit == EQUIVALENT:
            lines.append(f"No measurable benefit over no regularization: {found} is shown within {v.margin:g} of "
                         f"λ = 0 on {seeds} ({interval}).")
        elif v.benefit == WORSE:
            lines.append(f"Best found: {chosen}, but on {seeds} it is worse than no regularization ({interval}).")
        else:
            lines.append(f"Best found: {chosen}, not confirmed: can't tell whether it beats no regularization on "
                         f"{seeds} ({interval}).")
        where = "the grid" if run.options.grid is not None else "the exploration"
        if v.grid_answer:
            lines.append(f"The grid alone (round 1, its intervals simultaneous over its strengths) said: {v.grid_answer}")
        if v.region[0] != v.region[1]:
            lines.append(f"Not shown worse than the best in {where}: λ from {label(v.region[0])} to "
                         f"{label(v.region[1])}.")
        elif math.isfinite(v.region[0]):
            lines.append(f"Every other strength explored was shown worse than the best, λ = {label(v.region[0])}.")
    elif run.finished is not None and run.finished.open:
        lines.append("Stopped before the answer was decided: " + " ".join(run.finished.open))
    elif run.status != "completed":
        lines.append(f"The sweep is {run.status}: `reglab run --resume {run.run_dir}` continues it.")
    how = "the grid, then its confirmation on fresh seeds:" if run.options.grid is not None else "an adaptive sweep of"
    if run.options.grid is not None and run.rounds:
        lines.append(f"The grid's own report, every strength drawn: {ROUNDS}/{run.rounds[0].number:02d}/report.html in the run directory.")
    lines.append(f"How: {how} {len(run.rounds)} round{'s' if len(run.rounds) != 1 else ''}, {n_arms} arms, "
                 f"{run.arm_epochs:,} arm-epochs" + (f" of a budget of {run.options.budget:,}" if run.options.budget else "") + ":")
    for r in run.rounds:
        groups: dict[str, list[str]] = {}
        for a in r.additions:
            groups.setdefault(a.why, []).append(label(a.strength))
        what = "; ".join(f"{why} {', '.join(lams)}" for why, lams in groups.items())
        seeds = f"seed {r.seeds[0]}" if len(r.seeds) == 1 else f"seeds {r.seeds[0]}–{r.seeds[-1]}"
        lines.append(f"  round {r.number} ({what}) × {seeds}: {r.note}")
    return "\n".join(lines)


# ---------------------------------------------------------------- running and resuming

class _Given(NamedTuple):
    """What `reglab.sweep(adaptive=True)` hands every round: its prepared arrays and the files each round keeps."""

    splits: Splits | None = None
    inputs: dict[str, bytes] | None = None

    def splits_for(self, r: Round) -> Splits | None:
        if self.splits is None:
            return None
        return scored_on_test(self.splits) if r.confirming else self.splits


def _train_round(run: AdaptiveRun, r: Round, console: Console, live: bool | None, given: _Given) -> RunRecord:
    """The round's record, trained, resumed or simply read: whatever state an interruption left it in."""
    d = run.round_dir(r)
    if (d / RUN_JSON).is_file():
        if read_run_meta(d).get("status") == "completed":
            return load_run(d)
        if (d / METRICS_CSV).exists() or (d / CHECKPOINT_NPZ).exists():
            return resume_sweep(d, console=console, live=live, make_report=_reported(run, r))
        # killed while its record was being started (run.json, nothing recorded yet): a user would need --force;
        # the sweep starts the round over, which trains what resuming it would (its seeds fix everything)
        clear_run_dir(d)
    elif d.is_dir() and is_reglab_run(d):  # killed before its run.json was in place: only reglab's listed files
        clear_run_dir(d)
    elif d.is_dir():  # killed before even its manifest was in place: at most the temporary of a first write
        for name in (MANIFEST, *TOP_LEVEL):
            remove_file(temporary_name(d / name), d)
    ensure_dir(d, parents=True, root=run.run_dir)
    # a round's arms were counted when it was planned (a fixed grid's against the cap the user gave, before anything was written)
    return run_sweep(round_config(run.config, r), d, console=console, live=live, make_report=_reported(run, r),
                     splits=given.splits_for(r), inputs=given.inputs, max_arms=max(MAX_ARMS, len(r.additions) * len(r.seeds)))


def _reported(run: AdaptiveRun, r: Round) -> bool:
    """The rounds that draw their own report: the confirmation, and a fixed grid (`--confirm`), the user's sweep."""
    return r.confirming or run.options.grid is not None


def _continue(run: AdaptiveRun, console: Console, live: bool | None, given: _Given = _Given()) -> AdaptiveRun:
    evidence: dict[float, dict[int, np.ndarray]] = {}  # every exploration round's, each read once
    confirmation: RunRecord | None = None
    grid: RunRecord | None = None  # a fixed grid's round 1 (`--confirm`)
    done: list[_Copied] = []  # every finished round, as the merged record copies it

    def train(r: Round) -> None:
        nonlocal confirmation, grid
        record = _train_round(run, r, console, live, given)
        done.append(_copied(run, r, record))
        _write_merged(run, done, "running")
        if r.confirming:
            confirmation = record
        else:
            if run.options.grid is not None:
                grid = record
            for lam, by_seed in evidence_of([record]).items():
                evidence.setdefault(lam, {}).update(by_seed)

    try:
        for r in run.rounds:  # what an interruption left: finished, resumed or started over
            train(r)
        while True:
            step = next_round(evidence, run.rounds, run.options)  # the start round when there is none yet
            if isinstance(step, Finished):
                run = dataclasses.replace(run, finished=step)
                break
            budget = f" of {run.options.budget:,}" if run.options.budget else ""
            console.print(f"adaptive round {step.number} ({run.arm_epochs:,}{budget} arm-epochs spent, this round "
                          f"{step.arm_epochs(run.options.epochs):,}): {step.note}", highlight=False, soft_wrap=True)
            run = dataclasses.replace(run, rounds=(*run.rounds, step))
            _write(run)  # the plan first: a resume finds the round it was training
            train(step)
    except BaseException:
        _write(dataclasses.replace(run, status="interrupted"))
        with contextlib.suppress(ReglabError, OSError):  # the merged record says so too, if it can
            _write_merged(run, done, "interrupted")
        raise
    verdict = None
    if confirmation is not None and run.finished is not None and run.finished.chosen is not None:
        explored = assess(evidence, run.options)
        verdict = verdict_of(analyze(confirmation), run.finished.chosen, run.options.margin)._replace(
            best=explored.best, region=explored.region,
            grid_answer=analyze(grid).summary().splitlines()[0] if grid is not None else "")
    run = dataclasses.replace(run, status="completed", verdict=verdict)
    _write(run)
    _write_merged(run, done, run.status)
    write_report(run)
    return run


def write_report(run: AdaptiveRun) -> Path:
    """The sweep's own report (`report.adaptive`): the answer, the adaptive design said, the path drawn."""
    v = run.verdict
    return build_adaptive_report(run.run_dir, run.summary(), run.rounds, v.region if v is not None else None,
                                 v.chosen if v is not None else None, grid=run.options.grid is not None)


def run_adaptive(config: SweepConfig, options: AdaptiveOptions | None = None, out: str | Path | None = None, *,
                 force: bool = False, console: Console | None = None, live: bool | None = None,
                 splits: Splits | None = None, inputs: dict[str, bytes] | None = None) -> AdaptiveRun:
    """Plan, train and confirm rounds until the answer is decided or the budget is spent. `options`: the
    planner's (default: `AdaptiveOptions` at the configuration's epochs). `splits`, `inputs`: as `run_sweep`
    takes them, handed to every round (the confirmation's scored on its test set)."""
    options = options if options is not None else AdaptiveOptions(epochs=config.epochs)
    check_adaptive(config)
    if options.epochs != config.epochs:
        raise ConfigError(f"the adaptive options count {options.epochs} epochs an arm, the configuration trains "
                          f"{config.epochs}: give both the same")
    console = console or Console(stderr=True)
    run_dir = Path(out) if out is not None else reserve_default_run_dir()
    _check_adaptive_dir(run_dir, force)
    with locked(run_dir, create=True):
        _check_adaptive_dir(run_dir, force)
        if force:
            clear_adaptive_dir(run_dir)
        run = AdaptiveRun(run_dir, config, options, (), "running")
        _write(run)
        return _continue(run, console, live, _Given(splits, inputs))


def resume_adaptive(run_dir: str | Path, *, console: Console | None = None, live: bool | None = None) -> AdaptiveRun:
    """Continue a stopped adaptive sweep: finished rounds are read, the interrupted one resumes, and the rounds
    after it are the ones an uninterrupted sweep would have planned."""
    console = console or Console(stderr=True)
    run = load_adaptive(run_dir)
    if run.status == "completed":
        raise RunDirError(f"{run_dir} is a completed adaptive sweep: there is nothing to resume")
    with locked(Path(run_dir)):
        run = dataclasses.replace(load_adaptive(run_dir), status="running")
        _write(run)
        return _continue(run, console, live, _Given(inputs=_kept_inputs(run)))


def _kept_inputs(run: AdaptiveRun) -> dict[str, bytes] | None:
    """A `reglab.sweep(adaptive=True)` sweep's arrays and model source, as its first round kept them: the rounds
    a resume has yet to start keep their own copies, as the first did."""
    first = run.round_dir(run.rounds[0]) if run.rounds else None
    if first is None or not (first / RUN_JSON).is_file():
        return None
    names = read_run_meta(first).get("inputs") or []
    kept = {n: (first / n).read_bytes() for n in names if n in INPUT_FILES}
    return kept or None


def _check_adaptive_dir(run_dir: Path, force: bool) -> None:
    if force and is_adaptive(run_dir):
        return
    check_run_dir(run_dir, force)


def clear_adaptive_dir(run_dir: Path) -> None:
    """--force on an adaptive sweep: every round's record as `clear_run_dir` removes one, then its own files."""
    if not is_adaptive(run_dir):
        clear_run_dir(run_dir)
        return
    rounds = run_dir / ROUNDS
    if rounds.is_dir() and not rounds.is_symlink():
        for d in sorted(rounds.iterdir()):
            if _ROUND_NAME.fullmatch(d.name) and d.is_dir() and not d.is_symlink():
                check_run_dir(d, True)
                clear_run_dir(d)
                if not any(d.iterdir()):
                    d.rmdir()
        if not any(rounds.iterdir()):
            rounds.rmdir()
    clear_run_dir(run_dir)
