"""CPU floating-point mode: flushing denormal floats to zero (torch.set_flush_denormal).

Denormals (magnitudes below ~1.2e-38 in float32) take a slow microcode path on x86: one pass of
NumPy over them runs about 40x slower than over normal numbers. A network whose ReLUs died or
whose optimizer state decayed toward zero fills with them: Adam's first moment of a weight whose
gradient is 0 shrinks by 0.9 a step and turns denormal after ~800 steps, which made the MLP
benchmark's Adam step 1.7x slower after 3000 steps. Setting the SSE control register's FTZ
(flush results) and DAZ (treat inputs as zero) bits removes that cost at the price of exact
gradual underflow. The setting is per thread; NumPy's elementwise kernels run on the calling
thread, so this is where they are affected.

Two ways in: `set_flush_denormal(mode)`, torch's switch for the calling thread, and
`FlushDenormals()`, a scope that the optimizers' updates run in (see optim/optimizer.py) and
that puts the thread's mode back as it found it, so user code around them keeps IEEE arithmetic.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

_FTZ_DAZ = 0x8000 | 0x0040  # MXCSR bit 15 (flush to zero) and bit 6 (denormals are zero)


class _Fenv(ctypes.Structure):
    """glibc's fenv_t on x86-64: the x87 environment (28 bytes), then the SSE register MXCSR."""

    _fields_ = [("x87", ctypes.c_uint8 * 28), ("mxcsr", ctypes.c_uint32)]


def _libm():
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    except OSError:
        return None
    for name in ("fegetenv", "fesetenv"):
        getattr(libm, name).argtypes = [ctypes.POINTER(_Fenv)]
        getattr(libm, name).restype = ctypes.c_int
    return libm


_LIBM = _libm()


def set_flush_denormal(mode: bool) -> bool:
    """Turn flushing of denormal floats to zero on (True) or off (False) for this thread.

    Returns True when the CPU mode could be set (x86-64 Linux), False where unsupported, like
    torch.set_flush_denormal.
    """
    if _LIBM is None:
        return False
    env = _Fenv()
    if _LIBM.fegetenv(env) != 0:
        return False
    env.mxcsr = env.mxcsr | _FTZ_DAZ if mode else env.mxcsr & ~_FTZ_DAZ
    return _LIBM.fesetenv(env) == 0


class FlushDenormals:
    """with FlushDenormals(): the body runs with denormals flushed to zero on this thread, and
    the thread's previous mode is restored on the way out (exceptions included); the exception
    flags the body raised are kept. Where the mode cannot be set, the body runs unchanged.
    About 1.5 us a scope (two ctypes calls each way)."""

    __slots__ = ("_env", "_before")

    def __enter__(self) -> None:
        self._env = None
        if _LIBM is None:
            return
        env = _Fenv()
        if _LIBM.fegetenv(env) != 0 or env.mxcsr & _FTZ_DAZ == _FTZ_DAZ:
            return  # unreadable, or already flushing: nothing to set or restore
        self._before = env.mxcsr & _FTZ_DAZ
        env.mxcsr |= _FTZ_DAZ
        if _LIBM.fesetenv(env) == 0:
            self._env = env

    def __exit__(self, *exc) -> None:
        env = self._env
        if env is not None and _LIBM.fegetenv(env) == 0:
            env.mxcsr = env.mxcsr & ~_FTZ_DAZ | self._before
            _LIBM.fesetenv(env)
