"""The main job on two MPI ranks against one process, at the command line: `mpiexec -n 2
retrograd train` (one BLAS thread a rank, the default under MPI: cores // ranks on the node)
against `retrograd train` (two BLAS threads, the default for this model size), MLP
784-256-256-10, float32, SGD lr 0.01 momentum 0.9, at global batch 128 and 1024.

    python bench/distributed_cli.py                      # ~3 min on 2 idle cores
    python bench/distributed_cli.py --batch 1024 --rounds 3

Methodology:
- Data: MNIST-like (bench/mlp.py's recipe, as bench/distributed.py): 10,240 rows with about 20%
  non-zero pixels and labels from a random linear teacher, written once as an .npz; the job
  holds out its test split (8,191 training rows) and standardizes the features. Dense uniform
  noise would fill the momentum buffers with denormals (DESIGN.md's trap): the report gives the
  share of denormal floats in the final checkpoint's momentum buffers.
- Each run is the whole command (`--epochs 8 --validation-fraction 0 --schedule none
  --weight-decay 0`); its throughput is the training rows over the median of epochs 2-8's training
  seconds (history.csv: the epoch's steps, without the checkpoint write). The whole command's
  wall time (start-up, data, checkpoints, results and figures) is reported beside it.
- Rounds interleave the two commands, the order alternating, so that both see the same
  machine; we report the medians and the quartiles of the per-round ratios.
- OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed (re-exec) as in the other benchmarks.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (imports nothing heavy: the re-exec below must precede NumPy)

if __name__ == "__main__":
    common.reexec_without_blas_overrides(__file__)

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

HIDDEN = (256, 256)
ROWS, DENSITY, EPOCHS = 10240, 0.2, 8
MODES = ("1 process", "mpiexec -n 2")
TRAIN = ["--hidden", *map(str, HIDDEN), "--optimizer", "sgd", "--lr", "0.01", "--momentum",
         "0.9", "--weight-decay", "0", "--schedule", "none", "--validation-fraction", "0",
         "--epochs", str(EPOCHS), "--no-progress"]


def make_data(path: str, seed: int) -> None:
    """bench/mlp.py's MNIST-like rows: ~20% non-zero pixels, labels from a linear teacher."""
    rng = np.random.default_rng(seed)
    x = rng.random((ROWS, 784), dtype=np.float32)
    x *= rng.random((ROWS, 784), dtype=np.float32) < DENSITY
    teacher = rng.standard_normal((784, 10), dtype=np.float32)
    y = np.argmax((x - x.mean(axis=0)) @ teacher, axis=1).astype(np.int64)
    np.savez(path, x=x, y=y)


def mpiexec() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = beside if os.path.exists(beside) else shutil.which("mpiexec")
    if found is None:
        raise SystemExit("mpiexec not found: pip install 'retrograd[mpi]'")
    return found


def run(mode: str, batch: int, data: str, out: str) -> dict:
    """One whole command; its training samples/s (median epoch 2..) and wall seconds."""
    command = [sys.executable, "-m", "retrograd", "train", "--data", data, "--batch-size",
               str(batch), *TRAIN, "--out", out, "--overwrite"]
    if mode != "1 process":
        command = [mpiexec(), "-n", "2", *command]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_"))}
    t0 = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rows = [line.split(",") for line in open(os.path.join(out, "history.csv")).read().split()]
    column = rows[0].index("seconds")
    seconds = statistics.median(float(r[column]) for r in rows[2:])  # epochs 2..
    n_train = json.load(open(os.path.join(out, "metrics.json")))["n_train"]
    return {"rate": n_train / seconds, "wall": wall, "n_train": n_train}


def denormal_share(out: str) -> float:
    """Share of the momentum buffers' floats that are denormal (0 < |v| < float32 tiny)."""
    from retrograd.train.checkpoint import load_checkpoint

    state = load_checkpoint(os.path.join(out, "checkpoint.npz"))["optimizer"]["state"]
    buffers = [np.asarray(s["momentum_buffer"]) for s in state.values()
               if s.get("momentum_buffer") is not None]
    total = sum(b.size for b in buffers)
    tiny = np.finfo(np.float32).tiny
    return sum(int(np.count_nonzero((b != 0) & (np.abs(b) < tiny))) for b in buffers) / total


def busy_seconds() -> float | None:
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    t = os.times()  # the commands are waited-for children: their CPU time (ranks included)
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", default="128,1024",
                        help="global batch sizes, comma-separated (default: 128,1024)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data (default: 0)")
    args = parser.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    results = {b: {m: [] for m in MODES} for b in batches}
    denormals = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "mnist_like.npz")
        make_data(data, args.seed)
        busy0, own0, wall0 = busy_seconds(), own_seconds(), time.perf_counter()
        for r in range(args.rounds):
            for batch in batches:
                order = MODES if r % 2 == 0 else MODES[::-1]
                for mode in order:
                    out = os.path.join(tmp, f"{batch}-{mode.replace(' ', '')}")
                    results[batch][mode].append(run(mode, batch, data, out))
                    denormals[batch, mode] = denormal_share(out)
                print(f"round {r + 1}/{args.rounds}, batch {batch}: " + ", ".join(
                    f"{m} {results[batch][m][-1]['rate']:,.0f}/s" for m in MODES),
                    file=sys.stderr)
        busy1, own1, wall1 = busy_seconds(), own_seconds(), time.perf_counter()
    load = None
    if busy0 is not None and busy1 is not None:
        load = max(0.0, (busy1 - busy0) - (own1 - own0)) / ((wall1 - wall0) *
                                                             (os.cpu_count() or 1))
    print("\n".join(report(results, denormals, args, load)))


def report(results, denormals, args, load) -> list[str]:
    import mpi4py

    rg = common.import_retrograd()
    from retrograd.train.threads import default_threads

    n_train = next(iter(results.values()))["1 process"][0]["n_train"]
    threads = {b: (default_threads(784, list(HIDDEN), b),
                   default_threads(784, list(HIDDEN), b // 2, ranks_here=2)) for b in results}
    details = [
        f"`retrograd train --data mnist_like.npz --batch-size B {' '.join(TRAIN)}`, alone and "
        f"under `mpiexec -n 2`; {n_train:,} training rows (MNIST-like, 784 features); "
        f"{args.rounds} interleaved rounds",
        f"machine: {common.cpu_name()}, {os.cpu_count()} logical CPUs; other processes and "
        f"steal took {'an unknown share' if load is None else f'{load:.0%}'} of the CPUs' time "
        "during the run (a shared machine)",
        f"numpy {np.__version__}, retrograd {rg.__version__}, mpi4py {mpi4py.__version__}",
    ]
    unset = os.environ.get(common.UNSET_MARK)
    if unset:
        details.append(f"re-executed without {unset} (they slow NumPy's OpenBLAS down)")
    lines = common.report_header(
        "The main job on 2 ranks: `mpiexec -n 2 retrograd train` vs `retrograd train`, "
        "training samples/s", __file__, details, [])
    lines += ["| global batch | BLAS threads: 1 process / each rank | 1 process | "
              "mpiexec -n 2 | mpiexec -n 2 / 1 process (IQR) | whole command, 1 process / "
              "mpiexec -n 2 (s) | denormal momentum floats |", "|---:|---|---:|---:|---:|---|---|"]
    for batch, by_mode in results.items():
        one, two = by_mode["1 process"], by_mode["mpiexec -n 2"]
        ratio = common.ratio_stats([t["rate"] for t in two], [t["rate"] for t in one])
        walls = " / ".join(f"{statistics.median(t['wall'] for t in ts):.1f}" for ts in (one, two))
        den = " / ".join(f"{denormals[batch, m]:.1%}" for m in MODES)
        lines.append(f"| {batch} | {threads[batch][0]} / {threads[batch][1]} | "
                     f"{common.fmt_rate(statistics.median(t['rate'] for t in one))} | "
                     f"{common.fmt_rate(statistics.median(t['rate'] for t in two))} | "
                     f"{common.fmt_ratio(ratio)} | {walls} | {den} |")
    return lines + [""]


if __name__ == "__main__":
    main()
