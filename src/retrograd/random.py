"""The one random generator everything draws from: weights, dropout masks, shuffling.

`manual_seed(s)` makes every later draw reproducible bit for bit. Draws happen directly in the
requested dtype (NumPy's Generator supports float32), so float32 stays float32. The generator
lives on the host (the backend's `default_rng`); the backend's `uniform` / `standard_normal`
turn its draws into arrays, so a seed gives the same values wherever they are used.
"""

from __future__ import annotations

from . import backend
from .backend import INTEGER_TYPES, as_dtype, dtypes
from .tensor import Tensor, _wrap, get_default_dtype

DEFAULT_SEED = 0  # like torch, a fresh process starts from a fixed seed
_host = backend.host


class _Generator:
    rng = _host.default_rng(DEFAULT_SEED)
    seed = DEFAULT_SEED


def manual_seed(seed: int) -> None:
    """Reseed the global generator."""
    if not isinstance(seed, INTEGER_TYPES) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative integer, got {seed!r}")
    _Generator.rng = _host.default_rng(int(seed))
    _Generator.seed = int(seed)


def initial_seed() -> int:
    return _Generator.seed


def generator():
    """The global generator, a numpy.random.Generator (for library code that needs raw
    draws)."""
    return _Generator.rng


def get_rng_state() -> dict:
    """The generator's full state, for checkpoints."""
    return _Generator.rng.bit_generator.state


def set_rng_state(state: dict) -> None:
    _Generator.rng.bit_generator.state = state


def _shape(size) -> tuple[int, ...]:
    if len(size) == 1 and not isinstance(size[0], INTEGER_TYPES):
        return tuple(size[0])
    return tuple(size)


def _float_dtype(dtype):
    dtype = as_dtype(dtype) if dtype is not None else get_default_dtype()
    if dtype.kind != "f":
        raise TypeError(f"expected a floating dtype, got {dtype}")
    return dtype


def _placed(data, device, requires_grad) -> Tensor:
    """A tensor around the host draw `data`, moved to `device`: the host draws every value, so
    one seed gives the same numbers on every device."""
    if device is not None:
        data = backend.move(data, device)
    t = _wrap(data)
    return t.requires_grad_(requires_grad) if requires_grad else t


def randn(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples of the given shape."""
    data = _host.standard_normal(_Generator.rng, _shape(size), _float_dtype(dtype))
    return _placed(data, device, requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1)."""
    data = _host.uniform(_Generator.rng, _shape(size), _float_dtype(dtype))
    return _placed(data, device, requires_grad)


def randn_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    """randn of t's shape, dtype and device."""
    return randn(t.shape, dtype=dtype or t.dtype, device=device or t.device,
                 requires_grad=requires_grad)


def rand_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    """rand of t's shape, dtype and device."""
    return rand(t.shape, dtype=dtype or t.dtype, device=device or t.device,
                requires_grad=requires_grad)


def randint(low: int, high: int | None = None, size=(), dtype=dtypes.int64,
            device=None) -> Tensor:
    """Integers uniform in [low, high) (or [0, low) when high is omitted)."""
    if high is None:
        low, high = 0, low
    return _placed(_Generator.rng.integers(low, high, size=tuple(size), dtype=dtype), device,
                   False)


def randperm(n: int, device=None) -> Tensor:
    """A random permutation of 0 .. n-1 (int64)."""
    return _placed(_Generator.rng.permutation(n).astype(dtypes.int64), device, False)


def uniform_array(shape, low, high, dtype, like=None):
    """low + (high - low) * U[0, 1), drawn in `dtype` (on the backend of the array `like`,
    the host when None)."""
    xp = _host if like is None else backend.of(like)
    u = xp.uniform(_Generator.rng, shape, dtype)
    u *= high - low
    u += low
    return u


def normal_array(shape, mean, std, dtype, like=None):
    """mean + std * N(0, 1), drawn in `dtype` (on the backend of `like`, the host when None)."""
    xp = _host if like is None else backend.of(like)
    z = xp.standard_normal(_Generator.rng, shape, dtype)
    z *= std
    z += mean
    return z
