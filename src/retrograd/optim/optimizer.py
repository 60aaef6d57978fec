"""Optimizer base: torch's surface (param_groups, state, step, zero_grad, state_dict), one NumPy
path. A subclass validates its hyperparameters and defines `_update` for one parameter; the base
does the bookkeeping, so each optimizer is a screen of code."""

from __future__ import annotations

import copy
import functools

import numpy as np

from ..grad_mode import enable_grad
from ..tensor import Tensor


class Optimizer:
    """Holds param_groups (dicts of 'params' plus options) and per-parameter state (ndarrays)."""

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict] = {}
        self.param_groups: list[dict] = []
        self._scratch_arrays: dict[tuple[int, int], np.ndarray] = {}  # see _scratch
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
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad._data[...] = 0

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns closure()'s loss if given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        states = self.state
        for group in self.param_groups:
            update = self._group_update(group)
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                state = states.get(p)
                if state is None:
                    state = states[p] = {}
                update(p._data, grad._data, state)
                p._vc[0] += 1  # graphs that saved the old value can no longer backward
        return loss

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict, group: dict) -> None:
        raise NotImplementedError

    def _group_update(self, group: dict):
        """The update of one parameter of `group`, called as f(param, grad, state). A subclass
        may return a function with the group's settings already read: once per step, not once
        per parameter."""
        return functools.partial(self._update, group=group)

    def _scratch(self, param: np.ndarray, which: int = 0) -> np.ndarray:
        """A reusable work array shaped like `param` (`which` tells several apart), so updates
        allocate nothing per step; it is not optimizer state and is never saved."""
        key = (id(param), which)
        buf = self._scratch_arrays.get(key)
        if buf is None or buf.shape != param.shape or buf.dtype != param.dtype:
            buf = self._scratch_arrays[key] = np.empty_like(param)
        return buf

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

    def _direction(self, param: np.ndarray, grad: np.ndarray, group: dict) -> np.ndarray:
        """The gradient to descend: negated when maximizing, plus L2 weight decay (torch's
        coupled form: g + weight_decay * param), in a scratch array; `grad` is never modified."""
        maximize, wd = group.get("maximize"), group.get("weight_decay", 0)
        if not maximize and not wd:
            return grad
        d = self._scratch(param, 2)
        if maximize:
            np.negative(grad, out=d)
        else:
            np.copyto(d, grad)
        if wd:
            np.multiply(param, wd, out=self._scratch(param, 3))
            d += self._scratch(param, 3)
        return d

    # ------------------------------------------------------------------ state_dict
    def state_dict(self) -> dict:
        """{'state': {index: {...}}, 'param_groups': [{options, 'params': [indices]}]}, as torch;
        parameters are referred to by their position across groups. Arrays are copies."""
        index, groups = {}, []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: copy.deepcopy(s) for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore options and state saved by state_dict(); validated before anything changes."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state has {len(groups)} parameter groups, "
                             f"the optimizer has {len(self.param_groups)}")
        for i, (saved, own) in enumerate(zip(groups, self.param_groups, strict=True)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"parameter group {i} has {len(saved['params'])} parameters in "
                                 f"the loaded state, {len(own['params'])} in the optimizer")
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

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])


def _cast_like(value, p: Tensor):
    """Floating state arrays take the parameter's dtype (as torch casts them); others are copied."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and value.shape == p.shape:
            out = np.empty_like(p._data)  # the parameter's memory order, for contiguous updates
            np.copyto(out, value, casting="unsafe")
            return out
        return value.copy()
    return copy.deepcopy(value)
