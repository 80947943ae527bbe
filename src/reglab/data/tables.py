"""Data that are not ten-class image files: scikit-learn's bundled datasets (offline) and the user's CSV files.

Both end in `datasets.finish`, like every loader, so labels are numbered and inputs scaled by one rule.
A dataset that comes as one table is split stratified and seeded, and the split is stated: a fifth for
test (seed 0), then a share of the rest for validation (seed 1; a sixth unless `--validation-split`).
A CSV given with `--test-file` keeps that file as its test set and holds out the last share of the
training file for validation, as Keras's `validation_split` does.

A CSV's labels are read as text: they are integers when every label of every file (training and test) is
a canonical integer (7, -3, 12: no leading zeros, signs or decimals), else classes by their exact text, so
'7' and '007' are two classes. A header that names a column twice is refused (pandas would rename one).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from reglab.data.encoding import encode_labels, label_array
from reglab.data.splits import LAST_SIXTH_SPLIT, DataOptions, Splits, finish, one_line, stratified_holdout
from reglab.errors import DataError
from reglab.inputs import brief, open_regular

TEST_FRACTION = 0.2
VALIDATION_FRACTION = 1 / 6
#: A CSV larger than this is refused before pandas reads it.
MAX_CSV_BYTES = 2 << 30

#: name → (scikit-learn loader, what it is, how its inputs are put on [0, 1] when they are images)
BUNDLED = {
    "digits": ("load_digits", "8×8 images of handwritten digits, 10 classes", 16.0),
    "breast_cancer": ("load_breast_cancer", "30 features of breast-mass images, 2 classes", None),
    "wine": ("load_wine", "13 chemical features of wines, 3 classes", None),
}


def held_out_split(labels: np.ndarray, validation_split: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(train, validation, test) indices of one table, and the sentence that states the split."""
    fraction = VALIDATION_FRACTION if validation_split is None else validation_split
    rest, test = stratified_holdout(labels, TEST_FRACTION, seed=0)
    keep, val = stratified_holdout(labels[rest], fraction, seed=1)
    train, val = rest[keep], rest[val]
    share = "a sixth" if validation_split is None else f"{fraction:g}"
    words = f"stratified and seeded: a fifth held out for test (seed 0), then {share} of the rest for validation (seed 1)"
    return train, val, test, words


def load_bundled(name: str, requested: str, options: DataOptions) -> Splits:
    """One of scikit-learn's bundled datasets: shipped inside the package, so it loads offline."""
    import sklearn
    import sklearn.datasets

    function, what, pixel_max = BUNDLED[name]
    bunch = getattr(sklearn.datasets, function)()
    x = np.asarray(bunch.images if pixel_max else bunch.data)
    y = np.asarray(bunch.target)
    names = tuple(str(n) for n in bunch.target_names)
    train, val, test, split = held_out_split(y, options.validation_split)
    scaling = None
    if pixel_max:  # digits: pixel values 0–16
        x = x.astype(np.float32) / np.float32(pixel_max)
        scaling = f"pixels 0–{pixel_max:g} divided by {pixel_max:g}"
    source = f"scikit-learn {sklearn.__version__} sklearn.datasets.{function}() ({what}; bundled, offline)"
    return finish(x[train], y[train], x[test], y[test], name=name, requested=requested, source=source, split=split,
                   val=(x[val], y[val]), classes=names, scaling=scaling)


# ---------------------------------------------------------------- CSV files

#: A label that is read as an integer: no sign but minus, no leading zero, at most 18 digits (fits int64).
_CANONICAL_INT = re.compile(r"-?(0|[1-9][0-9]{0,17})")


def _read_csv(path: Path, what: str, target: str) -> Any:
    """The CSV as a frame, its `target` column as text (see the module's docstring)."""
    import pandas as pd

    try:
        with open_regular(path, what, MAX_CSV_BYTES, DataError) as fh:
            _check_header(pd.read_csv(fh, header=None, nrows=1, dtype=str, keep_default_na=False), path)
            fh.seek(0)
            frame = pd.read_csv(fh, dtype={target: str})
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the {what} is empty (no header row, no data)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as e:
        raise DataError(f"{path}: not a readable CSV file ({one_line(e)})") from None
    if len(frame) == 0:
        raise DataError(f"{path}: the {what} has a header but no rows")
    return frame


def _check_header(first_row: Any, path: Path) -> None:
    """Refuse a header that names a column twice: pandas would read the second as `NAME.1`, silently."""
    names = [str(n) for n in first_row.iloc[0].tolist()] if len(first_row) else []
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name and name in seen:
            raise DataError(f"{path}: column {brief(name)} appears twice in the header (columns {seen[name] + 1} and "
                            f"{i + 1}); give each column its own name")
        seen.setdefault(name, i)


def _labels_as_read(columns: list[np.ndarray]) -> list[np.ndarray]:
    """The label columns of the training (and test) file: integers when every label is a canonical integer,
    else their exact text."""
    if all(_CANONICAL_INT.fullmatch(v) for y in columns for v in np.unique(y)):
        return [y.astype(np.int64) for y in columns]
    return columns


def _table(frame: Any, path: Path, target: str, columns: list[str] | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(features, labels, feature column names) of one CSV, every check named by row and column."""
    import pandas as pd

    names = [str(c) for c in frame.columns]
    if target not in names:
        raise DataError(f"{path}: no column {brief(target)} for --target (columns: {brief(', '.join(names), 200)})")
    features = [c for c in frame.columns if str(c) != target]
    if not features:
        raise DataError(f"{path}: no feature columns besides the target {brief(target)}")
    if columns is not None and [str(c) for c in features] != columns:
        raise DataError(f"{path}: the test file's feature columns ({brief(', '.join(map(str, features)), 200)}) are not "
                        f"the training file's ({brief(', '.join(columns), 200)})")
    missing = frame.isna()
    if missing.to_numpy().any():
        row, col = np.argwhere(missing.to_numpy())[0]
        raise DataError(f"{path}: missing value in row {row + 1} (line {row + 2} of the file), column "
                        f"{brief(str(frame.columns[col]))}; reglab does not impute: fill or drop it")
    for c in features:
        if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]):
            column = frame[c]
            bad = next((i for i, v in enumerate(column) if not _is_number(v)), 0)
            raise DataError(f"{path}: column {brief(str(c))} is not numeric (row {bad + 1}: {brief(column.iloc[bad])}); "
                            "reglab reads numeric feature columns only: encode it as numbers or drop it")
    y = frame[target].to_numpy().astype(str)  # read as text: missing values were refused above
    return frame[features].to_numpy(dtype=np.float64), y, [str(c) for c in features]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def load_csv(path: Path, requested: str, options: DataOptions) -> Splits:
    """A CSV file with a header row: `options.target` is the label column, every other column a numeric feature."""
    if not options.target:
        raise DataError(f"{path}: a CSV dataset needs --target COLUMN (TOML: target), the column of class labels")
    x, y, columns = _table(_read_csv(path, "CSV file", options.target), path, options.target, None)
    source = f"CSV file {path} (target column {options.target!r}, {len(columns)} numeric feature columns)"
    features = tuple(columns)
    if options.test_file:
        test_path = Path(options.test_file).expanduser()
        x_test, y_test, _ = _table(_read_csv(test_path, "test file", options.target), test_path, options.target, columns)
        y, y_test = _labels_as_read([y, y_test])
        return finish(x, y, x_test, y_test, name=path.name, requested=requested, source=f"{source}; test file {test_path}",
                       split=LAST_SIXTH_SPLIT, validation_split=options.validation_split, features=features,
                       label_names=("the training rows", "the validation rows (the training file's last)", "the test file"))
    (y,) = _labels_as_read([y])
    labels = label_array(y, options.target, len(y), str(path))
    (codes,), _ = encode_labels([(options.target, labels)], str(path))  # for stratifying; finish numbers them again
    train, val, test, split = held_out_split(codes, options.validation_split)
    return finish(x[train], y[train], x[test], y[test], name=path.name, requested=requested, source=source,
                   split=split, val=(x[val], y[val]), features=features,
                   label_names=("the training split", "the validation split", "the test split"))
