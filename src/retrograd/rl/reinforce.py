"""REINFORCE (Williams 1992) as reward-weighted cross-entropy.

The course's closing point: the gradient of the expected return,
    grad J = E[ sum_t grad log pi(a_t | s_t) w_t ],
is the gradient of a cross-entropy whose 0/1 target on the taken action is replaced by a weight
w_t. So the update is `policy_gradient_loss(logits, actions, w)`, the same fused softmax
cross-entropy node the classifiers train with. The weight is
    'total':        w_t = R = sum_k gamma^k r_k, the whole episode's reward (the course's form);
    'reward_to_go': w_t = G_t = sum_{k >= t} gamma^(k-t) r_k, which drops rewards that came
                    before the action (they add variance, not signal);
minus a baseline ('mean', or 'value': a value network V(s_t) fitted by MSE alongside), and
optionally standardized. A baseline that does not depend on the action leaves the expectation
unchanged, since E[grad log pi(a | s)] = 0.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import numpy as np

from .. import optim
from ..functions import tensor
from ..grad_mode import no_grad
from ..nn import functional as F
from ..nn.module import Module
from ..tensor import Tensor
from .envs import Episode, run_episode, run_vector_episodes
from .policy import CategoricalPolicy, mlp
from .returns import RUNNING_ALPHA, reward_to_go, total_return

RETURNS = ("reward_to_go", "total")
BASELINES = ("none", "mean", "value")
_EPS = 1e-8  # keeps a standardization finite when every weight is equal


class REINFORCE:
    """One update per batch of episodes:
    L = -(1/E) sum_episodes sum_t w_t log pi(a_t | s_t) - entropy_coef (1/E) sum_t H(pi(. | s_t)),
    E the number of episodes (so L's gradient is the plain Monte-Carlo estimate of -grad J).

    normalize standardizes the weights, (w - mean) / (std + 1e-8), over the batch's steps; the
    'mean' baseline subtracts that mean. With 'total' returns and a single episode per update
    every step has the same weight, so the mean and std are those of the previous episodes'
    returns instead (an exponential moving average, factor 0.05): Williams' reinforcement
    comparison, which stays unbiased because it does not depend on the current episode.

    baseline='value' without value= fits an MLP obs_dim-128-1 (ReLU) by Adam at the policy
    optimizer's learning rate. With a value network and bootstrap=True, an episode cut short
    by a time limit (truncated, not terminated) gets the value of the state it stopped at as
    the tail of its returns.
    """

    def __init__(self, policy: CategoricalPolicy, optimizer, gamma: float = 0.99,
                 returns: str = "reward_to_go", baseline: str = "none", normalize: bool = True,
                 entropy_coef: float = 0.0, value: Module | None = None, value_optimizer=None,
                 bootstrap: bool = True):
        if not isinstance(policy, CategoricalPolicy):
            raise TypeError(f"REINFORCE: policy must be a CategoricalPolicy, got "
                            f"{type(policy).__name__}")
        if not isinstance(gamma, numbers.Real) or not 0.0 <= gamma <= 1.0:
            raise ValueError(f"REINFORCE: gamma must be in [0, 1], got {gamma!r}")
        if returns not in RETURNS:
            raise ValueError(f"REINFORCE: returns must be one of {', '.join(RETURNS)}, got "
                             f"{returns!r}")
        if baseline not in BASELINES:
            raise ValueError(f"REINFORCE: baseline must be one of {', '.join(BASELINES)}, got "
                             f"{baseline!r}")
        if not entropy_coef >= 0:
            raise ValueError(f"REINFORCE: entropy_coef must be >= 0, got {entropy_coef!r}")
        self.policy, self.optimizer = policy, optimizer
        self.gamma, self.returns, self.baseline = float(gamma), returns, baseline
        self.normalize, self.entropy_coef = bool(normalize), float(entropy_coef)
        self.value, self.value_optimizer = value, value_optimizer
        self.bootstrap = bool(bootstrap)
        if baseline == "value" and value is None:
            if policy.obs_dim is None:
                raise ValueError("REINFORCE: pass value= (the policy has no Linear layer to "
                                 "read the observation size from)")
            self.value = mlp(policy.obs_dim, [128], 1)
        if self.value is not None and self.value_optimizer is None:
            groups = getattr(optimizer, "param_groups", None)
            lr = groups[0]["lr"] if groups else 1e-2  # the policy's learning rate, if it has one
            self.value_optimizer = optim.Adam(self.value.parameters(), lr=lr)
        # mean and variance of the previous episodes' total returns (None before the first)
        self.running_mean: float | None = None
        self.running_var = 0.0

    # ------------------------------------------------------------------------------------------

    def _tail(self, episode: Episode) -> float:
        # A time limit is not part of the task: the state it stopped at was worth V(s_T), not 0.
        # Counting it as 0 makes the last steps before the limit look bad (CartPole: the best
        # episodes are cut at 500) or good (Acrobot: every step pays -1).
        if episode.truncated and self.value is not None and self.bootstrap:
            return float(self._values(episode.final_observation.reshape(1, -1))[0])
        return 0.0

    def _returns(self, episode: Episode) -> np.ndarray:
        tail = self._tail(episode)
        if self.returns == "reward_to_go":
            return reward_to_go(episode.rewards, self.gamma, tail)
        return np.full(len(episode), total_return(episode.rewards, self.gamma, tail))

    def _values(self, observations: np.ndarray) -> np.ndarray:
        with no_grad():
            return self.value(tensor(observations)).numpy().reshape(-1).astype(np.float64)

    def weights(self, episodes: list[Episode]) -> tuple[np.ndarray, np.ndarray]:
        """(w, G): the per-step weights of the cross-entropy and the returns they came from,
        for the batch's steps in order. Changes no state."""
        g = np.concatenate([self._returns(e) for e in episodes])
        w = g.copy()
        if self.baseline == "value":
            w -= self._values(np.concatenate([e.observations for e in episodes]))
        if not (self.normalize or self.baseline == "mean"):
            return w, g
        if self.returns == "total" and len(episodes) == 1 and self.baseline != "value":
            # one weight for every step: its statistics must come from the episodes before it
            if self.running_mean is None:
                return np.zeros_like(w), g  # nothing to compare the first episode with
            mean, std = self.running_mean, float(np.sqrt(self.running_var))
        else:
            mean, std = float(w.mean()), float(w.std())
        w -= mean
        if self.normalize:
            w /= std + _EPS
        return w, g

    def loss(self, episodes: list[Episode], weights: np.ndarray | None = None) -> Tensor:
        """L above, as a Tensor whose backward fills the policy's gradients."""
        if not episodes:
            raise ValueError("REINFORCE: an update needs at least one episode")
        w = self.weights(episodes)[0] if weights is None else weights
        obs = np.concatenate([e.observations for e in episodes])
        actions = np.concatenate([e.actions for e in episodes])
        logits = self.policy(obs)
        n = len(episodes)
        loss = F.policy_gradient_loss(logits, actions, w.astype(self.policy.dtype),
                                      reduction="sum") / n
        if self.entropy_coef:
            logp = logits.log_softmax(1)
            entropy = -(logp.exp() * logp).sum()
            loss = loss - entropy * (self.entropy_coef / n)
        return loss

    def update(self, episodes: list[Episode]) -> float:
        """One optimizer step on L (and one on the value network's MSE); returns L."""
        w, g = self.weights(episodes)
        self.optimizer.zero_grad()
        loss = self.loss(episodes, w)
        loss.backward()
        self.optimizer.step()
        if self.value is not None:
            obs = np.concatenate([e.observations for e in episodes])
            self.value_optimizer.zero_grad()
            target = g.astype(self.policy.dtype).reshape(-1, 1)
            F.mse_loss(self.value(tensor(obs)), target).backward()
            self.value_optimizer.step()
        for e in episodes:  # the running statistics of total returns, after their use above
            r = total_return(e.rewards, self.gamma)
            if self.running_mean is None:
                self.running_mean = r
            else:
                d = r - self.running_mean
                self.running_mean += RUNNING_ALPHA * d
                self.running_var = (1 - RUNNING_ALPHA) * (self.running_var + RUNNING_ALPHA * d * d)
        return float(loss.item())

    def train(self, env, episodes: int, seed: int | None = None,
              callback: Callable[[int, Episode], None] | None = None) -> list[float]:
        """Play and learn from `episodes` episodes (one update per episode, or per batch of a
        VectorEnv's num_envs episodes); returns each episode's undiscounted total reward.
        seed seeds the environment's first reset; the policy's draws come from retrograd's
        generator (retrograd.manual_seed)."""
        if not isinstance(episodes, (int, np.integer)) or episodes <= 0:
            raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
        vector = hasattr(env, "num_envs")
        totals: list[float] = []
        while len(totals) < episodes:
            first = seed if not totals else None
            batch = run_vector_episodes(env, self.policy, first) if vector \
                else [run_episode(env, self.policy, first)]
            batch = batch[:episodes - len(totals)]
            self.update(batch)
            for e in batch:
                totals.append(e.total_reward)
                if callback is not None:
                    callback(len(totals), e)
        return totals
