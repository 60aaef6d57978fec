"""Stochastic gradient descent with torch.optim.SGD's exact rule."""

from __future__ import annotations

from .optimizer import Optimizer, direction


class SGD(Optimizer):
    """theta <- theta - lr * d, with d the gradient (plus weight decay), optionally through a
    momentum buffer b <- momentum * b + (1 - dampening) * g (b = g on the first step), and
    d = g + momentum * b for Nesterov.

    foreach / fused (torch's switches): the default (None) and True run the flat multi-tensor
    path (optimizer.py); foreach=False runs the same operations parameter by parameter."""

    _scratch_count = 2
    _has_fused = True

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, fused: bool | None = None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, fused=fused)
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        self._check(group, "momentum")
        self._check(group, "weight_decay")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")

    def _state_names(self, group: dict) -> tuple:
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _fill(self, name: str, group: dict):
        return None  # the first step copies the direction into the buffer

    def _key(self, state: dict) -> bool:
        return "momentum_buffer" not in state  # the first step

    def _constants(self, group: dict, first: bool) -> tuple:
        return (group["lr"], group["momentum"], group["dampening"], group["nesterov"],
                group["weight_decay"], group["maximize"], first)

    def _kernel(self, xp, g, state, tmp, params, c) -> None:
        lr, momentum, dampening, nesterov, weight_decay, maximize, first = c
        d = direction(xp, g, tmp[0], params, weight_decay, maximize)
        if momentum != 0:
            buf = state[0]
            if first:
                xp.copyto(buf, d)
            else:
                xp.multiply(buf, momentum, out=buf)
                if dampening != 0:
                    d_damped = xp.multiply(d, 1 - dampening, out=tmp[1])
                    xp.add(buf, d_damped, out=buf)
                else:
                    xp.add(buf, d, out=buf)
            if nesterov:
                ahead = xp.multiply(buf, momentum, out=tmp[1])
                d = xp.add(ahead, d, out=ahead)
            else:
                d = buf
        step = xp.multiply(d, lr, out=tmp[1])
        for p, k in params:
            xp.subtract(p, step[k], out=p)
