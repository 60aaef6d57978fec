"""Claim 4: in theta_(t+1) = theta_t - lambda grad cost, a learning rate lambda too small is slow
and one too large diverges; the learning-rate finder locates the useful range in one short run.

Measured by full-batch gradient descent on the digits (an MLP, the same initial weights for every
lambda of a sweep over 4.5 decades), and by retrograd.optim.find_lr on mini-batches of the same
data, whose suggestion is then trained like the sweep's learning rates.
"""

from __future__ import annotations

import numpy as np

from .experiment import Experiment, Result, pyplot, save_figure
from .tables import listing, num, pct

LRS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
SLOW_PROGRESS = 0.1  # the smallest lr makes under 10% of the best lr's progress: "slow"
DIVERGED = 10.0  # a loss over 10 x its initial value (or not finite) counts as diverged
SUGGESTION_PROGRESS = 0.5  # the finder's lr must make at least half the best lr's progress


def make_data(quick: bool):
    """Standardized digits features (float32) and labels; quick uses the first 512 images."""
    import retrograd.data as D

    split = D.digits()
    n = 512 if quick else len(split.y_train)
    x = D.Standardizer().fit(split.x_train).transform(split.x_train)[:n]
    return np.ascontiguousarray(x, dtype=np.float32), split.y_train[:n]


def descend(x, y, hidden: int, lr: float, steps: int) -> list[float]:
    """Losses of `steps` full-batch SGD steps from the seed-0 MLP; stops once diverged."""
    import retrograd as rg
    import retrograd.nn.functional as F

    rg.manual_seed(0)  # the same initial weights for every learning rate
    model = rg.nn.Sequential(rg.nn.Linear(x.shape[1], hidden), rg.nn.ReLU(),
                             rg.nn.Linear(hidden, 10))
    opt = rg.optim.SGD(model.parameters(), lr=lr)
    xt, yt = rg.tensor(x), rg.tensor(y)
    losses: list[float] = []
    with np.errstate(all="ignore"):  # a diverging run overflows on purpose
        for _ in range(steps):
            loss = F.cross_entropy(model(xt), yt)
            losses.append(float(loss.item()))
            if not np.isfinite(losses[-1]) or losses[-1] > DIVERGED * losses[0]:
                break
            opt.zero_grad()
            loss.backward()
            opt.step()
    return losses


def run(quick: bool, out_dir: str) -> Result:
    x, y = make_data(quick)
    hidden, steps = (32, 50) if quick else (128, 300)
    curves = {lr: descend(x, y, hidden, lr, steps) for lr in LRS}
    start = curves[LRS[0]][0]
    final = {lr: c[-1] if len(c) == steps else float("inf") for lr, c in curves.items()}
    best = min(LRS, key=lambda lr: final[lr])
    progress = {lr: (start - final[lr]) / (start - final[best]) for lr in LRS}
    finder = _finder(x, y, hidden, quick)
    suggestion = finder.suggestion
    suggested = descend(x, y, hidden, suggestion, steps) if suggestion else [float("inf")]
    suggested_progress = (start - suggested[-1]) / (start - final[best])
    slow = progress[LRS[0]] < SLOW_PROGRESS
    diverges = not np.isfinite(final[LRS[-1]])
    finder_ok = suggestion is not None and suggested_progress >= SUGGESTION_PROGRESS
    holds = slow and diverges and LRS[0] < best < LRS[-1] and finder_ok
    measured = {"lrs": list(LRS), "steps": steps, "hidden": hidden, "samples": len(y),
                "initial_loss": start, "final_loss": [final[lr] for lr in LRS],
                "progress_vs_best": [progress[lr] for lr in LRS], "best_lr": best,
                "smallest_lr_progress": progress[LRS[0]], "slow_threshold": SLOW_PROGRESS,
                "diverged_lrs": [lr for lr in LRS if not np.isfinite(final[lr])],
                "diverged_above_x_initial": DIVERGED,
                "finder_suggestion": suggestion, "finder_last_lr": finder.lrs[-1],
                "suggestion_final_loss": suggested[-1],
                "suggestion_progress_vs_best": suggested_progress,
                "suggestion_threshold": SUGGESTION_PROGRESS}
    first_diverged = min(measured["diverged_lrs"], default=None)
    summary = (f"After {steps} full-batch steps from a loss of {start:.3f}: lr {LRS[0]:g} ends at "
               f"{final[LRS[0]]:.3f} ({100 * progress[LRS[0]]:.0f}% of the best progress: slow), "
               f"the best lr {best:g} at {final[best]:.4f}, and lr >= {first_diverged} diverges. "
               f"The finder suggests lr {suggestion:.3g}, which reaches "
               f"{suggested[-1]:.4f} ({100 * suggested_progress:.0f}% of the best progress)."
               if suggestion else "The finder made no suggestion.")
    notes = ["Divergence: a run stops (and counts as diverged) once its loss is not finite or "
             f"exceeds {DIVERGED:g} x its initial loss."]
    return Result(measured, bool(holds), summary,
                  _figure(curves, final, finder, suggestion, start, out_dir), notes,
                  table=table(measured))


def table(m: dict) -> list[tuple[str, str]]:
    finals = ", ".join(f"{lr:g}: {num(f) if f != 'inf' else 'diverged'}"
                       for lr, f in zip(m["lrs"], m["final_loss"], strict=True))
    suggestion = m["finder_suggestion"]
    return [
        ("data and model", f"digits, {num(m['samples'])} standardized images; MLP 64–"
         f"{m['hidden']}–10, full-batch gradient descent"),
        ("steps per learning rate", num(m["steps"])),
        ("initial training loss", f"{num(m['initial_loss'])} nats"),
        ("final training loss by learning rate $λ$", finals),
        (f"progress of the smallest rate, $λ$ = {m['lrs'][0]:g}, against the best",
         f"{pct(m['smallest_lr_progress'])} (slow: under {pct(m['slow_threshold'], 0)})"),
        ("best learning rate", f"{m['best_lr']:g}"),
        (f"diverged (loss not finite or over {m['diverged_above_x_initial']:g} × the initial)",
         listing(m["diverged_lrs"], lambda v: f"{v:g}") or "none"),
        ("learning-rate finder's suggestion",
         "none" if suggestion is None else
         f"{num(suggestion, 3)}: final loss {num(m['suggestion_final_loss'])}, "
         f"{pct(m['suggestion_progress_vs_best'], 0)} of the best progress (needs "
         f"{pct(m['suggestion_threshold'], 0)})"),
    ]


def _finder(x, y, hidden: int, quick: bool):
    """find_lr with plain SGD on mini-batches of 64 (its model is restored afterwards)."""
    import retrograd as rg
    import retrograd.nn.functional as F
    from retrograd.data import DataLoader, TensorDataset
    from retrograd.optim import find_lr

    rg.manual_seed(0)
    model = rg.nn.Sequential(rg.nn.Linear(x.shape[1], hidden), rg.nn.ReLU(),
                             rg.nn.Linear(hidden, 10))
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    with np.errstate(all="ignore"):
        return find_lr(model, F.cross_entropy, loader,
                       optimizer=rg.optim.SGD(model.parameters(), lr=1e-4), start_lr=1e-4,
                       end_lr=1e3, num_iter=100 if quick else 300)


def _figure(curves, final, finder, suggestion, start, out_dir) -> str:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    colors = plt.cm.viridis(np.linspace(0, 0.95, len(curves)))
    for color, (lr, losses) in zip(colors, curves.items(), strict=True):
        shown = np.minimum(np.asarray(losses), DIVERGED * start)
        diverged = not np.isfinite(final[lr])
        left.plot(shown, color=color, label=f"lr {lr:g}" + (" (diverged)" if diverged else ""))
    left.set(yscale="log", xlabel="step (full batch)", ylabel="training cross-entropy",
             title="gradient descent: a sweep of learning rates")
    left.legend(fontsize=7, ncol=2)
    right.plot(finder.lrs, finder.losses)
    if suggestion:
        right.axvline(suggestion, color="r", ls="--", label=f"suggestion {suggestion:.3g}")
    right.set(xscale="log", xlabel="learning rate (growing each mini-batch)",
              ylabel="smoothed loss", title="learning-rate finder (find_lr)")
    right.legend(fontsize=8)
    return save_figure(fig, out_dir, "e04_learning_rate.png")


EXPERIMENT = Experiment(
    4, "learning-rate",
    "Learning rate: too small is slow, too large diverges; the learning-rate finder's curve shows "
    "both and suggests a rate in between.",
    "theta_(t+1) = theta_t - lambda grad_theta cost;   progress(lambda) = (L_0 - L_T(lambda)) / "
    "(L_0 - min_lambda L_T)",
    run,
    tex=r"""\theta_{t+1} = \theta_t - \lambda \nabla_\theta \text{cost}
\text{progress}(\lambda) = \frac{L_0 - L_T(\lambda)}{L_0 - \min_\lambda L_T}""")
