"""Claim 8: for cost = -log softmax(o)_c, the gradient w.r.t. the logits is p - one_hot(c), so
every entry lies in [-1, 1]: p_c - 1 <= 0 for the true class, p_i >= 0 for the others. The
course's numbers: p = 0.8 on the true class gives -0.2; p = 0.4 on another class gives 0.4.

Measured with retrograd's backward() through cross_entropy: the two worked examples (float64),
random logits at scales from 0.1 to 1000 against p - one_hot computed in NumPy, and the unfused
path (the Softmax layer's true Jacobian, then -log p_c), which must give the same gradient.
"""

from __future__ import annotations

import numpy as np

from .experiment import Experiment, Result, pyplot, save_figure, save_stepper
from .tables import num, sci

SEED = 8
SCALES = (0.1, 1.0, 10.0, 100.0, 1000.0)
TOLERANCE = {"worked": 1e-12, "float64": 1e-12, "float32": 1e-6, "unfused": 1e-12}
# Two predictions, (p, true class, class read): 0.8 and 0.4 cannot share one softmax (sum > 1).
WORKED = {"true_class_p_0.8": ((0.8, 0.15, 0.05), 0, 0),
          "other_class_p_0.4": ((0.5, 0.4, 0.1), 0, 1)}


def logit_gradient(logits: np.ndarray, target: np.ndarray, fused: bool = True) -> np.ndarray:
    """d(sum_n cost_n)/d logits by retrograd: fused cross_entropy, or softmax then -log p_c."""
    import retrograd as rg
    import retrograd.nn.functional as F

    o = rg.tensor(logits, requires_grad=True)
    if fused:
        loss = F.cross_entropy(o, rg.tensor(target), reduction="sum")
    else:
        one_hot = np.eye(logits.shape[1], dtype=logits.dtype)[target]
        loss = -(F.softmax(o, dim=1).log() * rg.tensor(one_hot)).sum()
    loss.backward()
    return o.grad.numpy()


def make_logits(quick: bool, dtype) -> tuple[np.ndarray, np.ndarray]:
    rows = 200 if quick else 20_000
    rng = np.random.default_rng(SEED)
    scale = np.repeat(np.asarray(SCALES), rows)[:, None]
    logits = (scale * rng.standard_normal((len(scale), 10))).astype(dtype)
    return logits, rng.integers(0, 10, size=len(logits))


def reference(logits: np.ndarray, target: np.ndarray) -> np.ndarray:
    """p - one_hot in float64 NumPy (max-shifted softmax)."""
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(target)), target] -= 1
    return p


def run(quick: bool, out_dir: str) -> Result:
    worked = {}
    for name, (p, true, read) in WORKED.items():
        grad = logit_gradient(np.log(np.array([p])), np.array([true]))
        worked[name] = float(grad[0, read])
    worked_error = max(abs(worked["true_class_p_0.8"] + 0.2),
                       abs(worked["other_class_p_0.4"] - 0.4))
    errors, grads = {}, {}
    for name, dtype in (("float64", np.float64), ("float32", np.float32)):
        logits, target = make_logits(quick, dtype)
        grads[name] = logit_gradient(logits, target)
        errors[name] = float(np.abs(grads[name] - reference(logits, target)).max())
    logits, target = make_logits(quick, np.float64)
    moderate = np.abs(logits).max(axis=1) < 30  # -log p_c stays finite on the unfused path
    unfused = logit_gradient(logits[moderate], target[moderate], fused=False)
    errors["unfused"] = float(np.abs(unfused - grads["float64"][moderate]).max())
    g = grads["float32"]
    is_true = np.zeros(g.shape, dtype=bool)
    is_true[np.arange(len(target)), target] = True
    bounds = {"min": float(g.min()), "max": float(g.max()),
              "true_class_max": float(g[is_true].max()), "other_min": float(g[~is_true].min())}
    in_range = (-1 <= bounds["min"] and bounds["max"] <= 1 and bounds["true_class_max"] <= 0
                and bounds["other_min"] >= 0)
    holds = (worked_error < TOLERANCE["worked"] and in_range
             and all(errors[k] < TOLERANCE[k] for k in errors))
    measured = {"worked_examples": worked, "worked_expected": {"true_class_p_0.8": -0.2,
                "other_class_p_0.4": 0.4}, "worked_max_error": worked_error,
                "max_error_vs_p_minus_one_hot": errors, "tolerance": TOLERANCE,
                "rows": len(target), "unfused_rows": int(moderate.sum()), "scales": list(SCALES),
                "gradient_bounds_float32": bounds,
                "in_minus_one_one": bool(in_range)}
    summary = (f"retrograd's gradient is {worked['true_class_p_0.8']:.6f} for the true class at "
               f"p = 0.8 and {worked['other_class_p_0.4']:.6f} for another class at p = 0.4; it "
               f"equals p - one_hot to {errors['float64']:.1e} (float64) and "
               f"{errors['float32']:.1e} (float32) over {len(target)} rows with logits up to "
               f"+-{max(SCALES):g}, lies in [{bounds['min']:.3f}, {bounds['max']:.3f}], and the "
               f"unfused softmax-then-log path agrees to {errors['unfused']:.1e}.")
    notes = [r"The course writes $\text{cost} = -o_c + \log \sum_c e^{-o_i}$: the exponent's "
             r"sign is slipped and the index mixed; the correct line is "
             r"$\text{cost} = -o_c + \log \sum_i e^{o_i}$.",
             r"Likewise $\partial\, \text{cost} / \partial o_c = -\delta_{c,\hat c} + "
             r"e^{o_c} / \sum_i e^{o_i}$ (the course writes $e^{o_i}$ in the numerator).",
             "The two worked numbers belong to two different predictions: 0.8 for the true class "
             "and 0.4 for another cannot come from one softmax (they would sum past 1)."]
    return Result(measured, bool(holds), summary, _figure(g, is_true, worked, out_dir), notes,
                  table=table(measured), stepper=dense_stepper(out_dir))


def dense_stepper(out_dir: str) -> str:
    """The course's smallest model, Dense(2 → 2) + softmax + cross-entropy on one sample, with
    the bias chosen so that p = (0.8, 0.2) on true class 0; recorded for the report's stepper."""
    import retrograd as rg
    import retrograd.nn.functional as F

    x = np.array([[1.0, 2.0]])
    w = np.array([[0.5, -0.3], [0.2, 0.4]])
    b = np.log([0.8, 0.2]) - (x @ w.T)[0]
    weight, bias = rg.tensor(w, requires_grad=True), rg.tensor(b, requires_grad=True)
    loss = F.cross_entropy(F.linear(rg.tensor(x), weight, bias), rg.tensor([0]))
    return save_stepper(loss, out_dir, "e08_stepper.json",
                        "The course's smallest model, Dense(2 → 2) + softmax + cross-entropy on "
                        "one sample that it gives p = 0.8 for its true class: the fused node "
                        "hands the Dense layer p − onehot = (−0.2, 0.2).",
                        params={"θ (weight)": weight, "b (bias)": bias})


def table(m: dict) -> list[tuple[str, str]]:
    worked, errors, tol = m["worked_examples"], m["max_error_vs_p_minus_one_hot"], m["tolerance"]
    bounds = m["gradient_bounds_float32"]
    return [
        ("gradient for the true class at $p = 0.8$ (course: −0.2)",
         num(worked["true_class_p_0.8"], 6)),
        ("gradient for another class at $p = 0.4$ (course: 0.4)",
         num(worked["other_class_p_0.4"], 6)),
        ("largest error of the two worked numbers", sci(m["worked_max_error"])),
        ("logit rows, scales", f"{num(m['rows'])} rows of 10 logits, standard deviations "
         + ", ".join(f"{v:g}" for v in m["scales"])),
        ("largest $|∂\\text{cost}/∂o − (p − \\text{onehot})|$, float64 / float32",
         f"{sci(errors['float64'])} / {sci(errors['float32'])} (tolerances "
         f"{sci(tol['float64'], 1)} / {sci(tol['float32'], 1)})"),
        (f"unfused path, softmax then $−\\log p_c$ ({num(m['unfused_rows'])} rows with "
         "|logits| < 30): largest difference from the fused gradient",
         f"{sci(errors['unfused'])} (tolerance {sci(tol['unfused'], 1)})"),
        ("gradient range in float32, all entries", f"[{num(bounds['min'])}, {num(bounds['max'])}]"),
        ("largest true-class entry / smallest other-class entry",
         f"{num(bounds['true_class_max'])} / {num(bounds['other_min'])} (≤ 0 and ≥ 0)"),
    ]


def _figure(g, is_true, worked, out_dir) -> str:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    # Two classes, p_true swept over (0, 1): the other class's probability is 1 - p_true.
    p = np.linspace(0.002, 0.998, 250)
    grad = logit_gradient(np.log(np.stack([p, 1 - p], axis=1)), np.zeros(len(p), dtype=np.int64))
    left.plot(p, grad[:, 0], label="true class: p - 1")
    left.plot(1 - p, grad[:, 1], label="other class: p")
    left.plot([0.8], [worked["true_class_p_0.8"]], "ko")
    left.annotate(f"p=0.8 -> {worked['true_class_p_0.8']:.2f}", (0.8, -0.2), (0.5, -0.8),
                  arrowprops={"arrowstyle": "->"})
    left.plot([0.4], [worked["other_class_p_0.4"]], "ko")
    left.annotate(f"p=0.4 -> {worked['other_class_p_0.4']:.2f}", (0.4, 0.4), (0.05, 0.75),
                  arrowprops={"arrowstyle": "->"})
    left.axhline(0, color="gray", lw=0.5)
    left.set(xlabel="predicted probability of that class", ylabel="d cost / d o",
             title="autograd gradient w.r.t. a logit", ylim=(-1.05, 1.05))
    left.legend(fontsize=8)
    bins = np.linspace(-1, 1, 41)
    right.hist(g[is_true], bins=bins, alpha=0.7, label="true class")
    right.hist(g[~is_true], bins=bins, alpha=0.7, label="other classes")
    right.set(yscale="log", xlabel="gradient entry (float32, logits up to +-1000)",
              ylabel="count", title="every entry in [-1, 1]")
    right.legend(fontsize=8)
    return save_figure(fig, out_dir, "e08_softmax_ce_gradient.png")


EXPERIMENT = Experiment(
    8, "softmax-ce-gradient",
    "The gradient of softmax + cross-entropy w.r.t. the logits is $p − \\operatorname{onehot}(ĉ)$"
    ", in [−1, 1]: $p = 0.8$ for the true class gives −0.2, $p = 0.4$ for another class gives 0.4.",
    "cost = -log p_c = -o_c + log sum_i e^(o_i);   d cost / d o_i = p_i - delta_(i,c),  "
    "i.e. grad_o cost = p - one_hot(c) in [-1, 1]",
    run,
    tex="\n".join((
        r"\text{cost} = -\log p_{\hat c} = -o_{\hat c} + \log \sum_i e^{o_i}",
        r"\frac{\partial\, \text{cost}}{\partial o_i} = p_i - \delta_{i,\hat c},"
        r" \qquad \nabla_o \text{cost} = p - \operatorname{onehot}(\hat c) \in [-1, 1]^C",
    )))
