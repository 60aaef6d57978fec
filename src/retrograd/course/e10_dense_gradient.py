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

TOL = 1e-12  # float64

NOTES = [
    "The course writes the gradient as (δ_{i,ĉ} − L(o_i)) x_j. That is the negative of the "
    "gradient (it is the descent direction), and L(o_i) should be p_i = softmax(o)_i. "
    "The gradient is (p_i − δ_{i,ĉ}) x_j: measured here, the course's expression equals "
    "minus the autograd gradient.",
    "The course writes cost = −o_ĉ + log Σ_c e^{−o_i}; the sign in the exponent is a slip, and "
    "the index is mixed up. Correct: cost = −o_ĉ + log Σ_i e^{o_i} (measured here).",
    "In ∂cost/∂o_c = −δ_{c,ĉ} + e^{o_i} / Σ_c e^{o_i} the indices are swapped. Correct: "
    "−δ_{c,ĉ} + e^{o_c} / Σ_i e^{o_i} = p_c − δ_{c,ĉ}.",
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
               f"autograd weight gradient equals (p_i − δ_iĉ) x_j to {weight_err:.1e} and the "
               f"bias gradient p − δ to {bias_err:.1e}; the course's (δ − p) x is exactly its "
               f"negative, and its log Σ e^(−o) typo is off by up to {typo_err:.1f} nats.")
    return Result(measured, bool(holds), summary, figure, notes=list(NOTES))


EXPERIMENT = Experiment(
    10, "dense-weight-gradient",
    "The gradient of softmax + cross-entropy after a Dense layer w.r.t. its weight θ_ij is "
    "(p_i − δ_{i,ĉ}) x_j, and w.r.t. its bias p_i − δ_{i,ĉ}.",
    "o_i = Σ_j θ_ij x_j + b_i;  cost = −o_ĉ + log Σ_i e^{o_i};  ∂cost/∂θ_ij = (p_i − δ_{i,ĉ}) x_j",
    run)
