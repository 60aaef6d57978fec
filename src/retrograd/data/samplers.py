"""Samplers: which rows an epoch visits. WeightedRandomSampler (torch's), and the course's
class-balanced sampling: "sampling uniformly the class first, then a sample belonging to it"."""

from __future__ import annotations

import numpy as np

from .. import random as _random
from ..tensor import Tensor


class WeightedRandomSampler:
    """num_samples indices drawn with probability proportional to `weights`."""

    def __init__(self, weights, num_samples: int, replacement: bool = True,
                 generator: np.random.Generator | None = None):
        w = np.asarray(weights.numpy() if isinstance(weights, Tensor) else weights,
                       dtype=np.float64)
        if w.ndim != 1 or w.size == 0:
            raise ValueError(f"weights must be a non-empty 1-D sequence, got shape {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("weights must be finite, non-negative and not all zero")
        if not isinstance(num_samples, (int, np.integer)) or num_samples <= 0:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        if not replacement and num_samples > np.count_nonzero(w):
            raise ValueError(f"cannot draw {num_samples} samples without replacement from "
                             f"{np.count_nonzero(w)} with non-zero weight")
        self.p = w / w.sum()
        self.num_samples, self.replacement = int(num_samples), replacement
        self.generator = generator

    def __iter__(self):
        rng = self.generator if self.generator is not None else _random.generator()
        return iter(rng.choice(len(self.p), size=self.num_samples, replace=self.replacement,
                               p=self.p).tolist())

    def __len__(self) -> int:
        return self.num_samples


class ClassBalancedSampler(WeightedRandomSampler):
    """Each draw picks a class uniformly, then a sample of that class uniformly: sample i gets
    weight 1 / (C n_{y_i}). An epoch has len(labels) draws unless num_samples says otherwise."""

    def __init__(self, labels, num_samples: int | None = None,
                 generator: np.random.Generator | None = None):
        y = np.asarray(labels.numpy() if isinstance(labels, Tensor) else labels)
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise ValueError(f"labels must be a 1-D integer sequence, got {y.dtype} {y.shape}")
        _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        weights = 1.0 / (len(counts) * counts[inverse])
        super().__init__(weights, num_samples or len(y), replacement=True, generator=generator)
