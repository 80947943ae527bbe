"""The worker threads that train arms (or packed groups of arms) side by side on a CPU's cores.

Each worker takes the next unit of work as soon as it is free and waits for its result on its own
thread: a unit's computations never depend on which worker ran it, so records are the same with any
number of workers.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")

#: Overrides the number of workers chosen by backend (tests check that records do not depend on it).
WORKERS: int | None = None


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


@functools.cache
def _pool(n: int) -> ThreadPoolExecutor:
    """A process-wide pool of `n` worker threads, made on first use and kept (cached): one sweep after
    another reuses them."""
    return ThreadPoolExecutor(n, thread_name_prefix="reglab-worker")


def on_workers(call: Callable[[int], T], n_units: int, workers: int, check: Callable[[], None] | None = None) -> list[T]:
    """`call(i)` for every unit i, results in unit order. `call` must wait for its own results
    (`jax.block_until_ready`): that is the work done on that worker's thread, beside the others'.

    `check` runs on the calling thread between units and may raise (a stop asked by a signal): the units
    not started are then cancelled and the running ones finished (a unit takes at most seconds), so a stop
    lands within one unit of work, not one pass over every arm."""
    import jax

    check = check or (lambda: None)
    if workers <= 1 or n_units <= 1:  # dispatch every unit, then wait once (an accelerator queues them)
        out: list[T] = []
        for i in range(n_units):
            check()
            out.append(call(i))
        return jax.block_until_ready(out)
    pool = _pool(workers)
    futures: list[Future[T]] = []
    running: set[Future[T]] = set()
    try:
        for i in range(n_units):  # at most two units per worker queued: the rest wait for a stop check
            while len(running) >= 2 * workers:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                running -= done
                check()
            check()
            futures.append(pool.submit(call, i))
            running.add(futures[-1])
        return [f.result() for f in futures]
    except BaseException:
        for f in running:
            f.cancel()
        wait(running, timeout=60)  # the started units end in seconds; a second signal does not wait for them
        raise


__all__: list[str] = ["WORKERS", "on_workers", "worker_count"]
