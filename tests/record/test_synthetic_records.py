"""benchmarks/synthetic.py: a run record written from synthetic numbers reads back and analyses like a real one."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import reglab
from reglab.record.arrays import read_validation

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from synthetic import write_synthetic_run  # noqa: E402

LAMBDAS = (0.0, 1e-4, 1e-3, 1e-2)


def _values(K: int, S: int, n: int, epochs: int | None = None, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (K, S, n) if epochs is None else (K, S, epochs, n)
    return rng.gamma(2.0, 0.15, size=shape).astype(np.float32), rng.random((K, S, n)) < 0.9


def test_loads_and_analyses(tmp_path):
    loss, correct = _values(len(LAMBDAS), 3, 400)
    out = write_synthetic_run(tmp_path / "run", lambdas=LAMBDAS, seeds=3, epochs=4, val_loss=loss, val_correct=correct)
    run = reglab.load_run(out)
    assert run.config.lambdas == LAMBDAS and run.config.seeds == 3 and run.config.epochs == 4
    assert run.data.n_val == 400 and len(run.epochs) == len(LAMBDAS) * 3 * 4
    assert [(a["seed"], a["lambda"]) for a in run.arms] == [(s, lam) for s in range(3) for lam in LAMBDAS]
    assert all(a["status"] == "completed" for a in run.arms) and json.loads((out / "run.json").read_text())["status"] == "completed"
    v = run.validation()
    assert v is not None and v.has_values.all() and v.loss_by_epoch is None
    np.testing.assert_array_equal(v.final_loss[1 * len(LAMBDAS) + 2], loss[2, 1])  # arm s·K + k
    assert len(run.kernels()) == len(LAMBDAS) * 3
    text = reglab.analyze(run).summary()
    assert isinstance(text, str) and text.strip()


def test_means_are_the_values_given(tmp_path):
    K, S, E, n = len(LAMBDAS), 3, 5, 300
    by_epoch, correct = _values(K, S, n, epochs=E, seed=1)
    run = reglab.load_run(write_synthetic_run(tmp_path / "run", lambdas=LAMBDAS, seeds=S, epochs=E,
                                              loss_by_epoch=by_epoch, val_correct=correct))
    v = run.validation()
    assert v.loss_by_epoch is not None
    np.testing.assert_array_equal(v.loss_by_epoch[0], by_epoch[0, 0])
    rows = {(r.arm, r.epoch): r for r in run.epochs}
    for s in range(S):
        for k in range(K):
            for e in range(1, E + 1):
                r = rows[(s * K + k, e)]
                assert r.val_data_loss == pytest.approx(float(by_epoch[k, s, e - 1].mean(dtype=np.float64)), rel=1e-12)
                assert r.val_loss == pytest.approx(r.val_data_loss + r.penalty, rel=1e-12)
            assert rows[(s * K + k, E)].val_accuracy == pytest.approx(correct[k, s].mean())
    main = reglab.analyze(run).main
    stats = {st.strength: st for st in main.stats}
    for k, lam in enumerate(LAMBDAS):
        want = by_epoch[k, :, -1].mean(axis=1, dtype=np.float64).mean()
        assert stats[lam]["val_data_loss"].mean == pytest.approx(want, rel=1e-6)  # float32 precision
        assert stats[lam]["val_accuracy"].mean == pytest.approx(correct[k].mean(), rel=1e-6)
    norms = [stats[lam]["kernel_norm"].mean for lam in LAMBDAS]
    assert norms == sorted(norms, reverse=True) and norms[0] > norms[-1]


def test_diverged_arms(tmp_path):
    K, S, E, n = len(LAMBDAS), 3, 6, 200
    by_epoch, correct = _values(K, S, n, epochs=E, seed=2)
    out = write_synthetic_run(tmp_path / "run", lambdas=LAMBDAS, seeds=S, epochs=E, loss_by_epoch=by_epoch,
                              val_correct=correct, diverged={(3, 1): 2, (2, 0): E})
    run = reglab.load_run(out)
    gone = {1 * K + 3: 2, 0 * K + 2: E}
    for arm, epoch in gone.items():
        assert run.arms[arm]["status"] == "diverged" and run.arms[arm]["epochs_done"] == epoch
        rows = [r for r in run.epochs if r.arm == arm]
        assert [r.epoch for r in rows] == list(range(1, epoch + 1)) and np.isnan(rows[-1].loss)
        assert all(np.isfinite(r.loss) for r in rows[:-1])
    v = read_validation(out)
    assert list(np.flatnonzero(~v.has_values)) == sorted(gone)
    assert v.at(1 * K + 3, 1) is not None and v.at(1 * K + 3, 2) is None and v.final(1 * K + 3) is None
    main = reglab.analyze(run).main
    assert {x[0] for x in main.excluded} == set(gone)
    assert not set(gone) & set(main.comparable)
    assert {st.strength: st.seeds for st in main.stats}[LAMBDAS[3]] == (0, 2)
    # a plain set of arms: each diverges at the middle epoch
    loss, correct = _values(K, S, n, seed=3)
    run = reglab.load_run(write_synthetic_run(tmp_path / "set", lambdas=LAMBDAS, seeds=S, epochs=E, val_loss=loss,
                                              val_correct=correct, diverged={(0, 2)}))
    assert run.arms[2 * K]["status"] == "diverged" and run.arms[2 * K]["epochs_done"] == 3
    assert 2 * K in {x[0] for x in reglab.analyze(run).main.excluded}


def test_refuses_bad_input(tmp_path):
    loss, correct = _values(len(LAMBDAS), 2, 50)
    with pytest.raises(ValueError, match="val_loss"):
        write_synthetic_run(tmp_path / "a", lambdas=LAMBDAS, seeds=3, epochs=2, val_loss=loss, val_correct=correct)
    with pytest.raises(ValueError, match="ascending"):
        write_synthetic_run(tmp_path / "b", lambdas=LAMBDAS[::-1], seeds=2, epochs=2, val_loss=loss, val_correct=correct)
    with pytest.raises(ValueError, match="finite"):
        write_synthetic_run(tmp_path / "c", lambdas=LAMBDAS, seeds=2, epochs=2, val_loss=-loss, val_correct=correct)
    write_synthetic_run(tmp_path / "d", lambdas=LAMBDAS, seeds=2, epochs=2, val_loss=loss, val_correct=correct)
    with pytest.raises(reglab.RunDirError):  # never over an existing record
        write_synthetic_run(tmp_path / "d", lambdas=LAMBDAS, seeds=2, epochs=2, val_loss=loss, val_correct=correct)


def test_large_record_is_fast(tmp_path):
    lambdas = (0.0,) + tuple(float(x) for x in np.logspace(-5, -1, 9).round(12))
    K, S, E, n = len(lambdas), 5, 50, 2000
    by_epoch, correct = _values(K, S, n, epochs=E, seed=4)
    t0 = time.perf_counter()
    run = reglab.load_run(write_synthetic_run(tmp_path / "run", lambdas=lambdas, seeds=S, epochs=E,
                                              loss_by_epoch=by_epoch, val_correct=correct))
    text = reglab.analyze(run).summary()
    seconds = time.perf_counter() - t0
    assert text and len(run.epochs) == K * S * E and run.validation().loss_by_epoch.shape == (K * S, E, n)
    assert seconds < 10, f"writing and analysing took {seconds:.1f} s"


def test_a_strength_that_diverged_in_one_seed_is_named_and_never_recommended(tmp_path):
    """It had the best values in the seeds where it trained, so a silent drop would have recommended it on
    the seeds left (38 % of runs did, where its fair share was 10 %)."""
    rng = np.random.default_rng(8)
    lambdas, seeds, n = (0.0, 1e-4, 1e-3, 1e-2), 3, 400
    loss = rng.gamma(2.0, 0.15, size=(1, 1, n)) * np.exp(rng.normal(0, 0.05, (4, seeds, n)))
    loss[2] *= 0.5  # λ = 1e-3: by far the best where it trained
    run = reglab.load_run(write_synthetic_run(tmp_path / "run", lambdas=lambdas, seeds=seeds, epochs=3,
                                              val_loss=loss, val_correct=loss < 0.4, diverged={(2, 1)}))
    analysis = reglab.analyze(run)
    rec = analysis.main.recommended
    assert rec.strength != 1e-3 and [s.strength for s in rec.diverged] == [1e-3]
    assert rec.seeds == (0, 1, 2)  # every strength still compared completed all three seeds
    text = analysis.summary()
    assert "diverged (in some seed, so never recommended): L2 λ = 0.001" in text


def test_a_moderate_strength_is_not_called_best_without_a_strength_0_arm(tmp_path):
    """The claim's rule compares with no regularization; a grid without it cannot support it."""
    rng = np.random.default_rng(9)
    lambdas, seeds, n = (1e-5, 1e-4, 1e-3, 1e-2), 3, 400
    loss = rng.gamma(2.0, 0.15, size=(1, 1, n)) * np.exp(rng.normal(0, 0.05, (4, seeds, n)))
    loss *= np.array([1.3, 1.0, 0.6, 1.2])[:, None, None]  # a clear interior optimum at 1e-3
    run = reglab.load_run(write_synthetic_run(tmp_path / "run", lambdas=lambdas, seeds=seeds, epochs=3,
                                              val_loss=loss, val_correct=loss < 0.4))
    analysis = reglab.analyze(run)
    moderate = next(c for c in analysis.main.claims if c.key == "moderate")
    assert analysis.main.recommended.strength == 1e-3
    assert moderate.verdict == "inconclusive" and "no strength-0 arm" in moderate.evidence
    assert analysis.summary().startswith("Best here: L2 λ = 0.001") and "no λ = 0 arm" in analysis.summary()
