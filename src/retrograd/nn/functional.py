"""retrograd.nn.functional: layers and losses as functions, with torch's signatures."""

from __future__ import annotations

from .. import backend
from .. import random as _random
from ..ops import DROPOUT_MASK, PRIMITIVES
from ..tensor import Tensor, _wrap, apply
from .functional_conv import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    conv1d,
    conv2d,
    max_pool1d,
    max_pool2d,
)
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
from .functional_norm import batch_norm, group_norm, layer_norm
from .functional_pad import pad

_P = PRIMITIVES

__all__ = ["linear", "linear_relu", "relu", "sigmoid", "tanh", "softplus", "softmax",
           "log_softmax", "dropout", "one_hot", "cross_entropy", "nll_loss", "mse_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "sigmoid_focal_loss",
           "focal_loss", "policy_gradient_loss", "conv1d", "conv2d", "max_pool1d", "max_pool2d",
           "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
           "batch_norm", "layer_norm", "group_norm", "embedding", "gelu", "silu", "leaky_relu",
           "elu", "pad"]


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
                 device=input.device, generator=_random.generator)
    return input * mask


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding, shape tensor.shape + (num_classes,), as torch's one_hot."""
    labels = tensor._data if isinstance(tensor, Tensor) else backend.from_data(tensor)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot: labels must be integers, got dtype {labels.dtype}")
    if num_classes == -1:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)].flat[0]
        raise ValueError(f"one_hot: class index {bad} is outside [0, {num_classes})")
    xp = backend.of(labels)
    return _wrap((labels[..., None] == xp.arange(num_classes)).astype(xp.int64))


# ----------------------------------------------------------------------------- activations
# `inplace` is accepted for torch's signatures; the result is always a new tensor (the same
# values: `x = F.silu(x, inplace=True)` reads as in torch).


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x Phi(x) (Phi the standard normal CDF, through erf), or with approximate='tanh'
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    if approximate == "none":
        return apply(_P["gelu"], input)
    if approximate == "tanh":
        return apply(_P["gelu_tanh"], input)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x sigmoid(x) (also called swish)."""
    return apply(_P["silu"], input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x where x > 0, negative_slope x elsewhere."""
    return apply(_P["leaky_relu"], input, negative_slope=float(negative_slope))


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x where x > 0, alpha (exp(x) - 1) elsewhere."""
    return apply(_P["elu"], input, alpha=float(alpha))


def embedding(input, weight: Tensor, padding_idx: int | None = None,
              max_norm: float | None = None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """weight[input]: the rows of `weight` picked by integer indices, shape input.shape +
    (embedding_dim,). The row padding_idx gets no gradient. max_norm renormalizes, in place
    and outside the graph, each looked-up row whose norm_type-norm exceeds it (as torch)."""
    index = input._data if isinstance(input, Tensor) else backend.from_data(input)
    if index.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {index.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got "
                         f"shape {tuple(weight.shape)}")
    n = weight.shape[0]
    if index.size and (index.min() < 0 or index.max() >= n):
        bad = index[(index < 0) | (index >= n)].flat[0]
        raise IndexError(f"embedding: index {bad} is out of range for {n} embeddings")
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise ValueError(f"embedding: padding_idx {padding_idx} must be within "
                             f"[{-n}, {n})")
        padding_idx = int(padding_idx) % n
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: scale_grad_by_freq and sparse are not supported")
    if max_norm is not None:
        _renorm_rows(weight, index, float(max_norm), float(norm_type))
    return apply(_P["embedding"], weight, index, padding_idx=padding_idx)


def _renorm_rows(weight: Tensor, index, max_norm: float, norm_type: float) -> None:
    """Scale the looked-up rows whose norm exceeds max_norm down to it (torch's embedding_renorm_:
    by max_norm / (norm + 1e-7)), in place; a version bump like any in-place change."""
    data = weight._data
    xp = backend.of(data)
    rows = xp.unique(index)
    picked = data[rows]
    if norm_type == float("inf"):
        norms = xp.amax(xp.abs(picked), axis=1)
    else:
        norms = PRIMITIVES["vector_norm"].forward(xp, picked, ord=norm_type, axis=1)
    over = norms > max_norm
    if bool(xp.any(over)):
        scale = (max_norm / (norms[over] + 1e-7)).astype(data.dtype)
        data[rows[over]] *= scale[:, None]
        weight._vc[0] += 1
