"""Reinforcement learning: REINFORCE as reward-weighted cross-entropy on gymnasium environments.

Needs NumPy only to import; gymnasium is imported when an environment is made.
"""

from .envs import Episode, env_sizes, make_env, reward_threshold, run_episode, run_vector_episodes
from .policy import CategoricalPolicy, mlp
from .reinforce import BASELINES, REINFORCE, RETURNS
from .returns import reward_to_go, running_returns, solved_at, total_return

__all__ = ["BASELINES", "RETURNS", "REINFORCE", "CategoricalPolicy", "Episode", "env_sizes",
           "make_env", "mlp", "reward_threshold", "reward_to_go", "run_episode",
           "run_vector_episodes", "running_returns", "solved_at", "total_return"]
