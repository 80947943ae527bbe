"""Why `per-arm-steps` for convolutions: one arm of examples/cnn.py, the same compiled Keras step called
once per batch from Python vs scanned over K batches (ms per step, median of 3). See docs/engines.md.

    python benchmarks/conv_in_loop.py
    XLA_FLAGS="--xla_dump_to=/tmp/dump --xla_dump_hlo_as_text" K=4 python benchmarks/conv_in_loop.py   # both programs' HLO
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from reglab.engines import workers  # noqa: E402
from reglab.engines.keras_steps import KerasSteps  # noqa: E402
from reglab.engines.per_arm import PerArmStrategy  # noqa: E402
from reglab.engines.strategy import Coefficients, SeedStart  # noqa: E402
from reglab.model.build import build_model  # noqa: E402

CNN = f"{Path(__file__).resolve().parents[1] / 'examples' / 'cnn.py'}:build_model"


def main() -> None:
    workers.WORKERS = 1
    steps_per_call = int(os.environ.get("K", 256))
    model = build_model(CNN, (28, 28), 0.0)
    rng = np.random.default_rng(0)
    x = rng.random((50_000, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 50_000).astype(np.int32)
    steps = KerasSteps(model, (x[:1], y[:1]))
    start = SeedStart([np.asarray(v.value) for v in model.trainable_variables], [np.asarray(v.value) for v in model.non_trainable_variables])
    coef = Coefficients(*(jnp.full((1, 1), 1e-3, dtype=np.float32) for _ in range(3)))
    x_all, y_all = jnp.asarray(x), jnp.asarray(y)
    idx = rng.permutation(50_000)[: steps_per_call * 32].reshape(steps_per_call, 1, 32).astype(np.int32)
    active = np.ones((1, 1), bool)
    for stepwise in (True, False):
        strategy = PerArmStrategy(steps, [1e-3], 1, stepwise)
        state, _ = strategy.train_chunk(strategy.initial_state([start]), x_all, y_all, idx, None, coef, active, False)  # compiles
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            state, _ = strategy.train_chunk(state, x_all, y_all, idx, None, coef, active, False)
            times.append(time.perf_counter() - t0)
        print(f"{strategy.name:15} {1000 * statistics.median(times) / steps_per_call:.2f} ms per step", flush=True)


if __name__ == "__main__":
    main()
