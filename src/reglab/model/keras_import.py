"""Keras's import for a process that trains: without the integrations reglab never uses.

Kept apart from `_keras` (which imports Keras as it is loaded) so that a process can call it first.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator

#: Modules Keras imports at start-up only to offer integrations a `reglab run` never uses: pandas
#: DataFrames as `fit` data and Keras's scikit-learn wrappers (scikit-learn brings SciPy's statistics).
#: Left out, a run starts 2.0 s sooner (Keras's import: 6.5 → 4.4 s here).
KERAS_OPTIONAL_IMPORTS = ("pandas", "sklearn")


@contextlib.contextmanager
def imports_refused(names: Iterable[str]) -> Iterator[list[str]]:
    """Within the block, `import NAME` raises ModuleNotFoundError for each of `names` not imported yet (the
    list of those is what the block gets); on every way out, those names are importable again.

    Why this writes to `sys.modules`: Keras 3 (3.15 here) imports pandas
    (`keras/src/trainers/data_adapters/array_slicing.py`) and scikit-learn (`keras/src/wrappers/fixes.py`,
    `utils.py`, `sklearn_wrapper.py`) as it is imported, each in `try: import ... except ImportError`, with
    no setting or environment variable to skip them. A `None` entry in `sys.modules` is Python's documented
    way to make one import fail with ModuleNotFoundError (the language reference, "The import system", "The
    module cache"), narrower than a finder on `sys.meta_path`; entries are only added for names that are
    absent, and only those entries are removed again. The refusal is process-wide while it lasts: keep
    the block to one import, before other threads import anything.
    """
    refused = [name for name in dict.fromkeys(names) if name not in sys.modules]
    for name in refused:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield refused
    finally:
        for name in refused:
            if name in sys.modules and sys.modules[name] is None:  # the real module, if one got in, stays
                del sys.modules[name]


def import_keras_for_a_run() -> None:
    """Import Keras without its optional pandas and scikit-learn integrations, unless this process has
    already imported them. reglab hands Keras numpy arrays only; its CSV reader and bundled tables import
    pandas and scikit-learn themselves, after this, and get the real modules."""
    if "keras" in sys.modules:
        return
    with imports_refused(KERAS_OPTIONAL_IMPORTS):  # Keras catches the ImportError and goes without them
        from reglab import _keras  # noqa: F401


__all__ = ["KERAS_OPTIONAL_IMPORTS", "import_keras_for_a_run", "imports_refused"]
