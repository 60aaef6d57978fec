"""Which rows each rank reads.

DistributedSampler is torch's: each rank gets a fixed shard of a (seeded) permutation for the
whole epoch, padded to equal shards by repeating rows. GlobalBatchLoader is what data-parallel
training uses to reproduce the single process exactly: every rank walks the SAME sequence of
global batches (the order a DataLoader would draw) and reads its own slice of each, so the
union of the ranks' slices of step j is the single process's batch j, the last (short) one
included, and nothing is repeated.

The slice rule (shard_indices): rank r takes rows r, r + N, r + 2N, ... of the global batch.
When the batch size B divides by N, every rank gets B / N rows, the same rows torch's
DistributedSampler with a DataLoader of batch B / N would give it on that order. A short last
batch of m rows gives the first m mod N ranks ceil(m / N) rows and the others floor(m / N),
which is 0 on some ranks when m < N: those ranks step with an empty shard (the optimizer
weights each rank by its rows, see DistributedOptimizer).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np

from .. import random as _random
from .world import _World, get_rank, get_world_size


def _check_count(value, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _rank_and_size(rank, num_replicas, who: str) -> tuple[int, int]:
    num_replicas = get_world_size() if num_replicas is None else \
        _check_count(num_replicas, f"{who}: num_replicas", 1)
    rank = get_rank() if rank is None else _check_count(rank, f"{who}: rank", 0)
    if rank >= num_replicas:
        raise ValueError(f"{who}: invalid rank {rank}, rank should be in the interval "
                         f"[0, {num_replicas - 1}]")
    return rank, num_replicas


class DistributedSampler:
    """torch.utils.data.DistributedSampler: this rank's indices of an epoch, len(dataset) / N
    each (rounded up, padded by repeating the order from its start; with drop_last, rounded
    down and the tail dropped), shuffled with seed + epoch so that every rank draws the same
    permutation without communicating. Call set_epoch(epoch) before each epoch."""

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        rank, num_replicas = _rank_and_size(rank, num_replicas, "DistributedSampler")
        n = len(dataset)
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        if drop_last and n % num_replicas:
            # the largest equal shards that need no padding
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            order = np.arange(n)
        if self.total_size > n:
            order = np.resize(order, self.total_size)  # repeats the order cyclically
        else:
            order = order[:self.total_size]
        return iter(order[self.rank:self.total_size:self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """The epoch's permutation is drawn with seed + epoch: same on every rank, new each
        epoch."""
        self.epoch = int(epoch)


def check_batch_size(batch_size: int, world_size: int | None = None,
                     n_rows: int | None = None) -> int:
    """batch_size, or a ValueError (one line) when the global batch does not split into
    world_size equal shards, or when there are fewer rows than ranks."""
    world_size = get_world_size() if world_size is None else \
        _check_count(world_size, "world_size", 1)
    batch_size = _check_count(batch_size, "batch size", 1)
    if batch_size % world_size:
        below = batch_size - batch_size % world_size
        hint = f"{below} or {below + world_size}" if below else str(world_size)
        raise ValueError(f"batch size {batch_size} does not divide among {world_size} "
                         f"processes: the global batch is split into equal shards, use a "
                         f"multiple of {world_size} (e.g. {hint})")
    if n_rows is not None and n_rows < world_size:
        raise ValueError(f"{world_size} processes for {n_rows} training rows: every process "
                         f"needs at least one row, use at most {n_rows} processes")
    return batch_size


def local_batch_sizes(batch_len: int, world_size: int | None = None) -> list[int]:
    """The rows of each rank in a global batch of batch_len rows (shard_indices' rule)."""
    world_size = get_world_size() if world_size is None else \
        _check_count(world_size, "world_size", 1)
    batch_len = _check_count(batch_len, "batch_len", 0)
    return [len(range(r, batch_len, world_size)) for r in range(world_size)]


def shard_indices(indices, rank: int | None = None, world_size: int | None = None
                  ) -> np.ndarray:
    """This rank's part of a global batch: indices[rank::world_size] (see the module docstring
    for the rule and why)."""
    rank, world_size = _rank_and_size(rank, world_size, "shard_indices")
    return np.asarray(indices)[rank::world_size]


class GlobalBatchLoader:
    """DataLoader's batches, as this rank's shard of each global batch.

    Every rank computes the epoch's order exactly as DataLoader does (a permutation from
    `generator`, default retrograd's seeded global one; or the sampler's order; or 0..n-1),
    cuts it into global batches of batch_size rows, and yields dataset.batch(its shard) of
    each: len(loader) steps on every rank, some possibly with 0 rows in the last one. With
    sync_order (the default under MPI) rank 0's order is broadcast each epoch: a rank whose
    generator drifted (dropout drawing for a different number of rows) still reads its own
    rows. batch_size must divide among the ranks (check_batch_size).
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False,
                 sampler: Iterable[int] | None = None, drop_last: bool = False,
                 generator: np.random.Generator | None = None, *, rank: int | None = None,
                 num_replicas: int | None = None, sync_order: bool = True):
        rank, num_replicas = _rank_and_size(rank, num_replicas, "GlobalBatchLoader")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        self.batch_size = check_batch_size(batch_size, num_replicas)
        self.dataset, self.shuffle, self.sampler = dataset, shuffle, sampler
        self.drop_last, self.generator = drop_last, generator
        self.rank, self.num_replicas, self.sync_order = rank, num_replicas, sync_order

    @classmethod
    def from_loader(cls, loader, *, rank: int | None = None, num_replicas: int | None = None,
                    sync_order: bool = True) -> GlobalBatchLoader:
        """The same batches as a retrograd DataLoader (dataset, batch_size, shuffle, sampler,
        drop_last, generator), sharded."""
        return cls(loader.dataset, loader.batch_size, loader.shuffle, loader.sampler,
                   loader.drop_last, loader.generator, rank=rank, num_replicas=num_replicas,
                   sync_order=sync_order)

    def order(self) -> np.ndarray:
        """The epoch's global order of row indices (draws from the generator, as DataLoader)."""
        if self.sampler is not None:
            order = np.fromiter(iter(self.sampler), dtype=np.int64)
        elif self.shuffle:
            rng = self.generator if self.generator is not None else _random.generator()
            order = rng.permutation(len(self.dataset))
        else:
            order = np.arange(len(self.dataset))
        if self.sync_order and _World.comm is not None and _World.size > 1 \
                and self.num_replicas == _World.size:
            order = np.ascontiguousarray(order, dtype=np.int64)
            _World.comm.Bcast(order, root=0)
        return order

    def global_batches(self) -> Iterator[np.ndarray]:
        """The epoch's global batches of indices (the single process's batches)."""
        order = self.order()
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            yield order[start:start + self.batch_size]

    def __iter__(self):
        gather = getattr(self.dataset, "batch", None) or self.dataset.__getitem__
        for batch in self.global_batches():
            yield gather(batch[self.rank::self.num_replicas])

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
