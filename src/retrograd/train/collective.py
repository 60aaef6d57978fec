"""The training loop's step when the job runs on several MPI ranks (fit.py calls it; the
single-process step does not go through here and pays nothing for it).

Each rank holds the whole model and takes every step of every epoch, on its shard of the
global batch (GlobalBatchLoader: rows rank, rank + N, ...; possibly none in a short last
batch). One step, on every rank:

    forward and backward on this rank's n rows (skipped when n == 0)
    opt.synchronize(local_batch_size=n, scalars=[n, loss * n, correct, SIGINT, SIGTERM])
        the one Allreduce of the step: the gradients weighted by rows, and the sums of the
        scalars, so every rank then holds the single process's gradient and the global loss
    a stop request on any rank       -> every rank raises KeyboardInterrupt here
    no rows on any rank              -> no step (every rank skipped the batch)
    the global loss not finite       -> every rank halts, before the update
    on_after_backward callbacks      (clipping sees the global gradient)
    a global gradient not finite     -> every rank halts, before the update
    opt.step()                       the same update on every rank

Every decision is taken on values that every rank holds (the Allreduce's sums, or the
synchronized gradients), so the ranks never disagree about whether to step, halt or stop. After
each epoch (its validation, computed on every rank, and its checkpoint) one more small
Allreduce exchanges the stop requests that arrived meanwhile.
"""

from __future__ import annotations

import math

import numpy as np

from . import interrupts
from .fit import _correct


def distribute(model, optimizer, loader, distributed: bool | None):
    """(optimizer, loader, collective) for fit: under MPI with several ranks (and distributed
    not False), the optimizer wrapped in DistributedOptimizer, a DataLoader replaced by its
    GlobalBatchLoader (the same global batches, sharded), rank 0's weights broadcast; else
    the arguments unchanged and no collective."""
    if distributed is False:
        return optimizer, loader, None
    from .. import distributed as dist
    from ..data.loader import DataLoader

    if dist.get_world_size() == 1:
        return optimizer, loader, None
    if not isinstance(optimizer, dist.DistributedOptimizer):
        optimizer = dist.DistributedOptimizer(optimizer)
    if isinstance(loader, DataLoader):
        loader = dist.GlobalBatchLoader.from_loader(loader)
    # any other loader is taken as this rank's own batches (the same number on every rank)
    dist.broadcast_parameters(model, root=0)
    return optimizer, loader, Collective()


class Collective:
    """The step and the end of an epoch of a loop that runs on every rank."""

    def step(self, loop, step: int, check_finite: bool) -> bool | None:
        """One step of loop (see the module docstring): True when the optimizer stepped, None
        when no rank had rows, False when a guard halted training."""
        x, *targets = loop.batch
        n = 0 if loop.skip_batch else (len(targets[0]) if targets else len(x))
        opt = loop.optimizer
        opt.zero_grad()
        loss_sum = correct = 0.0
        loop.out = loop.loss = None
        if n:
            loop.out = out = loop.model(x)
            loop.loss = loss = loop.loss_fn(out, *targets)
            value = float(loss.item())
            if math.isfinite(value):  # else the sum below is not finite: nothing to learn
                loss.backward()
            loss_sum = value * n
            if targets:
                correct = _correct(out, targets[0])
        n_all, loss_sum, correct, sigint, sigterm = opt.synchronize(
            local_batch_size=n, scalars=[n, loss_sum, correct, *interrupts.pending()])
        stop = interrupts.as_exception(sigint, sigterm)
        if stop is not None:
            interrupts.clear()
            raise stop
        if n_all == 0:
            return None
        loop.loss_value = value = loss_sum / n_all
        if not math.isfinite(value):
            loop.halt_on_loss(step, value)
            return False
        loop.hook("on_after_backward")
        if check_finite and not loop.gradients_finite():
            loop.halt_on_gradient(step, value)
            return False
        opt.step()
        loop.seen += int(round(n_all))
        loop.loss_sum += loss_sum
        loop.correct += int(round(correct))
        return True

    def end_epoch(self) -> None:
        """Exchange the stop requests that arrived since the last step (during validation or
        the checkpoint): all ranks raise, or none."""
        from .. import distributed as dist

        flags = dist.all_reduce(np.array(interrupts.pending(), dtype=np.int64), op="sum")
        stop = interrupts.as_exception(int(flags[0]), int(flags[1]))
        if stop is not None:
            interrupts.clear()
            raise stop
