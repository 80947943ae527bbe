"""How much could a hand-written optimizer win on the packed path? One packed arm of the original study's
network, a 521-step chunk, µs per step: the step as it is (Keras's Adam through `stateless_apply`) against
the same step with a bare `W ← W − lr·g` update, which reads and writes less than any Adam can (no
moments). The bare step is a floor for every Adam update, fused or not, so `adam / bare` bounds what
rewriting the optimizer could gain. The two are timed alternately in one process; medians of 15 rounds.

    python benchmarks/optimizer_bound.py
"""

from __future__ import annotations

import statistics
import time

import jax.numpy as jnp
import numpy as np

import reglab._keras  # noqa: F401  (sets the JAX backend before Keras loads)
from reglab.engines.packed import PackedStrategy
from reglab.engines.strategy import Coefficients, SeedStart
from reglab.model.build import build_seed_model

STEPS = 521  # the fused engine's chunk on a 50,000-image epoch at batch 32 (three chunks per epoch)
ROUNDS = 15


class BareUpdate:
    """Stands in for the optimizer: `W − lr·g`, the moments untouched."""

    def __init__(self, learning_rate: float) -> None:
        self.learning_rate = learning_rate

    def stateless_apply(self, optimizer_vars, grads, trainable):
        return [w - self.learning_rate * g for w, g in zip(trainable, grads)], optimizer_vars


def main() -> None:
    """The engine's own packed strategy (one arm, one group) trains each chunk; the bare variant is the same
    strategy with its group's optimizer swapped before the first call compiles it."""
    model = build_seed_model((28, 28), 1e-3)
    start = SeedStart([np.asarray(v.value) for v in model.trainable_variables],
                      [np.asarray(v.value) for v in model.non_trainable_variables])
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((50_000, 28, 28), dtype=np.float32))
    y = jnp.asarray(rng.integers(0, 10, 50_000).astype(np.int32))
    idx = rng.permutation(50_000)[: STEPS * 32].reshape(STEPS, 1, 32).astype(np.int32)  # [steps, seeds, batch]
    n_valid = np.full(STEPS, 32, dtype=np.int32)
    coef = Coefficients(*(jnp.full((1, 1), v, jnp.float32) for v in (0.0, 1e-3, 0.0)))
    active = np.ones((1, 1), bool)

    strategies, states = {}, {}
    for name in ("adam", "bare"):
        strategy = PackedStrategy(model, [1e-3], 1)
        if name == "bare":
            strategy.program(0).optimizer = BareUpdate(1e-3)
        strategies[name], states[name] = strategy, strategy.initial_state([start])

    def chunk(name: str) -> None:
        states[name] = strategies[name].train_chunk(states[name], x, y, idx, n_valid, coef, active, False)[0]

    for name in strategies:
        chunk(name)  # compile
    times: dict[str, list[float]] = {name: [] for name in strategies}
    for _ in range(ROUNDS):
        for name in strategies:
            t0 = time.perf_counter()
            chunk(name)
            times[name].append((time.perf_counter() - t0) / STEPS * 1e6)
    for name, t in times.items():
        print(f"{name:5} µs per step: median {statistics.median(t):6.1f}, min {min(t):6.1f}")
    ratio = statistics.median(a / b for a, b in zip(times["adam"], times["bare"]))
    print(f"adam / bare, median of the rounds' ratios: {ratio:.2f}× (the most any rewrite of the optimizer could win)")


if __name__ == "__main__":
    main()
