"""Figures as PNG files (matplotlib, headless): learning curves, confusion matrix, reliability
diagram, learning-rate range test. `pyplot()` and `save_figure()` are shared with rl's plots."""

from __future__ import annotations

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only: no display needed)."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("figures need matplotlib: pip install 'retrograd[train]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str) -> None:
    """Write the figure as a PNG atomically and close it."""
    from .checkpoint import atomic_write

    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    pyplot().close(fig)


def _readable_log_axis(ax) -> None:
    """A log-scale y axis whose ticks are labelled with plain numbers (0.05, 0.1, 0.5), also
    when the data spans less than a decade (matplotlib then labels no major tick at all)."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_minor_locator(LogLocator(base=10, subs=np.arange(1, 10)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def learning_curves(history, path: str, title: str = "") -> None:
    """Loss and accuracy per epoch, train and validation."""
    plt = pyplot()
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
    losses = [v for k in ("train_loss", "val_loss") for v in history.column(k)
              if v is not None]
    if losses and min(losses) > 0:
        _readable_log_axis(ax_loss)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def confusion_matrix(cm: np.ndarray, path: str, title: str = "confusion matrix",
                     class_names: list[str] | None = None) -> None:
    """Counts of (true class, predicted class); every class labelled on both axes."""
    plt = pyplot()
    cm = np.asarray(cm)
    n = len(cm)
    names = [str(c) for c in (class_names if class_names is not None else range(n))]
    size = 1.6 + 0.45 * n + 0.07 * max(len(s) for s in names)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(n), labels=names, rotation=90 if max(map(len, names)) > 3 else 0)
    ax.set_yticks(range(n), labels=names)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    save_figure(fig, path)


def reliability_diagram(confidence, accuracy, count, ece: float, path: str,
                        title: str = "") -> None:
    """Each bin's accuracy against its mean confidence; the diagonal is perfect calibration.
    Bars span the bins, points sit at each bin's mean confidence, labels give the bin counts."""
    plt = pyplot()
    confidence, accuracy, count = (np.asarray(a) for a in (confidence, accuracy, count))
    n_bins = len(count)
    edges = np.linspace(0, 1, n_bins + 1)
    used = count > 0
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.bar(edges[:-1][used], accuracy[used], width=1 / n_bins, align="edge",
           edgecolor="black", alpha=0.6, label="accuracy of the bin")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.plot(confidence[used], accuracy[used], "o", color="C3",
            label="(mean confidence, accuracy)")
    for c, a, k in zip(confidence[used], accuracy[used], count[used], strict=True):
        ax.annotate(f"{int(k)}", (c, a), textcoords="offset points", xytext=(0, 5),
                    ha="center", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("mean confidence of the bin (top-class probability)")
    ax.set_ylabel("accuracy")
    heading = f"reliability diagram, ECE = {ece:.3f} (numbers: samples per bin)"
    ax.set_title(f"{title}\n{heading}" if title else heading, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    save_figure(fig, path)


def lr_finder(lrs, losses, suggestion, path: str, title: str = "") -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    if suggestion is not None:
        ax.axvline(suggestion, color="C3", linestyle="--", label=f"suggested lr {suggestion:.2g}")
        ax.legend()
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed loss")
    ax.set_title(title or "learning-rate range test")
    ax.grid(alpha=0.3)
    save_figure(fig, path)
