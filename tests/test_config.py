"""`SweepConfig` and its parsers: every input either becomes a valid config or fails with one `ConfigError`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import re
import tempfile
import time
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reglab.config import (
    DEFAULT_LAMBDAS,
    DEFAULT_SEEDS,
    ENGINES,
    FLOAT32_MAX,
    FLOAT32_TINY,
    MAX_BATCH_SIZE,
    MAX_CONFIG_BYTES,
    MAX_EPOCHS,
    MAX_SEED,
    MAX_SEEDS,
    Arm,
    SweepConfig,
    _parse_logspace,
    dump_toml,
    load_toml,
    parse_lambdas,
    validate_lambdas,
)
from reglab.errors import ConfigError, ReglabError
from reglab.inputs import brief

# Every key a config document may hold, read from the dataclass itself: a copied list falls behind when a
# field is added (it once lacked `learning_rates`, and valid documents then failed this file's checks).
FIELDS = tuple(f.name for f in dataclasses.fields(SweepConfig))
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_valid(cfg: SweepConfig) -> None:
    """The invariants every `SweepConfig` that exists must hold."""
    lams = cfg.lambdas
    assert isinstance(lams, tuple) and lams
    assert all(type(v) is float and math.isfinite(v) and v >= 0 for v in lams)
    assert list(lams) == sorted(set(lams))
    for name, lo, hi in (("seeds", 1, MAX_SEEDS), ("epochs", 1, MAX_EPOCHS), ("batch_size", 1, MAX_BATCH_SIZE),
                         ("seed", 0, MAX_SEED)):
        v = getattr(cfg, name)
        assert type(v) is int and lo <= v <= hi, (name, v)
    assert isinstance(cfg.dataset, str) and cfg.dataset.strip()
    assert cfg.engine in ENGINES
    assert max(cfg.seed_values) <= 2**31 - 1
    rates = cfg.learning_rates
    assert rates and all(type(v) is float and math.isfinite(v) and v > 0 for v in rates) and list(rates) == sorted(set(rates))
    assert len(cfg.settings()) == cfg.n_settings == len(cfg.arms()) // cfg.seeds


def assert_sorted_lambdas(result: tuple[float, ...]) -> None:
    assert isinstance(result, tuple) and result
    assert all(isinstance(v, float) and math.isfinite(v) and v >= 0 for v in result)
    assert list(result) == sorted(result)
    assert len(set(result)) == len(result)


# ---------------------------------------------------------------- SweepConfig: defaults and derived values

def test_defaults_are_the_studys_sweep():
    cfg = SweepConfig()
    assert cfg.lambdas == DEFAULT_LAMBDAS == (0.0, 1e-4, 1e-3, 1e-2)
    # the study's strengths, epochs, batch and data, but three seeds, not its one: one seed measures no seed noise
    assert (cfg.seeds, cfg.seed, cfg.epochs, cfg.batch_size, cfg.dataset, cfg.engine) == (3, 0, 10, 32, "mnist", "fused")
    assert cfg.seeds == DEFAULT_SEEDS and len(cfg.arms()) == 3 * len(DEFAULT_LAMBDAS)
    assert_valid(cfg)


def test_lambdas_are_sorted_and_made_floats():
    cfg = SweepConfig(lambdas=[1e-2, 0, 1e-4])
    assert cfg.lambdas == (0.0, 1e-4, 1e-2)
    assert all(type(v) is float for v in cfg.lambdas)


def test_arms_are_seed_major_and_indexed_in_order():
    cfg = SweepConfig(lambdas=(0.0, 0.1), seeds=3, seed=5)
    assert cfg.seed_values == (5, 6, 7)
    arms = cfg.arms()
    assert arms == [Arm(0, 0.0, 5), Arm(1, 0.1, 5), Arm(2, 0.0, 6), Arm(3, 0.1, 6), Arm(4, 0.0, 7), Arm(5, 0.1, 7)]


def test_config_is_frozen():
    cfg = SweepConfig()
    with pytest.raises(AttributeError):
        cfg.epochs = 3  # type: ignore[misc]


def test_to_dict_from_mapping_round_trip():
    cfg = SweepConfig(lambdas=(0.5, 0.0), seeds=2, seed=7, epochs=3, batch_size=8, dataset="x.npz")
    d = cfg.to_dict()
    assert d["lambdas"] == [0.0, 0.5]
    assert SweepConfig.from_mapping(d) == cfg


def test_replace_validates():
    cfg = SweepConfig()
    assert cfg.replace(epochs=2).epochs == 2
    assert cfg.replace(lambdas="0.1, 0").lambdas == (0.0, 0.1)
    with pytest.raises(ConfigError, match="epochs"):
        cfg.replace(epochs=0)


def test_dump_toml_round_trips(tmp_path):
    cfg = SweepConfig(lambdas=(0.0, 1e-4, 3.0), seeds=4, seed=11, epochs=2, batch_size=64, dataset="data/d.npz")
    p = tmp_path / "c.toml"
    p.write_text(dump_toml(cfg), encoding="utf-8")
    assert SweepConfig.from_mapping(load_toml(p), where=str(p)) == cfg


def test_config_error_is_a_reglab_error():
    assert issubclass(ConfigError, ReglabError)


# ---------------------------------------------------------------- explicit bad values

@pytest.mark.parametrize(
    "lambdas, message",
    [
        ([0.0, -1e-4], "non-negative"),
        ([-0.5], "non-negative"),
        ([float("nan")], "finite"),
        ([0.0, float("inf")], "finite"),
        ([float("-inf")], "finite"),
        ([], "empty"),
        ((), "empty"),
        ([1e-3, 1e-3], "twice"),
        ([0, 0.0], "twice"),  # an int and a float with the same value are the same λ
        ([0.0, -0.0], "twice"),
        ([True], "number"),
        ([0.0, False], "number"),
        (["0.1"], "number"),
        ([None], "number"),
        ([[0.1]], "number"),
        ([10**400], "finite"),  # beyond float range: not an OverflowError
        ([-(10**400)], "finite"),
        ("0.1", "list"),
        (b"0.1", "list"),
        (0.1, "list"),
        (None, "list"),
    ],
)
def test_validate_lambdas_rejects(lambdas, message):
    with pytest.raises(ConfigError, match=message):
        validate_lambdas(lambdas)
    with pytest.raises(ConfigError, match=message):
        SweepConfig(lambdas=lambdas)


def test_validate_lambdas_accepts_any_iterable_of_numbers():
    assert validate_lambdas(iter([3, 1, 2.5])) == (1.0, 2.5, 3.0)
    assert validate_lambdas({0.1: "a"}) == (0.1,)
    assert validate_lambdas([0]) == (0.0,)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("   ", "empty"),
        (",", "empty"),
        (" , , ", "empty"),
        ("0.1,", "empty item"),
        ("0.1,,0.2", "empty item"),
        (",0.1", "empty item"),
        ("abc", "not a number"),
        ("0.1;0.2", "not a number"),
        ("0x10", "not a number"),
        ("1e-4,-1e-3", "non-negative"),
        ("nan", "finite"),
        ("NaN,0.1", "finite"),
        ("inf", "finite"),
        ("1e400", "finite"),  # overflows to inf
        ("-inf", "finite"),
        ("0.1,0.10", "twice"),
        ("0,0.0,1", "twice"),
    ],
)
def test_parse_lambdas_rejects(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_lambdas(text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0,1e-4,1e-3,1e-2", DEFAULT_LAMBDAS),
        (" 1e-2 , 0 ", (0.0, 1e-2)),
        ("3", (3.0,)),
        ("1_000", (1000.0,)),
        ("1.1754943508222875e-38", (FLOAT32_TINY,)),  # the smallest normal float32 (training is float32)
        ("3.4028234663852886e38", (FLOAT32_MAX,)),
    ],
)
def test_parse_lambdas_accepts(text, expected):
    assert parse_lambdas(text) == expected


@pytest.mark.parametrize(
    "name, bad, message",
    [
        ("epochs", 0, "between 1 and"),
        ("epochs", -3, "between 1 and"),
        ("epochs", MAX_EPOCHS + 1, "between 1 and"),
        ("batch_size", 0, "between 1 and"),
        ("batch_size", -1, "between 1 and"),
        ("batch_size", MAX_BATCH_SIZE + 1, "between 1 and"),
        ("seeds", 0, "between 1 and"),
        ("seeds", -2, "between 1 and"),
        ("seeds", MAX_SEEDS + 1, "between 1 and"),
        ("seed", -1, "between 0 and"),
        ("seed", 2**31, "between 0 and"),
        ("epochs", True, "integer"),
        ("epochs", False, "integer"),
        ("batch_size", True, "integer"),
        ("seeds", True, "integer"),
        ("seed", False, "integer"),
        ("epochs", 2.0, "integer"),
        ("batch_size", "32", "integer"),
        ("seeds", None, "integer"),
    ],
)
def test_integer_settings_are_checked(name, bad, message):
    with pytest.raises(ConfigError, match=message) as info:
        SweepConfig(**{name: bad})
    assert name in str(info.value)
    with pytest.raises(ConfigError, match=name):
        SweepConfig.from_mapping({name: bad})


@pytest.mark.parametrize("name", ["epochs", "batch_size", "seeds"])
def test_integer_settings_lower_bound_is_one(name):
    assert getattr(SweepConfig(**{name: 1}), name) == 1


@pytest.mark.parametrize("engine", ["torch", "", "Keras", None, 3, ["keras"]])
def test_unknown_engine(engine):
    with pytest.raises(ConfigError, match="engine"):
        SweepConfig(engine=engine)


@pytest.mark.parametrize("dataset", ["", "   ", None, 5, ["mnist"]])
def test_dataset_must_be_a_name(dataset):
    with pytest.raises(ConfigError, match="dataset"):
        SweepConfig(dataset=dataset)


def test_from_mapping_unknown_key_names_it_and_where():
    with pytest.raises(ConfigError, match=r"unknown setting 'learning_rate' in presets/x\.toml") as info:
        SweepConfig.from_mapping({"epochs": 2, "learning_rate": 0.1}, where="presets/x.toml")
    assert "known:" in str(info.value) and "lambdas" in str(info.value)


def test_from_mapping_parses_a_lambda_string():
    assert SweepConfig.from_mapping({"lambdas": "0.01,0"}).lambdas == (0.0, 0.01)
    with pytest.raises(ConfigError, match="empty"):
        SweepConfig.from_mapping({"lambdas": ""})


# ---------------------------------------------------------------- load_toml

def test_load_toml_reads_a_preset(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('lambdas = [0.0, 1e-3]\nepochs = 3\nbatch_size = 16\ndataset = "mnist-5k"\n', encoding="utf-8")
    cfg = SweepConfig.from_mapping(load_toml(p), where=str(p))
    assert (cfg.lambdas, cfg.epochs, cfg.batch_size, cfg.dataset) == ((0.0, 1e-3), 3, 16, "mnist-5k")


def test_load_toml_unknown_key(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text("epochs = 3\nmomentum = 0.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown setting 'momentum'"):
        SweepConfig.from_mapping(load_toml(p), where=str(p))


def test_load_toml_table_is_an_unknown_key(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text("[sweep]\nepochs = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown setting 'sweep'"):
        SweepConfig.from_mapping(load_toml(p))


@pytest.mark.parametrize(
    "text",
    ["epochs = ", "epochs = 3\nepochs = 4\n", "lambdas = [0.1,", "= 3", "epochs = 1979-02-30", "[[[x]]]", "a = 'b"],
)
def test_load_toml_invalid(tmp_path, text):
    p = tmp_path / "p.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_toml(p)
    assert str(p) in str(info.value)


def test_load_toml_not_utf8(tmp_path):
    p = tmp_path / "p.toml"
    p.write_bytes(b"dataset = '\xff\xfe'\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_toml(p)


def test_load_toml_missing_file(tmp_path):
    p = tmp_path / "nope" / "p.toml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_toml(p)
    assert str(p) in str(info.value)


def test_load_toml_directory(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_toml(tmp_path)


def test_load_toml_deeply_nested_is_a_config_error(tmp_path):
    # tomllib recurses once per nesting level; a hostile preset must not end in RecursionError
    p = tmp_path / "p.toml"
    p.write_text("lambdas = " + "[" * 50_000 + "]" * 50_000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        SweepConfig.from_mapping(load_toml(p))


def test_toml_integer_too_large_for_a_float(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text("lambdas = [" + "9" * 400 + "]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="finite"):
        SweepConfig.from_mapping(load_toml(p))


@pytest.mark.parametrize(
    "text, message",
    [
        ("lambdas = []", "empty"),
        ("lambdas = [-0.1]", "non-negative"),
        ("lambdas = [nan]", "finite"),
        ("lambdas = [inf, 0.0]", "finite"),
        ("lambdas = [0.1, 0.1]", "twice"),
        ("lambdas = [true]", "number"),
        ("lambdas = 0.1", "list"),
        ("lambdas = '0.1,-1'", "non-negative"),
        ("lambdas = ''", "empty"),
        ("lambdas = {a = 1}", "number"),
        ("epochs = 0", "epochs"),
        ("epochs = true", "integer"),
        ("epochs = 2.5", "integer"),
        ("batch_size = 0", "batch_size"),
        ("batch_size = false", "integer"),
        ("seeds = 0", "seeds"),
        ("seeds = true", "integer"),
        ("seed = -1", "seed"),
        ("engine = 'pytorch'", "unknown engine"),
        ("dataset = ''", "dataset"),
        ("dataset = 1979-05-27", "dataset"),
    ],
)
def test_bad_values_in_toml(tmp_path, text, message):
    p = tmp_path / "p.toml"
    p.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        SweepConfig.from_mapping(load_toml(p), where=str(p))


# ---------------------------------------------------------------- properties

finite_lambdas = st.lists(  # 0 or a normal float32: what training can hold
    st.one_of(st.just(0.0), st.floats(min_value=FLOAT32_TINY, max_value=FLOAT32_MAX)), min_size=1, max_size=8, unique=True
)


@FAST
@given(st.text())
@example("")
@example("0,,1")
@example("1e309")
@example("٣")  # a non-ASCII digit: Python's float() accepts it
@example("\x00")
def test_parse_lambdas_any_text(text):
    try:
        result = parse_lambdas(text)
    except ConfigError as e:
        assert str(e)
        return
    assert_sorted_lambdas(result)


number_token = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
    st.sampled_from(["", " ", "nan", "-0", "1e-4", "1e999", "+3", ".5", "5.", "1_0", "0x1", "e", "--1", "1e"]),
    st.text(alphabet="0123456789.eE+-_ ", max_size=6),
)


@FAST
@given(st.lists(number_token, max_size=8).map(",".join))
def test_parse_lambdas_numberish_text(text):
    try:
        result = parse_lambdas(text)
    except ConfigError:
        return
    assert_sorted_lambdas(result)


@FAST
@given(finite_lambdas, st.sampled_from([",", ", ", " ,", " , "]))
def test_parse_lambdas_round_trip(values, sep):
    assert parse_lambdas(sep.join(repr(x) for x in values)) == tuple(sorted(values))


@FAST
@given(finite_lambdas)
def test_validate_lambdas_is_sorted_identity_on_valid_lists(values):
    assert validate_lambdas(values) == tuple(sorted(values))
    assert validate_lambdas(list(reversed(values))) == tuple(sorted(values))
    assert SweepConfig(lambdas=values).lambdas == tuple(sorted(values))


@FAST
@given(st.lists(st.one_of(st.floats(), st.integers(), st.booleans(), st.none(), st.text(max_size=3)), max_size=6))
def test_validate_lambdas_any_list(values):
    try:
        result = validate_lambdas(values)
    except ConfigError:
        return
    assert_sorted_lambdas(result)


# TOML values tomli_w can write: everything TOML has, nested a little.
toml_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(),  # tomli_w writes any int; tomllib reads it back as a Python int of any size
    st.floats(),
    st.text(max_size=12),
    st.dates(),
    st.times(),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)
# Values likely to be (nearly) right for each field, so the valid branch is exercised too.
field_values = {
    "lambdas": st.one_of(
        finite_lambdas,
        st.lists(st.one_of(st.floats(), st.integers(min_value=-5, max_value=10**20)), max_size=5),
        st.lists(st.floats(min_value=0, max_value=1), max_size=4).map(lambda v: ",".join(map(repr, v))),
        toml_values,
    ),
    "seeds": st.one_of(st.integers(min_value=-2, max_value=MAX_SEEDS + 2), toml_values),
    "seed": st.one_of(st.integers(min_value=-2, max_value=2**31), toml_values),
    "epochs": st.one_of(st.integers(min_value=-2, max_value=MAX_EPOCHS + 2), toml_values),
    "batch_size": st.one_of(st.integers(min_value=-2, max_value=MAX_BATCH_SIZE + 2), toml_values),
    "dataset": st.one_of(st.sampled_from(["mnist", "mnist-5k", "", " ", "d/x.npz"]), toml_values),
    "engine": st.one_of(st.sampled_from(ENGINES + ("jax", "", "KERAS")), toml_values),
    "learning_rates": st.one_of(
        st.lists(st.one_of(st.floats(), st.integers(min_value=-5, max_value=10)), max_size=4),
        st.lists(st.floats(min_value=0, max_value=1), max_size=4).map(lambda v: ",".join(map(repr, v))),
        st.sampled_from(["logspace:1e-4:1e-2:3", "0", "1e-3,1e-3"]),
        toml_values,
    ),
}
config_docs = st.one_of(
    st.fixed_dictionaries({}, optional=field_values),
    st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)), toml_values, max_size=5),
)


def load_text(data: bytes) -> SweepConfig | None:
    """Write `data` to a preset and load it; None when it was refused with a ConfigError."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "preset.toml"
        p.write_bytes(data)
        try:
            return SweepConfig.from_mapping(load_toml(p), where=str(p))
        except ConfigError as e:
            assert str(e)
            return None


@FAST
@given(config_docs)
def test_any_toml_document_gives_a_valid_config_or_config_error(doc):
    cfg = load_text(tomli_w.dumps(doc).encode("utf-8"))
    if cfg is not None:
        assert_valid(cfg)
        assert set(doc) <= set(FIELDS)


def test_learning_rates_are_a_setting_field():
    config = SweepConfig.from_mapping({"learning_rates": "logspace:1e-4:1e-2:3", "lambdas": [0.0, 0.1],
                                       "regularizers": ["l2", "weight_decay"]})
    assert config.learning_rates == (1e-4, 1e-3, 1e-2)
    settings = config.settings()
    assert [(s.family, s.learning_rate, s.strength) for s in settings[:3]] == [("l2", 1e-4, 0.0), ("l2", 1e-4, 0.1), ("l2", 1e-3, 0.0)]
    assert len(settings) == config.n_settings == 12 and len(set(settings)) == 12
    assert SweepConfig().learning_rates == (0.001,) and SweepConfig().settings()[0].learning_rate == 0.001
    assert SweepConfig.from_mapping(config.to_dict()) == config


def test_the_optimizer_is_adam_or_sgd():
    assert SweepConfig().optimizer == "adam" and SweepConfig.from_mapping({"optimizer": "sgd"}).optimizer == "sgd"
    for bad in ("SGD", "adamw", "", 3):
        with pytest.raises(ConfigError, match="unknown optimizer"):
            SweepConfig(optimizer=bad)


@pytest.mark.parametrize("rates, message", [
    ([0.0, 1e-3], "learning rate must be positive, got 0.0"), ([-1e-3], "learning rate must be positive"),
    ([], "the list of learning rate values is empty"), ([1e-3, 1e-3], "learning rate 0.001 is given twice"),
    ([float("inf")], "learning rate must be finite"), ("fast", "learning rate 'fast' is not a number"),
    (["1e-3"], "learning rate must be a number"),
])
def test_bad_learning_rates_are_refused(rates, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        SweepConfig.from_mapping({"learning_rates": rates})


@FAST
@given(st.fixed_dictionaries(
    {},
    optional={
        "lambdas": finite_lambdas,
        "seeds": st.integers(1, MAX_SEEDS),
        "seed": st.integers(0, MAX_SEED - MAX_SEEDS),
        "epochs": st.integers(1, MAX_EPOCHS),
        "batch_size": st.integers(1, MAX_BATCH_SIZE),
        "dataset": st.text(min_size=1).filter(str.strip),
        "engine": st.sampled_from(ENGINES),
        "learning_rates": st.lists(st.floats(min_value=1e-12, max_value=10.0), min_size=1, max_size=4, unique=True).map(sorted),
    },
))
def test_valid_toml_documents_load_exactly(doc):
    cfg = load_text(tomli_w.dumps(doc).encode("utf-8"))
    assert cfg is not None
    expected = SweepConfig(**doc)
    assert cfg == expected
    assert_valid(cfg)
    assert load_text(dump_toml(cfg).encode("utf-8")) == cfg


toml_ish_text = st.lists(
    st.one_of(
        st.sampled_from(FIELDS),
        st.sampled_from(["=", " = ", "\n",
                         "[", "]", ",", "0.1", "-1", "nan", "inf", "true", "'keras'", '"', "{", "}", "#", "1e400",
                         "1979-05-27", "[x]", "."]),
        st.text(max_size=4),
    ),
    max_size=20,
).map("".join)


@FAST
@given(st.one_of(st.text(), toml_ish_text))
@example("lambdas = [0.1]\n")
@example("epochs = 3\n")
def test_any_text_preset_gives_a_valid_config_or_config_error(text):
    cfg = load_text(text.encode("utf-8"))
    if cfg is not None:
        assert_valid(cfg)


@FAST
@given(st.binary(max_size=200))
@example(b"\xef\xbb\xbfepochs = 2\n")  # a UTF-8 byte-order mark
@example(b"epochs = 2\x00\n")
def test_any_bytes_preset_gives_a_valid_config_or_config_error(data):
    cfg = load_text(data)
    if cfg is not None:
        assert_valid(cfg)


# ---------------------------------------------------------------- logspace grids

def test_logspace_items_alone_and_with_explicit_values():
    sixteen = parse_lambdas("logspace:1e-6:1e-1:16")
    assert len(sixteen) == 16 and sixteen[0] == 1e-6 and sixteen[-1] == 0.1
    assert 1e-5 in sixteen and 1e-3 in sixteen  # decades come out as written
    assert parse_lambdas("0,1e-3,logspace:1e-4:1e-2:3") == (0.0, 1e-4, 1e-3, 1e-2)  # shared values count once
    assert parse_lambdas(" LOGSPACE:1e-3:1e-3:1 ") == (1e-3,)
    assert SweepConfig.from_mapping({"lambdas": "0,logspace:1e-4:1e-1:4", "dataset": "x"}).lambdas == (0.0, 1e-4, 1e-3, 1e-2, 1e-1)


@pytest.mark.parametrize("text, message", [
    ("logspace:0:1:3", "> 0"), ("logspace:1e-3:1e-4:3", "STOP must not be below START"), ("logspace:1:2", "write logspace:"),
    ("logspace:1e-3:1e-1:0", "N must be between"), ("logspace:1e-3:1e-1:1001", "N must be between"),
    ("logspace:a:1:3", "must be numbers"), ("logspace:1:1:3", "would repeat"), ("logspace:1e-3:1e400:3", "finite"),
    ("logspace:1e-3:1e-2:2.5", "whole number"), ("logspace:1:1.0000000000001:50", "too close"), ("1e-3,1e-3", "twice"),
])
def test_bad_logspace_items(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_lambdas(text)


@given(st.floats(1e-12, 1e3), st.floats(1.0, 1e6), st.integers(2, 60))
def test_logspace_is_geometric_from_start_to_stop(start, factor, n):
    stop = start * factor
    try:
        values = parse_lambdas(f"logspace:{start!r}:{stop!r}:{n}")
    except ConfigError as e:
        assert "too close" in str(e) or "would repeat" in str(e)
        return
    assert len(values) == n and list(values) == sorted(values)
    assert values[0] == pytest.approx(start, rel=1e-11) and values[-1] == pytest.approx(stop, rel=1e-11)
    ratios = [b / a for a, b in zip(values, values[1:])]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-9)


# ---------------------------------------------------------------- logspace without overflow

@pytest.mark.parametrize("text, expected", [
    ("logspace:1e-300:1e308:5", (1e-300, 1e-148, 1e4, 1e156, 1e308)),  # stop / start overflows to inf
    ("logspace:1e-308:1e308:3", (1e-308, 1.0, 1e308)),
    ("logspace:5e-324:1e-323:2", (5e-324, 1e-323)),  # subnormals
])
def test_logspace_over_the_whole_float_range(text, expected):
    assert _parse_logspace(text) == list(expected)
    with pytest.raises(ConfigError, match="float32"):  # as a strength: beyond what training can hold
        parse_lambdas(text)


def test_logspace_from_the_smallest_to_the_largest_float():
    values = _parse_logspace("logspace:5e-324:1.7976931348623157e308:1000")
    assert len(values) == 1000 and all(math.isfinite(v) and v > 0 for v in values)
    assert list(values) == sorted(set(values))


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=5e-324, allow_infinity=False, allow_nan=False),
       st.floats(min_value=5e-324, allow_infinity=False, allow_nan=False),
       st.integers(1, 1000))
@example(1e-300, 1e308, 5)
@example(5e-324, 1.7976931348623157e308, 1000)
@example(1.7976931348623155e308, 1.7976931348623157e308, 2)
@example(1.0, 1.0000000000001, 3)
def test_logspace_property(a, b, n):
    """Any START ≤ STOP (positive, finite) and N: N sorted, distinct, finite, positive values from START to STOP
    (rounded to 12 significant digits; N = 1 is START alone), or one ConfigError — never nan, inf or OverflowError.
    As strengths, values beyond a normal float32 are refused (training is float32)."""
    start, stop = min(a, b), max(a, b)
    try:
        values = parse_lambdas(f"logspace:{start!r}:{stop!r}:{n}")
    except ConfigError as e:
        assert "\n" not in str(e) and "nan" not in str(e)
        in_float32 = FLOAT32_TINY <= float(f"{start:.12g}") and float(f"{stop:.12g}") <= FLOAT32_MAX
        assert "too close" in str(e) or "would repeat" in str(e) or ("float32" in str(e) and not in_float32)
        return
    assert len(values) == n
    assert all(math.isfinite(v) and v > 0 for v in values)
    assert list(values) == sorted(set(values))
    assert values[0] == float(f"{start:.12g}")
    if n > 1:
        assert values[-1] == float(f"{stop:.12g}")


# ---------------------------------------------------------------- presets: regular files of bounded size

def test_load_toml_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "p.toml"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="FIFO") as info:
        load_toml(fifo)  # no writer: a plain open() would block here for ever
    assert time.monotonic() - t0 < 5 and str(fifo) in str(info.value)


def test_load_toml_device_is_refused():
    with pytest.raises(ConfigError, match="/dev/zero.*character device"):
        load_toml("/dev/zero")  # reading it would never end


def test_load_toml_too_large_is_refused_before_reading(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text("epochs = 2\n" + "# padding\n" * (MAX_CONFIG_BYTES // 10))
    with pytest.raises(ConfigError, match=r"more than reglab reads") as info:
        load_toml(p)
    assert f"{p.stat().st_size:,} bytes" in str(info.value) and f"{MAX_CONFIG_BYTES:,}" in str(info.value)
    p.write_text("epochs = 2\n")
    assert load_toml(p) == {"epochs": 2}


# ---------------------------------------------------------------- a user's value is echoed short

@pytest.mark.parametrize("make", [
    lambda: SweepConfig(model="x" * 5_000_000),
    lambda: SweepConfig(engine="e" * 5_000_000),
    lambda: SweepConfig(epochs="9" * 5_000_000),
    lambda: SweepConfig(epochs=10 ** 4000),
    lambda: SweepConfig(lambdas=["a" * 5_000_000]),
    lambda: SweepConfig(lambdas="q" * 5_000_000),
    lambda: SweepConfig(regularizers=["r" * 5_000_000]),
    lambda: SweepConfig.from_mapping({"k" * 5_000_000: 1}),
    lambda: parse_lambdas("z" * 5_000_000),
    lambda: parse_lambdas("logspace:" + "1" * 5_000_000),
])
def test_huge_values_are_echoed_short(make):
    with pytest.raises(ConfigError) as info:
        make()
    assert len(str(info.value)) < 400 and "\n" not in str(info.value)


@FAST
@given(st.one_of(st.text(), st.binary(), st.lists(st.integers()), st.integers(), st.floats(),
                 st.recursive(st.integers(), lambda c: st.lists(c, max_size=3), max_leaves=20)),
       st.integers(2, 200))
def test_brief_is_one_short_line(value, limit):
    text = brief(value, limit)
    assert len(text) <= limit and "\n" not in text
    if len(repr(value)) <= limit and "\n" not in repr(value):
        assert text == repr(value)
