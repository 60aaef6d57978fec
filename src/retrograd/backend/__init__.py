"""The seam: the one place where retrograd's core names an array library.

A backend is a namespace, one per array library: its `VOCABULARY` is the array functions the
core calls (under NumPy's names: `xp.exp`, `xp.where`, `xp.zeros` ...), the dtype table, and the
seam's own functions, where array libraries differ:

    to_numpy(a), copy(a)              the host copy (NumPy: the array itself), a fresh copy
    may_overwrite(a)                  whether nothing but the caller's variable holds `a`, so an
                                      in-place update is invisible (CPython's reference count on
                                      NumPy; a backend that cannot prove it answers False)
    column_major(a)                   whether a matrix is laid out by columns
    fast_exp(x, out), row_sums(e)     the loss kernels' exponential and sums over axis 1 (NumPy:
                                      exp2 on SVML, a BLAS product with ones)
    take_class(a, t), add_to_class(a, t, v)    a[n, t_n] and a[n, t_n] += v_n
    scatter_add(out, index, values)   out[index] += values with repeated indices accumulating
    reduce_sum(a, axis), reduce_min(a, axis), reduce_max(a, axis)
                                      reductions (axis None: all elements; NumPy: the ufuncs'
                                      reduce, without the Python-level dispatch of a.sum())
    windows(a, shape, strides)        a read-only strided view of a's memory (a convolution's
                                      overlapping windows; NumPy: as_strided)
    scratch(shape, dtype)             an uninitialized array for an internal temporary (NumPy:
                                      a buffer of an earlier call nothing holds any more)
    default_rng(seed), uniform(gen, shape, dtype), standard_normal(gen, shape, dtype)
                                      the seeded host generator and draws on this backend

The core finds an array's backend with `of(array)`: one dict lookup on the array's type (the
hottest paths compare `type(a) is host.ndarray` first), so NumPy pays nothing measurable.
`host` is the NumPy backend, where Python data, the seeded generator and host-side numerics
(gradcheck's Jacobians) live. Tensors made from Python data land on `default()`.

Everything outside this package that belongs to the core (tensor, ops, engine, autograd,
functions, random) reaches NumPy only through here (tests/test_backend.py checks the imports).
"""

from __future__ import annotations

from types import ModuleType

from . import dtypes
from . import numpy_backend as host
from .device import CPU, as_device, backend_for, device
from .dtypes import INTEGER_TYPES, as_dtype, default_float, set_default_float

Backend = ModuleType  # a backend is a module-like namespace; see the module docstring

_BY_TYPE: dict[type, Backend] = {t: host for t in host.ARRAY_TYPES}
_BACKENDS: list[Backend] = [host]


def register(backend: Backend) -> None:
    """Make `of` recognize the arrays of `backend` (its ARRAY_TYPES)."""
    missing = [name for name in host.VOCABULARY if not hasattr(backend, name)]
    if missing:
        raise TypeError(f"backend {getattr(backend, 'NAME', backend)!r} lacks {missing}")
    for t in backend.ARRAY_TYPES:
        _BY_TYPE[t] = backend
    if backend not in _BACKENDS:
        _BACKENDS.append(backend)


def of(a) -> Backend:
    """The backend of an array; Python and NumPy scalars (and None) belong to the default."""
    backend = _BY_TYPE.get(type(a))
    if backend is not None:
        return backend
    for b in _BACKENDS:  # subclasses of a registered array type
        if isinstance(a, b.ARRAY_TYPES):
            _BY_TYPE[type(a)] = b
            return b
    return host


def of_arrays(values) -> Backend:
    """The backend of the first array among `values` (the default when there is none)."""
    for v in values:
        if is_array(v):
            return of(v)
    return host


def move(a, dev):
    """The array `a` on device `dev` (the same array when it is already there): a copy through
    the host between backends, the target backend's own copy within one."""
    dev = as_device(dev)
    target = backend_for(dev)
    source = of(a)
    if source is not target:
        a = source.to_numpy(a)
    return target.to_device(a, dev)


def for_device(dev) -> Backend:
    """The backend holding arrays on device `dev` (a device, 'cuda:0', None for the default);
    loads an optional one (CuPy) on first use."""
    return _DEFAULT if dev is None else backend_for(as_device(dev))


def default() -> Backend:
    """The backend on which tensors made from Python data (and factories) are created."""
    return _DEFAULT


_DEFAULT = host


def is_array(a) -> bool:
    """Whether `a` is an array of some backend (not a Python or NumPy scalar, not a Tensor)."""
    return type(a) in _BY_TYPE or any(isinstance(a, b.ARRAY_TYPES) for b in _BACKENDS)


def from_data(data, dtype=None):
    """A new array holding a copy of `data` on the default backend, with torch's dtypes: Python
    floats become the default float dtype, Python ints int64 and bools bool; arrays keep their
    dtype (and their backend) unless `dtype` is given."""
    if is_array(data):
        return of(data).array(data, dtype=dtype)
    xp = host
    arr = xp.array(data)
    if dtype is None:
        kind = arr.dtype.kind
        if kind == "f":
            dtype = default_float()
        elif kind in "iu":
            dtype = xp.int64
        elif kind != "b":
            raise TypeError(f"cannot make a tensor from data of type {arr.dtype}")
    return arr.astype(dtype, copy=False) if dtype is not None else arr


def is_array_scalar(a) -> bool:
    """Whether `a` is an array library's scalar (np.float32(1.5), np.int64(3))."""
    return isinstance(a, host.generic)


__all__ = ["Backend", "INTEGER_TYPES", "as_dtype", "default", "default_float", "dtypes",
           "from_data", "host", "is_array", "is_array_scalar", "of", "of_arrays", "register",
           "set_default_float", "CPU", "as_device", "backend_for", "device", "for_device",
           "move"]
