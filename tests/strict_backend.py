"""A strict second backend for the tests: NumPy's arithmetic behind a distinct array type that
refuses every way NumPy can leak past the seam, so that code passing on it is device-independent.

The device type is 'strict' (a pretend accelerator: Tensor.numpy() refuses it, as for CUDA).
Its arrays are `StrictArray`, an ndarray subclass whose NumPy entry points are guarded:

- an operator or indexing that mixes a StrictArray with a plain ndarray raises `LeakError`
  (a plain ndarray meeting a device array is the symptom of an `np.` call in the core);
- a NumPy function (`np.exp(a)`, `np.where(...)`, `np.asarray` then arithmetic ...) called on a
  StrictArray from outside this module raises `LeakError`: only the backend's own vocabulary
  (`xp.exp`, `xp.where`, which run NumPy inside a guard scope) may compute with them;
- the array's own methods and operators (what CuPy arrays share with NumPy's) work.

The core legitimately needs more than the array API standard (memory order, in-place `out=`,
scatter-add), which is why this wraps NumPy rather than using array-api-strict.
Known gap: a reflected operator with a NumPy scalar on the left (np.float32(2) * a) reaches the
ufunc directly, so a ufunc whose first operand is a NumPy scalar is let through.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from retrograd.backend import numpy_backend as _np_backend
from retrograd.backend.device import add_device_type, device
from retrograd.backend.dtypes import bool_, float32, float64, int32, int64  # noqa: F401

NAME = "strict"
DEVICE_TYPE = "strict"
STRICT = None  # the device, set below once the type is known


class LeakError(TypeError):
    """NumPy was reached past the seam on a strict array (or mixed into one)."""


_scope = threading.local()


def _depth() -> int:
    return getattr(_scope, "depth", 0)


class _Inside:
    """The backend's own NumPy calls run inside this scope."""

    def __enter__(self):
        _scope.depth = _depth() + 1

    def __exit__(self, *exc):
        _scope.depth -= 1


_inside = _Inside()


def _is_plain(x) -> bool:
    return isinstance(x, np.ndarray) and not isinstance(x, StrictArray)


def _check_mix(what: str, values) -> None:
    for v in values:
        if _is_plain(v):
            raise LeakError(f"{what}: a plain numpy.ndarray {v.shape} meets a strict array "
                            "(an array made by NumPy past the seam)")
        if isinstance(v, (tuple, list)):
            _check_mix(what, v)


def _plain(x):
    return x.view(np.ndarray) if isinstance(x, StrictArray) else x


def wrap(x):
    """NumPy results as strict arrays: arrays viewed, NumPy scalars made 0-d (as CuPy)."""
    if isinstance(x, np.ndarray):
        return x if type(x) is StrictArray else x.view(StrictArray)
    if isinstance(x, np.generic):
        return np.asarray(x).view(StrictArray)
    if isinstance(x, tuple):
        return tuple(wrap(v) for v in x)
    if isinstance(x, list):
        return [wrap(v) for v in x]
    return x


class StrictArray(np.ndarray):
    """An ndarray that NumPy's functions refuse outside the strict backend."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        if _depth() == 0 and not (inputs and isinstance(inputs[0], np.generic)):
            raise LeakError(f"numpy.{ufunc.__name__}.{method} called on a strict array outside "
                            "the backend")
        with _inside:
            inputs = tuple(_plain(x) for x in inputs)
            if out is not None:
                kwargs["out"] = tuple(_plain(o) for o in out)
            result = getattr(ufunc, method)(*inputs, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        if _depth() == 0:
            raise LeakError(f"numpy.{func.__name__} called on a strict array outside the "
                            "backend")
        return super().__array_function__(func, types, args, kwargs)


def _guarded_method(name: str):
    base = getattr(np.ndarray, name)

    @functools.wraps(base)
    def method(self, *args, **kwargs):
        if _depth() == 0:  # (NumPy's own code, inside the backend, mixes freely)
            _check_mix(f"StrictArray.{name}", args)
            _check_mix(f"StrictArray.{name}", kwargs.values())
        with _inside:
            result = base(self, *args, **kwargs)
        return result if name.startswith("__i") else wrap(result)
    return method


_OPERATORS = [f"__{op}__" for op in (
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
    "lshift", "rshift")]
_METHODS = (
    _OPERATORS + [o.replace("__", "__r", 1) for o in _OPERATORS]
    + [o.replace("__", "__i", 1) for o in _OPERATORS]
    + ["__neg__", "__pos__", "__abs__", "__invert__", "__lt__", "__le__", "__gt__", "__ge__",
       "__eq__", "__ne__", "__getitem__", "__setitem__", "sum", "mean", "max", "min", "prod",
       "any", "all", "clip", "cumsum", "std", "var", "round", "dot", "argmax", "argmin",
       "astype", "copy", "fill", "nonzero", "__bool__", "__float__", "__int__", "item",
       "tolist", "__repr__", "__str__"])
for _name in _METHODS:
    if hasattr(np.ndarray, _name):
        setattr(StrictArray, _name, _guarded_method(_name))
StrictArray.__hash__ = None

ARRAY_TYPES = (StrictArray,)
ndarray = StrictArray


# ------------------------------------------------------------------ the vocabulary

_HOST_INPUTS = {"array", "asarray"}  # these take host data: the move onto the device
_PASS = {"errstate", "generic", "broadcast_shapes", "array2string"}


def _guarded_function(name: str):
    fn = getattr(np, name)

    @functools.wraps(fn)
    def function(*args, **kwargs):
        if name not in _HOST_INPUTS:
            _check_mix(f"xp.{name}", args)
            _check_mix(f"xp.{name}", kwargs.values())
        with _inside:
            return wrap(fn(*args, **kwargs))
    return function


_SEAM = set(_np_backend.VOCABULARY) - set(dir(np)) | {"copy"}
for _name in _np_backend.VOCABULARY:
    if _name in _SEAM or _name in ("ndarray", "bool_", "float32", "float64", "int32", "int64",
                                   "NAME", "ARRAY_TYPES", "DEVICE_TYPE"):
        continue
    globals()[_name] = getattr(np, _name) if _name in _PASS else _guarded_function(_name)


def device_of(a) -> device:
    return STRICT


def resolve(dev: device) -> device:
    return STRICT


def to_device(a, dev: device):
    """A NumPy array (or a strict one) as a strict array: a copy, as a move to a device is."""
    if isinstance(a, StrictArray):
        return a
    return np.array(a).view(StrictArray)


def to_numpy(a) -> np.ndarray:
    """The host copy: a plain ndarray."""
    with _inside:
        return np.array(a.view(np.ndarray))


def copy(a):
    with _inside:
        return a.copy(order="K")


def may_overwrite(a) -> bool:
    return False  # no reference-count proof off NumPy: every gradient is treated as shared


def column_major(a) -> bool:
    return False


def fast_exp(x, out=None):
    with _inside:
        return wrap(np.exp(x, out=out))


def row_sums(e):
    with _inside:
        return wrap(e.sum(axis=1))


def take_class(a, t):
    with _inside:
        return wrap(np.take_along_axis(a, t[:, None], axis=1)[:, 0])


def add_to_class(a, t, v) -> None:
    _check_mix("add_to_class", (a, t, v))
    with _inside:
        idx = t[:, None]
        if np.ndim(v):
            v = v.reshape(v.shape[:1] + (1,) + v.shape[1:])
        np.put_along_axis(a, idx, np.take_along_axis(a, idx, axis=1) + v, axis=1)


def scatter_add(out, index, values) -> None:
    _check_mix("scatter_add", (out, index, values))
    with _inside:
        np.add.at(out, index, values)


def _reduction(ufunc):
    def reduce(a, axis=None, **kwargs):
        _check_mix("reduce", (a,))
        with _inside:
            return wrap(ufunc.reduce(a, axis=axis, **kwargs))
    return reduce


reduce_sum, reduce_min, reduce_max = (_reduction(u) for u in (np.add, np.minimum, np.maximum))


def scratch(shape, dtype):
    with _inside:
        return wrap(np.empty(shape, dtype=dtype))


def windows(a, shape, strides):
    _check_mix("windows", (a,))
    with _inside:
        view = np.lib.stride_tricks.as_strided(a.view(np.ndarray), shape, strides,
                                               writeable=False)
        return wrap(view)


def default_rng(seed: int):
    return np.random.default_rng(seed)


def uniform(generator, shape, dtype):
    """Drawn on the host, then moved (as CuPy does for weights)."""
    return to_device(generator.random(shape, dtype=dtype), STRICT)


def standard_normal(generator, shape, dtype):
    return to_device(generator.standard_normal(shape, dtype=dtype), STRICT)


_DEVICE_RNG: list = [None, None]  # (the host generator it was seeded from, its own generator)


def device_uniform(generator, shape, dtype):
    """Drawn "on the device", as CuPy's dropout does: its own generator, seeded from the host
    one (so a seed fixes it, but the values differ from the host's)."""
    if _DEVICE_RNG[0] is not generator:
        _DEVICE_RNG[:] = generator, np.random.default_rng(int(generator.integers(2 ** 63)))
    return to_device(_DEVICE_RNG[1].random(shape, dtype=dtype), STRICT)


def enable() -> device:
    """Make device('strict') name this backend; returns the device."""
    global STRICT
    add_device_type(DEVICE_TYPE, __name__)
    STRICT = device(DEVICE_TYPE)
    return STRICT


enable()
