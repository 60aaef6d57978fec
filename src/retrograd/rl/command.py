"""`retrograd rl`: train REINFORCE on a gymnasium environment, or play a saved policy.

    retrograd rl --env CartPole-v1 [--episodes N] [--gamma G] [--lr LR] [--hidden 128]
                 [--returns reward_to_go|total] [--baseline none|mean|value] [--seed S]
                 [--out DIR]
    retrograd rl --play DIR [--episodes N] [--seed S] [--greedy] [--gif FILE]

Registered by retrograd.cli (register(subparsers)); its errors become one line and exit 2 there.
"""

from __future__ import annotations

import argparse
import sys

from ..argtypes import finite_float
from .job import RLConfig

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
PLAY_EPISODES = 10
# training options: None on the command line means "the default", and is an error with --play
_TRAINING = ("env", "gamma", "lr", "hidden", "activation", "dropout", "returns", "baseline",
             "entropy_coef", "out")


def register(subparsers) -> None:
    """Add the `rl` parser to the retrograd command's subparsers."""
    d = RLConfig()
    p = subparsers.add_parser(
        "rl", help="REINFORCE on a gymnasium environment (train, or --play a saved policy)",
        description="Train a categorical policy with REINFORCE (return-weighted cross-entropy) "
                    "on a discrete-action gymnasium environment, or play a saved one.")
    p.add_argument("--env", default=None, metavar="ENV_ID",
                   help="gymnasium id: CartPole-v1, Acrobot-v1, MountainCar-v0, "
                        "LunarLander-v3 (with gymnasium[box2d]), ... (default: none; "
                        "required to train)")
    p.add_argument("--episodes", type=int, default=None, metavar="N",
                   help=f"episodes to train (default {d.episodes}) or to play "
                        f"(default {PLAY_EPISODES})")
    p.add_argument("--gamma", type=finite_float, default=None, metavar="G",
                   help=f"discount in [0, 1] (default {d.gamma})")
    p.add_argument("--lr", type=finite_float, default=None, metavar="LR",
                   help=f"Adam learning rate (default {d.lr})")
    p.add_argument("--hidden", type=int, nargs="+", default=None, metavar="H",
                   help=f"hidden layer sizes (default {' '.join(map(str, d.hidden))})")
    p.add_argument("--activation", default=None, metavar="relu|tanh",
                   help=f"(default {d.activation})")
    p.add_argument("--dropout", type=finite_float, default=None, metavar="P",
                   help=f"dropout after each hidden layer (default {d.dropout})")
    p.add_argument("--returns", default=None, metavar="reward_to_go|total",
                   help=f"each step's weight: the discounted reward from that step on, or the "
                        f"whole episode's (default {d.returns})")
    p.add_argument("--baseline", default=None, metavar="none|mean|value",
                   help=f"subtracted from the weights (default {d.baseline})")
    p.add_argument("--no-normalize", action="store_true",
                   help="do not standardize the weights")
    p.add_argument("--entropy-coef", type=finite_float, default=None, metavar="C",
                   help=f"entropy bonus (default {d.entropy_coef})")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed of the weights and the environment (default 0)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: a new runs/rl-<env>-<time> folder); an "
                        "existing run is never replaced unless --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (default: refuse)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--play", default=None, metavar="DIR",
                   help="run the policy saved in DIR and report its mean return (default: "
                        "train instead)")
    p.add_argument("--greedy", action="store_true",
                   help="with --play: take the most probable action instead of sampling")
    p.add_argument("--gif", default=None, metavar="FILE",
                   help="with --play: write an animation of the first episode (default: none)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Train or play, print one summary line; the exit status."""
    if args.play is not None:
        return _play(args)
    for name in ("greedy", "gif"):
        if getattr(args, name):
            raise ValueError(f"--{name} applies to --play DIR")
    if args.env is None:
        raise ValueError("--env ENV_ID is required (or --play DIR)")
    config = RLConfig(seed=args.seed, normalize=not args.no_normalize,
                      progress=not args.no_progress, overwrite=args.overwrite)
    for name in _TRAINING + ("episodes",):
        value = getattr(args, name)
        if value is not None:
            setattr(config, name, value)
    from .job import run

    result = run(config)
    solved = result["solved_at_episode"]
    threshold = result["reward_threshold"]
    status = (f"solved at episode {solved} (running return >= {threshold:g})" if solved
              else "not solved" if threshold is not None else "no reward threshold")
    print(f"{config.env}: {status}; mean return of the last 50 episodes "
          f"{result['mean_return_last_50']:.1f}; {result['episodes']} episodes in "
          f"{result['seconds']:.1f} s; run folder {result['out']}")
    if result["stopped"] == "interrupted":
        return EXIT_TERMINATED if result["signal"] == "SIGTERM" else EXIT_INTERRUPTED
    return 0


def _play(args: argparse.Namespace) -> int:
    for name in _TRAINING:
        if name != "env" and getattr(args, name) is not None:
            raise ValueError(f"--{name.replace('_', '-')} applies to training, not --play")
    for flag in ("no_normalize", "overwrite"):
        if getattr(args, flag):
            raise ValueError(f"--{flag.replace('_', '-')} applies to training, not --play")
    from .job import play

    result = play(args.play, PLAY_EPISODES if args.episodes is None else args.episodes,
                  seed=args.seed, greedy=args.greedy, gif=args.gif, env=args.env)
    returns = result["returns"]
    print(f"{result['env']}: mean return {result['mean_return']:.1f} over {len(returns)} "
          f"episodes (min {min(returns):g}, max {max(returns):g})"
          + (f"; animation written to {args.gif}" if args.gif else ""))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run it as: retrograd rl ...")
