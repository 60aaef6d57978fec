"""Figures as PNG files (matplotlib, headless): learning curves, confusion matrix, reliability
diagram, learning-rate range test."""

from __future__ import annotations

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    from .checkpoint import atomic_write

    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    _pyplot().close(fig)


def learning_curves(history, path: str, title: str = "") -> None:
    """Loss and accuracy per epoch, train and validation."""
    plt = _pyplot()
    epochs = history.column("epoch")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
        ax.plot(epochs, history.column(f"train_{key}"), label="train", marker=".")
        val = history.column(f"val_{key}")
        if any(v is not None for v in val):
            ax.plot(epochs, val, label="validation", marker=".")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_loss.set_yscale("log")
    if title:
        fig.suptitle(title)
    _save(fig, path)


def confusion_matrix(cm: np.ndarray, path: str, title: str = "confusion matrix") -> None:
    plt = _pyplot()
    cm = np.asarray(cm)
    n = len(cm)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * n, 1.0 + 0.45 * n))
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    _save(fig, path)


def reliability_diagram(confidence, accuracy, count, ece: float, path: str) -> None:
    """Accuracy against confidence per bin; the diagonal is perfect calibration."""
    plt = _pyplot()
    n_bins = len(count)
    centers = (np.arange(n_bins) + 0.5) / n_bins
    fig, ax = plt.subplots(figsize=(5, 5))
    used = np.asarray(count) > 0
    ax.bar(centers[used], np.asarray(accuracy)[used], width=1 / n_bins, edgecolor="black",
           alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.plot(np.asarray(confidence)[used], np.asarray(accuracy)[used], "o", color="C3",
            label="mean confidence")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability diagram, ECE = {ece:.3f}")
    ax.legend(loc="upper left")
    _save(fig, path)


def lr_finder(lrs, losses, suggestion, path: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    if suggestion is not None:
        ax.axvline(suggestion, color="C3", linestyle="--", label=f"suggested lr {suggestion:.2g}")
        ax.legend()
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed loss")
    ax.set_title("learning-rate range test")
    ax.grid(alpha=0.3)
    _save(fig, path)
