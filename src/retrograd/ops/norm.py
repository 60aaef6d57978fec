"""Normalization and norms: `normalize` (BatchNorm's and LayerNorm's training-mode forward) and
`vector_norm` (the p-norm of Tensor.norm).

normalize(x, w, b; axes, eps) = (x - mean(x)) / sqrt(var(x) + eps) * w + b, the moments taken
over `axes` (BatchNorm: every axis but the channels; LayerNorm: the trailing normalized axes),
the variance biased, as torch normalizes; w and b are broadcast as `affine_shape`. One node: its
VJP is the closed form

    dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat)),   gh = g * w,  xhat = (x - mean) rstd

written with the table's own functions, so it is differentiable again (second derivatives).
"""

from __future__ import annotations

import math

from .registry import primitive
from .shapes import kept_shape


def moments(xp, x, axes):
    """(mean, biased variance) over `axes`, kept as size-1 axes (two passes: no cancellation)."""
    mean = x.mean(axis=axes, keepdims=True)
    d = x - mean
    return mean, (d * d).mean(axis=axes, keepdims=True)


def _normalize(xp, x, w=None, b=None, *, axes, eps, affine_shape=None, stats=None):
    """(out, saved); `stats`, when given, is moments(x) already computed by the caller (the
    running statistics need them too)."""
    mean, var = stats if stats is not None else moments(xp, x, axes)
    rstd = 1 / xp.sqrt(var + eps)
    xhat = x - mean
    xhat *= rstd
    out = xhat  # xhat itself is kept for the VJP: never changed after this point
    if w is not None:
        out = xhat * w.reshape(affine_shape)
    if b is not None:
        if out is xhat:
            out = xhat + b.reshape(affine_shape)
        else:
            out += b.reshape(affine_shape)
    return out, {"xhat": xhat, "rstd": rstd}


def _broadcast_axes(ndim: int, affine_shape) -> tuple[int, ...]:
    """The axes of x along which the affine parameters are broadcast (their gradients sum)."""
    lead = ndim - len(affine_shape)
    return tuple(range(lead)) + tuple(lead + i for i, n in enumerate(affine_shape) if n == 1)


def _normalize_vjp(ops, g, out, x, w=None, b=None, *, wanted, g_private=False, axes, eps,
                   affine_shape=None, stats=None, saved=None):
    n = math.prod(x.shape[a] for a in axes)
    if saved is not None:
        xhat, rstd = saved["xhat"], saved["rstd"]
    else:  # under create_graph: recomputed with the table, so that it is differentiable
        d = x - x.sum(axis=axes, keepdims=True) / n
        rstd = 1 / ops.sqrt((d * d).sum(axis=axes, keepdims=True) / n + eps)
        xhat = d * rstd
    gx = gw = gb = None
    if affine_shape is not None:
        wide = _broadcast_axes(x.ndim, affine_shape)
        if w is not None and 1 in wanted:
            gw = (g * xhat).sum(axis=wide).reshape(w.shape)
        if b is not None and 2 in wanted:
            gb = g.sum(axis=wide).reshape(b.shape)
    if 0 in wanted:
        gh = g * w.reshape(affine_shape) if w is not None else g
        mean_gh = gh.sum(axis=axes, keepdims=True) / n
        mean_ghx = (gh * xhat).sum(axis=axes, keepdims=True) / n
        gx = (gh - mean_gh - xhat * mean_ghx) * rstd
    return gx, gw, gb


def _vector_norm(xp, x, *, ord=2, axis=None, keepdims=False):
    if ord == 0:  # the count of non-zeros (its gradient is 0)
        return xp.sum(x != 0, axis=axis, keepdims=keepdims).astype(x.dtype)
    if ord == 2:
        return xp.sqrt(xp.sum(x * x, axis=axis, keepdims=keepdims))
    a = xp.abs(x)
    if ord == 1:
        return xp.sum(a, axis=axis, keepdims=keepdims)
    return xp.sum(a ** ord, axis=axis, keepdims=keepdims) ** (1 / ord)


def _vector_norm_vjp(ops, g, out, x, *, ord=2, axis=None, keepdims=False):
    """g x |x|^(p-2) / norm^(p-1), and 0 where the norm is 0 (torch's subgradient there)."""
    kept = kept_shape(x.shape, axis)
    g = g.reshape(kept)
    if ord == 0:
        return g * 0 * x
    if ord == 1:
        return g * ops.sign(x)
    norm = out.reshape(kept)
    zero = ops.raw(norm) == 0
    hit = bool(ops.xp.any(zero))
    if ord == 2:
        if hit:
            norm, g = ops.where(zero, 1, norm), ops.where(zero, 0, g)
        return (g / norm) * x
    if hit:
        norm = ops.where(zero, 1, norm)
    with ops.xp.errstate(divide="ignore", invalid="ignore"):  # |0|^(p-1) for p < 1
        grad = g * ops.sign(x) * ops.abs(x) ** (ord - 1) / norm ** (ord - 1)
    return ops.where(zero, 0, grad) if hit else grad


primitive("normalize", _normalize, joint=_normalize_vjp, arity=3, saves=True)
primitive("vector_norm", _vector_norm, _vector_norm_vjp)
