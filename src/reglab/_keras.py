"""Import Keras on the JAX backend, once, with a clear error when another backend is already chosen.

Importing this module is the only way reglab touches Keras, so `reglab --help` and `reglab report`
never pay for (or depend on) a Keras import.
"""

from __future__ import annotations

import os
import sys

from reglab.errors import ReglabError

_backend = os.environ.get("KERAS_BACKEND")
if _backend not in (None, "", "jax"):
    raise ReglabError(f"reglab trains on Keras's JAX backend, but KERAS_BACKEND={_backend!r}; unset it or set it to jax")
if "keras" in sys.modules and os.environ.get("KERAS_BACKEND", "jax") != "jax":  # pragma: no cover
    raise ReglabError("Keras was imported with another backend before reglab; set KERAS_BACKEND=jax first")
os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

if keras.backend.backend() != "jax":  # pragma: no cover - keras imported earlier with another backend
    raise ReglabError(f"Keras is running on the {keras.backend.backend()!r} backend; reglab needs jax")

__all__ = ["keras"]
