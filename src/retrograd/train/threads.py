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


def default_threads(n_features: int, hidden: list[int], batch_size: int) -> int:
    """1 for small models, else every core this process may use."""
    if step_work(n_features, hidden, batch_size) < MULTI_THREAD_WORK:
        return 1
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)


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


def limited(threads: int | None, n_features: int, hidden: list[int], batch_size: int):
    """blas_threads(threads), or the default for this model size when threads is None."""
    if threads is None:
        threads = default_threads(n_features, hidden, batch_size)
    return blas_threads(threads)
