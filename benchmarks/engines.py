"""How fast is the fused engine against Keras `fit`? Ratios measured in one run, on one machine.

    python benchmarks/engines.py                 # the full table (about 17 minutes on 2 cores)
    python benchmarks/engines.py --only models   # cases 5 and 6: the CNN and the Dropout MLP (about 4 minutes)
    python benchmarks/engines.py --quick    # smaller sweeps, for a smoke test

Each case runs in a fresh subprocess (its own compilation, its own peak memory). Data: full
Fashion-MNIST from Debian's dataset-fashion-mnist when present (MNIST's shape: 50,000 train /
10,000 validation after the split), else generated data of that shape.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from reglab.engines.base import Listener

HERE = Path(__file__).resolve()


def load_data() -> tuple[object, str]:
    from reglab.data.datasets import DEBIAN_FASHION_DIR, load_dataset
    from reglab.data.splits import DataInfo, Splits

    if DEBIAN_FASHION_DIR.is_dir():
        return load_dataset("fashion_mnist"), "Fashion-MNIST (Debian dataset-fashion-mnist)"
    rng = np.random.default_rng(0)
    x = rng.random((60_000, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 60_000).astype(np.int32)
    info = DataInfo(name="generated", requested="generated", source="numpy", split="last 10,000 of 60,000",
                    n_train=50_000, n_val=10_000, n_test=10_000, image_shape=(28, 28), sha256="-")
    return Splits(x[:50_000], y[:50_000], x[50_000:], y[50_000:], x[:10_000], y[:10_000], info), "generated (MNIST shape)"


class Timer(Listener):
    """A Listener that keeps each epoch's wall time (the same for every arm of a fused epoch); the benchmark times
    training, so every other hook stays the base class's no-op (checkpoints are not written)."""

    def __init__(self) -> None:
        self.epochs: dict[int, list[float]] = {}

    def epoch_done(self, r) -> None:
        self.epochs.setdefault(r.arm, []).append(r.seconds)


#: The models benchmarked: the original study's, and the two examples the packing does not cover.
MODELS = {"original": "", "cnn": str(HERE.parents[1] / "examples" / "cnn.py") + ":build_model",
          "mlp_dropout": str(HERE.parents[1] / "examples" / "mlp_dropout.py") + ":build_model"}


def run_case(engine: str, n_lambdas: int, n_seeds: int, epochs: int, model: str = "original", n_rates: int = 1) -> dict:
    """One training in this process: wall time end to end, and per-epoch times. `n_rates` > 1: that many
    learning rates from 1e-4 to 1e-2 (a two-dimensional sweep), else Adam's default."""
    from reglab.config import SweepConfig
    from reglab.engines import get_engine

    splits, data_name = load_data()
    lambdas = (0.0, 1e-4, 1e-3, 1e-2) if n_lambdas == 4 else tuple(np.logspace(-6, -1, n_lambdas))
    rates = tuple(float(r) for r in np.logspace(-4, -2, n_rates)) if n_rates > 1 else (1e-3,)
    config = SweepConfig(lambdas=lambdas, seeds=n_seeds, epochs=epochs, dataset="bench", engine=engine, model=MODELS[model],
                         learning_rates=rates)
    timer = Timer()
    strategy = []
    timer.strategy_chosen = strategy.append  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    get_engine(engine)(config, splits, timer)
    total = time.perf_counter() - t0
    import jax

    return {
        "engine": engine, "arms": len(config.arms()), "epochs": epochs, "total_s": total, "data": data_name,
        "model": model, "strategy": strategy[0] if strategy else "fit",
        "epoch_s": timer.epochs, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "n_train": len(splits.x_train), "device": str(jax.devices()[0].device_kind), "platform": jax.default_backend(),
    }


def in_subprocess(engine: str, lambdas: str, seeds: str, epochs: str, model: str = "original", rates: str = "1") -> dict:
    out = subprocess.run([sys.executable, str(HERE), "--case", engine, lambdas, seeds, epochs, model, rates],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def steady_arm_epoch(result: dict) -> float:
    """Seconds per arm-epoch, compilation excluded."""
    return steady_epoch(result) / result["arms"]


def steady_epoch(result: dict) -> float:
    """Seconds for one epoch of all the case's arms, compilation excluded (epochs after the first)."""
    if result["engine"] == "fused":
        return statistics.median(result["epoch_s"]["0"][1:])
    return sum(statistics.median(times[1:]) for times in result["epoch_s"].values())


def matmul_peak_gflops() -> float:
    import jax
    import jax.numpy as jnp

    a = jnp.asarray(np.random.default_rng(0).random((2048, 2048), dtype=np.float32))
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        times.append(time.perf_counter() - t0)
    return 2 * 2048**3 / min(times) / 1e9


def flops_per_arm_step(batch: int = 32) -> float:
    """Matrix-product FLOPs of one training step of the seed model: forward, and backward for the
    weights (the first layer's input gradient is never needed) and the hidden activations."""
    fwd = 2 * batch * (784 * 128 + 128 * 10)
    bwd = 2 * batch * (784 * 128 + 128 * 10) + 2 * batch * 128 * 10
    return fwd + bwd


def model_rows(quick: bool) -> list[tuple[str, float, float, float, str]]:
    """5, 6: the models the packing does not cover, seconds per arm-epoch (compilation excluded; keras: the
    median of each arm's epochs 2–3, fused: of its epochs 2–3, one for every arm), each engine in turn."""
    lam, epochs = ("2", "2") if quick else ("4", "3")
    rows = []
    for label, model, target in (("5. CNN (examples/cnn.py)", "cnn", "≥ 1.3×"),
                                 ("6. Dropout MLP (examples/mlp_dropout.py)", "mlp_dropout", "≥ 2×")):
        r = {eng: in_subprocess(eng, lam, "1", epochs, model) for eng in ("keras", "fused")}
        k, f = steady_arm_epoch(r["keras"]), steady_arm_epoch(r["fused"])
        rows.append((f"{label}, {r['fused']['arms']} arms: s per arm-epoch ({r['fused']['strategy']})", k, f, k / f, target))
    return rows


def print_rows(rows: list[tuple[str, float, float, float, str]]) -> None:
    print(f"{'case':72} {'keras':>9} {'fused':>9} {'ratio':>7}  target")
    for name, k, f, r, target in rows:
        print(f"{name:72} {k:9.2f} {f:9.2f} {r:6.2f}×  {target}")


def print_two_d(quick: bool, sweep_per: float, sweep_arms: int) -> None:
    """3b: a two-dimensional sweep (learning rate × strength) against a strength sweep, per arm-epoch."""
    lam, rates, seeds = ("4", "2", "1") if quick else ("12", "4", "3")
    two_d = in_subprocess("fused", lam, seeds, "5", "original", rates)
    per = steady_epoch(two_d) / two_d["arms"]
    print(f"\n3b. two-dimensional sweep, {lam} λ × {rates} learning rates × {seeds} seeds = {two_d['arms']} arms: "
          f"{per:.4f} s per arm-epoch vs the {sweep_arms}-arm strength sweep's {sweep_per:.4f} = {per / sweep_per:.2f}× "
          f"(target ≤ 1; peak memory {two_d['peak_rss_mb']:.0f} MB RSS)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer arms and epochs (a smoke test, not the targets)")
    parser.add_argument("--case", nargs=6, metavar=("ENGINE", "LAMBDAS", "SEEDS", "EPOCHS", "MODEL", "RATES"), help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=("models", "rates"), help="models: only the cases of the models the packing "
                        "does not cover (5, 6); rates: only the two-dimensional sweep against the 30-arm sweep (3b)")
    args = parser.parse_args()
    if args.case:
        engine, n_lam, n_seed, epochs, model, rates = args.case
        print(json.dumps(run_case(engine, int(n_lam), int(n_seed), int(epochs), model, int(rates))))
        return

    quick = args.quick
    rows = []
    print("reglab engine benchmark (each case in a fresh process; times in seconds)\n", flush=True)
    if args.only == "models":
        rows = model_rows(quick)
        print(f"data: {load_data()[1]}; cores: {os.cpu_count()}\n")
        print_rows(rows)
        return
    if args.only == "rates":
        lam, seeds = ("10", "3") if not quick else ("4", "2")
        sweep = in_subprocess("fused", lam, seeds, "5")
        print(f"data: {load_data()[1]}; cores: {os.cpu_count()}")
        print_two_d(quick, steady_epoch(sweep) / sweep["arms"], sweep["arms"])
        return

    # 1. the original experiment, end to end including compilation
    e = "3" if quick else "10"
    orig = {eng: in_subprocess(eng, "4", "1", e) for eng in ("keras", "fused")}
    data = orig["fused"]["data"]
    ratio1 = orig["keras"]["total_s"] / orig["fused"]["total_s"]
    rows.append(("1. original experiment: 4 arms × " + e + " epochs, end to end", orig["keras"]["total_s"], orig["fused"]["total_s"], ratio1, "≥ 3×"))

    # 2. a 30-arm sweep: seconds per epoch (all arms), compilation excluded. This shared machine's speed
    # drifts by 10-20 % over minutes, so the two engines are timed in alternating rounds and the ratio is
    # the median of each round's keras/fused ratio (each round's cases minutes apart, not tens of minutes).
    lam, seeds = ("10", "3") if not quick else ("4", "2")
    # keras: each arm's own fits, medians of its epochs 2–3; fused: median of epochs 2–5 (cheap, and a
    # shared machine's noise then moves it less)
    rounds = []
    for _ in range(1 if quick else 3):
        sweep = {eng: in_subprocess(eng, lam, seeds, "3" if eng == "keras" else "5") for eng in ("keras", "fused")}
        rounds.append((steady_epoch(sweep["keras"]), steady_epoch(sweep["fused"]), sweep["fused"]))
    rounds.sort(key=lambda r: r[0] / r[1])
    k2, f2, fused_sweep = rounds[len(rounds) // 2]  # the median round
    rows.append((f"2. sweep {lam} λ × {seeds} seeds = {fused_sweep['arms']} arms: s per epoch", k2, f2, k2 / f2, "≥ 5×"))

    rows += model_rows(quick)

    # 3. how the fused cost grows with the number of arms
    growth = []
    for n in ((1, 3, 10) if quick else (1, 3, 10, 30, 100)):
        r = in_subprocess("fused", str(n), "1", "3")
        growth.append((n, steady_epoch(r) / n, r["peak_rss_mb"]))

    # 4. effective GFLOP/s of the fused loop at 30 arms, next to the machine's matmul peak
    steps = -(-fused_sweep["n_train"] // 32)
    gflops = flops_per_arm_step() * steps * fused_sweep["arms"] / f2 / 1e9
    peak = matmul_peak_gflops()

    print(f"data: {data}; device: {orig['fused']['device']} ({orig['fused']['platform']}); cores: {os.cpu_count()}\n")
    print_rows(rows)
    if len(rounds) > 1:
        print("   rounds (keras / fused s per epoch = ratio; the median round above): "
              + "; ".join(f"{k:.2f} / {f:.2f} = {k / f:.1f}×" for k, f, _ in rounds))
    print("\n3. fused engine, cost per arm-epoch as the sweep grows (1 seed, λ on a log grid)")
    print(f"{'arms':>6} {'s per arm-epoch':>16} {'peak RSS MB':>12}")
    for n, per, rss in growth:
        print(f"{n:6d} {per:16.4f} {rss:12.0f}")
    if len(growth) >= 2:
        print(f"   at {growth[-1][0]} arms vs {growth[-2][0]}: {growth[-1][1] / growth[-2][1]:.2f}× the cost per arm-epoch (target ≤ 1)")
    print_two_d(quick, f2 / fused_sweep["arms"], fused_sweep["arms"])
    print("\n4. effective speed of the fused training loop "
          f"({fused_sweep['arms']} arms, matrix-product FLOPs only)")
    print(f"   {gflops:.1f} GFLOP/s effective vs {peak:.1f} GFLOP/s float32 matmul peak (2048², same process) "
          f"= {100 * gflops / peak:.0f} % of peak; peak memory of that run: {fused_sweep['peak_rss_mb']:.0f} MB RSS")


if __name__ == "__main__":
    main()
