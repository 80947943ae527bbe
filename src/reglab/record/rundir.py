"""Who may write a run directory, and what in it is reglab's.

- **One process at a time.** `locked(run_dir)` holds an exclusive `flock` on RUN_DIR/.reglab.lock for
  a whole run, resume or report; a second reglab process is refused at once with the holder's pid.
  The lock is re-entrant within a process (a run draws its report under the lock it already holds).
- **A manifest of what reglab wrote.** RUN_DIR/manifest.json lists every file reglab writes there,
  each added *before* the file is created, so `--force` removes exactly those (and their temporaries)
  and nothing of the user's, even in a folder that holds other files.
- **Nothing through a link.** While the lock is held, the run directory is a `fileio.confined` root: no
  write or removal goes through a symbolic link at any depth inside it (the folder itself may be a link
  the user gave). `--force` checks every path it would remove first and removes nothing when one goes
  through a link.
- **New run names never collide**: a default `runs/<UTC time>` is created exclusively, with `-2`,
  `-3`, … when another run took that second.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import stat
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from reglab.config import INPUT_FILES, INPUTS
from reglab.errors import RunDirError
from reglab.fileio import confined, link_in, remove_file, temporary_name, write_atomic

LOCK = ".reglab.lock"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "reglab-manifest/1"
RUN_FORMAT = "reglab-run/1"
ADAPTIVE_JSON = "adaptive.json"  #: an adaptive sweep's plan (`reglab.run.adaptive`)
#: Top-level files reglab writes; figures go to figures/NAME.png.
TOP_LEVEL = ("run.json", "adaptive.json", "config.toml", "metrics.csv", "kernels.npz", "validation.npz", "checkpoint.npz", "report.md",
             "report.html", "weights.npz", "recommended.keras")
FIGURES = "figures"
_FIGURE_NAME = re.compile(r"[A-Za-z0-9_.=+-]{1,200}\.png")
#: `--log tensorboard`'s default folder and its event files: `tensorboard/[ARM/[train|validation/]]events.out.tfevents.*`
TENSORBOARD = "tensorboard"
_EVENT_FILE = re.compile(r"(?:(?!\.{1,2}/)[A-Za-z0-9_.=+-]{1,200}/){0,2}events\.out\.tfevents\.[A-Za-z0-9_.-]{1,200}")

_held: dict[str, list[int]] = {}  # real path → [descriptor, depth]
_held_guard = threading.Lock()


# ---------------------------------------------------------------- the lock

@contextlib.contextmanager
def locked(run_dir: Path, *, create: bool = False) -> Iterator[Path]:
    """Hold RUN_DIR exclusively for the block (`create`: make the folder first, parents included)."""
    run_dir = Path(run_dir)
    if create:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise RunDirError(f"{run_dir} exists and is not a directory") from None
        except OSError as e:
            raise RunDirError(f"cannot create run directory {run_dir}: {e.strerror or e}") from None
    if not run_dir.is_dir():
        raise RunDirError(f"run directory not found: {run_dir}")
    key = os.path.realpath(run_dir)
    _acquire(run_dir, key)
    try:
        with confined(run_dir):
            yield run_dir
    finally:
        _release(key)


def _acquire(run_dir: Path, key: str) -> None:
    with _held_guard:
        if key in _held:
            _held[key][1] += 1
            return
        path = run_dir / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise RunDirError(f"{path} is a symbolic link; refusing to use it as reglab's lock") from None
            raise RunDirError(f"cannot lock run directory {run_dir}: {e.strerror or e}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise RunDirError(f"{path} is not a regular file; refusing to use it as reglab's lock")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunDirError(f"{run_dir} is in use by another reglab process (pid {_holder(fd)}); "
                                  "wait for it to end, or choose another directory") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        _held[key] = [fd, 1]


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


def _release(key: str) -> None:
    with _held_guard:
        entry = _held[key]
        entry[1] -= 1
        if entry[1] == 0:
            del _held[key]
            os.close(entry[0])  # closing the descriptor releases the flock


def holds(run_dir: Path) -> bool:
    """Whether this process holds RUN_DIR's lock."""
    with _held_guard:
        return os.path.realpath(run_dir) in _held


# ---------------------------------------------------------------- the manifest

def _allowed(name: Any) -> bool:
    """Only names reglab itself would write: the manifest can never point outside the folder."""
    if not isinstance(name, str):
        return False
    if name in TOP_LEVEL or name in INPUT_FILES:
        return True
    folder, _, file = name.partition("/")
    if folder == TENSORBOARD:
        return bool(_EVENT_FILE.fullmatch(file)) and ".." not in file.split("/") and "." not in file.split("/")
    return folder == FIGURES and bool(_FIGURE_NAME.fullmatch(file)) and file not in (".png", "..png")


def read_manifest(run_dir: Path) -> list[str] | None:
    """The files reglab wrote in RUN_DIR, or None when there is no valid manifest."""
    path = Path(run_dir) / MANIFEST
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode) or os.lstat(path).st_size > 1 << 20:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("files"), list):
        return None
    return [f for f in data["files"] if _allowed(f)]


def register(run_dir: Path, names: Iterable[str]) -> None:
    """Add files (paths relative to RUN_DIR) to the manifest before writing them."""
    names = list(names)
    bad = [n for n in names if not _allowed(n)]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a name reglab writes")
    files = read_manifest(run_dir) or []
    new = [n for n in names if n not in files]
    if new:
        write_atomic(Path(run_dir) / MANIFEST,
                     json.dumps({"format": MANIFEST_FORMAT, "files": files + new}, indent=1) + "\n")


# ---------------------------------------------------------------- new, existing and forced run directories

def default_run_dir(root: str | Path = "runs") -> Path:
    """The name a new run would get now (`reserve_default_run_dir` makes it unique)."""
    return Path(root) / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def reserve_default_run_dir(root: str | Path = "runs") -> Path:
    """Create runs/<UTC time>, or <UTC time>-2, -3, …: exclusively, so two runs never share one."""
    base = default_run_dir(root)
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"cannot create {base.parent}: {e.strerror or e}") from None
    for n in range(1, 10_000):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
        except OSError as e:
            raise RunDirError(f"cannot create run directory {candidate}: {e.strerror or e}") from None
    raise RunDirError(f"cannot find a free run directory name under {base.parent}")  # pragma: no cover


def _entries(run_dir: Path) -> list[str]:
    return [e for e in os.listdir(run_dir) if e != LOCK]


def is_reglab_run(run_dir: Path) -> bool:
    """run.json says it is a reglab run record, or a valid manifest says reglab started one here."""
    path = Path(run_dir) / "run.json"
    try:
        if stat.S_ISREG(os.lstat(path).st_mode) and os.lstat(path).st_size < 256 << 20:
            meta = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(meta, dict) and meta.get("format") == RUN_FORMAT:
                return True
    except (OSError, UnicodeDecodeError, ValueError):
        pass
    return read_manifest(run_dir) is not None


def is_adaptive(run_dir: str | Path) -> bool:
    """An adaptive sweep's folder (`reglab.run.adaptive`): its plan is there."""
    return (Path(run_dir) / ADAPTIVE_JSON).is_file()


def refuse_adaptive_sweep(run_dir: str | Path) -> None:
    """An adaptive sweep's folder has a run.json and a metrics.csv merged over its rounds, but it is not one run:
    a reader of one run refuses it in one line that says what reads it instead."""
    if is_adaptive(run_dir):
        raise RunDirError(f"{run_dir} is an adaptive sweep, not one run: `reglab report {run_dir}` (or "
                          "reglab.run.adaptive.load_adaptive) reads it, and each of its rounds, "
                          f"{Path(run_dir) / 'rounds' / 'NN'}, is an ordinary run")


def check_run_dir(run_dir: Path, force: bool) -> None:
    """Refuse an existing, non-empty directory unless `force`; with `force`, refuse one that is not a reglab
    run or does not list what reglab wrote in it (nothing of the user's is ever removed)."""
    run_dir = Path(run_dir)
    if not str(run_dir).strip():
        raise RunDirError("the run directory name is empty")
    if run_dir.is_symlink() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is a broken symbolic link")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} exists and is not a directory")
    try:
        entries = _entries(run_dir) if run_dir.is_dir() else []
    except OSError as e:
        raise RunDirError(f"cannot read {run_dir}: {e.strerror or e}") from None
    if not entries:
        return
    if not force:
        raise RunDirError(f"run directory {run_dir} already exists (use --force to overwrite it, or --out to choose another)")
    if not is_reglab_run(run_dir):
        raise RunDirError(f"{run_dir} is not empty and is not a reglab run directory; refusing to overwrite it")
    if read_manifest(run_dir) is None:
        raise RunDirError(f"{run_dir} was written by an older reglab that kept no list of its files; "
                          "--force removes only listed files: delete the folder yourself or choose another --out")
    _removal_plan(run_dir)  # a listed file reached through a link: refused before anything is loaded or removed


def _remove_empty_folders(folder: Path) -> None:
    """Remove `folder` and its subfolders bottom up where they are empty (the user's files keep theirs)."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for sub in sorted((d for d in folder.rglob("*") if d.is_dir() and not d.is_symlink()), key=lambda d: -len(d.parts)):
        if not any(sub.iterdir()):
            sub.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()


def clear_run_dir(run_dir: Path) -> list[str]:
    """Remove the files the manifest lists (and their temporaries), after `check_run_dir(force=True)`;
    returns what was removed. Anything else in the folder stays. The whole plan is checked first: when a
    path goes through a symbolic link inside the run directory, nothing is removed (RunDirError naming it)."""
    run_dir = Path(run_dir)
    plan = _removal_plan(run_dir)
    removed = []
    for path in plan:
        remove_file(path, run_dir)
        removed.append(str(path.relative_to(run_dir)))
    _remove_empty_figures(run_dir)
    for folder in (TENSORBOARD, INPUTS):
        _remove_empty_folders(run_dir / folder)
    remove_file(run_dir / MANIFEST, run_dir)
    return removed


def remove_report(run_dir: Path) -> None:
    """Remove a report drawn earlier (report.md, report.html, figures/, as the manifest lists them, and their
    temporaries): a run recorded further without drawing one (`--no-report`) must not keep the report of an
    earlier state. Refused whole, as `clear_run_dir`, when one is reached through a link."""
    run_dir = Path(run_dir)
    for path in _removal_plan(run_dir, lambda name: name in ("report.md", "report.html") or name.startswith(f"{FIGURES}/")):
        remove_file(path, run_dir)
    _remove_empty_figures(run_dir)


def _remove_empty_figures(run_dir: Path) -> None:
    figures = run_dir / FIGURES
    if figures.is_dir() and not figures.is_symlink() and not any(figures.iterdir()):
        figures.rmdir()


def _removal_plan(run_dir: Path, selected: Callable[[str], bool] = lambda name: True) -> list[Path]:
    """Every listed file (and temporary) that exists as a file or a link entry, of the names `selected`;
    refused whole when one is reached through a link (`figures/` → the user's photos): the link's target is
    the user's."""
    plan = []
    for name in filter(selected, read_manifest(run_dir) or []):
        for path in (run_dir / name, temporary_name(run_dir / name)):
            link = link_in(path, run_dir)
            if link is not None:
                raise RunDirError(f"{link} is a symbolic link; reglab removes nothing through a link, so nothing "
                                  "was removed: replace the link with a folder, or choose another --out")
            try:
                mode = os.lstat(path).st_mode
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                plan.append(path)
    return plan
