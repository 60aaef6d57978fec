"""Adam and AdamW with torch.optim's exact rules (bias correction, eps outside the square root,
amsgrad), updated in place through scratch arrays."""

from __future__ import annotations

import math

from .optimizer import Optimizer, direction


class Adam(Optimizer):
    """m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    theta <- theta - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    (with amsgrad, v is replaced by its running maximum).

    foreach / fused (torch's switches): the default (None) and True run the flat multi-tensor
    path (optimizer.py); foreach=False runs the same operations parameter by parameter."""

    decoupled_weight_decay = False
    _scratch_count = 2
    _has_fused = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None,
                 fused: bool | None = None):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=foreach, fused=fused)
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        self._check(group, "eps")
        self._check(group, "weight_decay")
        for i, beta in enumerate(group["betas"]):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"invalid beta parameter at index {i}: {beta} "
                                 "(must be in [0, 1))")

    def _state_names(self, group: dict) -> tuple:
        names = ("exp_avg", "exp_avg_sq")
        return names + ("max_exp_avg_sq",) if group["amsgrad"] else names

    def _fresh_state(self, group: dict) -> dict:
        return {"step": 0}

    def _key(self, state: dict) -> int:
        return state.get("step", 0)

    def _constants(self, group: dict, steps_before: int) -> tuple:
        lr, (beta1, beta2) = group["lr"], group["betas"]
        step = steps_before + 1
        # in float64, cast once when they meet the float32 arrays
        return (lr, beta1, beta2, group["eps"], group["weight_decay"], group["maximize"],
                group["amsgrad"], lr / (1 - beta1 ** step), math.sqrt(1 - beta2 ** step))

    def _kernel(self, xp, g, state, tmp, params, c) -> None:
        lr, beta1, beta2, eps, weight_decay, maximize, amsgrad, step_size, bc2_sqrt = c
        if self.decoupled_weight_decay:
            if weight_decay:
                for p, _ in params:
                    xp.multiply(p, 1 - lr * weight_decay, out=p)
            g = xp.negative(g, out=tmp[1]) if maximize else g
        else:
            g = direction(xp, g, tmp[1], params, weight_decay, maximize)
        m, v, t = state[0], state[1], tmp[0]
        xp.subtract(g, m, out=t)  # m.lerp_(g, 1 - b1) = m + (1 - b1) (g - m)
        xp.multiply(t, 1 - beta1, out=t)
        xp.add(m, t, out=m)
        xp.multiply(v, beta2, out=v)
        xp.multiply(g, g, out=t)
        xp.multiply(t, 1 - beta2, out=t)
        xp.add(v, t, out=v)
        if amsgrad:
            v = xp.maximum(state[2], v, out=state[2])
        xp.sqrt(v, out=t)
        xp.divide(t, bc2_sqrt, out=t)
        xp.add(t, eps, out=t)
        xp.divide(m, t, out=t)
        xp.multiply(t, step_size, out=t)
        for p, k in params:
            xp.subtract(p, t[k], out=p)


class AdamW(Adam):
    """Adam with decoupled weight decay: theta <- theta (1 - lr wd) before the Adam step."""

    decoupled_weight_decay = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None,
                 fused: bool | None = None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         foreach=foreach, fused=fused)
