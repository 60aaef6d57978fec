"""With uncertain ground truth, soft targets are more robust than hard ones: trained on labels
flipped at a known rate η, a network reaches a higher clean test accuracy with the target
(1 − η) on the given label and η/(C − 1) on each other class than with the one-hot label.

That soft target is the posterior of the true class given the noisy label (symmetric noise,
uniform prior): the course's "smoother values than 0 and 1 when the labels are less certain".
Both are trained the same way (Adam, no early stopping), so the hard target is free to memorize
the flipped labels; the soft one only pulls a flipped sample to probability 1 − η.
"""

from __future__ import annotations

import numpy as np

from retrograd.data import digits
from retrograd.nn import functional as F
from retrograd.targets import one_hot, soft_labels
from retrograd.train.metrics import accuracy

from . import _train_small as small
from .experiment import Experiment, Result, pyplot, save_figure
from .tables import arrow, num, pct

C = 10
MIN_GAIN = 0.02  # soft must beat hard by this much mean clean test accuracy at every noise rate
CURVE_RATE = 0.4  # the noise rate whose test-accuracy curve is drawn


def noisy_labels(y: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Each label replaced, with probability `rate`, by one of the C − 1 other classes."""
    rng = np.random.default_rng(1000 + seed)
    flip = rng.random(len(y)) < rate
    noisy = y.copy()
    noisy[flip] = (y[flip] + rng.integers(1, C, flip.sum())) % C
    return noisy


def train(x_train, targets, x_test, y_test, steps, seed, curve=None):
    model = small.mlp([x_train.shape[1], 64, 64, C], seed)

    def record(step):
        if curve is not None and step % (steps // 15) == 0:
            curve.append((step, accuracy(y_test, small.logits(model, x_test).argmax(1))))
    small.train(model, F.cross_entropy, x_train, targets, steps=steps, lr=1e-3, seed=seed,
                on_step=record)
    return small.logits(model, x_train).argmax(1), small.logits(model, x_test).argmax(1)


def run(quick: bool, out_dir: str) -> Result:
    rates, seeds, steps = ([0.2, 0.4], 2, 1500) if quick else ([0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
                                                               5, 3000)
    data = digits()
    x_train, x_test = small.standardize(data.x_train, data.x_test)
    test_acc = {k: np.zeros((len(rates), seeds)) for k in ("hard", "soft")}
    memorized = {k: [] for k in ("hard", "soft")}  # flipped training samples fit to their noise
    curves = {}
    for i, rate in enumerate(rates):
        for seed in range(seeds):
            noisy = noisy_labels(data.y_train, rate, seed)
            flipped = noisy != data.y_train
            targets = {"hard": one_hot(noisy, C).numpy(),
                       "soft": soft_labels(noisy, C, 1 - rate, rate / (C - 1)).numpy()}
            for kind, target in targets.items():
                curve = curves.setdefault(kind, []) if rate == CURVE_RATE and seed == 0 else None
                fit, pred = train(x_train, target, x_test, data.y_test, steps, seed, curve)
                test_acc[kind][i, seed] = accuracy(data.y_test, pred)
                if rate == CURVE_RATE:
                    memorized[kind].append(accuracy(noisy[flipped], fit[flipped]))
    mean = {k: v.mean(axis=1) for k, v in test_acc.items()}
    noisy_rates = [i for i, r in enumerate(rates) if r > 0]
    measured = {
        "dataset": "digits (1438 train with flipped labels, 359 clean test)", "seeds": seeds,
        "steps": steps, "noise_rates": rates,
        "clean_test_accuracy_hard": mean["hard"].round(4).tolist(),
        "clean_test_accuracy_soft": mean["soft"].round(4).tolist(),
        "per_seed_clean_test_accuracy_hard": test_acc["hard"].tolist(),
        "per_seed_clean_test_accuracy_soft": test_acc["soft"].tolist(),
        "min_gain": MIN_GAIN,
        f"flipped_train_labels_memorized_at_{CURVE_RATE}_hard": float(np.mean(memorized["hard"])),
        f"flipped_train_labels_memorized_at_{CURVE_RATE}_soft": float(np.mean(memorized["soft"])),
    }
    holds = all(mean["soft"][i] - mean["hard"][i] >= MIN_GAIN for i in noisy_rates)

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for kind, label in (("hard", "hard one-hot of the noisy label"),
                        ("soft", "soft: 1 − η on it, η/(C−1) elsewhere")):
        ax1.errorbar(rates, mean[kind], yerr=test_acc[kind].std(axis=1), marker="o",
                     capsize=3, label=label)
        steps_, acc = zip(*curves[kind], strict=True)
        ax2.plot(steps_, acc, marker=".", label=kind)
    ax1.set(xlabel="label noise rate η", ylabel="clean test accuracy",
            title=f"end of training, mean ± sd over {seeds} seeds")
    ax1.legend(fontsize=8)
    ax2.set(xlabel="step", ylabel="clean test accuracy",
            title=f"during training, η = {CURVE_RATE} (seed 0)")
    ax2.legend()
    figure = save_figure(fig, out_dir, "e13_soft_labels_noise.png")
    pairs = ", ".join(f"η={r}: {mean['hard'][i]:.3f} → {mean['soft'][i]:.3f}"
                      for i, r in enumerate(rates))
    summary = (f"Digits with flipped training labels, {seeds} seeds; clean test accuracy hard → "
               f"soft: {pairs}. At η = {CURVE_RATE} the hard target fits "
               f"{measured[f'flipped_train_labels_memorized_at_{CURVE_RATE}_hard']:.0%} of the "
               f"flipped labels, the soft one "
               f"{measured[f'flipped_train_labels_memorized_at_{CURVE_RATE}_soft']:.0%}.")
    return Result(measured, bool(holds), summary, figure, table=table(measured))


def table(m: dict) -> list[tuple[str, str]]:
    rows = [("data and training", f"{m['dataset']}; MLP 64–64–64–10, Adam, "
             f"{num(m['steps'])} steps; mean over {m['seeds']} seeds")]
    for rate, hard, soft in zip(m["noise_rates"], m["clean_test_accuracy_hard"],
                                m["clean_test_accuracy_soft"], strict=True):
        rows.append((f"clean test accuracy at noise rate $η$ = {rate:g}, hard → soft target",
                     arrow(hard, soft, lambda v: f"{v:.3f}")))
    rows += [
        ("gain of soft over hard required at every $η$ > 0", num(m["min_gain"])),
        (f"flipped training labels the network fits at $η$ = {CURVE_RATE:g}, hard / soft",
         f"{pct(m[f'flipped_train_labels_memorized_at_{CURVE_RATE}_hard'], 0)} / "
         f"{pct(m[f'flipped_train_labels_memorized_at_{CURVE_RATE}_soft'], 0)}"),
    ]
    return rows


EXPERIMENT = Experiment(
    13, "soft-labels-for-noisy-ground-truth",
    "Soft labels for uncertain ground truth: trained on noisy labels, soft targets are more "
    "robust than hard ones (higher clean test accuracy).",
    "p̃_c = 1 − η if c = ỹ (the given label), η / (C − 1) otherwise;  loss = −Σ_c p̃_c log p_c",
    run,
    tex="\n".join((
        r"\tilde p_c = 1 - \eta \text{ if } c = \tilde y \text{ (the given label)}, \qquad"
        r" \tilde p_c = \frac{\eta}{C - 1} \text{ otherwise}",
        r"\text{loss} = -\sum_c \tilde p_c \log p_c",
    )))
