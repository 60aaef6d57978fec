"""Environments through gymnasium's API (imported lazily), and rollouts of a policy in them.

`make_env` turns everything gymnasium can reject (unknown id, missing extra, continuous actions)
into a ValueError that names the id, so the command line can report it in one line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Episode:
    """One episode: observations (T, obs_dim), actions (T,) int64, rewards (T,) float64;
    truncated when a time limit ended it before the environment terminated, with the
    observation it stopped at (the state whose value the rewards leave out)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    truncated: bool = False
    final_observation: np.ndarray | None = None

    @property
    def total_reward(self) -> float:
        """sum_t r_t, undiscounted: the return that environments' thresholds refer to."""
        return float(self.rewards.sum())

    def __len__(self) -> int:
        return len(self.actions)


def make_env(env_id: str, render_mode: str | None = None, **kwargs):
    """gymnasium.make(env_id) for a discrete-action environment with vector observations;
    ValueError otherwise."""
    import gymnasium as gym
    from gymnasium import spaces

    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"--env: expected an environment id such as CartPole-v1, got "
                         f"{env_id!r}")
    try:
        env = gym.make(env_id, render_mode=render_mode, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        raise ValueError(f"--env {env_id}: a package it needs is missing ({exc})") from None
    except gym.error.Error as exc:
        raise ValueError(f"--env {env_id}: not a gymnasium environment ({exc})") from None
    if not isinstance(env.action_space, spaces.Discrete):
        env.close()
        raise ValueError(f"--env {env_id}: REINFORCE here needs discrete actions, but its action "
                         f"space is {env.action_space}")
    if not isinstance(env.observation_space, spaces.Box) or \
            len(env.observation_space.shape) != 1:
        env.close()
        raise ValueError(f"--env {env_id}: expected vector observations, got "
                         f"{env.observation_space}")
    return env


def env_sizes(env) -> tuple[int, int]:
    """(obs_dim, n_actions) of a discrete-action environment with vector observations."""
    space = getattr(env, "single_observation_space", env.observation_space)
    actions = getattr(env, "single_action_space", env.action_space)
    return int(np.prod(space.shape)), int(actions.n)


def reward_threshold(env) -> float | None:
    """The return at which the environment counts as solved (its spec's), or None."""
    spec = getattr(env, "spec", None)
    return None if spec is None else spec.reward_threshold


def run_episode(env, policy, seed: int | None = None, greedy: bool = False,
                render: list | None = None) -> Episode:
    """Play one episode with actions a_t ~ pi(. | s_t); env.reset(seed=seed) first (None
    continues the environment's own random stream). Frames go to `render` when it is a list."""
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards = [], [], []
    if render is not None:
        render.append(env.render())
    terminated = truncated = False
    while not (terminated or truncated):
        action = policy.act(obs, greedy=greedy)
        observations.append(obs)
        actions.append(action)
        obs, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
        if render is not None:
            render.append(env.render())
    return Episode(np.asarray(observations, dtype=policy.dtype),
                   np.asarray(actions, dtype=np.int64), np.asarray(rewards, dtype=np.float64),
                   bool(truncated and not terminated), np.asarray(obs, dtype=policy.dtype))


def run_vector_episodes(envs, policy, seed: int | None = None) -> list[Episode]:
    """One episode from each sub-environment of a gymnasium VectorEnv, actions drawn for all of
    them in one batched forward. Steps after a sub-environment's episode ended are discarded,
    so any autoreset mode gives the same episodes."""
    obs, _ = envs.reset(seed=seed)
    n = envs.num_envs
    steps: list[list] = [[] for _ in range(n)]
    ends: list[tuple] = [(False, None)] * n
    active = np.ones(n, dtype=bool)
    while active.any():
        action = policy.act(obs)
        next_obs, reward, terminated, truncated, info = envs.step(action)
        for i in np.flatnonzero(active):
            steps[i].append((obs[i], action[i], reward[i]))
            if terminated[i] or truncated[i]:
                # autoreset on the next step (gymnasium's default) leaves the final observation
                # in next_obs; autoreset on the same step puts it in info["final_obs"]
                final = info["final_obs"][i] if "final_obs" in info and \
                    info["_final_obs"][i] else next_obs[i]
                ends[i] = (bool(truncated[i] and not terminated[i]), final)
                active[i] = False
        obs = next_obs
    episodes = []
    for record, (cut, final) in zip(steps, ends, strict=True):
        o, a, r = zip(*record, strict=True)
        episodes.append(Episode(np.asarray(o, dtype=policy.dtype), np.asarray(a, dtype=np.int64),
                                np.asarray(r, dtype=np.float64), cut,
                                np.asarray(final, dtype=policy.dtype)))
    return episodes
