"""Fault injection for tests: make the n-th checkpoint write of a reglab process fail.

`REGLAB_FAULT=<point>:<n>` names the fault, `n` counting from 1 within one process:

- `checkpoint-write:N`: the N-th checkpoint write is killed (SIGKILL) with its temporary file complete and
  flushed but not yet in place, as a crash in the middle of a write would leave it;
- `checkpoint-disk-full:N`: the N-th checkpoint write fails as on a full disk (OSError ENOSPC), right after
  its temporary file is opened.

reglab itself knows nothing of this: `install` replaces the `write_atomic` that `reglab.record.checkpoint`
writes checkpoints with by one that fails at the chosen passage (other files are written as usual).

- In a test's own process: `install("checkpoint-disk-full:2", monkeypatch)` (undone with the test).
- In a child process: `python tests/faults.py ARGS` reads REGLAB_FAULT, installs it, then runs `python -m
  reglab ARGS` (runpy, so argv, `__main__` and sys.path are as `-m reglab` sets them). `helpers.spawned`
  starts `reglab_argv(...)` this way when the env it is given holds REGLAB_FAULT.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "REGLAB_FAULT"
POINTS = ("checkpoint-write", "checkpoint-disk-full")
_TARGET = "reglab.record.checkpoint"  # the module whose `write_atomic` is replaced


def parse(spec: str) -> tuple[str, int]:
    point, sep, n = spec.partition(":")
    if point not in POINTS or not sep or not n.isdigit() or int(n) < 1:
        raise ValueError(f"{ENV}={spec!r}: expected <point>:<n>, point one of {', '.join(POINTS)}, n >= 1")
    return point, int(n)


def faulty(write_atomic: Callable[..., None], spec: str) -> Callable[..., None]:
    """`write_atomic` whose n-th call fails as `spec` says (the calls before and after it are untouched)."""
    from reglab.fileio import temporary_name

    point, n = parse(spec)
    calls = 0

    def write(path: Path, data: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls != n:
            return write_atomic(path, data, **kwargs)

        def fail(f) -> None:  # runs inside write_atomic, with the temporary file open
            if point == "checkpoint-disk-full":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(temporary_name(Path(path))))
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)  # the temporary file is complete, the old one still in place

        return write_atomic(path, fail, **kwargs)

    return write


def install(spec: str, monkeypatch=None) -> None:
    """Make checkpoint writes in this process fail as `spec` (`<point>:<n>`) says; with `monkeypatch`
    (pytest's fixture), undone when the test ends."""
    import importlib

    module = importlib.import_module(_TARGET)
    replacement = faulty(module.write_atomic, spec)
    if monkeypatch is not None:
        monkeypatch.setattr(module, "write_atomic", replacement)
    else:
        module.write_atomic = replacement


def main() -> None:
    """`python tests/faults.py ARGS`: `python -m reglab ARGS` with REGLAB_FAULT installed."""
    import runpy

    spec = os.environ.get(ENV)
    if not spec:
        raise SystemExit(f"{ENV} is not set")
    sys.path[0] = os.getcwd()  # as `python -m` sets it (this script's folder otherwise)
    install(spec)
    runpy.run_module("reglab", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
