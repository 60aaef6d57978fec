"""Returns and running returns: the weights REINFORCE puts on each step's cross-entropy, and the
running return that decides when an environment counts as solved."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RUNNING_ALPHA = 0.05  # running = 0.05 x return + 0.95 x running (the PyTorch example's rule)


def reward_to_go(rewards: Sequence[float] | np.ndarray, gamma: float, tail: float = 0.0
                 ) -> np.ndarray:
    """G_t = sum_{k >= t} gamma^(k - t) r_k + gamma^(T - t) tail, for every step t of one
    episode of T steps (float64); tail is the value of the state after the last step (0 when
    the episode terminated, an estimate when a time limit cut it short).

    A plain loop over Python floats: exact for any gamma and length (a cumsum of r_k gamma^k
    divided by gamma^t underflows for long episodes), and an episode is at most a few thousand
    steps.
    """
    out = np.empty(len(rewards), dtype=np.float64)
    g = float(tail)
    for t in range(len(rewards) - 1, -1, -1):
        g = float(rewards[t]) + gamma * g
        out[t] = g
    return out


def total_return(rewards: Sequence[float] | np.ndarray, gamma: float, tail: float = 0.0
                 ) -> float:
    """R = sum_t gamma^t r_t + gamma^T tail: the whole episode's (discounted) reward, G_0."""
    g = float(tail)
    for r in reversed(list(rewards)):
        g = float(r) + gamma * g
    return g


def running_returns(episode_returns: Sequence[float], alpha: float = RUNNING_ALPHA
                    ) -> np.ndarray:
    """running_0 = R_0;  running_i = alpha R_i + (1 - alpha) running_{i-1}."""
    out = np.empty(len(episode_returns), dtype=np.float64)
    running = None
    for i, r in enumerate(episode_returns):
        running = float(r) if running is None else alpha * float(r) + (1 - alpha) * running
        out[i] = running
    return out


def solved_at(episode_returns: Sequence[float], threshold: float | None) -> int | None:
    """The first episode (1-based) whose running return reaches `threshold`; None if never
    (or if the environment has no threshold)."""
    if threshold is None or not len(episode_returns):
        return None
    hits = np.flatnonzero(running_returns(episode_returns) >= threshold)
    return int(hits[0]) + 1 if len(hits) else None
