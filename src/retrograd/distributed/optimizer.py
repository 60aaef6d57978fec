"""DistributedOptimizer: Horovod's shape on mpi4py. Gradients are averaged across ranks before
each step in ONE Allreduce over a flat buffer of all gradients (split into buckets only when it
is larger than `bucket_bytes`), reused from step to step; then the wrapped optimizer steps, the
same update on every rank, so the weights stay equal without ever being sent.

Uneven batches: with step(local_batch_size=n) (or synchronize(n)) each rank's gradient is
weighted by its share of the global batch. A rank's gradient g_r is the mean over its n_r rows,
so the single process's mean over all rows is sum_r n_r g_r / sum_r n_r, not the plain average
of the g_r (digits' last batch of 15 rows on 2 ranks: 8 and 7 rows). The flat buffer carries n_r
in its tail, so the same Allreduce gives both sums. A rank with n = 0 (an empty shard of a last
batch) contributes nothing, whatever its .grad holds.
"""

from __future__ import annotations

import inspect
import time

import numpy as np

from ..functions import from_numpy
from ..grad_mode import enable_grad
from ..optim.optimizer import Optimizer
from .world import _World, init

DEFAULT_BUCKET_BYTES = 64 << 20  # Horovod's fusion threshold

# the buffer's tail, after the gradients: n_r, whether n_r was given, one has-gradient count per
# parameter, then the caller's scalars
_N, _GIVEN, _FLAGS = 0, 1, 2


class _Layout:
    """Where each parameter's gradient lives in the flat buffers (one per dtype), reused across
    steps while the parameters stay the same."""

    def __init__(self, params: list, n_scalars: int):
        self.params = params
        self.n_scalars = n_scalars
        dtypes = sorted({p.dtype.str for p in params}, key=lambda d: np.dtype(d).itemsize)
        # the tail rides in the widest floating buffer (a float64 one of its own if none)
        tail_dtype = np.dtype(dtypes[-1]) if dtypes else np.dtype(np.float64)
        self.tail_size = 2 + len(params) + n_scalars
        sizes = {d: 0 for d in dtypes}
        self.slots = []  # (param, dtype, start, stop, order)
        for p in params:
            a = p.numpy()
            # the parameter's own memory order, the same on every rank: gradients in that order
            # are copied without a transpose
            order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
            start = sizes[a.dtype.str]
            sizes[a.dtype.str] += a.size
            self.slots.append((p, a.dtype.str, start, start + a.size, order))
        if tail_dtype.str not in sizes:
            sizes[tail_dtype.str] = 0
        self.tail_dtype = tail_dtype.str
        self.tail_start = sizes[tail_dtype.str]
        sizes[tail_dtype.str] += self.tail_size
        self.buffers = {d: np.zeros(n, dtype=np.dtype(d)) for d, n in sizes.items()}

    def tail(self) -> np.ndarray:
        return self.buffers[self.tail_dtype][self.tail_start:]


class DistributedOptimizer(Optimizer):
    """optimizer.step() on gradients averaged over all ranks (Horovod's DistributedOptimizer).

    g <- sum_r n_r g_r / sum_r n_r when every rank passes local_batch_size=n_r, else
    g <- (1/N) sum_r g_r; then the wrapped optimizer's step. Everything else (param_groups,
    state, zero_grad, state_dict, load_state_dict, schedulers) is the wrapped optimizer's, so a
    checkpoint is the same as a single process's and resumes with any number of ranks.

    Per step, on every rank:  opt.zero_grad(); loss.backward(); opt.step(local_batch_size=n).
    To clip (or check) the averaged gradients, call opt.synchronize(local_batch_size=n) after
    backward, clip, then opt.step(): a step already synchronized does not reduce again.
    Optimizers that re-evaluate the loss inside step() (LBFGS, NewtonCG) are a TypeError.
    """

    def __init__(self, optimizer: Optimizer, *, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        if isinstance(optimizer, DistributedOptimizer):
            raise TypeError("DistributedOptimizer: the optimizer is already distributed")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"DistributedOptimizer: expected a retrograd Optimizer, got "
                            f"{type(optimizer).__name__}")
        closure = inspect.signature(type(optimizer).step).parameters.get("closure")
        if closure is not None and closure.default is inspect.Parameter.empty:
            raise TypeError(f"DistributedOptimizer: {type(optimizer).__name__} evaluates the "
                            "loss several times inside step(); averaging the gradients once "
                            "per step does not apply to it")
        if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, int) \
                or bucket_bytes <= 0:
            raise ValueError(f"DistributedOptimizer: bucket_bytes must be a positive integer, "
                             f"got {bucket_bytes!r}")
        init()
        # not Optimizer.__init__: the groups and the state are the wrapped optimizer's own
        self.__dict__["optimizer"] = optimizer
        self.bucket_bytes = bucket_bytes
        self._layout: _Layout | None = None
        self._layout_key: tuple | None = None
        self._synchronized = False
        self._synchronized_n = None
        self.allreduce_seconds = 0.0  # time inside Allreduce (waiting for peers included)
        self.allreduce_calls = 0

    # the wrapped optimizer's state, seen through this one (schedulers write group['lr'])
    @property
    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value) -> None:
        self.optimizer.param_groups = value

    @property
    def state(self) -> dict:
        return self.optimizer.state

    @state.setter
    def state(self, value) -> None:
        self.optimizer.state = value

    @property
    def defaults(self) -> dict:
        return self.optimizer.defaults

    @defaults.setter
    def defaults(self, value) -> None:
        self.optimizer.defaults = value

    def __getattr__(self, name: str):
        if name == "optimizer":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def add_param_group(self, group: dict) -> None:
        self.optimizer.add_param_group(group)

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.optimizer.load_state_dict(state_dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none)
        self._synchronized = False

    def __repr__(self) -> str:
        return f"DistributedOptimizer({self.optimizer!r})"

    # ------------------------------------------------------------------------------ stepping
    def step(self, closure=None, *, local_batch_size: int | None = None):
        """Synchronize the gradients (unless synchronize() already did, for this step), then
        step the wrapped optimizer; returns closure()'s loss if a closure is given (it runs
        first, on this rank's rows)."""
        _check_batch_size(local_batch_size)
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        if not self._synchronized:
            self.synchronize(local_batch_size)
        elif local_batch_size is not None and local_batch_size != self._synchronized_n:
            raise ValueError(f"step: local_batch_size={local_batch_size} but this step was "
                             f"synchronized with local_batch_size={self._synchronized_n}")
        self._synchronized = False
        self.optimizer.step()
        return loss

    def synchronize(self, local_batch_size: int | None = None, scalars=None) -> np.ndarray:
        """Replace every .grad by its average over the ranks (weighted by local_batch_size when
        given: see the class docstring); returns the sums over ranks of `scalars`.

        scalars (a short sequence of numbers, e.g. [loss * n, correct]) travel in the same
        Allreduce, so the loop gets global metrics, and a loss that is not finite on any rank
        is seen by all, at no extra cost. They are summed in the gradients' widest dtype
        (float32 for a float32 model: about 7 significant digits) and returned as float64.
        A parameter that has no gradient on any rank keeps .grad None on all of them.
        Every rank must call it with local_batch_size given or not, and as many scalars.
        """
        _check_batch_size(local_batch_size)
        values = np.zeros(0) if scalars is None else np.asarray(scalars, dtype=np.float64)
        if values.ndim > 1:
            raise ValueError(f"synchronize: scalars must be a flat sequence of numbers, got "
                             f"shape {values.shape}")
        values = values.ravel()
        params = [p for group in self.param_groups for p in group["params"]
                  if p.requires_grad]
        if _World.comm is None or _World.size == 1:
            if local_batch_size == 0:
                for p in params:
                    p.grad = None  # no rows anywhere: nothing to learn from
            self._mark(local_batch_size)
            return values.copy()
        layout = self._layout_for(params, values.size)
        self._pack(layout, local_batch_size, values)
        self._allreduce(layout)
        tail = layout.tail()
        total, given = float(tail[_N]), int(round(float(tail[_GIVEN])))
        if 0 < given < _World.size:
            raise ValueError(f"synchronize: local_batch_size was given on {given} of "
                             f"{_World.size} ranks; give it on every rank or on none")
        self._unpack(layout, total if given else float(_World.size))
        self._mark(local_batch_size)
        return tail[_FLAGS + len(params):].astype(np.float64)

    def _mark(self, local_batch_size) -> None:
        self._synchronized, self._synchronized_n = True, local_batch_size

    def _layout_for(self, params: list, n_scalars: int) -> _Layout:
        key = (n_scalars, *((id(p), p.shape, p.dtype.str) for p in params))
        if key != self._layout_key:
            self._layout, self._layout_key = _Layout(params, n_scalars), key
        return self._layout

    def _pack(self, layout: _Layout, n: int | None, scalars: np.ndarray) -> None:
        tail = layout.tail()
        for i, (p, dtype, start, stop, order) in enumerate(layout.slots):
            segment = layout.buffers[dtype][start:stop]
            grad = p.grad
            if grad is None or n == 0:
                segment.fill(0)
                tail[_FLAGS + i] = 0
                continue
            g = grad.numpy().ravel(order=order)  # a view when grad has the parameter's order
            if n is None:
                np.copyto(segment, g, casting="unsafe")
            else:
                np.multiply(g, n, out=segment, casting="unsafe")
            tail[_FLAGS + i] = 1
        tail[_N] = 1 if n is None else n
        tail[_GIVEN] = 0 if n is None else 1
        tail[_FLAGS + len(layout.slots):] = scalars

    def _allreduce(self, layout: _Layout) -> None:
        MPI, comm = _World.MPI, _World.comm
        t0 = time.perf_counter()
        for buffer in layout.buffers.values():
            step = max(self.bucket_bytes // buffer.itemsize, 1)
            for start in range(0, buffer.size, step):
                comm.Allreduce(MPI.IN_PLACE, buffer[start:start + step], op=MPI.SUM)
                self.allreduce_calls += 1
        self.allreduce_seconds += time.perf_counter() - t0

    def _unpack(self, layout: _Layout, divisor: float) -> None:
        tail = layout.tail()
        for i, (p, dtype, start, stop, order) in enumerate(layout.slots):
            if tail[_FLAGS + i] == 0 or divisor == 0:
                p.grad = None  # no rank had a gradient (or no rank had rows)
                continue
            segment = layout.buffers[dtype][start:stop]
            grad = p.grad
            if grad is None or grad.dtype != p.dtype or grad.shape != p.shape:
                out = np.empty_like(p.numpy())  # the parameter's memory order
                np.divide(segment.reshape(p.shape, order=order), divisor, out=out)
                p.grad = from_numpy(out)
                continue
            g = grad.numpy()
            view = g.ravel(order=order)
            if np.shares_memory(view, g):
                np.divide(segment, divisor, out=view)
            else:  # a gradient in another memory order: copy through a reshape
                np.divide(segment.reshape(p.shape, order=order), divisor, out=g)


def _check_batch_size(n) -> None:
    if n is None:
        return
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"local_batch_size must be an int (this rank's rows in the step), got "
                        f"{type(n).__name__}")
    if n < 0:
        raise ValueError(f"local_batch_size must be >= 0, got {n}")
