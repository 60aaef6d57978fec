"""retrograd.cuda: whether a CUDA GPU can be used (through CuPy), torch.cuda's first questions.

Nothing here imports CuPy at `import retrograd`; the functions ask for it when called.
"""

from __future__ import annotations


def _cupy():
    """CuPy, or None when it is not installed (or fails to import)."""
    try:
        import cupy
    except Exception:  # ImportError, or a broken CUDA install raising on import
        return None
    return cupy


def device_count() -> int:
    """The number of CUDA devices CuPy sees (0 without CuPy, a driver or a GPU)."""
    cupy = _cupy()
    if cupy is None:
        return 0
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no driver, no device: CUDA errors of every kind mean "none"
        return 0


def is_available() -> bool:
    """Whether a CUDA GPU can hold tensors (CuPy installed and a device present); never
    raises."""
    return device_count() > 0


def current_device() -> int:
    """The index of the current CUDA device."""
    from .backend import backend_for, device

    return backend_for(device("cuda")).resolve(device("cuda")).index


def synchronize() -> None:
    """Wait for every kernel queued on the current device (for timing)."""
    from .backend import backend_for, device

    backend_for(device("cuda")).synchronize()


__all__ = ["current_device", "device_count", "is_available", "synchronize"]
