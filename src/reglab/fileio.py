"""Every file reglab writes goes through here: whole or not at all, never through a link.

`write_atomic` writes a temporary file beside the target, created exclusively (`O_EXCL | O_NOFOLLOW`:
a link or file planted under the temporary name is removed as an entry, never written through),
fsyncs it, renames it over the target (a rename replaces a link at the target, it never follows it)
and fsyncs the directory, so a reader or a crash sees the old file or the new one. On any failure the
temporary file is removed and the old file stays. `open_append` opens metrics.csv for appending the
same careful way.

**No link at any depth.** A *root* is a folder whose inside is reglab's: a run directory while its lock is
held (`rundir.locked` calls `confined`), or one passed as `root=`. Every write, folder creation and removal
under a root first checks each path component between the root and the target (`link_in`): a symbolic
link there (`figures/` → the user's photos) is refused with ELOOP, never followed. The root itself may be
a link the user gave; only links inside it are refused.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from pathlib import Path
from typing import IO, Callable, Iterator, Union

Payload = Union[bytes, str, Callable[[IO[bytes]], None]]

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
LINK_REFUSED = "is a symbolic link; reglab does not write through links"

_roots: dict[str, int] = {}  # absolute root path (as given, and resolved) → how many `confined` blocks hold it
_roots_guard = threading.Lock()


# ---------------------------------------------------------------- roots: no link inside them

@contextlib.contextmanager
def confined(root: Path) -> Iterator[None]:
    """For the block, refuse every write or removal through a link inside `root` (a run directory)."""
    keys = {os.path.abspath(root), os.path.realpath(root)}  # a path may reach the root either way
    with _roots_guard:
        for key in keys:
            _roots[key] = _roots.get(key, 0) + 1
    try:
        yield
    finally:
        with _roots_guard:
            for key in keys:
                _roots[key] -= 1
                if not _roots[key]:
                    del _roots[key]


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _root_of(path: Path, root: Path | None) -> tuple[Path, tuple[str, ...]] | None:
    """The outermost root holding `path` (checking from there covers every inner one) and the components
    below it; None when `path` is in no root."""
    target = os.path.abspath(path)
    with _roots_guard:
        candidates = list(_roots)
    if root is not None:
        candidates.append(os.path.abspath(root))
    holding = [r for r in candidates if _inside(target, r)]
    if not holding:
        return None
    base = min(holding, key=len)
    return Path(base), Path(os.path.relpath(target, base)).parts if target != base else ()


def link_in(path: Path, root: Path | None = None) -> Path | None:
    """The first symbolic link among the folders between the root holding `path` and `path` (a link at `path`
    itself is an entry to replace, not a way through), or None. A missing folder ends the search."""
    found = _root_of(Path(path), root)
    if found is None:
        return None
    current, parts = found
    for part in parts[:-1]:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(mode):
            return current
    return None


def refuse_links(path: Path, root: Path | None = None) -> Path:
    """`path`, after checking that no folder between its root and it is a link (OSError ELOOP naming the link)."""
    link = link_in(path, root)
    if link is not None:
        raise OSError(errno.ELOOP, LINK_REFUSED, str(link))
    return Path(path)


def safe_path(root: Path, relative: str | Path) -> Path:
    """ROOT/RELATIVE, refused (OSError ELOOP) when a folder on the way is a link."""
    return refuse_links(Path(root) / relative, Path(root))


# ---------------------------------------------------------------- writes

def temporary_name(path: Path) -> Path:
    """Where `write_atomic` writes before the rename (a crash may leave it behind; the next write removes it)."""
    return path.with_name(f".{path.name}.tmp")


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms without directory descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: Payload, *, root: Path | None = None) -> None:
    """Replace `path` with `data` (bytes, text as UTF-8, or a function that writes to a binary file).

    A failure names `path` (a full disk mid-write says only "No space left on device" otherwise).
    """
    path = refuse_links(Path(path), root)
    tmp = temporary_name(path)
    _remove_entry(tmp)
    fd = os.open(tmp, _CREATE, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        _remove_entry(tmp)
        if isinstance(e, OSError) and e.filename is None:
            e.filename = str(path)
        raise
    fsync_dir(path.parent)


def open_append(path: Path, root: Path | None = None) -> IO[str]:
    """metrics.csv for appending rows (created if missing); a link at `path`, or on the way to it, is refused."""
    path = refuse_links(Path(path), root)
    try:
        fd = os.open(path, _APPEND, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, LINK_REFUSED, str(path)) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "is not a regular file", str(path))
        return os.fdopen(fd, "a", newline="", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def ensure_dir(path: Path, *, parents: bool = False, root: Path | None = None) -> Path:
    """Create a folder reglab writes into (figures/, a TensorBoard run's); one that exists as a link or a file
    is refused, and so is a link on the way from its root (`parents`: missing folders on the way are created,
    each checked before the next)."""
    path = Path(path)
    found = _root_of(path, root)
    if found is None:
        _make_dir(path, parents)
    else:
        base, parts = found
        if not parts or not base.is_dir():
            base.mkdir(parents=True, exist_ok=True)  # the root itself may be a link the user gave
        current = base
        for i, part in enumerate(parts):
            current = current / part
            _make_dir(current, parents=False, create=parents or i == len(parts) - 1)
    return path


def _make_dir(path: Path, parents: bool, create: bool = True) -> None:
    """One folder, created if `create` and missing; refused when it is a link or not a folder."""
    if create:
        try:
            path.mkdir(parents=parents, exist_ok=True)
        except FileExistsError:
            pass
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        raise OSError(errno.ELOOP, LINK_REFUSED, str(path))
    if not stat.S_ISDIR(mode):
        raise OSError(errno.ENOTDIR, "exists and is not a directory", str(path))


def remove_file(path: Path, root: Path | None = None) -> None:
    """Remove a file or link entry (a link's target is untouched); a missing one is fine; a link on the way
    from its root is refused (OSError ELOOP), never followed."""
    _remove_entry(refuse_links(Path(path), root))


def _remove_entry(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
