"""Why `per-arm-steps` for convolutions: one arm of examples/cnn.py, the same compiled Keras step called
once per batch from Python vs scanned over 256 batches (ms per step, median of 3). See docs/engines.md.

    python benchmarks/conv_in_loop.py
    XLA_FLAGS=--xla_dump_to=/tmp/dump K=4 python benchmarks/conv_in_loop.py   # the optimized HLO of both
"""
import os, time, statistics
os.environ["KERAS_BACKEND"]="jax"
import numpy as np, jax
from reglab.models import build_model
from reglab.engines.keras_steps import KerasSteps
from reglab.engines.per_arm import PerArmStrategy
from reglab.engines.strategy import SeedStart, Coefficients
from reglab.engines import workers
workers.WORKERS = 1
m = build_model(str(__import__("pathlib").Path(__file__).resolve().parents[1] / "examples" / "cnn.py") + ":build_model", (28,28), 0.0)
rng = np.random.default_rng(0)
x = rng.random((50000,28,28), dtype=np.float32); y = rng.integers(0,10,50000).astype(np.int32)
steps = KerasSteps(m, (x[:1], y[:1]))
start = SeedStart([np.asarray(v.value) for v in m.trainable_variables],[np.asarray(v.value) for v in m.non_trainable_variables])
coef = Coefficients(*(jax.numpy.full((1,1), 1e-3, dtype=np.float32) for _ in range(3)))
xa, ya = jax.numpy.asarray(x), jax.numpy.asarray(y)
K = int(os.environ.get("K", 256))
idx = rng.permutation(50000)[:K*32].reshape(K, 1, 32).astype(np.int32)
for stepwise in (True, False):
    s = PerArmStrategy(steps, 1, 1, stepwise)
    st = s.initial_state([start])
    st, _ = s.train_chunk(st, xa, ya, idx, None, coef, np.ones((1,1), bool), False)
    ts = []
    for _ in range(3):
        t0 = time.perf_counter(); st, _ = s.train_chunk(st, xa, ya, idx, None, coef, np.ones((1,1), bool), False); ts.append(time.perf_counter()-t0)
    print(os.environ.get("XLA_FLAGS",""), "steps" if stepwise else "chunks", f"{1000*statistics.median(ts)/K:.2f} ms/step", flush=True)
