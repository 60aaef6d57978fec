"""retrograd.nn.functional: layers and losses as functions, with torch's signatures."""

from __future__ import annotations

import numpy as _np

from .. import random as _random
from ..ops import DROPOUT_MASK, PRIMITIVES
from ..tensor import Tensor, _wrap, apply
from .functional_losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    focal_loss,
    mse_loss,
    nll_loss,
    policy_gradient_loss,
    sigmoid_focal_loss,
)

_P = PRIMITIVES

__all__ = ["linear", "linear_relu", "relu", "sigmoid", "tanh", "softplus", "softmax",
           "log_softmax", "dropout", "one_hot", "cross_entropy", "nll_loss", "mse_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "sigmoid_focal_loss",
           "focal_loss", "policy_gradient_loss"]


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight.T + bias, as one graph node (weight has shape (out_features, in_features))."""
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {input.shape} does not match weight of shape "
                         f"{weight.shape} (expected the input's last dimension to be "
                         f"{weight.shape[1]})")
    if bias is None:
        return apply(_P["linear"], input, weight)
    return apply(_P["linear"], input, weight, bias)


def softplus(input: Tensor) -> Tensor:
    """log(1 + exp(x)), computed without overflow."""
    return apply(_P["softplus"], input)


def linear_relu(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """relu(linear(input, weight, bias)) as one fused node (one pass less, one node less)."""
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        linear(input, weight, bias)  # raises the shape error
    if bias is None:
        return apply(_P["linear_relu"], input, weight)
    return apply(_P["linear_relu"], input, weight, bias)


def relu(input: Tensor) -> Tensor:
    return input.relu()


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


def softmax(input: Tensor, dim: int) -> Tensor:
    """exp(x_i - max) / sum_j exp(x_j - max) along dim: stable for any finite logits."""
    return input.softmax(dim)


def log_softmax(input: Tensor, dim: int) -> Tensor:
    """x_i - logsumexp(x) along dim, computed without overflow."""
    return input.log_softmax(dim)


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1 / (1 - p) (when training)."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0
    # the mask is drawn by an operation (not here), so a compiled step draws it afresh
    mask = apply(DROPOUT_MASK, shape=input.shape, dtype=input.dtype, p=p,
                 generator=_random.generator)
    return input * mask


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding, shape tensor.shape + (num_classes,), as torch's one_hot."""
    labels = tensor._data if isinstance(tensor, Tensor) else _np.asarray(tensor)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot: labels must be integers, got dtype {labels.dtype}")
    if num_classes == -1:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)].flat[0]
        raise ValueError(f"one_hot: class index {bad} is outside [0, {num_classes})")
    return _wrap((labels[..., None] == _np.arange(num_classes)).astype(_np.int64))
