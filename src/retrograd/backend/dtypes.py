"""The dtype table: the dtypes tensors take, how any spelling of one is read, and the default
float dtype that Python floats become.

Every array library retrograd runs on (NumPy, and CuPy through the same objects) describes its
dtypes with NumPy's dtype objects, so one table serves all backends.
"""

from __future__ import annotations

import numpy as np

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
int32 = np.dtype(np.int32)
bool_ = np.dtype(np.bool_)

DType = np.dtype
FLOATS = (float32, float64)  # the dtypes a default float dtype or a gradient may have
# Python-side integers: what an int argument (a size, a seed, an index) may be
INTEGER_TYPES = (int, np.integer)

_DEFAULT = [float32]


def as_dtype(spec) -> DType:
    """dtype(spec): a dtype from a dtype, a scalar type (np.float32), a name ('float32') or a
    Python type (float is float64, int int64, bool bool)."""
    return np.dtype(spec)


def default_float() -> DType:
    """The dtype that Python floats (lists, scalars) become: float32 unless changed."""
    return _DEFAULT[0]


def set_default_float(dtype) -> None:
    """Set the dtype that Python floats become (float32 or float64)."""
    dtype = as_dtype(dtype)
    if dtype not in FLOATS:
        raise TypeError(f"default dtype must be float32 or float64, got {dtype}")
    _DEFAULT[0] = dtype
