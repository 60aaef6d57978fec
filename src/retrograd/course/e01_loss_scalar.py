"""Claim 1: a loss is a scalar, so its gradient has the shape of its input: for a rank-4 input I,
grad L = [dL/dI_abcd]_abcd has I's shape.

Measured on three losses of a rank-4 (N, C, H, W) input: the output's shape, the gradient's shape,
and the gradient's values against central finite differences at a few entries (float64), so the
right shape cannot hide a wrong gradient.
"""

from __future__ import annotations

import numpy as np

from .experiment import Experiment, Result, pyplot, save_figure
from .tables import listing, sci

SEED = 1
FD_EPS = 1e-5
FD_TOLERANCE = 1e-6  # relative error of the analytic gradient vs finite differences (float64)


def make_data(quick: bool):
    """The rank-4 input (float64), its per-pixel class targets and a regression target."""
    shape = (2, 3, 4, 5) if quick else (8, 3, 16, 16)
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal(shape)
    classes = rng.integers(0, shape[1], size=(shape[0],) + shape[2:])
    target = rng.standard_normal(shape)
    return x, classes, target


def losses():
    """name -> loss(input tensor, classes, regression target) -> scalar tensor."""
    import retrograd.nn.functional as F

    return {
        "cross_entropy": lambda x, c, t: F.cross_entropy(x, c),  # per pixel, (N, C, H, W)
        "mse": lambda x, c, t: F.mse_loss(x, t),
        "sum_of_squares": lambda x, c, t: (x * x).sum(),
    }


def run(quick: bool, out_dir: str) -> Result:
    import retrograd as rg

    x_np, classes, target = make_data(quick)
    c, t = rg.tensor(classes), rg.tensor(target)
    rng = np.random.default_rng(SEED + 1)
    probes = [tuple(int(rng.integers(n)) for n in x_np.shape) for _ in range(5 if quick else 20)]
    loss_shapes, grad_shapes, values, fd_errors, grads = {}, {}, {}, {}, {}
    for name, loss_fn in losses().items():
        x = rg.tensor(x_np, requires_grad=True)
        loss = loss_fn(x, c, t)
        loss.backward()
        grad = x.grad.numpy()
        loss_shapes[name], grad_shapes[name] = list(loss.shape), list(grad.shape)
        values[name], grads[name] = float(loss.item()), grad
        fd_errors[name] = max(_fd_error(loss_fn, x_np, c, t, grad, i) for i in probes)
    all_scalar = all(s == [] for s in loss_shapes.values())
    shapes_match = all(s == list(x_np.shape) for s in grad_shapes.values())
    fd_max = max(fd_errors.values())
    holds = all_scalar and shapes_match and fd_max < FD_TOLERANCE
    measured = {"input_shape": list(x_np.shape), "loss_shapes": loss_shapes,
                "grad_shapes": grad_shapes, "loss_values": values,
                "fd_max_relative_error": fd_errors, "fd_tolerance": FD_TOLERANCE,
                "all_losses_scalar": all_scalar, "all_grad_shapes_equal_input": shapes_match}
    summary = (f"{len(values)} losses of a rank-4 input of shape {tuple(x_np.shape)}: every loss "
               f"has shape () and every gradient has shape {tuple(grad_shapes['mse'])}; "
               f"the gradient matches finite differences to {fd_max:.1e} (relative).")
    return Result(measured, holds, summary, _figure(grads["cross_entropy"], out_dir),
                  table=table(measured))


NAMES = {"cross_entropy": "cross-entropy (per pixel)", "mse": "mean squared error",
         "sum_of_squares": "sum of squares"}


def table(m: dict) -> list[tuple[str, str]]:
    """The report's rows: shapes as N × C × H × W, errors in powers of ten."""
    def dims(shape):
        return " × ".join(str(n) for n in shape) if shape else "() (a scalar)"

    rows = [("input $I$, shape N × C × H × W", dims(m["input_shape"]))]
    for key, name in NAMES.items():
        rows.append((f"{name}: loss shape / gradient shape",
                     f"{dims(m['loss_shapes'][key])} / {dims(m['grad_shapes'][key])}"))
    rows.append(("loss values: " + ", ".join(NAMES.values()),
                 listing(m["loss_values"].values())))
    rows.append(("largest relative error of the gradient vs central finite differences",
                 ", ".join(f"{NAMES[k].split(' (')[0]} {sci(v)}"
                           for k, v in m["fd_max_relative_error"].items())
                 + f" (tolerance {sci(m['fd_tolerance'], 1)})"))
    return rows


def _fd_error(loss_fn, x_np, c, t, grad, index) -> float:
    """|analytic - central difference| / max(1, |central difference|) at one entry."""
    import retrograd as rg

    def at(delta):
        x = x_np.copy()
        x[index] += delta
        return float(loss_fn(rg.tensor(x), c, t).item())

    numeric = (at(FD_EPS) - at(-FD_EPS)) / (2 * FD_EPS)
    return float(abs(grad[index] - numeric) / max(1.0, abs(numeric)))


def _figure(grad: np.ndarray, out_dir: str) -> str:
    """dL/dI of the per-pixel cross-entropy: one heat map per (a, b), laid out like I."""
    plt = pyplot()
    n, ch = min(grad.shape[0], 2), grad.shape[1]
    fig, axes = plt.subplots(n, ch, figsize=(2.2 * ch, 2.2 * n), squeeze=False)
    bound = np.abs(grad[:n]).max()
    for a in range(n):
        for b in range(ch):
            axes[a][b].imshow(grad[a, b], cmap="RdBu_r", vmin=-bound, vmax=bound)
            axes[a][b].set_title(f"dL/dI[{a},{b},:,:]", fontsize=8)
            axes[a][b].set_xticks([])
            axes[a][b].set_yticks([])
    fig.suptitle(f"gradient of a scalar loss: shape {grad.shape}, like the input "
                 f"(blue < 0 < red, max |g| = {bound:.2g})", fontsize=9)
    return save_figure(fig, out_dir, "e01_loss_scalar.png")


EXPERIMENT = Experiment(
    1, "loss-is-scalar",
    "A loss is a scalar, and its gradient has the shape of its input (rank-4 input).",
    "L : R^(a x b x c x d) -> R,   grad L = [ dL / dI_(a,b,c,d) ]_(a,b,c,d)  has the shape of I",
    run,
    tex=r"L : \mathbb{R}^{a \times b \times c \times d} \to \mathbb{R}" "\n"
        r"\nabla L = \left[ \frac{\partial L}{\partial I_{a,b,c,d}} \right]_{a,b,c,d}"
        r" \text{ has the shape of } I")
