"""Claim 7: backpropagation reuses the upstream product. For an MLP of layers
z_l = W_l a_(l-1) + b_l, the upstream gradient g_l = dcost/dz_l is computed once, top down,
g_(l-1) = (W_l^T g_l) * relu'(z_(l-1)), and every grad W_l = g_l a_(l-1)^T takes one outer product:
about twice the forward pass in multiply-adds, at any depth. Recomputing each layer's chain from
the top, or accumulating the gradient in forward mode (one JVP per parameter), costs far more, and
the gap grows with depth.

Multiply-adds (MACs) in matrix products are counted per sample, two ways: from the layer shapes
(formulas below), and by instrumented NumPy implementations of the three strategies run on small
nets, whose gradients are checked against retrograd's backward().
"""

from __future__ import annotations

import numpy as np

from .experiment import Experiment, Result, pyplot, save_figure, save_stepper
from .tables import arrow, num, sci

SEED = 7
GRAD_TOLERANCE = 1e-10  # float64: the three strategies and retrograd agree to rounding
STRATEGIES = ("reverse", "no_reuse", "forward_mode")
BACKWARD_LIMIT = 2  # backprop's gradient work: at most 2 x the forward pass's multiply-adds


def analytic_macs(sizes) -> dict[str, int]:
    """MACs of the forward pass plus each strategy's gradient of every W_l and b_l.

    With P_l = n_l n_(l-1) and U_l = sum_(m>l) P_m (the chain above layer l):
    reverse = F + sum_l P_l + sum_(l>=2) P_l;  no_reuse = F + sum_l (P_l + U_l);
    forward_mode = F + sum_l [P_l (1 + U_l + n_L) + n_l (U_l + n_L)], where F = sum_l P_l.
    """
    n = list(sizes)
    depth = len(n) - 1
    p = [n[m] * n[m - 1] for m in range(1, depth + 1)]  # p[l-1] = P_l
    up = [sum(p[m:]) for m in range(1, depth + 1)]  # up[l-1] = U_l
    forward = sum(p)
    n_out = n[-1]
    return {
        "forward": forward,
        "reverse": forward + sum(p) + sum(p[1:]),
        "no_reuse": forward + sum(p[i] + up[i] for i in range(depth)),
        "forward_mode": forward + sum(p[i] * (1 + up[i] + n_out) + n[i + 1] * (up[i] + n_out)
                                      for i in range(depth)),
    }


class Counter:
    """NumPy products that count their multiply-adds."""

    def __init__(self):
        self.macs = 0

    def matvec(self, a, v):
        self.macs += a.size
        return a @ v

    def outer(self, u, v):
        self.macs += u.size * v.size
        return np.outer(u, v)

    def dot(self, u, v):
        self.macs += u.size
        return float(u @ v)


def _forward(ws, bs, x, c, counter):
    """Pre-activations z_l, activations a_l (a_0 = x) and g_L = p - one_hot(c)."""
    acts, zs = [x], []
    for k, (w, b) in enumerate(zip(ws, bs, strict=True)):
        zs.append(counter.matvec(w, acts[-1]) + b)
        if k < len(ws) - 1:
            acts.append(np.maximum(zs[-1], 0))
    g = np.exp(zs[-1] - zs[-1].max())
    g /= g.sum()
    g[c] -= 1  # softmax + cross-entropy: p - one_hot (claim 8)
    return zs, acts, g


def gradients(strategy: str, ws, bs, x, c):
    """(grads of W_l, grads of b_l, MACs) for one sample, by the named strategy (the layer
    index here is k = l - 1, from 0)."""
    counter = Counter()
    zs, acts, g_top = _forward(ws, bs, x, c, counter)
    depth = len(ws)
    gw, gb = [None] * depth, [None] * depth
    if strategy == "reverse":  # one pass down; g is reused by every layer below
        g = g_top
        for k in range(depth - 1, -1, -1):
            gw[k], gb[k] = counter.outer(g, acts[k]), g
            if k:
                g = counter.matvec(ws[k].T, g) * (zs[k - 1] > 0)
    elif strategy == "no_reuse":  # each layer multiplies its own chain from the top again
        for k in range(depth):
            g = g_top
            for m in range(depth - 1, k, -1):
                g = counter.matvec(ws[m].T, g) * (zs[m - 1] > 0)
            gw[k], gb[k] = counter.outer(g, acts[k]), g
    elif strategy == "forward_mode":  # one JVP per parameter, from its layer up
        for k in range(depth):
            gw[k], gb[k] = np.empty_like(ws[k]), np.empty_like(bs[k])
            for i in range(ws[k].shape[0]):
                for j in range(ws[k].shape[1] + 1):  # the last j seeds the bias b_l[i]
                    dz = np.zeros(ws[k].shape[0])
                    if j < ws[k].shape[1]:
                        counter.macs += 1  # the one-hot seed: d z_l = e_i a_(l-1)[j]
                        dz[i] = acts[k][j]
                    else:
                        dz[i] = 1.0
                    for m in range(k + 1, depth):
                        dz = counter.matvec(ws[m], dz * (zs[m - 1] > 0))
                    value = counter.dot(g_top, dz)
                    if j < ws[k].shape[1]:
                        gw[k][i, j] = value
                    else:
                        gb[k][i] = value
    else:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    return gw, gb, counter.macs


def retrograd_gradients(ws, bs, x, c):
    """The same gradients by retrograd: a float64 Sequential of Linear and ReLU, backward()."""
    import retrograd as rg
    import retrograd.nn.functional as F

    layers = []
    for w, b in zip(ws, bs, strict=True):
        layer = rg.nn.Linear(w.shape[1], w.shape[0], dtype=rg.float64)
        with rg.no_grad():
            layer.weight.copy_(rg.tensor(w))
            layer.bias.copy_(rg.tensor(b))
        layers += [layer, rg.nn.ReLU()]
    model = rg.nn.Sequential(*layers[:-1])
    F.cross_entropy(model(rg.tensor(x[None])), rg.tensor(np.array([c]))).backward()
    return [m.weight.grad.numpy() for m in layers[::2]], [m.bias.grad.numpy() for m in layers[::2]]


def make_net(sizes, seed: int = SEED):
    rng = np.random.default_rng(seed)
    ws = [rng.standard_normal((o, i)) / np.sqrt(i) for i, o in zip(sizes[:-1], sizes[1:],
                                                                    strict=True)]
    bs = [0.1 * rng.standard_normal(o) for o in sizes[1:]]
    return ws, bs, rng.standard_normal(sizes[0]), int(rng.integers(sizes[-1]))


def mlp_sizes(depth: int, width: int, n_in: int, n_out: int) -> list[int]:
    return [n_in] + [width] * (depth - 1) + [n_out]


def run(quick: bool, out_dir: str) -> Result:
    small = {"width": 5, "n_in": 4, "n_out": 3, "depths": list(range(1, 6 if quick else 9))}
    wide = {"width": 64 if quick else 256, "n_in": 64 if quick else 784, "n_out": 10,
            "depths": list(range(1, 17 if quick else 33))}
    measured_macs = {s: [] for s in STRATEGIES}
    analytic_small = {s: [] for s in STRATEGIES}
    worst_grad_error = 0.0
    for depth in small["depths"]:
        sizes = mlp_sizes(depth, small["width"], small["n_in"], small["n_out"])
        ws, bs, x, c = make_net(sizes)
        ref_w, ref_b = retrograd_gradients(ws, bs, x, c)
        counts = analytic_macs(sizes)
        for strategy in STRATEGIES:
            gw, gb, macs = gradients(strategy, ws, bs, x, c)
            measured_macs[strategy].append(macs)
            analytic_small[strategy].append(counts[strategy])
            worst_grad_error = max([worst_grad_error] + [
                float(np.abs(a - b).max()) for a, b in zip(gw + gb, ref_w + ref_b, strict=True)])
    wide_counts = [analytic_macs(mlp_sizes(d, wide["width"], wide["n_in"], wide["n_out"]))
                   for d in wide["depths"]]
    ratio = {s: [w[s] / w["reverse"] for w in wide_counts] for s in ("no_reuse", "forward_mode")}
    backward_over_forward = [w["reverse"] / w["forward"] - 1 for w in wide_counts]
    counts_agree = measured_macs == analytic_small
    # With two layers the two reverse strategies coincide (the only chain above layer 1 is
    # W_2^T g_2, computed once either way); from three layers on, reuse saves work.
    ordered = all(w["reverse"] <= w["no_reuse"] < w["forward_mode"] for w in wide_counts) and all(
        w["reverse"] < w["no_reuse"] for d, w in zip(wide["depths"], wide_counts, strict=True)
        if d >= 3)
    growing = all(np.all(np.diff(r) >= 0) and r[-1] > r[2] for r in ratio.values())
    holds = (worst_grad_error < GRAD_TOLERANCE and counts_agree and ordered and growing
             and max(backward_over_forward) <= BACKWARD_LIMIT)
    measured = {"small_net": small, "measured_macs_small": measured_macs,
                "analytic_macs_small": analytic_small, "instrumented_equals_analytic":
                counts_agree, "max_grad_error_vs_retrograd": worst_grad_error,
                "grad_tolerance": GRAD_TOLERANCE, "wide_net": wide,
                "wide_macs": {s: [w[s] for w in wide_counts] for s in ("forward",) + STRATEGIES},
                "wide_ratio_to_reverse": ratio,
                "backward_over_forward_max": max(backward_over_forward),
                "backward_over_forward_limit": BACKWARD_LIMIT}
    d_max = wide["depths"][-1]
    summary = (f"Instrumented counts {'equal' if counts_agree else 'DIFFER FROM'} the shape "
               f"formulas at every depth 1-"
               f"{small['depths'][-1]} of a width-{small['width']} net; the three strategies give "
               f"retrograd's gradient to {worst_grad_error:.1e}. For width {wide['width']} "
               f"at depth {d_max}, backprop costs {wide_counts[-1]['reverse']:.3g} MACs per "
               f"sample (backward = {backward_over_forward[-1]:.2f} x forward), recomputing "
               f"each chain {ratio['no_reuse'][-1]:.1f}x that, forward mode "
               f"{ratio['forward_mode'][-1]:.3g}x.")
    notes = ["Forward mode is counted generously: each JVP starts at its parameter's layer (the "
             "zero tangents below are skipped) and its one-hot seed costs one multiply. It still "
             "needs one pass per parameter, so its cost grows with the parameter count times the "
             "depth.",
             "Counts are multiply-adds in matrix products for one sample; element-wise work "
             "(ReLU masks, softmax) is linear in the widths and left out. A batch multiplies "
             "every count by its size."]
    figure = _figure(small, measured_macs, analytic_small, wide, wide_counts, out_dir)
    return Result(measured, bool(holds), summary, figure, notes, table=table(measured),
                  stepper=perceptron_stepper(out_dir))


def perceptron_stepper(out_dir: str) -> str:
    """The course's perceptron, Dense → ReLU → Dense → softmax + cross-entropy (2 → 3 → 2, one
    sample, float64, fixed weights), recorded with its backward for the report's stepper."""
    import retrograd as rg
    import retrograd.nn.functional as F

    w1 = rg.tensor([[0.6, -0.4], [-0.3, 0.8], [0.5, 0.5]], requires_grad=True)
    b1 = rg.tensor([0.1, -0.2, 0.0], requires_grad=True)
    w2 = rg.tensor([[0.7, -0.5, 0.3], [-0.6, 0.4, 0.9]], requires_grad=True)
    b2 = rg.tensor([0.05, -0.05], requires_grad=True)
    x, c = rg.tensor([[1.0, 2.0]], dtype=rg.float64), rg.tensor([1])
    for t in (w1, b1, w2, b2):
        t.data = t.numpy().astype(np.float64)
    loss = F.cross_entropy(F.linear(F.linear(x, w1, b1).relu(), w2, b2), c)
    return save_stepper(loss, out_dir, "e07_stepper.json",
                        "The course's perceptron, 2 → 3 → 2 on one sample: every node gets one "
                        "upstream gradient g from above, and its VJP turns that one g into the "
                        "gradients of all its inputs; nothing above it is computed again.",
                        params={"W1": w1, "b1": b1, "W2": w2, "b2": b2})


def table(m: dict) -> list[tuple[str, str]]:
    small, wide, macs = m["small_net"], m["wide_net"], m["wide_macs"]
    depth = wide["depths"][-1]
    ratio = m["wide_ratio_to_reverse"]
    return [
        (f"small nets: width {small['width']}, depths {small['depths'][0]}–"
         f"{small['depths'][-1]}; counted multiply-adds equal the formulas",
         num(m["instrumented_equals_analytic"])),
        ("largest difference of the three strategies' gradients from retrograd's backward()",
         f"{sci(m['max_grad_error_vs_retrograd'])} (tolerance {sci(m['grad_tolerance'], 1)})"),
        ("wide nets", f"width {wide['width']}, input {wide['n_in']}, {wide['n_out']} classes, "
         f"depths {wide['depths'][0]}–{depth}"),
        (f"multiply-adds per sample at depth {depth}: forward pass",
         num(macs["forward"][-1])),
        ("… forward + backprop / each chain from the top / forward mode",
         " / ".join(num(macs[s][-1]) for s in ("reverse", "no_reuse", "forward_mode"))),
        ("backprop's backward over its forward pass, largest over depths",
         f"{num(m['backward_over_forward_max'], 3)} × (at most "
         f"{m['backward_over_forward_limit']} × allowed)"),
        (f"each chain from the top over backprop, depth 3 → {depth}",
         arrow(ratio["no_reuse"][2], ratio["no_reuse"][-1], lambda v: f"{v:.2f} ×")),
        (f"forward mode over backprop, depth 1 → {depth}",
         arrow(ratio["forward_mode"][0], ratio["forward_mode"][-1],
               lambda v: f"{num(v, 3)} ×")),
    ]


def _figure(small, measured_macs, analytic_small, wide, wide_counts, out_dir) -> str:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    labels = {"reverse": "backprop (reuse)", "no_reuse": "each chain from the top",
              "forward_mode": "forward mode (JVP per parameter)"}
    for k, s in enumerate(STRATEGIES):
        left.plot(small["depths"], analytic_small[s], "-", color=f"C{k}", label=labels[s])
        left.plot(small["depths"], measured_macs[s], "o", color=f"C{k}", mfc="none")
    left.set(yscale="log", xlabel="depth (Dense layers)", ylabel="multiply-adds per sample",
             title=f"width {small['width']}: formula (lines) = counted (circles)")
    left.legend(fontsize=8)
    # Divided by the forward pass: backprop stays a constant ~3x, the others grow with depth.
    forward = np.array([w["forward"] for w in wide_counts], dtype=np.float64)
    for k, s in enumerate(STRATEGIES):
        right.plot(wide["depths"], [w[s] for w in wide_counts] / forward, color=f"C{k}",
                   label=labels[s])
    right.set(yscale="log", xlabel="depth (Dense layers)",
              ylabel="multiply-adds / forward pass's",
              title=f"width {wide['width']}, input {wide['n_in']}: cost relative to forward")
    right.legend(fontsize=8)
    return save_figure(fig, out_dir, "e07_backprop_cost.png")


EXPERIMENT = Experiment(
    7, "backprop-reuses-upstream",
    "Backpropagation reuses the upstream product: computing gradients from the top layer down "
    "costs a small multiple of the forward pass, far less than recomputing each layer's chain or "
    "forward-mode accumulation, and the gap grows with depth.",
    "g_L = p - y,  g_(l-1) = (W_l^T g_l) * relu'(z_(l-1)),  grad W_l = g_l a_(l-1)^T;\n"
    "MACs: backprop = F + sum_l P_l + sum_(l>=2) P_l  (F = sum_l P_l, P_l = n_l n_(l-1)),\n"
    "each chain from the top = F + sum_l (P_l + U_l),  forward mode = F + sum_l [P_l (1 + U_l + "
    "n_L) + n_l (U_l + n_L)],  U_l = sum_(m>l) P_m",
    run,
    tex="\n".join((
        r"g_L = p - y, \quad g_{l-1} = (W_l^\top g_l) \odot \operatorname{relu}'(z_{l-1}),"
        r" \quad \nabla_{W_l} \text{cost} = g_l\, a_{l-1}^\top",
        r"\text{backprop} = F + \sum_l P_l + \sum_{l \ge 2} P_l, \quad F = \sum_l P_l,"
        r" \quad P_l = n_l\, n_{l-1}",
        r"\text{each chain from the top} = F + \sum_l (P_l + U_l), \quad U_l = \sum_{m > l} P_m",
        r"\text{forward mode} = F + \sum_l \left[ P_l (1 + U_l + n_L) + n_l (U_l + n_L) \right]",
    )))
