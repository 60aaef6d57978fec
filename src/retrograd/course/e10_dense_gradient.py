"""∂/∂θ_ij CE(softmax(θx + b), c) = (p_i − δ_ic) x_j: the Dense layer's weight gradient is the
outer product of the logit gradient p − one_hot(c) and the input.

The course writes it as (δ_ic − L(o_i)) x_j, the negative (the descent direction) with L(o_i)
for p_i; the report states the gradient and the typos on the way (see NOTES).
"""

from __future__ import annotations

import numpy as np

import retrograd as rg
from retrograd import nn
from retrograd.nn import functional as F

from .experiment import Experiment, Result, pyplot, save_figure
from .tables import num, sci

TOL = 1e-12  # float64

NOTES = [
    r"The course writes the gradient as $(\delta_{i,\hat c} - L(o_i))\, x_j$. That is the "
    r"negative of the gradient (it is the descent direction), and $L(o_i)$ should be "
    r"$p_i = \operatorname{softmax}(o)_i$. The gradient is $(p_i - \delta_{i,\hat c})\, x_j$: "
    "measured here, the course's expression equals minus the autograd gradient.",
    r"The course writes $\text{cost} = -o_{\hat c} + \log \sum_c e^{-o_i}$; the sign in the "
    r"exponent is a slip, and the index is mixed up. Correct: "
    r"$\text{cost} = -o_{\hat c} + \log \sum_i e^{o_i}$ (measured here).",
    r"In $\partial\, \text{cost} / \partial o_c = -\delta_{c,\hat c} + e^{o_i} / \sum_c "
    r"e^{o_i}$ the indices are swapped. Correct: $-\delta_{c,\hat c} + e^{o_c} / \sum_i "
    r"e^{o_i} = p_c - \delta_{c,\hat c}$.",
]


def _case(rng: np.random.Generator, n_in: int, n_out: int, batch: int):
    """Autograd's weight and bias gradients for a random Dense layer, input batch and labels,
    beside the formula's (P − Y)ᵀ X / N and the course's literal (Y − P)ᵀ X / N."""
    layer = nn.Dense(n_in, n_out, dtype=np.float64)
    layer.weight.data = rg.tensor(rng.standard_normal((n_out, n_in)))
    x = rng.standard_normal((batch, n_in))
    c = rng.integers(0, n_out, batch)
    F.cross_entropy(layer(rg.tensor(x)), c).backward()
    o = x @ layer.weight.numpy().T + layer.bias.numpy()
    p = np.exp(o - o.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    delta = np.eye(n_out)[c]
    formula = (p - delta).T @ x / batch
    course = (delta - p).T @ x / batch
    return layer.weight.grad.numpy(), layer.bias.grad.numpy(), formula, (p - delta).mean(0), course


def run(quick: bool, out_dir: str) -> Result:
    rng = np.random.default_rng(10)
    shapes = [(2, 2, 1), (2, 4, 1), (3, 4, 1), (5, 3, 32)]  # the course's 2x2 and 4-output layers
    cases = [_case(rng, *s) for s in shapes * (3 if quick else 30)]
    weight_err = max(float(np.max(np.abs(g - f))) for g, _, f, _, _ in cases)
    bias_err = max(float(np.max(np.abs(gb - fb))) for _, gb, _, fb, _ in cases)
    course_sum = max(float(np.max(np.abs(g + c))) for g, _, _, _, c in cases)
    course_diff = min(float(np.max(np.abs(g - c))) for g, _, _, _, c in cases)

    # the cost identity with the correct and with the course's (mistyped) log-sum-exp
    rng = np.random.default_rng(100)
    o, c = rng.standard_normal((200, 4)) * 3, rng.integers(0, 4, 200)
    ce = F.cross_entropy(rg.tensor(o), c, reduction="none").numpy()
    correct = -o[np.arange(200), c] + np.log(np.exp(o).sum(1))
    typo = -o[np.arange(200), c] + np.log(np.exp(-o).sum(1))
    lse_err, typo_err = float(np.max(np.abs(correct - ce))), float(np.max(np.abs(typo - ce)))
    measured = {
        "cases": len(cases), "tolerance": TOL,
        "max_abs_error_weight_grad_vs_(p-delta)x": weight_err,
        "max_abs_error_bias_grad_vs_(p-delta)": bias_err,
        "max_abs_(autograd + course_literal_(delta-p)x)": course_sum,
        "min_abs_(autograd - course_literal)": course_diff,
        "max_abs_error_cost_-o_c+logsumexp(o)": lse_err,
        "max_abs_error_cost_course_typo_logsumexp(-o)": typo_err,
    }
    holds = weight_err < TOL and bias_err < TOL and lse_err < TOL

    g, _, f, _, lit = _case(np.random.default_rng(3), 3, 4, 1)
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    lim = np.abs(g).max()
    for ax, mat, title in zip(axes, (g, f, lit), ("autograd ∂cost/∂θ", "(p_i − δ_iĉ) x_j",
                                                  "course as written: (δ_iĉ − p_i) x_j"),
                              strict=True):
        im = ax.imshow(mat, cmap="coolwarm", vmin=-lim, vmax=lim)
        for (i, j), v in np.ndenumerate(mat):
            ax.text(j, i, f"{v:+.2f}", ha="center", va="center", fontsize=9)
        ax.set(title=title, xlabel="input j", ylabel="output i", xticks=range(3), yticks=range(4))
    fig.colorbar(im, ax=axes[-1], shrink=0.8)
    fig.suptitle("Dense(3 → 4) + softmax + cross-entropy, one sample")
    figure = save_figure(fig, out_dir, "e10_dense_gradient.png")
    summary = (f"Over {len(cases)} random Dense layers (2→2, 2→4, 3→4, batches of 32), the "
               f"autograd weight gradient equals $(p_i − δ_{{iĉ}}) x_j$ to {weight_err:.1e} and "
               f"the bias gradient $p − δ$ to {bias_err:.1e}; the course's $(δ − p) x$ is exactly"
               f" its negative, and its $\\log Σ e^{{−o}}$ typo is off by up to {typo_err:.1f} "
               f"nats.")
    return Result(measured, bool(holds), summary, figure, notes=list(NOTES),
                  table=table(measured))


def table(m: dict) -> list[tuple[str, str]]:
    tol = sci(m["tolerance"], 1)
    return [
        ("random Dense layers checked", f"{m['cases']} (2 → 2, 2 → 4, 3 → 4 on one sample; "
         "5 → 3 on batches of 32)"),
        ("largest |autograd weight gradient − $(p_i − δ_{iĉ}) x_j$|",
         f"{sci(m['max_abs_error_weight_grad_vs_(p-delta)x'])} (tolerance {tol})"),
        ("largest |autograd bias gradient − $(p_i − δ_{iĉ})$|",
         f"{sci(m['max_abs_error_bias_grad_vs_(p-delta)'])} (tolerance {tol})"),
        ("largest |autograd + the course's $(δ_{iĉ} − p_i) x_j$| (0: exact negatives)",
         sci(m["max_abs_(autograd + course_literal_(delta-p)x)"])),
        ("smallest |autograd − the course's expression| (not 0: they differ)",
         num(m["min_abs_(autograd - course_literal)"])),
        ("largest |cross_entropy − ($−o_ĉ + \\log Σ_i e^{o_i}$)|",
         f"{sci(m['max_abs_error_cost_-o_c+logsumexp(o)'])} (tolerance {tol})"),
        ("largest |cross_entropy − the course's $−o_ĉ + \\log Σ e^{−o_i}$|",
         f"{num(m['max_abs_error_cost_course_typo_logsumexp(-o)'], 3)} nats"),
    ]



EXPERIMENT = Experiment(
    10, "dense-weight-gradient",
    "The gradient of softmax + cross-entropy after a Dense layer w.r.t. its weight $θ_{ij}$ is "
    "$(p_i − δ_{i,ĉ})\\, x_j$, and w.r.t. its bias $p_i − δ_{i,ĉ}$.",
    "o_i = Σ_j θ_ij x_j + b_i;  cost = −o_ĉ + log Σ_i e^{o_i};  ∂cost/∂θ_ij = (p_i − δ_{i,ĉ}) x_j",
    run,
    tex="\n".join((
        r"o_i = \sum_j \theta_{ij} x_j + b_i, \qquad \text{cost} = -o_{\hat c} + \log"
        r" \sum_i e^{o_i}",
        r"\frac{\partial\, \text{cost}}{\partial \theta_{ij}} = (p_i - \delta_{i,\hat c})\,"
        r" x_j, \qquad \frac{\partial\, \text{cost}}{\partial b_i} = p_i - \delta_{i,\hat c}",
    )))
