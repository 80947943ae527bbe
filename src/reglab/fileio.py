"""Every file reglab writes goes through here: whole or not at all, never through a link.

`write_atomic` writes a temporary file beside the target, created exclusively (`O_EXCL | O_NOFOLLOW`:
a link or file planted under the temporary name is removed as an entry, never written through),
fsyncs it, renames it over the target (a rename replaces a link at the target, it never follows it)
and fsyncs the directory, so a reader or a crash sees the old file or the new one. On any failure the
temporary file is removed and the old file stays. `open_append` opens metrics.csv for appending the
same careful way.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
from pathlib import Path
from typing import IO, Callable, Union

Payload = Union[bytes, str, Callable[[IO[bytes]], None]]

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


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


def write_atomic(path: Path, data: Payload, *, fault: str | None = None) -> None:
    """Replace `path` with `data` (bytes, text as UTF-8, or a function that writes to a binary file).

    `fault` names a test-only fault-injection point (see `_fault`): `<fault>-disk-full` fails the write
    as a full disk would, `<fault>-write` kills the process with the temporary file written but not in place.
    """
    path = Path(path)
    tmp = temporary_name(path)
    _remove_entry(tmp)
    fd = os.open(tmp, _CREATE, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            if fault and _fault(f"{fault}-disk-full", kill=False):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            if fault:
                _fault(f"{fault}-write")  # the temporary file is complete, the old one still in place
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove_entry(tmp)
        raise
    fsync_dir(path.parent)


def open_append(path: Path) -> IO[str]:
    """metrics.csv for appending rows (created if missing); a link at `path` is refused, not followed."""
    path = Path(path)
    try:
        fd = os.open(path, _APPEND, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "is a symbolic link; reglab does not write through links", str(path)) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "is not a regular file", str(path))
        return os.fdopen(fd, "a", newline="", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def ensure_dir(path: Path) -> Path:
    """Create a folder reglab writes into (figures/); one that exists as a link or a file is refused."""
    path = Path(path)
    try:
        path.mkdir(exist_ok=True)
    except FileExistsError:
        pass
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        raise OSError(errno.ELOOP, "is a symbolic link; reglab does not write through links", str(path))
    if not stat.S_ISDIR(mode):
        raise OSError(errno.ENOTDIR, "exists and is not a directory", str(path))
    return path


def remove_file(path: Path) -> None:
    """Remove a file or link entry (a link's target is untouched); a missing one is fine."""
    _remove_entry(Path(path))


def _remove_entry(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


_fault_count: dict[str, int] = {}


def _fault(point: str, kill: bool = True) -> bool:
    """Test-only fault injection: REGLAB_FAULT=<point>:<n> makes the n-th passage through that point fail:
    SIGKILL for this process (a crash in the middle of a write), or True for the caller to fail a write
    (a full disk)."""
    want = os.environ.get("REGLAB_FAULT", "")
    if not want.startswith(point + ":"):
        return False
    _fault_count[point] = _fault_count.get(point, 0) + 1
    if str(_fault_count[point]) != want.split(":", 1)[1]:
        return False
    if kill:
        os.kill(os.getpid(), signal.SIGKILL)
    return True
