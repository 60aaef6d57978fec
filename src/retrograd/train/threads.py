"""How many BLAS threads a training run uses.

Two BLAS threads on two cores are fast while the machine is idle and collapse when another busy
process shares the cores (each thread waits for the other at every product); one thread never
collapses. For small models the second thread gains little even when idle, so small models get
one thread; large ones get every core. The measurements behind the threshold are in
BENCHMARKS.md ("BLAS threads for `retrograd train`"); `--threads N` overrides the choice.
"""

from __future__ import annotations

import contextlib
import os

# matrix-product work of one training step (multiply-adds, forward and backward) above which a
# second BLAS thread pays off (BENCHMARKS.md: measured on digits, MNIST-1D and MNIST-sized MLPs)
MULTI_THREAD_WORK = 40e6


def step_work(n_features: int, hidden: list[int], batch_size: int, n_classes: int = 10) -> float:
    """Multiply-adds of one step's matrix products: 3 per weight per sample (the forward
    product, the weight gradient and the input gradient)."""
    sizes = [n_features, *hidden, n_classes]
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    return 3.0 * weights * batch_size


def default_threads(n_features: int, hidden: list[int], batch_size: int,
                    ranks_here: int = 1) -> int:
    """1 for small models, else this process's share of the cores it may use: all of them,
    or cores // ranks_here when ranks_here MPI ranks share this node (each rank's batch_size
    is its shard of the global batch). On a 2-core node, 2 ranks get one thread each."""
    if step_work(n_features, hidden, batch_size) < MULTI_THREAD_WORK:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else os.cpu_count() or 1
    return max(1, cores // max(1, ranks_here))


@contextlib.contextmanager
def blas_threads(n: int | None):
    """Limit BLAS to n threads inside the block (threadpoolctl; nothing without it or for
    n None)."""
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


def limited(threads: int | None, n_features: int, hidden: list[int], batch_size: int,
            ranks_here: int = 1):
    """blas_threads(threads), or the default for this model size (and this many ranks on the
    node) when threads is None."""
    if threads is None:
        threads = default_threads(n_features, hidden, batch_size, ranks_here)
    return blas_threads(threads)
