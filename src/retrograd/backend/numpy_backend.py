"""The NumPy backend: the array namespace `xp` the core computes with on the CPU, and the NumPy-
and CPython-specific fast paths behind the seam's functions.

A backend is a namespace (this module): the NumPy functions the core may call, under their
NumPy names (`VOCABULARY` lists them; a second backend provides the same names), plus the seam's
own functions below them, which are where one array library differs from another: whether a
buffer may be overwritten, the fast exponential, row sums, gathers along the class axis, random
draws, the copy to the host.
"""

from __future__ import annotations

import functools
import sys
import threading

import numpy as np
from numpy import (  # noqa: F401  (the vocabulary: re-exported for the core, see VOCABULARY)
    abs,
    add,
    all,
    amax,
    any,
    arange,
    argmax,
    argmin,
    array,
    array2string,
    asarray,
    broadcast_shapes,
    broadcast_to,
    clip,
    concatenate,
    copyto,
    divide,
    empty,
    empty_like,
    errstate,
    exp,
    expm1,
    eye,
    full,
    generic,
    isfinite,
    isnan,
    linspace,
    log,
    log1p,
    logaddexp,
    logical_and,
    logical_or,
    matmul,
    maximum,
    minimum,
    multiply,
    nanargmax,
    ndarray,
    negative,
    ones,
    ones_like,
    power,
    put_along_axis,
    sign,
    sqrt,
    subtract,
    sum,
    take_along_axis,
    tanh,
    transpose,
    unique,
    unravel_index,
    where,
    zeros,
    zeros_like,
)

from .device import CPU, device
from .dtypes import bool_, float32, float64, int32, int64  # noqa: F401  (the dtype table)

NAME = "numpy"
ARRAY_TYPES = (np.ndarray,)
DEVICE_TYPE = "cpu"

# Everything the core may call on a backend. A name outside this list is a leak past the seam.
VOCABULARY = (
    "abs", "add", "all", "amax", "any", "arange", "argmax", "argmin", "array", "array2string",
    "asarray",
    "broadcast_shapes", "broadcast_to", "clip", "concatenate", "copyto", "divide", "empty",
    "empty_like", "errstate", "exp", "expm1", "eye", "full", "generic", "isfinite", "isnan",
    "linspace", "log", "log1p", "logaddexp", "logical_and", "logical_or", "matmul", "maximum",
    "minimum", "multiply", "nanargmax", "ndarray", "negative", "ones", "ones_like", "power",
    "put_along_axis", "sign", "sqrt", "subtract", "sum", "take_along_axis", "tanh", "transpose",
    "unique", "unravel_index", "where", "zeros", "zeros_like",
    "bool_", "float32", "float64", "int32", "int64",
    # the seam's own functions
    "NAME", "ARRAY_TYPES", "DEVICE_TYPE", "device_of", "resolve", "to_device", "to_numpy",
    "copy", "may_overwrite", "column_major", "fast_exp",
    "row_sums", "take_class", "add_to_class", "scatter_add", "reduce_sum", "reduce_min",
    "reduce_max", "windows", "scratch",
    "default_rng", "uniform", "standard_normal", "device_uniform",
)


# ----------------------------------------------------------------------------------------------
# arrays and the host


def to_numpy(a: np.ndarray) -> np.ndarray:
    """The array as a NumPy array on the host: here the array itself (shared, not copied)."""
    return a


def device_of(a) -> device:
    """The device of an array of this backend: the host."""
    return CPU


def resolve(dev: device) -> device:
    """The concrete device `dev` names (the host has one)."""
    return CPU


def to_device(a: np.ndarray, dev: device) -> np.ndarray:
    """`a` (a NumPy array) on the host device: the array itself."""
    return a


def copy(a: np.ndarray) -> np.ndarray:
    """A fresh copy in the array's own memory order."""
    return a.copy(order="K")


def column_major(a) -> bool:
    """Whether `a` is a matrix laid out by columns (for a contiguous one: F- but not C-ordered),
    the layout in which OpenBLAS's products with it are not transposed."""
    return type(a) is np.ndarray and a.ndim == 2 and a.strides[0] < a.strides[1]


# ----------------------------------------------------------------------------------------------
# may this buffer be overwritten?

# CPython's reference count proves that an array is held nowhere else (NumPy elides temporaries
# the same way). Elsewhere (PyPy) no array is ever taken as private.
_refcount = getattr(sys, "getrefcount", lambda _: 1 << 30)


def _probe(a) -> int:
    return _refcount(a)


def _base_probe(a) -> int:
    base = a.base
    return _refcount(base)


def _calibrate() -> tuple[int, int]:
    """The counts that mean "held by one variable of the caller only", measured on arrays known
    to be private rather than assumed: how many references the interpreter's own call
    machinery adds differs between Python versions. The second is the count of a view's base
    that only the view holds, seen from a frame with one variable bound to it (`_owns_base`)."""
    a = np.empty(1)
    return _probe(a), _base_probe(np.empty((2, 2)).T)


_SOLE, _SOLE_BASE = _calibrate()


def may_overwrite(a) -> bool:
    """Whether the caller's variable is the only reference to `a` and nothing else sees its
    memory, so it may be overwritten in place: a writable array that owns its buffer, or a view
    that alone covers a whole plain array nothing else holds (a transposed fresh product, such
    as a column-major weight's gradient).

    Call it as `may_overwrite(x)` with `x` a local variable: the count is calibrated for that.
    """
    if _refcount(a) > _SOLE or not a.flags.writeable:
        return False
    return a.base is None or _owns_base(a)


def _owns_base(a) -> bool:
    """Whether the view `a` alone holds its base: a whole plain array (no view of a view) that
    nothing but `a` refers to. Holds exactly one variable bound to the base (as _base_probe)."""
    base = a.base
    return (type(base) is np.ndarray and base.base is None and base.size == a.size
            and _refcount(base) <= _SOLE_BASE)


# ----------------------------------------------------------------------------------------------
# reusable scratch buffers

# A convolution's window copy (im2col) is its largest array, made anew on every call. glibc maps
# a request at least as large as the last one it unmapped freshly from the system (its dynamic
# mmap threshold), so each call pays a page fault per 4 KiB page, which measured more than the
# copy itself (3,900 faults and about 4 ms a call for 16 -> 32 channels, 3x3 on 16x16, batch
# 128). scratch() hands out a buffer of an earlier call instead, once nothing holds it any more.
_SCRATCH_MIN = 1 << 20  # smaller requests: plain np.empty (the heap serves them without faults)
_SCRATCH_KEEP = 4  # buffers kept per size (in use or free)
_SCRATCH_SIZES = 8  # sizes remembered (least recently used dropped first)
_scratch: dict[int, list] = {}
_scratch_lock = threading.Lock()  # two threads must not both find the same buffer free


def _held(buffers: list, i: int) -> int:
    return _refcount(buffers[i])


_FREE = _held([np.empty(1, np.uint8)], 0)  # the count of a buffer held by the pool alone


def scratch(shape: tuple, dtype) -> np.ndarray:
    """An uninitialized C-contiguous array of `shape` and `dtype` for the core's internal
    temporaries (never handed to users): a buffer of an earlier call of the same byte size that
    nothing references any more (CPython's reference count on it, which every view of it
    raises), else a new one that is kept for later calls."""
    dtype = np.dtype(dtype)
    size = dtype.itemsize
    for n in shape:
        size *= n
    if size < _SCRATCH_MIN:
        return np.empty(shape, dtype)
    with _scratch_lock:
        return _take_scratch(size).view(dtype).reshape(shape)


def _take_scratch(size: int) -> np.ndarray:
    buffers = _scratch.pop(size, None)
    if buffers is None:
        buffers = []
        while len(_scratch) >= _SCRATCH_SIZES:
            del _scratch[next(iter(_scratch))]
    _scratch[size] = buffers  # now the most recently used size
    for i in range(len(buffers)):
        if _held(buffers, i) <= _FREE:
            return buffers[i]
    buffer = np.empty(size, np.uint8)
    if len(buffers) < _SCRATCH_KEEP:
        buffers.append(buffer)
    return buffer


# ----------------------------------------------------------------------------------------------
# CPU fast paths of the loss kernels


def _has_fast_exp2() -> bool:
    """Whether NumPy runs float32 exp2 on SVML (x86-64 with AVX-512 Skylake-X features), where
    it takes half the time of NumPy's own float32 exp."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_features__
    return bool(__cpu_features__.get("AVX512_SKX"))


_LOG2E_F32 = np.float32(np.log2(np.e))
_FAST_EXP2 = _has_fast_exp2()


def fast_exp(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """exp(x); the loss kernels' one exponential. For float32 on CPUs where exp2 is fast,
    computed as exp2(x log2(e)): exp is the largest cost of a softmax, and this halves it.
    Rounding x log2(e) to float32 adds a relative error of about 1e-7 |x| (1e-6 for logits of
    +-10), far inside float32 training noise and the 1e-5 agreement with torch that the tests
    ask. float64 is never approximated."""
    if _FAST_EXP2 and x.dtype == float32:
        y = np.multiply(x, _LOG2E_F32, out=out)
        return np.exp2(y, out=y)
    return np.exp(x, out=out)


@functools.lru_cache(maxsize=32)
def _ones(n: int, dtype) -> np.ndarray:
    """A read-only ones(n), made once: the row sums need it on every call."""
    a = np.ones(n, dtype=dtype)
    a.flags.writeable = False
    return a


def row_sums(e: np.ndarray) -> np.ndarray:
    """Sums over axis 1; for a matrix through BLAS (a product with ones), several times faster
    than np.sum along rows."""
    return e @ _ones(e.shape[1], e.dtype) if e.ndim == 2 else e.sum(axis=1)


@functools.lru_cache(maxsize=32)
def _row_starts(n: int, row_length: int) -> np.ndarray:
    """Read-only flat offsets of the n rows of a C-contiguous (n, row_length) array."""
    a = np.arange(n, dtype=np.intp) * row_length
    a.flags.writeable = False
    return a


def _flat_targets(a: np.ndarray, t: np.ndarray):
    """Flat indices of a[n, t_n] when a is a C-contiguous matrix (flat indexing costs half of
    a[rows, t]), else None."""
    if a.ndim == 2 and a.flags.c_contiguous:
        return _row_starts(a.shape[0], a.shape[1]) + t
    return None


def take_class(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """a[n, t_n, ...]: the entry of each sample's class t_n (class axis 1)."""
    flat = _flat_targets(a, t)
    if flat is not None:
        return a.reshape(-1)[flat]
    if a.ndim == 2:
        return a[np.arange(a.shape[0]), t]
    return np.take_along_axis(a, t[:, None], axis=1)[:, 0]


def add_to_class(a: np.ndarray, t: np.ndarray, v) -> None:
    """a[n, t_n, ...] += v_n in place (each sample has one class: no index repeats); v has the
    shape of t, or is a scalar."""
    flat = _flat_targets(a, t)
    if flat is not None:
        a.reshape(-1)[flat] += v
    elif a.ndim == 2:
        a[np.arange(a.shape[0]), t] += v
    else:
        idx = t[:, None]
        if np.ndim(v):
            v = v.reshape(v.shape[:1] + (1,) + v.shape[1:])
        np.put_along_axis(a, idx, np.take_along_axis(a, idx, axis=1) + v, axis=1)


def scatter_add(out: np.ndarray, index, values) -> None:
    """out[index] += values, in place, where a repeated index accumulates (np.add.at)."""
    np.add.at(out, index, values)


# reductions through the ufuncs' own reduce, reduce_sum(a, axis) etc. (axis None: all
# elements): the same result as a.sum(axis) / a.min(axis) / a.max(axis) with less of NumPy's
# Python-level dispatch, which counts for the loss's small per-sample vectors
reduce_sum, reduce_min, reduce_max = np.add.reduce, np.minimum.reduce, np.maximum.reduce


def windows(a: np.ndarray, shape: tuple, strides: tuple) -> np.ndarray:
    """The read-only view of `a`'s memory with `shape` and `strides` (in bytes, from a.strides):
    a convolution's windows, overlapping, without a copy (NumPy's as_strided)."""
    return np.lib.stride_tricks.as_strided(a, shape, strides, writeable=False)


# ----------------------------------------------------------------------------------------------
# random bits


def default_rng(seed: int) -> np.random.Generator:
    """The seeded host generator that every draw comes from (NumPy's PCG64)."""
    return np.random.default_rng(seed)


def uniform(generator: np.random.Generator, shape, dtype) -> np.ndarray:
    """U[0, 1) samples of `shape` in `dtype` on this backend, drawn from the host `generator`
    (here directly, so a seed fixes them bit for bit)."""
    return generator.random(shape, dtype=dtype)


def standard_normal(generator: np.random.Generator, shape, dtype) -> np.ndarray:
    """N(0, 1) samples of `shape` in `dtype` on this backend, drawn from the host `generator`."""
    return generator.standard_normal(shape, dtype=dtype)


def device_uniform(generator: np.random.Generator, shape, dtype) -> np.ndarray:
    """U[0, 1) drawn where the arrays live (dropout's masks); on the host: from `generator`."""
    return generator.random(shape, dtype=dtype)
