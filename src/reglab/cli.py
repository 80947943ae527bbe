"""The `reglab` command: `reglab run` trains a sweep; `reglab report RUN_DIR [--open]` rebuilds figures and reports.

Errors a user can cause end as one line on stderr and exit status 2; Ctrl-C exits 130 with the
record left consistent. Set REGLAB_DEBUG=1 to see tracebacks of unexpected errors.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import sys
import webbrowser
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

from rich.console import Console

from reglab.analysis.adaptive import AdaptiveOptions
from reglab.analysis.analyze import analyze
from reglab.analysis.results import RunAnalysis
from reglab.config import (
    DEFAULT_LAMBDAS,
    DEFAULT_SEEDS,
    ENGINES,
    MAX_ARMS,
    MAX_SEED,
    OPTIMIZERS,
    SweepConfig,
    load_toml,
    parse_families,
    parse_lambdas,
    parse_learning_rates,
    parse_strengths,
)
from reglab.errors import ConfigError, ReglabError, RunFailed, RunInterrupted
from reglab.model.keras_import import import_keras_for_a_run
from reglab.record.reader import RunRecord, load_run
from reglab.record.rundir import is_adaptive, locked
from reglab.record.schema import read_run_meta
from reglab.report.build import build_report
from reglab.report.summary import summary_lines
from reglab.run.adaptive import AdaptiveRun, confirm_options, load_adaptive, resume_adaptive, run_adaptive
from reglab.run.adaptive import write_report as write_adaptive_report
from reglab.run.runner import check_arm_cap, report_run, resume_sweep, run_sweep
from reglab.settings import DEFAULT_LEARNING_RATE
from reglab.tracking.mlflow import export_mlflow
from reglab.tracking.tensorboard import export_tensorboard

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage: every error becomes one line."""

    def error(self, message: str) -> NoReturn:
        # argparse quotes what it was given as is: a newline in an argument must not break the one line
        raise ConfigError(message.replace("\r", "\\r").replace("\n", "\\n"))


def _flag_help(default: Any) -> str:
    return f" (default: {default})"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="reglab", description="Regularization experiments on Keras models, measured and explained.")
    parser.add_argument("--version", action="version", version=f"reglab {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser(
        "run", help="train a sweep of λ values × seeds and write a run directory",
        description="Train the original study's network (Flatten → Dense(128, relu, L2(λ)) → Dense(K, softmax) for the data's K classes, adam, "
        "sparse categorical cross-entropy) once per arm = (λ, seed), and record everything in a run directory. "
        "Settings come from the defaults (the original study plus a λ = 0 baseline), then --config, then flags.",
    )
    run.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML preset (e.g. configs/seed.toml); flags override it")
    run.add_argument("--lambdas", metavar="L1,L2,...", help="comma-separated L2 strengths; 0 is the unregularized baseline; "
                     "any other value a normal float32 (1.2e-38 to 3.4e38), as training uses; an item "
                     "logspace:START:STOP:N adds N values evenly spaced in log (e.g. 0,logspace:1e-6:1e-1:16)"
                     + _flag_help(",".join(f"{x:g}" for x in DEFAULT_LAMBDAS)))
    run.add_argument("--seeds", type=int, metavar="N", help="number of seeds per λ; each (λ, seed) is one arm; one seed names the best but claims "
                     "nothing (seed noise unmeasured)" + _flag_help(DEFAULT_SEEDS))
    run.add_argument("--seed", type=int, metavar="S", help=f"first seed; seeds are S, S+1, …, S+N-1, each at most "
                     f"2**31 − 1 = {MAX_SEED}" + _flag_help(0))
    run.add_argument("--epochs", type=int, metavar="N", help="training epochs per arm" + _flag_help(10))
    run.add_argument("--batch-size", type=int, metavar="N", dest="batch_size", help="minibatch size" + _flag_help(32))
    run.add_argument("--dataset", metavar="NAME|PATH",
                     help="mnist (Keras's loader; falls back to mnist-5k offline, and says so), mnist-5k, fashion_mnist, "
                     "cifar10 (Keras's loader, online once), digits, breast_cancer, wine (scikit-learn's, offline), "
                     "or a path to an .npz (x_train, y_train, x_test, y_test), a folder of IDX .gz files or a .csv "
                     "file (with --target)" + _flag_help("mnist"))
    run.add_argument("--target", metavar="COLUMN", help="a CSV dataset's column of class labels (any values: numbers "
                     "or strings); every other column is a numeric feature")
    run.add_argument("--test-file", metavar="FILE.csv", dest="test_file", help="a CSV dataset's test set, with the same "
                     "columns (default: a stratified fifth of the file, seed 0)")
    run.add_argument("--log", action="append", metavar="tensorboard[=DIR]|mlflow[=URI]",
                     help="also publish the sweep live, as each epoch ends: TensorBoard event files (default "
                     "RUN_DIR/tensorboard; needs reglab[tensorboard]) or an MLflow tracking store (default MLflow's "
                     "own; needs reglab[mlflow]); repeatable")
    run.add_argument("--validation-split", type=float, metavar="F", dest="validation_split",
                     help="share of the training data held out for validation, 0 < F < 1 (default: the last sixth of a "
                     "training file, as Keras's validation_split; a dataset with a stated split keeps it)")
    run.add_argument("--engine", choices=ENGINES, help="training engine: fused = every arm at once in one compiled "
                     "JAX program; keras = one model.fit per arm (the reference)" + _flag_help("fused"))
    run.add_argument("--model", metavar="FILE.py:FUNCTION", help="train your own Keras model: FUNCTION() returns it "
                     "(starting with keras.Input, ending in one softmax output per class of the data); the L2 strength of its regularized "
                     "kernels is swept, or of every Dense/Conv kernel when it declares none" + _flag_help("the study's network"))
    run.add_argument("--regularizer", metavar="FAMILY[,FAMILY...]", dest="regularizers",
                     help="regularizer families compared as arms of one sweep: l2, l1, l1_l2 (L1 and L2 at the same "
                     "strength), l1_l2:RATIO (L2 at RATIO × the L1 strength), weight_decay (decoupled, AdamW-style, "
                     "through the Keras optimizer)" + _flag_help("l2"))
    run.add_argument("--strengths", action="append", metavar="FAMILY=SPEC", help="a family's own strength grid, "
                     "SPEC as for --lambdas (repeatable); families without one use --lambdas")
    run.add_argument("--learning-rates", metavar="R1,R2,...", dest="learning_rates",
                     help="the optimizer's learning rates, a second axis of the sweep (every family × strength at "
                     "each); SPEC as for --lambdas, every value > 0" + _flag_help(f"{DEFAULT_LEARNING_RATE:g}, Keras's Adam default"))
    run.add_argument("--optimizer", choices=OPTIMIZERS, help="adam = Keras's Adam (the original study's); sgd = Keras's "
                     "SGD(momentum=0.9). Both run at --learning-rates (default 0.001 for both: pass --learning-rates "
                     "0.01 for Keras's SGD default)" + _flag_help("adam"))
    run.add_argument("--early-stopping", type=int, metavar="PATIENCE", dest="early_stopping",
                     help="stop each arm after PATIENCE epochs without a lower validation data loss (Keras's "
                     "EarlyStopping, per arm); 0 = off" + _flag_help(0))
    run.add_argument("--restore-best", action="store_true", default=None, dest="restore_best",
                     help="with --early-stopping: evaluate each arm on the test set with its best epoch's weights")
    run.add_argument("--max-arms", type=int, metavar="N", dest="max_arms",
                     help="allow a sweep of up to N arms; a larger one is refused before anything is loaded (a safety "
                     "limit, not part of the experiment; ignored with --resume)" + _flag_help(f"{MAX_ARMS:,}"))
    run.add_argument("--out", metavar="DIR", help="run directory to create (default: runs/<UTC timestamp>)")
    run.add_argument("--force", action="store_true", help="overwrite an existing run directory (only reglab's own files)")
    run.add_argument("--no-progress", action="store_true", help="print one line per epoch instead of a live progress bar")
    run.add_argument("--no-report", action="store_true", help="record the run (recommended.keras "
                     "included) and print the answer, but draw no figures and no report (seconds for a large grid); "
                     "`reglab report RUN_DIR` draws them later")
    run.add_argument("--executor", choices=("local", "blocks", "ray"), help="local = one process, all arms in one "
                     "program; blocks = the grid split into blocks trained one after another; ray = each block a Ray "
                     "task (pip install 'reglab[ray]')" + _flag_help("local"))
    run.add_argument("--blocks", type=int, metavar="N", help="number of blocks for --executor blocks|ray "
                     "(default: the Ray cluster's CPUs, or 2)")
    run.add_argument("--address", metavar="auto|HOST:PORT", help="the Ray cluster to join (default: start a local one)")
    run.add_argument("--adaptive", action="store_true", help="choose the strengths and seeds in rounds: start from λ = 0 and a "
                     "coarse log grid at 2 seeds, extend and refine where the best is still open, add seeds to the "
                     "contenders, then confirm the chosen strength against λ = 0 on fresh seeds scored on the test set")
    run.add_argument("--confirm", action="store_true", help="train the grid as given, then the best strength and λ = 0 "
                     "again on 3 fresh seeds scored on the test set: the answer's claim rests on that one comparison "
                     "(one regularizer family, one learning rate)")
    run.add_argument("--budget", type=int, metavar="ARM_EPOCHS", help="with --adaptive: stop once this many arm-epochs are "
                     "spent (the confirmation round is always kept within it)")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run (killed, interrupted, out of disk) from its "
                     "last complete epoch, with the settings stored in it; finished arms are not trained again")

    rep = sub.add_parser("report", help="rebuild figures/, report.md and report.html of a run from its record, without training",
                         description="Rebuild RUN_DIR/figures, RUN_DIR/report.md and RUN_DIR/report.html from the run's "
                         "record (run.json, metrics.csv, kernels.npz) alone.")
    rep.add_argument("run_dir", metavar="RUN_DIR")
    rep.add_argument("--open", action="store_true", help="open report.html in the web browser, where one exists")

    exp = sub.add_parser("export", help="publish a finished (or stopped) run to TensorBoard and/or MLflow",
                         description="Publish RUN_DIR's record (run.json, metrics.csv, kernels.npz, the report) as "
                         "--log does live: one TensorBoard run / MLflow child run per arm.")
    exp.add_argument("run_dir", metavar="RUN_DIR")
    exp.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard event files (and the HParams "
                     "experiment) under DIR")
    exp.add_argument("--mlflow", metavar="URI", nargs="?", const="", help="log to an MLflow tracking store "
                     "(default: MLflow's own default store)")
    return parser


def _version() -> str:
    try:
        return version("reglab")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def config_from_args(args: argparse.Namespace) -> SweepConfig:
    values: dict[str, Any] = {}
    where = "config"
    if args.config:
        values.update(load_toml(args.config))
        where = args.config
    config = SweepConfig.from_mapping(values, where=where)
    flags = {k: getattr(args, k) for k in ("seeds", "seed", "epochs", "batch_size", "dataset", "engine", "early_stopping",
                                           "restore_best", "model", "optimizer", "target", "test_file",
                                           "validation_split", "log")}
    changes = {k: v for k, v in flags.items() if v is not None}
    if args.lambdas is not None:
        changes["lambdas"] = parse_lambdas(args.lambdas)
    if args.learning_rates is not None:
        changes["learning_rates"] = parse_learning_rates(args.learning_rates)
    if args.regularizers is not None:
        changes["regularizers"] = list(parse_families(args.regularizers))
        if args.strengths is None and set(dict(config.strengths)) - set(changes["regularizers"]):
            changes["strengths"] = {f: list(g) for f, g in config.strengths if f in changes["regularizers"]}
    if args.strengths is not None:
        changes["strengths"] = {f: list(g) for f, g in parse_strengths(args.strengths)}
    return config.replace(**changes) if changes else config


#: flags that define the experiment: a resumed run keeps its own
EXPERIMENT_FLAGS = ("config", "lambdas", "seeds", "seed", "epochs", "batch_size", "dataset", "engine", "out", "force",
                    "executor", "blocks", "early_stopping", "restore_best", "model", "regularizers", "strengths",
                    "learning_rates", "optimizer", "target", "test_file", "validation_split", "log", "adaptive", "confirm",
                    "budget")


def cmd_run(args: argparse.Namespace) -> int:
    """Keras is imported only once the flags are checked, so that a mistyped flag is refused in under a second."""
    job = _checked_job(args, Console(stderr=True), False if args.no_progress else None)
    import_keras_for_a_run()
    result = job()
    if isinstance(result, AdaptiveRun):
        print(result.summary())
    else:
        print_summary(report_run(result, draw=not args.no_report), report_drawn=not args.no_report)
    return 0


def _checked_job(args: argparse.Namespace, err: Console, live: bool | None) -> Callable[[], RunRecord | AdaptiveRun]:
    """The run, sweep or resume the flags ask for, once every flag is checked: it trains when called."""
    if args.resume is not None:
        given = [f for f in EXPERIMENT_FLAGS if getattr(args, f) not in (None, False)]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise ConfigError(f"{flag} cannot be used with --resume: a resumed run keeps the settings it was started with")
        if is_adaptive(args.resume):
            _no_report_for_adaptive(args)
            return functools.partial(resume_adaptive, args.resume, console=err, live=live)
        return functools.partial(resume_sweep, args.resume, console=err, live=live, address=args.address, make_report=False)
    if args.adaptive:
        if args.confirm:
            raise ConfigError("--confirm cannot be used with --adaptive: an adaptive sweep confirms its answer already")
        _no_report_for_adaptive(args)
        return _adaptive_job(args, err, live)
    if args.confirm:
        return _confirm_job(args, err, live)
    if args.budget is not None:
        raise ConfigError("--budget is for --adaptive sweeps")
    config = config_from_args(args)
    if (args.blocks is not None or args.address) and args.executor in (None, "local"):
        raise ConfigError("--blocks and --address need --executor blocks or --executor ray")
    return functools.partial(run_sweep, config, out=args.out, force=args.force, console=err, live=live,
                             executor=args.executor or "local", blocks=args.blocks, address=args.address,
                             max_arms=MAX_ARMS if args.max_arms is None else args.max_arms, make_report=False)


def _no_report_for_adaptive(args: argparse.Namespace) -> None:
    if args.no_report:
        raise ConfigError("--no-report is for single runs: an adaptive sweep draws only its confirming round's report")


def _adaptive_job(args: argparse.Namespace, err: Console, live: bool | None) -> Callable[[], AdaptiveRun]:
    for flag in ("lambdas", "seeds", "seed", "executor", "blocks", "address"):
        if getattr(args, flag) is not None:
            raise ConfigError(f"--{flag} cannot be used with --adaptive: the sweep chooses its own strengths and seeds "
                              "and trains each round in one program")
    config = config_from_args(args)
    options = AdaptiveOptions(epochs=config.epochs, budget=args.budget)
    return functools.partial(run_adaptive, config, options, out=args.out, force=args.force, console=err, live=live)


def _confirm_job(args: argparse.Namespace, err: Console, live: bool | None) -> Callable[[], AdaptiveRun]:
    """The grid as given, then the confirmation round (`run.adaptive.confirm_options`)."""
    if args.budget is not None:
        raise ConfigError("--budget is for --adaptive sweeps")
    for flag in ("executor", "blocks", "address"):
        if getattr(args, flag) is not None:
            raise ConfigError(f"--{flag} cannot be used with --confirm: the grid and its confirmation each train in one program")
    if args.no_report:
        raise ConfigError("--no-report cannot be used with --confirm: the grid's report and the answer's are drawn as it ends")
    config = config_from_args(args)
    options = confirm_options(config)
    check_arm_cap(config, MAX_ARMS if args.max_arms is None else args.max_arms)
    return functools.partial(run_adaptive, config, options, out=args.out, force=args.force, console=err, live=live)


def cmd_report(args: argparse.Namespace) -> int:
    if is_adaptive(args.run_dir):
        adaptive = load_adaptive(args.run_dir)
        with locked(Path(args.run_dir)):
            path = write_adaptive_report(adaptive)
        print(adaptive.summary())
        print(f"report: {path}")
        if args.open:
            open_in_browser(path)
        return 0
    read_run_meta(args.run_dir)  # a folder that is not a reglab run is refused before anything is written into it
    with locked(Path(args.run_dir)):
        run = load_run(args.run_dir)
        analysis = analyze(run)
        path = build_report(run, analysis)
    print(analysis.summary())
    print(f"report: {path}")
    print(f"report: {path.with_name('report.md')}")
    if args.open:
        open_in_browser(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.tensorboard is None and args.mlflow is None:
        raise ConfigError("reglab export needs --tensorboard DIR and/or --mlflow [URI]")
    if args.tensorboard is not None and not args.tensorboard.strip():
        raise ConfigError("--tensorboard needs a folder")
    read_run_meta(args.run_dir)  # a folder that is not a reglab run is refused first
    with locked(Path(args.run_dir)):
        run = load_run(args.run_dir)
    if args.tensorboard is not None:
        export_tensorboard(run.run_dir, Path(args.tensorboard))
        print(f"tensorboard: {args.tensorboard} (tensorboard --logdir {args.tensorboard})")
    if args.mlflow is not None:
        where = export_mlflow(run.run_dir, args.mlflow or None)
        print(f"mlflow: {where}")
    return 0


def open_in_browser(path: Path) -> bool:
    """Open a local file in the user's browser; without one (a server, CI) say so and go on."""
    try:
        opened = webbrowser.open(path.resolve().as_uri())
    except webbrowser.Error:
        opened = False
    if not opened:
        print(f"reglab: no web browser found here; open {path} yourself", file=sys.stderr)
    return opened


def print_summary(analysis: RunAnalysis, report_drawn: bool = True) -> None:
    """One line per arm and the answer, in at most 80 columns (more when the terminal is wider)."""
    width = max(80, shutil.get_terminal_size((80, 24)).columns) if sys.stdout.isatty() else 80
    for line in summary_lines(analysis, width, report_drawn):
        print(line)


#: An error line longer than this is cut: a 5 MB value echoed in a message must not become a 5 MB line.
MAX_ERROR_CHARS = 300
#: reglab's own lines about a run (where its record is, the command that resumes it) name the run directory,
#: up to three times: they get more room, so the path the user needs is not the part cut off.
MAX_RUN_MESSAGE_CHARS = 1200


def _clipped(message: object, limit: int = MAX_ERROR_CHARS) -> str:
    """A message as one readable line: whitespace runs (newlines too) become one space, other control characters
    (a NUL, a terminal escape in a path) are shown as \\xNN, and at most `limit` characters, the last an
    ellipsis when cut."""
    text = " ".join(str(message)[: 4 * limit].split())
    text = re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda m: f"\\x{ord(m.group()):02x}", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return {"run": cmd_run, "report": cmd_report, "export": cmd_export}[args.command](args)
    except RunInterrupted as e:
        print(_clipped(f"reglab: {e}", MAX_RUN_MESSAGE_CHARS), file=sys.stderr)
        return 128 + e.signum if e.signum else EXIT_INTERRUPTED  # 130 for Ctrl-C, 143 for SIGTERM, as shells report
    except RunFailed as e:
        print(_clipped(f"reglab: error: {e}", MAX_RUN_MESSAGE_CHARS), file=sys.stderr)
        return 1
    except ReglabError as e:
        print(_clipped(f"reglab: error: {e}"), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("reglab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:  # a full disk, a read-only directory, ...
        print(_clipped(f"reglab: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), MAX_RUN_MESSAGE_CHARS),
              file=sys.stderr)
        return 1
    except Exception as e:  # never a traceback for users; REGLAB_DEBUG=1 shows it
        if os.environ.get("REGLAB_DEBUG"):
            raise
        print(_clipped(f"reglab: internal error: {type(e).__name__}: {e}")
              + " (rerun with REGLAB_DEBUG=1 for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
