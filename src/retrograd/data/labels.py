"""Class labels: integer class indices 0..C-1, or class names mapped to them.

A label column holds either numbers, each a class index, or names (`cat`, `dog`), mapped to
0..C-1 in sorted order; the names are kept so predictions and figures can show them. Every
problem is one DataError naming the value and the row, raised while loading.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import DataError

# Class indices must be below MAX_CLASSES. The number of classes C is the largest index + 1,
# and it sizes the output layer, the per-batch softmax (batch x C) and the C x C confusion
# matrix and its figure: at 4096 classes that matrix is 128 MiB of int64 counts (labels
# {0, 100000} once asked for 74.5 GiB). A label beyond this is an ID or a code, not a class
# index; such a column can be given as names (each distinct value becomes a class).
MAX_CLASSES = 4096
_MODEL = "the classes the model was trained on"


def integer_labels(y, where: str, first_row: int = 1) -> np.ndarray:
    """int64 class indices in [0, MAX_CLASSES) from integer or integral float labels;
    first_row numbers the rows in messages (2 for a CSV file, whose row 1 is the header)."""
    y = np.asarray(y)
    if y.dtype.kind == "b":
        return y.astype(np.int64)
    if y.dtype.kind not in "iuf":
        raise DataError(f"{where}: labels must be class indices (integers) or names, got "
                        f"dtype {y.dtype}")
    # checked in the labels' own dtype: a cast first would turn 1e30 or 2^63 into -2^63
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y)) | (y < 0) | (y >= MAX_CLASSES)
    else:
        bad = (y < 0) | (y >= MAX_CLASSES)
    if np.any(bad):
        i = int(np.flatnonzero(bad.ravel())[0])
        value = y.ravel()[i].item()
        shown = int(value) if isinstance(value, float) and value.is_integer() \
            and abs(value) < 2 ** 53 else value
        why = (f"is too large: class indices run from 0 to {MAX_CLASSES - 1}"
               if value >= MAX_CLASSES else "is not a non-negative integer")
        raise DataError(f"{where}: label {shown!r} at row {i + first_row} {why}")
    return y.astype(np.int64)


def _cell_is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def labels_from_text(cells: Sequence[str], where: str, first_row: int = 1,
                     class_names: Sequence[str] | None = None, known_as: str = _MODEL
                     ) -> tuple[np.ndarray, list[str] | None]:
    """(int64 labels, class names or None) from a column of text cells.

    With class_names (a trained model's classes), each cell must be one of them. Otherwise
    all numbers are class indices (names None), and all non-numbers are names mapped to
    0..C-1 in sorted order; a mix of both is refused, as it is almost always a typo."""
    cells = [str(c).strip() for c in cells]
    empty = [i for i, c in enumerate(cells) if not c]
    if empty:
        raise DataError(f"{where}: the label at row {empty[0] + first_row} is empty")
    if class_names is not None:
        return map_names(cells, class_names, where, first_row, known_as), list(class_names)
    numeric = [_cell_is_number(c) for c in cells]
    if all(numeric):
        return integer_labels(np.array(cells, dtype=np.float64), where, first_row), None
    if any(numeric):
        i, j = numeric.index(True), numeric.index(False)
        raise DataError(f"{where}: labels mix numbers and names ({cells[i]!r} at row "
                        f"{i + first_row}, {cells[j]!r} at row {j + first_row}); use class "
                        "indices or names throughout")
    names = sorted(set(cells))
    if len(names) > MAX_CLASSES:
        raise DataError(f"{where}: {len(names)} distinct labels, more than {MAX_CLASSES} "
                        "classes (is this column an ID rather than a class?)")
    return map_names(cells, names, where, first_row), names


def map_names(cells: Sequence[str], class_names: Sequence[str], where: str,
              first_row: int = 1, known_as: str = _MODEL) -> np.ndarray:
    """Each cell's index in class_names; a cell not among them is one DataError naming it."""
    index = {name: i for i, name in enumerate(class_names)}
    out = np.empty(len(cells), dtype=np.int64)
    for r, cell in enumerate(cells):
        cell = str(cell).strip()
        if cell not in index:
            known = ", ".join(list(class_names)[:10]) + (", ..." if len(class_names) > 10
                                                         else "")
            raise DataError(f"{where}: label {cell!r} at row {r + first_row} is not one of "
                            f"{known_as} ({known})")
        out[r] = index[cell]
    return out


def labels_from_array(y: np.ndarray, where: str, first_row: int = 1,
                      class_names: Sequence[str] | None = None, known_as: str = _MODEL
                      ) -> tuple[np.ndarray, list[str] | None]:
    """(int64 labels, class names or None) from an array: numbers are class indices, strings
    (NumPy 'U' or 'S') are names, as in labels_from_text."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # a column vector: one label per row all the same
    if y.ndim != 1:
        raise DataError(f"{where}: labels must be one per row (1-D), got shape {y.shape}")
    if y.dtype.kind in "US":
        text = y.astype(str)
        return labels_from_text(list(text), where, first_row, class_names, known_as)
    if class_names is not None:
        shown = ", ".join(list(class_names)[:5]) + (", ..." if len(class_names) > 5 else "")
        raise DataError(f"{where}: labels are numbers, but {known_as} are names ({shown})")
    return integer_labels(y, where, first_row), None


def check_class_count(parts: Sequence[tuple[np.ndarray, str]], first_row: int = 1) -> None:
    """Training labels, given as (labels, where) parts: the largest label + 1 (the number of
    classes) must not exceed the number of rows in all parts together.

    A model has one output per class index up to the largest; with more indices than rows,
    most classes have no example to learn from or to test on, and the labels are IDs or codes,
    not class indices (labels {0, 100000} in 6 rows ask for 100001 outputs)."""
    rows = sum(len(y) for y, _ in parts)
    for y, where in parts:
        if len(y) and int(y.max()) + 1 > rows:
            i = int(np.argmax(y))
            raise DataError(f"{where}: label {int(y[i])} at row {i + first_row} makes "
                            f"{int(y[i]) + 1} classes, more than the {rows} rows of data; "
                            "labels must be class indices 0..C-1 (or class names)")
