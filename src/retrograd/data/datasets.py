"""Embedded, offline datasets with fixed, documented train/test splits, and synthetic ones.

- digits: scikit-learn's load_digits (1797 8x8 images, 10 classes, shipped with scikit-learn),
  split 80/20 per class with seed 0: 1438 train / 359 test; samples of shape (1, 8, 8).
- mnist1d: generated procedurally by the mnist1d package (make_dataset(get_dataset_args()),
  never its download): 4000 train / 1000 test, 40 features, 10 classes (the paper's split);
  samples of shape (1, 40), one-channel signals.

Features are kept as rows (N, n_features), which is what an MLP reads; `Split.sample_shape`
records each sample's own shape (channels first) and `Split.images(x)` gives x in it, for
convolutions.
- spirals: interleaved 2-D spirals (any number of arms), optionally imbalanced by class ratios.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .errors import DataError


@dataclass
class Split:
    """A dataset with its fixed train/test split (float32 features, int64 labels).

    class_names: the name of each class index when the labels were names (a CSV's `cat`,
    `dog`: sorted, so class 0 is `cat`), None when they were integers.
    sample_shape: the shape of one sample, channels first ((1, 8, 8) for digits, (1, 40) for
    MNIST-1D, (1, H, W) for IDX images); (n_features,) for a table (a CSV), which has none.
    Arrays given in that shape are flattened to rows, which the MLP path reads."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str] | None = None
    sample_shape: tuple[int, ...] | None = None

    def __post_init__(self):
        shape = np.shape(self.x_train)[1:]
        self.x_train = np.ascontiguousarray(self.x_train, dtype=np.float32)
        self.x_test = np.ascontiguousarray(self.x_test, dtype=np.float32)
        if self.x_train.ndim > 2:
            self.x_train = self.x_train.reshape(len(self.x_train), -1)
        if self.x_test.ndim > 2:
            self.x_test = self.x_test.reshape(len(self.x_test), -1)
        self.y_train = np.asarray(self.y_train, dtype=np.int64)
        self.y_test = np.asarray(self.y_test, dtype=np.int64)
        if self.sample_shape is None:  # (N, H, W): one-channel images; (N, C, H, W) as is
            self.sample_shape = sample_shape_of(shape)
        self.sample_shape = tuple(int(n) for n in self.sample_shape)
        if int(np.prod(self.sample_shape)) != self.x_train.shape[1]:
            raise ValueError(f"{self.name}: sample_shape {self.sample_shape} does not hold "
                             f"{self.x_train.shape[1]} features")

    @property
    def has_image_shape(self) -> bool:
        """Whether samples have channels and at least one spatial axis ((C, L) or (C, H, W))."""
        return len(self.sample_shape) in (2, 3)

    def images(self, x: np.ndarray) -> np.ndarray:
        """Rows of features as samples of sample_shape: (N, *sample_shape) (a view)."""
        x = np.asarray(x)
        return x.reshape(len(x), *self.sample_shape)

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_classes(self) -> int:
        if self.class_names is not None:
            return len(self.class_names)
        return int(max(self.y_train.max(initial=-1), self.y_test.max(initial=-1))) + 1


def sample_shape_of(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The channels-first sample shape of samples stored with `shape` (without the batch
    axis): (H, W) images have one channel, (C, H, W) keep theirs, rows of features are flat."""
    shape = tuple(int(n) for n in shape)
    if len(shape) == 2:
        return (1, *shape)
    if len(shape) >= 3:
        return shape
    return shape if shape else (1,)


def n_split_rows(fraction: float, n: int) -> int:
    """Rows of a class of n that stratified_split puts in the split of that fraction."""
    return int(round(fraction * n))


def min_rows_per_class(fraction: float) -> int:
    """The fewest rows a class needs so that stratified_split leaves it at least one row on
    each side: smallest n with 1 <= round(fraction * n) <= n - 1 (3 for 0.2)."""
    if not 0 < fraction < 1:
        raise ValueError(f"a split fraction must be in (0, 1), got {fraction}")
    # both sides need about 0.5 / side rows to round to one; start just below, step up
    n = max(2, int(0.5 / min(fraction, 1 - fraction)) - 1)
    while not 1 <= n_split_rows(fraction, n) <= n - 1:
        n += 1
    return n


def check_split_sizes(y: np.ndarray, fraction: float, where: str, split: str = "test",
                      class_names: list[str] | None = None) -> None:
    """Refuse (DataError, one line with the sizes) a stratified split of labels y that would
    leave some class without a row in the split or in the rest.

    Why every class, not only a non-empty split: a class absent from the test split has no
    recall (balanced accuracy and per-class metrics would report a metric of zero rows), and
    one absent from training cannot be learned. scikit-learn's stratified train_test_split
    refuses a class of one member for the same reason."""
    need = min_rows_per_class(fraction)
    classes, counts = np.unique(np.asarray(y), return_counts=True)
    short = [(int(c), int(n)) for c, n in zip(classes, counts, strict=True)
             if not 1 <= n_split_rows(fraction, n) <= n - 1]
    if not short:
        return
    c, n = min(short, key=lambda t: t[1])
    k = n_split_rows(fraction, n)
    label = repr(class_names[c]) if class_names is not None else str(c)
    more = f" ({len(short)} classes are that small)" if len(short) > 1 else ""
    raise DataError(f"{where}: {len(y)} rows; class {label} has {n}, which a {fraction:g} "
                    f"{split} split divides into {n - k} + {k}{more}; every class needs at "
                    f"least {need} rows so that both sides hold it")


def stratified_split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int):
    """Indices of a test split holding test_fraction of every class (rounded), seeded.
    Callers check the sizes first with check_split_sizes (a class may get no row)."""
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        test.append(members[:n_split_rows(test_fraction, len(members))])
    test = np.sort(np.concatenate(test))
    train = np.setdiff1d(np.arange(len(y)), test)
    return x[train], y[train], x[test], y[test]


def digits() -> Split:
    """scikit-learn's 8x8 digits: 1438 train / 359 test images (64 features, 10 classes)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return Split("digits", *stratified_split(data.data, data.target, 0.2, seed=0),
                 sample_shape=(1, 8, 8))


def mnist1d() -> Split:
    """MNIST-1D generated offline by its package: 4000 train / 1000 test, 40 features (a fresh
    copy each call; generated once per process)."""
    x, y, x_test, y_test = _mnist1d_arrays()
    return Split("mnist1d", x.copy(), y.copy(), x_test.copy(), y_test.copy(),
                 sample_shape=(1, 40))


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays():
    """The generation takes about 2 s and is deterministic: done once per process."""
    from mnist1d.data import get_dataset_args, make_dataset

    state = np.random.get_state()  # mnist1d seeds NumPy's global generator; leave it as it was
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(state)
    return data["x"], data["y"], data["x_test"], data["y_test"]


def spirals(n_samples: int = 1000, n_classes: int = 2, noise: float = 0.2,
            class_ratio=None, test_fraction: float = 0.25, seed: int = 0) -> Split:
    """Interleaved spirals in 2-D, one arm per class. class_ratio (e.g. (0.95, 0.05)) makes
    the classes imbalanced: n_samples are divided in those proportions."""
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    ratio = np.full(n_classes, 1.0 / n_classes) if class_ratio is None \
        else np.asarray(class_ratio, dtype=np.float64)
    if ratio.shape != (n_classes,) or np.any(ratio <= 0):
        raise ValueError(f"class_ratio must be {n_classes} positive numbers, got {class_ratio}")
    counts = np.maximum(2, np.round(n_samples * ratio / ratio.sum()).astype(int))
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c, n in enumerate(counts):
        r = np.sqrt(rng.uniform(0.05, 1.0, n))  # uniform density along the arm
        angle = 3 * np.pi * r + 2 * np.pi * c / n_classes
        arm = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
        xs.append(arm + noise * 0.1 * rng.standard_normal((n, 2)))
        ys.append(np.full(n, c))
    name = "spirals" if class_ratio is None else "imbalanced-spirals"
    y = np.concatenate(ys)
    check_split_sizes(y, test_fraction, f"{name}(n_samples={n_samples})")
    return Split(name, *stratified_split(np.concatenate(xs), y, test_fraction, seed))


def imbalanced_spirals(minority: float = 0.05, n_samples: int = 2000, seed: int = 0) -> Split:
    """Two spirals with a (1 - minority) / minority class ratio (95/5 by default)."""
    if not 0 < minority < 0.5:
        raise ValueError(f"minority must be in (0, 0.5), got {minority}")
    return spirals(n_samples, 2, class_ratio=(1 - minority, minority), seed=seed)


EMBEDDED = {"digits": digits, "mnist1d": mnist1d, "spirals": spirals,
            "imbalanced-spirals": imbalanced_spirals}
