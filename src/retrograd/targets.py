"""The target algebra: what the cross-entropy is trained against.

The course's point is that the 0/1 one-hot target is only the simplest target distribution.
These functions build the others: smoothed targets, soft labels, and per-class weights that
re-balance an imbalanced dataset. Targets come back as float tensors (the default dtype unless
`dtype` is given) ready for `cross_entropy(logits, target)`, on the device of the labels or
targets they are made from (Python data: the default device), so that they meet the logits there.
"""

from __future__ import annotations

import math

from . import backend
from .backend import as_dtype, default_float
from .tensor import Tensor, _wrap


def _array(values):
    """The array behind a Tensor (on its device), or Python / NumPy data as a host array."""
    return values._data if isinstance(values, Tensor) else backend.from_data(values)


def _labels(labels, num_classes: int):
    y = _array(labels)
    if y.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got dtype {y.dtype}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, backend.INTEGER_TYPES) \
            or num_classes <= 0:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        raise ValueError(f"label {int(y[bad].reshape(-1)[0])} is outside [0, {num_classes})")
    return y


def _dtype(dtype):
    return as_dtype(dtype) if dtype is not None else default_float()


def _hot(y, num_classes: int):
    """y[..., None] == c for every class c: the one-hot pattern as booleans."""
    return y[..., None] == backend.of(y).arange(num_classes)


def one_hot(labels, num_classes: int, dtype=None) -> Tensor:
    """delta(c, y): 1 for the true class, 0 elsewhere; shape labels.shape + (num_classes,)."""
    return _wrap(_hot(_labels(labels, num_classes), num_classes).astype(_dtype(dtype)))


def smooth(targets, eps: float) -> Tensor:
    """(1 - eps) targets + eps / C, the uniform mixture (torch's label_smoothing convention:
    eps / C lands on the true class too), so that
    cross_entropy(x, smooth(one_hot(y, C), eps)) == cross_entropy(x, y, label_smoothing=eps)."""
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"smoothing eps must be in [0, 1], got {eps}")
    t = _array(targets)
    if t.dtype.kind != "f":
        t = t.astype(default_float())
    return _wrap(t * (1 - eps) + eps / t.shape[-1])


def soft_labels(labels, num_classes: int, positive: float = 0.9, negative: float = 0.1,
                dtype=None) -> Tensor:
    """The course's soft labels: `positive` for the true class and `negative` for every other
    (not normalized: with C classes a row sums to positive + (C - 1) negative)."""
    y = _labels(labels, num_classes)
    hot = _hot(y, num_classes)
    return _wrap(backend.of(y).where(hot, positive, negative).astype(_dtype(dtype)))


def class_counts(labels, num_classes: int):
    """How many samples each class has (int64, on the labels' device); raises for a class that
    never occurs (its weight would be infinite)."""
    y = _labels(labels, num_classes)
    xp = backend.of(y)
    values, counts = xp.unique(y.reshape(-1), return_counts=True)
    full = xp.zeros(num_classes, xp.int64)
    full[values] = counts
    missing = [c for c, n in enumerate(xp.to_numpy(full).tolist()) if n == 0]
    if missing:
        raise ValueError(f"class {missing[0]} never occurs in the labels, so it has no weight "
                         f"(classes without samples: {missing})")
    return full


def inverse_frequency_weights(labels, num_classes: int, dtype=None) -> Tensor:
    """w_c = N / (C n_c): the course's alpha_c, the inverse class frequency, scaled so a
    balanced dataset gets weight 1 everywhere (scikit-learn's 'balanced')."""
    counts = class_counts(labels, num_classes)
    return _wrap((counts.sum() / (num_classes * counts)).astype(_dtype(dtype)))


def effective_number_weights(labels, num_classes: int, beta: float = 0.999,
                             dtype=None) -> Tensor:
    """Class-balanced weights of Cui et al. (2019): w_c proportional to (1 - beta) / (1 - beta^n_c),
    the inverse 'effective number' of samples, normalized to sum to C. beta = 0 gives equal
    weights; beta -> 1 tends to inverse frequency."""
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    counts = class_counts(labels, num_classes)
    xp = backend.of(counts)
    if beta > 0:
        w = (1.0 - beta) / -xp.expm1(counts * math.log(beta))
    else:
        w = xp.ones(num_classes, xp.float64)
    return _wrap((w * num_classes / w.sum()).astype(_dtype(dtype)))
