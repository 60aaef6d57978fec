"""The softmax family, each one node with its true Jacobian (the fused losses are in losses.py)."""

from __future__ import annotations

from .registry import primitive


def _softmax(xp, x, axis: int):
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


def _log_softmax(xp, x, axis: int):
    shifted = x - x.max(axis=axis, keepdims=True)
    shifted -= xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted


primitive("softmax", _softmax,
          lambda ops, g, out, x, axis: out * (g - (g * out).sum(axis=axis, keepdims=True)))
primitive("log_softmax", _log_softmax,
          lambda ops, g, out, x, axis: g - ops.exp(out) * g.sum(axis=axis, keepdims=True))
