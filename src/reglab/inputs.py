"""Every file reglab reads from the user goes through here: regular files only, of bounded size, never blocking.

`open_regular` opens with `O_NONBLOCK`, so a FIFO given as `--config` or `--dataset` cannot hang the open,
then `fstat`s the descriptor it holds (not the path, which could change in between) and refuses anything
that is not a regular file — a FIFO, a device such as /dev/zero, a directory — and any file above the
caller's cap, before a byte is read. `brief` shortens a user's value for an error message, so a 5 MB
string never comes back as a 5 MB line.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from reglab.errors import ConfigError, ReglabError

KiB = 1 << 10
MiB = 1 << 20

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind_of(mode: int) -> str:
    """What a file that is not regular is, in words, for an error message."""
    for test, words in _KINDS:
        if test(mode):
            return words
    return "not a regular file"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", KiB)):
        if n >= scale:
            return f"{n:,} bytes ({n / scale:.3g} {unit})"
    return f"{n:,} bytes"


def open_regular(path: str | Path, what: str, max_bytes: int, error: type[ReglabError] = ConfigError) -> BinaryIO:
    """Open `path` for reading if it is a regular file of at most `max_bytes`; otherwise raise one `error` line.

    `what` names the file for the message ("config file", "model file", ...). Opening never blocks (a FIFO
    without a writer opens at once under O_NONBLOCK and is then refused); the returned file blocks normally.
    """
    p = Path(path)
    try:
        fd = os.open(p, _FLAGS)
    except FileNotFoundError:
        raise error(f"{what} not found: {p}") from None
    except OSError as e:
        raise error(f"cannot read {what} {p}: {e.strerror or e}") from None
    except ValueError:  # a NUL character: no such path can exist
        raise error(f"cannot read {what} {brief(str(p))}: a path cannot hold a NUL character") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"cannot read {what} {p}: it is {kind_of(st.st_mode)}, not a regular file")
        if st.st_size > max_bytes:
            raise error(f"{what} {p} is {_size(st.st_size)}, more than reglab reads: at most {_size(max_bytes)}")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, what: str, max_bytes: int, error: type[ReglabError] = ConfigError) -> bytes:
    """The whole content of a regular file of at most `max_bytes` (also if it grows while being read)."""
    p = Path(path)
    with open_regular(p, what, max_bytes, error) as f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise error(f"cannot read {what} {p}: {e.strerror or e}") from None
    if len(data) > max_bytes:
        raise error(f"{what} {p} grew past {_size(max_bytes)} while being read; reglab reads at most that")
    return data


def brief(value: Any, limit: int = 80) -> str:
    """`repr(value)` on one line, cut to about `limit` characters: user values echoed in messages stay readable.

    Large containers are cut before `repr` walks them, so a million-item list costs no more than a short one.
    """
    cut = False
    if isinstance(value, (list, tuple)) and len(value) > limit:
        value, cut = (list if isinstance(value, list) else tuple)(value[:limit]), True
    elif isinstance(value, (str, bytes)) and len(value) > 4 * limit:
        value, cut = value[: 4 * limit], True
    try:
        text = " ".join(repr(value).split())
    except (RecursionError, ValueError):  # nested too deeply; an int too long to print
        text = f"<a {type(value).__name__} too large to show>"
    if cut or len(text) > limit:
        return text[: max(limit - 1, 1)] + "…"
    return text
