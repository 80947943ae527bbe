"""How a dataset's raw labels and inputs become what the network trains on: class indices 0…K−1, and
inputs on a scale Adam's default step suits.

Labels: the classes are the training labels' (a validation or test label with no training sample is
refused, not given a class the network never learns); class indices as they are when they already run
0…K−1; anything else (strings, sparse or negative integers) is numbered in sorted order, and the mapping
is kept (`Classes`) for run.json and the report. Strings are classes by their exact text ('7' and '007'
are two classes). Inputs: images keep the pixel rule (0–255 → ÷255, floats in [0, 1] kept); a table
whose values all lie in [0, 1] is kept, any other table is standardized per feature with the training
split's mean and standard deviation, never the validation or test split's, computed so that no finite
value overflows; a standardized value that float32 cannot hold is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from reglab.errors import DataError


class Classes(NamedTuple):
    """The classes in index order (their names: the original label values as text) and whether the data's
    labels were renumbered to reach 0…K−1."""

    names: tuple[str, ...]
    renumbered: bool


def _label_kind(y: np.ndarray, what: str, source: str) -> str:
    """"int" for integer class labels (integer-valued floats included), "text" for strings."""
    if y.dtype.kind in "iu":
        return "int"
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or not (y == np.round(y)).all():
            raise DataError(f"{source}: {what} holds labels that are not integers")
        if y.size and np.abs(y).max() >= 2.0**53:  # beyond this a float is no exact integer, and int64 may overflow
            raise DataError(f"{source}: {what} holds a label of {np.abs(y).max():.4g}, too large to be a class number")
        return "int"
    if y.dtype.kind in "US" or (y.dtype.kind == "O" and all(isinstance(v, str) for v in y)):
        return "text"
    raise DataError(f"{source}: {what} has dtype {y.dtype}; labels must be integers or strings")


def label_array(y: Any, what: str, n: int, source: str) -> np.ndarray:
    """A 1-D array of `n` labels (a column vector is taken as one), checked for kind; not yet numbered."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{source}: {what} must be a 1-D array of class labels, got shape {y.shape}")
    if len(y) != n:
        raise DataError(f"{source}: {what} has {len(y)} labels for {n} samples")
    _label_kind(y, what, source)
    return y


def encode_labels(parts: Sequence[tuple[str, np.ndarray]], source: str,
                  declared: Sequence[str] | None = None) -> tuple[list[np.ndarray], Classes]:
    """Each part's labels as int32 class indices, and the classes. The first part is the training labels: the
    classes are theirs alone, so a label of a later part (validation, test) that no training sample has is a
    `DataError` naming it and the part, and so is a training set of fewer than 2 classes. `declared` (a
    dataset's own class list) fixes K: labels must then be indices 0…K−1 already. Otherwise non-negative
    training integers that use at least half of 0…max are indices as they are (K = the training max + 1: a
    small file may lack a digit or two, and other parts may hold it); anything else (strings, by their
    exact text; negative or sparse integers such as 3, 7, 12) is numbered in sorted order of the training
    labels, and other parts may hold only those."""
    kinds = {_label_kind(y, what, source) for what, y in parts}
    if len(kinds) > 1:
        raise DataError(f"{source}: the labels mix numbers and strings; give one kind of class label")
    if declared is not None:
        k = len(declared)
        for what, y in parts:
            if y.size and (kinds != {"int"} or y.min() < 0 or y.max() >= k):
                raise DataError(f"{source}: {what} holds labels outside 0–{k - 1}")
        return [y.astype(np.int32) for _, y in parts], Classes(tuple(declared), False)
    ys = [(what, y.astype(np.int64) if kinds == {"int"} else y.astype(str)) for what, y in parts]
    values = np.unique(ys[0][1])
    _at_least_two(len(values), values, source)
    if kinds == {"int"} and values[0] >= 0 and values[-1] + 1 <= 2 * len(values):  # indices already
        k = int(values[-1]) + 1
        for what, y in ys[1:]:
            _only_training_labels(np.arange(k), y, what, source, values)
        return [y.astype(np.int32) for _, y in ys], Classes(tuple(str(i) for i in range(k)), False)
    for what, y in ys[1:]:
        _only_training_labels(values, y, what, source, values)
    return ([np.searchsorted(values, y).astype(np.int32) for _, y in ys],
            Classes(tuple(str(v.item()) for v in values), True))


def _at_least_two(k: int, values: np.ndarray, source: str) -> None:
    if k < 2:
        seen = f" (every label is {values[0].item()!r})" if k == 1 else ""
        raise DataError(f"{source}: the training labels hold {k} class{'es' if k != 1 else ''}{seen}; "
                        "a classifier needs at least 2")


def _only_training_labels(classes: np.ndarray, y: np.ndarray, what: str, source: str, training: np.ndarray) -> None:
    """Refuse a label of `y` that is not a class made from the training labels (`training`, sorted): for
    indices kept as they are, 0…K−1 with K − 1 the training maximum; otherwise the training labels alone."""
    unseen = np.setdiff1d(y, classes)
    if unseen.size:
        label = unseen[0].item()
        shown = ", ".join(repr(v.item()) if isinstance(v.item(), str) else str(v.item()) for v in training[:10])
        raise DataError(f"{source}: label {label!r} in {what} is not a training label (training labels: {shown}"
                        f"{', …' if len(training) > 10 else ''}); every class needs training samples")


# ---------------------------------------------------------------- inputs

class Scaling(NamedTuple):
    """What was done to the inputs, in words for the report, and a table's standardization statistics."""

    words: str
    mean: tuple[float, ...] = ()  # per feature, from the training split; () when not standardized
    std: tuple[float, ...] = ()


def input_array(x: Any, what: str, source: str) -> np.ndarray:
    """Samples × (features | height × width[ × channels]) of finite numbers, checked but not yet scaled."""
    x = np.asarray(x)
    if x.ndim not in (2, 3, 4):
        raise DataError(f"{source}: {what} must have shape (samples, features) or (samples, height, width[, channels]), "
                        f"got {x.shape}")
    if x.size == 0 and len(x) > 0:
        raise DataError(f"{source}: {what} has empty samples, shape {x.shape}")
    if x.dtype.kind not in "iuf":  # not np.issubdtype(…, np.integer): timedelta64 is an integer subtype there
        raise DataError(f"{source}: {what} has dtype {x.dtype}; expected uint8, integer or float values")
    if x.dtype.kind == "f" and x.size and not np.isfinite(x).all():
        raise DataError(f"{source}: {what} holds NaN or infinite values")
    return x


def scale_pixels(x: np.ndarray, what: str, source: str) -> np.ndarray:
    """uint8 (or integers within 0–255) → /255; floats already in [0, 1] are kept; anything else refused."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    if x.dtype.kind in "iu":
        if x.size and (x.min() < 0 or x.max() > 255):
            raise DataError(f"{source}: {what} holds integer pixels outside 0–255")
        return x.astype(np.float32) / np.float32(255.0)
    if x.size and (x.min() < 0 or x.max() > 1):
        raise DataError(f"{source}: {what} holds float pixels outside [0, 1] (give uint8 0–255 or floats in [0, 1])")
    return x.astype(np.float32)


def pixel_words(x: np.ndarray) -> str:
    return "pixels 0–255 divided by 255" if x.dtype.kind in "iu" else "pixels already in [0, 1], kept as they are"


def scale_table(train: np.ndarray, others: Sequence[np.ndarray], source: str = "data",
                whats: Sequence[str] = ("x_train", "x_val", "x_test"),
                features: Sequence[str] = ()) -> tuple[list[np.ndarray], Scaling]:
    """[train, *others] as float32: kept when every value of every split lies in [0, 1], else standardized
    per feature with the training split's mean and standard deviation (a constant feature: centred only).
    A standardized value float32 cannot hold is a `DataError` naming the feature (`features`: their names)
    and the split (`whats`), never an inf the network would train on."""
    parts = [train, *others]
    if all(p.size == 0 or (p.min() >= 0 and p.max() <= 1) for p in parts):
        return [p.astype(np.float32) for p in parts], Scaling("features already in [0, 1], kept as they are")
    t = train.astype(np.float64)
    mean, std = _mean_std(t) if len(t) else (np.zeros(t.shape[1]), np.ones(t.shape[1]))
    std = np.where(std > 0, std, 1.0)
    scaled = []
    for p, what in zip(parts, whats):
        with np.errstate(over="ignore", invalid="ignore"):
            z = (p.astype(np.float64) - mean) / std
        _check_float32(z, what, source, features, std)
        scaled.append(z.astype(np.float32))
    words = "standardized per feature with the training split's mean and standard deviation (never the validation or test split's)"
    return scaled, Scaling(words, tuple(float(m) for m in mean), tuple(float(s) for s in std))


#: The largest finite float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _mean_std(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation in float64. A column whose sum or squares overflow (values
    beyond about 1e154) is divided by its largest magnitude first and the results scaled back, so both are
    finite for any finite column; every other column is computed as it always was (the same bits)."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = t.mean(axis=0), t.std(axis=0)
    bad = ~(np.isfinite(mean) & np.isfinite(std))
    if bad.any():
        big = np.abs(t[:, bad]).max(axis=0)
        unit = t[:, bad] / big
        mean[bad], std[bad] = unit.mean(axis=0) * big, unit.std(axis=0) * big
    return mean, std


def _check_float32(z: np.ndarray, what: str, source: str, features: Sequence[str], std: np.ndarray) -> None:
    """Refuse a standardized value that is not finite in float32 (it would train as inf)."""
    bad = ~(np.abs(z) <= FLOAT32_MAX)  # NaN too
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        name = repr(features[col]) if col < len(features) else f"#{col + 1}"
        raise DataError(f"{source}: feature {name} of {what} (row {row + 1}) is beyond float32 once standardized "
                        f"({z[row, col]:.3g}; the training standard deviation is {std[col]:.3g}); rescale or drop the feature")
