"""Claim 5: initialization matters and several runs help: the final loss of a non-convex descent
depends on theta_0, and the best of k runs, E[min_(i<=k) L_T(theta_0^(i))], falls with k.

Measured on 3-arm spirals with a small MLP (2-8-8-3, full-batch Adam, a fixed budget of steps):
the same training from the default (torch) initialization scaled by 0 (every unit identical),
0.1, 1 and 10, each over several seeds; then the spread of the default's final losses over seeds
and the expected best of k runs drawn from them.
"""

from __future__ import annotations

from math import comb

import numpy as np

from .experiment import Experiment, Result, pyplot, save_figure
from .tables import arrow, num, pct, sci

SCALES = (0.0, 0.1, 1.0, 10.0)
HIDDEN = 8
LR = 0.02
SPREAD = 0.5  # (max - min) / median of the default init's final losses over seeds
BEST_OF_K_GAIN = 0.7  # the best of all seeds must be below 0.7 x the mean single run
STUCK = 1e-3  # zero init: every seed ends within this of the class-prior entropy
SCALE_GAIN = 0.5  # default init: median below half the median of every other scale


def make_data(quick: bool):
    import retrograd.data as D

    split = D.spirals(n_samples=600 if quick else 1500, n_classes=3, noise=0.2, seed=0)
    return split.x_train, split.y_train


def train(x, y, seed: int, scale: float, steps: int) -> list[float]:
    """Full-batch Adam from the seed's default initialization times `scale`: the losses."""
    import retrograd as rg
    import retrograd.nn.functional as F

    rg.manual_seed(seed)
    model = rg.nn.Sequential(rg.nn.Linear(2, HIDDEN), rg.nn.ReLU(), rg.nn.Linear(HIDDEN, HIDDEN),
                             rg.nn.ReLU(), rg.nn.Linear(HIDDEN, 3))
    with rg.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    opt = rg.optim.Adam(model.parameters(), lr=LR)
    xt, yt = rg.tensor(x), rg.tensor(y)
    losses = []
    # x10 weights give logits of +-100 at the start, where the float32 exponentials overflow on
    # the way to a large but finite loss; the run recovers, the warnings are noise here.
    with np.errstate(over="ignore"):
        for _ in range(steps):
            loss = F.cross_entropy(model(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.item()))
    return losses


def expected_best_of_k(losses, k: int) -> float:
    """E[min of k runs drawn without replacement from `losses`] (exact, by order statistics:
    the i-th smallest is the minimum when the other k-1 come from the n-i larger ones)."""
    ordered = np.sort(np.asarray(losses, dtype=np.float64))
    n = len(ordered)
    weights = np.array([comb(n - i - 1, k - 1) for i in range(n)], dtype=np.float64) / comb(n, k)
    return float(weights @ ordered)


def run(quick: bool, out_dir: str) -> Result:
    x, y = make_data(quick)
    seeds, steps = (8, 200) if quick else (24, 600)
    curves = {s: [train(x, y, seed, s, steps) for seed in range(seeds)] for s in SCALES}
    final = {s: [c[-1] for c in runs] for s, runs in curves.items()}
    default = np.asarray(final[1.0])
    prior = np.bincount(y) / len(y)
    stuck_at = float(-(prior * np.log(prior)).sum())  # CE of predicting the class frequencies
    spread = float((default.max() - default.min()) / np.median(default))
    best_of = [expected_best_of_k(default, k) for k in range(1, seeds + 1)]
    zero_stuck = bool(np.all(np.abs(np.asarray(final[0.0]) - stuck_at) < STUCK))
    scale_matters = float(np.median(default)) < SCALE_GAIN * min(
        float(np.median(final[s])) for s in SCALES if s != 1.0)
    monotone = bool(np.all(np.diff(best_of) <= 1e-12))
    gain = best_of[-1] / best_of[0]
    holds = zero_stuck and scale_matters and spread >= SPREAD and monotone and gain < BEST_OF_K_GAIN
    measured = {"seeds": seeds, "steps": steps, "samples": len(y), "scales": list(SCALES),
                "final_loss_by_scale": {str(s): final[s] for s in SCALES},
                "median_final_loss_by_scale": {str(s): float(np.median(final[s])) for s in SCALES},
                "class_prior_entropy": stuck_at, "zero_init_stuck_at_prior": zero_stuck,
                "stuck_tolerance": STUCK, "scale_gain_threshold": SCALE_GAIN,
                "default_min": float(default.min()), "default_median": float(np.median(default)),
                "default_max": float(default.max()), "default_spread": spread,
                "spread_threshold": SPREAD, "expected_best_of_k": best_of,
                "best_of_all_over_single": gain, "gain_threshold": BEST_OF_K_GAIN}
    medians = ", ".join(f"x{s:g}: {np.median(final[s]):.3f}" for s in SCALES)
    summary = (f"Median final loss by initialization scale ({seeds} seeds, {steps} steps): "
               f"{medians}; zero init stays at the class-prior entropy {stuck_at:.3f}. With the "
               f"default init the final loss ranges {default.min():.3f} to {default.max():.3f} "
               f"over seeds; the expected best of k runs falls from {best_of[0]:.3f} (k=1) to "
               f"{best_of[-1]:.3f} (k={seeds}).")
    notes = ["Zero initialization: every hidden unit has zero output and zero gradient, so only "
             "the last bias learns and the model predicts the class frequencies forever."]
    return Result(measured, bool(holds), summary, _figure(curves, final, best_of, stuck_at,
                                                          out_dir), notes, table=table(measured))


def table(m: dict) -> list[tuple[str, str]]:
    medians = ", ".join(f"× {float(k):g}: {num(v)}"
                        for k, v in m["median_final_loss_by_scale"].items())
    best = m["expected_best_of_k"]
    return [
        ("task", f"3-arm spirals, {num(m['samples'])} points; MLP 2–{HIDDEN}–{HIDDEN}–3, "
         f"full-batch Adam, {num(m['steps'])} steps, {m['seeds']} seeds per scale"),
        ("median final loss by scale of the default initialization", medians),
        ("zero initialization: every seed stuck at the class-prior entropy",
         f"{num(m['zero_init_stuck_at_prior'])} ({num(m['class_prior_entropy'])} nats, "
         f"within {sci(m['stuck_tolerance'], 1)})"),
        ("default initialization: final loss over seeds, min / median / max",
         f"{num(m['default_min'])} / {num(m['default_median'])} / {num(m['default_max'])}"),
        ("spread over seeds, (max − min) / median",
         f"{num(m['default_spread'])} (at least {m['spread_threshold']:g} required)"),
        (f"expected best final loss of $k$ runs, $k$ = 1 → {len(best)}",
         arrow(best[0], best[-1])),
        ("best of all runs over a single run", f"{pct(m['best_of_all_over_single'])} "
         f"(under {pct(m['gain_threshold'], 0)} required)"),
    ]


def _figure(curves, final, best_of, stuck_at, out_dir) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for i, s in enumerate(SCALES):
        values = final[s]
        jitter = np.linspace(-0.15, 0.15, len(values))
        axes[0].plot(i + jitter, values, "o", alpha=0.7)
    axes[0].axhline(stuck_at, color="gray", ls=":", label="class-prior entropy")
    axes[0].set_xticks(range(len(SCALES)), [f"x{s:g}" for s in SCALES])
    axes[0].set(xlabel="scale of the default initialization", ylabel="final training loss",
                yscale="log", title="final loss over seeds, per init")
    axes[0].legend(fontsize=8)
    for losses in curves[1.0]:
        axes[1].plot(losses, alpha=0.6)
    axes[1].set(yscale="log", xlabel="step", ylabel="training loss",
                title="default init: one curve per seed")
    k = np.arange(1, len(best_of) + 1)
    axes[2].plot(k, best_of, "o-")
    axes[2].set(xlabel="k runs", ylabel="E[best final loss of k runs]", title="best of k runs")
    return save_figure(fig, out_dir, "e05_initialization.png")


EXPERIMENT = Experiment(
    5, "initialization",
    "Initialization matters, and several runs help: the final loss depends on the starting "
    "point, and the best of k runs improves with k.",
    "L_T(theta_0) varies with theta_0;   E[ min_(i<=k) L_T(theta_0^(i)) ] decreases with k",
    run,
    tex=r"""L_T(\theta_0) \text{ varies with } \theta_0
\mathbb{E}\left[ \min_{i \le k} L_T\left(\theta_0^{(i)}\right) \right] \text{ decreases with } k""")
