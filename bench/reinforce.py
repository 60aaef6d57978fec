"""REINFORCE on CartPole-v1: retrograd's defaults vs the PyTorch reference agent, over 5 seeds.

The reference is the agent of pytorch/examples' reinforcement_learning/reinforce.py, written
here in PyTorch: policy 4-128-2 with dropout 0.6 before the ReLU, softmax, Adam lr 1e-2,
gamma 0.99, discounted returns standardized per episode ((G - mean) / (std + eps)), loss
-sum_t log pi(a_t | s_t) G_t, one update per episode, log-probabilities kept from the sampling
forward. Two departures, both applied to both agents: an episode ends when it is terminated
*or truncated* (the example ignores truncation, so its CartPole-v1 episodes can run past 500
steps), and an environment counts as solved at the first episode whose running return
(0.05 x return + 0.95 x running, starting at the first return) reaches the threshold, 475 (the
example starts the running reward at 10 and needs > 475).

retrograd runs `retrograd rl`'s defaults (retrograd.rl.job.default_agent). Per seed, each agent
plays until solved or --max-episodes; the two agents alternate which goes first from seed to
seed. We report episodes to solve and wall seconds to solve, per seed and in total, with their
ratios, and the time per environment step (which cancels the episode lengths).

    python bench/reinforce.py                 # 5 seeds (minutes: the PyTorch agent dominates)
    python bench/reinforce.py --seeds 10

One BLAS / torch thread by default (--threads): a forward pass on one observation gains
nothing from a second thread, and torch's two threads collapse when the cores are shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (imports nothing heavy: the re-exec below must precede NumPy)

if __name__ == "__main__":
    common.reexec_without_blas_overrides(__file__)

ENV_ID = "CartPole-v1"


def torch_reference(seed: int, max_episodes: int, threshold: float) -> tuple[list[float], int]:
    """The PyTorch example's agent; returns (episode returns, environment steps)."""
    import gymnasium as gym
    import numpy as np
    import torch
    from torch import nn
    from torch.distributions import Categorical

    class Policy(nn.Module):
        def __init__(self):
            super().__init__()
            self.affine1 = nn.Linear(4, 128)
            self.dropout = nn.Dropout(p=0.6)
            self.affine2 = nn.Linear(128, 2)

        def forward(self, x):
            x = torch.relu(self.dropout(self.affine1(x)))
            return torch.softmax(self.affine2(x), dim=1)

    torch.manual_seed(seed)
    env = gym.make(ENV_ID)
    policy = Policy()
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    eps = np.finfo(np.float32).eps.item()
    returns, steps, running = [], 0, None
    for episode in range(max_episodes):
        state, _ = env.reset(seed=seed if episode == 0 else None)
        log_probs, rewards, done = [], [], False
        while not done:
            probs = policy(torch.from_numpy(state).float().unsqueeze(0))
            m = Categorical(probs)
            action = m.sample()
            log_probs.append(m.log_prob(action))
            state, reward, terminated, truncated, _ = env.step(action.item())
            rewards.append(reward)
            done = terminated or truncated
        steps += len(rewards)
        g, discounted = 0.0, []
        for r in reversed(rewards):
            g = r + 0.99 * g
            discounted.append(g)
        g_t = torch.tensor(discounted[::-1])
        g_t = (g_t - g_t.mean()) / (g_t.std() + eps)
        loss = torch.cat([-lp * w for lp, w in zip(log_probs, g_t, strict=True)]).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        returns.append(float(sum(rewards)))
        running = returns[-1] if running is None else 0.05 * returns[-1] + 0.95 * running
        if running >= threshold:
            break
    return returns, steps


def retrograd_agent(seed: int, max_episodes: int, threshold: float) -> tuple[list[float], int]:
    """retrograd's defaults, the same stopping rule; returns (episode returns, steps)."""
    rg = common.import_retrograd()
    from retrograd.rl import job

    class Solved(Exception):
        pass

    rg.manual_seed(seed)
    env = job.make_env(ENV_ID)
    agent = job.default_agent(env)
    steps, running = [0], [None]

    def stop_when_solved(_, episode):
        steps[0] += len(episode)
        r = episode.total_reward
        running[0] = r if running[0] is None else 0.05 * r + 0.95 * running[0]
        if running[0] >= threshold:
            raise Solved

    returns: list[float] = []
    try:
        returns = agent.train(env, max_episodes, seed=seed,
                              callback=lambda i, e: (returns.append(e.total_reward),
                                                     stop_when_solved(i, e)))
    except Solved:
        pass
    return returns, steps[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 (default 5)")
    parser.add_argument("--max-episodes", type=int, default=1000)
    common.add_harness_args(parser, "BLAS and torch threads (default 1)")
    parser.set_defaults(threads=1)
    args = parser.parse_args()
    limits = common.limit_threads(args.threads)  # noqa: F841  (kept alive for the run)
    from retrograd.rl import solved_at

    threshold = 475.0
    agents = {"torch": torch_reference, "retrograd": retrograd_agent}
    rows, load = [], common.OtherLoad()
    for seed in range(args.seeds):
        order = list(agents) if seed % 2 == 0 else list(agents)[::-1]
        result = {}
        for name in order:
            t0 = time.perf_counter()
            returns, steps = agents[name](seed, args.max_episodes, threshold)
            seconds = time.perf_counter() - t0
            result[name] = (solved_at(returns, threshold), seconds, steps)
            print(f"seed {seed} {name}: solved at {result[name][0]} in {seconds:.1f} s "
                  f"({steps} steps)", file=sys.stderr, flush=True)
        rows.append(result)
    print_report(rows, args, load)


def _episodes(solved, cap) -> str:
    return str(solved) if solved is not None else f">{cap} (not solved)"


def print_report(rows, args, load) -> None:
    cap = args.max_episodes
    lines = common.report_header(
        f"REINFORCE on {ENV_ID}: retrograd defaults vs the PyTorch example's agent", __file__,
        [f"seeds 0-{args.seeds - 1}, each agent until its running return reaches 475 or "
         f"{cap} episodes; {load.describe()}"], common.environment_lines(args.threads))
    lines += ["| seed | episodes to solve, torch | retrograd | seconds, torch | retrograd | "
              "retrograd / torch seconds |", "|---|---|---|---|---|---|"]
    for seed, r in enumerate(rows):
        (te, ts, _), (re_, rs, _) = r["torch"], r["retrograd"]
        lines.append(f"| {seed} | {_episodes(te, cap)} | {_episodes(re_, cap)} | {ts:.1f} | "
                     f"{rs:.1f} | {rs / ts:.2f} |")
    eps_t = [r["torch"][0] or cap + 1 for r in rows]
    eps_r = [r["retrograd"][0] or cap + 1 for r in rows]
    sec_t = sum(r["torch"][1] for r in rows)
    sec_r = sum(r["retrograd"][1] for r in rows)
    med_t, med_r = statistics.median(eps_t), statistics.median(eps_r)
    per_step = {name: sum(r[name][1] for r in rows) / sum(r[name][2] for r in rows)
                for name in ("torch", "retrograd")}
    lines += [
        f"| median / total | {med_t:g} | {med_r:g} | {sec_t:.1f} | {sec_r:.1f} | "
        f"{sec_r / sec_t:.2f} |", "",
        f"solved within {cap} episodes: torch {sum(r['torch'][0] is not None for r in rows)}/"
        f"{len(rows)}, retrograd {sum(r['retrograd'][0] is not None for r in rows)}/"
        f"{len(rows)}; median episodes to solve, retrograd / torch: {med_r / med_t:.2f}; "
        f"time per environment step (acting, environment, updates): torch "
        f"{common.fmt_us(per_step['torch'])} us, retrograd "
        f"{common.fmt_us(per_step['retrograd'])} us "
        f"(ratio {per_step['retrograd'] / per_step['torch']:.2f})"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
