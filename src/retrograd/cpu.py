"""CPU floating-point mode: flushing denormal floats to zero (torch.set_flush_denormal).

Denormals (magnitudes below ~1.2e-38 in float32) take a slow microcode path on x86: a network
whose ReLUs died or whose optimizer state decayed toward zero can run 2-4x slower for it. Setting
the SSE control register's FTZ (flush results) and DAZ (treat inputs as zero) bits removes that
cost at the price of exact gradual underflow. The setting is per thread; NumPy's elementwise
kernels run on the calling thread, so this is where they are affected.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

_FTZ_DAZ = 0x8000 | 0x0040  # MXCSR bit 15 (flush to zero) and bit 6 (denormals are zero)
_FENV_SIZE = 32  # glibc's fenv_t on x86-64: the x87 environment (28 bytes), then MXCSR
_MXCSR_OFFSET = 28


def _libm():
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    except OSError:
        return None


def set_flush_denormal(mode: bool) -> bool:
    """Turn flushing of denormal floats to zero on (True) or off (False) for this thread.

    Returns True when the CPU mode could be set (x86-64 Linux), False where unsupported, like
    torch.set_flush_denormal.
    """
    libm = _libm()
    if libm is None:
        return False
    env = ctypes.create_string_buffer(_FENV_SIZE)
    if libm.fegetenv(env) != 0:
        return False
    mxcsr = int.from_bytes(env.raw[_MXCSR_OFFSET:], "little")
    mxcsr = mxcsr | _FTZ_DAZ if mode else mxcsr & ~_FTZ_DAZ
    env = ctypes.create_string_buffer(env.raw[:_MXCSR_OFFSET] + mxcsr.to_bytes(4, "little"),
                                      _FENV_SIZE)
    return libm.fesetenv(env) == 0
