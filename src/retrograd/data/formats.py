"""User data from a path: CSV (header; the label in the last column unless named), NPZ (arrays
`x`, `y`, optionally `x_test`, `y_test`) and IDX (MNIST / Fashion-MNIST files, gzipped or not).

Every problem raises DataError (a ValueError) naming the file, the row or column and the value,
before anything is trained or written.
"""

from __future__ import annotations

import csv
import gzip
import os
import warnings
import zipfile

import numpy as np

from .datasets import Split, stratified_split


class DataError(ValueError):
    """The data at a path cannot be used; the message says where and why."""


def _labels(y: np.ndarray, where: str, first_row: int = 1) -> np.ndarray:
    """Integer labels >= 0; first_row numbers the rows in the message (2 for a CSV file, whose
    row 1 is the header)."""
    y = np.asarray(y)
    if y.dtype.kind in "iu":
        bad = y < 0
    elif y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y)) | (y < 0)
    else:
        raise DataError(f"{where}: labels must be non-negative integers, got dtype {y.dtype}")
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where}: label {y[i].item()!r} at row {i + first_row} is not a "
                        "non-negative integer")
    return y.astype(np.int64)


def _features(x: np.ndarray, where: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "iuf":
        raise DataError(f"{where}: features must be numbers, got dtype {x.dtype}")
    x = x.reshape(len(x), -1).astype(np.float32)
    bad = ~np.isfinite(x)
    if np.any(bad):
        row, col = np.argwhere(bad)[0]
        raise DataError(f"{where}: row {row + 1}, feature {col + 1} is {x[row, col]} "
                        "(NaN or infinite values are not allowed)")
    return x


def read_csv(path: str, label_column: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) from a CSV file with a header row."""
    header, values = _read_csv_values(path)
    if label_column is None:
        label_index = len(header) - 1
    elif label_column in header:
        label_index = header.index(label_column)
    else:
        raise DataError(f"{path}: no column named {label_column!r} (columns: "
                        f"{', '.join(header)})")
    labels = _labels(values[:, label_index], f"{path}, column {header[label_index]!r}",
                     first_row=2)
    features = np.delete(values, label_index, axis=1)
    return _features(features, path), labels


def read_csv_features(path: str) -> tuple[np.ndarray, list[str]]:
    """(features, header) from a CSV file whose every column is a feature (no label)."""
    header, values = _read_csv_values(path)
    return _features(values, path), header


def _read_csv_values(path: str) -> tuple[list[str], np.ndarray]:
    try:
        with open(path, newline="") as f:
            header = [h.strip() for h in next(csv.reader(f), [])]
            try:  # NumPy's C parser first: fast for MNIST-sized files
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "no data": reported below, as an error
                    values = np.loadtxt(f, delimiter=",", ndmin=2, dtype=np.float64)
            except ValueError:
                values = None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read CSV file {path}: {exc}") from None
    if not header:
        raise DataError(f"{path}: empty file (a CSV file needs a header row)")
    if values is None or values.shape[1:] != (len(header),):
        values = _parse_csv_slowly(path, header)  # to name the bad row and column
    if len(values) == 0:
        raise DataError(f"{path}: a CSV file needs at least one data row after the header")
    if np.isnan(values).any():
        row, col = np.argwhere(np.isnan(values))[0]
        raise DataError(f"{path}: row {row + 2}, column {header[col]!r} is NaN")
    return header, values


def _parse_csv_slowly(path: str, header: list[str]) -> np.ndarray:
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r][1:]
    values = np.empty((len(rows), len(header)), dtype=np.float64)
    for r, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise DataError(f"{path}: row {r} has {len(row)} fields, the header has "
                            f"{len(header)}")
        for c, cell in enumerate(row):
            try:
                values[r - 2, c] = float(cell)
            except ValueError:
                raise DataError(f"{path}: row {r}, column {header[c]!r}: {cell!r} is not a "
                                "number") from None
    return values


def read_npz(path: str) -> dict[str, np.ndarray]:
    # np.load also reads .npy files and, refused here, pickles: an NPZ file is a zip archive
    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        raise DataError(f"cannot read NPZ file {path}: it is not an NPZ (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read NPZ file {path}: {exc}") from None
    for key in ("x", "y"):
        if key not in arrays:
            raise DataError(f"{path}: an NPZ file needs arrays 'x' and 'y' (found: "
                            f"{', '.join(arrays) or 'none'})")
    return arrays


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """An IDX array (the MNIST format): magic 0, 0, type code, number of dimensions."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(shape)) * dtype.itemsize:
        raise DataError(f"{path}: IDX header says shape {shape} but the file holds "
                        f"{len(raw) - offset} bytes of data")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape)


def _idx_file(folder: str, stem: str) -> str:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                 stem.replace("-idx", ".idx") + ".gz"):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise DataError(f"{folder}: no file {stem}[.gz] (an IDX folder holds train-images-idx3-ubyte, "
                    "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte)")


def load_path(path: str, label_column: str | None = None, test_fraction: float = 0.2,
              seed: int = 0) -> Split:
    """A Split from a CSV or NPZ file (split 80/20 stratified, seeded, unless the NPZ has
    x_test / y_test) or a folder of IDX files (MNIST's own train / t10k split)."""
    name = os.path.basename(os.path.normpath(path))
    if os.path.isdir(path):
        parts = {}
        for key, stem in (("x_train", "train-images-idx3-ubyte"),
                          ("y_train", "train-labels-idx1-ubyte"),
                          ("x_test", "t10k-images-idx3-ubyte"),
                          ("y_test", "t10k-labels-idx1-ubyte")):
            parts[key] = read_idx(_idx_file(path, stem))
        split = Split(name, _features(parts["x_train"], path), _labels(parts["y_train"], path),
                      _features(parts["x_test"], path), _labels(parts["y_test"], path))
        _check_rows(split, path)
        return split
    if not os.path.exists(path):
        raise DataError(f"no such file or folder: {path}")
    if path.endswith(".npz"):
        arrays = read_npz(path)
        x, y = _features(arrays["x"], path), _labels(arrays["y"], f"{path} 'y'")
        _check_pair(x, y, path)
        if "x_test" in arrays and "y_test" in arrays:
            split = Split(name, x, y, _features(arrays["x_test"], path),
                          _labels(arrays["y_test"], f"{path} 'y_test'"))
            _check_rows(split, path)
            return split
    elif path.endswith(".csv") or path.endswith(".txt"):
        x, y = read_csv(path, label_column)
    else:
        raise DataError(f"{path}: unknown data format (expected .csv, .npz or a folder of IDX "
                        "files)")
    return Split(name, *stratified_split(x, y, test_fraction, seed))


def _check_pair(x: np.ndarray, y: np.ndarray, where: str) -> None:
    if len(x) != len(y):
        raise DataError(f"{where}: {len(x)} samples but {len(y)} labels")
    if len(x) < 2:
        raise DataError(f"{where}: need at least 2 samples, got {len(x)}")


def _check_rows(split: Split, where: str) -> None:
    _check_pair(split.x_train, split.y_train, where)
    _check_pair(split.x_test, split.y_test, where)
    if split.x_train.shape[1] != split.x_test.shape[1]:
        raise DataError(f"{where}: train has {split.x_train.shape[1]} features, test has "
                        f"{split.x_test.shape[1]}")
