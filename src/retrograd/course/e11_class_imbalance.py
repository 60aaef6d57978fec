"""On 95/5 imbalanced data, CE weighted by α_c = N / (C n_c) and class-uniform sampling both raise
balanced accuracy and minority recall over plain cross-entropy, and reach similar results.

The spirals overlap (noise 2.0): with separable classes a long-trained plain CE classifies the
minority perfectly too, so the imbalance would only slow it down. With overlap, plain CE learns
p(y | x) under the 95/5 prior and its argmax rarely names the minority; re-weighting and
re-sampling both change the prior to uniform, so they should agree with each other.
"""

from __future__ import annotations

import numpy as np

from retrograd.data import ClassBalancedSampler, spirals
from retrograd.nn import functional as F
from retrograd.targets import inverse_frequency_weights
from retrograd.train.metrics import accuracy, balanced_accuracy, per_class_recall

from . import _train_small as small
from .experiment import Experiment, Result, pyplot, save_figure
from .tables import num

METHODS = ("plain CE", "inverse-frequency weights", "class-uniform sampling")
MIN_GAIN_BALANCED = 0.05  # each re-balancing beats plain CE by this much balanced accuracy
MIN_GAIN_RECALL = 0.20  # ... and by this much minority recall
MAX_GAP = 0.05  # weights and sampling agree within this balanced accuracy


def dataset(n: int, seed: int):
    """95/5 spirals with overlapping arms, 3/4 of them for training."""
    return spirals(n, 2, noise=2.0, class_ratio=(0.95, 0.05), seed=seed)


def train(method: str, data, seed: int, steps: int):
    model = small.mlp([2, 32, 32, 2], seed)
    loss_fn, sampler = F.cross_entropy, None
    if method == METHODS[1]:
        weight = inverse_frequency_weights(data.y_train, 2)

        def loss_fn(out, target):
            return F.cross_entropy(out, target, weight=weight)
    elif method == METHODS[2]:
        sampler = ClassBalancedSampler(data.y_train)
    small.train(model, loss_fn, data.x_train, data.y_train, steps=steps, batch_size=64,
                lr=1e-2, seed=seed, sampler=sampler)
    return model


def run(quick: bool, out_dir: str) -> Result:
    steps, seeds, n = (600, 3, 4000) if quick else (3000, 10, 8000)
    scores = {m: [] for m in METHODS}  # (balanced accuracy, minority recall, accuracy) per seed
    boundaries = {}
    for seed in range(seeds):
        data = dataset(n, seed)
        for method in METHODS:
            model = train(method, data, seed, steps)
            pred = small.logits(model, data.x_test).argmax(1)
            scores[method].append((balanced_accuracy(data.y_test, pred),
                                   float(per_class_recall(data.y_test, pred, 2)[1]),
                                   accuracy(data.y_test, pred)))
            if seed == 0:
                boundaries[method] = model
    mean = {m: np.mean(scores[m], axis=0) for m in METHODS}
    plain, weighted, sampled = (mean[m] for m in METHODS)
    measured = {
        "class_ratio": "95/5", "seeds": seeds, "steps": steps, "train_samples": n * 3 // 4,
        **{f"{m}: {k}": float(mean[m][i]) for m in METHODS
           for i, k in enumerate(("balanced_accuracy", "minority_recall", "accuracy"))},
        "min_gain_balanced_accuracy": MIN_GAIN_BALANCED, "min_gain_minority_recall":
            MIN_GAIN_RECALL, "max_gap_weights_vs_sampling": MAX_GAP,
        "gap_weights_vs_sampling": float(abs(weighted[0] - sampled[0])),
        **{f"{m}: per_seed_balanced_accuracy": [float(s[0]) for s in scores[m]]
           for m in METHODS},
    }
    holds = all(m[0] - plain[0] >= MIN_GAIN_BALANCED and m[1] - plain[1] >= MIN_GAIN_RECALL
                for m in (weighted, sampled)) and abs(weighted[0] - sampled[0]) <= MAX_GAP

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    width = 0.25
    for k, method in enumerate(METHODS):
        s = np.array(scores[method])
        ax1.bar(np.arange(3) + (k - 1) * width, s.mean(0), width, yerr=s.std(0), label=method,
                capsize=3)
    ax1.set(xticks=range(3), xticklabels=["balanced accuracy", "minority recall", "accuracy"],
            ylim=(0, 1.3), title=f"test set, mean ± sd over {seeds} seeds")
    ax1.legend(loc="upper left", fontsize=8)
    data = dataset(n, 0)
    for c, colour in ((0, "tab:blue"), (1, "tab:red")):
        pts = data.x_test[data.y_test == c]
        ax2.scatter(pts[:, 0], pts[:, 1], s=4 if c == 0 else 12, c=colour, alpha=0.5)
    grid = np.linspace(-1.5, 1.5, 150)
    gx, gy = np.meshgrid(grid, grid)
    points = np.stack([gx.ravel(), gy.ravel()], 1)
    for method, style in zip(METHODS, ("-", "--", ":"), strict=True):
        margin = small.logits(boundaries[method], points) @ np.array([-1.0, 1.0])
        if margin.max() > 0:
            ax2.contour(gx, gy, margin.reshape(gx.shape), levels=[0], colors="k",
                        linestyles=style)
        ax2.plot([], [], "k" + style, label=method if margin.max() > 0
                 else f"{method}: majority everywhere")
    ax2.set(title="decision boundaries (seed 0; red: minority)", aspect="equal")
    ax2.legend(loc="lower right", fontsize=8)
    figure = save_figure(fig, out_dir, "e11_class_imbalance.png")
    summary = (f"95/5 overlapping spirals, {seeds} seeds: balanced accuracy / minority recall "
               f"{plain[0]:.2f} / {plain[1]:.2f} with plain CE, {weighted[0]:.2f} / "
               f"{weighted[1]:.2f} with inverse-frequency weights, {sampled[0]:.2f} / "
               f"{sampled[1]:.2f} with class-uniform sampling (plain CE keeps the best overall "
               f"accuracy, {plain[2]:.2f} vs {weighted[2]:.2f} and {sampled[2]:.2f}).")
    condition = (f"only for balanced accuracy and minority recall: overall accuracy falls from "
                 f"{plain[2]:.2f} (plain CE) to {weighted[2]:.2f} (weights) and {sampled[2]:.2f}"
                 f" (sampling)") if plain[2] > max(weighted[2], sampled[2]) else ""
    return Result(measured, bool(holds), summary, figure, table=table(measured),
                  condition=condition)


def table(m: dict) -> list[tuple[str, str]]:
    rows = [("data", f"2-arm spirals with overlapping arms, classes {m['class_ratio']}, "
             f"{num(m['train_samples'])} training points; MLP 2–32–32–2, Adam, "
             f"{num(m['steps'])} steps; mean over {m['seeds']} seeds")]
    for key, label in (("balanced_accuracy", "balanced accuracy"),
                       ("minority_recall", "minority recall"), ("accuracy", "accuracy")):
        rows.append((f"test {label}: " + " / ".join(METHODS),
                     " / ".join(f"{m[f'{method}: {key}']:.3f}" for method in METHODS)))
    rows += [
        ("required gain over plain CE: balanced accuracy, minority recall",
         f"{m['min_gain_balanced_accuracy']:g}, {m['min_gain_minority_recall']:g}"),
        ("balanced accuracy, weights against sampling: gap",
         f"{m['gap_weights_vs_sampling']:.3f} (at most {m['max_gap_weights_vs_sampling']:g})"),
    ]
    return rows


EXPERIMENT = Experiment(
    11, "class-imbalance",
    "On imbalanced data (95/5), inverse-frequency class weights and class-uniform sampling both "
    "raise balanced accuracy and minority recall over plain cross-entropy, and reach similar "
    "results.",
    "CE_α = −α_ĉ log p_ĉ with α_c = N / (C n_c);  class-uniform sampling: P(x_i) = 1 / (C n_{y_i})",
    run,
    tex="\n".join((
        r"\text{CE}_\alpha = -\alpha_{\hat c} \log p_{\hat c}, \qquad \alpha_c ="
        r" \frac{N}{C\, n_c}",
        r"\text{class-uniform sampling: } P(x_i) = \frac{1}{C\, n_{y_i}}",
    )))
