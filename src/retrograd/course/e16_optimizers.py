"""Adaptive optimizers (Adam, Adadelta, RMSprop) scale each parameter's step by its own gradient
history, so on a badly scaled problem they beat plain SGD; second-order methods (Newton-CG,
L-BFGS) converge in far fewer iterations.

Problem: logistic regression whose 10 features have standard deviations from 0.1 to 10 (raw,
unstandardized features; a Hessian condition number near 1e4), in float64, full batch. Each
first-order method gets its best learning rate from a log grid (best final loss), so none is
handicapped by a guess. Newton-CG uses exact Hessian-vector products; L-BFGS, a quasi-Newton
method, only estimates curvature from gradient differences, so it is held to a weaker bar.
"""

from __future__ import annotations

import numpy as np

import retrograd as rg
from retrograd.nn import functional as F

from .experiment import Experiment, Result, pyplot, save_figure
from .tables import num, sci

FIRST_ORDER = {"SGD": rg.optim.SGD, "Adam": rg.optim.Adam, "RMSprop": rg.optim.RMSprop,
               "Adadelta": rg.optim.Adadelta}
TOL = 1e-6  # "converged": loss − optimum below this
MIN_ADVANTAGE = 2.0  # adaptive final suboptimality at least this many times below SGD's
FEWER = 10.0  # Newton-CG iterations at least this many times fewer than the best first-order
SECOND_ORDER_BUDGET = 50


def make_problem(n: int = 1000, d: int = 10, seed: int = 16, smallest: float = 0.1):
    """Features x_j = s_j z_j with s_j log-spaced in [smallest, 10]; labels drawn from a logistic
    model whose weights are 1/s_j, so every feature matters equally (and the data overlap)."""
    rng = np.random.default_rng(seed)
    scales = feature_scales(smallest, d)
    x = rng.standard_normal((n, d)) * scales
    w_true = rng.choice([-1.0, 1.0], d) / scales
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ w_true)))).astype(np.float64)
    return x, y


def feature_scales(smallest: float = 0.1, d: int = 10) -> np.ndarray:
    """The features' standard deviations: d values log-spaced from `smallest` to 10."""
    return np.logspace(np.log10(smallest), 1, d)


def _loss(params, x, y):
    w, b = params
    return F.binary_cross_entropy_with_logits(x @ w + b, y)


def _params(d: int):
    return [rg.zeros(d, dtype=np.float64, requires_grad=True),
            rg.zeros(1, dtype=np.float64, requires_grad=True)]


def _first_order(name: str, lr: float, steps: int, x, y) -> list[float]:
    params = _params(x.shape[1])
    opt = FIRST_ORDER[name](params, lr=lr)
    xt, curve = rg.tensor(x), []
    for _ in range(steps):
        loss = _loss(params, xt, y)
        curve.append(float(loss.item()))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if not np.isfinite(curve[-1]):
            break
    return curve


def _second_order(name: str, iters: int, x, y) -> tuple[list[float], list[int]]:
    """Loss before each iteration, and the loss evaluations (closure calls) so far after it."""
    params, xt, calls = _params(x.shape[1]), rg.tensor(x), [0]
    if name == "L-BFGS":
        opt = rg.optim.LBFGS(params, max_iter=1, max_eval=25, line_search_fn="strong_wolfe",
                             tolerance_grad=1e-12, tolerance_change=1e-14)
    else:
        opt = rg.optim.NewtonCG(params, damping=1e-8, tol=1e-8)

    def closure():
        calls[0] += 1
        loss = _loss(params, xt, y)
        if name == "L-BFGS":
            opt.zero_grad()
            loss.backward()
        return loss
    curve, evaluations = [], []
    for _ in range(iters):
        with rg.no_grad():
            curve.append(float(_loss(params, xt, y).item()))
        opt.step(closure)
        evaluations.append(calls[0])
    return curve, evaluations


def _iterations_to(curve, optimum, budget) -> int:
    hit = np.flatnonzero(np.asarray(curve) - optimum < TOL)
    return int(hit[0]) if hit.size else budget  # censored at the budget


def _best_first_order(name: str, lrs, steps: int, x, y) -> tuple[float, list[float]]:
    """The learning rate of the grid with the lowest final loss, and its curve."""
    curves = {lr: _first_order(name, lr, steps, x, y) for lr in lrs}
    finite = {lr: c for lr, c in curves.items() if len(c) == steps and np.isfinite(c[-1])}
    lr = min(finite, key=lambda r: finite[r][-1])
    return float(lr), finite[lr]


def run(quick: bool, out_dir: str) -> Result:
    steps = 300 if quick else 3000
    lrs = np.logspace(-4, 2, 7 if quick else 13)
    x, y = make_problem()
    second = {name: _second_order(name, SECOND_ORDER_BUDGET, x, y)
              for name in ("Newton-CG", "L-BFGS")}
    optimum = min(min(c) for c, _ in second.values())
    best = {name: _best_first_order(name, lrs, steps, x, y) for name in FIRST_ORDER}
    gap = {name: best[name][1][-1] - optimum for name in best}
    iters = {name: _iterations_to(best[name][1], optimum, steps) for name in best}
    iters.update({name: _iterations_to(c, optimum, SECOND_ORDER_BUDGET)
                  for name, (c, _) in second.items()})
    fastest_first = min(iters[n] for n in FIRST_ORDER)
    measured = {
        "feature_scales": f"{feature_scales().min():g} .. {feature_scales().max():g} "
                          f"(log-spaced, {x.shape[1]} features)", "steps": steps,
        "lr_grid": [float(v) for v in lrs], "optimum_loss": optimum, "tolerance": TOL,
        **{f"{n}: best_lr": best[n][0] for n in FIRST_ORDER},
        **{f"{n}: final_loss_minus_optimum": gap[n] for n in FIRST_ORDER},
        **{f"{n}: iterations_to_tolerance": iters[n] for n in iters},
        **{f"{n}: loss_evaluations_to_tolerance": calls[max(iters[n] - 1, 0)]
           for n, (_, calls) in second.items()},
        "min_advantage_over_sgd": MIN_ADVANTAGE, "min_factor_fewer_iterations": FEWER,
    }
    adaptive_win = all(gap[n] * MIN_ADVANTAGE <= gap["SGD"] for n in ("Adam", "RMSprop",
                                                                       "Adadelta"))
    second_win = iters["Newton-CG"] * FEWER <= fastest_first and iters["L-BFGS"] < fastest_first
    holds = adaptive_win and second_win
    notes = ["A Newton-CG iteration costs up to 50 Hessian-vector products (about two gradients "
             "each) and an L-BFGS iteration a line search: the measured loss evaluations are "
             "reported beside the iteration counts."]
    if not quick:  # the same comparison with a tenfold worse scaling, reported, not judged
        x2, y2 = make_problem(smallest=0.01)
        opt2 = min(_second_order("Newton-CG", SECOND_ORDER_BUDGET, x2, y2)[0])
        harsh = {n: _best_first_order(n, lrs, steps, x2, y2)[1][-1] - opt2 for n in FIRST_ORDER}
        measured["scales 0.01..10: final_loss_minus_optimum"] = harsh
        notes.append(f"With feature scales {feature_scales(0.01).min():g}.."
                     f"{feature_scales(0.01).max():g} (condition number near 1e6), loss − "
                     "optimum after the same steps: " + ", ".join(f"{n} {v:.1e}" for n, v in
                                                                 harsh.items()) + ".")

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name, (lr, curve) in best.items():
        ax.plot(np.arange(1, len(curve) + 1), np.maximum(np.asarray(curve) - optimum, 1e-16),
                label=f"{name} (lr {lr:.2g})")
    for name, (curve, _) in second.items():
        ax.plot(np.arange(1, len(curve) + 1), np.maximum(np.asarray(curve) - optimum, 1e-16),
                "o-", ms=3, label=name)
    ax.axhline(TOL, color="k", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="iteration", ylabel="loss − optimum",
           title=f"logistic regression, feature scales {feature_scales().min():g}.."
                 f"{feature_scales().max():g}")
    ax.legend(fontsize=8)
    figure = save_figure(fig, out_dir, "e16_optimizers.png")
    summary = (f"After {steps} full-batch steps at each one's best learning rate, loss − optimum:"
               f" SGD {gap['SGD']:.1e}, Adam {gap['Adam']:.1e}, RMSprop {gap['RMSprop']:.1e}, "
               f"Adadelta {gap['Adadelta']:.1e}. Iterations to {TOL:g}: Newton-CG "
               f"{iters['Newton-CG']}, L-BFGS {iters['L-BFGS']}, best first-order "
               f"{fastest_first}{' (not reached)' if fastest_first == steps else ''}.")
    return Result(measured, bool(holds), summary, figure, notes, table=table(measured))


def table(m: dict) -> list[tuple[str, str]]:
    steps = m["steps"]

    def iterations(name):
        n = m[f"{name}: iterations_to_tolerance"]
        budget = steps if name in FIRST_ORDER else SECOND_ORDER_BUDGET
        return f"{name} {num(n)}" + (" (not reached)" if n == budget else "")

    rows = [
        ("problem", f"logistic regression, 1000 samples, feature scales {m['feature_scales']}; "
         "float64, full batch"),
        ("optimum loss (the lowest any method reached)", num(m["optimum_loss"], 10)),
        ("best learning rate from the grid " + f"({m['lr_grid'][0]:g} … {m['lr_grid'][-1]:g})",
         ", ".join(f"{n} {m[f'{n}: best_lr']:.2g}" for n in FIRST_ORDER)),
        (f"loss − optimum after {num(steps)} steps",
         ", ".join(f"{n} {sci(m[f'{n}: final_loss_minus_optimum'])}" for n in FIRST_ORDER)
         + f" (adaptive: at least {m['min_advantage_over_sgd']:g} × below SGD)"),
        (f"iterations to loss − optimum < {sci(m['tolerance'], 1)}",
         ", ".join(iterations(n) for n in (*FIRST_ORDER, "Newton-CG", "L-BFGS"))),
        ("loss evaluations to that point: Newton-CG / L-BFGS",
         f"{m['Newton-CG: loss_evaluations_to_tolerance']} / "
         f"{m['L-BFGS: loss_evaluations_to_tolerance']}"),
        ("required of Newton-CG", f"at least {m['min_factor_fewer_iterations']:g} × fewer "
         "iterations than the best first-order method (L-BFGS: fewer)"),
    ]
    harsh = m.get("scales 0.01..10: final_loss_minus_optimum")
    if harsh:
        rows.append(("feature scales 0.01 .. 10: loss − optimum after the same steps",
                     ", ".join(f"{n} {sci(v)}" for n, v in harsh.items())))
    return rows


EXPERIMENT = Experiment(
    16, "adaptive-and-second-order-optimizers",
    "Adaptive optimizers (Adam, Adadelta, RMSprop) adapt the learning rate per parameter: on a "
    "badly scaled problem they beat plain SGD, and second-order methods (Newton-CG, L-BFGS) "
    "converge in far fewer iterations.",
    "SGD: θ ← θ − λ g;  RMSprop: θ ← θ − λ g / √(E[g²] + ε);  Newton: θ ← θ − H⁻¹ g",
    run,
    tex="\n".join((
        r"\text{SGD: } \theta \leftarrow \theta - \lambda g",
        r"\text{RMSprop: } \theta \leftarrow \theta - \frac{\lambda\, g}{\sqrt{\mathbb{E}[g^2]"
        r" + \epsilon}}",
        r"\text{Newton: } \theta \leftarrow \theta - H^{-1} g",
    )))
