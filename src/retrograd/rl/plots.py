"""Figures of a reinforcement run: episode returns with their running mean (PNG), and an
episode's frames as an animated GIF. matplotlib and Pillow are imported lazily."""

from __future__ import annotations

import numpy as np

from ..train.checkpoint import atomic_write
from ..train.plots import pyplot, save_figure
from .returns import running_returns, solved_at


def plot_returns(returns: list[float], threshold: float | None, path: str,
                 title: str = "") -> None:
    """Each episode's return, the running return (0.05 R + 0.95 running), the threshold and
    the episode at which the running return reached it."""
    plt = pyplot()
    episodes = np.arange(1, len(returns) + 1)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(episodes, returns, color="tab:blue", alpha=0.35, linewidth=0.8,
            label="episode return")
    ax.plot(episodes, running_returns(returns), color="tab:blue", linewidth=2,
            label="running return")
    if threshold is not None:
        ax.axhline(threshold, color="tab:green", linestyle="--", linewidth=1,
                   label=f"threshold {threshold:g}")
        solved = solved_at(returns, threshold)
        if solved is not None:
            ax.axvline(solved, color="tab:red", linestyle=":", linewidth=1,
                       label=f"solved at episode {solved}")
    ax.set_xlabel("episode")
    ax.set_ylabel("return")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def write_gif(frames: list[np.ndarray], path: str, fps: float = 30, max_frames: int = 300,
              max_width: int = 320) -> None:
    """Frames (H, W, 3) uint8 as a looping GIF, every k-th frame so at most max_frames remain,
    downscaled by an integer factor to at most max_width pixels wide."""
    from PIL import Image

    frames = [f for f in frames if f is not None]
    if not frames:
        raise ValueError(f"--gif: the environment rendered no frames for {path}")
    step = max(1, -(-len(frames) // max_frames))
    scale = max(1, -(-frames[0].shape[1] // max_width))
    images = [Image.fromarray(np.ascontiguousarray(f[::scale, ::scale]))
              for f in frames[::step]]
    duration = int(round(1000 * step / fps))

    def write(f):
        images[0].save(f, format="GIF", save_all=True, append_images=images[1:],
                       duration=duration, loop=0)

    atomic_write(path, write)
