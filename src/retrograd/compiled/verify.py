"""verify=N: a replay checked against eager execution of the same call, from the same state.

The call runs eagerly first; everything it can change (the parameters and buffers of the
modules, every tensor the program reads, their gradients, the optimizers' state dicts, the
random generator) is then put back and the replay runs; the two results and the two states
must agree bit for bit, or VerifyError names the first difference.
"""

from __future__ import annotations

import copy

from .. import backend
from .. import random as _random
from ..tensor import Tensor, _wrap


class VerifyError(AssertionError, RuntimeError):
    """A compiled call gave a result or left a state different from eager execution."""


def _tensors(cf, program) -> list:
    seen, out = set(), []
    candidates = list(program.live_tensors)
    for root in cf._modules:
        candidates += list(root.parameters()) + list(root.buffers())
    for opt in cf._optimizers:
        candidates += [p for g in opt.param_groups for p in g["params"]]
    for t in candidates:
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


def _snapshot(tensors: list, optimizers: list) -> dict:
    return {"tensors": [(t, backend.of(t._data).copy(t._data),
                         None if t.grad is None else backend.of(t.grad._data).copy(t.grad._data))
                        for t in tensors],
            "optimizers": [(o, copy.deepcopy(o.state_dict())) for o in optimizers],
            "rng": copy.deepcopy(_random.get_rng_state())}


def _restore(snap: dict) -> None:
    for t, data, grad in snap["tensors"]:
        backend.of(t._data).copyto(t._data, data)
        t.grad = None if grad is None else _wrap(backend.of(grad).copy(grad))
    for o, state in snap["optimizers"]:
        o.load_state_dict(copy.deepcopy(state))
    _random.set_rng_state(copy.deepcopy(snap["rng"]))


def _same(a, b) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
            return False
        a, b = a._data, b._data
    if backend.is_array(a) or backend.is_array(b):
        if not (backend.is_array(a) and backend.is_array(b)):
            return False
        return a.shape == b.shape and a.dtype == b.dtype and \
            backend.of(a).to_numpy(a).tobytes() == backend.of(b).to_numpy(b).tobytes()
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    try:
        return bool(a == b) or (a != a and b != b)  # NaN equals NaN here
    except Exception:
        return a is b


def _first_difference(eager: dict, compiled: dict, result_e, result_c) -> str | None:
    if not _same(result_e, result_c):
        return "the returned values differ"
    for (_, data_e, grad_e), (_, data_c, grad_c) in zip(eager["tensors"], compiled["tensors"],
                                                        strict=True):
        name = f"a tensor of shape {tuple(data_e.shape)}"
        if not _same(data_e, data_c):
            return f"the values of {name} differ"
        if (grad_e is None) != (grad_c is None) or (grad_e is not None and
                                                   not _same(grad_e, grad_c)):
            return f"the gradient of {name} differs"
    for (o, state_e), (_, state_c) in zip(eager["optimizers"], compiled["optimizers"],
                                          strict=True):
        if not _same(state_e, state_c):
            return f"the state of {type(o).__name__} differs"
    if not _same(eager["rng"], compiled["rng"]):
        return "the random generator is in a different state (draws differ)"
    return None


def verified_call(cf, program, args: tuple, kwargs: dict, arrays: list, leaves: list):
    """The replay of one call, checked against eager execution (see the module docstring)."""
    tensors = _tensors(cf, program)
    before = _snapshot(tensors, cf._optimizers)
    result_e = cf.fn(*args, **kwargs)
    result_e = _detached(result_e)
    eager = _snapshot(tensors, cf._optimizers)
    _restore(before)
    result_c = program.run(arrays, leaves)
    compiled = _snapshot(tensors, cf._optimizers)
    why = _first_difference(eager, compiled, result_e, result_c)
    if why is not None:
        raise VerifyError(f"retrograd.compile(verify={cf.verify}): call {cf.verified} of "
                          f"{cf.__name__} differs from eager execution: {why}")
    return result_c


def _detached(value):
    if isinstance(value, Tensor):
        return _wrap(backend.of(value._data).copy(value._data))
    if isinstance(value, (list, tuple)):
        return type(value)(_detached(v) for v in value)
    if isinstance(value, dict):
        return {k: _detached(v) for k, v in value.items()}
    return value
