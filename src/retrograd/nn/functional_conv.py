"""Convolutions and pooling as functions, with torch's signatures, defaults and checks: conv1d,
conv2d, max_pool1d/2d, avg_pool1d/2d, adaptive_avg_pool1d/2d.

Each checks its arguments (input rank and channels, groups, kernel against the padded input,
integer strides) and raises one ValueError naming the sizes before anything is computed, then
applies one primitive of the table (retrograd.ops.conv, retrograd.ops.pool). An unbatched
input (C, *S) is accepted as torch does and gives an unbatched output.
"""

from __future__ import annotations

from .. import backend
from ..backend import INTEGER_TYPES
from ..backend import host as _host
from ..ops import PRIMITIVES
from ..tensor import Tensor, _wrap, apply

_P = PRIMITIVES

__all__ = ["conv1d", "conv2d", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
           "adaptive_avg_pool1d", "adaptive_avg_pool2d"]


def _is_int(v) -> bool:
    return isinstance(v, INTEGER_TYPES) and not isinstance(v, bool)


def ntuple(value, d: int, name: str, where: str, minimum: int = 1) -> tuple[int, ...]:
    """An int or a d-sequence of ints >= minimum, as a d-tuple (ValueError otherwise)."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,) * d
    if len(items) != d or not all(_is_int(v) and v >= minimum for v in items):
        kind = "positive integers" if minimum == 1 else f"integers >= {minimum}"
        raise ValueError(f"{where}: {name} must be {kind} (one, or {d} of them), got {value!r}")
    return tuple(int(v) for v in items)


def _shape(t) -> tuple[int, ...]:
    return tuple(t.shape)


def _batched(input: Tensor, d: int, where: str) -> tuple[Tensor, bool]:
    """(input with a batch axis, whether one was added); ValueError on a wrong rank."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{where}: input must be a Tensor, got {type(input).__name__}")
    if input.ndim not in (d + 1, d + 2):
        raise ValueError(f"{where}: expected {d + 1}-D (unbatched) or {d + 2}-D (batched) input, "
                         f"got input of shape {_shape(input)}")
    if input.dtype.kind != "f":
        raise TypeError(f"{where}: input must be floating point, got dtype {input.dtype}")
    if input.ndim == d + 1:
        return input.unsqueeze(0), True
    return input, False


def conv_padding(padding, kernel, stride, dilation, d: int, where: str):
    """torch's padding argument ('valid', 'same', an int or a d-tuple) as (lo, hi) pairs;
    'same' puts the odd extra element at the end, as torch does."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * d
        if padding != "same":
            raise ValueError(f"{where}: padding must be 'valid', 'same', an integer or {d} "
                             f"integers, got {padding!r}")
        if any(s != 1 for s in stride):
            raise ValueError(f"{where}: padding='same' is not supported for strided "
                             f"convolutions (stride {stride})")
        pairs = []
        for k, dil in zip(kernel, dilation, strict=True):
            total = dil * (k - 1)
            pairs.append((total // 2, total - total // 2))
        return tuple(pairs)
    return tuple((p, p) for p in ntuple(padding, d, "padding", where, minimum=0))


def _check_kernel_fits(spatial, kernel, padding, dilation, where: str) -> None:
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(spatial, padding, strict=True))
    reach = tuple(dil * (k - 1) + 1 for k, dil in zip(kernel, dilation, strict=True))
    if any(r > p for r, p in zip(reach, padded, strict=True)):
        dilated = "" if reach == tuple(kernel) else f" (dilated to {reach})"
        raise ValueError(f"{where}: the kernel of size {tuple(kernel)}{dilated} is larger than "
                         f"the padded input of size {padded} (input size {tuple(spatial)})")


def convolution(input: Tensor, weight: Tensor, bias: Tensor | None, stride, padding, dilation,
                groups: int, d: int, where: str, relu: bool = False) -> Tensor:
    """The checked d-dimensional convolution (relu: followed by a ReLU in the same node)."""
    x, unbatched = _batched(input, d, where)
    if not isinstance(weight, Tensor) or weight.ndim != d + 2:
        raise ValueError(f"{where}: weight must be a {d + 2}-D tensor (out_channels, "
                         f"in_channels / groups, kernel...), got shape "
                         f"{_shape(weight) if isinstance(weight, Tensor) else weight!r}")
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"{where}: groups must be a positive integer, got {groups!r}")
    cout, cin_group = weight.shape[:2]
    if x.shape[1] != cin_group * groups:
        raise ValueError(f"{where}: groups={groups} and a weight of shape {_shape(weight)} "
                         f"expect input with {cin_group * groups} channels, got input of shape "
                         f"{_shape(input)} with {x.shape[1]} channels")
    if cout % groups:
        raise ValueError(f"{where}: out_channels ({cout}, the weight's first size) must be "
                         f"divisible by groups ({groups})")
    if bias is not None and _shape(bias) != (cout,):
        raise ValueError(f"{where}: bias must have shape ({cout},), got {_shape(bias)}")
    if weight.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype):
        raise TypeError(f"{where}: input ({x.dtype}), weight ({weight.dtype})"
                        + (f" and bias ({bias.dtype})" if bias is not None else "")
                        + " must have the same dtype")
    stride = ntuple(stride, d, "stride", where)
    dilation = ntuple(dilation, d, "dilation", where)
    kernel = tuple(weight.shape[2:])
    pads = conv_padding(padding, kernel, stride, dilation, d, where)
    _check_kernel_fits(x.shape[2:], kernel, pads, dilation, where)
    args = (x, weight) if bias is None else (x, weight, bias)
    out = apply(_P["conv"], *args, stride=stride, padding=pads, dilation=dilation,
                groups=int(groups), relu=relu)
    return out.squeeze(0) if unbatched else out


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """out[n, o, l] = b[o] + sum_{c, k} w[o, c, k] x[n, g(o) C/G + c, l stride + k dilation - p]
    (torch.nn.functional.conv1d: zero padding; 'valid' or 'same' accepted)."""
    return convolution(input, weight, bias, stride, padding, dilation, groups, 1, "conv1d")


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """The 2-D convolution (torch.nn.functional.conv2d), one primitive: im2col + GEMM."""
    return convolution(input, weight, bias, stride, padding, dilation, groups, 2, "conv2d")


# ---------------------------------------------------------------------------------- pooling


def pool_output_size(size: int, k: int, pad: int, stride: int, dilation: int,
                     ceil_mode: bool) -> int:
    """torch's pooling output size: floor (or ceil) of the window count, where with ceil_mode
    the last window must start inside the input or its left padding."""
    span = size + 2 * pad - dilation * (k - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _pool_geometry(x: Tensor, kernel_size, stride, padding, dilation, ceil_mode, d: int,
                   where: str):
    """(kernel, stride, (lo, hi) pairs, dilation) after torch's checks; hi covers the
    partial window that ceil_mode may add."""
    kernel = ntuple(kernel_size, d, "kernel_size", where)
    stride = kernel if stride is None or stride == [] or stride == () else \
        ntuple(stride, d, "stride", where)
    pad = ntuple(padding, d, "padding", where, minimum=0)
    dilation = ntuple(dilation, d, "dilation", where)
    if any(p > k // 2 for p, k in zip(pad, kernel, strict=True)):
        raise ValueError(f"{where}: padding {pad} must be at most half of the kernel size "
                         f"{kernel}")
    spatial = x.shape[2:]
    out = tuple(pool_output_size(s, k, p, st, dl, ceil_mode)
                for s, k, p, st, dl in zip(spatial, kernel, pad, stride, dilation, strict=True))
    if any(o < 1 for o in out):
        raise ValueError(f"{where}: the kernel of size {kernel} (dilation {dilation}) does not "
                         f"fit the input of spatial size {tuple(spatial)} with padding {pad}: "
                         f"the output would have size {out}")
    pairs = tuple((p, (o - 1) * st + dl * (k - 1) + 1 - s - p)
                  for s, k, p, st, dl, o in zip(spatial, kernel, pad, stride, dilation, out,
                                                strict=True))
    return kernel, stride, pairs, dilation


def _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, d,
              where):
    if return_indices:
        raise NotImplementedError(f"{where}: return_indices=True is not supported")
    x, unbatched = _batched(input, d, where)
    kernel, stride, pairs, dilation = _pool_geometry(x, kernel_size, stride, padding, dilation,
                                                     ceil_mode, d, where)
    out = apply(_P["max_pool"], x, kernel=kernel, stride=stride, padding=pairs,
                dilation=dilation)
    return out.squeeze(0) if unbatched else out


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False) -> Tensor:
    """The maximum of each window (torch.nn.functional.max_pool1d; stride defaults to the
    kernel size; the padding never wins)."""
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                     1, "max_pool1d")


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False) -> Tensor:
    """The maximum of each window (torch.nn.functional.max_pool2d)."""
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                     2, "max_pool2d")


def _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override, d, where):
    x, unbatched = _batched(input, d, where)
    kernel, stride, pairs, _ = _pool_geometry(x, kernel_size, stride, padding, 1, ceil_mode, d,
                                              where)
    if divisor_override is not None and (not _is_int(divisor_override) or divisor_override == 0):
        raise ValueError(f"{where}: divisor_override must be a non-zero integer, got "
                         f"{divisor_override!r}")
    out = apply(_P["avg_pool"], x, kernel=kernel, stride=stride, padding=pairs,
                count_include_pad=bool(count_include_pad), divisor_override=divisor_override)
    return out.squeeze(0) if unbatched else out


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """The mean of each window (torch.nn.functional.avg_pool1d: zero padding counted unless
    count_include_pad=False)."""
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1,
                     "avg_pool1d")


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """The mean of each window (torch.nn.functional.avg_pool2d)."""
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, 2, "avg_pool2d")


def _adaptive_matrix(size: int, out: int, dtype, like: Tensor,
                     transposed: bool = False) -> Tensor:
    """(size, out): column o averages input positions floor(o size/out) .. ceil((o+1) size/out)
    - 1, torch's adaptive windows (transposed: its (out, size) C-ordered transpose)."""
    m = _host.zeros((size, out), dtype=dtype)
    for o in range(out):
        start, end = (o * size) // out, -(-((o + 1) * size) // out)
        m[start:end, o] = 1.0 / (end - start)
    if transposed:
        m = _host.array(m.T, order="C")
    return _wrap(backend.move(m, like.device))  # made on the host, used where `like` lives


def _adaptive_sizes(output_size, spatial, d: int, where: str) -> tuple[int, ...]:
    items = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,) * d
    if len(items) != d:
        raise ValueError(f"{where}: output_size must be one integer or {d}, got {output_size!r}")
    sizes = tuple(s if o is None else o for o, s in zip(items, spatial, strict=True))
    if not all(_is_int(o) and o >= 1 for o in sizes):
        raise ValueError(f"{where}: output_size must be positive integers (or None: the input's "
                         f"size), got {output_size!r}")
    return tuple(int(o) for o in sizes)


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """Means over output_size windows that split the length as evenly as possible (torch's
    adaptive windows), as a product with a constant averaging matrix."""
    x, unbatched = _batched(input, 1, "adaptive_avg_pool1d")
    (o,) = _adaptive_sizes(output_size, x.shape[2:], 1, "adaptive_avg_pool1d")
    out = x @ _adaptive_matrix(x.shape[2], o, x.dtype, x)
    return out.squeeze(0) if unbatched else out


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Adaptive average pooling over height and width: two products with constant averaging
    matrices (rows, then columns)."""
    x, unbatched = _batched(input, 2, "adaptive_avg_pool2d")
    oh, ow = _adaptive_sizes(output_size, x.shape[2:], 2, "adaptive_avg_pool2d")
    rows = _adaptive_matrix(x.shape[2], oh, x.dtype, x, transposed=True)
    out = (rows @ x) @ _adaptive_matrix(x.shape[3], ow, x.dtype, x)
    return out.squeeze(0) if unbatched else out
