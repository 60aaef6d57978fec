"""Collectives on tensors and arrays: all_reduce, and broadcasts of parameters, optimizer state
and picklable objects. Every rank must make the same calls in the same order (MPI's rule); in a
world of one each is the identity."""

from __future__ import annotations

import numpy as np

from ..grad_mode import no_grad
from ..tensor import Tensor
from .world import _World, check_root, init

_OPS = ("mean", "sum", "max", "min")


def all_reduce(tensor, op: str = "mean"):
    """x <- op over ranks of x (elementwise): mean (the default), sum, max or min, in place.

    A Tensor or a NumPy array is overwritten with the result and returned (its dtype kept: the
    mean of an integer or bool array, or the sum of a bool array, cannot be stored in place and
    is a TypeError; max and min of bools are any and all); a Python or NumPy number returns the
    reduced value (a float for the mean). Every rank must call it with arrays of the same shape
    and dtype.
    """
    if op not in _OPS:
        raise ValueError(f"all_reduce: op must be one of {', '.join(_OPS)}, got {op!r}")
    init()
    if isinstance(tensor, Tensor):
        array = tensor.numpy()
    elif isinstance(tensor, np.ndarray):
        array = tensor
    elif isinstance(tensor, (bool, np.bool_)) or not isinstance(tensor, (int, float,
                                                                         np.number)):
        raise TypeError(f"all_reduce: expected a Tensor, an ndarray or a number, got "
                        f"{type(tensor).__name__}")
    else:
        value = np.array([tensor], dtype=np.float64 if op == "mean" else None)
        all_reduce(value, op)
        return value[0].item()
    if op == "mean" and array.dtype.kind != "f":
        raise TypeError(f"all_reduce: the mean of a {array.dtype} array cannot be stored in "
                        "place; use op='sum' (or a floating array)")
    if array.dtype.kind not in "fiub":
        raise TypeError(f"all_reduce: cannot reduce an array of dtype {array.dtype}")
    if array.dtype.kind == "b" and op == "sum":
        raise TypeError("all_reduce: the sum of a bool array cannot be stored in place; use "
                        "op='max' (any) or 'min' (all), or an integer array")
    if _World.comm is None or _World.size == 1:
        return tensor
    MPI = _World.MPI
    if array.dtype.kind == "b":  # MPI defines logical, not arithmetic, operations on bools
        mpi_op = MPI.LOR if op == "max" else MPI.LAND
    else:
        mpi_op = {"mean": MPI.SUM, "sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
    contiguous = array.flags.c_contiguous or array.flags.f_contiguous
    work = array if contiguous else np.ascontiguousarray(array)
    _World.comm.Allreduce(MPI.IN_PLACE, work, op=mpi_op)
    if op == "mean":
        work /= _World.size
    if work is not array:
        array[...] = work
    if isinstance(tensor, Tensor):
        tensor._vc[0] += 1  # graphs that saved the old value can no longer backward
    return tensor


def broadcast_parameters(module_or_state, root: int = 0) -> None:
    """Copy root's values into every rank's tensors, in place: one Bcast per dtype.

    Accepts a Module (its parameters and buffers: its state_dict()), a dict of name -> Tensor or
    ndarray (a state_dict), or an iterable of tensors or of (name, tensor) pairs
    (named_parameters()). Call it after building the model and before training, so that every
    rank starts from the same weights whatever its seed. Ranks whose tensors differ in names,
    shapes or dtypes all raise ValueError (nothing is copied).
    """
    root = check_root(root, "broadcast_parameters")
    entries = _entries(module_or_state)
    if _World.comm is None or _World.size == 1:
        return
    comm, rank = _World.comm, _World.rank
    layout = [(name, a.shape, a.dtype.str) for name, _, a in entries]
    mismatch = _first_difference(layout, comm.bcast(layout, root=root))
    if comm.allreduce(mismatch is not None, op=_World.MPI.LOR):
        raise ValueError(f"broadcast_parameters: the ranks' tensors differ from rank {root}'s "
                         f"(names, shapes, dtypes): "
                         f"{mismatch or 'not on this rank, on another'}; nothing was copied")
    for dtype in sorted({a.dtype.str for _, _, a in entries}):
        group = [(target, a) for _, target, a in entries if a.dtype.str == dtype]
        flat = np.empty(sum(a.size for _, a in group), dtype=np.dtype(dtype))
        if rank == root:
            _pack(flat, [a for _, a in group])
        comm.Bcast(flat, root=root)
        if rank != root:
            _unpack(flat, group)


def broadcast_object(obj, root: int = 0):
    """root's `obj` on every rank (pickled): a resumed checkpoint, a run folder's name."""
    root = check_root(root, "broadcast_object")
    if _World.comm is None or _World.size == 1:
        return obj
    return _World.comm.bcast(obj, root=root)


def broadcast_optimizer_state(optimizer, root: int = 0) -> None:
    """Load root's optimizer.state_dict() into every rank's optimizer (options and state): after
    only root has read a checkpoint, or to make sure all ranks start alike."""
    root = check_root(root, "broadcast_optimizer_state")
    if _World.comm is None or _World.size == 1:
        return
    state = broadcast_object(optimizer.state_dict() if _World.rank == root else None, root)
    if _World.rank != root:
        optimizer.load_state_dict(state)


# ------------------------------------------------------------------------------------------


def _entries(source) -> list[tuple[str, object, np.ndarray]]:
    """[(name, target, array)] of a Module, a state dict or an iterable of (named) tensors,
    validated before anything is sent; target is what receiving ranks write into (the Tensor,
    so that its version counter moves, or the ndarray)."""
    from ..nn.module import Module  # nn builds on tensor; imported when first needed

    if isinstance(source, Module):
        source = source.state_dict()
    if isinstance(source, (Tensor, np.ndarray)):
        raise TypeError("broadcast_parameters: expected a Module, a state dict or an iterable "
                        f"of tensors, got a single {type(source).__name__} (wrap it in a list)")
    items = list(source.items()) if isinstance(source, dict) else list(source)
    entries = []
    for i, item in enumerate(items):
        name, value = item if isinstance(item, tuple) and len(item) == 2 else (str(i), item)
        if isinstance(value, Tensor):
            entries.append((str(name), value, value.numpy()))
        elif isinstance(value, np.ndarray):
            if not value.flags.writeable:
                raise ValueError(f"broadcast_parameters: array {name!r} is read-only")
            entries.append((str(name), value, value))
        else:
            raise TypeError(f"broadcast_parameters: {name!r} is a {type(value).__name__}, "
                            "expected a Tensor or an ndarray")
    return entries


def _first_difference(mine, theirs) -> str | None:
    if len(mine) != len(theirs):
        return f"{len(mine)} tensors here, {len(theirs)} on the root"
    for (name, shape, dtype), (rname, rshape, rdtype) in zip(mine, theirs, strict=True):
        if (name, tuple(shape), dtype) != (rname, tuple(rshape), rdtype):
            return (f"{name!r} {tuple(shape)} {np.dtype(dtype)} here, {rname!r} "
                    f"{tuple(rshape)} {np.dtype(rdtype)} on the root")
    return None


def _pack(flat: np.ndarray, arrays) -> None:
    offset = 0
    for a in arrays:
        flat[offset:offset + a.size] = a.reshape(-1)
        offset += a.size


def _unpack(flat: np.ndarray, targets) -> None:
    offset = 0
    with no_grad():
        for target, a in targets:
            value = flat[offset:offset + a.size].reshape(a.shape)
            if isinstance(target, Tensor):
                target.copy_(value)
            else:
                np.copyto(target, value)
            offset += a.size
