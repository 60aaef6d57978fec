"""Tensor: an ndarray plus what reverse-mode autodiff needs, and `apply`, which records the graph.

A Tensor produced by a primitive while grad mode is on and some input requires grad carries a
`Node`: the primitive, its arguments, its parameters and its output array. Nodes point only to their
inputs, never to their outputs, so a graph is freed by reference counting the moment the loss
tensor goes away. Every tensor has a version counter (shared with `detach()`); in-place methods bump
it, and backward refuses to use an array that changed after the forward pass saw it.
"""

from __future__ import annotations

import functools
import itertools
from collections import namedtuple
from types import SimpleNamespace

import numpy as np

from .grad_mode import _State, no_grad
from .ops import PRIMITIVES, Primitive

_P = PRIMITIVES
_SEQUENCE = itertools.count()
_DEFAULT = {"dtype": np.dtype(np.float32)}


def get_default_dtype() -> np.dtype:
    """The dtype that Python floats (lists, scalars) become: float32 unless changed."""
    return _DEFAULT["dtype"]


def set_default_dtype(dtype) -> None:
    """Set the dtype that Python floats become (float32 or float64)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"default dtype must be float32 or float64, got {dtype}")
    _DEFAULT["dtype"] = dtype


class Node:
    """One recorded application of a primitive; its backward is the primitive's VJPs.

    Everything backward needs is gathered once, here: the arrays behind the arguments, the
    edges (argument position, tensor) along which gradients flow, and each argument's version
    at record time.
    """

    __slots__ = ("prim", "args", "arrays", "params", "out", "saved", "out_vc", "versions",
                 "edges", "seq")

    def __init__(self, prim: Primitive, args: tuple, arrays: list, params: dict,
                 out: np.ndarray, saved=None):
        self.prim = prim
        self.args = args
        self.arrays = arrays
        self.params = params
        self.out = out
        self.saved = saved
        self.out_vc = [0]
        self.versions = [(a._vc, a._vc[0]) for a in args if isinstance(a, Tensor)]
        self.edges = [(i, a) for i, a in enumerate(args)
                      if isinstance(a, Tensor) and a.requires_grad]
        # creation order: every node is made after the nodes of its inputs, so decreasing seq
        # is a topological order for the backward pass
        self.seq = next(_SEQUENCE)

    def name(self) -> str:
        return "".join(part.capitalize() for part in self.prim.name.split("_")) + "Backward"

    def __repr__(self) -> str:
        return f"<{self.name()}>"


def _wrap(data: np.ndarray, requires_grad: bool = False, node: Node | None = None) -> Tensor:
    t = object.__new__(Tensor)
    t._data = data
    t.requires_grad = requires_grad
    t.grad = None
    t._node = node
    t._vc = node.out_vc if node is not None else [0]
    return t


def apply(prim: Primitive, *args, **params) -> Tensor:
    """Run a primitive's forward on the arrays behind `args`, recording a node when needed.

    Arguments that are not Tensors (ndarrays, Python scalars) are constants and pass through
    unchanged, so NumPy's weak Python-scalar promotion keeps float32 as float32.
    """
    arrays = [a._data if isinstance(a, Tensor) else a for a in args]
    out = prim.forward(*arrays, **params)
    saved = None
    if prim.saves:
        out, saved = out
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    if _State.enabled:
        for a in args:
            if isinstance(a, Tensor) and a.requires_grad:
                return _wrap(out, True, Node(prim, args, arrays, params, out, saved))
    return _wrap(out)


def _to_array(data, dtype=None) -> np.ndarray:
    """Python data takes torch's dtypes (floats: the default dtype, ints: int64, bools: bool);
    ndarrays keep theirs. Always a copy, as torch.tensor copies."""
    if isinstance(data, Tensor):
        data = data._data
    if isinstance(data, np.ndarray):
        return np.array(data, dtype=dtype)
    arr = np.array(data)
    if dtype is None:
        if arr.dtype.kind == "f":
            dtype = _DEFAULT["dtype"]
        elif arr.dtype.kind in "iu":
            dtype = np.int64
        elif arr.dtype.kind != "b":
            raise TypeError(f"cannot make a tensor from data of type {arr.dtype}")
    return arr.astype(dtype, copy=False) if dtype is not None else arr


def _check_grad_dtype(data: np.ndarray) -> None:
    if data.dtype.kind != "f":
        raise TypeError("only floating-point tensors can require gradients, "
                        f"got dtype {data.dtype}")


def _normalize_index(index):
    """Tensors and lists inside an index become ndarrays, so NumPy indexing rules apply."""
    def one(i):
        if isinstance(i, Tensor):
            return i._data
        if isinstance(i, list):
            return np.asarray(i)
        return i
    return tuple(one(i) for i in index) if isinstance(index, tuple) else one(index)


def _axes(dim):
    """torch's dim (int, tuple or None) as a NumPy axis."""
    if dim is None or isinstance(dim, int):
        return dim
    return tuple(dim)


class Tensor:
    """An n-dimensional array that records the operations applied to it for reverse-mode autodiff.

    Create with `retrograd.tensor(data, requires_grad=False, dtype=None)`.
    """

    __slots__ = ("_data", "requires_grad", "grad", "_node", "_vc", "__weakref__")
    # NumPy must hand `ndarray (op) Tensor` back to Tensor's reflected operators.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self._data = _to_array(data, dtype)
        if requires_grad:
            _check_grad_dtype(self._data)
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._node = None
        self._vc = [0]

    # ------------------------------------------------------------------ properties, conversions
    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self) -> Node | None:
        return self._node

    @property
    def data(self) -> Tensor:
        """The same array, outside the graph and its version tracking (torch's `.data`)."""
        return _wrap(self._data)

    @data.setter
    def data(self, value) -> None:
        self._data = value._data if isinstance(value, Tensor) else np.asarray(value)

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self) -> Tensor:
        return self.transpose(-2, -1)

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return self._data.size

    def numpy(self) -> np.ndarray:
        """The underlying ndarray (shared, not copied)."""
        return self._data

    def tolist(self):
        return self._data.tolist()

    def item(self):
        return self._data.item()

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and np.dtype(dtype) != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self._data

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self._data)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self) -> bool:
        return bool(self._data)

    def __float__(self) -> float:
        return float(self._data)

    def __int__(self) -> int:
        return int(self._data)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", prefix="tensor(")
        extra = ""
        if self._data.dtype not in (_DEFAULT["dtype"], np.int64, np.bool_):
            extra += f", dtype={self._data.dtype}"
        if self._node is not None:
            extra += f", grad_fn={self._node!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def detach(self) -> Tensor:
        """The same array (and version counter), cut from the graph."""
        t = _wrap(self._data)
        t._vc = self._vc
        return t

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad:
            _check_grad_dtype(self._data)
        self.requires_grad = requires_grad
        return self

    def backward(self, gradient=None, retain_graph=None, create_graph=False) -> None:
        """Accumulate d(self)/d(leaf) into each leaf's `.grad`; `gradient` is needed unless
        self is a scalar."""
        from .engine import backward

        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph)

    # ------------------------------------------------------------------ casting
    def to(self, dtype) -> Tensor:
        dtype = np.dtype(dtype)
        if dtype == self._data.dtype:
            return self
        if dtype.kind == "f" and self._data.dtype.kind == "f":
            return apply(_P["astype"], self, dtype=dtype)
        return _wrap(self._data.astype(dtype))

    astype = to

    def float(self) -> Tensor:
        return self.to(np.float32)

    def double(self) -> Tensor:
        return self.to(np.float64)

    def long(self) -> Tensor:
        return self.to(np.int64)

    def int(self) -> Tensor:
        return self.to(np.int32)

    def bool(self) -> Tensor:
        return self.to(np.bool_)

    def clone(self) -> Tensor:
        """A differentiable copy."""
        return apply(_P["astype"], self, dtype=self._data.dtype)

    # ------------------------------------------------------------------ arithmetic
    def _operand(self, other):
        """Python and NumPy scalars stay weak (float32 op 0.5 is float32, as in torch)."""
        if isinstance(other, (Tensor, np.ndarray)):
            return other
        if isinstance(other, np.generic):
            return other.item()
        if isinstance(other, (int, float, bool)):
            return other
        return _wrap(_to_array(other))

    def _floating(self, other=None) -> Tensor:
        """Integer tensors meet float scalars or true division as the default float dtype."""
        if self._data.dtype.kind in "iub" and (other is None or isinstance(other, float)):
            return _wrap(self._data.astype(_DEFAULT["dtype"]))
        return self

    def __add__(self, other):
        other = self._operand(other)
        return apply(_P["add"], self._floating(other), other)

    def __radd__(self, other):
        other = self._operand(other)
        return apply(_P["add"], other, self._floating(other))

    def __sub__(self, other):
        other = self._operand(other)
        return apply(_P["sub"], self._floating(other), other)

    def __rsub__(self, other):
        other = self._operand(other)
        return apply(_P["sub"], other, self._floating(other))

    def __mul__(self, other):
        other = self._operand(other)
        return apply(_P["mul"], self._floating(other), other)

    def __rmul__(self, other):
        other = self._operand(other)
        return apply(_P["mul"], other, self._floating(other))

    def __truediv__(self, other):
        return apply(_P["div"], self._floating(), self._operand(other))

    def __rtruediv__(self, other):
        return apply(_P["div"], self._operand(other), self._floating())

    def __pow__(self, other):
        other = self._operand(other)
        return apply(_P["pow"], self._floating(other), other)

    def __rpow__(self, other):
        other = self._operand(other)
        return apply(_P["pow"], other, self._floating(other))

    def __neg__(self):
        return apply(_P["neg"], self)

    def __pos__(self):
        return self

    def __matmul__(self, other):
        other = other if isinstance(other, Tensor) else _wrap(_to_array(other))
        _check_matmul(self.shape, other.shape)
        return apply(_P["matmul"], self, other)

    def __rmatmul__(self, other):
        other = _wrap(_to_array(other))
        _check_matmul(other.shape, self.shape)
        return apply(_P["matmul"], other, self)

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
        other = other._data if isinstance(other, Tensor) else other
        return _wrap(op(self._data, other))

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
        return _wrap(~self._data)

    # ------------------------------------------------------------------ elementwise functions
    def exp(self):
        return apply(_P["exp"], self._floating())

    def log(self):
        return apply(_P["log"], self._floating())

    def sqrt(self):
        return apply(_P["sqrt"], self._floating())

    def abs(self):
        return apply(_P["abs"], self)

    def sign(self):
        return apply(_P["sign"], self)

    def tanh(self):
        return apply(_P["tanh"], self._floating())

    def sigmoid(self):
        return apply(_P["sigmoid"], self._floating())

    def relu(self):
        return apply(_P["relu"], self)

    def square(self):
        return self * self

    def clamp(self, min=None, max=None):
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        return apply(_P["clamp"], self, min=min, max=max)

    clip = clamp

    def softmax(self, dim: int):
        return apply(_P["softmax"], self._floating(), axis=dim)

    def log_softmax(self, dim: int):
        return apply(_P["log_softmax"], self._floating(), axis=dim)

    # ------------------------------------------------------------------ reductions
    def sum(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """Sum over `dim` (torch's names; NumPy's `axis` / `keepdims` are accepted too)."""
        dim = _axes(axis if dim is None else dim)
        keepdim = keepdim if keepdims is None else keepdims
        return apply(_P["sum"], self, axis=dim, keepdims=keepdim)

    def mean(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        dim = _axes(axis if dim is None else dim)
        keepdim = keepdim if keepdims is None else keepdims
        total = self._floating().sum(dim, keepdim)
        return total / (self.numel() // max(total.numel(), 1))

    def amax(self, dim=None, keepdim=False):
        return apply(_P["amax"], self, axis=_axes(dim), keepdims=keepdim)

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
        return _wrap(np.asarray(np.argmax(self._data, axis=dim, keepdims=keepdim)))

    def argmin(self, dim=None, keepdim=False):
        return _wrap(np.asarray(np.argmin(self._data, axis=dim, keepdims=keepdim)))

    # ------------------------------------------------------------------ shapes
    def reshape(self, *shape):
        shape = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape
        if shape == self.shape:
            return self
        return apply(_P["reshape"], self, shape=shape)

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
        return apply(_P["transpose"], self, axes=axes)

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
        return apply(_P["broadcast_to"], self, shape=shape)

    def expand_as(self, other: Tensor):
        return self.expand(other.shape)

    def __getitem__(self, index):
        return apply(_P["getitem"], self, index=_normalize_index(index))

    # ------------------------------------------------------------------ in-place
    def _before_inplace(self) -> None:
        if self.requires_grad and _State.enabled:
            where = "a leaf tensor that requires grad" if self._node is None else \
                "a tensor that is part of a graph"
            raise RuntimeError(f"in-place operation on {where}; wrap it in retrograd.no_grad() "
                               "or use the out-of-place form")
        self._vc[0] += 1

    def __setitem__(self, index, value) -> None:
        self._before_inplace()
        self._data[_normalize_index(index)] = value._data if isinstance(value, Tensor) else value

    def zero_(self) -> Tensor:
        self._before_inplace()
        self._data[...] = 0
        return self

    def fill_(self, value) -> Tensor:
        self._before_inplace()
        self._data[...] = value
        return self

    def copy_(self, src) -> Tensor:
        """Copy `src` into this tensor's array, casting to this tensor's dtype."""
        src = src._data if isinstance(src, Tensor) else np.asarray(src)
        if np.broadcast_shapes(src.shape, self.shape) != self.shape:
            raise ValueError(f"copy_: cannot copy shape {src.shape} into shape {self.shape}")
        self._before_inplace()
        np.copyto(self._data, src, casting="unsafe")
        return self

    def add_(self, other, alpha=1) -> Tensor:
        self._before_inplace()
        other = other._data if isinstance(other, Tensor) else other
        self._data += other if alpha == 1 else alpha * other
        return self

    def sub_(self, other, alpha=1) -> Tensor:
        return self.add_(other, alpha=-alpha)

    def mul_(self, other) -> Tensor:
        self._before_inplace()
        self._data *= other._data if isinstance(other, Tensor) else other
        return self

    def div_(self, other) -> Tensor:
        self._before_inplace()
        self._data /= other._data if isinstance(other, Tensor) else other
        return self

    def clamp_(self, min=None, max=None) -> Tensor:
        self._before_inplace()
        np.clip(self._data, min, max, out=self._data)
        return self


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


class Parameter(Tensor):
    """A Tensor that a Module registers as a learnable parameter (requires_grad by default)."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = np.empty(0, dtype=_DEFAULT["dtype"])
        self._data = data._data if isinstance(data, Tensor) else np.asarray(data)
        if requires_grad:
            _check_grad_dtype(self._data)
        self.requires_grad = requires_grad
        self.grad = None
        self._node = None
        self._vc = [0]

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def _graph_namespace() -> SimpleNamespace:
    """xp under create_graph: each primitive applied to Tensors, recording nodes."""
    functions = {name: functools.partial(apply, prim) for name, prim in PRIMITIVES.items()}
    return SimpleNamespace(raw=lambda a: a._data if isinstance(a, Tensor) else a, **functions)


GRAPH_NS = _graph_namespace()

__all__ = ["Tensor", "Parameter", "Node", "apply", "no_grad", "GRAPH_NS"]
