import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

# One JAX compilation cache for the whole session, inherited by the `reglab` processes tests start: the
# suite compiles the same small programs hundreds of times (every subprocess run, every fresh model), and
# a cache hit returns the very executable a compilation would build, so no record changes. Fresh per
# session (nothing carried between runs) and removed at the end.
_JAX_CACHE = tempfile.mkdtemp(prefix="reglab-tests-jax-cache-")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _JAX_CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
sys.path.insert(0, str(Path(__file__).parent))

from hypothesis import settings  # noqa: E402

# CI gets the same examples on every run (a red CI must be reproducible); locally, new ones each run.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_unconfigure(config) -> None:
    shutil.rmtree(_JAX_CACHE, ignore_errors=True)
