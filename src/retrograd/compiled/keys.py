"""What a compiled step's cache key is made of: the call's signature (input shapes, dtypes,
static Python values), the grad mode, and the state around the step (the train/eval mode of
every module and the parameter and group structure of every optimizer it can reach).

The modules and optimizers are found by looking at the function: its closure, the globals its
code names, its defaults, the object of a bound method, and one level into the objects and
containers found there (`discover`).
"""

from __future__ import annotations

import types

from .. import backend
from ..backend import default_float
from ..grad_mode import _State
from ..tensor import Tensor

_SCALARS = (int, float, bool, str, bytes, type(None), complex)


class Unsupported(Exception):
    """An argument the compiled step cannot take as an input (the message says which)."""


def flatten(args: tuple, kwargs: dict):
    """(signature, leaves, arrays): the call's structure and per-leaf key (hashable), the leaf
    objects in order, and the array behind each leaf (None for Python values)."""
    leaves: list = []
    arrays: list = []
    parts = []
    for v in args:
        if type(v) is Tensor:  # the common case, inline
            data = v._data
            leaves.append(v)
            arrays.append(data)
            parts.append((type(data), data.shape, data.dtype, v.requires_grad))
        else:
            parts.append(_flat(v, leaves, arrays))
    if kwargs:  # by name, whatever order the call gives them in
        parts += [(k, _flat(kwargs[k], leaves, arrays)) for k in sorted(kwargs)]
    if len(arrays) > 1:  # which arguments share one array: the recording matched by identity
        first: dict = {}
        parts.append(tuple(first.setdefault(id(a), i) for i, a in enumerate(arrays)))
    return tuple(parts), leaves, arrays


def _flat(value, leaves: list, arrays: list):
    kind = type(value)
    if kind is Tensor or isinstance(value, Tensor):
        data = value._data
        leaves.append(value)
        arrays.append(data)
        return (type(data), data.shape, data.dtype, value.requires_grad)
    if kind is tuple or kind is list:
        return (kind, tuple(_flat(v, leaves, arrays) for v in value))
    if backend.is_array(value):
        leaves.append(value)
        arrays.append(value)
        return (kind, value.shape, value.dtype)
    if isinstance(value, _SCALARS) or backend.is_array_scalar(value):
        leaves.append(value)
        arrays.append(None)
        return (kind, value)
    raise Unsupported(f"an argument of type {type(value).__name__} (inputs must be tensors, "
                      "arrays, Python scalars, or tuples and lists of them)")


def discover(fn) -> tuple[list, list]:
    """(modules, optimizers) that `fn` can reach (see the module docstring)."""
    from ..nn.module import Module
    from ..optim.optimizer import Optimizer

    found: dict = {}
    seen: set = set()

    def visit(obj, depth: int) -> None:
        if id(obj) in seen or depth > 3:
            return
        seen.add(id(obj))
        if isinstance(obj, (Module, Optimizer)):
            found[id(obj)] = obj
            if isinstance(obj, Module):  # its own attributes (a loss module, a helper)
                for v in vars(obj).values():
                    if isinstance(v, (Optimizer, types.FunctionType, types.MethodType)):
                        visit(v, depth + 1)
            return
        if hasattr(obj, "optimizer") and isinstance(getattr(obj, "optimizer", None),
                                                    Optimizer):  # a scheduler
            visit(obj.optimizer, depth + 1)
        if isinstance(obj, types.MethodType):
            visit(obj.__self__, depth)
            visit(obj.__func__, depth)
            return
        if isinstance(obj, types.FunctionType):
            code = obj.__code__
            for cell in obj.__closure__ or ():
                try:
                    visit(cell.cell_contents, depth + 1)
                except ValueError:  # an empty cell
                    pass
            for name in _names(code):
                if name in obj.__globals__:
                    visit(obj.__globals__[name], depth + 1)
            for v in obj.__defaults__ or ():
                visit(v, depth + 1)
            return
        if isinstance(obj, (list, tuple)):
            for v in obj[:64]:
                visit(v, depth + 1)
        elif isinstance(obj, dict):
            for v in list(obj.values())[:64]:
                visit(v, depth + 1)
        elif hasattr(obj, "__dict__") and not isinstance(obj, (type, types.ModuleType)):
            for v in list(vars(obj).values())[:64]:
                visit(v, depth + 1)

    visit(fn, 0)
    modules = [m for m in found.values() if isinstance(m, Module)]
    # a module inside another found module is covered by it
    inner = {id(m) for root in modules for m in root.modules() if m is not root}
    modules = [m for m in modules if id(m) not in inner]
    optimizers = [o for o in found.values() if isinstance(o, Optimizer)]
    return modules, optimizers


def _names(code) -> list:
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _names(const)
    return names


def state_key(modules: list, optimizers: list) -> tuple:
    """The part of the key that lives outside the call: grad mode, the default dtype, each
    module's train/eval mode and parameters (identity, requires_grad), each optimizer's
    groups. A parameter's shape or dtype is checked by the program itself (Program.fits).
    Walks the module dicts directly: this runs on every call."""
    parts = [_State.enabled, default_float()]
    append = parts.append
    for root in modules:
        stack = [root]
        while stack:
            m = stack.pop()
            append(m.training)
            for p in m._parameters.values():
                if p is not None:
                    append(id(p))
                    append(p.requires_grad)
            for c in m._modules.values():
                if c is not None:
                    stack.append(c)
    for opt in optimizers:
        for g in opt.param_groups:
            append(tuple(map(id, g["params"])))
    return tuple(parts)


def buffers_of(modules: list) -> set:
    """ids of the modules' buffers: state that is read live, not constants."""
    return {id(b) for root in modules for b in root.buffers()}


def state_tensors(modules: list, optimizers: list) -> list:
    """The parameters and buffers of the modules and optimizers, each once."""
    seen: dict = {}
    for root in modules:
        for t in (*root.parameters(), *root.buffers()):
            seen.setdefault(id(t), t)
    for opt in optimizers:
        for g in opt.param_groups:
            for p in g["params"]:
                seen.setdefault(id(p), p)
    return list(seen.values())
