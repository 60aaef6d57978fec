"""Gradient utilities with torch's names."""

from __future__ import annotations

from .. import backend
from ..tensor import Tensor


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0) -> float:
    """Scale all gradients together so their global norm is at most max_norm; returns the norm
    before clipping (torch.nn.utils.clip_grad_norm_)."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad._data for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    xp = backend.of(grads[0])
    if norm_type == float("inf"):
        total = max(float(xp.abs(g).max()) for g in grads)
    else:
        total = float(sum(float(xp.sum(xp.abs(g.astype(xp.float64)) ** norm_type))
                          for g in grads) ** (1.0 / norm_type))
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g *= scale
    return total
