"""Devices, torch's surface: `device('cuda:0')`, and which backend holds a device's arrays.

A device is a type ('cpu', 'cuda', or a type a test registers) and, for the types with several
devices, an index. Each device type belongs to one backend: 'cpu' to NumPy, 'cuda' to CuPy,
which is imported only when a CUDA device is first asked for (`backend_for`), so that
`import retrograd` needs NumPy alone.
"""

from __future__ import annotations

import importlib
import re

from .dtypes import INTEGER_TYPES

# device type -> the module of its backend, imported on first use
_MODULES = {"cpu": "retrograd.backend.numpy_backend", "cuda": "retrograd.backend.cupy_backend"}
_LOADED: dict = {}
_SPEC = re.compile(r"^([a-z_]+)(?::(\d+))?$")


class device:  # noqa: N801  (torch's name: retrograd.device('cuda:0'))
    """device(type[, index]) or device('type:index'): where a tensor's array lives.

    Equal when type and index are; str() is torch's ('cpu', 'cuda:0'). 'cuda' without an index
    means the current CUDA device (index None), as in torch."""

    __slots__ = ("type", "index")

    def __init__(self, type, index: int | None = None):  # noqa: A002  (torch's name)
        if isinstance(type, device):
            if index is not None:
                raise ValueError(f"device: an index was given twice ({type} and {index})")
            type, index = type.type, type.index
        elif not isinstance(type, str):
            raise TypeError(f"device: expected a string like 'cuda:0' or a device, got "
                            f"{type!r}")
        else:
            match = _SPEC.match(type.strip())
            if match is None:
                raise ValueError(f"device: expected a device type like 'cpu', 'cuda' or "
                                 f"'cuda:0', got {type!r}")
            type, written = match.group(1), match.group(2)
            if written is not None:
                if index is not None:
                    raise ValueError(f"device: an index was given twice ({type}:{written} "
                                     f"and {index})")
                index = int(written)
        if type not in _MODULES:
            raise ValueError(f"device: unknown device type {type!r}; expected one of "
                             f"{', '.join(sorted(_MODULES))}")
        if index is not None:
            if not isinstance(index, INTEGER_TYPES) or isinstance(index, bool) or index < 0:
                raise ValueError(f"device: index must be a non-negative integer, got {index!r}")
            index = int(index)
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "index", index)

    def __setattr__(self, name, value):
        raise AttributeError("device is immutable")

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = device(other)
            except ValueError:
                return False
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"


CPU = device("cpu")
_LOADED["cpu"] = importlib.import_module(_MODULES["cpu"])


def as_device(spec) -> device:
    """A device from a device, a string ('cpu', 'cuda:1') or an int (a CUDA index, as torch)."""
    if isinstance(spec, device):
        return spec
    if isinstance(spec, INTEGER_TYPES) and not isinstance(spec, bool):
        return device("cuda", spec)
    return device(spec)


def is_device_spec(value) -> bool:
    """Whether `value` names a device (for `.to(x)`, which takes a device or a dtype)."""
    if isinstance(value, device):
        return True
    if isinstance(value, str):
        match = _SPEC.match(value.strip())
        return match is not None and match.group(1) in _MODULES
    return False


def add_device_type(name: str, module: str) -> None:
    """Let device(name) name the backend in `module` (a module path; imported on first use)."""
    _MODULES[name] = module


def backend_for(dev: device):
    """The backend module holding arrays on devices of `dev`'s type (imported, and registered
    with the seam, on first use). Raises RuntimeError when it cannot be loaded (no CuPy)."""
    loaded = _LOADED.get(dev.type)
    if loaded is not None:
        return loaded
    from . import register

    module = importlib.import_module(_MODULES[dev.type])
    if hasattr(module, "load"):  # an optional library: import it now, one line if missing
        module.load()
    register(module)
    _LOADED[dev.type] = module
    return module
