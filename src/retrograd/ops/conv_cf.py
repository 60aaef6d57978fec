"""Convolution in the channels-first layout, for strided convolutions: one strided slice copy per
kernel offset into cols (C, *K, N, *O), then one GEMM, the result kept in (C, N, *O) memory order.

For input x (N, C, *S), weight w (C_out, C/G, *K) and G groups:

    forward        w2 @ cols                   (C_out, N O)    (per group: a stacked product)
    d weight       g2 @ cols.T                 (C_out, C/G K)  (cols saved by the forward)
    d input        col2im(w2.T @ g2)           (C, K, N, O) added back window by window

conv.py uses it for stride > 1, where it measured faster in the MNIST-1D CNN's training step
than the channels-last algorithm (its stride-2 convolutions are followed by BatchNorm, whose
reductions over (N, L) run on contiguous memory per channel in this layout: BENCHMARKS.md).
Padding is handled by the slice ranges (a window position outside the input is left zero in
cols), never by a padded copy. `geometry` also serves the pooling primitives.
"""

from __future__ import annotations

import functools
import itertools
import math


def output_size(size: int, kernel: int, stride: int, lo: int, hi: int, dilation: int) -> int:
    """floor((size + lo + hi - dilation (kernel - 1) - 1) / stride) + 1 (may be <= 0)."""
    return (size + lo + hi - dilation * (kernel - 1) - 1) // stride + 1


def _range(size: int, out: int, k: int, stride: int, lo: int, dilation: int):
    """For kernel offset k along one axis: (first, stop) output positions whose input position
    o * stride + k * dilation - lo lies inside [0, size), and the input slice they read."""
    offset = k * dilation - lo
    first = max(0, -(offset // stride))  # ceil(-offset / stride), at least 0
    stop = min(out, (size - 1 - offset) // stride + 1)
    if stop <= first:
        return None
    start = first * stride + offset
    return slice(first, stop), slice(start, start + (stop - first - 1) * stride + 1, stride)


@functools.lru_cache(maxsize=256)
def geometry(spatial: tuple, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple):
    """(output spatial shape, [(kernel offset, output slices, input slices)], whether some
    window position falls in the padding) of one configuration; padding holds (lo, hi) pairs."""
    out = tuple(output_size(s, k, st, lo, hi, d) for s, k, st, (lo, hi), d
                in zip(spatial, kernel, stride, padding, dilation, strict=True))
    moves, partial = [], False
    for offsets in itertools.product(*(range(k) for k in kernel)):
        ranges = [_range(s, o, k, st, lo, d) for s, o, k, st, (lo, _), d
                  in zip(spatial, out, offsets, stride, padding, dilation, strict=True)]
        if any(r is None for r in ranges):
            partial = True
            continue
        dst = tuple(r[0] for r in ranges)
        partial = partial or any(sl.stop - sl.start != o for sl, o in zip(dst, out, strict=True))
        moves.append((offsets, dst, tuple(r[1] for r in ranges)))
    return out, moves, partial


def _channels_first(a):
    """The (C, N, *S) view of an (N, C, *S) array (no copy)."""
    return a.transpose(1, 0, *range(2, a.ndim))


def im2col(xp, x, kernel, stride, padding, dilation):
    """cols (C, *K, N, *O): cols[c, k, n, o] = x[n, c, o * stride + k * dilation - lo], zero
    where that position is in the padding."""
    n, c = x.shape[:2]
    out, moves, partial = geometry(x.shape[2:], kernel, stride, padding, dilation)
    cols = (xp.zeros if partial else xp.empty)((c, *kernel, n, *out), dtype=x.dtype)
    xt = _channels_first(x)
    whole = (slice(None),)
    for offsets, dst, src in moves:
        cols[whole + offsets + whole + dst] = xt[whole + whole + src]
    return cols


def col2im(xp, cols, shape, kernel, stride, padding, dilation):
    """The adjoint of im2col: an (N, C, *S) array (a view of a (C, N, *S) one) holding, at each
    input position, the sum of the cols entries copied from it."""
    n, c = shape[:2]
    _, moves, _ = geometry(tuple(shape[2:]), kernel, stride, padding, dilation)
    gx = xp.zeros((c, n, *shape[2:]), dtype=cols.dtype)
    whole = (slice(None),)
    for offsets, dst, src in moves:
        gx[whole + whole + src] += cols[whole + offsets + whole + dst]
    return _channels_first(gx)


def _as_rows(g):
    """(C_out, N * prod O) of an (N, C_out, *O) array: free for the channels-first views this
    module returns, one copy otherwise."""
    return _channels_first(g).reshape(g.shape[1], -1)


def _product(xp, w, cols, groups):
    """w (C_out, C/G, *K) times cols (C, *K, N, *O) per group: (C_out, N * prod O)."""
    cout = w.shape[0]
    if groups == 1:
        return w.reshape(cout, -1) @ cols.reshape(w[0].size, -1)
    w3 = w.reshape(groups, cout // groups, -1)
    return (w3 @ cols.reshape(groups, w3.shape[2], -1)).reshape(cout, -1)


def conv(xp, x, w, b=None, *, stride, padding, dilation, groups, relu=False):
    """(out, saved): out = conv(x, w) + b (then relu) as an (N, C_out, *O) view of a
    channels-first product; saved holds cols for the weight gradient."""
    kernel = w.shape[2:]
    cols = im2col(xp, x, kernel, stride, padding, dilation)
    out = _product(xp, w, cols, groups)
    if b is not None:
        out += b.reshape(-1, 1)
    if relu:
        xp.maximum(out, 0, out=out)
    out = out.reshape(w.shape[0], x.shape[0], *cols.shape[1 + len(kernel) + 1:])
    return _channels_first(out), {"cols": cols}


def input_grad(xp, g, w, *, shape, stride, padding, dilation, groups):
    """d<g, conv(x, w)>/dx for x of `shape`: col2im of w^T g (per group)."""
    kernel, cout = w.shape[2:], w.shape[0]
    g2 = _as_rows(g)
    if groups == 1:
        cols = w.reshape(cout, -1).T @ g2
    else:
        w3 = w.reshape(groups, cout // groups, -1)
        cols = w3.transpose(0, 2, 1) @ g2.reshape(groups, cout // groups, -1)
    cols = cols.reshape(shape[1], *kernel, shape[0], *g.shape[2:])
    return col2im(xp, cols, shape, kernel, stride, padding, dilation)


def weight_grad(xp, x, g, *, shape, stride, padding, dilation, groups, cols=None):
    """d<g, conv(x, w)>/dw for w of `shape`: g times im2col(x)^T (per group); `cols`, when
    given, is that im2col (the forward's)."""
    kernel = tuple(shape[2:])
    if cols is None:
        cols = im2col(xp, x, kernel, stride, padding, dilation)
    g2, cout = _as_rows(g), shape[0]
    if groups == 1:
        gw = g2 @ cols.reshape(shape[1] * math.prod(kernel), g2.shape[1]).T
    else:
        c3 = cols.reshape(groups, shape[1] * math.prod(kernel), g2.shape[1])
        gw = g2.reshape(groups, cout // groups, -1) @ c3.transpose(0, 2, 1)
    return gw.reshape(shape)
