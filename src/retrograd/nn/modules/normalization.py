"""Normalization layers: BatchNorm1d, BatchNorm2d, LayerNorm (torch's arguments and state_dict
keys: weight, bias, and for batch norm the buffers running_mean, running_var,
num_batches_tracked)."""

from __future__ import annotations

import math

from ...backend import INTEGER_TYPES, as_dtype
from ...backend import host as _host
from ...tensor import Parameter, Tensor, _wrap, get_default_dtype
from .. import init
from ..functional_norm import batch_norm, group_norm, layer_norm
from ..module import Module


class _BatchNorm(Module):
    """Batch normalization over the channel axis 1. Training: the batch's statistics, and the
    running ones (buffers) move toward them by `momentum` (None: their cumulative average);
    evaluation (model.eval()): the running statistics. track_running_stats=False keeps no
    buffers and always uses the batch's statistics."""

    _ranks: tuple[int, ...] = ()
    _optional_parameters = ("weight", "bias")

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None,
                 dtype=None):
        super().__init__()
        where = type(self).__name__
        if not isinstance(num_features, INTEGER_TYPES) or num_features <= 0:
            raise ValueError(f"{where}: num_features must be a positive integer, got "
                             f"{num_features!r}")
        if not eps > 0:
            raise ValueError(f"{where}: eps must be positive, got {eps!r}")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"{where}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dtype = as_dtype(dtype) if dtype is not None else get_default_dtype()
        c = self.num_features
        if affine:
            self.weight = Parameter(_host.ones(c, dtype=dtype))
            self.bias = Parameter(_host.zeros(c, dtype=dtype))
        else:
            self.weight = self.bias = None
        if track_running_stats:
            self.register_buffer("running_mean", _wrap(_host.zeros(c, dtype=dtype)))
            self.register_buffer("running_var", _wrap(_host.ones(c, dtype=dtype)))
            self.register_buffer("num_batches_tracked", _wrap(_host.zeros((), dtype=_host.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        if device is not None:  # made (and initialized) on the host, then moved: one seed
            self.to(device)     # gives the same weights on every device

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _check_input(self, input: Tensor) -> None:
        where = type(self).__name__
        if input.ndim not in self._ranks:
            ranks = " or ".join(f"{r}-D" for r in self._ranks)
            raise ValueError(f"{where}: expected {ranks} input, got {input.ndim}-D input of "
                             f"shape {tuple(input.shape)}")
        if input.shape[1] != self.num_features:
            raise ValueError(f"{where}({self.num_features}): expected input with "
                             f"{self.num_features} channels (axis 1), got input of shape "
                             f"{tuple(input.shape)}")
        if self.training and math.prod(input.shape) // self.num_features <= 1:
            raise ValueError(f"{where}: expected more than 1 value per channel when training, "
                             f"got input of shape {tuple(input.shape)}")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)  # before the counter moves
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # the cumulative moving average
                factor = 1.0 / int(self.num_batches_tracked.item())
        use_batch = self.training or self.running_mean is None
        keep = not self.training or self.track_running_stats
        return batch_norm(input, self.running_mean if keep else None,
                          self.running_var if keep else None, self.weight, self.bias,
                          use_batch, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) inputs."""

    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) inputs."""

    _ranks = (4,)


class _AffineNorm(Module):
    """A normalization with an optional learned weight (ones) and bias (zeros) of one shape:
    LayerNorm and GroupNorm."""

    _optional_parameters = ("weight", "bias")

    def _make_affine(self, shape: tuple, affine: bool, bias: bool, dtype, device) -> None:
        dtype = as_dtype(dtype) if dtype is not None else get_default_dtype()
        self.weight = Parameter(_host.ones(shape, dtype=dtype)) if affine else None
        self.bias = Parameter(_host.zeros(shape, dtype=dtype)) if affine and bias else None
        if device is not None:  # made (and initialized) on the host, then moved: one seed
            self.to(device)     # gives the same weights on every device

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)


class LayerNorm(_AffineNorm):
    """Normalization of each sample over its trailing `normalized_shape` axes, with a learned
    elementwise weight (ones) and bias (zeros)."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, INTEGER_TYPES) else \
            tuple(normalized_shape)
        if not shape or not all(isinstance(n, INTEGER_TYPES) and n > 0 for n in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be positive integers, got "
                             f"{normalized_shape!r}")
        self.normalized_shape = tuple(int(n) for n in shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self._make_affine(self.normalized_shape, elementwise_affine, bias, dtype, device)

    def forward(self, input: Tensor) -> Tensor:
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(_AffineNorm):
    """Normalization of each sample over groups of num_channels / num_groups channels, with a
    learned per-channel weight (ones) and bias (zeros)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device=None, dtype=None, *, bias: bool = True):
        super().__init__()
        for name, n in (("num_groups", num_groups), ("num_channels", num_channels)):
            if not isinstance(n, INTEGER_TYPES) or isinstance(n, bool) or n <= 0:
                raise ValueError(f"GroupNorm: {name} must be a positive integer, got {n!r}")
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups, self.num_channels = int(num_groups), int(num_channels)
        self.eps, self.affine = eps, affine
        self._make_affine((self.num_channels,), affine, bias, dtype, device)

    def forward(self, input: Tensor) -> Tensor:
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")
