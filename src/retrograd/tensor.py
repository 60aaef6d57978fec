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
from types import SimpleNamespace

import numpy as np

from .grad_mode import _State, no_grad
from .ops import PRIMITIVES, Primitive
from .tensor_methods import TensorMethods

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

    Everything backward needs is gathered once, by `apply`: the arrays behind the arguments,
    the edges (argument position, tensor) along which gradients flow, and each argument's
    version at record time.
    """

    __slots__ = ("prim", "args", "arrays", "params", "out", "saved", "out_vc", "versions",
                 "edges", "wanted", "seq")

    def __init__(self, prim: Primitive, args: tuple, arrays: list, params: dict,
                 out: np.ndarray, saved, versions: list, edges: list, wanted: list):
        self.prim = prim
        self.args = args
        self.arrays = arrays
        self.params = params
        self.out = out
        self.saved = saved
        self.out_vc = [0]
        self.versions = versions  # (version counter, its value when recorded) per tensor arg
        self.edges = edges  # (argument position, tensor) for each argument that requires grad
        self.wanted = wanted  # those positions
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
    # one pass over the arguments gathers everything a node needs
    recording = _State.enabled
    arrays, versions, edges, wanted = [], [], [], []
    for i, a in enumerate(args):
        if isinstance(a, Tensor):
            arrays.append(a._data)
            if recording:
                vc = a._vc
                versions.append((vc, vc[0]))
                if a.requires_grad:
                    edges.append((i, a))
                    wanted.append(i)
        else:
            arrays.append(a)
    out = prim.forward(*arrays, **params)
    saved = None
    if prim.saves:
        out, saved = out
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    if not edges:
        return _wrap(out)
    return _wrap(out, True, Node(prim, args, arrays, params, out, saved, versions, edges, wanted))


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


class Tensor(TensorMethods):
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
        _engine.backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph)

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

# The backward pass lives in engine.py, which builds on everything above; imported last so that
# Tensor.backward needs no import statement per call.
from . import engine as _engine  # noqa: E402

__all__ = ["Tensor", "Parameter", "Node", "apply", "no_grad", "GRAPH_NS"]
