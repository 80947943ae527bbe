"""How much memory a fused sweep takes at its peak, estimated before it starts, and the refusal when that
would not fit in the memory available.

Peak resident memory (docs/engine-memory.md, measured on wine and mnist-5k from 100 to 1,000 arms):

    peak ≈ BASE_BYTES + arms × (BYTES_PER_PARAMETER × parameters + BYTES_PER_ARM) + data

- BASE_BYTES: Python, JAX, Keras, the compiled programs (one group's each: their size does not grow with
  the arms), the report's figures.
- BYTES_PER_PARAMETER: each arm's weights and Adam's two moments (12 bytes; checkpoints read them without a
  copy on a CPU), and the final weights fetched when training ends (4).
- BYTES_PER_ARM: what every arm costs whatever its size: its state's ~20 JAX arrays (~3 KB each), its records
  and Python objects.
- data: the data set held DATA_COPIES times (the arrays, their device copy, the padded evaluation sets), each
  seed's shuffled row indices (int32, and a chunk's copy of them), and the per-example validation values kept.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np

from reglab.config import SweepConfig
from reglab.data.splits import Splits
from reglab.errors import ConfigError
from reglab.model.build import build_model
from reglab.record.checks import keeps_epochs, validation_layout

MiB = 1 << 20

#: What a run costs before its arms: measured 540–610 MB (wine and mnist-5k, whole `reglab run` processes).
BASE_BYTES = 640 * MiB

#: Per parameter of one arm: weights, Adam's two moments, the final weights (4 bytes each).
BYTES_PER_PARAMETER = 16

#: Per arm, whatever its size: 84–130 KiB measured (wine, 1,000 and 10,000 arms), on top of 16 bytes a parameter.
BYTES_PER_ARM = 128 * 1024

#: The data set's arrays are held about this many times over (numpy, device, padded evaluation chunks).
DATA_COPIES = 3


def model_parameters(config: SweepConfig, splits: Splits) -> int:
    """Trainable parameters of one arm's model (built once, as the engine builds it)."""

    model = build_model(config.model, splits.x_train.shape[1:], 0.0, optimizer=config.optimizer, n_classes=splits.info.n_classes)
    return int(sum(math.prod(v.shape) for v in model.trainable_variables))


def data_bytes(config: SweepConfig, splits: Splits) -> int:
    """The `data` term: the data set's copies, each seed's row indices, the validation values kept."""
    arrays = sum(a.nbytes for a in (splits.x_train, splits.y_train, splits.x_val, splits.y_val, splits.x_test, splits.y_test))
    n_arms = config.n_settings * config.seeds
    n_val = len(splits.x_val)
    values = sum(math.prod(shape) * np.dtype(dtype).itemsize
                 for name, (dtype, shape, _) in validation_layout(n_arms, config.epochs, n_val).items()
                 if name != "loss_by_epoch" or keeps_epochs(n_arms, config.epochs, n_val))
    return DATA_COPIES * arrays + 8 * config.seeds * len(splits.x_train) + values


def estimate(n_arms: int, parameters: int, data: int) -> int:
    """Peak resident bytes of a fused sweep of `n_arms` arms of `parameters` each, with `data` bytes of data."""
    return BASE_BYTES + n_arms * (BYTES_PER_PARAMETER * parameters + BYTES_PER_ARM) + data


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (what can be allocated without swapping), or None where there is none."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def resident_bytes() -> int:
    """This process's resident memory now (part of the estimate is already in use, so not in MemAvailable)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def check_memory(config: SweepConfig, splits: Splits, parameters: int | None = None, available: Callable[[], int | None] = available_bytes) -> int:
    """Refuse a fused sweep whose estimated peak would not fit in the memory available, before anything is
    written: the kernel would kill it part way (24 GB asked on a 24 GB machine), with nothing resumable.
    Returns the estimate. `available`: MemAvailable's reader (None where unknown: nothing is refused)."""
    n_arms = config.n_settings * config.seeds  # counted, not listed
    params = parameters if parameters is not None else model_parameters(config, splits)
    need = estimate(n_arms, params, data_bytes(config, splits))
    free = available()
    held = min(resident_bytes(), BASE_BYTES)  # what the base already holds; more (a notebook's own data) is not ours
    if free is not None and need - held > free:
        raise ConfigError(f"this sweep needs about {_gb(need)} of memory ({n_arms:,} arms × {params:,} parameters, "
                          f"docs/engine-memory.md) and {_gb(free)} is available (MemAvailable); sweep fewer arms "
                          f"(--seeds, --lambdas) or a smaller model")
    return need


__all__: list[str] = ["BASE_BYTES", "BYTES_PER_ARM", "BYTES_PER_PARAMETER", "DATA_COPIES", "check_memory", "estimate"]
