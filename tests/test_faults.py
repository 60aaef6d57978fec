"""Faults, for real: a `retrograd train` process killed with SIGKILL at random moments (and in
the middle of checkpoint writes) always resumes to the uninterrupted run's model.safetensors,
byte for byte, with and without early stopping."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

BIG = ["--hidden", "512", "512", "--optimizer", "adam", "--threads", "1", "--seed", "0",
       "--no-progress"]  # 3 MB checkpoints: their writes take a while
PLAIN = ["--data", "spirals", "--batch-size", "16", "--epochs", "6", "--lr", "1e-3", *BIG]
# digits: early stopping fires at epoch 8 (best epoch 6)
EARLY = ["--data", "digits", "--batch-size", "32", "--epochs", "20", "--lr", "2e-3",
         "--early-stopping", "2", "--validation-fraction", "0.2", *BIG]


def train(out, args, resume=False):
    cmd = [sys.executable, "-m", "retrograd", "train", *args, "--out", str(out)]
    if resume:
        cmd.append("--resume")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def temp_files(out) -> list[str]:
    try:
        return [n for n in os.listdir(out) if n.startswith(".tmp-")]
    except FileNotFoundError:
        return []


def kill(proc, out, moment, rng) -> str:
    """SIGKILL the run: after a random delay, or the instant a checkpoint write is under way
    (a temporary file exists beside checkpoint.npz). Returns what was hit."""
    if moment == "random":
        time.sleep(rng.uniform(0.5, 3.0))
        hit = "random"
    else:
        deadline = time.monotonic() + 30
        skip = rng.randint(0, 3)  # not always the first epoch's write
        hit = "finished before a write"
        while time.monotonic() < deadline and proc.poll() is None:
            if temp_files(out):
                if skip == 0:
                    hit = "checkpoint write"
                    break
                skip -= 1
                while temp_files(out) and proc.poll() is None:
                    time.sleep(0.0005)
            time.sleep(0.0005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return hit


def finish(out, args):
    """Continue from the checkpoint (or start over when the kill came before the first one)
    until the run is done; returns the final model's bytes."""
    resume = os.path.isfile(os.path.join(out, "checkpoint.npz"))
    proc = train(out, args, resume=resume)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    return open(os.path.join(out, "model.safetensors"), "rb").read()


@pytest.mark.parametrize("args", [PLAIN, EARLY], ids=["plain", "early-stopping"])
def test_sigkill_at_random_moments_always_resumes_to_the_same_model(tmp_path, args):
    reference = tmp_path / "reference"
    proc = train(reference, args)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    expected = (reference / "model.safetensors").read_bytes()
    stopped = json.loads((reference / "metrics.json").read_text())["stopped"]
    assert stopped == ("early-stopping" if args is EARLY else "completed")
    rng = random.Random(1234 + len(args))
    hits = []
    for k, moment in enumerate(["random", "write", "random", "write", "write"]):
        out = tmp_path / f"killed-{k}"
        hits.append(kill(train(out, args), out, moment, rng))
        assert finish(out, args) == expected, (k, hits[-1])
        assert not temp_files(out), f"leftover temporary files after kill {k}"
    assert hits.count("checkpoint write") >= 2, hits
