"""Keras's import for a process that trains: without the integrations reglab never uses.

Kept apart from `_keras` (which imports Keras as it is loaded) so that a process can call it first.
"""

from __future__ import annotations

import sys

#: Modules Keras imports at start-up only to offer integrations a `reglab run` never uses: pandas
#: DataFrames as `fit` data and Keras's scikit-learn wrappers (scikit-learn brings SciPy's statistics).
#: Left out, a run starts 2.0 s sooner (Keras's import: 6.5 → 4.4 s here).
KERAS_OPTIONAL_IMPORTS = ("pandas", "sklearn")


def import_keras_for_a_run() -> None:
    """Import Keras without its optional pandas and scikit-learn integrations, unless this process has
    already imported them. reglab hands Keras numpy arrays only; its CSV reader and bundled tables import
    pandas and scikit-learn themselves, after this, and get the real modules."""
    if "keras" in sys.modules:
        return
    skipped = [name for name in KERAS_OPTIONAL_IMPORTS if name not in sys.modules]
    for name in skipped:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` now raises ImportError, which Keras catches
    try:
        from reglab import _keras  # noqa: F401
    finally:
        for name in skipped:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


__all__ = ["KERAS_OPTIONAL_IMPORTS", "import_keras_for_a_run"]
