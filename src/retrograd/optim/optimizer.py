"""Optimizer base: torch's surface (param_groups, state, step, zero_grad, state_dict, the foreach
and fused switches), the math written once against the backend's array namespace.

A multi-tensor optimizer (SGD, Adam, ...) describes its update as a kernel over arrays: the
gradient, its state arrays (by name), scratch arrays, and the parameters behind them. The base
runs that kernel in one of two ways, with the same operations in the same order, so both give
the same bits:
- per tensor (`foreach=False`): once per parameter, on the parameter's own arrays;
- flat (the default, `foreach=True` or `fused=True`): the state of each bucket of parameters
  (one group, one dtype, one backend) lives in one contiguous buffer per state name, every
  parameter's state a view into it (flat.py), and the kernel runs over the buffers in
  cache-sized chunks (fused) or whole (foreach).

The update runs with denormal floats flushed to zero (cpu.FlushDenormals, the calling thread's
mode restored afterwards), as XLA runs everything: a moment that decays toward zero (Adam's m of
a weight whose gradient is 0 shrinks 0.9x a step) turns denormal after some hundred steps, and
every later pass over it runs ~40x slower; flushed, it becomes 0. The results differ from
torch.optim's only where torch's hold a number below 1.2e-38 (float32) or 2.2e-308 (float64).
`flush_denormal = False` on an optimizer keeps gradual underflow. The closure does not run in
that scope: forward and backward keep the thread's own mode.
"""

from __future__ import annotations

import copy
import functools

from .. import backend
from ..cpu import FlushDenormals
from ..grad_mode import enable_grad
from ..tensor import Tensor
from . import flat


class SwitchError(ValueError, RuntimeError):
    """foreach=True with fused=True: torch raises RuntimeError, retrograd's convention is a
    ValueError; this is both."""


class Optimizer:
    """Holds param_groups (dicts of 'params' plus options) and per-parameter state (arrays)."""

    # A multi-tensor subclass sets these and defines the hooks below (_kernel ...).
    _kernel_names: tuple = ()  # not used directly: _state_names(group) says which arrays
    _scratch_count = 0  # scratch arrays the kernel uses (each shaped like the gradient)
    _has_fused = False  # whether torch offers fused= for this optimizer
    flush_denormal = True  # run the update with denormals flushed to zero (module docstring)

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict] = {}
        self.param_groups: list[dict] = []
        self._scratch_arrays: dict[tuple[int, int], object] = {}  # see _scratch
        self._layouts: dict[int, flat.Layout] = {}  # group index: its flat state (flat.py)
        self._chunk_scratch: dict[tuple, list] = {}  # see _flat_scratch
        _check_switches(self.defaults)
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors or of dicts, "
                            "got a single Tensor")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def _validate(self, group: dict) -> None:
        """Raise ValueError for a bad hyperparameter in `group` (subclasses extend)."""
        if group["lr"] < 0:
            raise ValueError(f"invalid learning rate: {group['lr']} (must be >= 0)")

    def add_param_group(self, group: dict) -> None:
        group = dict(group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("some parameters appear in more than one parameter group")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        group["params"] = params
        self._validate(group)
        _check_switches(group)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad._data[...] = 0

    # ------------------------------------------------------------------ stepping
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns closure()'s loss if given.
        A parameter whose .grad is None is skipped: neither it nor its state changes."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        if self.flush_denormal:
            with FlushDenormals():
                self._step_all()
        else:
            self._step_all()
        return loss

    def _step_all(self) -> None:
        if not hasattr(self, "_kernel"):  # a subclass with the older per-parameter _update
            self._step_updates()
            return
        for index, group in enumerate(self.param_groups):
            if self._flat(group):
                flat.step(self, index, group)
            else:
                self._step_per_tensor(group)

    def _flat(self, group: dict) -> bool:
        """Whether `group` runs the flat path: unless foreach=False (and fused is not True)."""
        return group.get("foreach") is not False or bool(group.get("fused"))

    def _step_per_tensor(self, group: dict) -> None:
        """The kernel once per parameter, on the parameter's own arrays (foreach=False)."""
        states, names = self.state, self._state_names(group)
        constants: dict = {}  # by key: parameters at the same step share them
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            state = states.get(p)
            if state is None:
                state = states[p] = {}
            data = p._data
            key = self._key(state)
            if not state:
                state.update(self._fresh_state(group))
            xp = backend.of(data)
            arrays = []
            for name in names:
                a = state.get(name)
                if a is None:  # first step: zeros or the optimizer's initial fill
                    a = state[name] = xp.empty_like(data)  # in the parameter's memory order
                    fill = self._fill(name, group)
                    if fill is not None:
                        a[...] = fill
                arrays.append(a)
            c = constants.get(key)
            if c is None:
                c = constants[key] = self._constants(group, key)
            scratch = [self._scratch(data, k) for k in range(self._scratch_count)]
            self._kernel(xp, grad._data, arrays, scratch, ((data, ...),), c)
            self._advance(state)
            p._vc[0] += 1  # graphs that saved the old value can no longer backward

    # The hooks of a multi-tensor optimizer (see SGD, Adam, RMSprop):
    def _state_names(self, group: dict) -> tuple:
        """The names of the state arrays (each shaped like the parameter) under `group`."""
        return ()

    def _fresh_state(self, group: dict) -> dict:
        """The non-array entries of a parameter's state before its first step."""
        return {}

    def _fill(self, name: str, group: dict):
        """The initial value of state array `name` (None: written by the first step)."""
        return 0

    def _key(self, state: dict):
        """What, besides the group, the update's constants depend on (Adam: the step count);
        parameters with equal keys share one pass over the flat buffers."""
        return None

    def _constants(self, group: dict, key):
        """The update's scalars for one key, computed once per step (in float64)."""
        return group

    def _advance(self, state: dict) -> None:
        """Count the step in the state."""
        if "step" in state:
            state["step"] += 1

    def _step_updates(self) -> None:
        """The per-parameter `_update(param, grad, state, group)` protocol of subclasses that
        define no kernel."""
        states = self.state
        for group in self.param_groups:
            update = functools.partial(self._update, group=group)
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                state = states.get(p)
                if state is None:
                    state = states[p] = {}
                update(p._data, grad._data, state)
                p._vc[0] += 1

    def _update(self, param, grad, state: dict, group: dict) -> None:
        raise NotImplementedError

    def _scratch(self, param, which: int = 0):
        """A reusable work array shaped like `param` (`which` tells several apart), so updates
        allocate nothing per step; it is not optimizer state and is never saved."""
        key = (id(param), which)
        buf = self._scratch_arrays.get(key)
        if buf is None or buf.shape != param.shape or buf.dtype != param.dtype:
            buf = self._scratch_arrays[key] = backend.of(param).empty_like(param)
        return buf

    def _flat_scratch(self, xp, dtype, size: int, count: int) -> list:
        """`count` work arrays of at least `size` elements for the flat path's chunks, shared
        by all buckets of one dtype and backend (one chunk runs at a time)."""
        key = (xp.NAME, dtype.str)
        arrays = self._chunk_scratch.get(key, [])
        if len(arrays) < count or (arrays and arrays[0].size < size):
            size = max(size, arrays[0].size if arrays else 0)
            arrays = self._chunk_scratch[key] = [xp.empty(size, dtype)
                                                 for _ in range(max(count, len(arrays)))]
        return arrays[:count]

    def _only_group_params(self) -> list:
        """The parameters of an optimizer that treats them as one flat vector (LBFGS,
        NewtonCG), which has a single parameter group."""
        if len(self.param_groups) != 1:
            raise ValueError(f"{type(self).__name__} doesn't support per-parameter options "
                             "(parameter groups)")
        return self.param_groups[0]["params"]

    @staticmethod
    def _check_counts(group: dict, *names: str) -> None:
        """ValueError unless each named option is a positive integer."""
        for name in names:
            if not isinstance(group[name], int) or group[name] <= 0:
                raise ValueError(f"invalid {name}: {group[name]!r} (must be a positive integer)")

    @staticmethod
    def _check(group: dict, name: str, low: float = 0.0, high: float | None = None,
               closed: bool = True) -> None:
        """ValueError unless low <= group[name] (< or <=) high."""
        value = group[name]
        below_high = high is None or (value <= high if closed else value < high)
        if not (value >= low and below_high):
            bound = "" if high is None else f" and {'<=' if closed else '<'} {high}"
            raise ValueError(f"invalid {name} value: {value} (must be >= {low}{bound})")

    # ------------------------------------------------------------------ state_dict
    def state_dict(self) -> dict:
        """{'state': {index: {...}}, 'param_groups': [{options, 'params': [indices]}]}, as torch;
        parameters are referred to by their position across groups. Arrays are copies (each
        in its parameter's shape and memory order, never a view of a flat buffer)."""
        index, groups = {}, []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: {k: _copy(v) for k, v in s.items()}
                 for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore options and state saved by state_dict(); validated before anything changes.
        The next step copies the loaded arrays into the flat buffers."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state has {len(groups)} parameter groups, "
                             f"the optimizer has {len(self.param_groups)}")
        for i, (saved, own) in enumerate(zip(groups, self.param_groups, strict=True)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"parameter group {i} has {len(saved['params'])} parameters in "
                                 f"the loaded state, {len(own['params'])} in the optimizer")
            _check_switches(saved)
        by_index = {}
        for saved, own in zip(groups, self.param_groups, strict=True):
            by_index.update(zip(saved["params"], own["params"], strict=True))
        new_state = {}
        for i, s in state_dict["state"].items():
            p = by_index[int(i)]
            new_state[p] = {k: _cast_like(v, p) for k, v in s.items()}
        for saved, own in zip(groups, self.param_groups, strict=True):
            own.update({k: v for k, v in saved.items() if k != "params"})
        self.state = new_state
        self._layouts.clear()  # rebuilt from the loaded arrays at the next step

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])


def _check_switches(options: dict) -> None:
    """torch's rules for the foreach / fused switches: None or a bool, not both True."""
    for name in ("foreach", "fused"):
        value = options.get(name)
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"{name} must be None, True or False, got {value!r}")
    if options.get("foreach") and options.get("fused"):
        raise SwitchError("`fused` and `foreach` cannot be `True` together.")


def _copy(value):
    """A state entry's copy: an array in its own shape and memory order (a view of a flat
    buffer becomes a compact array of its own); anything else deep-copied."""
    if backend.is_array(value):
        return backend.of(value).copy(value)
    return copy.deepcopy(value)


def _cast_like(value, p: Tensor):
    """Floating state arrays take the parameter's dtype (as torch casts them); others are copied.
    Another library's arrays (torch's state dict: tensors, the step a 0-d float tensor) become
    arrays of the parameter's backend, a 0-d one a Python number (an int when integral)."""
    if not backend.is_array(value) and hasattr(value, "__array__"):
        value = backend.host.asarray(value)
        if value.ndim == 0:
            number = value.item()
            return int(number) if float(number).is_integer() else number
    if backend.is_array(value):
        data = p._data
        xp = backend.of(data)
        if value.dtype.kind == "f" and value.shape == p.shape:
            out = xp.empty_like(data)  # the parameter's memory order, for contiguous updates
            xp.copyto(out, xp.asarray(value), casting="unsafe")
            return out
        return backend.of(value).copy(value)
    return copy.deepcopy(value)


def direction(xp, g, out, params, weight_decay: float, maximize: bool):
    """The gradient to descend: g, negated when maximizing, plus L2 weight decay (torch's
    coupled form, g + weight_decay * param), in `out` unless it is g itself; g is never
    modified. `params` are the (parameter, index into out) pieces behind g."""
    if weight_decay:
        for p, k in params:
            xp.multiply(p, weight_decay, out=out[k])
        return xp.subtract(out, g, out=out) if maximize else xp.add(out, g, out=out)
    if maximize:
        return xp.negative(g, out=out)
    return g
