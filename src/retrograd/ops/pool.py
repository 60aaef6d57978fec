"""Pooling primitives: max and average over windows, 1-D to 3-D, with torch's padding, dilation
(max), ceil_mode, count_include_pad and divisor_override.

Both walk the kernel offsets of the convolution's window geometry (conv_cf.geometry: one strided
slice of the input per offset, the padding skipped by the slice ranges), so a pool costs
prod(kernel) elementwise passes over the output and no window copy. `padding` holds (lo, hi)
pairs: hi may exceed lo when ceil_mode adds a last, partial window.

max_pool keeps, per output, the kernel offset of its maximum (the first one on ties, and a NaN
wins, as in torch); its gradient goes to that input alone. avg_pool and avg_pool_backward are
each other's adjoints (both linear).
"""

from __future__ import annotations

import math

from .conv_cf import geometry
from .registry import primitive

_ALL = (slice(None), slice(None))


def _max_pool(xp, x, *, kernel, stride, padding, dilation):
    """(out, saved): the window maxima and, in saved["arg"], which offset held each."""
    out_shape, moves, _ = geometry(x.shape[2:], kernel, stride, padding, dilation)
    out = xp.full(x.shape[:2] + out_shape, -math.inf, dtype=x.dtype)
    arg = xp.zeros(out.shape, dtype=xp.int32)
    nan = bool(xp.any(xp.isnan(x)))  # one pass, so the common case pays no NaN test per move
    for j, (_, dst, src) in enumerate(moves):
        cand, best, taken = x[_ALL + src], out[_ALL + dst], arg[_ALL + dst]
        better = cand > best  # strictly: the first maximum keeps its place
        if nan:
            better |= xp.isnan(cand) & ~xp.isnan(best)
        xp.copyto(best, cand, where=better)
        xp.copyto(taken, j, where=better)
    return out, {"arg": arg}


def _overlapping(kernel, stride, dilation) -> bool:
    """Whether two windows can share an input position."""
    return any(s <= (k - 1) * d for k, s, d in zip(kernel, stride, dilation, strict=True))


def _max_pool_vjp(ops, g, out, x, *, kernel, stride, padding, dilation, saved=None):
    if saved is None:  # under create_graph: a scatter the table can differentiate
        arg = _max_pool(ops.xp, ops.raw(x), kernel=kernel, stride=stride, padding=padding,
                        dilation=dilation)[1]["arg"]
        index = _argmax_index(ops.xp, arg, x.shape, kernel, stride, padding, dilation)
        return ops.scatter_add(g, shape=x.shape, index=index)
    xp, arg = ops.xp, saved["arg"]
    _, moves, _ = geometry(x.shape[2:], kernel, stride, padding, dilation)
    gx = xp.zeros_like(x)  # in x's memory order
    overlap = _overlapping(kernel, stride, dilation)
    for j, (_, dst, src) in enumerate(moves):
        hit = arg[_ALL + dst] == j
        if overlap:
            gx[_ALL + src] += xp.where(hit, g[_ALL + dst], 0)
        else:  # each input position is in one window at most: a masked copy
            xp.copyto(gx[_ALL + src], g[_ALL + dst], where=hit)
    return gx


def _argmax_index(xp, arg, shape, kernel, stride, padding, dilation):
    """The index tuple (n, c, i_1, ...) of the input each output's maximum came from."""
    _, moves, _ = geometry(tuple(shape[2:]), kernel, stride, padding, dilation)
    offsets = xp.asarray([m[0] for m in moves], dtype=xp.int64)  # (moves, spatial dims)
    index = [xp.arange(arg.shape[0]).reshape((-1,) + (1,) * (arg.ndim - 1)),
             xp.arange(arg.shape[1]).reshape((1, -1) + (1,) * (arg.ndim - 2))]
    for axis, (s, (lo, _), d) in enumerate(zip(stride, padding, dilation, strict=True)):
        o = xp.arange(arg.shape[2 + axis]).reshape(
            (1, 1) + tuple(-1 if a == axis else 1 for a in range(arg.ndim - 2)))
        index.append(o * s + offsets[arg, axis] * d - lo)
    return tuple(index)


def _divisor(xp, dtype, spatial, out_shape, kernel, stride, padding, count_include_pad,
             divisor_override):
    """The number each window's sum is divided by, shaped to broadcast over (N, C, *O)."""
    if divisor_override is not None:
        return divisor_override
    total = None
    for axis, (size, out, k, s, (lo, _)) in enumerate(
            zip(spatial, out_shape, kernel, stride, padding, strict=True)):
        counts = []
        for o in range(out):
            start = o * s - lo
            end = min(start + k, size + lo)  # torch: the window stops at the padded edge
            counts.append(end - start if count_include_pad else
                          min(end, size) - max(start, 0))
        shape = tuple(-1 if a == axis else 1 for a in range(len(spatial)))
        per_axis = xp.asarray(counts, dtype=dtype).reshape(shape)
        total = per_axis if total is None else total * per_axis
    return total


def _avg_pool(xp, x, *, kernel, stride, padding, count_include_pad=True, divisor_override=None):
    ones = (1,) * len(kernel)
    out_shape, moves, _ = geometry(x.shape[2:], kernel, stride, padding, ones)
    out = xp.zeros(x.shape[:2] + out_shape, dtype=x.dtype)
    for _, dst, src in moves:
        out[_ALL + dst] += x[_ALL + src]
    out /= _divisor(xp, x.dtype, x.shape[2:], out_shape, kernel, stride, padding,
                    count_include_pad, divisor_override)
    return out


def _avg_pool_backward(xp, g, *, shape, kernel, stride, padding, count_include_pad=True,
                       divisor_override=None):
    """The adjoint of avg_pool for an input of `shape`: each output's share sent back to the
    positions of its window."""
    ones = (1,) * len(kernel)
    out_shape, moves, _ = geometry(tuple(shape[2:]), kernel, stride, padding, ones)
    share = g / _divisor(xp, g.dtype, shape[2:], out_shape, kernel, stride, padding,
                         count_include_pad, divisor_override)
    gx = xp.zeros(shape, dtype=g.dtype)
    for _, dst, src in moves:
        gx[_ALL + src] += share[_ALL + dst]
    return gx


primitive("max_pool", _max_pool, _max_pool_vjp, saves=True)
primitive("avg_pool", _avg_pool,
          lambda ops, g, out, x, **params: ops.avg_pool_backward(g, shape=x.shape, **params))
primitive("avg_pool_backward", _avg_pool_backward,
          lambda ops, h, out, g, shape, **params: ops.avg_pool(h, **params))
