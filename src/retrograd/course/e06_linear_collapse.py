"""Claim 6: without a ReLU, Dense2(Dense1(x)) = W2 (W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2)
is one Dense layer; with a ReLU between them it is not.

Measured by building the merged retrograd Linear from the two layers' parameters and comparing
outputs on random inputs (float64 and float32), and by fitting the best single affine map (least
squares) to the network with a ReLU, whose residual stays large.
"""

from __future__ import annotations

import numpy as np

from .experiment import Experiment, Result, pyplot, save_figure
from .tables import num, pct, sci

SEED = 6
TOLERANCE = {"float64": 1e-12, "float32": 1e-5}  # max |stacked - merged| / max |stacked|
RELU_RESIDUAL = 0.05  # the best affine fit to the ReLU network leaves more than 5% unexplained
LINEAR_RESIDUAL = 1e-9  # and fits the network without ReLU exactly (float64 rounding)


def layers(sizes, dtype):
    """Two seeded Linear layers d -> h -> k."""
    import retrograd as rg

    rg.manual_seed(SEED)
    d, h, k = sizes
    return rg.nn.Linear(d, h, dtype=dtype), rg.nn.Linear(h, k, dtype=dtype)


def merge(dense1, dense2):
    """The single Linear equal to dense2(dense1(x)): weight W2 W1, bias W2 b1 + b2."""
    import retrograd as rg

    w1, b1 = dense1.weight.numpy(), dense1.bias.numpy()
    w2, b2 = dense2.weight.numpy(), dense2.bias.numpy()
    merged = rg.nn.Linear(dense1.in_features, dense2.out_features, dtype=w1.dtype)
    with rg.no_grad():
        merged.weight.copy_(rg.tensor(w2 @ w1))
        merged.bias.copy_(rg.tensor(w2 @ b1 + b2))
    return merged


def relative_gap(dtype, sizes, x: np.ndarray):
    """(max |stacked - merged| / max |stacked|, stacked outputs, merged outputs)."""
    import retrograd as rg

    dense1, dense2 = layers(sizes, dtype)
    xt = rg.tensor(x.astype(dtype))
    stacked = dense2(dense1(xt)).numpy().astype(np.float64)
    merged = merge(dense1, dense2)(xt).numpy().astype(np.float64)
    return float(np.abs(stacked - merged).max() / np.abs(stacked).max()), stacked, merged


def affine_residual(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """||y - best affine fit|| / ||y - mean y|| (least squares on [x, 1]) and the fit."""
    design = np.hstack([x, np.ones((len(x), 1))])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    fit = design @ coef
    return float(np.linalg.norm(y - fit) / np.linalg.norm(y - y.mean(axis=0))), fit


def run(quick: bool, out_dir: str) -> Result:
    import retrograd as rg

    sizes = (20, 50, 10) if quick else (256, 512, 64)
    n = 500 if quick else 5000
    x = np.random.default_rng(SEED).standard_normal((n, sizes[0]))
    gaps, outputs = {}, {}
    for name, dtype in (("float64", rg.float64), ("float32", rg.float32)):
        gaps[name], *outputs[name] = relative_gap(dtype, sizes, x)
    dense1, dense2 = layers(sizes, rg.float64)
    with_relu = dense2(dense1(rg.tensor(x)).relu()).numpy()
    residual, fit = affine_residual(x, with_relu)
    linear_residual, _ = affine_residual(x, outputs["float64"][0])
    holds = (all(gaps[k] < TOLERANCE[k] for k in TOLERANCE) and residual > RELU_RESIDUAL
             and linear_residual < LINEAR_RESIDUAL)
    d, h, k = sizes
    measured = {"sizes_d_h_k": list(sizes), "inputs": n, "relative_gap": gaps,
                "tolerance": TOLERANCE, "relu_affine_residual": residual,
                "no_relu_affine_residual": linear_residual, "relu_threshold": RELU_RESIDUAL,
                "no_relu_threshold": LINEAR_RESIDUAL,
                "parameters_stacked": d * h + h + h * k + k, "parameters_merged": d * k + k}
    summary = (f"Dense {d}->{h} then Dense {h}->{k} without ReLU equals the merged Dense "
               f"(W2 W1, W2 b1 + b2) to a relative {gaps['float64']:.1e} in float64 "
               f"({gaps['float32']:.1e} in float32); with a ReLU between them the best single "
               f"affine map leaves {100 * residual:.0f}% of the output unexplained.")
    notes = [f"The merged layer has {d * k + k} parameters where the stack has "
             f"{d * h + h + h * k + k}: depth without a nonlinearity adds parameters, not "
             f"functions (and W2 W1 has rank at most min(d, h, k))."]
    figure = _figure(outputs["float64"], with_relu, fit, out_dir)
    return Result(measured, bool(holds), summary, figure, notes, table=table(measured))


def table(m: dict) -> list[tuple[str, str]]:
    d, h, k = m["sizes_d_h_k"]
    gap, tol = m["relative_gap"], m["tolerance"]
    return [
        ("layers", f"Dense {d} → {h}, then Dense {h} → {k}; {num(m['inputs'])} random inputs"),
        ("without ReLU: max |stacked − merged| / max |stacked|",
         f"float64 {sci(gap['float64'])} (tolerance {sci(tol['float64'], 1)}), float32 "
         f"{sci(gap['float32'])} (tolerance {sci(tol['float32'], 1)})"),
        ("without ReLU: share of the output the best affine map leaves unexplained",
         f"{sci(m['no_relu_affine_residual'])} (under {sci(m['no_relu_threshold'], 1)} "
         "required)"),
        ("with ReLU: share of the output the best affine map leaves unexplained",
         f"{pct(m['relu_affine_residual'], 0)} (over {pct(m['relu_threshold'], 0)} required)"),
        ("parameters: two stacked layers / the merged one",
         f"{num(m['parameters_stacked'])} / {num(m['parameters_merged'])}"),
    ]


def _figure(linear_outputs, with_relu, fit, out_dir) -> str:
    import retrograd as rg

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    # A 1-D slice: the stack without ReLU is a straight line, with ReLU it bends.
    dense1, dense2 = layers((1, 16, 1), rg.float64)
    line = np.linspace(-3, 3, 301)[:, None]
    xt = rg.tensor(line)
    left.plot(line, dense2(dense1(xt)).numpy(), lw=3, alpha=0.5, label="Dense o Dense")
    left.plot(line, merge(dense1, dense2)(xt).numpy(), "k--", label="merged Dense")
    left.plot(line, dense2(dense1(xt).relu()).numpy(), label="Dense o ReLU o Dense")
    left.set(xlabel="x", ylabel="output", title="1 -> 16 -> 1: a line, unless there is a ReLU")
    left.legend(fontsize=8)
    stacked, merged = linear_outputs
    right.plot(stacked.ravel()[:2000], merged.ravel()[:2000], ".", ms=3,
               label="no ReLU: merged vs stacked")
    right.plot(with_relu.ravel()[:2000], fit.ravel()[:2000], ".", ms=3, alpha=0.5,
               label="ReLU: best affine fit vs network")
    right.set(xlabel="network output", ylabel="single-Dense output", title="outputs compared")
    right.legend(fontsize=8)
    return save_figure(fig, out_dir, "e06_linear_collapse.png")


EXPERIMENT = Experiment(
    6, "dense-dense-is-dense",
    "Without a ReLU in between, two Dense layers are mathematically one Dense layer.",
    "W2 (W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2);   with ReLU: W2 max(0, W1 x + b1) + b2 is "
    "not affine",
    run,
    tex=r"""W_2 (W_1 x + b_1) + b_2 = (W_2 W_1)\, x + (W_2 b_1 + b_2)
W_2 \max(0, W_1 x + b_1) + b_2 \text{ is not affine}""")
