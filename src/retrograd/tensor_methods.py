"""Tensor's mathematical methods: arithmetic, comparisons, element-wise functions, reductions,
shapes and indexing. Each is one primitive of the table (retrograd.ops) applied through
`self._apply` (or a few composed), so none has gradient code of its own.

Tensor inherits them from `TensorMethods`; they live here to keep tensor.py about the graph.
This module does not import tensor.py: the class that mixes these methods in provides
`_apply(prim, *args, **params)` (record a primitive) and `_wrap(array)` (a tensor outside any
graph), and every Tensor is a TensorMethods.
"""

from __future__ import annotations

import operator
from collections import namedtuple

from . import backend
from .backend import default_float
from .ops import PRIMITIVES as _P


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
        backend.host.broadcast_shapes(a[:-2], b[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of {a} and {b} do not broadcast") from None


def normalize_index(index, xp):
    """Tensors and lists inside an index become arrays of backend `xp`, so NumPy's indexing
    rules apply."""
    def one(i):
        if isinstance(i, TensorMethods):
            return i._data
        if isinstance(i, list):
            return xp.asarray(i)
        return i
    return tuple(one(i) for i in index) if isinstance(index, tuple) else one(index)


class TensorMethods:
    """Mixed into Tensor (which holds `_data`, `_node`, ... and provides `_apply` and
    `_wrap`); no state of its own."""

    __slots__ = ()

    # ------------------------------------------------------------------ arithmetic
    def _operand(self, other):
        """Python and NumPy scalars stay weak (float32 op 0.5 is float32, as in torch)."""
        kind = type(other)
        if kind is float or kind is int or isinstance(other, TensorMethods):
            return other
        if backend.is_array_scalar(other):  # before float: a NumPy float64 is a float
            return other.item()
        if isinstance(other, (int, float, bool)) or backend.is_array(other):
            return other
        return self._wrap(backend.from_data(other))

    def _floating(self, other=None):
        """Integer tensors meet float scalars or true division as the default float dtype."""
        if self._data.dtype.kind in "iub" and (other is None or isinstance(other, float)):
            return self._wrap(self._data.astype(default_float()))
        return self

    def __add__(self, other):
        other = self._operand(other)
        return self._apply(_P["add"], self._floating(other), other)

    def __radd__(self, other):
        other = self._operand(other)
        return self._apply(_P["add"], other, self._floating(other))

    def __sub__(self, other):
        other = self._operand(other)
        return self._apply(_P["sub"], self._floating(other), other)

    def __rsub__(self, other):
        other = self._operand(other)
        return self._apply(_P["sub"], other, self._floating(other))

    def __mul__(self, other):
        other = self._operand(other)
        return self._apply(_P["mul"], self._floating(other), other)

    def __rmul__(self, other):
        other = self._operand(other)
        return self._apply(_P["mul"], other, self._floating(other))

    def __truediv__(self, other):
        return self._apply(_P["div"], self._floating(), self._operand(other))

    def __rtruediv__(self, other):
        return self._apply(_P["div"], self._operand(other), self._floating())

    def __pow__(self, other):
        other = self._operand(other)
        return self._apply(_P["pow"], self._floating(other), other)

    def __rpow__(self, other):
        other = self._operand(other)
        return self._apply(_P["pow"], other, self._floating(other))

    def __neg__(self):
        return self._apply(_P["neg"], self)

    def __pos__(self):
        return self

    def __matmul__(self, other):
        if not isinstance(other, TensorMethods):
            other = self._wrap(backend.from_data(other))
        _check_matmul(self.shape, other.shape)
        return self._apply(_P["matmul"], self, other)

    def __rmatmul__(self, other):
        other = self._wrap(backend.from_data(other))
        _check_matmul(other.shape, self.shape)
        return self._apply(_P["matmul"], other, self)

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
        other = other._data if isinstance(other, TensorMethods) else other
        return self._wrap(op(self._data, other))

    def __lt__(self, other):
        return self._compare(operator.lt, other)

    def __le__(self, other):
        return self._compare(operator.le, other)

    def __gt__(self, other):
        return self._compare(operator.gt, other)

    def __ge__(self, other):
        return self._compare(operator.ge, other)

    def __eq__(self, other):
        return self._compare(operator.eq, other)

    def __ne__(self, other):
        return self._compare(operator.ne, other)

    def __and__(self, other):
        return self._compare(backend.of(self._data).logical_and, other)

    def __or__(self, other):
        return self._compare(backend.of(self._data).logical_or, other)

    def __invert__(self):
        return self._wrap(~self._data)

    # ------------------------------------------------------------------ elementwise functions
    def exp(self):
        return self._apply(_P["exp"], self._floating())

    def log(self):
        return self._apply(_P["log"], self._floating())

    def sqrt(self):
        return self._apply(_P["sqrt"], self._floating())

    def abs(self):
        return self._apply(_P["abs"], self)

    def sign(self):
        return self._apply(_P["sign"], self)

    def tanh(self):
        return self._apply(_P["tanh"], self._floating())

    def sigmoid(self):
        return self._apply(_P["sigmoid"], self._floating())

    def relu(self):
        return self._apply(_P["relu"], self)

    def square(self):
        return self * self

    def clamp(self, min=None, max=None):
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        return self._apply(_P["clamp"], self, min=min, max=max)

    clip = clamp

    def softmax(self, dim: int):
        return self._apply(_P["softmax"], self._floating(), axis=dim)

    def log_softmax(self, dim: int):
        return self._apply(_P["log_softmax"], self._floating(), axis=dim)

    # ------------------------------------------------------------------ reductions
    def sum(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """Sum over `dim` (torch's names; NumPy's `axis` / `keepdims` are accepted too)."""
        dim = _axes(axis if dim is None else dim)
        keepdim = keepdim if keepdims is None else keepdims
        return self._apply(_P["sum"], self, axis=dim, keepdims=keepdim)

    def mean(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        dim = _axes(axis if dim is None else dim)
        keepdim = keepdim if keepdims is None else keepdims
        total = self._floating().sum(dim, keepdim)
        return total / (self.numel() // max(total.numel(), 1))

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        """sum((x - mean)^2) / (n - correction) over `dim` (all axes when None); correction
        1 (Bessel's) unless given, or unbiased=False (0), as torch.var."""
        if isinstance(dim, bool) and unbiased is None:  # var(unbiased) positionally
            dim, unbiased = None, dim
        if unbiased is not None and correction is not None:
            raise ValueError("var: give unbiased or correction, not both")
        if correction is None:
            correction = 0 if unbiased is False else 1
        dim = _axes(dim)
        x = self._floating()
        d = x - x.mean(dim, keepdim=True)
        total = (d * d).sum(dim, keepdim)
        n = self.numel() // max(total.numel(), 1)
        return total / max(n - correction, 0)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        """sqrt(var(...)), with var's arguments."""
        return self.var(dim, unbiased, keepdim, correction=correction).sqrt()

    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        """The p-norm over `dim` (all elements when None): (sum |x|^p)^(1/p); 'fro' and 2 the
        Euclidean norm, inf / -inf the largest / smallest |x|, 0 the count of non-zeros. The
        gradient at a zero norm is 0, as torch's."""
        x = (self if dtype is None else self.to(dtype))._floating()
        dim = _axes(dim)
        if p == "fro" or p == 2:
            order = 2
        elif p in (float("inf"), float("-inf")):
            a = x.abs()
            return a.amax(dim, keepdim) if p > 0 else a.amin(dim, keepdim)
        elif isinstance(p, (int, float)) and not isinstance(p, bool):
            order = float(p)
        else:
            raise ValueError(f"norm: p must be a number, 'fro' or inf, got {p!r}")
        return self._apply(_P["vector_norm"], x, ord=order, axis=dim, keepdims=keepdim)

    def amax(self, dim=None, keepdim=False):
        return self._apply(_P["amax"], self, axis=_axes(dim), keepdims=keepdim)

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
        xp = backend.of(self._data)
        return self._wrap(xp.asarray(xp.argmax(self._data, axis=dim, keepdims=keepdim)))

    def argmin(self, dim=None, keepdim=False):
        xp = backend.of(self._data)
        return self._wrap(xp.asarray(xp.argmin(self._data, axis=dim, keepdims=keepdim)))

    # ------------------------------------------------------------------ shapes
    def reshape(self, *shape):
        shape = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape
        if shape == self.shape:
            return self
        return self._apply(_P["reshape"], self, shape=shape)

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
        return self._apply(_P["transpose"], self, axes=axes)

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
        return self._apply(_P["broadcast_to"], self, shape=shape)

    def expand_as(self, other):
        return self.expand(other.shape)

    def __getitem__(self, index):
        index = normalize_index(index, backend.of(self._data))
        return self._apply(_P["getitem"], self, index=index)

