"""User data from a path: CSV (header; the label in the last column unless named), NPZ (arrays
`x`, `y`, optionally `x_test`, `y_test`) and IDX (MNIST / Fashion-MNIST files, gzipped or not).

Labels are class indices 0..C-1 or class names (mapped to indices in sorted order; see
labels.py). Every problem raises DataError (a ValueError) naming the file, the row or column
and the value, before anything is trained or written.
"""

from __future__ import annotations

import csv
import gzip
import os
import warnings
import zipfile
from collections.abc import Sequence

import numpy as np

from .datasets import Split, check_split_sizes, sample_shape_of, stratified_split
from .errors import DataError
from .labels import check_class_count, integer_labels, labels_from_array, labels_from_text

__all__ = ["DataError", "feature_matrix", "read_csv", "read_csv_features", "read_npz",
           "read_idx", "load_path"]


def feature_matrix(x: np.ndarray, where: str) -> np.ndarray:
    """float32 (rows, features) of finite numbers; anything else is one DataError line."""
    x = np.asarray(x)
    if x.dtype.kind not in "iufb":
        raise DataError(f"{where}: features must be numbers, got dtype {x.dtype}")
    if x.ndim == 0:
        raise DataError(f"{where}: features must be one row per sample, got a single value")
    x = x.reshape(len(x), -1).astype(np.float32)
    bad = ~np.isfinite(x)
    if np.any(bad):
        row, col = np.argwhere(bad)[0]
        raise DataError(f"{where}: row {row + 1}, feature {col + 1} is {x[row, col]} "
                        "(NaN or infinite values are not allowed)")
    return x


_features = feature_matrix  # the old private name, still used by cli.py


# ---------------------------------------------------------------------------------- CSV files

_ENCODING = "utf-8-sig"  # UTF-8, and a leading byte-order mark (Excel's "CSV UTF-8") dropped

def read_table(path: str, header: bool = True) -> tuple[list[str], np.ndarray]:
    """(column names, cells) of a CSV file: cells is float64 when every cell is a number, and
    str otherwise. Without a header the columns are named "column 1", "column 2"..."""
    path = os.fspath(path)
    try:
        with open(path, newline="", encoding=_ENCODING) as f:
            first = [h.strip() for h in next(csv.reader(f), [])]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read CSV file {path}: {exc}") from None
    if not first:
        raise DataError(f"{path}: empty file" + (" (a CSV file needs a header row)" if header
                                                 else ""))
    names = first if header else [f"column {i + 1}" for i in range(len(first))]
    skip = 1 if header else 0
    values = _loadtxt(path, skip, np.float64)  # NumPy's C parser: fast for MNIST-sized files
    if values is None or values.shape[1:] != (len(names),):
        values = _loadtxt(path, skip, str)  # names in a column (class labels)
    if values is None or values.shape[1:] != (len(names),):
        values = _parse_slowly(path, skip, names)  # to name the row that does not fit
    if len(values) == 0:
        raise DataError(f"{path}: a CSV file needs at least one data row"
                        + (" after the header" if header else ""))
    return names, values


def _loadtxt(path: str, skip: int, dtype) -> np.ndarray | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no data": reported by the caller, as an error
            text = dtype is str  # a '#' may be part of a class name, quotes may wrap it
            return np.loadtxt(path, delimiter=",", ndmin=2, dtype=dtype, skiprows=skip,
                              encoding=_ENCODING, quotechar='"' if text else None,
                              comments=None if text else "#")
    except (ValueError, OSError, UnicodeDecodeError):
        return None


def _parse_slowly(path: str, skip: int, names: list[str]) -> np.ndarray:
    try:
        with open(path, newline="", encoding=_ENCODING) as f:
            rows = [r for r in csv.reader(f) if r][skip:]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read CSV file {path}: {exc}") from None
    for r, row in enumerate(rows, start=skip + 1):
        if len(row) != len(names):
            raise DataError(f"{path}: row {r} has {len(row)} fields, "
                            + (f"the header has {len(names)}" if skip else
                               f"the first row has {len(names)}"))
    return np.array(rows, dtype=str).reshape(len(rows), len(names))


def numeric_columns(values: np.ndarray, names: list[str], columns: Sequence[int], path: str,
                    first_row: int) -> np.ndarray:
    """float64 cells of the given columns; a cell that is not a number, or NaN, is one
    DataError naming its row and column."""
    cells = values[:, list(columns)]
    if cells.dtype.kind != "f":
        try:
            cells = np.char.strip(cells).astype(np.float64)
        except ValueError:  # cell by cell, to name the first that is not a number
            converted = np.empty(cells.shape, dtype=np.float64)
            for r, row in enumerate(cells):
                for c, cell in enumerate(row):
                    try:
                        converted[r, c] = float(cell)
                    except ValueError:
                        raise DataError(f"{path}: row {r + first_row}, column "
                                        f"{names[columns[c]]!r}: {str(cell)!r} is not a "
                                        "number") from None
            cells = converted
    if np.isnan(cells).any():
        r, c = np.argwhere(np.isnan(cells))[0]
        raise DataError(f"{path}: row {r + first_row}, column {names[columns[c]]!r} is NaN")
    return cells


def label_index(names: list[str], label_column: str | None, path: str) -> int:
    """The label column's index: the named one, else the last."""
    if label_column is None:
        return len(names) - 1
    if label_column not in names:
        raise DataError(f"{path}: no column named {label_column!r} (columns: "
                        f"{', '.join(names)})")
    return names.index(label_column)


def column_labels(values: np.ndarray, names: list[str], column: int, path: str,
                  first_row: int, class_names: Sequence[str] | None = None
                  ) -> tuple[np.ndarray, list[str] | None]:
    """(labels, class names or None) of one column of read_table's cells."""
    where = f"{path}, column {names[column]!r}"
    if values.dtype.kind == "f":
        return labels_from_array(values[:, column], where, first_row, class_names)
    return labels_from_text(list(values[:, column]), where, first_row, class_names)


def read_labeled_csv(path: str, label_column: str | None = None,
                     class_names: Sequence[str] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """(features, labels, class names or None) from a CSV file with a header row."""
    path = os.fspath(path)
    names, values = read_table(path)
    if len(names) < 2:
        raise DataError(f"{path}: a labeled CSV file needs feature columns and a label "
                        f"column, it has {len(names)} column")
    index = label_index(names, label_column, path)
    y, classes = column_labels(values, names, index, path, 2, class_names)
    feature_columns = [c for c in range(len(names)) if c != index]
    x = numeric_columns(values, names, feature_columns, path, 2)
    return feature_matrix(x, path), y, classes


def read_csv(path: str, label_column: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) from a CSV file with a header row; class names become indices in
    sorted order (read_labeled_csv also returns the names)."""
    x, y, _ = read_labeled_csv(path, label_column)
    return x, y


def read_csv_features(path: str) -> tuple[np.ndarray, list[str]]:
    """(features, header) from a CSV file whose every column is a feature (no label)."""
    names, values = read_table(path)
    return feature_matrix(numeric_columns(values, names, range(len(names)), path, 2), path), names


# ------------------------------------------------------------------------------ NPZ and IDX

def read_npz(path: str, required: Sequence[str] = ("x", "y")) -> dict[str, np.ndarray]:
    """name -> array of an NPZ archive (never unpickled), which must hold `required`."""
    path = os.fspath(path)
    # np.load also reads .npy files and, refused here, pickles: an NPZ file is a zip archive
    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        raise DataError(f"cannot read NPZ file {path}: it is not an NPZ (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read NPZ file {path}: {' '.join(str(exc).split())}") from None
    missing = [k for k in required if k not in arrays]
    if missing:
        raise DataError(f"{path}: an NPZ file needs arrays {' and '.join(map(repr, required))}"
                        f" (found: {', '.join(arrays) or 'none'})")
    return arrays


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """An IDX array (the MNIST format): magic 0, 0, type code, number of dimensions."""
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: IDX header cut short")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(shape, dtype=object)) * dtype.itemsize:
        raise DataError(f"{path}: IDX header says shape {shape} but the file holds "
                        f"{len(raw) - offset} bytes of data")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape)


def idx_file(folder: str, stem: str) -> str:
    """The path of an IDX file in folder under any of its usual names."""
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                 stem.replace("-idx", ".idx") + ".gz"):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise DataError(f"{folder}: no file {stem}[.gz] (an IDX folder holds train-images-idx3-ubyte, "
                    "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte)")


def idx_pair(folder: str, part: str) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of an IDX folder's "train" or "t10k" files."""
    x, y, _ = idx_images(folder, part)
    return x, y


def idx_images(folder: str, part: str) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """(features as rows, labels, the images' sample shape (1, H, W)) of an IDX folder's
    "train" or "t10k" files."""
    images = idx_file(folder, f"{part}-images-idx3-ubyte")
    labels = idx_file(folder, f"{part}-labels-idx1-ubyte")
    raw = read_idx(images)
    x, y = feature_matrix(raw, images), integer_labels(read_idx(labels), labels)
    _check_pair(x, y, folder)
    return x, y, sample_shape_of(raw.shape[1:])


# ------------------------------------------------------------------------- a dataset to train

def load_path(path: str, label_column: str | None = None, test_fraction: float = 0.2,
              seed: int = 0) -> Split:
    """A Split from a CSV or NPZ file (split 80/20 stratified, seeded, unless the NPZ has
    x_test / y_test) or a folder of IDX files (MNIST's own train / t10k split).

    Labels are class indices (the largest + 1 at most the number of rows, and below
    labels.MAX_CLASSES) or class names (Split.class_names, sorted; the test labels must be
    among the training ones). A split that would leave a class without a row on either side
    is refused (check_split_sizes)."""
    path = os.fspath(path)
    name = os.path.basename(os.path.normpath(path))
    if os.path.isdir(path):
        x, y, shape = idx_images(path, "train")
        x_test, y_test, test_shape = idx_images(path, "t10k")
        if test_shape != shape:
            raise DataError(f"{path}: the train images are {shape[1:]}, the t10k images "
                            f"{test_shape[1:]}")
        split = Split(name, x, y, x_test, y_test, sample_shape=shape)
        check_class_count([(y, idx_file(path, "train-labels-idx1-ubyte")),
                           (y_test, idx_file(path, "t10k-labels-idx1-ubyte"))])
        _check_widths(split, path)
        return split
    if not os.path.exists(path):
        raise DataError(f"no such file or folder: {path}")
    if path.endswith(".npz"):
        arrays = read_npz(path)
        shape = sample_shape_of(np.shape(arrays["x"])[1:])
        x = feature_matrix(arrays["x"], f"{path} 'x'")
        y, classes = labels_from_array(arrays["y"], f"{path} 'y'")
        _check_pair(x, y, path)
        if "x_test" in arrays and "y_test" in arrays:
            x_test = feature_matrix(arrays["x_test"], f"{path} 'x_test'")
            y_test, _ = _test_labels(arrays["y_test"], classes, f"{path} 'y_test'")
            _check_pair(x_test, y_test, path, "test ")
            check_class_count([(y, f"{path} 'y'"), (y_test, f"{path} 'y_test'")])
            split = Split(name, x, y, x_test, y_test, classes, sample_shape=shape)
            _check_widths(split, path)
            if np.shape(arrays["x_test"])[1:] != np.shape(arrays["x"])[1:]:
                raise DataError(f"{path}: 'x' holds samples of shape {np.shape(arrays['x'])[1:]}"
                                f", 'x_test' of shape {np.shape(arrays['x_test'])[1:]}")
            return split
        check_class_count([(y, f"{path} 'y'")])
        check_split_sizes(y, test_fraction, path, "test", classes)
        return Split(name, *stratified_split(x, y, test_fraction, seed), classes,
                     sample_shape=shape)
    elif path.endswith(".csv") or path.endswith(".txt"):
        x, y, classes = read_labeled_csv(path, label_column)
        check_class_count([(y, path)], first_row=2)
    else:
        raise DataError(f"{path}: unknown data format (expected .csv, .npz or a folder of IDX "
                        "files)")
    check_split_sizes(y, test_fraction, path, "test", classes)
    return Split(name, *stratified_split(x, y, test_fraction, seed), classes)


def _test_labels(y_test, classes, where):
    """Test labels read with the training labels' mapping: names only if training has names."""
    y_test = np.asarray(y_test)
    if classes is None and y_test.dtype.kind in "US":
        raise DataError(f"{where}: test labels are names but the training labels ('y') are "
                        "numbers")
    return labels_from_array(y_test, where, 1, classes, known_as="the training labels ('y')")


def _check_pair(x: np.ndarray, y: np.ndarray, where: str, what: str = "") -> None:
    if len(x) != len(y):
        raise DataError(f"{where}: {len(x)} {what}samples but {len(y)} {what}labels")
    if len(x) < 2:
        raise DataError(f"{where}: need at least 2 {what}samples, got {len(x)}")


def _check_widths(split: Split, where: str) -> None:
    if split.x_train.shape[1] != split.x_test.shape[1]:
        raise DataError(f"{where}: train has {split.x_train.shape[1]} features, test has "
                        f"{split.x_test.shape[1]}")
