"""RMSprop, Adadelta and Adagrad: the per-parameter adaptive learning rates of the course,
with torch.optim's exact rules."""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class RMSprop(Optimizer):
    """v <- a v + (1 - a) g^2;  theta <- theta - lr g / (sqrt(v - gbar^2 if centered) + eps),
    optionally through a momentum buffer b <- momentum b + g / (...)."""

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, *,
                 maximize: bool = False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        for name in ("eps", "momentum", "weight_decay", "alpha"):
            self._check(group, name)

    def _update(self, param, grad, state, group) -> None:
        alpha, momentum = group["alpha"], group["momentum"]
        g = self._direction(param, grad, group)
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(param)
            if momentum > 0:
                state["momentum_buffer"] = np.zeros_like(param)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(param)
        state["step"] += 1
        v, tmp = state["square_avg"], self._scratch(param)
        v *= alpha
        np.multiply(g, g, out=tmp)
        tmp *= 1 - alpha
        v += tmp
        if group["centered"]:
            gbar = state["grad_avg"]
            np.subtract(g, gbar, out=tmp)  # gbar.lerp_(g, 1 - alpha)
            tmp *= 1 - alpha
            gbar += tmp
            np.multiply(gbar, gbar, out=tmp)
            np.subtract(v, tmp, out=tmp)
            np.sqrt(tmp, out=tmp)
        else:
            np.sqrt(v, out=tmp)
        tmp += group["eps"]
        np.divide(g, tmp, out=tmp)
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += tmp
            np.multiply(buf, group["lr"], out=tmp)
        else:
            tmp *= group["lr"]
        param -= tmp


class Adadelta(Optimizer):
    """v <- rho v + (1 - rho) g^2;  d = sqrt(u + eps) / sqrt(v + eps) g;
    u <- rho u + (1 - rho) d^2;  theta <- theta - lr d  (Zeiler 2012)."""

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, *, maximize: bool = False):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        self._check(group, "rho", 0.0, 1.0)
        self._check(group, "eps")
        self._check(group, "weight_decay")

    def _update(self, param, grad, state, group) -> None:
        rho, eps = group["rho"], group["eps"]
        g = self._direction(param, grad, group)
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(param)
            state["acc_delta"] = np.zeros_like(param)
        state["step"] += 1
        v, u, tmp = state["square_avg"], state["acc_delta"], self._scratch(param)
        v *= rho
        np.multiply(g, g, out=tmp)
        tmp *= 1 - rho
        v += tmp
        delta = self._scratch(param, 1)
        np.add(u, eps, out=delta)
        np.sqrt(delta, out=delta)
        np.add(v, eps, out=tmp)
        np.sqrt(tmp, out=tmp)
        delta /= tmp
        delta *= g
        u *= rho
        np.multiply(delta, delta, out=tmp)
        tmp *= 1 - rho
        u += tmp
        delta *= group["lr"]
        param -= delta


class Adagrad(Optimizer):
    """s <- s + g^2;  theta <- theta - lr / (1 + (t - 1) lr_decay) g / (sqrt(s) + eps)."""

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, *,
                 maximize: bool = False):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps,
                        maximize=maximize)
        super().__init__(params, defaults)
        for group in self.param_groups:  # torch creates the accumulator at construction
            for p in group["params"]:
                self._init_state(self.state.setdefault(p, {}), p._data, group)

    @staticmethod
    def _init_state(state: dict, param: np.ndarray, group: dict) -> None:
        state["step"] = 0
        state["sum"] = np.full_like(param, group["initial_accumulator_value"])

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        for name in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            self._check(group, name)

    def _update(self, param, grad, state, group) -> None:
        g = self._direction(param, grad, group)
        if not state:  # a group added after construction
            self._init_state(state, param, group)
        state["step"] += 1
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        s, tmp = state["sum"], self._scratch(param)
        np.multiply(g, g, out=tmp)
        s += tmp
        np.sqrt(s, out=tmp)
        tmp += group["eps"]
        np.divide(g, tmp, out=tmp)
        tmp *= clr
        param -= tmp
