"""The data a run trains on: `Splits` (train / validation / test arrays) and `DataInfo` (what they are and
where they came from), and `finish`, every loader's last step: it validates raw arrays (shapes, labels,
pixels), splits off validation, numbers the labels and scales the inputs, so a bad file ends in one clear
`DataError` whichever loader read it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

from reglab.data.encoding import (
    Scaling,
    encode_labels,
    input_array,
    label_array,
    pixel_words,
    scale_pixels,
    scale_table,
)
from reglab.errors import DataError

#: The original study's class count (MNIST's ten digits); other data bring their own.
NUM_CLASSES = 10


DIGIT_CLASSES = tuple(str(i) for i in range(NUM_CLASSES))


#: The split of a file that has only train and test parts; `finish` writes in the real sizes.
LAST_SIXTH_SPLIT = "last sixth"


def last_sixth_split(n_val: int, n_file: int, fraction: float | None = None) -> str:
    part = "sixth" if fraction is None else f"{fraction:g}"
    return (f"the last {part} of the training file is validation ({n_val:,} of {n_file:,}, as Keras's validation_split "
            "takes the last samples); the file's test set is kept apart")


class DataOptions(NamedTuple):
    """How to read and split the data, beyond its name: a CSV's label column and test file, and the share of
    the training data held out for validation (None: the dataset's own stated split)."""

    target: str = ""
    test_file: str = ""
    validation_split: float | None = None
    scored_on_test: bool = False  # the per-example "validation" values are the test set's (a confirmation round)


NO_OPTIONS = DataOptions()


@dataclass(frozen=True)

class DataInfo:
    """What data a run actually used, and why: goes into run.json and the report."""

    name: str
    requested: str
    source: str
    split: str
    n_train: int
    n_val: int
    n_test: int
    input_shape: tuple[int, ...]  # one sample's: (height, width[, channels]) for images, (features,) for a table
    sha256: str
    fallback_reason: str | None = None  # in plain words; the raw error is `fallback_error`
    #: flattened indices (into a sample of `input_shape`) of the input values that are the same in every
    #: training sample, such as MNIST's always-blank border pixels: no weight on them gets a data gradient
    constant_inputs: tuple[int, ...] = ()
    fallback_error: str | None = None
    #: the classes in index order: the data's own label values (or names), as text
    classes: tuple[str, ...] = DIGIT_CLASSES
    #: whether the data's labels were renumbered to 0…K−1 (strings, sparse integers): `classes` is the mapping
    labels_renumbered: bool = False
    scaling: str = "pixels 0–255 divided by 255"  # what was done to the inputs, in words
    #: a standardized table's per-feature training mean and standard deviation (new inputs need the same)
    feature_mean: tuple[float, ...] = ()
    feature_std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("constant_inputs", "input_shape"):
            object.__setattr__(self, name, tuple(int(i) for i in getattr(self, name)))
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        for name in ("feature_mean", "feature_std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def is_table(self) -> bool:
        """Samples are rows of features, not images."""
        return len(self.input_shape) == 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("input_shape", "constant_inputs", "classes", "feature_mean", "feature_std"):
            d[name] = list(getattr(self, name))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataInfo":
        d = dict(d)
        if "image_shape" in d:  # records from before tables: images only, ten digit classes
            d["input_shape"] = d.pop("image_shape")
        d["input_shape"] = tuple(d["input_shape"])
        d["constant_inputs"] = tuple(d.get("constant_inputs", ()))  # absent in records from before it was kept
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)

class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    info: DataInfo

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) as `fit` takes them: `model.fit(*splits.train)`."""
        return self.x_train, self.y_train

    @property
    def val(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x_val, self.y_val

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        """`model.evaluate(*splits.test)`."""
        return self.x_test, self.y_test


def stratified_split(labels: np.ndarray, fractions: tuple[int, ...], seed: int) -> list[np.ndarray]:
    """Deal each class's samples, in a seeded random order, round-robin into parts of the given weights.

    The dealing pattern (e.g. 0,0,0,1,2) runs on across classes, so part sizes are exact whole rounds
    (5,000 samples at (3, 1, 1) → 3,000 / 1,000 / 1,000) and each class is in proportion to within one
    round of the pattern; a class whose size is a multiple of the round (every class of mnist-5k) is
    split exactly. Indices in each part are sorted, so file order is kept.
    """
    rng = np.random.default_rng(seed)
    pattern = np.repeat(np.arange(len(fractions)), fractions)
    classes = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    order = np.concatenate(classes) if classes else np.empty(0, dtype=np.int64)  # no labels: empty parts
    part_of = np.empty(len(labels), dtype=np.int64)
    part_of[order] = pattern[np.arange(len(order)) % len(pattern)]
    return [np.flatnonzero(part_of == k) for k in range(len(fractions))]


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out) indices, sorted: `fraction` of the samples held out (at least one, at most all but one),
    each class in proportion (largest remainders), the samples of each class in a seeded random order."""
    n = len(labels)
    n_held = min(max(1, round(fraction * n)), n - 1)
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    quota = np.array([fraction * len(p) for p in per_class])
    take = np.minimum(np.floor(quota).astype(np.int64), [len(p) for p in per_class])
    order = np.argsort(-(quota - take), kind="stable")
    for i in order[: max(0, n_held - int(take.sum()))]:
        take[i] += 1
    held = np.sort(np.concatenate([p[:k] for p, k in zip(per_class, take)] or [np.empty(0, np.int64)]))
    return np.setdiff1d(np.arange(n), held), held


def finish(
    x_train: Any, y_train: Any, x_test: Any, y_test: Any, *, name: str, requested: str, source: str,
    split: str, val: tuple[Any, Any] | None = None, validation_split: float | None = None,
    classes: tuple[str, ...] | None = None, scaling: str | None = None,
    label_names: tuple[str, str, str] = ("y_train", "y_val", "y_test"), features: tuple[str, ...] = (),
) -> Splits:
    """Check, split, number the labels and scale the inputs: every loader's last step. `val`: a stated
    validation split; else the last share of the training file (`validation_split`, default a sixth).
    `classes`: the dataset's own class list (labels must be 0…K−1), else the training labels'.
    `scaling`: what the loader already did to the inputs (then they must lie in [0, 1]).
    `label_names`, `features`: how errors name the three label sets and a table's feature columns."""
    x_train = input_array(x_train, "x_train", source)
    x_test = input_array(x_test, "x_test", source)
    y_train = label_array(y_train, "y_train", len(x_train), source)
    y_test = label_array(y_test, "y_test", len(x_test), source)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{source}: x_train samples are {x_train.shape[1:]} but x_test samples are {x_test.shape[1:]}")
    if val is None:
        n_file = len(x_train)
        if validation_split is None:
            n_val = n_file // 6
            if n_val < 1 or n_file - n_val < 1:
                raise DataError(f"{source}: x_train has {n_file} samples; at least 6 are needed to hold out "
                                "the last sixth for validation")
        else:
            n_val = n_file - int(n_file * (1.0 - validation_split))  # Keras's validation_split: the last samples
            if n_val < 1 or n_file - n_val < 1:
                raise DataError(f"{source}: a validation split of {validation_split:g} of {n_file} samples leaves "
                                f"{n_val} for validation and {n_file - n_val} for training; each needs at least 1")
        if split == LAST_SIXTH_SPLIT:
            split = last_sixth_split(n_val, n_file, validation_split)
        x_val, y_val = x_train[n_file - n_val:], y_train[n_file - n_val:]
        x_train, y_train = x_train[: n_file - n_val], y_train[: n_file - n_val]
    else:
        x_val = input_array(val[0], "x_val", source)
        y_val = label_array(val[1], "y_val", len(x_val), source)
        if x_val.shape[1:] != x_train.shape[1:]:
            raise DataError(f"{source}: x_train samples are {x_train.shape[1:]} but x_val samples are {x_val.shape[1:]}")
    if len(x_test) < 1:
        raise DataError(f"{source}: the test set is empty")
    (y_train, y_val, y_test), found = encode_labels(list(zip(label_names, (y_train, y_val, y_test))), source, classes)
    if x_train.ndim == 2:
        if scaling is not None:
            raise AssertionError("a table's loader leaves its scaling to finish")
        (x_train, x_val, x_test), how = scale_table(x_train, [x_val, x_test], source, features=features)
    else:
        how = Scaling(scaling or pixel_words(x_train))
        x_train, x_val, x_test = (scale_pixels(a, what, source) for a, what in
                                  ((x_train, "x_train"), (x_val, "x_val"), (x_test, "x_test")))
    digest = hashlib.sha256()
    for a in (x_train, y_train, x_val, y_val, x_test, y_test):
        digest.update(np.ascontiguousarray(a).tobytes())
    info = DataInfo(
        name=name, requested=requested, source=source, split=split,
        n_train=len(x_train), n_val=len(x_val), n_test=len(x_test),
        input_shape=tuple(int(d) for d in x_train.shape[1:]), sha256=digest.hexdigest(),
        constant_inputs=constant_inputs(x_train), classes=found.names, labels_renumbered=found.renumbered,
        scaling=how.words, feature_mean=how.mean, feature_std=how.std,
    )
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test, info)


def constant_inputs(x_train: np.ndarray) -> tuple[int, ...]:
    """Flattened indices of the input values that take a single value over the whole training split."""
    if len(x_train) == 0:
        return ()
    flat = x_train.reshape(len(x_train), -1)  # pixels are finite (checked): min == max means one value
    return tuple(int(i) for i in np.flatnonzero(flat.min(axis=0) == flat.max(axis=0)))


def with_info(splits: Splits, **changes: Any) -> Splits:
    info = DataInfo(**{**asdict(splits.info), **changes})
    return Splits(splits.x_train, splits.y_train, splits.x_val, splits.y_val, splits.x_test, splits.y_test, info)


def scored_on_test(splits: Splits) -> Splits:
    """The test set in the validation set's place: an adaptive sweep's confirmation round scores its fresh seeds
    on examples the choice never saw. The validation examples still train nothing; they are simply not scored."""
    info = DataInfo(**{**asdict(splits.info), "n_val": splits.info.n_test,
                       "split": f"{splits.info.split}; per-example values scored on the test set"})
    return Splits(splits.x_train, splits.y_train, splits.x_test, splits.y_test, splits.x_test, splits.y_test, info)


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."
