"""Datasets and DataLoader with torch's names.

A dataset is map-style, as in torch: anything with `__len__` and `__getitem__(i)` returning
one sample (an array, a number, a tuple or dict of those); `Dataset` is the base class to
subclass, and a plain list of samples works too. DataLoader draws the indices (shuffled by
retrograd's seeded generator or a given numpy Generator, or a sampler's order), fetches the
samples and stacks them with `default_collate` (or your `collate_fn`) into batches of tensors.
TensorDataset gathers a whole batch in one indexing step (`batch(indices)`), which DataLoader
uses instead of fetching sample by sample.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .. import random as _random
from ..tensor import Tensor, _wrap


class Dataset:
    """A map-style dataset: subclass it and define `__getitem__(index)` (one sample) and
    `__len__()`, as with torch.utils.data.Dataset."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


class TensorDataset(Dataset):
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


def _stack(values: list) -> Tensor:
    """Samples of one field stacked on a new first axis, as one tensor."""
    arrays = [v.numpy() if isinstance(v, Tensor) else v for v in values]
    if all(isinstance(a, bool) for a in arrays):
        return _wrap(np.asarray(arrays, dtype=np.bool_))
    if all(isinstance(a, numbers.Integral) for a in arrays):
        return _wrap(np.asarray(arrays, dtype=np.int64))
    if all(isinstance(a, numbers.Real) and not isinstance(a, np.generic) for a in arrays):
        return _wrap(np.asarray(arrays, dtype=np.float64))  # torch's choice for Python floats
    arrays = [np.asarray(a) for a in arrays]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"default_collate: samples of one field have different shapes "
                         f"{sorted(shapes, key=str)[:3]}; pad them or give a collate_fn")
    if arrays and arrays[0].dtype.kind not in "biuf":
        raise TypeError(f"default_collate: cannot batch samples of dtype {arrays[0].dtype} "
                        "(give a collate_fn)")
    return _wrap(np.stack(arrays) if arrays else np.zeros((0,)))


def default_collate(samples: Sequence):
    """A list of samples as one batch, as torch's default_collate: arrays, tensors and numbers
    are stacked into a tensor with a new first axis (Python ints become int64 and floats
    float64, as in torch; arrays keep their dtype); tuples and lists are collated field by
    field into a list of batches (as torch does; a namedtuple stays one), dicts key by key;
    strings are kept as a list."""
    if not len(samples):
        raise ValueError("default_collate: no samples")
    first = samples[0]
    if isinstance(first, str):
        return list(samples)
    if isinstance(first, Mapping):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        sizes = {len(s) for s in samples}
        if len(sizes) > 1:
            raise ValueError(f"default_collate: samples have different numbers of fields "
                             f"{sorted(sizes)}")
        fields = [default_collate([s[i] for s in samples]) for i in range(len(first))]
        if isinstance(first, tuple) and hasattr(first, "_fields"):  # a namedtuple keeps its type
            return type(first)(*fields)
        return fields  # torch gives a list for tuples too
    return _stack(list(samples))


def default_convert(sample):
    """One sample with its NumPy arrays and scalars as tensors, as torch's default_convert
    (what DataLoader(batch_size=None) yields): tuples become lists, dicts and lists are
    converted entry by entry, strings and Python numbers are kept."""
    if isinstance(sample, (np.ndarray, np.generic)) and sample.dtype.kind in "biufc":
        return _wrap(np.asarray(sample))
    if isinstance(sample, Mapping):
        return {key: default_convert(value) for key, value in sample.items()}
    if isinstance(sample, tuple) and hasattr(sample, "_fields"):
        return type(sample)(*(default_convert(v) for v in sample))
    if isinstance(sample, (tuple, list)):
        return [default_convert(v) for v in sample]
    return sample


class DataLoader:
    """Iterate over a dataset in batches.

    shuffle draws a new permutation each epoch from `generator` (a numpy Generator; default:
    retrograd's global one, so manual_seed makes epochs reproducible). A sampler (an iterable of
    indices, such as WeightedRandomSampler) replaces the order; it excludes shuffle. Samples are
    fetched with dataset[i] and stacked by collate_fn (default_collate); a dataset with a
    `batch(indices)` method (TensorDataset) is asked for whole batches instead. batch_size=None
    yields the samples one by one, unbatched, through collate_fn or default_convert.
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool = False,
                 sampler: Iterable[int] | None = None, drop_last: bool = False,
                 generator: np.random.Generator | None = None,
                 collate_fn: Callable | None = None):
        if batch_size is not None and (not isinstance(batch_size, (int, np.integer))
                                       or isinstance(batch_size, bool) or batch_size <= 0):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: the dataset must have __len__ and __getitem__ (a "
                            f"map-style dataset), got {type(dataset).__name__}")
        if batch_size is None and drop_last:
            raise ValueError("batch_size=None (no batching) is mutually exclusive with "
                             "drop_last")
        self.dataset = dataset
        self.batch_size = None if batch_size is None else int(batch_size)
        self.shuffle, self.sampler, self.drop_last = shuffle, sampler, drop_last
        self.generator, self.collate_fn = generator, collate_fn

    def _order(self) -> np.ndarray:
        if self.sampler is not None:
            return np.fromiter(iter(self.sampler), dtype=np.int64)
        if self.shuffle:
            rng = self.generator if self.generator is not None else _random.generator()
            return rng.permutation(len(self.dataset))
        return np.arange(len(self.dataset))

    def fetch(self, indices: np.ndarray):
        """The batch of the samples at `indices`."""
        if self.collate_fn is None:
            gather = getattr(self.dataset, "batch", None)
            if gather is not None:
                return gather(indices)
        collate = self.collate_fn or default_collate
        return collate([self.dataset[int(i)] for i in indices])

    def __iter__(self) -> Iterator:
        order = self._order()
        if self.batch_size is None:
            convert = self.collate_fn or default_convert
            for i in order:
                yield convert(self.dataset[int(i)])
            return
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            yield self.fetch(order[start:start + self.batch_size])

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
