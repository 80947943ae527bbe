"""Do the two engines agree statistically? 5 seeds × the 4 default arms on mnist-5k, normal shuffling.

    python benchmarks/agreement.py          # about 2 minutes on 2 cores

Per arm (λ), the mean over seeds of the final validation accuracy and validation data loss, with
its standard error, for each engine; the engines agree when their means differ by less than the
combined standard error. Both engines get each seed's initialization and shuffles from
`keras.utils.set_random_seed`, so they see the same batches: the differences left are float
reduction order, far below seed noise.
"""

from __future__ import annotations

import io
import math
import statistics
import tempfile
from pathlib import Path

from rich.console import Console

from reglab import SweepConfig, run_sweep

SEEDS = 5


def per_lambda(run, column: str) -> dict[float, list[float]]:
    final = {}
    for r in run.epochs:
        if r.epoch == run.config.epochs:
            final.setdefault(r.strength, []).append(getattr(r, column))
    return final


def mean_se(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def main() -> None:
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in ("keras", "fused"):
            config = SweepConfig(seeds=SEEDS, dataset="mnist-5k", engine=engine)
            runs[engine] = run_sweep(config, out=Path(tmp) / engine, console=Console(file=io.StringIO()), make_report=False)
    print(f"mnist-5k, {SEEDS} seeds × λ ∈ {{0, 1e-4, 1e-3, 1e-2}}, 10 epochs, batch 32; mean ± standard error over seeds\n")
    print(f"{'metric':22} {'λ':>7} {'keras':>18} {'fused':>18} {'|diff|':>9} {'SE':>8}  agree")
    all_agree = True
    for column in ("val_accuracy", "val_data_loss"):
        k, f = per_lambda(runs["keras"], column), per_lambda(runs["fused"], column)
        for lam in sorted(k):
            (mk, sk), (mf, sf) = mean_se(k[lam]), mean_se(f[lam])
            se = math.hypot(sk, sf)
            agree = abs(mk - mf) <= se
            all_agree &= agree
            print(f"{column:22} {lam:7g} {mk:10.4f} ± {sk:.4f} {mf:10.4f} ± {sf:.4f} {abs(mk - mf):9.2e} {se:8.4f}  {'yes' if agree else 'NO'}")
    print(f"\nall arms agree within their standard errors: {'yes' if all_agree else 'NO'}")


if __name__ == "__main__":
    main()
