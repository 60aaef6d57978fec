"""Convolution layers: Conv1d, Conv2d (torch's arguments, attributes, initialization and
state_dict keys: weight (out_channels, in_channels / groups, *kernel_size), bias)."""

from __future__ import annotations

from ...backend import INTEGER_TYPES, as_dtype
from ...backend import host as _host
from ...tensor import Parameter, Tensor, get_default_dtype
from .. import init
from ..functional_conv import convolution, ntuple
from ..functional_pad import pad
from ..module import Module

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """The d-dimensional convolution layer (d = _dims)."""

    _dims = 0
    _optional_parameters = ("bias",)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None):
        super().__init__()
        d, where = self._dims, type(self).__name__
        for name, n in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("groups", groups)):
            if not isinstance(n, INTEGER_TYPES) or isinstance(n, bool) or n <= 0:
                raise ValueError(f"{where}: {name} must be a positive integer, got {n!r}")
        if in_channels % groups:
            raise ValueError(f"{where}: in_channels ({in_channels}) must be divisible by groups "
                             f"({groups})")
        if out_channels % groups:
            raise ValueError(f"{where}: out_channels ({out_channels}) must be divisible by "
                             f"groups ({groups})")
        self.kernel_size = ntuple(kernel_size, d, "kernel_size", where)
        self.stride = ntuple(stride, d, "stride", where)
        self.dilation = ntuple(dilation, d, "dilation", where)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{where}: padding must be 'same', 'valid', an integer or {d} "
                                 f"integers, got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{where}: padding='same' is not supported for strided "
                                 f"convolutions (stride {self.stride})")
            self.padding = padding
        else:
            self.padding = ntuple(padding, d, "padding", where, minimum=0)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{where}: padding_mode must be one of {PADDING_MODES}, got "
                             f"{padding_mode!r}")
        self.padding_mode = padding_mode
        # torch's attribute: F.pad's amounts (last axis first) for the other padding modes
        if self.padding == "same":
            totals = [dl * (k - 1) for dl, k in zip(self.dilation, self.kernel_size, strict=True)]
            self._reversed_padding_repeated_twice = [
                n for t in reversed(totals) for n in (t // 2, t - t // 2)]
        elif self.padding == "valid":
            self._reversed_padding_repeated_twice = [0] * (2 * d)
        else:
            self._reversed_padding_repeated_twice = [p for p in reversed(self.padding)
                                                     for _ in range(2)]
        self.in_channels, self.out_channels, self.groups = \
            int(in_channels), int(out_channels), int(groups)
        dtype = as_dtype(dtype) if dtype is not None else get_default_dtype()
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(_host.empty(shape, dtype=dtype))
        self.bias = Parameter(_host.empty(self.out_channels, dtype=dtype)) if bias else None
        self.reset_parameters()
        if device is not None:  # made (and initialized) on the host, then moved: one seed
            self.to(device)     # gives the same weights on every device

    def reset_parameters(self) -> None:
        init.layer_default_(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return self._convolve(input, relu=False)

    def forward_relu(self, input: Tensor) -> Tensor:
        """relu(self(input)) as one node (Sequential's fusion rule)."""
        return self._convolve(input, relu=True)

    def _convolve(self, input: Tensor, relu: bool) -> Tensor:
        padding = self.padding
        if self.padding_mode != "zeros":  # as torch: F.pad in that mode, then no padding
            input = pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = (0,) * self._dims
        return convolution(input, self.weight, self.bias, self.stride, padding,
                           self.dilation, self.groups, self._dims, type(self).__name__,
                           relu=relu)

    def extra_repr(self) -> str:
        d = self._dims
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0,) * d:
            text += f", padding={self.padding}"
        if self.dilation != (1,) * d:
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text


class Conv1d(_ConvNd):
    """1-D convolution over (N, C_in, L) (or unbatched (C_in, L)) inputs."""

    _dims = 1


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W) (or unbatched (C_in, H, W)) inputs."""

    _dims = 2
