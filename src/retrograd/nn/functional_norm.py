"""Normalization as functions, with torch's signatures: batch_norm, layer_norm and group_norm.

Training-mode batch norm and layer norm are one node each (the `normalize` primitive); batch
norm in evaluation mode is an affine map by the running statistics, made of ordinary nodes so
that weight and bias still receive gradients.
"""

from __future__ import annotations

import math

from .. import backend
from ..grad_mode import no_grad
from ..ops import PRIMITIVES
from ..ops.norm import moments
from ..tensor import Tensor, apply

_P = PRIMITIVES

__all__ = ["batch_norm", "layer_norm", "group_norm"]


def _array(t):
    return t._data if isinstance(t, Tensor) else t


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias per channel (axis 1).

    training: mean and biased var of the batch (over every axis but 1), and the running
    statistics, when given, move toward the batch's by `momentum` (the variance's unbiased
    estimate, as torch keeps it), in place; otherwise the running statistics normalize."""
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected input with a channel axis (N, C, ...), got "
                         f"shape {tuple(input.shape)}")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"batch_norm: {name} has shape {tuple(t.shape)}, expected ({c},) "
                             f"for input of shape {tuple(input.shape)} ({c} channels)")
    shape = (c,) + (1,) * (input.ndim - 2)
    axes = (0,) + tuple(range(2, input.ndim))
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation mode (training=False) needs running_mean "
                             "and running_var")
        return _affine(input, _array(running_mean), _array(running_var), weight, bias, eps,
                       shape)
    n = input.numel() // c if c else 0
    if n <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got input of shape {tuple(input.shape)}")
    xp = backend.of(input._data)
    stats = moments(xp, input._data, axes)
    if running_mean is not None or running_var is not None:
        with no_grad():
            _update_running(running_mean, running_var, stats, n, momentum)
    return apply(_P["normalize"], input, weight, bias, axes=axes, eps=eps, affine_shape=shape,
                 stats=stats)


def _update_running(running_mean, running_var, stats, n: int, momentum: float) -> None:
    """running <- (1 - momentum) running + momentum batch, in place (the buffers' arrays are
    the state_dict's)."""
    mean, var = (s.reshape(-1) for s in stats)
    m = float(momentum)
    if running_mean is not None:
        running_mean.mul_(1 - m).add_(mean.astype(running_mean.dtype) * m)
    if running_var is not None:
        unbiased = var * (n / (n - 1))
        running_var.mul_(1 - m).add_(unbiased.astype(running_var.dtype) * m)


def _affine(input: Tensor, mean, var, weight, bias, eps: float, shape) -> Tensor:
    """(x - mean) * weight / sqrt(var + eps) + bias with the statistics held fixed."""
    rstd = 1 / backend.of(var).sqrt(var + eps)
    scale = rstd if weight is None else weight * rstd
    shift = -mean * scale
    if bias is not None:
        shift = shift + bias
    as_tensor = (lambda a: a if isinstance(a, Tensor) else Tensor(a.astype(input.dtype)))
    return input * as_tensor(scale).reshape(shape) + as_tensor(shift).reshape(shape)


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias, the moments over the trailing
    `normalized_shape` axes of each sample (biased variance), as one node."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else \
        tuple(normalized_shape)
    d = len(shape)
    if d == 0 or tuple(input.shape[input.ndim - d:]) != shape or input.ndim < d:
        raise ValueError(f"layer_norm: normalized_shape {list(shape)} expects input of shape "
                         f"[*, {', '.join(map(str, shape))}], got {list(input.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"layer_norm: {name} has shape {tuple(t.shape)}, expected "
                             f"{shape}")
    if math.prod(shape) == 0:
        raise ValueError(f"layer_norm: normalized_shape {list(shape)} has no elements")
    axes = tuple(range(input.ndim - d, input.ndim))
    return apply(_P["normalize"], input, weight, bias, axes=axes, eps=eps,
                 affine_shape=shape if (weight is not None or bias is not None) else None)


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight[c] + bias[c], the moments over each sample's
    group of C / num_groups channels and all their positions (biased variance)."""
    shape = tuple(input.shape)
    if len(shape) < 2:
        raise ValueError(f"group_norm: expected an input of shape (N, C, *), got {list(shape)}")
    channels = shape[1]
    if not isinstance(num_groups, int) or isinstance(num_groups, bool) or num_groups <= 0 \
            or channels % num_groups:
        raise ValueError(f"group_norm: expected the number of channels in input ({channels}) "
                         f"to be divisible by num_groups ({num_groups!r})")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (channels,):
            raise ValueError(f"group_norm: {name} has shape {tuple(t.shape)}, expected "
                             f"({channels},)")
    grouped = input.reshape(shape[0], num_groups, channels // num_groups * math.prod(shape[2:]))
    out = apply(_P["normalize"], grouped, None, None, axes=(2,), eps=eps,
                affine_shape=None).reshape(shape)
    per_channel = (channels,) + (1,) * (len(shape) - 2)
    if weight is not None:
        out = out * weight.reshape(per_channel)
    if bias is not None:
        out = out + bias.reshape(per_channel)
    return out
