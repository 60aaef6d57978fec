"""TensorDataset and DataLoader with torch's names: batches of (inputs, targets) tensors, shuffled
by retrograd's seeded generator (or a given numpy Generator), optionally through a sampler."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from .. import random as _random
from ..tensor import Tensor, _wrap


class TensorDataset:
    """Arrays (or tensors) of equal first dimension, indexed together."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one array")
        self.arrays = [t.numpy() if isinstance(t, Tensor) else np.asarray(t) for t in tensors]
        n = len(self.arrays[0])
        for i, a in enumerate(self.arrays):
            if len(a) != n:
                raise ValueError(f"TensorDataset: array {i} has {len(a)} rows, array 0 has {n}")

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(_wrap(a[index]) for a in self.arrays)

    def batch(self, indices: np.ndarray) -> tuple[Tensor, ...]:
        """The rows at `indices`, gathered in one step (what DataLoader uses)."""
        return tuple(_wrap(a[indices]) for a in self.arrays)


class DataLoader:
    """Iterate over a dataset in batches.

    shuffle draws a new permutation each epoch from `generator` (a numpy Generator; default:
    retrograd's global one, so manual_seed makes epochs reproducible). A sampler (an iterable of
    indices, such as WeightedRandomSampler) replaces the order; it excludes shuffle.
    """

    def __init__(self, dataset: TensorDataset, batch_size: int = 1, shuffle: bool = False,
                 sampler: Iterable[int] | None = None, drop_last: bool = False,
                 generator: np.random.Generator | None = None):
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.sampler, self.drop_last = shuffle, sampler, drop_last
        self.generator = generator

    def _order(self) -> np.ndarray:
        if self.sampler is not None:
            return np.fromiter(iter(self.sampler), dtype=np.int64)
        if self.shuffle:
            rng = self.generator if self.generator is not None else _random.generator()
            return rng.permutation(len(self.dataset))
        return np.arange(len(self.dataset))

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        order = self._order()
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            yield self.dataset.batch(order[start:start + self.batch_size])

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
