"""How many BLAS threads a training run uses.

Measured on this 2-core machine (BENCHMARKS.md, "BLAS threads for `retrograd train`"): with the
machine idle, a second thread gains nothing for the digits and MNIST-1D MLPs (8-15 M
multiply-adds per step) and 16-26% from 100 M up; with one busy process beside it, two threads
are 1.9-3.8x SLOWER at every size (each thread waits for the other at every product), one
thread loses nothing. So: one thread for small models, and for large ones as many threads as
there are idle cores when the run starts. `--threads N` overrides the choice.
"""

from __future__ import annotations

import contextlib
import os

# matrix-product work of one training step (multiply-adds, forward and backward) above which a
# second BLAS thread pays off on an idle machine
MULTI_THREAD_WORK = 40e6


def step_work(n_features: int, hidden: list[int], batch_size: int, n_classes: int = 10) -> float:
    """Multiply-adds of one step's matrix products: 3 per weight per sample (the forward
    product, the weight gradient and the input gradient)."""
    sizes = [n_features, *hidden, n_classes]
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    return 3.0 * weights * batch_size


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def idle_cores() -> float:
    """Cores not taken by other work: the cores minus the 1-minute load average."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this system: assume idle
        load = 0.0
    return cores() - load


def default_threads(n_features: int, hidden: list[int], batch_size: int,
                    ranks_here: int = 1, work: float | None = None) -> int:
    """1 for small models; for large ones this process's share of the idle cores: all of
    them, or // ranks_here when ranks_here MPI ranks share this node (each rank's batch_size is
    its shard of the global batch). On a 2-core node, 2 ranks get one thread each."""
    if work is None:
        work = step_work(n_features, hidden, batch_size)
    if work < MULTI_THREAD_WORK:
        return 1
    free = min(cores(), int(idle_cores() + 0.5))
    return max(1, free // max(1, ranks_here))


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


def resolve(threads: int | None, n_features: int, hidden: list[int], batch_size: int,
            ranks_here: int = 1, work: float | None = None) -> int:
    """The thread count a run uses: `threads`, or the default for this model and machine
    (`work`: the step's multiply-adds, when the model is not the MLP of `hidden`)."""
    if threads is not None:
        return threads
    return default_threads(n_features, hidden, batch_size, ranks_here, work)


def limited(threads: int | None, n_features: int, hidden: list[int], batch_size: int,
            ranks_here: int = 1, work: float | None = None):
    """blas_threads(resolve(...))."""
    return blas_threads(resolve(threads, n_features, hidden, batch_size, ranks_here, work))
