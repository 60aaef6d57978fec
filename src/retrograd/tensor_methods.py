"""Tensor's mathematical methods: arithmetic, comparisons, element-wise functions, reductions,
shapes and indexing. Each is one primitive of `ops.py` applied through `tensor.apply` (or a few
composed), so none has gradient code of its own.

Tensor inherits them from `TensorMethods`; they live here to keep tensor.py about the graph.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

# tensor.py imports this module while it is being built; its names are looked up at call time.
from . import tensor as T


def _axes(dim):
    """torch's dim (int, tuple or None) as a NumPy axis."""
    if dim is None or isinstance(dim, int):
        return dim
    return tuple(dim)


_MinMax = namedtuple("_MinMax", ["values", "indices"])


def _check_matmul(a: tuple, b: tuple) -> None:
    if not a or not b:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a} and {b}")
    k_a = a[-1]
    k_b = b[0] if len(b) == 1 else b[-2]
    if k_a != k_b:
        raise ValueError(f"matmul: shapes {a} and {b} cannot be multiplied "
                         f"({k_a} columns on the left, {k_b} rows on the right)")
    try:
        np.broadcast_shapes(a[:-2], b[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of {a} and {b} do not broadcast") from None


class TensorMethods:
    """Mixed into Tensor (which holds `_data`, `_node`, ...); no state of its own."""

    __slots__ = ()

    # ------------------------------------------------------------------ arithmetic
    def _operand(self, other):
        """Python and NumPy scalars stay weak (float32 op 0.5 is float32, as in torch)."""
        if isinstance(other, (T.Tensor, np.ndarray)):
            return other
        if isinstance(other, np.generic):
            return other.item()
        if isinstance(other, (int, float, bool)):
            return other
        return T._wrap(T._to_array(other))

    def _floating(self, other=None) -> T.Tensor:
        """Integer tensors meet float scalars or true division as the default float dtype."""
        if self._data.dtype.kind in "iub" and (other is None or isinstance(other, float)):
            return T._wrap(self._data.astype(T._DEFAULT["dtype"]))
        return self

    def __add__(self, other):
        other = self._operand(other)
        return T.apply(T._P["add"], self._floating(other), other)

    def __radd__(self, other):
        other = self._operand(other)
        return T.apply(T._P["add"], other, self._floating(other))

    def __sub__(self, other):
        other = self._operand(other)
        return T.apply(T._P["sub"], self._floating(other), other)

    def __rsub__(self, other):
        other = self._operand(other)
        return T.apply(T._P["sub"], other, self._floating(other))

    def __mul__(self, other):
        other = self._operand(other)
        return T.apply(T._P["mul"], self._floating(other), other)

    def __rmul__(self, other):
        other = self._operand(other)
        return T.apply(T._P["mul"], other, self._floating(other))

    def __truediv__(self, other):
        return T.apply(T._P["div"], self._floating(), self._operand(other))

    def __rtruediv__(self, other):
        return T.apply(T._P["div"], self._operand(other), self._floating())

    def __pow__(self, other):
        other = self._operand(other)
        return T.apply(T._P["pow"], self._floating(other), other)

    def __rpow__(self, other):
        other = self._operand(other)
        return T.apply(T._P["pow"], other, self._floating(other))

    def __neg__(self):
        return T.apply(T._P["neg"], self)

    def __pos__(self):
        return self

    def __matmul__(self, other):
        other = other if isinstance(other, T.Tensor) else T._wrap(T._to_array(other))
        _check_matmul(self.shape, other.shape)
        return T.apply(T._P["matmul"], self, other)

    def __rmatmul__(self, other):
        other = T._wrap(T._to_array(other))
        _check_matmul(other.shape, self.shape)
        return T.apply(T._P["matmul"], other, self)

    matmul = __matmul__

    def add(self, other, alpha=1):
        return self + (other * alpha if alpha != 1 else other)

    def sub(self, other, alpha=1):
        return self - (other * alpha if alpha != 1 else other)

    mul = __mul__
    div = __truediv__
    pow = __pow__

    # comparisons: no gradient, a bool tensor
    def _compare(self, op, other):
        other = other._data if isinstance(other, T.Tensor) else other
        return T._wrap(op(self._data, other))

    def __lt__(self, other):
        return self._compare(np.less, other)

    def __le__(self, other):
        return self._compare(np.less_equal, other)

    def __gt__(self, other):
        return self._compare(np.greater, other)

    def __ge__(self, other):
        return self._compare(np.greater_equal, other)

    def __eq__(self, other):
        return self._compare(np.equal, other)

    def __ne__(self, other):
        return self._compare(np.not_equal, other)

    def __and__(self, other):
        return self._compare(np.logical_and, other)

    def __or__(self, other):
        return self._compare(np.logical_or, other)

    def __invert__(self):
        return T._wrap(~self._data)

    # ------------------------------------------------------------------ elementwise functions
    def exp(self):
        return T.apply(T._P["exp"], self._floating())

    def log(self):
        return T.apply(T._P["log"], self._floating())

    def sqrt(self):
        return T.apply(T._P["sqrt"], self._floating())

    def abs(self):
        return T.apply(T._P["abs"], self)

    def sign(self):
        return T.apply(T._P["sign"], self)

    def tanh(self):
        return T.apply(T._P["tanh"], self._floating())

    def sigmoid(self):
        return T.apply(T._P["sigmoid"], self._floating())

    def relu(self):
        return T.apply(T._P["relu"], self)

    def square(self):
        return self * self

    def clamp(self, min=None, max=None):
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        return T.apply(T._P["clamp"], self, min=min, max=max)

    clip = clamp

    def softmax(self, dim: int):
        return T.apply(T._P["softmax"], self._floating(), axis=dim)

    def log_softmax(self, dim: int):
        return T.apply(T._P["log_softmax"], self._floating(), axis=dim)

    # ------------------------------------------------------------------ reductions
    def sum(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """Sum over `dim` (torch's names; NumPy's `axis` / `keepdims` are accepted too)."""
        dim = _axes(axis if dim is None else dim)
        keepdim = keepdim if keepdims is None else keepdims
        return T.apply(T._P["sum"], self, axis=dim, keepdims=keepdim)

    def mean(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        dim = _axes(axis if dim is None else dim)
        keepdim = keepdim if keepdims is None else keepdims
        total = self._floating().sum(dim, keepdim)
        return total / (self.numel() // max(total.numel(), 1))

    def amax(self, dim=None, keepdim=False):
        return T.apply(T._P["amax"], self, axis=_axes(dim), keepdims=keepdim)

    def amin(self, dim=None, keepdim=False):
        return -((-self).amax(dim, keepdim))

    def max(self, dim=None, keepdim=False):
        """max() is the largest value; max(dim) is (values, indices) as in torch."""
        if dim is None:
            return self.amax()
        return _MinMax(self.amax(dim, keepdim), self.argmax(dim, keepdim))

    def min(self, dim=None, keepdim=False):
        if dim is None:
            return self.amin()
        return _MinMax(self.amin(dim, keepdim), self.argmin(dim, keepdim))

    def argmax(self, dim=None, keepdim=False):
        return T._wrap(np.asarray(np.argmax(self._data, axis=dim, keepdims=keepdim)))

    def argmin(self, dim=None, keepdim=False):
        return T._wrap(np.asarray(np.argmin(self._data, axis=dim, keepdims=keepdim)))

    # ------------------------------------------------------------------ shapes
    def reshape(self, *shape):
        shape = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape
        if shape == self.shape:
            return self
        return T.apply(T._P["reshape"], self, shape=shape)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        if self.ndim == 0:
            return self.reshape(1)
        start, end = start_dim % self.ndim, end_dim % self.ndim
        return self.reshape(self.shape[:start] + (-1,) + self.shape[end + 1:])

    def unsqueeze(self, dim: int):
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        dim = dim % self.ndim
        if self.shape[dim] != 1:
            return self
        return self.reshape(self.shape[:dim] + self.shape[dim + 1:])

    def permute(self, *dims):
        dims = tuple(dims[0]) if len(dims) == 1 and not isinstance(dims[0], int) else dims
        axes = tuple(d % self.ndim for d in dims) if self.ndim else ()
        if axes == tuple(range(self.ndim)):
            return self
        return T.apply(T._P["transpose"], self, axes=axes)

    def transpose(self, dim0: int, dim1: int):
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(*axes)

    def t(self):
        return self.T

    def expand(self, *sizes):
        sizes = tuple(sizes[0]) if len(sizes) == 1 and not isinstance(sizes[0], int) else sizes
        lead = len(sizes) - self.ndim
        shape = tuple(self.shape[i - lead] if n == -1 else n for i, n in enumerate(sizes))
        return T.apply(T._P["broadcast_to"], self, shape=shape)

    def expand_as(self, other: T.Tensor):
        return self.expand(other.shape)

    def __getitem__(self, index):
        return T.apply(T._P["getitem"], self, index=T._normalize_index(index))

