"""`retrograd rl` end to end: a short training run writes metrics.json, the returns plot and
the policy (read back by the safetensors library and by torch), --play reports the mean return
and writes a GIF; bad input ends with exit status 2, one line on stderr, and nothing written."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file

import retrograd as rg
from retrograd import rl
from retrograd.cli import main


def run(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("rl") / "run"
    code = main(["rl", "--env", "CartPole-v1", "--episodes", "40", "--hidden", "16",
                 "--seed", "1", "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_training_writes_metrics_plot_and_policy(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    returns = metrics["episode_returns"]
    assert len(returns) == metrics["episodes"] == 40
    assert all(r >= 1 and r == int(r) for r in returns)  # CartPole pays 1 per step
    running, expected_solved = returns[0], None
    for i, r in enumerate(returns, start=1):
        running = running if i == 1 else 0.05 * r + 0.95 * running
        if expected_solved is None and running >= 475:
            expected_solved = i
    assert metrics["solved_at_episode"] == expected_solved
    assert metrics["running_returns"][-1] == pytest.approx(running)
    assert metrics["reward_threshold"] == 475 and metrics["seconds"] > 0
    assert metrics["config"]["hidden"] == [16] and metrics["config"]["seed"] == 1
    assert metrics["config"]["env"] == "CartPole-v1"
    assert (trained / "returns.png").read_bytes()[:4] == b"\x89PNG"
    # the same policy through two independent readers
    weights = load_file(str(trained / "policy.safetensors"))
    assert sorted(weights) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    ref = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    ref.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})
    policy, description = rl.job.load_policy(str(trained))
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(policy.logits(x), ref.float()(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    assert description["env"] == "CartPole-v1"


def test_same_seed_same_run(trained, tmp_path):
    out = tmp_path / "again"
    assert main(["rl", "--env", "CartPole-v1", "--episodes", "40", "--hidden", "16",
                 "--seed", "1", "--out", str(out), "--no-progress"]) == 0
    assert (json.loads((out / "metrics.json").read_text())["episode_returns"]
            == json.loads((trained / "metrics.json").read_text())["episode_returns"])


def test_play_reports_the_mean_return_and_writes_a_gif(trained, tmp_path, capsys):
    gif = tmp_path / "episode.gif"
    code, out, err = run(["rl", "--play", str(trained), "--episodes", "3", "--seed", "7",
                          "--gif", str(gif)], capsys)
    assert code == 0, err
    # the same three episodes, played here with the loaded policy and the same seeds
    policy, _ = rl.job.load_policy(str(trained))
    env = rl.make_env("CartPole-v1")
    rg.manual_seed(7)
    returns = [rl.run_episode(env, policy, seed=7 if i == 0 else None).total_reward
               for i in range(3)]
    assert f"mean return {np.mean(returns):.1f} over 3 episodes" in out
    with Image.open(gif) as image:
        assert image.format == "GIF" and image.n_frames > 5
    assert math.isfinite(float(out.split("mean return ")[1].split()[0]))


BAD = [
    (["--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    (["--env", "Pendulum-v1"], "discrete actions"),
    (["--env", "CartPole-v1", "--gamma", "1.5"], "--gamma"),
    (["--env", "CartPole-v1", "--gamma", "-0.1"], "--gamma"),
    (["--env", "CartPole-v1", "--gamma", "nan"], "--gamma"),
    (["--env", "CartPole-v1", "--gamma", "abc"], "--gamma"),
    (["--env", "CartPole-v1", "--episodes", "0"], "--episodes"),
    (["--env", "CartPole-v1", "--episodes", "-5"], "--episodes"),
    (["--env", "CartPole-v1", "--lr", "0"], "--lr"),
    (["--env", "CartPole-v1", "--returns", "all"], "--returns"),
    (["--env", "CartPole-v1", "--baseline", "median"], "--baseline"),
    (["--env", "CartPole-v1", "--hidden", "0"], "--hidden"),
    (["--env", "CartPole-v1", "--gif", "x.gif"], "--gif"),
    ([], "--env"),
]


@pytest.mark.parametrize("args,named", BAD, ids=[" ".join(a) or "none" for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_nothing_written(args, named, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run(["rl", *args, "--out", str(out), "--no-progress"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and named in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("extra,named", [([], "not a retrograd policy folder"),
                                         (["--lr", "0.1"], "--lr"),
                                         (["--episodes", "0"], "--episodes"),
                                         (["--gif", "ANIM.png"], "--gif")])
def test_bad_play_input(extra, named, tmp_path, capsys, trained):
    folder = str(tmp_path / "missing") if not extra else str(trained)
    extra = [str(tmp_path / "anim.png") if a == "ANIM.png" else a for a in extra]
    code, _, err = run(["rl", "--play", folder, *extra], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and named in err
    assert not (tmp_path / "anim.png").exists()


def test_play_rejects_another_env(trained, capsys):
    code, _, err = run(["rl", "--play", str(trained), "--env", "Acrobot-v1"], capsys)
    assert code == 2 and "CartPole-v1" in err
