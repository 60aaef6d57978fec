"""Convolution as one primitive: a copy of the input's windows (im2col), then one GEMM.

2-D and 3-D convolutions of stride 1 (this module) are channels-last: a convolution returns the
(N, C_out, *O) view of an (N, *O, C_out) array and reads its input through the channels-last
view (N, *S, C) (free for such views, a strided read otherwise). For input x (N, C, *S), weight
w (C_out, C/G, *K) and G groups, the input is zero-padded once (channels-last), its windows are
one strided view (the backend's `windows`: no copy), and one copy makes them the rows

    cols (N * prod O, G, prod K * C/G)        cols[n o, g, k c] = xpad[n, o + k dil, g c]

so that every product is one BLAS call whose first dimension is the long N * prod O (per
group: a stacked product), with the weight reordered to w_g (G, prod K * C/G, C_out/G) (a
small copy):

    forward        cols @ w_g                          (N O, C_out), channels-last rows
    d weight       g_rows^T @ cols                     (C_out, K C/G) (cols saved by forward)
    d input        the forward's computation on g padded by dil (K-1) - pad, with the kernel
                   flipped and its two channel axes swapped (no col2im scatter-add)

Strided and 1-D convolutions go to conv_cf (the channels-first im2col + col2im): `_takes_cf` is
the one dispatch point, and the three primitives take the same branch for the same parameters,
so the forward's saved cols always reach the weight gradient of the same layout.

Why (measured, BENCHMARKS.md "Convolutions vs PyTorch eager"): this layout's GEMMs take 13-32%
less time than the channels-first (C_out, K C) @ (K C, N O) ones, the single strided copy a
third of a slice copy per kernel offset, and the input gradient as a convolution avoids
col2im's prod(K) read-modify-write passes. In 1-D the channels-first slice copies have long
contiguous runs and lose little, and the layout keeps a following BatchNorm's reductions
contiguous: the MNIST-1D CNN's training step measured 17% slower channels-last.

The two gradients are primitives of their own, so that the gradient is itself differentiable:
conv, conv_input_grad and conv_weight_grad are bilinear and each one's VJP is made of the
other two (second derivatives come from the same three entries).
"""

from __future__ import annotations

import math

from . import conv_cf
from .conv_cf import output_size
from .registry import primitive


def _channels_last(a):
    """The (N, *S, C) view of an (N, C, *S) array (no copy)."""
    return a.transpose(0, *range(2, a.ndim), 1)


def _channels_first(a):
    """The (N, C, *S) view of an (N, *S, C) array (no copy)."""
    return a.transpose(0, a.ndim - 1, *range(1, a.ndim - 1))


def _padded(xp, a, pads):
    """The channels-last (N, *(S + lo + hi), C) form of a (N, C, *S), zero where a position
    falls in the padding; a negative lo or hi drops that many positions. A view of `a` when
    nothing is added."""
    v = _channels_last(a)
    spatial = a.shape[2:]
    src = tuple(slice(max(0, -lo), max(max(0, -lo), s - max(0, -hi)))
                for (lo, hi), s in zip(pads, spatial, strict=True))
    whole = (slice(None),)
    if all(lo <= 0 and hi <= 0 for lo, hi in pads):
        return v[whole + src]
    shape = tuple(s + lo + hi for (lo, hi), s in zip(pads, spatial, strict=True))
    out = xp.zeros((a.shape[0], *shape, a.shape[1]), dtype=a.dtype)
    dst = tuple(slice(max(0, lo), max(0, lo) + sl.stop - sl.start)
                for (lo, _), sl in zip(pads, src, strict=True))
    out[whole + dst] = v[whole + src]
    return out


def _cols(xp, xpad, out, kernel, stride, dilation, groups):
    """cols (N, *O, G, *K, C/G), contiguous: cols[n, o, g, k, c] =
    xpad[n, o * stride + k * dilation, g C/G + c] for a channels-last padded xpad."""
    d, c = len(kernel), xpad.shape[-1]
    st = xpad.strides
    shape = (xpad.shape[0], *out, groups, *kernel, c // groups)
    strides = (st[0], *(st[1 + i] * stride[i] for i in range(d)), st[-1] * (c // groups),
               *(st[1 + i] * dilation[i] for i in range(d)), st[-1])
    cols = xp.scratch(shape, xpad.dtype)  # (reused: a fresh one page-faults, see scratch)
    xp.copyto(cols, xp.windows(xpad, shape, strides))
    return cols


def _grouped(cols, wm):
    """Per group, cols (R, G, L) times wm (G, L, M): the rows (R, G M)."""
    rows, groups, length = cols.shape
    if groups == 1:
        return cols.reshape(rows, length) @ wm[0]
    out = cols.transpose(1, 0, 2) @ wm  # (G, R, M)
    return out.transpose(1, 0, 2).reshape(rows, groups * wm.shape[2])


# The input gradient's windows are a temporary: past _WHOLE_BYTES they are made and multiplied
# _CHUNK_BYTES at a time. Measured (16 -> 32 channels, 3x3 on 16x16, batch 128: 38 MB of
# windows): 2x faster in chunks, as a buffer that size is mapped fresh from the system on each
# call (glibc maps allocations past 32 MB) and its page faults cost more than the copy; below
# 16 MB the whole buffer is as fast or faster (32 -> 32 channels, 3x3 on 8x8: 9 MB).
_WHOLE_BYTES = 16 << 20
_CHUNK_BYTES = 4 << 20


def _windows_product(xp, xpad, out, kernel, dilation, groups, wm):
    """rows (N prod O, G M): the stride-1 windows of xpad (N, *S, C) times wm (G, L, M) per
    group, made a chunk of samples at a time when they are large."""
    n, per_sample = xpad.shape[0], math.prod(out)
    size = per_sample * groups * wm.shape[1] * xpad.itemsize  # one sample's windows
    ones = (1,) * len(kernel)
    if n * size <= _WHOLE_BYTES:
        cols = _cols(xp, xpad, out, kernel, ones, dilation, groups)
        return _grouped(cols.reshape(n * per_sample, groups, wm.shape[1]), wm)
    rows = xp.empty((n * per_sample, groups * wm.shape[2]), dtype=xpad.dtype)
    step = max(1, _CHUNK_BYTES // size)
    for i in range(0, n, step):
        cols = _cols(xp, xpad[i:i + step], out, kernel, ones, dilation, groups)
        part = cols.reshape(cols.shape[0] * per_sample, groups, wm.shape[1])
        rows[i * per_sample:i * per_sample + part.shape[0]] = _grouped(part, wm)
    return rows


def _forward_weight(w, groups):
    """w (C_out, C/G, *K) as (G, prod K * C/G, C_out/G), rows in the order of cols' columns."""
    d = w.ndim - 2
    w5 = w.reshape(groups, w.shape[0] // groups, *w.shape[1:])
    return w5.transpose(0, *range(3, 3 + d), 2, 1).reshape(groups, -1, w5.shape[1])


def _rows(g):
    """(N * prod O, C_out) of an (N, C_out, *O) array: free for the channels-last views this
    module returns, one copy otherwise."""
    return _channels_last(g).reshape(-1, g.shape[1])


def _takes_cf(stride) -> bool:
    """Whether a configuration takes conv_cf's channels-first algorithm: a strided or a 1-D
    one (the one dispatch point). Measured (BENCHMARKS.md): channels-last made the MNIST-1D
    CNN's step (stride-2 Conv1d + BatchNorm) 17% slower and a stride-1 Conv1d(64, 64, 5) 3%
    slower; it made stride-1 Conv2d layers 1.06-1.57x faster."""
    return len(stride) == 1 or any(s != 1 for s in stride)


def _conv(xp, x, w, b=None, *, stride, padding, dilation, groups, relu=False):
    """(out, saved): out = conv(x, w) + b (then relu) as an (N, C_out, *O) view of a
    channels-last product; saved holds cols for the weight gradient."""
    if _takes_cf(stride):
        return conv_cf.conv(xp, x, w, b, stride=stride, padding=padding, dilation=dilation,
                            groups=groups, relu=relu)
    kernel = w.shape[2:]
    out_shape = tuple(output_size(s, k, st, lo, hi, dl) for s, k, st, (lo, hi), dl
                      in zip(x.shape[2:], kernel, stride, padding, dilation, strict=True))
    cols = _cols(xp, _padded(xp, x, padding), out_shape, kernel, stride, dilation, groups)
    rows = x.shape[0] * math.prod(out_shape)
    out = _grouped(cols.reshape(rows, groups, w[0].size), _forward_weight(w, groups))
    if b is not None:
        out += b
    if relu:
        xp.maximum(out, 0, out=out)
    return _channels_first(out.reshape(x.shape[0], *out_shape, w.shape[0])), {"cols": cols}


def _conv_input_grad(xp, g, w, *, shape, stride, padding, dilation, groups):
    """d<g, conv(x, w)>/dx for x of `shape`: dx[s] = sum_k g[s + lo - k dil] w[k], the
    correlation of g padded so that gpad[j] = g[j - dil (K-1) + lo] with the flipped kernel,
    its channel axes swapped."""
    if _takes_cf(stride):
        return conv_cf.input_grad(xp, g, w, shape=shape, stride=stride, padding=padding,
                                  dilation=dilation, groups=groups)
    kernel, d = w.shape[2:], w.ndim - 2
    spatial, out_shape = tuple(shape[2:]), g.shape[2:]
    pads = tuple((dl * (k - 1) - lo, sp + lo - o) for k, dl, (lo, _), sp, o
                 in zip(kernel, dilation, padding, spatial, out_shape, strict=True))
    w5 = w.reshape(groups, w.shape[0] // groups, *w.shape[1:])
    flipped = w5[(slice(None),) * 3 + (slice(None, None, -1),) * d]
    wm = flipped.transpose(0, *range(3, 3 + d), 1, 2).reshape(groups, -1, w.shape[1])
    rows = _windows_product(xp, _padded(xp, g, pads), spatial, kernel, dilation, groups, wm)
    return _channels_first(rows.reshape(shape[0], *spatial, shape[1]))


def _conv_weight_grad(xp, x, g, *, shape, stride, padding, dilation, groups, cols=None):
    """d<g, conv(x, w)>/dw for w of `shape`: g_rows^T times the windows of x (per group);
    `cols`, when given, is those windows (the forward's)."""
    if _takes_cf(stride):
        return conv_cf.weight_grad(xp, x, g, shape=shape, stride=stride, padding=padding,
                                   dilation=dilation, groups=groups, cols=cols)
    kernel, d = tuple(shape[2:]), len(shape) - 2
    if cols is None:
        cols = _cols(xp, _padded(xp, x, padding), g.shape[2:], kernel, stride, dilation,
                     groups)
    cout, cg = shape[0], shape[1]
    c3 = cols.reshape(math.prod(cols.shape[:d + 1]), groups, cg * math.prod(kernel))
    g2 = _rows(g)
    if groups == 1:  # (K C, C_out) then its transpose: the long axis N O is the inner one of
        # both operands' layouts; measured 1.5x faster than g2.T @ cols (16 -> 32, 16x16)
        gw = (c3[:, 0].T @ g2).T
    else:
        gw = (g2.reshape(g2.shape[0], groups, cout // groups).transpose(1, 2, 0)
              @ c3.transpose(1, 0, 2))
    gw = gw.reshape(cout, *kernel, cg)
    return gw.transpose(0, d + 1, *range(1, d + 1)).copy()


def _geometry_params(params: dict) -> dict:
    return {k: params[k] for k in ("stride", "padding", "dilation", "groups")}


def _conv_vjp(ops, g, out, x, w, b=None, *, wanted, g_private=False, saved=None, relu=False,
              **params):
    if relu:  # the ReLU's gate first: in place when nobody else holds g
        if g_private:
            g *= ops.raw(out) > 0
        else:
            g = g * (ops.raw(out) > 0)
    gx = ops.conv_input_grad(g, w, shape=x.shape, **params) if 0 in wanted else None
    gw = None
    if 1 in wanted:
        cols = saved["cols"] if saved is not None else None
        gw = ops.conv_weight_grad(x, g, shape=w.shape, cols=cols, **params)
    if b is None:
        return gx, gw
    gb = g.sum(axis=(0, *range(2, g.ndim))) if 2 in wanted else None
    return gx, gw, gb


def _input_grad_vjp(ops, h, out, g, w, *, wanted, g_private=False, shape, **params):
    """conv_input_grad is linear in g and in w: d/dg is the convolution of the cotangent h,
    d/dw the weight gradient of input h and output gradient g."""
    return (ops.conv(h, w, **params) if 0 in wanted else None,
            ops.conv_weight_grad(h, g, shape=w.shape, **params) if 1 in wanted else None)


def _weight_grad_vjp(ops, h, out, x, g, *, wanted, g_private=False, shape, cols=None,
                     **params):
    """conv_weight_grad is linear in x and in g: d/dx is the input gradient of g through the
    weight cotangent h, d/dg the convolution of x with h."""
    return (ops.conv_input_grad(g, h, shape=x.shape, **params) if 0 in wanted else None,
            ops.conv(x, h, **params) if 1 in wanted else None)


# conv(x, w, b; stride, padding ((lo, hi) per axis), dilation, groups, relu): 1-D, 2-D, 3-D
primitive("conv", _conv, joint=_conv_vjp, arity=3, saves=True)
primitive("conv_input_grad", _conv_input_grad, joint=_input_grad_vjp, arity=2)
primitive("conv_weight_grad", _conv_weight_grad, joint=_weight_grad_vjp, arity=2)
