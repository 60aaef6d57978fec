"""The CuPy backend: the same vocabulary as numpy_backend, for arrays on CUDA devices.

Loaded by the seam (`device.backend_for`) only when a CUDA device is first asked for; `load()`
imports CuPy then, and without it raises one line naming what to install. CuPy mirrors NumPy's
names, so the vocabulary is CuPy's functions under the same names; what differs is here:

- may_overwrite: no reference-count proof (CuPy arrays are not NumPy's); every gradient is
  treated as shared, so the engine copies where NumPy would reuse a buffer.
- the CPU fast paths (exp2 on SVML, BLAS row sums, flat gathers) are plain CuPy calls.
- random: weights are drawn on the host from the one seeded generator and moved (`uniform`,
  `standard_normal`), so a seed gives the same initial weights on CPU and GPU; dropout masks
  are drawn on the device (`device_uniform`) by CuPy's generator, seeded from the host
  generator: reproducible under manual_seed, but not the CPU's masks.
"""

from __future__ import annotations

import numpy as np

from .device import device
from .dtypes import bool_, float32, float64, int32, int64  # noqa: F401  (the dtype table)

NAME = "cupy"
DEVICE_TYPE = "cuda"
cp = None  # CuPy, once load() ran

# the vocabulary names that are CuPy's own functions (everything else is defined below)
_FROM_CUPY = (
    "abs", "add", "all", "amax", "any", "arange", "argmax", "argmin", "array", "asarray",
    "broadcast_to", "clip", "concatenate", "copyto", "divide", "empty", "empty_like", "exp",
    "expm1", "eye", "full", "isfinite", "isnan", "linspace", "log", "log1p", "logaddexp",
    "logical_and", "logical_or", "matmul", "maximum", "minimum", "multiply", "nanargmax",
    "ndarray", "negative", "ones", "ones_like", "power", "put_along_axis", "sign", "sqrt",
    "subtract", "sum", "take_along_axis", "tanh", "transpose", "unique", "unravel_index",
    "where", "zeros", "zeros_like",
)
# host-side helpers CuPy shares with NumPy (shapes, printing, error states, scalar types)
broadcast_shapes = np.broadcast_shapes
array2string = np.array2string
generic = np.generic
errstate = np.errstate
ARRAY_TYPES: tuple = ()


def load() -> None:
    """Import CuPy and fill the vocabulary; one line naming the package when it is missing."""
    global cp, ARRAY_TYPES
    if cp is not None:
        return
    try:
        import cupy
    except ImportError:
        raise RuntimeError("a CUDA device needs CuPy: pip install 'retrograd[cuda]' "
                           "(cupy-cuda13x; cupy-cuda12x for CUDA 12)") from None
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError
    except Exception:
        raise RuntimeError("CUDA is not available: CuPy sees no GPU "
                           "(retrograd.cuda.is_available() is False)") from None
    cp = cupy
    ARRAY_TYPES = (cupy.ndarray,)
    for name in _FROM_CUPY:
        globals()[name] = getattr(cupy, name)
    if not hasattr(cupy, "put_along_axis"):  # older CuPy: the core uses it only in fallbacks
        globals()["put_along_axis"] = _put_along_axis


def _put_along_axis(a, indices, values, axis):
    idx = [cp.arange(n).reshape([-1 if k == d else 1 for k in range(a.ndim)])
           for d, n in enumerate(a.shape)]
    idx[axis] = indices
    a[tuple(idx)] = values


# ----------------------------------------------------------------------------------------------
# devices and the host


def device_of(a) -> device:
    """The CUDA device holding `a`."""
    return device("cuda", a.device.id)


def resolve(dev: device) -> device:
    """The concrete device: 'cuda' alone is the current one."""
    return dev if dev.index is not None else device("cuda", cp.cuda.runtime.getDevice())


def to_device(a, dev: device):
    """`a` (a NumPy or CuPy array) on the CUDA device `dev` (the same array when there)."""
    index = resolve(dev).index
    if isinstance(a, cp.ndarray) and a.device.id == index:
        return a
    with cp.cuda.Device(index):
        return cp.array(a, copy=True)


def to_numpy(a):
    """The host copy (device to host)."""
    return cp.asnumpy(a)


def copy(a):
    return a.copy(order="K")


def synchronize() -> None:
    cp.cuda.get_current_stream().synchronize()


def may_overwrite(a) -> bool:
    return False  # no reference-count proof off NumPy


def column_major(a) -> bool:
    return a.ndim == 2 and a.strides[0] < a.strides[1]


# ----------------------------------------------------------------------------------------------
# the loss kernels' helpers, plain CuPy


def fast_exp(x, out=None):
    return cp.exp(x, out=out)


def row_sums(e):
    return e.sum(axis=1)


def take_class(a, t):
    if a.ndim == 2:
        return a[cp.arange(a.shape[0]), t]
    return cp.take_along_axis(a, t[:, None], axis=1)[:, 0]


def add_to_class(a, t, v) -> None:
    if a.ndim == 2:
        a[cp.arange(a.shape[0]), t] += v
        return
    idx = t[:, None]
    if getattr(v, "ndim", 0):
        v = v.reshape(v.shape[:1] + (1,) + v.shape[1:])
    globals()["put_along_axis"](a, idx, cp.take_along_axis(a, idx, axis=1) + v, axis=1)


def scatter_add(out, index, values) -> None:
    cp.add.at(out, index, values)


def windows(a, shape, strides):
    """The view of `a`'s memory with `shape` and `strides` in bytes (CuPy's as_strided)."""
    return cp.lib.stride_tricks.as_strided(a, shape, strides)


def scratch(shape, dtype):
    """An uninitialized array for internal temporaries (CuPy's memory pool reuses buffers)."""
    return cp.empty(shape, dtype=dtype)


def reduce_sum(a, axis=None, **kwargs):
    return cp.sum(a, axis=axis, **kwargs)


def reduce_min(a, axis=None, **kwargs):
    return cp.amin(a, axis=axis, **kwargs)


def reduce_max(a, axis=None, **kwargs):
    return cp.amax(a, axis=axis, **kwargs)


# ----------------------------------------------------------------------------------------------
# random bits


def default_rng(seed: int):
    return np.random.default_rng(seed)


def uniform(generator, shape, dtype):
    """Drawn on the host from `generator` and moved: the CPU's values, bit for bit."""
    return cp.asarray(generator.random(shape, dtype=dtype))


def standard_normal(generator, shape, dtype):
    return cp.asarray(generator.standard_normal(shape, dtype=dtype))


_DEVICE_RNG: list = [None, None]  # (the host generator it was seeded from, CuPy's generator)


def device_uniform(generator, shape, dtype):
    """U[0, 1) drawn on the GPU (dropout's masks): no host draw or copy per step. CuPy's
    generator is seeded from the host generator, so manual_seed fixes the masks, but they
    differ from the CPU's."""
    if _DEVICE_RNG[0] is not generator:
        _DEVICE_RNG[:] = generator, cp.random.default_rng(int(generator.integers(2 ** 63)))
    return _DEVICE_RNG[1].random(shape, dtype=dtype)
