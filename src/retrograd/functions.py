"""Free functions over tensors, torch-style: creation (zeros, ones, arange...), `where`, `cat`,
`stack`, and the elementwise functions as functions (retrograd.exp(t) is t.exp())."""

from __future__ import annotations

from . import backend
from .backend import INTEGER_TYPES, as_dtype, dtypes
from .ops import PRIMITIVES
from .tensor import (
    Tensor,
    _wrap,
    apply,
    from_numpy,  # noqa: F401  (re-exported: retrograd.functions.from_numpy)
    get_default_dtype,
)


def tensor(data, requires_grad: bool = False, dtype=None, device=None) -> Tensor:
    """A new tensor holding a copy of `data` (on `device`, the host when None).

    Python floats become the default dtype (float32), Python ints int64 and bools bool, as in
    torch; NumPy arrays keep their dtype (float64 works everywhere).
    """
    t = Tensor(data, dtype=dtype)
    if device is not None:
        t = t.to(device)
    return t.requires_grad_(requires_grad) if requires_grad else t


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """`data` as a tensor, sharing memory when it already is one (or an array) of that dtype
    and device."""
    if isinstance(data, Tensor):
        out = data
    elif backend.is_array(data) and (dtype is None or as_dtype(dtype) == data.dtype):
        out = _wrap(data)
    else:
        out = _wrap(backend.from_data(data, dtype))
    return out.to(device, dtype)


def _shape(size) -> tuple[int, ...]:
    if len(size) == 1 and not isinstance(size[0], INTEGER_TYPES):
        return tuple(size[0])
    return tuple(size)


def _made(array_of, dtype, device, requires_grad) -> Tensor:
    """A tensor around `array_of(xp)`, made by the backend of `device`."""
    t = _wrap(array_of(backend.for_device(device)))
    return t.requires_grad_(requires_grad) if requires_grad else t


def _filled(size, value, dtype, device, requires_grad) -> Tensor:
    dtype = as_dtype(dtype) if dtype is not None else get_default_dtype()
    return _made(lambda xp: xp.full(_shape(size), value, dtype=dtype), dtype, device,
                 requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of zeros of the given shape."""
    return _filled(size, 0, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of ones of the given shape."""
    return _filled(size, 1, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of the given shape with unspecified contents."""
    dtype = as_dtype(dtype) if dtype is not None else get_default_dtype()
    return _made(lambda xp: xp.empty(_shape(size), dtype=dtype), dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of `size` filled with fill_value (torch's dtype rule: a bool or int fill gives
    bool or int64 when dtype is None)."""
    if dtype is None:
        if isinstance(fill_value, bool):
            dtype = dtypes.bool_
        elif isinstance(fill_value, INTEGER_TYPES):
            dtype = dtypes.int64
    return _filled((size,), fill_value, dtype, device, requires_grad)


def _like(t: Tensor, dtype, device):
    return (dtype if dtype is not None else t.dtype,
            device if device is not None else t.device)


def zeros_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    """zeros of t's shape, dtype and device."""
    dtype, device = _like(t, dtype, device)
    return zeros(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    """ones of t's shape, dtype and device."""
    dtype, device = _like(t, dtype, device)
    return ones(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def empty_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    """An uninitialized tensor of t's shape, dtype and device."""
    dtype, device = _like(t, dtype, device)
    return empty(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(t: Tensor, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    """fill_value in t's shape, dtype and device."""
    dtype, device = _like(t, dtype, device)
    return full(t.shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    """torch.arange: int64 for integer arguments, the default float dtype otherwise."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_int = all(isinstance(v, INTEGER_TYPES) for v in (start, end, step))
        dtype = dtypes.int64 if is_int else get_default_dtype()
    return _made(lambda xp: xp.arange(start, end, step, dtype=dtype), dtype, device,
                 requires_grad)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad=False) -> Tensor:
    """`steps` evenly spaced values from start to end inclusive."""
    dtype = dtype or get_default_dtype()
    return _made(lambda xp: xp.linspace(start, end, steps, dtype=dtype), dtype, device,
                 requires_grad)


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """The n x m identity (m = n by default)."""
    dtype = dtype or get_default_dtype()
    return _made(lambda xp: xp.eye(n, m, dtype=dtype), dtype, device, requires_grad)


def _as_operand(x):
    return x if isinstance(x, (Tensor, int, float, bool)) else _wrap(backend.from_data(x))


def where(condition, input, other) -> Tensor:
    """input where condition holds, other elsewhere (broadcasting); no gradient to condition."""
    cond = condition._data if isinstance(condition, Tensor) else \
        backend.of(condition).asarray(condition)
    if cond.dtype != dtypes.bool_:
        raise TypeError(f"where: condition must be a bool tensor, got dtype {cond.dtype}")
    return apply(PRIMITIVES["where"], cond, _as_operand(input), _as_operand(other))


def cat(tensors, dim: int = 0) -> Tensor:
    """Concatenate along an existing dimension."""
    tensors = [_as_operand(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    first = tensors[0].shape
    axis = dim % max(len(first), 1)
    for t in tensors:
        same = t.ndim == len(first) and all(
            a == b for k, (a, b) in enumerate(zip(t.shape, first, strict=True)) if k != axis)
        if not same:
            raise ValueError("cat: shapes " + ", ".join(str(t.shape) for t in tensors) +
                             f" do not match outside dimension {dim}")
    return apply(PRIMITIVES["cat"], *tensors, axis=dim)


concatenate = cat


def stack(tensors, dim: int = 0) -> Tensor:
    """Join along a new dimension `dim`."""
    tensors = [_as_operand(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
    return cat([t.unsqueeze(dim) for t in tensors], dim=dim)


def matmul(a, b) -> Tensor:
    return _as_operand(a) @ b


def _method(name):
    def fn(input: Tensor, *args, **kwargs):
        return getattr(_as_operand(input), name)(*args, **kwargs)

    fn.__name__ = name
    fn.__doc__ = f"retrograd.{name}(t, ...) is t.{name}(...)."
    return fn


exp, log, sqrt, abs, sign, tanh, sigmoid, relu, clamp, sum, mean, amax, amin, argmax, argmin, \
    softmax, log_softmax, reshape, transpose, permute, flatten, unsqueeze, squeeze = (
        _method(n) for n in
        ("exp", "log", "sqrt", "abs", "sign", "tanh", "sigmoid", "relu", "clamp", "sum", "mean",
         "amax", "amin", "argmax", "argmin", "softmax", "log_softmax", "reshape", "transpose",
         "permute", "flatten", "unsqueeze", "squeeze"))
