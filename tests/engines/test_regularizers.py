"""Regularizer families (`l2`, `l1`, `l1_l2[:RATIO]`, `weight_decay`) as arms of one sweep: parsing, and
both engines against a bare Keras `fit` of the same model, step for step."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import Collect, assert_trains_like_fit, small_splits
from reglab._keras import keras
from reglab.config import SweepConfig, parse_strengths
from reglab.engines import fused, get_engine, packed
from reglab.errors import ConfigError
from reglab.settings import FAMILIES as FAMILY_NAMES
from reglab.settings import Family, parse_family

FAMILIES = ("l2", "l1", "l1_l2:0.5", "weight_decay")


_REFERENCES: dict[tuple, tuple] = {}


def reference_fit(splits, family: str, lam: float, seed: int, epochs: int, learning_rate: float = 0.001,
                  optimizer: str = "adam"):
    """The original study's network with `family` written out by hand in plain Keras: the reference (one fit
    per data and arguments, shared by the engines and strategies compared with it)."""
    key = (splits.info.sha256, len(splits.x_train), len(splits.x_val), family, lam, seed, epochs, learning_rate, optimizer)
    if key not in _REFERENCES:
        _REFERENCES[key] = _fit(splits, family, lam, seed, epochs, learning_rate, optimizer)
    return _REFERENCES[key]


def _fit(splits, family: str, lam: float, seed: int, epochs: int, learning_rate: float, optimizer: str):
    keras.utils.set_random_seed(seed)
    name, _, ratio = family.partition(":")
    regularizer = {
        "l2": keras.regularizers.L2(lam), "l1": keras.regularizers.L1(lam),
        "l1_l2": keras.regularizers.L1L2(l1=lam, l2=float(ratio or 1.0) * lam), "weight_decay": None,
    }[name]
    hidden = keras.layers.Dense(128, activation="relu", kernel_regularizer=regularizer)
    model = keras.Sequential([keras.Input(shape=(28, 28)), keras.layers.Flatten(), hidden, keras.layers.Dense(10, activation="softmax")])
    make = (lambda **kw: keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9, **kw)) if optimizer == "sgd" else (
        lambda **kw: keras.optimizers.Adam(learning_rate=learning_rate, **kw))
    if name == "weight_decay":  # AdamW-style decay of the hidden kernel only, as Keras's optimizer does it
        opt = make(weight_decay=lam)
        opt.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if v is not hidden.kernel])
    else:
        opt = make()
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(splits.x_train, splits.y_train, epochs=epochs, batch_size=32,
                        validation_data=(splits.x_val, splits.y_val), verbose=0)
    return model, history


def family_config(engine: str) -> SweepConfig:
    return SweepConfig(lambdas=(0.0, 3e-3), seeds=1, seed=3, epochs=2, dataset="mnist-5k", engine=engine,
                       regularizers=FAMILIES, strengths=(("weight_decay", (0.0, 0.05)),))


@pytest.mark.slow
@pytest.mark.parametrize("engine, strategy", [("fused", "auto"), ("fused", "vmap"), ("keras", None)])
def test_every_family_matches_keras_fit_step_for_step(engine, strategy, monkeypatch):
    """All four families in one sweep (λ = 0 and one strength each, a partial last batch): every weight
    within 1e-5 of its tensor's scale and Keras's four metrics within 1e-5 of a bare `fit`'s History."""
    monkeypatch.setattr(packed, "MAX_PACKED_ARMS", 3)  # packed groups that mix families: 3 + 3 + 2
    splits = small_splits()
    config = family_config(engine)
    arms = config.arms()
    assert [(a.family, a.strength) for a in arms] == [(f, lam) for f in FAMILIES for lam in ((0.0, 0.05) if f == "weight_decay" else (0.0, 3e-3))]
    listener = Collect()
    if engine == "fused":
        weights = fused.train(config, splits, listener, strategy=strategy)
    else:
        weights = get_engine(engine)(config, splits, listener)
    by_arm = listener.by_arm()
    for arm in arms:
        model, history = reference_fit(splits, arm.family, arm.strength, arm.seed, epochs=2)
        assert_trains_like_fit(arm, weights[arm.index].trainable, by_arm[arm.index], model, history)
        rows = by_arm[arm.index]
        assert all(r.regularizer == arm.family for r in rows)
        if arm.family == "weight_decay":  # decay is not a loss term
            assert all(r.penalty == 0.0 and r.loss == pytest.approx(r.data_loss, abs=1e-6) for r in rows)


@pytest.mark.parametrize("engine, strategy, optimizer", [
    ("fused", "auto", "adam"), *(pytest.param(*p, marks=pytest.mark.slow) for p in [
        ("fused", "per-arm-chunks", "adam"), ("fused", "vmap", "adam"), ("keras", None, "adam"),
        ("fused", "auto", "sgd"), ("fused", "per-arm-chunks", "sgd"), ("keras", None, "sgd")]),
])
@pytest.mark.slow
def test_each_learning_rate_matches_keras_fit_step_for_step(engine, strategy, optimizer, monkeypatch):
    """L2 and weight decay, each at two strengths × two learning rates (the optimizer's `learning_rate`;
    weight decay scales with it), under Adam and under SGD(momentum=0.9): every arm as a bare `fit` with
    `Adam(learning_rate=…)` or `SGD(learning_rate=…, momentum=0.9)`, in one compilation."""
    monkeypatch.setattr(packed, "MAX_PACKED_ARMS", 3)  # groups may not span learning rates: 2 + 2 per series
    splits = small_splits()
    config = SweepConfig(lambdas=(0.0, 3e-3), seeds=1, seed=5, epochs=1, dataset="mnist-5k", engine=engine,
                         regularizers=("l2", "weight_decay"), strengths=(("weight_decay", (0.0, 0.05)),),
                         learning_rates=(3e-3, 1e-3) if optimizer == "adam" else (3e-2, 1e-2), optimizer=optimizer)
    rates = config.learning_rates
    arms = config.arms()
    assert [(a.family, a.learning_rate, a.strength) for a in arms] == [
        (f, lr, lam) for f in ("l2", "weight_decay") for lr in rates for lam in ((0.0, 0.05) if f == "weight_decay" else (0.0, 3e-3))]
    listener = Collect()
    weights = (fused.train(config, splits, listener, strategy=strategy) if engine == "fused"
               else get_engine(engine)(config, splits, listener))
    by_arm = listener.by_arm()
    for arm in arms:
        model, history = reference_fit(splits, arm.family, arm.strength, arm.seed, epochs=1, learning_rate=arm.learning_rate,
                                       optimizer=optimizer)
        assert_trains_like_fit(arm, weights[arm.index].trainable, by_arm[arm.index], model, history)
        assert all(r.learning_rate == arm.learning_rate for r in by_arm[arm.index])
    # the rate is felt: the same setting at the other rate trains other weights
    assert np.max(np.abs(weights[1].trainable[0] - weights[3].trainable[0])) > 1e-3


@pytest.mark.slow
def test_weight_decay_is_not_l2_under_adam():
    """Loshchilov & Hutter's point, measured: the same strength as L2 and as decoupled decay trains different weights."""
    splits = small_splits()
    l2, _ = reference_fit(splits, "l2", 0.01, 0, epochs=1)
    wd, _ = reference_fit(splits, "weight_decay", 0.01, 0, epochs=1)
    assert np.max(np.abs(np.asarray(l2.trainable_variables[0]) - np.asarray(wd.trainable_variables[0]))) > 1e-3


def test_family_specs():
    assert parse_family("l2") == Family("l2", 0.0, 1.0, 0.0)
    assert parse_family("l1") == Family("l1", 1.0, 0.0, 0.0)
    assert parse_family("l1_l2") == Family("l1_l2", 1.0, 1.0, 0.0)
    assert parse_family("l1_l2:0.25") == Family("l1_l2:0.25", 1.0, 0.25, 0.0)
    assert parse_family("weight_decay") == Family("weight_decay", 0.0, 0.0, 1.0)
    for bad in ("l3", "", "l1_l2:", "l1_l2:-1", "l1_l2:nan", "l2:2", "weight_decay:1", "L2 "):
        with pytest.raises(ConfigError):
            parse_family(bad)


def test_strengths_parse_and_validate():
    assert parse_strengths(["weight_decay=0,1e-3", "l1=logspace:1e-5:1e-3:3"]) == (
        ("weight_decay", (0.0, 1e-3)), ("l1", (1e-5, 1e-4, 1e-3)))
    for bad in (["l1"], ["=1e-3"], ["l1=-1"], ["l1=1e-3", "l1=1e-2"], ["l1=x"]):
        with pytest.raises(ConfigError):
            parse_strengths(bad)
    with pytest.raises(ConfigError, match="not among"):
        SweepConfig(regularizers=("l2",), strengths=(("l1", (1e-3,)),))
    with pytest.raises(ConfigError, match="twice"):
        SweepConfig(regularizers=("l2", "l2"))


@given(st.text(max_size=30))
def test_any_family_spec_is_parsed_or_refused_in_one_line(text):
    try:
        family = parse_family(text)
    except ConfigError as e:
        assert "\n" not in str(e) and str(e)
    else:
        assert family.name.split(":")[0] in FAMILY_NAMES and min(family.l1, family.l2, family.decay) >= 0
