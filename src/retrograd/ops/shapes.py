"""Reductions, shapes and indexing: sum, amax, reshape, transpose, broadcast_to and its adjoint
sum_to, getitem and its adjoint scatter_add, cat; and the shape helpers they share."""

from __future__ import annotations

from ..backend import INTEGER_TYPES
from .registry import primitive


def kept_shape(shape: tuple[int, ...], axis) -> tuple[int, ...]:
    """The shape a reduction over `axis` has with keepdims=True."""
    if axis is None:
        return (1,) * len(shape)
    axes = {a % len(shape) for a in ((axis,) if isinstance(axis, int) else axis)}
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def sum_to(x, shape: tuple[int, ...]):
    """Sum `x` down to `shape`: the adjoint of broadcasting `shape` up to x.shape."""
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1
    )
    return x.sum(axis=axes, keepdims=True).reshape(shape)


def _is_basic_index(index) -> bool:
    """True for indices made of ints, slices, None and Ellipsis: they never repeat an element."""
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (*INTEGER_TYPES, slice)) or i is None or i is Ellipsis
               for i in items)


def _scatter_add(xp, g, shape: tuple[int, ...], index):
    """zeros(shape) with g added at `index`; repeated indices accumulate."""
    out = xp.zeros(shape, dtype=g.dtype)
    if _is_basic_index(index):
        out[index] = g
    else:
        xp.scatter_add(out, index, g)
    return out


def _amax_share(x, out, axis):
    """Each maximal element's share of the gradient: ties split it evenly, as torch.amax does."""
    hit = x == out.reshape(kept_shape(x.shape, axis))
    return hit / hit.sum(axis=axis, keepdims=True, dtype=x.dtype)


def _inverse_permutation(axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(range(len(axes)), key=axes.__getitem__))


def _cat_vjp(ops, g, out, *xs, axis, arg):
    start = sum(x.shape[axis] for x in xs[:arg])
    index = [slice(None)] * g.ndim
    index[axis] = slice(start, start + xs[arg].shape[axis])
    return ops.getitem(g, index=tuple(index))


# reductions
primitive("sum", lambda xp, x, axis=None, keepdims=False: xp.sum(x, axis=axis, keepdims=keepdims),
          lambda ops, g, out, x, axis=None, keepdims=False:
              ops.broadcast_to(g.reshape(kept_shape(x.shape, axis)), shape=x.shape))
primitive("amax",
          lambda xp, x, axis=None, keepdims=False: xp.amax(x, axis=axis, keepdims=keepdims),
          lambda ops, g, out, x, axis=None, keepdims=False:
              g.reshape(kept_shape(x.shape, axis)) * _amax_share(ops.raw(x), ops.raw(out), axis))

# shapes and indexing
primitive("reshape", lambda xp, x, shape: x.reshape(shape),
          lambda ops, g, out, x, shape: ops.reshape(g, shape=x.shape))
primitive("transpose", lambda xp, x, axes: xp.transpose(x, axes),
          lambda ops, g, out, x, axes: ops.transpose(g, axes=_inverse_permutation(axes)))
primitive("broadcast_to", lambda xp, x, shape: xp.broadcast_to(x, shape),
          lambda ops, g, out, x, shape: ops.sum_to(g, shape=x.shape))
primitive("sum_to", lambda xp, x, shape: sum_to(x, shape),
          lambda ops, g, out, x, shape: ops.broadcast_to(g, shape=x.shape))
primitive("getitem", lambda xp, x, index: x[index],
          lambda ops, g, out, x, index: ops.scatter_add(g, shape=x.shape, index=index))
primitive("scatter_add", _scatter_add,
          lambda ops, g, out, x, shape, index: ops.getitem(g, index=index))
primitive("cat", lambda xp, *xs, axis=0: xp.concatenate(xs, axis=axis), _cat_vjp, variadic=True)
