"""A Hessian-free Newton method: solve (H + damping I) d = -g by conjugate gradients, using only
Hessian-vector products from double backpropagation, then a backtracking line search.

The course mentions that "second order optimization methods exist": this is one, built on
retrograd.autograd.grad(..., create_graph=True). It never forms H, so each CG iteration costs
about two gradient evaluations.
"""

from __future__ import annotations

import math

from .. import backend
from ..autograd import grad
from ..engine import retain_graphs
from ..grad_mode import enable_grad
from .optimizer import Optimizer


class NewtonCG(Optimizer):
    """Truncated Newton (Newton-CG) with a fixed Levenberg-style damping.

    step(closure): the closure returns the loss (it may call backward or not). The optimizer
    differentiates it twice itself, runs up to max_cg_iters CG iterations until the residual is
    below tol * |g| (or negative curvature appears), then backtracks from step lr until the
    Armijo condition f(x + t d) <= f(x) + c1 t g.d holds.
    """

    def __init__(self, params, lr: float = 1.0, max_cg_iters: int = 50, damping: float = 1e-4,
                 tol: float = 1e-5, c1: float = 1e-4, max_backtracks: int = 30):
        defaults = dict(lr=lr, max_cg_iters=max_cg_iters, damping=damping, tol=tol, c1=c1,
                        max_backtracks=max_backtracks)
        super().__init__(params, defaults)
        self._params = self._only_group_params()

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        if group["lr"] <= 0:
            raise ValueError(f"invalid learning rate: {group['lr']} (must be > 0)")
        self._check(group, "damping")
        self._check(group, "tol")
        self._check(group, "c1", 0.0, 1.0, closed=False)
        self._check_counts(group, "max_cg_iters", "max_backtracks")

    def _loss_with_graph(self, closure):
        with enable_grad(), retain_graphs():
            return closure()

    def step(self, closure):
        """One Newton step; returns the loss at the starting point."""
        if closure is None:
            raise ValueError("NewtonCG.step needs a closure that returns the loss")
        group = self.param_groups[0]
        params = self._params
        loss = self._loss_with_graph(closure)
        with enable_grad():
            grads = grad(loss, params, create_graph=True, allow_unused=True)
            used = [(p, g) for p, g in zip(params, grads, strict=True) if g is not None]
            xp = backend.of(params[0]._data)
            g_flat = xp.concatenate([g._data.reshape(-1) for _, g in used]) if used else None
            if g_flat is None or not g_flat.any():
                return loss

            def hvp(v):
                dot, offset = None, 0
                for p, g in used:
                    n = p.numel()
                    term = (g * v[offset:offset + n].reshape(p.shape).astype(p.dtype)).sum()
                    dot = term if dot is None else dot + term
                    offset += n
                hv = grad(dot, [p for p, _ in used], retain_graph=True, allow_unused=True)
                return xp.concatenate([(h._data if h is not None else xp.zeros(p.shape))
                                       .reshape(-1) for (p, _), h in zip(used, hv, strict=True)])

            direction = _conjugate_gradients(hvp, g_flat, group)
        self._line_search(closure, [p for p, _ in used], float(loss), g_flat, direction, group)
        state = self.state.setdefault(params[0], {})
        state["n_iter"] = state.get("n_iter", 0) + 1
        return loss

    def _line_search(self, closure, params, f0, g, d, group) -> None:
        slope = float(g.dot(d))
        start = [p._data.copy() for p in params]
        t = group["lr"]
        for _ in range(group["max_backtracks"]):
            self._move(params, start, t, d)
            with enable_grad():
                f = float(closure())
            if math.isfinite(f) and f <= f0 + group["c1"] * t * slope:
                return
            t *= 0.5
        self._move(params, start, 0.0, d)  # no acceptable step: stay at the start

    @staticmethod
    def _move(params, start, t, d) -> None:
        offset = 0
        for p, x0 in zip(params, start, strict=True):
            n = p.numel()
            backend.of(x0).copyto(p._data, x0 + t * d[offset:offset + n].reshape(p.shape),
                                  casting="unsafe")
            p._vc[0] += 1
            offset += n


def _conjugate_gradients(hvp, g, group: dict):
    """Approximately solve (H + damping I) d = -g, starting from d = 0. Stops at residual
    tol * |g|, after max_cg_iters, or at non-positive curvature (then the steepest-descent
    direction if no CG step was taken yet)."""
    damping, tol = group["damping"], group["tol"]
    xp = backend.of(g)
    d = xp.zeros_like(g, dtype=xp.float64)
    r = -g.astype(xp.float64)
    p = r.copy()
    rs = r.dot(r)
    stop = (tol * xp.sqrt(g.dot(g))) ** 2
    for _ in range(group["max_cg_iters"]):
        hp = hvp(p) + damping * p
        curvature = p.dot(hp)
        if curvature <= 0:
            return d if d.any() else -g.astype(xp.float64)
        alpha = rs / curvature
        d += alpha * p
        r -= alpha * hp
        rs_new = r.dot(r)
        if rs_new <= stop:
            break
        p = r + (rs_new / rs) * p
        rs = rs_new
    return d
