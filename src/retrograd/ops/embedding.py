"""Embedding lookup: rows of a weight matrix picked by integer indices, as one node whose
gradient skips the padding index (torch's padding_idx: that row is looked up but never
trained)."""

from __future__ import annotations

from .registry import primitive


def _embedding_vjp(ops, g, out, weight, indices, padding_idx=None):
    """The rows' gradients added into a zero matrix of weight's shape (a repeated index
    accumulates); nothing for the padding index."""
    index = ops.raw(indices)
    if padding_idx is not None:
        g = ops.where((index != padding_idx).reshape(index.shape + (1,)), g, 0)
    return ops.scatter_add(g, shape=weight.shape, index=index)


primitive("embedding", lambda xp, weight, indices, padding_idx=None: weight[indices],
          _embedding_vjp, None)
