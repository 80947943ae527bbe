"""Crash safety inside one process, for each engine: a run resumed from any of its checkpoints records exactly
what an uninterrupted one does, with the same final weights, and finished (or diverged) arms are never trained
again."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import Collect, StopAfter, small_splits
from helpers import record_values as values
from reglab.config import SweepConfig
from reglab.engines import get_engine

ENGINES = ("fused", "keras")


# fused: one checkpoint per epoch (all arms); keras: one per epoch of the arm in progress, one as an arm ends
# (5 = arm 0 finished, arm 1 one epoch in)
@pytest.mark.parametrize("engine, stop_after", [("fused", 1), ("fused", 2), ("keras", 2),
                                               pytest.param("keras", 5, marks=pytest.mark.slow)])
@pytest.mark.slow
def test_resuming_from_any_checkpoint_gives_the_uninterrupted_record(engine, stop_after):
    # two learning rates: each arm's rate is in its checkpointed optimizer state
    config = SweepConfig(lambdas=(0.0, 1e-2), seeds=1, seed=3, epochs=3, dataset="mnist-5k", engine=engine,
                         learning_rates=(1e-3, 3e-3))
    splits = small_splits()
    train = get_engine(engine)
    whole = Collect()
    weights = train(config, splits, whole)

    first = StopAfter(stop_after)
    with pytest.raises(KeyboardInterrupt):
        train(config, splits, first)
    arrays, meta = first.last_checkpoint
    rest = Collect()
    resumed_weights = train(config, splits, rest, resume=(arrays, meta))

    done = {int(a): e for a, e in meta["epochs_done"].items()}
    kept = [r for r in first.records if r.epoch <= done.get(r.arm, 0)]
    assert sorted(map(values, kept + rest.records)) == sorted(map(values, whole.records))  # bit for bit
    assert {r.arm for r in rest.records}.isdisjoint(
        {int(a) for a in meta.get("finished", {})})  # finished arms are not trained again
    for arm, ws in weights.items():
        for a, b in zip(ws.trainable + ws.non_trainable, resumed_weights[arm].trainable + resumed_weights[arm].non_trainable,
                        strict=True):
            np.testing.assert_array_equal(a, b)
    whole_tests = {arm.index: test for arm, _, test in whole.finished}
    assert rest.finished and all(test == whole_tests[arm.index] for arm, _, test in rest.finished)  # same test metrics


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_a_diverged_arm_stays_diverged_and_is_not_trained_again(engine):
    config = SweepConfig(lambdas=(1e-3, 1e38), seeds=1, seed=3, epochs=3, dataset="mnist-5k", engine=engine)
    splits = small_splits()
    train = get_engine(engine)
    whole = Collect()
    train(config, splits, whole)
    first = StopAfter(2)  # fused: after epoch 2; keras: arm 0 at epoch 2
    with pytest.raises(KeyboardInterrupt):
        train(config, splits, first)
    rest = Collect()
    train(config, splits, rest, resume=first.last_checkpoint)
    statuses = {arm.index: status for arm, status, _ in whole.finished}
    assert statuses == {0: "completed", 1: "diverged"}
    assert {arm.index: status for arm, status, _ in rest.finished} == statuses
    assert [r.epoch for r in rest.records if r.arm == 1] == ([] if engine == "fused" else [1])  # fused: diverged before the stop
