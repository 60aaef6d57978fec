"""retrograd.distributed: data-parallel training over MPI, in Horovod's shape, on mpi4py.

    mpiexec -n 4 python train.py        # MPICH's mpiexec comes with the `mpi` extra

    import retrograd.distributed as dist
    dist.init()                                          # a world of one without mpiexec
    dist.broadcast_parameters(model, root=0)             # every rank starts from rank 0's weights
    opt = dist.DistributedOptimizer(retrograd.optim.SGD(model.parameters(), lr=0.1))
    loader = dist.GlobalBatchLoader(dataset, batch_size=128, shuffle=True)  # global batch
    for x, y in loader:                                  # this rank's rows of the batch
        opt.zero_grad()
        if len(y):
            loss_fn(model(x), y).backward()
        opt.step(local_batch_size=len(y))                # one Allreduce, weighted by rows
    if dist.get_rank() == 0: ...                         # write files from rank 0 only

mpi4py is imported only when an MPI launcher started the process. See docs/distributed.md.
"""

from .collectives import (
           all_reduce,
           broadcast_object,
           broadcast_optimizer_state,
           broadcast_parameters,
)
from .launch import find_mpiexec, mpiexec_argv
from .optimizer import DistributedOptimizer
from .sampler import (
           DistributedSampler,
           GlobalBatchLoader,
           check_batch_size,
           local_batch_sizes,
           shard_indices,
)
from .world import (
           abort,
           barrier,
           get_comm,
           get_local_rank,
           get_local_size,
           get_rank,
           get_world_size,
           init,
           is_initialized,
           is_root,
           launched_by_mpi,
)

__all__ = ["init", "is_initialized", "get_rank", "get_world_size", "get_local_rank",
           "get_local_size", "get_comm", "is_root", "launched_by_mpi", "barrier", "abort",
           "all_reduce", "broadcast_parameters", "broadcast_object", "broadcast_optimizer_state",
           "DistributedOptimizer", "DistributedSampler", "GlobalBatchLoader", "check_batch_size",
           "shard_indices", "local_batch_sizes", "find_mpiexec", "mpiexec_argv"]
