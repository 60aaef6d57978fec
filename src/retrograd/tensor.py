"""Tensor: an ndarray plus what reverse-mode autodiff needs, and `apply`, which records the graph.

A Tensor produced by a primitive while grad mode is on and some input requires grad carries a
`Node`: the primitive, its arguments, its parameters and its output array. Nodes point only to their
inputs, never to their outputs, so a graph is freed by reference counting the moment the loss
tensor goes away. Every tensor has a version counter (shared with `detach()`); in-place methods bump
it, and backward refuses to use an array that changed after the forward pass saw it.
"""

from __future__ import annotations

import functools

from . import backend
from .backend import as_dtype, default_float, dtypes
from .backend import set_default_float as _set_default_float
from .backend.device import as_device, is_device_spec
from .engine import Node, retain_graphs, root_gradient, run_backward
from .grad_mode import _State, no_grad
from .ops import PRIMITIVES, Primitive, namespace
from .tensor_methods import TensorMethods, normalize_index
from .tensor_repr import format_tensor

_P = PRIMITIVES
_backend_of = backend.of
# the NumPy fast path of `backend.of`, for apply: one type comparison
_HOST, _HOST_ARRAY = backend.host, backend.host.ndarray


def get_default_dtype():
    """The dtype that Python floats (lists, scalars) become: float32 unless changed."""
    return default_float()


def set_default_dtype(dtype) -> None:
    """Set the dtype that Python floats become (float32 or float64)."""
    _set_default_float(dtype)


def _wrap(data, requires_grad: bool = False, node: Node | None = None) -> Tensor:
    """A Tensor around the array `data` (shared, not copied), with no checks: the library's
    own constructor for arrays it made. Other modules use `from_numpy`."""
    t = object.__new__(Tensor)
    t._data = data
    t.requires_grad = requires_grad
    t.grad = None
    t._node = node
    t._vc = node.out_vc if node is not None else [0]
    return t


def from_numpy(array) -> Tensor:
    """A tensor sharing `array`'s memory (no copy), as torch.from_numpy: `array` must be an
    array (a NumPy ndarray, or an array of another registered backend)."""
    if not backend.is_array(array):
        raise TypeError(f"from_numpy: expected an array (numpy.ndarray), got "
                        f"{type(array).__name__}")
    return _wrap(array)


def apply(prim: Primitive, *args, **params) -> Tensor:
    """Run a primitive's forward on the arrays behind `args`, recording a node when needed.

    Arguments that are not Tensors (arrays, Python scalars) are constants and pass through
    unchanged, so NumPy's weak Python-scalar promotion keeps float32 as float32. The forward
    runs on the backend of the (last) tensor argument's array.
    """
    # one pass over the arguments gathers everything a node needs
    recording = _State.enabled
    arrays, versions, edges, wanted = [], [], [], []
    data = None
    for i, a in enumerate(args):
        if isinstance(a, Tensor):
            data = a._data
            arrays.append(data)
            if recording:
                vc = a._vc
                versions.append((vc, vc[0]))
                if a.requires_grad:
                    edges.append((i, a))
                    wanted.append(i)
        else:
            arrays.append(a)
    if type(data) is _HOST_ARRAY:
        xp = _HOST
    else:
        xp = _backend_of(data) if data is not None else backend.of_arrays(arrays)
        if xp is not _HOST:  # off the host the check is cheap next to a kernel launch
            _check_same_device(arrays)
    try:
        out = prim.forward(xp, *arrays, **params)
        saved = None
        if prim.saves:
            out, saved = out
        if type(out) is not xp.ndarray and not backend.is_array(out):
            out = xp.asarray(out)  # a 0-d result can come back as a scalar
    except Exception:
        # on the host, mixed devices are found only when NumPy fails on the foreign array:
        # the NumPy path pays nothing for the check
        _check_same_device(arrays)
        raise
    if not edges:
        result = _wrap(out)
    else:
        result = _wrap(out, True, Node(prim, args, arrays, params, out, saved, versions, edges,
                                       wanted))
    if TRACERS:  # retrograd.compile is recording a step (compile/trace.py)
        TRACERS[-1](prim, args, arrays, params, result)
    return result


# the recorder of a step being traced by retrograd.compile (at most one); apply reports each
# primitive it runs to the last one
TRACERS: list = []


def _check_same_device(arrays) -> None:
    """Raise torch's RuntimeError when the arrays of one operation live on two devices."""
    first = None
    for a in arrays:
        if backend.is_array(a):
            dev = _backend_of(a).device_of(a)
            if first is None:
                first = dev
            elif dev != first:
                raise RuntimeError("Expected all tensors to be on the same device, but found at "
                                   f"least two devices, {first} and {dev}!")


def _check_grad_dtype(data) -> None:
    if data.dtype.kind != "f":
        raise TypeError("only floating-point tensors can require gradients, "
                        f"got dtype {data.dtype}")


class Tensor(TensorMethods):
    """An n-dimensional array that records the operations applied to it for reverse-mode autodiff.

    Create with `retrograd.tensor(data, requires_grad=False, dtype=None)`.
    """

    __slots__ = ("_data", "requires_grad", "grad", "_node", "_vc", "__weakref__")
    # NumPy must hand `ndarray (op) Tensor` back to Tensor's reflected operators.
    __array_ufunc__ = None
    # what TensorMethods builds on: record a primitive, wrap a result that has no graph
    _apply = staticmethod(apply)
    _wrap = staticmethod(_wrap)

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        if isinstance(data, Tensor):
            data = data._data
        self._data = backend.from_data(data, dtype)
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
    def dtype(self):
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
        self._data = value._data if isinstance(value, Tensor) else \
            backend.of(value).asarray(value)

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

    @property
    def device(self):
        """The device holding the array (retrograd.device('cpu'), device('cuda:0'), ...)."""
        return _backend_of(self._data).device_of(self._data)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def numpy(self):
        """The underlying ndarray (shared, not copied); refused, as torch does, for a tensor
        off the host (copy it with .cpu() first)."""
        data = self._data
        if type(data) is not _HOST_ARRAY:
            xp = _backend_of(data)
            if xp.device_of(data).type != "cpu":
                raise TypeError(f"can't convert {xp.device_of(data)} device type tensor to "
                                "numpy. Use Tensor.cpu() to copy the tensor to host memory "
                                "first.")
        return data

    def tolist(self):
        return self._data.tolist()

    def item(self):
        return self._data.item()

    def __array__(self, dtype=None, copy=None):
        data = self.numpy()
        if dtype is not None and as_dtype(dtype) != data.dtype:
            return data.astype(dtype)
        return data.copy() if copy else data

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
        suffixes = []
        if self.device.type != "cpu":
            suffixes.append(f"device='{self.device}'")
        if self._data.dtype not in (default_float(), dtypes.int64, dtypes.bool_):
            suffixes.append(f"dtype=retrograd.{self._data.dtype}")
        if self._node is not None:
            suffixes.append(f"grad_fn={self._node!r}")
        elif self.requires_grad:
            suffixes.append("requires_grad=True")
        return format_tensor(_backend_of(self._data).to_numpy(self._data), suffixes)

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
        # one function, no helpers: this runs once per training step
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (no leaf it "
                               "depends on has requires_grad=True, or it was made under "
                               "no_grad)")
        data = self._data
        xp = _HOST if type(data) is _HOST_ARRAY else _backend_of(data)
        if gradient is None and not data.ndim:  # a loss: d loss / d loss = 1, without a call
            g = xp.asarray(1, data.dtype)
        else:
            g = root_gradient(data, gradient._data if isinstance(gradient, Tensor) else gradient)
        if self._node is None:  # backward on a leaf itself
            _accumulate(self, _wrap(g))
            return
        if create_graph:
            g = _wrap(g)
        if retain_graph is None:
            retain_graph = create_graph or retain_graphs.active
        results = run_backward([self], [g], graph_ops=graph_namespace, create_graph=create_graph,
                               retain_graph=retain_graph)
        if create_graph:
            while results:
                _accumulate(*results.popitem())
            return
        hand_to_leaves(results, xp.may_overwrite)

    # ------------------------------------------------------------------ casting, devices
    def to(self, *args, **kwargs) -> Tensor:
        """to(dtype), to(device), to(device, dtype), to(other tensor), as torch: self when
        nothing changes, else a copy; differentiable (the gradient goes back to self's device
        and dtype)."""
        dev, dtype = parse_to(args, kwargs)
        out = self
        if dev is not None:
            out = out._to_device(dev)
        if dtype is not None:
            out = out._to_dtype(dtype)
        if kwargs.get("copy") and out is self:  # torch's copy=True: a new tensor even so
            out = self.clone()
        return out

    def astype(self, dtype) -> Tensor:
        return self._to_dtype(as_dtype(dtype))

    def _to_dtype(self, dtype) -> Tensor:
        if dtype == self._data.dtype:
            return self
        if dtype.kind == "f" and self._data.dtype.kind == "f":
            return apply(_P["astype"], self, dtype=dtype)
        return _wrap(self._data.astype(dtype))

    def _to_device(self, dev) -> Tensor:
        target = backend.backend_for(dev)
        src = _backend_of(self._data)
        if src is target and src.device_of(self._data) == target.resolve(dev):
            return self
        if self.requires_grad and _State.enabled:
            return apply(_P["to_device"], self, device=dev)
        return _wrap(backend.move(self._data, dev))

    def cpu(self) -> Tensor:
        """This tensor on the host (self when it is already there)."""
        return self._to_device(_CPU)

    def cuda(self, device=None) -> Tensor:
        """This tensor on a CUDA device (the current one when device is None)."""
        dev = as_device("cuda" if device is None else device)
        if dev.type != "cuda":
            raise ValueError(f"cuda: expected a CUDA device, got {dev}")
        return self._to_device(dev)

    def float(self) -> Tensor:
        return self.to(dtypes.float32)

    def double(self) -> Tensor:
        return self.to(dtypes.float64)

    def long(self) -> Tensor:
        return self.to(dtypes.int64)

    def int(self) -> Tensor:
        return self.to(dtypes.int32)

    def bool(self) -> Tensor:
        return self.to(dtypes.bool_)

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
        index = normalize_index(index, _backend_of(self._data))
        self._data[index] = value._data if isinstance(value, Tensor) else value

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
        data = self._data
        xp = _backend_of(data)
        src = src._data if isinstance(src, Tensor) else src
        if not backend.is_array(src):
            src = xp.asarray(src)
        elif _backend_of(src) is not xp or _backend_of(src).device_of(src) != xp.device_of(data):
            src = backend.move(src, xp.device_of(data))  # torch's copy_ crosses devices
        if xp.broadcast_shapes(src.shape, self.shape) != self.shape:
            raise ValueError(f"copy_: cannot copy shape {src.shape} into shape {self.shape}")
        self._before_inplace()
        xp.copyto(self._data, src, casting="unsafe")
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
        _backend_of(self._data).clip(self._data, min, max, out=self._data)
        return self


_CPU = as_device("cpu")


def parse_to(args, kwargs):
    """(device or None, dtype or None) from torch's .to(...) arguments: a device, a dtype, both
    (device first), or a tensor (its device and dtype); also device=, dtype= keywords."""
    unknown = set(kwargs) - {"device", "dtype", "non_blocking", "copy"}
    if unknown:
        raise TypeError(f"to() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    if len(args) > 2:
        raise TypeError(f"to() takes at most 2 positional arguments, got {len(args)}")
    dev, dtype = kwargs.get("device"), kwargs.get("dtype")
    for k, a in enumerate(args):
        if isinstance(a, Tensor):
            if len(args) > 1:
                raise TypeError("to(tensor) takes no other positional argument")
            dev, dtype = a.device, a.dtype
        elif k == 0 and (is_device_spec(a) or isinstance(a, int) and not isinstance(a, bool)):
            dev = a
        elif dtype is None:
            dtype = a
        else:
            raise TypeError(f"to(): cannot read {a!r} as a device or a dtype")
    if dev is not None:
        dev = as_device(dev)
    if dtype is not None:
        try:
            dtype = as_dtype(dtype)
        except TypeError:
            raise TypeError(f"to(): expected a device or a dtype, got {dtype!r}") from None
    return dev, dtype


class Parameter(Tensor):
    """A Tensor that a Module registers as a learnable parameter (requires_grad by default)."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = backend.default().empty(0, dtype=default_float())
        self._data = data._data if isinstance(data, Tensor) else backend.of(data).asarray(data)
        if requires_grad:
            _check_grad_dtype(self._data)
        self.requires_grad = requires_grad
        self.grad = None
        self._node = None
        self._vc = [0]

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def hand_to_leaves(results: dict, may_overwrite) -> None:
    """Each leaf's gradient array (emptying `results`) into its `.grad`: set, or added to."""
    while results:
        leaf, gi = results.popitem()
        grad = leaf.grad
        if grad is None:
            # a `.grad` must own its array: copy unless it is fresh and held by nothing else,
            # such as another leaf's entry
            if not may_overwrite(gi):
                gi = gi.copy(order="K")
            leaf.grad = _wrap(gi)
        elif grad.requires_grad:
            leaf.grad = grad + _wrap(gi)
        else:
            grad._data += gi


def _accumulate(leaf: Tensor, g: Tensor) -> None:
    """leaf.grad += g, in place when neither is part of a graph."""
    if leaf.grad is None:
        leaf.grad = g
    elif g.requires_grad or leaf.grad.requires_grad:
        leaf.grad = leaf.grad + g
    else:
        leaf.grad._data += g._data


_GRAPH_NAMESPACES: dict = {}


def graph_namespace(xp):
    """`ops` under create_graph, for tensors on backend xp: each primitive applied to Tensors,
    recording nodes; `raw` the array behind a value, `xp` the backend, `output(node)` a node's
    output as a tensor of the graph."""
    ns = _GRAPH_NAMESPACES.get(xp)
    if ns is None:
        ns = _GRAPH_NAMESPACES[xp] = namespace(
            lambda prim: functools.partial(apply, prim), xp=xp,
            raw=lambda a: a._data if isinstance(a, Tensor) else a,
            output=lambda node: _wrap(node.out, True, node))
    return ns


GRAPH_NS = graph_namespace(backend.host)  # the host's, for code that names it

__all__ = ["GRAPH_NS", "Node", "Parameter", "Tensor", "apply", "from_numpy", "get_default_dtype",
           "graph_namespace", "no_grad", "set_default_dtype"]
