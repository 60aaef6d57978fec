"""Sigmoid + BCE has gradient σ(o) − y; sigmoid + MSE has 2(σ − y)σ(1 − σ), which vanishes when
the sigmoid saturates, so training from a saturated (confidently wrong) start stalls with MSE.

The course's two exercises, solved by autograd and checked against the closed forms.
"""

from __future__ import annotations

import numpy as np

import retrograd as rg
from retrograd.nn import functional as F

from .experiment import Experiment, Result, pyplot, save_figure
from .tables import num, pct, sci

FORMULA_TOL = 1e-12  # float64 autograd vs the closed form
SATURATED_LOGIT = -10.0  # y = 1 but the model says σ(o) = 4.5e-5: confidently wrong
SPEEDUP = 5.0  # BCE must reach the target accuracy at least this many times sooner


def _autograd(loss_name: str, o: np.ndarray, y: float) -> np.ndarray:
    logit = rg.tensor(o, requires_grad=True)
    target = np.full_like(o, y)
    if loss_name == "bce":
        loss = F.binary_cross_entropy_with_logits(logit, target, reduction="sum")
    else:
        loss = F.mse_loss(rg.sigmoid(logit), target, reduction="sum")
    loss.backward()
    return logit.grad.numpy()


def _closed_form(loss_name: str, o: np.ndarray, y: float) -> np.ndarray:
    s = 1.0 / (1.0 + np.exp(-o))
    return s - y if loss_name == "bce" else 2 * (s - y) * s * (1 - s)


def _steps_to_accuracy(loss_name: str, seed: int, budget: int, target_acc: float):
    """Logistic regression on a separable 2-D task, started with its weight pointing the wrong
    way and large (every logit saturated and wrong); full-batch SGD. Returns (steps, curve)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((200, 2))
    y = (x @ np.array([1.0, 1.0]) > 0).astype(np.float64)
    w = rg.tensor(np.array([[-8.0], [-8.0]]), requires_grad=True)  # o = -8 (x0 + x1)
    b = rg.tensor(np.zeros(1), requires_grad=True)
    opt = rg.optim.SGD([w, b], lr=1.0)
    xt, curve = rg.tensor(x), []
    for step in range(1, budget + 1):
        o = (xt @ w + b).reshape(-1)
        loss = (F.binary_cross_entropy_with_logits(o, y) if loss_name == "bce"
                else F.mse_loss(rg.sigmoid(o), y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        acc = float(np.mean(((x @ w.numpy() + b.numpy()).reshape(-1) > 0) == (y > 0.5)))
        curve.append(acc)
        if acc >= target_acc:
            return step, curve
    return budget, curve  # censored: never reached within the budget


def run(quick: bool, out_dir: str) -> Result:
    o = np.linspace(-12.0, 12.0, 241)
    errors = {f"{name}_y{y}": float(np.max(np.abs(_autograd(name, o, y)
                                                  - _closed_form(name, o, y))))
              for name in ("bce", "mse") for y in (0, 1)}
    sat = np.array([SATURATED_LOGIT])
    g_bce, g_mse = float(_autograd("bce", sat, 1)[0]), float(_autograd("mse", sat, 1)[0])
    budget, target_acc = (400, 0.95) if quick else (3000, 0.95)
    seeds = range(3) if quick else range(10)
    runs = {name: [_steps_to_accuracy(name, s, budget, target_acc) for s in seeds]
            for name in ("bce", "mse")}
    steps = {name: float(np.mean([r[0] for r in runs[name]])) for name in runs}
    measured = {
        "max_abs_error_vs_closed_form": errors, "formula_tolerance": FORMULA_TOL,
        "saturated_logit": SATURATED_LOGIT, "grad_bce_at_saturation": g_bce,
        "grad_mse_at_saturation": g_mse, "mse_over_bce_gradient": abs(g_mse / g_bce),
        "target_accuracy": target_acc, "step_budget": budget, "seeds": len(seeds),
        "mean_steps_bce": steps["bce"], "mean_steps_mse": steps["mse"],
        "mse_censored_runs": sum(r[0] == budget and r[1][-1] < target_acc for r in runs["mse"]),
        "required_speedup": SPEEDUP, "speedup": steps["mse"] / steps["bce"],
    }
    holds = (max(errors.values()) < FORMULA_TOL and abs(g_mse / g_bce) < 1e-3
             and steps["mse"] >= SPEEDUP * steps["bce"])

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for name, label in (("bce", "sigmoid + BCE: σ − y"), ("mse", "sigmoid + MSE: 2(σ−y)σ(1−σ)")):
        ax1.plot(o, _closed_form(name, o, 1), label=label)
        ax1.plot(o[::12], _autograd(name, o[::12], 1), "k.", ms=4)
    ax1.set(xlabel="logit o (target y = 1)", ylabel="∂loss/∂o", title="gradients (dots: autograd)")
    ax1.legend()
    for name in ("bce", "mse"):
        curve = runs[name][0][1]
        ax2.plot(range(1, len(curve) + 1), curve, label=name)
    ax2.set(xlabel="step", ylabel="training accuracy", xscale="log",
            title="from a saturated wrong start (o = −8(x₀+x₁))")
    ax2.legend()
    figure = save_figure(fig, out_dir, "e09_sigmoid_exercises.png")
    summary = (f"Autograd matches σ−y and 2(σ−y)σ(1−σ) to {max(errors.values()):.1e}; at o = "
               f"{SATURATED_LOGIT:g} (y = 1) the MSE gradient is {abs(g_mse):.1e} vs "
               f"{abs(g_bce):.2f} for BCE; from a saturated start BCE reaches {target_acc:.0%} "
               f"accuracy in {steps['bce']:.0f} steps on average, MSE in {steps['mse']:.0f} "
               f"({measured['mse_censored_runs']} of {len(seeds)} MSE runs never got there "
               f"and count as the budget, {budget}).")
    return Result(measured, bool(holds), summary, figure, table=table(measured))


def table(m: dict) -> list[tuple[str, str]]:
    e = m["max_abs_error_vs_closed_form"]
    return [
        ("largest |autograd − closed form| for $o ∈ [−12, 12]$: BCE ($y$ = 0, 1), MSE "
         "($y$ = 0, 1)", ", ".join(sci(e[k]) for k in ("bce_y0", "bce_y1", "mse_y0", "mse_y1"))
         + f" (tolerance {sci(m['formula_tolerance'], 1)})"),
        (f"gradient at the saturated logit $o$ = {num(m['saturated_logit'])}, $y$ = 1: BCE / MSE",
         f"{num(m['grad_bce_at_saturation'])} / {sci(m['grad_mse_at_saturation'])}"),
        ("MSE's gradient over BCE's there", sci(m["mse_over_bce_gradient"])),
        ("training runs", f"logistic regression started at $o = −8(x_0 + x_1)$, full-batch "
         f"SGD, {m['seeds']} seeds, budget {num(m['step_budget'])} steps"),
        (f"mean steps to {pct(m['target_accuracy'], 0)} training accuracy: BCE / MSE",
         f"{num(m['mean_steps_bce'])} / {num(m['mean_steps_mse'])}"),
        ("MSE runs that never got there (counted as the budget)",
         f"{m['mse_censored_runs']} of {m['seeds']}"),
        ("BCE's speed-up over MSE", f"{num(m['speedup'], 3)} × (at least "
         f"{m['required_speedup']:g} × required; a lower bound when MSE runs hit the budget)"),
    ]


EXPERIMENT = Experiment(
    9, "sigmoid-bce-mse-gradients",
    "The gradient of sigmoid + binary cross-entropy is σ(o) − y; of sigmoid + MSE it is "
    "2(σ − y)σ(1 − σ), which vanishes when the sigmoid saturates, so MSE learns slowly from a "
    "saturated start.",
    "∂/∂o BCE(σ(o), y) = σ(o) − y;   ∂/∂o (σ(o) − y)² = 2(σ(o) − y) σ(o)(1 − σ(o))",
    run,
    tex="\n".join((
        r"\frac{\partial}{\partial o} \operatorname{BCE}(\sigma(o), y) = \sigma(o) - y",
        r"\frac{\partial}{\partial o} (\sigma(o) - y)^2 = 2 (\sigma(o) - y)\, \sigma(o)"
        r" (1 - \sigma(o))",
    )))
