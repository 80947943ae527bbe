import os
import shutil
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
# One BLAS thread per process (inherited by pytest-xdist's workers and the `reglab` processes tests start): the
# suite already keeps both cores busy with two workers, and a second OpenBLAS thread per worker only spins
# waiting for work (the analysis and report tests took 144 CPU-seconds with it, 103 without, and no longer).
# The analysis's decisions do not depend on it: the bootstrap's draws are identical either way (a matrix
# product's last bits may differ, as they do between machines). A limit set from outside is kept.
for _blas_threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_blas_threads, "1")
if "numpy" in sys.modules:  # too late for the variables in this process: its BLAS has started its threads
    from threadpoolctl import threadpool_limits

    threadpool_limits(int(os.environ["OPENBLAS_NUM_THREADS"]), user_api="blas")
# MLflow's first contact with a fresh sqlite store runs its migrations: seconds here, but over the 10 s budget on a
# loaded 2-core machine. Tests that are about the budget set their own; the rest must not fail for the load.
os.environ.setdefault("REGLAB_MLFLOW_TIMEOUT", "120")

# One JAX compilation cache for the whole session, inherited by the `reglab` processes tests start (and by
# pytest-xdist's workers): the suite compiles the same small programs hundreds of times (every subprocess
# run, every fresh model), and a cache hit returns the very executable a compilation would build, so no
# record changes. Fresh per session (nothing carried between runs); removed at the end by the process that
# made it. A cache directory set from outside is used and left alone.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="reglab-tests-jax-cache-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def _atomic_cache_writes() -> None:
    """JAX writes a cache entry in place (`LRUCache.put`: `write_bytes`), so a process reading it while another
    writes it gets a partial entry, and a warning. In this process (and its xdist siblings, which load this
    file too) entries are written under a temporary name and renamed into place: readers see all or nothing."""
    from jax._src import lru_cache

    suffix = getattr(lru_cache, "_CACHE_SUFFIX", None)
    if suffix is None or not hasattr(lru_cache.LRUCache, "put"):  # another JAX: leave it as it is
        return
    original = lru_cache.LRUCache.put

    def put(self, key: str, value: bytes) -> None:
        if getattr(self, "eviction_enabled", True):  # a size limit: JAX's own locking and eviction apply
            return original(self, key, value)
        path = self.path / f"{key}{suffix}"
        if path.exists():
            return None
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(value)
        os.replace(tmp, path)
        return None

    lru_cache.LRUCache.put = put


_atomic_cache_writes()
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402  (after the cache patch above)

# CI gets the same examples on every run (a red CI must be reproducible); locally, new ones each run.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_unconfigure(config) -> None:
    if _OWN_CACHE:
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


@pytest.hookimpl(trylast=True)  # after `-m` and `-k` have deselected: the tests that will run are weighed
def pytest_collection_modifyitems(config, items) -> None:
    """Test files in order of their expected length, the longest first: files with more `slow` tests (long
    end-to-end checks), then more tests. pytest-xdist hands each file whole to a free worker in this order
    (`--no-loadscope-reorder`), so the last files handed out are short ones and neither worker waits long at
    the end for the other. Its own order (most tests first) handed out the few-test end-to-end files last."""
    slow = Counter(item.path for item in items if item.get_closest_marker("slow") is not None)
    tests = Counter(item.path for item in items)
    items.sort(key=lambda item: (-slow[item.path], -tests[item.path]))  # stable: each file's tests stay in order
