"""Label smoothing (target (1 − ε)δ_cĉ + ε/C) lowers confidence and the logit gap and improves
calibration (ECE) on held-out data; CE with it equals (1 − ε) CE + ε CE(uniform).

Calibration improves where plain CE is overconfident, i.e. where it fits its training set far
better than held-out data: MNIST-1D with an MLP (about 45-60% test accuracy) is such a case.
On an easy task that plain CE already fits calibrated, smoothing makes the model under-confident
instead; the full run measures that on digits and reports it in the notes.
"""

from __future__ import annotations

import numpy as np

import retrograd as rg
from retrograd.data import digits
from retrograd.nn import functional as F
from retrograd.targets import one_hot, smooth, soft_labels
from retrograd.train.metrics import accuracy, calibration_bins, expected_calibration_error

from . import _train_small as small
from .experiment import Experiment, Result, pyplot, save_figure
from .tables import arrow, num, sci

EPS = 0.1
MIN_ECE_GAIN = 0.02  # smoothing must lower the mean held-out ECE by at least this much
TOL = 1e-10


def _identity_errors() -> dict:
    """The loss identities in float64 on random logits."""
    rng = np.random.default_rng(12)
    z = rg.tensor(rng.standard_normal((64, 10)) * 4)
    y = rng.integers(0, 10, 64)
    uniform = np.full((64, 10), 0.1)
    ce, ce_u = F.cross_entropy(z, y).item(), F.cross_entropy(z, uniform).item()
    errors = {}
    for eps in (0.05, 0.1, 0.3):
        smoothed = F.cross_entropy(z, y, label_smoothing=eps).item()
        errors[f"eps={eps}: vs (1-eps)CE+eps*CE(uniform)"] = abs(smoothed - (1 - eps) * ce
                                                                 - eps * ce_u)
        errors[f"eps={eps}: vs CE(smooth(one_hot))"] = abs(
            smoothed - F.cross_entropy(z, smooth(one_hot(y, 10, np.float64), eps)).item())
    # the course's −0.9 log p_ĉ − 0.1 Σ_{c≠ĉ} log p_c is eps = 0.2 smoothing when C = 2
    z2, y2 = rg.tensor(rng.standard_normal((64, 2)) * 4), rng.integers(0, 2, 64)
    errors["C=2: 0.9/0.1 soft labels vs eps=0.2"] = abs(
        F.cross_entropy(z2, soft_labels(y2, 2, 0.9, 0.1, np.float64)).item()
        - F.cross_entropy(z2, y2, label_smoothing=0.2).item())
    return errors


def train_and_score(data, n_train: int, steps: int, eps: float, seed: int):
    idx = np.random.default_rng(seed).permutation(len(data.x_train))[:n_train]
    x_train, x_test = small.standardize(data.x_train[idx], data.x_test)
    model = small.mlp([x_train.shape[1], 128, 128, 10], seed)
    small.train(model, lambda o, t: F.cross_entropy(o, t, label_smoothing=eps), x_train,
                data.y_train[idx], steps=steps, lr=1e-3, seed=seed)
    z = small.logits(model, x_test)
    p = small.softmax(z)
    top = np.sort(z, axis=1)
    gap = top[:, -1] - top[:, :-1].mean(axis=1)  # top logit over the mean of the others
    return dict(accuracy=accuracy(data.y_test, p.argmax(1)), confidence=float(p.max(1).mean()),
                logit_gap=float(gap.mean()), ece=expected_calibration_error(p, data.y_test),
                probs=p, gaps=gap)


def run(quick: bool, out_dir: str) -> Result:
    n_train, steps, seeds = (1000, 600, 3) if quick else (4000, 4000, 5)
    data = small.mnist1d_split()
    runs = {eps: [train_and_score(data, n_train, steps, eps, s) for s in range(seeds)]
            for eps in (0.0, EPS)}
    keys = ("accuracy", "confidence", "logit_gap", "ece")
    mean = {eps: {k: float(np.mean([r[k] for r in runs[eps]])) for k in keys} for eps in runs}
    hard, soft = mean[0.0], mean[EPS]
    identity = _identity_errors()
    measured = {"dataset": f"mnist1d ({n_train} train, {len(data.y_test)} test)", "eps": EPS,
                "seeds": seeds, "steps": steps,
                **{f"plain CE: {k}": hard[k] for k in keys},
                **{f"smoothed: {k}": soft[k] for k in keys},
                "optimal_logit_gap_with_smoothing": float(np.log(10 * (1 - EPS) / EPS + 1)),
                "min_ece_gain": MIN_ECE_GAIN, "identity_max_abs_error": max(identity.values()),
                "identity_errors": identity, "identity_tolerance": TOL,
                "per_seed_ece_plain": [r["ece"] for r in runs[0.0]],
                "per_seed_ece_smoothed": [r["ece"] for r in runs[EPS]]}
    holds = (soft["confidence"] < hard["confidence"] and soft["logit_gap"] < hard["logit_gap"]
             and soft["ece"] <= hard["ece"] - MIN_ECE_GAIN and max(identity.values()) < TOL)
    notes = [r"The course's $-0.9 \log p_{\hat c} - 0.1 \sum_{c \ne \hat c} \log p_c$ is a "
             "proper target only for $C = 2$ (then it is $ε = 0.2$ smoothing, checked here); "
             "with $C$ classes its targets sum to $0.9 + 0.1 (C − 1)$. The $ε/C$ form, "
             "$(1 − ε)δ + ε/C$, is the general one."]
    condition = ("only where plain CE is overconfident (MNIST-1D, test accuracy "
                 f"{hard['accuracy']:.2f}); an already calibrated model is not tested in the "
                 "quick run")
    if not quick:
        easy = {eps: train_and_score(digits(), 1438, 2000, eps, 0) for eps in (0.0, EPS)}
        measured["digits: ece plain / smoothed"] = [easy[0.0]["ece"], easy[EPS]["ece"]]
        measured["digits: accuracy plain / smoothed"] = [easy[0.0]["accuracy"],
                                                         easy[EPS]["accuracy"]]
        notes.append(f"Counter-case measured on digits (test accuracy {easy[0.0]['accuracy']:.2f}"
                     f"): plain CE is already calibrated (ECE {easy[0.0]['ece']:.3f}) and "
                     f"ε = {EPS} makes it under-confident (ECE {easy[EPS]['ece']:.3f}).")
        if easy[EPS]["ece"] > easy[0.0]["ece"]:
            condition = ("only where plain CE is overconfident (MNIST-1D): on digits, already "
                         f"calibrated (ECE {easy[0.0]['ece']:.3f}), smoothing raises the ECE to "
                         f"{easy[EPS]['ece']:.3f}")
        else:
            condition = ""

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, eps, title in ((axes[0], 0.0, "plain CE"), (axes[1], EPS, f"smoothing ε = {EPS}")):
        conf, acc, count = calibration_bins(runs[eps][0]["probs"], data.y_test, 10)
        used = count > 0
        ax.bar(np.linspace(0.05, 0.95, 10)[used], acc[used], width=0.1, edgecolor="k",
               alpha=0.7, label="accuracy")
        ax.plot(conf[used], acc[used], "ro", ms=4, label="(confidence, accuracy)")
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
               title=f"{title} (seed 0); mean ECE {mean[eps]['ece']:.3f}")
        ax.legend(loc="upper left", fontsize=8)
    for eps, label in ((0.0, "plain CE"), (EPS, f"ε = {EPS}")):
        axes[2].hist(runs[eps][0]["gaps"], bins=40, alpha=0.6, label=label)
    axes[2].axvline(measured["optimal_logit_gap_with_smoothing"], color="k", ls="--",
                    label="optimum with ε")
    axes[2].set(xlabel="top logit − mean of the others (test)", title="logit gaps (seed 0)")
    axes[2].legend()
    figure = save_figure(fig, out_dir, "e12_label_smoothing.png")
    summary = (f"MNIST-1D, {seeds} seeds: smoothing ε = {EPS} lowers the mean confidence "
               f"{hard['confidence']:.2f} → {soft['confidence']:.2f}, the logit gap "
               f"{hard['logit_gap']:.1f} → {soft['logit_gap']:.1f} and the held-out ECE "
               f"{hard['ece']:.3f} → {soft['ece']:.3f} (accuracy {hard['accuracy']:.3f} → "
               f"{soft['accuracy']:.3f}); the ε/C identity holds to "
               f"{max(identity.values()):.1e}.")
    return Result(measured, bool(holds), summary, figure, notes, table=table(measured),
                  condition=condition)


def table(m: dict) -> list[tuple[str, str]]:
    rows = [("data and training", f"{m['dataset']}; MLP with two hidden layers of 128, Adam, "
             f"{num(m['steps'])} steps; mean over {m['seeds']} seeds")]
    for key, label in (("accuracy", "test accuracy"), ("confidence", "mean confidence"),
                       ("logit_gap", "logit gap (top − mean of the others)"),
                       ("ece", "expected calibration error (ECE)")):
        rows.append((f"{label}, plain CE → smoothing $ε$ = {m['eps']:g}",
                     arrow(m[f"plain CE: {key}"], m[f"smoothed: {key}"])))
    rows += [
        ("optimal logit gap with smoothing, $\\log(C (1 − ε)/ε + 1)$",
         num(m["optimal_logit_gap_with_smoothing"])),
        ("ECE gain required", num(m["min_ece_gain"])),
        ("largest error of the identities (three ε, and the course's 0.9/0.1 for $C = 2$)",
         f"{sci(m['identity_max_abs_error'])} (tolerance {sci(m['identity_tolerance'], 1)})"),
    ]
    if "digits: ece plain / smoothed" in m:
        ece, acc = m["digits: ece plain / smoothed"], m["digits: accuracy plain / smoothed"]
        rows.append(("counter-case, digits: ECE plain → smoothed (accuracy)",
                     f"{arrow(*ece, fmt=lambda v: f'{v:.3f}')} "
                     f"({arrow(*acc, fmt=lambda v: f'{v:.3f}')})"))
    return rows


EXPERIMENT = Experiment(
    12, "label-smoothing",
    "Label smoothing lowers confidence and the logit gap and improves calibration (ECE) on "
    "held-out data; cross-entropy with ε/C smoothing equals (1 − ε) CE + ε CE(uniform).",
    "p̃'_c = (1 − ε) δ_{c,ĉ} + ε / C;  CE(p, p̃') = (1 − ε) CE(p, p̃) + ε CE(p, uniform)",
    run,
    tex="\n".join((
        r"\tilde p^{\prime}_c = (1 - \varepsilon)\, \delta_{c,\hat c} + \frac{\varepsilon}{C}",
        r"\text{CE}(p, \tilde p^{\prime}) = (1 - \varepsilon)\, \text{CE}(p, \tilde p) +"
        r" \varepsilon\, \text{CE}(p, \text{uniform})",
    )))
