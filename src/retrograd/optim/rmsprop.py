"""RMSprop, Adadelta and Adagrad: the per-parameter adaptive learning rates of the course,
with torch.optim's exact rules.

foreach (torch's switch; torch offers fused= only for Adagrad of the three): the default (None)
and True run the flat multi-tensor path (optimizer.py); foreach=False runs the same operations
parameter by parameter."""

from __future__ import annotations

from .. import backend
from .optimizer import Optimizer, direction


class RMSprop(Optimizer):
    """v <- a v + (1 - a) g^2;  theta <- theta - lr g / (sqrt(v - gbar^2 if centered) + eps),
    optionally through a momentum buffer b <- momentum b + g / (...)."""

    _scratch_count = 2

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize,
                        foreach=foreach)
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        for name in ("eps", "momentum", "weight_decay", "alpha"):
            self._check(group, name)

    def _state_names(self, group: dict) -> tuple:
        return ("square_avg",) + (("momentum_buffer",) if group["momentum"] > 0 else ()) \
            + (("grad_avg",) if group["centered"] else ())

    def _fresh_state(self, group: dict) -> dict:
        return {"step": 0}

    def _constants(self, group: dict, key) -> tuple:
        return (group["lr"], group["alpha"], group["eps"], group["weight_decay"],
                group["momentum"], group["centered"], group["maximize"])

    def _kernel(self, xp, g, state, tmp, params, c) -> None:
        lr, alpha, eps, weight_decay, momentum, centered, maximize = c
        g = direction(xp, g, tmp[1], params, weight_decay, maximize)
        v, t = state[0], tmp[0]
        xp.multiply(v, alpha, out=v)
        xp.multiply(g, g, out=t)
        xp.multiply(t, 1 - alpha, out=t)
        xp.add(v, t, out=v)
        if centered:
            gbar = state[-1]
            xp.subtract(g, gbar, out=t)  # gbar.lerp_(g, 1 - alpha)
            xp.multiply(t, 1 - alpha, out=t)
            xp.add(gbar, t, out=gbar)
            xp.multiply(gbar, gbar, out=t)
            xp.subtract(v, t, out=t)
            xp.sqrt(t, out=t)
        else:
            xp.sqrt(v, out=t)
        xp.add(t, eps, out=t)
        xp.divide(g, t, out=t)
        if momentum > 0:
            buf = state[1]
            xp.multiply(buf, momentum, out=buf)
            xp.add(buf, t, out=buf)
            xp.multiply(buf, lr, out=t)
        else:
            xp.multiply(t, lr, out=t)
        for p, k in params:
            xp.subtract(p, t[k], out=p)


class Adadelta(Optimizer):
    """v <- rho v + (1 - rho) g^2;  d = sqrt(u + eps) / sqrt(v + eps) g;
    u <- rho u + (1 - rho) d^2;  theta <- theta - lr d  (Zeiler 2012)."""

    _scratch_count = 3

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, foreach: bool | None = None, *,
                 maximize: bool = False):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        foreach=foreach)
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        self._check(group, "rho", 0.0, 1.0)
        self._check(group, "eps")
        self._check(group, "weight_decay")

    def _state_names(self, group: dict) -> tuple:
        return ("square_avg", "acc_delta")

    def _fresh_state(self, group: dict) -> dict:
        return {"step": 0}

    def _constants(self, group: dict, key) -> tuple:
        return group["lr"], group["rho"], group["eps"], group["weight_decay"], group["maximize"]

    def _kernel(self, xp, g, state, tmp, params, c) -> None:
        lr, rho, eps, weight_decay, maximize = c
        g = direction(xp, g, tmp[2], params, weight_decay, maximize)
        (v, u), t, delta = state, tmp[0], tmp[1]
        xp.multiply(v, rho, out=v)
        xp.multiply(g, g, out=t)
        xp.multiply(t, 1 - rho, out=t)
        xp.add(v, t, out=v)
        xp.add(u, eps, out=delta)
        xp.sqrt(delta, out=delta)
        xp.add(v, eps, out=t)
        xp.sqrt(t, out=t)
        xp.divide(delta, t, out=delta)
        xp.multiply(delta, g, out=delta)
        xp.multiply(u, rho, out=u)
        xp.multiply(delta, delta, out=t)
        xp.multiply(t, 1 - rho, out=t)
        xp.add(u, t, out=u)
        xp.multiply(delta, lr, out=delta)
        for p, k in params:
            xp.subtract(p, delta[k], out=p)


class Adagrad(Optimizer):
    """s <- s + g^2;  theta <- theta - lr / (1 + (t - 1) lr_decay) g / (sqrt(s) + eps)."""

    _scratch_count = 2
    _has_fused = True

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10,
                 foreach: bool | None = None, *, maximize: bool = False,
                 fused: bool | None = None):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps,
                        foreach=foreach, maximize=maximize, fused=fused)
        super().__init__(params, defaults)
        for group in self.param_groups:  # torch creates the accumulator at construction
            for p in group["params"]:
                accumulator = backend.of(p._data).empty_like(p._data)  # the parameter's order
                accumulator[...] = group["initial_accumulator_value"]
                self.state[p] = {**self._fresh_state(group), "sum": accumulator}

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        for name in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            self._check(group, name)

    def _state_names(self, group: dict) -> tuple:
        return ("sum",)

    def _fresh_state(self, group: dict) -> dict:
        return {"step": 0}

    def _fill(self, name: str, group: dict):
        return group["initial_accumulator_value"]

    def _key(self, state: dict) -> int:
        return state.get("step", 0)

    def _constants(self, group: dict, steps_before: int) -> tuple:
        clr = group["lr"] / (1 + steps_before * group["lr_decay"])
        return clr, group["eps"], group["weight_decay"], group["maximize"]

    def _kernel(self, xp, g, state, tmp, params, c) -> None:
        clr, eps, weight_decay, maximize = c
        g = direction(xp, g, tmp[1], params, weight_decay, maximize)
        s, t = state[0], tmp[0]
        xp.multiply(g, g, out=t)
        xp.add(s, t, out=s)
        xp.sqrt(s, out=t)
        xp.add(t, eps, out=t)
        xp.divide(g, t, out=t)
        xp.multiply(t, clr, out=t)
        for p, k in params:
            xp.subtract(p, t[k], out=p)
