"""BLAS threads for `retrograd train`: 1 vs 2 threads, on an idle machine and with another busy
process sharing the cores, for three model sizes. Interleaved rounds, median training seconds.

    python bench/threads.py [--rounds 3] [--epochs 3]

The busy neighbour is a second process running single-threaded NumPy work in a loop (what
another user's job does to a shared 2-core machine). The choice in retrograd/train/threads.py
(1 thread below MULTI_THREAD_WORK multiply-adds per step, else every core) is read off this
table. OPENBLAS_CORETYPE, if set, is removed for the runs (it slows OpenBLAS; see DESIGN.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

from retrograd.train.threads import step_work

BUSY = ("import numpy as np\n"
        "a = np.random.default_rng(0).random(1 << 20)\n"
        "while True:\n"
        "    a = np.sqrt(a * a + 1.0) - 0.5\n")


def mnist_like(path: str, n: int = 6000, seed: int = 0) -> None:
    """784 features, ~20% non-zero pixels, labels from a random teacher (DESIGN.md's advice:
    uniform dense inputs fill the optimizer state with denormals)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 784)) * (rng.random((n, 784)) < 0.2)
    teacher = rng.standard_normal((784, 10))
    np.savez(path, x=x.astype(np.float32), y=(x @ teacher).argmax(1))


def configs(tmp: str) -> list[tuple[str, list[str], float]]:
    npz = os.path.join(tmp, "mnist_like.npz")
    mnist_like(npz)
    return [
        ("digits 64-256-256-10, batch 32", ["--data", "digits"],
         step_work(64, [256, 256], 32)),
        ("mnist1d 40-256-256-10, batch 64", ["--data", "mnist1d"],
         step_work(40, [256, 256], 64)),
        ("784-256-256-10, batch 128", ["--data", npz, "--batch-size", "128"],
         step_work(784, [256, 256], 128)),
        ("784-1024-1024-10, batch 256", ["--data", npz, "--hidden", "1024", "1024",
                                         "--batch-size", "256"],
         step_work(784, [1024, 1024], 256)),
    ]


def train_seconds(args: list[str], threads: int, epochs: int, out: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    subprocess.run([sys.executable, "-m", "retrograd", "train", *args, "--epochs", str(epochs),
                    "--threads", str(threads), "--no-progress", "--overwrite", "--out", out],
                   check=True, capture_output=True, env=env)
    with open(os.path.join(out, "metrics.json")) as f:
        return json.load(f)["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name, options, work in configs(tmp):
            times = {(load, t): [] for load in ("idle", "busy") for t in (1, 2)}
            for _ in range(args.rounds):
                for load in ("idle", "busy"):
                    neighbour = subprocess.Popen([sys.executable, "-c", BUSY]) \
                        if load == "busy" else None
                    try:
                        for t in (1, 2):
                            times[load, t].append(train_seconds(
                                options, t, args.epochs, os.path.join(tmp, "run")))
                    finally:
                        if neighbour is not None:
                            neighbour.kill()
                            neighbour.wait()
            med = {k: statistics.median(v) for k, v in times.items()}
            rows.append((name, work, med))
            print(f"{name}: {work / 1e6:.1f} M multiply-adds per step; "
                  + ", ".join(f"{load} {t} thread(s) {s:.2f} s" for (load, t), s in med.items()),
                  file=sys.stderr)
    print(f"\n{args.epochs} epochs, median of {args.rounds} interleaved rounds "
          f"(training seconds from metrics.json)\n")
    print("| model, batch | M mult-adds/step | idle: 1 thr | idle: 2 thr | idle 2/1 "
          "| busy: 1 thr | busy: 2 thr | busy 2/1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, work, med in rows:
        print(f"| {name} | {work / 1e6:.1f} | {med['idle', 1]:.2f} s | {med['idle', 2]:.2f} s | "
              f"{med['idle', 2] / med['idle', 1]:.2f} | {med['busy', 1]:.2f} s | "
              f"{med['busy', 2]:.2f} s | {med['busy', 2] / med['busy', 1]:.2f} |")


if __name__ == "__main__":
    main()
