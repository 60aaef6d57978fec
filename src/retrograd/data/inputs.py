"""A trained model's inputs: a labeled file to evaluate, whole, and the features to predict.

Both read labels with the model's own mapping: class indices, or, when the model was trained
on class names, the names (class_names), so `cat` means the class it meant in training.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .errors import DataError
from .formats import (
    column_labels,
    feature_matrix,
    idx_pair,
    numeric_columns,
    read_labeled_csv,
    read_npz,
    read_table,
)
from .labels import labels_from_array


def _no_new_names(classes, class_names, where: str) -> None:
    """Names in a file read for a model trained on class indices: refused, since mapping them
    by this file's own sorted order would silently give them whatever index they land on."""
    if classes is not None and class_names is None:
        raise DataError(f"{where}: labels are names ({', '.join(classes[:3])}"
                        f"{', ...' if len(classes) > 3 else ''}), but the model was trained on "
                        "class indices (no class_names given)")


def _check_classes(y: np.ndarray, n_classes: int | None, where: str, first_row: int) -> None:
    if n_classes is not None and len(y) and int(y.max()) >= n_classes:
        i = int(np.argmax(y))
        raise DataError(f"{where}: label {int(y[i])} at row {i + first_row} is not a class of "
                        f"the model (0 to {n_classes - 1})")


def load_labeled(path: str, label_column: str | None = None,
                 class_names: Sequence[str] | None = None,
                 n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a labeled file, whole, for evaluation: no split.

    - CSV (header row; the label is the last column unless label_column names it): every row.
    - NPZ: `x_test`, `y_test` when the file has them (its own test part, like an IDX folder's
      t10k files; `x`, `y` are then the training part), else `x`, `y`.
    - a folder of IDX files: the t10k (test) files.
    class_names: the model's classes when it was trained on names (labels are looked up in
    it); None when it was trained on class indices. n_classes: the model's number of classes;
    a label at or above it is refused. At least one row; DataError (one line) otherwise."""
    path = os.fspath(path)
    if os.path.isdir(path):
        if class_names is not None:
            raise DataError(f"{path}: IDX labels are numbers, but the model was trained on "
                            "class names")
        x, y = idx_pair(path, "t10k")
        _check_classes(y, n_classes, path, 1)
        return x, y
    if not os.path.exists(path):
        raise DataError(f"no such file or folder: {path}")
    if path.endswith(".npz"):
        arrays = read_npz(path)
        xk, yk = ("x_test", "y_test") if "x_test" in arrays and "y_test" in arrays \
            else ("x", "y")
        x = feature_matrix(arrays[xk], f"{path} {xk!r}")
        where, first_row = f"{path} {yk!r}", 1
        y, classes = labels_from_array(arrays[yk], where, first_row, class_names)
    elif path.endswith(".csv") or path.endswith(".txt"):
        x, y, classes = read_labeled_csv(path, label_column, class_names)
        where, first_row = path, 2
    else:
        raise DataError(f"{path}: unknown data format (expected .csv, .npz or a folder of IDX "
                        "files)")
    _no_new_names(classes, class_names, where)
    if len(x) != len(y):
        raise DataError(f"{path}: {len(x)} samples but {len(y)} labels")
    if len(y) == 0:
        raise DataError(f"{path}: no rows to evaluate")
    _check_classes(y, n_classes, where, first_row)
    return x, y


def _looks_like_data(row: list[str]) -> bool:
    def number(cell: str) -> bool:
        try:
            float(cell)
        except ValueError:
            return False
        return True

    return all(number(cell) for cell in row)


def read_features(path: str, n_features: int, header: bool = True,
                  label_column: str | None = None, class_names: Sequence[str] | None = None,
                  n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(x, y or None): the rows to predict, with exactly the model's n_features columns, or
    those plus a label column (dropped from x and returned as y, to report accuracy).

    CSV: with header=True the first row names the columns (a first row of numbers is refused:
    it is data, read it with header=False); the label column is label_column when the file
    has it (a file of exactly n_features columns needs none), else the last of n_features + 1
    columns. NPZ: `x`, and `y` if present. Labels are read as in
    load_labeled (class_names, n_classes). DataError (one line) on any mismatch."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"no such file: {path}")
    if path.endswith(".npz"):
        arrays = read_npz(path, required=("x",))
        x = feature_matrix(arrays["x"], f"{path} 'x'")
        if x.shape[1] != n_features:
            raise DataError(f"{path}: 'x' has {x.shape[1]} features per row, the model "
                            f"expects {n_features}")
        if "y" not in arrays:
            return x, None
        y, classes = labels_from_array(arrays["y"], f"{path} 'y'", 1, class_names)
        _no_new_names(classes, class_names, f"{path} 'y'")
        if len(y) != len(x):
            raise DataError(f"{path}: {len(x)} rows in 'x' but {len(y)} labels in 'y'")
        _check_classes(y, n_classes, f"{path} 'y'", 1)
        return x, y
    if not (path.endswith(".csv") or path.endswith(".txt")):
        raise DataError(f"{path}: expected a .csv or .npz file")
    names, values = read_table(path, header)
    if header and _looks_like_data(names):
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise DataError(f"{path}: the first row ({shown}) is all numbers, so it is data, not a "
                        "header; if the file has no header row, read it with header=False "
                        "(--no-header)")
    first_row = 2 if header else 1
    if header and label_column is not None and label_column in names:
        index = names.index(label_column)
        if len(names) - 1 != n_features:
            raise DataError(f"{path} has {len(names) - 1} feature columns besides the label "
                            f"column {label_column!r}, the model expects {n_features}")
    elif len(names) == n_features:
        index = None  # features only (a model's label column need not be there)
    elif len(names) == n_features + 1:
        if label_column is not None:  # the extra column is not the one named
            raise DataError(f"{path} has {len(names)} columns, one more than the model's "
                            f"{n_features} features, but " + (
                                f"no column named {label_column!r} (the label)" if header
                                else f"no header to find the label column {label_column!r}"))
        index = len(names) - 1
    else:
        raise DataError(f"{path} has {len(names)} columns, the model expects {n_features} "
                        f"feature columns (or {n_features + 1}: the features, then a label)")
    features = [c for c in range(len(names)) if c != index]
    x = feature_matrix(numeric_columns(values, names, features, path, first_row), path)
    if index is None:
        return x, None
    y, classes = column_labels(values, names, index, path, first_row, class_names)
    _no_new_names(classes, class_names, path)
    _check_classes(y, n_classes, path, first_row)
    return x, y
