"""Could a rule other than simultaneous intervals confirm the best of a fixed grid more often? A bound, not
reglab's analysis: every variance known exactly, the calibration benchmark's curve (`calibration.curve`:
one strength gains g standard errors of its difference from λ = 0, its two neighbours g/2, the rest 0; 9
strengths and λ = 0), each strength's mean independent given the truth (standard error 1/√2, so a
difference from λ = 0 has standard error 1).

Rules, each with a 5 % family error when nothing helps:

- max-t: the best strength's difference from λ = 0 against the exact 95 % quantile of the largest of the 9
  (correlation ½ through the shared λ = 0): what reglab's Šidák intervals approach when variances are known;
- conditional: inference on the winner given that it won (Lee, Sun, Sun & Taylor 2016, the polyhedral
  lemma): the difference is a normal truncated to what keeps the winner the winner;
- hybrid (Andrews, Kitagawa & McCloskey, "Inference on winners"): the conditional test, truncated also at
  the max-t bound of level β, at level (α − β)/(1 − β), or the max-t test at level β.

    python benchmarks/selective_inference.py

Printed: how often "Use" names a strength that truly gains, per rule and gain (and the false "Use" rate
at gain 0). The near-ties that the half-gain neighbours make cost the conditional rules what they save.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from calibration import curve, max_t_critical

ALPHA = 0.05
DRAWS = 200_000


def declared(gain_se: float, rule: str, beta: float, rng: np.random.Generator) -> tuple[float, float]:
    """(share of "Use" of any strength, share of "Use" of a strength that truly gains)."""
    mu = curve(gain_se)
    x = mu + rng.standard_normal((DRAWS, len(mu))) / np.sqrt(2)  # higher is better
    rows = np.arange(DRAWS)
    winner = x.argmax(axis=1)
    best = x[rows, winner]
    d = best - x[:, 0]  # the winner's difference from λ = 0
    if rule == "max-t":
        use = d > max_t_critical(ALPHA)
    else:
        # Given the rest, the winner stays the winner while d ≥ d − 2·(x_winner − x_k) for every other k, and d ≥ 0.
        lower = d[:, None] - 2 * (best[:, None] - x)
        lower[rows, winner] = -np.inf
        lower[:, 0] = 0.0
        low = lower.max(axis=1)
        upper = max_t_critical(beta) if rule == "hybrid" else np.inf
        level = (ALPHA - beta) / (1 - beta) if rule == "hybrid" else ALPHA
        p = (norm.sf(d) - norm.sf(upper)) / np.maximum(norm.sf(low) - norm.sf(upper), 1e-300)
        use = (d > upper) | (p < level)
    use &= winner != 0
    return float(use.mean()), float((use & (mu[winner] > 0)).mean())


def main() -> None:
    rng = np.random.default_rng(1)
    for rule, beta in (("max-t", 0.0), ("conditional", 0.0), ("hybrid", 0.005), ("hybrid", 0.01)):
        cells = []
        for gain in (0.0, 2.0, 3.0, 4.0):
            any_use, true_use = declared(gain, rule, beta, rng)
            cells.append(f"false Use {100 * any_use:.1f} %" if gain == 0 else f"{gain:g} SE: {100 * true_use:.1f} %")
        name = f"{rule} (β = {beta:g})" if rule == "hybrid" else rule
        print(f"{name:<20} " + "; ".join(cells))


if __name__ == "__main__":
    main()
