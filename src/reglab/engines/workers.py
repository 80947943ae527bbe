"""The worker threads that train arms (or packed groups of arms) side by side on a CPU's cores.

Each worker takes the next unit of work as soon as it is free and waits for its result on its own
thread: a unit's computations never depend on which worker ran it, so records are the same with any
number of workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

#: Overrides the number of workers chosen by backend (tests check that records do not depend on it).
WORKERS: int | None = None

_POOLS: dict[int, ThreadPoolExecutor] = {}


def worker_count() -> int:
    """One worker per usable CPU core; 1 on an accelerator, where the device, not the host's cores, does the work."""
    import jax

    if WORKERS is not None:
        return WORKERS
    if jax.default_backend() != "cpu":
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _pool(n: int) -> ThreadPoolExecutor:
    """A process-wide pool of `n` worker threads (kept: one sweep after another reuses them)."""
    if n not in _POOLS:
        _POOLS[n] = ThreadPoolExecutor(n, thread_name_prefix="reglab-worker")
    return _POOLS[n]


def on_workers(call: Callable[[int], T], n_units: int, workers: int) -> list[T]:
    """`call(i)` for every unit i, results in unit order. `call` must wait for its own results
    (`jax.block_until_ready`): that is the work done on that worker's thread, beside the others'."""
    import jax

    if workers <= 1 or n_units <= 1:  # dispatch every unit, then wait once (an accelerator queues them)
        return jax.block_until_ready([call(i) for i in range(n_units)])
    return list(_pool(workers).map(call, range(n_units)))


__all__: list[Any] = ["WORKERS", "on_workers", "worker_count"]
