"""Each claim about L2 gets the verdict its stated rule gives, on hand-made records with known answers."""

from __future__ import annotations

from helpers import hand_made_run, row
from reglab.analysis.claims import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED
from reglab.analysis.diagnose import Criteria
from reglab.analysis.views import check_claims
from reglab.config import SweepConfig

# the textbook picture, per λ: validation data loss by epoch, final training data loss, training accuracy, ‖W‖
# (λ ≤ 1e-4 rise steadily: overfitting must show as a trend over the late window, here all 4 epochs; a dip and
# rise back, measured from a minimum chosen on the same data, no longer counts)
TEXTBOOK = {
    0.0: dict(val=[0.28, 0.30, 0.32, 0.34], train=0.10, acc=0.970, norm=20.0),
    1e-4: dict(val=[0.26, 0.28, 0.30, 0.32], train=0.12, acc=0.965, norm=15.0),
    1e-3: dict(val=[0.30, 0.26, 0.25, 0.25], train=0.20, acc=0.960, norm=10.0),
    1e-2: dict(val=[0.40, 0.38, 0.37, 0.37], train=0.33, acc=0.900, norm=4.0),
}


def scenario(seeds: int = 3, tweak=None):
    config = SweepConfig(lambdas=tuple(TEXTBOOK), seeds=seeds, epochs=4, dataset="fake")
    rows = []
    for a in config.arms():
        c = {k: (list(v) if isinstance(v, list) else v) for k, v in TEXTBOOK[a.strength].items()}
        if tweak:
            tweak(a.strength, a.seed, c)
        jitter = 0.004 * a.seed
        # each arm's own small deviation: paired differences need some spread (a zero-variance one has no interval)
        own = 0.002 * ((a.index * a.index * 37) % 11 - 5) / 5
        for e, val in enumerate(c["val"], start=1):
            rows.append(row(a.index, a.strength, e, seed=a.seed, val_data_loss=val + jitter + own, data_loss=c["train"] + jitter,
                            accuracy=c["acc"] - jitter / 10, val_accuracy=c["acc"] - 0.02, kernel_norm=c["norm"] + 0.3 * a.seed + 50 * own))
    return check_claims(hand_made_run(rows, config), Criteria())


def verdicts(claims):
    return {c.key: c.verdict for c in claims}


def test_the_textbook_picture_supports_every_claim():
    claims = scenario()
    assert verdicts(claims) == {"weights": SUPPORTED, "small": SUPPORTED, "moderate": SUPPORTED, "large": SUPPORTED}
    moderate = next(c for c in claims if c.key == "moderate")
    assert "best λ = 0.001; − λ = 0.0001: -0.0700" in moderate.evidence
    assert all(c.rule for c in claims)


def test_one_seed_decides_what_one_seed_can():
    """‖W‖ has no sampling noise: a 5× fall decides; diagnoses use their own noise (here the fallback thresholds);
    differences between strengths need an interval, which one seed without per-example values cannot give."""
    claims = scenario(seeds=1)
    assert verdicts(claims) == {"weights": SUPPORTED, "small": SUPPORTED, "moderate": INCONCLUSIVE, "large": SUPPORTED}
    weights = next(c for c in claims if c.key == "weights")
    assert "(steps ×0.75, ×0.67, ×0.40)" in weights.evidence


def test_weights_growing_with_lambda_is_not_supported():
    def grow(lam, seed, c):
        if lam == 1e-4:
            c["norm"] = 25.0
    assert verdicts(scenario(tweak=grow))["weights"] == NOT_SUPPORTED


def test_weights_within_noise_are_inconclusive():
    def noisy(lam, seed, c):
        if lam == 1e-4:
            c["norm"] = 20.0 + (1.0 if seed == 1 else -0.5)  # against λ = 0's 20 + 0.3·seed: −0.5, +1.3, −0.5
    assert verdicts(scenario(tweak=noisy))["weights"] == INCONCLUSIVE


def test_seeds_that_disagree_make_the_small_lambda_claim_inconclusive():
    def one_seed_fits(lam, seed, c):
        if lam == 1e-4 and seed == 2:
            c["val"], c["train"] = [0.30, 0.27, 0.26, 0.26], 0.22
    assert verdicts(scenario(tweak=one_seed_fits))["small"] == INCONCLUSIVE

    def all_fit(lam, seed, c):
        if lam == 1e-4:
            c["val"], c["train"] = [0.26, 0.26, 0.26, 0.26], 0.22
    assert verdicts(scenario(tweak=all_fit))["small"] == NOT_SUPPORTED  # shown settled in every seed

    def all_unsettled(lam, seed, c):
        if lam == 1e-4:
            c["val"], c["train"] = [0.30, 0.27, 0.26, 0.26], 0.22
    # was not supported: a fall that levels off is no trend beyond noise over 4 epochs, nor shown settled:
    # overfitting could not show yet
    small = next(c for c in scenario(tweak=all_unsettled) if c.key == "small")
    assert small.verdict == INCONCLUSIVE and "3 of 3 seeds can't tell" in small.evidence

    def still_falling(lam, seed, c):
        if lam == 1e-4:
            c["val"] = [0.30, 0.29, 0.28, 0.27]
    small = next(c for c in scenario(tweak=still_falling) if c.key == "small")
    assert small.verdict == INCONCLUSIVE and "3 of 3 seeds still improving" in small.evidence


def test_no_regularization_best_is_not_supported():
    def zero_best(lam, seed, c):
        if lam == 0.0:
            c["val"] = [0.30, 0.24, 0.22, 0.21]
    claims = scenario(tweak=zero_best)
    moderate = next(c for c in claims if c.key == "moderate")
    assert moderate.verdict == NOT_SUPPORTED and "no regularization" in moderate.evidence


def test_a_best_lambda_within_noise_of_a_neighbour_is_inconclusive():
    def close(lam, seed, c):
        if lam == 1e-4:
            c["val"] = [0.30, 0.27, 0.26, 0.25 + (0.01 if seed == 0 else -0.004)]
    moderate = next(c for c in scenario(tweak=close) if c.key == "moderate")
    assert moderate.verdict == INCONCLUSIVE and "not shown better than λ = 0.0001" in moderate.evidence


def test_a_large_lambda_that_still_fits_is_not_underfitting():
    def fits(lam, seed, c):
        if lam == 1e-2:
            c["acc"] = 0.958
    assert verdicts(scenario(tweak=fits))["large"] == NOT_SUPPORTED
