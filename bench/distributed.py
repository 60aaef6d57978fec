"""Data-parallel training throughput: `mpiexec -n 2` (one BLAS thread a rank) against one
process with two BLAS threads, MLP 784-256-256-10, float32, SGD lr 0.01 momentum 0.9, at global
batch 128 and 1024; the time the ranks spend in Allreduce; and one process with one BLAS thread,
the reference for parallel efficiency.

    python bench/distributed.py                  # both batch sizes (~1 min on 2 idle cores)
    python bench/distributed.py --batch 1024 --rounds 5

Methodology:
- This script is the driver: it runs `mpiexec -n 2 python bench/distributed.py --worker`, whose
  two ranks hold both configurations at once and take turns, round by round (the order rotated),
  so that both see the same machine. In the one-process segment rank 0 trains alone with two BLAS
  threads while rank 1 waits without spinning (a non-blocking barrier polled every 2 ms); in the
  two-rank segment each rank trains its half of every global batch with one BLAS thread and
  DistributedOptimizer averages the gradients (one Allreduce of the 269,322 gradients and the
  batch sizes a step). A third segment, one process with one BLAS thread, gives the parallel
  efficiency: two ranks against twice one thread.
- Segments: about 8,192 samples each (64 steps at batch 128, 8 at 1024), each after 50 ms of
  idle and one untimed step (OpenBLAS's threads spin after work); the first round is a warm-up.
  We report the median samples/s, the median and quartiles of the per-round ratios, and the
  share of the two-rank step spent inside Allreduce on each rank (waiting for the other rank
  included, so it also measures imbalance), and a bare Allreduce of the same buffer (the
  communication alone) for the cost model in docs/distributed.md.
- Data: MNIST-like, as bench/mlp.py: 8,192 samples with about 20% non-zero pixels, labels from a
  random linear teacher (dense uniform noise fills the optimizer state with denormals).
- OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed (re-exec) as in the other benchmarks.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (imports nothing heavy: the re-exec below must precede NumPy)

if __name__ == "__main__" and "--worker" not in sys.argv:
    common.reexec_without_blas_overrides(__file__)

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

SIZES = (784, 256, 256, 10)
LR, MOMENTUM = 0.01, 0.9
POOL, DENSITY = 8192, 0.2
SAMPLES_PER_SEGMENT = 8192
IMPLS = ("1 process, 2 threads", "1 process, 1 thread", "mpiexec -n 2")


def make_pool(seed: int, n: int = POOL) -> tuple[np.ndarray, np.ndarray]:
    """n MNIST-like samples (bench/mlp.py's recipe): ~20% non-zero pixels, teacher labels."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, SIZES[0]), dtype=np.float32)
    x *= rng.random((n, SIZES[0]), dtype=np.float32) < DENSITY
    teacher = rng.standard_normal((SIZES[0], SIZES[-1]), dtype=np.float32)
    y = np.argmax((x - x.mean(axis=0)) @ teacher, axis=1).astype(np.int64)
    return x, y


# ----------------------------------------------------------------------------------------------
# the worker: one rank of mpiexec -n 2


def _model(rg):
    nn = rg.nn
    rg.manual_seed(0)
    return nn.Sequential(nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(),
                         nn.Linear(SIZES[1], SIZES[2]), nn.ReLU(),
                         nn.Linear(SIZES[2], SIZES[3]))


def worker(args) -> None:
    from threadpoolctl import threadpool_limits

    rg = common.import_retrograd()
    import retrograd.distributed as dist

    dist.init()
    comm, rank, size = dist.get_comm(), dist.get_rank(), dist.get_world_size()
    if size != 2:
        raise SystemExit(f"the worker runs as 2 ranks, got {size}")
    x, y = make_pool(args.seed)
    cross_entropy = rg.nn.functional.cross_entropy

    model_d = _model(rg)
    dist.broadcast_parameters(model_d)
    opt_d = dist.DistributedOptimizer(rg.optim.SGD(model_d.parameters(), lr=LR,
                                                   momentum=MOMENTUM))
    model_s = _model(rg) if rank == 0 else None
    opt_s = rg.optim.SGD(model_s.parameters(), lr=LR, momentum=MOMENTUM) if rank == 0 else None

    def step_single(xb, yb):
        opt_s.zero_grad()
        cross_entropy(model_s(xb), yb).backward()
        opt_s.step()

    def step_distributed(xb, yb):
        opt_d.zero_grad()
        cross_entropy(model_d(xb), yb).backward()
        opt_d.step(local_batch_size=len(yb))

    def idle_barrier():
        """A barrier that sleeps instead of spinning (MPICH's blocking calls busy-poll)."""
        request = comm.Ibarrier()
        while not request.Test():
            time.sleep(0.002)

    results = {"rank": rank, "batches": {}}
    for batch in args.batch:
        steps = max(SAMPLES_PER_SEGMENT // batch, 4)
        times = {name: [] for name in IMPLS}
        comm_share = {0: [], 1: []}
        comm_per_step = []
        for r in range(-1, args.rounds):
            k = r % len(IMPLS)
            for name in IMPLS[k:] + IMPLS[:k]:
                first = ((r + 1) * steps * batch) % POOL
                idx = [np.arange(first + j * batch, first + (j + 1) * batch) % POOL
                       for j in range(steps + 1)]
                gc.collect()
                if name.startswith("1 process"):
                    if rank == 0:
                        data = [(rg.from_numpy(x[i]), rg.from_numpy(y[i])) for i in idx]
                        threads = 2 if name.endswith("2 threads") else 1
                        with threadpool_limits(limits=threads, user_api="blas"):
                            time.sleep(args.pause)
                            step_single(*data[0])
                            t0 = time.perf_counter()
                            for xb, yb in data[1:]:
                                step_single(xb, yb)
                            dt = time.perf_counter() - t0
                        if r >= 0:
                            times[name].append(dt)
                    idle_barrier()
                    continue
                data = [(rg.from_numpy(np.ascontiguousarray(x[i[rank::2]])),
                         rg.from_numpy(y[i[rank::2]])) for i in idx]
                with threadpool_limits(limits=1, user_api="blas"):
                    idle_barrier()
                    time.sleep(args.pause)
                    step_distributed(*data[0])
                    comm.Barrier()
                    a0 = opt_d.allreduce_seconds
                    t0 = time.perf_counter()
                    for xb, yb in data[1:]:
                        step_distributed(xb, yb)
                    dt = time.perf_counter() - t0
                    spent = opt_d.allreduce_seconds - a0
                both = comm.gather((dt, spent), root=0)
                if rank == 0 and r >= 0:
                    times[name].append(max(d for d, _ in both))
                    for q, (d, s) in enumerate(both):
                        comm_share[q].append(s / d)
                    comm_per_step.append(both[0][1] / steps)
        results["batches"][batch] = {"steps": steps, "times": times, "comm_share": comm_share,
                                     "comm_per_step": comm_per_step}
    results["bare_allreduce"] = bare_allreduce(comm, opt_d, model_d, rank)
    cpu = os.times()
    results["cpu_seconds"] = sum(comm.gather(cpu.user + cpu.system, root=0) or [])
    if rank == 0:
        print("RESULT " + json.dumps(results), flush=True)


def bare_allreduce(comm, opt_d, model, rank: int) -> dict:
    """Seconds of an Allreduce alone (both ranks ready: a Barrier first) of the gradient buffer
    and of a range of sizes, for the latency + bandwidth fit of the cost model."""
    from mpi4py import MPI

    n_grad = sum(p.numel() for p in model.parameters())
    out = {"n_grad": n_grad}
    for n in (1, 1_000, 10_000, 100_000, n_grad, 1_000_000, 4_000_000):
        buf = np.ones(n, dtype=np.float32)
        samples = []
        reps = 50 if n <= n_grad else 20
        for _ in range(reps + 3):
            comm.Barrier()
            t0 = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            samples.append(time.perf_counter() - t0)
        out[str(n)] = statistics.median(samples[3:])
    return out


# ----------------------------------------------------------------------------------------------
# the driver


def _busy() -> float | None:
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")


def _cpu_used() -> float:
    t = os.times()
    return t.user + t.system


def driver(args) -> None:
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(mpiexec):
        mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        raise SystemExit("mpiexec not found: pip install 'retrograd[mpi]'")
    cmd = [mpiexec, "-n", "2", sys.executable, os.path.abspath(__file__), "--worker",
           "--batch", ",".join(map(str, args.batch)), "--rounds", str(args.rounds),
           "--seed", str(args.seed), "--pause", str(args.pause)]
    busy0, cpu0, wall0 = _busy(), _cpu_used(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    busy1, cpu1, wall1 = _busy(), _cpu_used(), time.perf_counter()
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"the MPI run failed ({proc.returncode})")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    res = json.loads(line[len("RESULT "):])
    # everything but the driver and the two ranks (mpiexec's and hydra's proxies' polling is
    # counted as others: a few ms)
    share = None
    if busy0 is not None and busy1 is not None:
        others = max(0.0, busy1 - busy0 - (cpu1 - cpu0) - res["cpu_seconds"])
        share = others / ((wall1 - wall0) * (os.cpu_count() or 1))
    print("\n".join(report(res, args, share)))


def report(res: dict, args, load_share: float | None) -> list[str]:
    import mpi4py
    from mpi4py import MPI

    rg = common.import_retrograd()
    load = "unknown" if load_share is None else f"{load_share:.0%}"
    details = [
        f"MLP {'-'.join(map(str, SIZES))}, float32, SGD lr {LR} momentum {MOMENTUM}; "
        f"{args.rounds} rounds after a warm-up, ~{SAMPLES_PER_SEGMENT} samples a segment",
        f"machine: {common.cpu_name()}, {os.cpu_count()} logical CPUs; other processes "
        f"and steal took {load} of the CPUs' time during the run (a shared machine)",
        f"numpy {np.__version__}, retrograd {rg.__version__}, mpi4py {mpi4py.__version__}, "
        f"{MPI.Get_library_version().splitlines()[0].strip()}",
    ]
    unset = os.environ.get(common.UNSET_MARK)
    if unset:
        details.append(f"re-executed without {unset} (they slow NumPy's OpenBLAS down)")
    lines = common.report_header(
        "Data-parallel MLP training: mpiexec -n 2 (1 BLAS thread each) vs 1 process "
        "(2 BLAS threads), samples/s", __file__, details, [])
    lines += ["| global batch | 1 process, 2 threads | 1 process, 1 thread | mpiexec -n 2 | "
              "mpiexec -n 2 / 1 process 2 threads (IQR) | parallel efficiency: mpiexec -n 2 / "
              "(2 x 1 thread) (IQR) | time in Allreduce, rank 0 / rank 1 (waiting included) | "
              "Allreduce per step | bare Allreduce / step |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    bare = res["bare_allreduce"]
    t_bare = bare[str(bare["n_grad"])]
    for batch, b in res["batches"].items():
        batch = int(batch)
        n = b["steps"] * batch
        t1, t1s, t2 = (b["times"][name] for name in IMPLS)
        rate1, rate1s, rate2 = (n / statistics.median(t) for t in (t1, t1s, t2))
        ratio = common.ratio_stats(t1, t2)  # time of one process / time of two ranks
        efficiency = common.ratio_stats(t1s, [2 * t for t in t2])
        share0 = statistics.median(b["comm_share"]["0"])
        share1 = statistics.median(b["comm_share"]["1"])
        per_step = statistics.median(b["comm_per_step"])
        step = statistics.median(t2) / b["steps"]
        lines.append(f"| {batch} | {common.fmt_rate(rate1)} | {common.fmt_rate(rate1s)} | "
                     f"{common.fmt_rate(rate2)} | {common.fmt_ratio(ratio)} | "
                     f"{common.fmt_ratio(efficiency)} | {share0:.1%} / {share1:.1%} | "
                     f"{per_step * 1e3:.2f} ms | {t_bare / step:.1%} |")
    n_grad = bare["n_grad"]
    t_grad = bare[str(n_grad)]
    ring_bytes = 2 * (2 - 1) / 2 * n_grad * 4
    lines += ["", "Bare Allreduce (float32, both ranks ready; median): "
              + ", ".join(f"{int(k):,} floats {v * 1e6:,.1f} us" for k, v in bare.items()
                          if k != "n_grad")
              + f". The gradient buffer ({n_grad:,} floats, {n_grad * 4 / 1e6:.2f} MB) takes "
              f"{t_grad * 1e3:.3f} ms: {ring_bytes / t_grad / 1e9:.1f} GB/s of ring-allreduce "
              "traffic (2(N-1)/N x bytes / time) through shared memory.", ""]
    lines += cost_model(res)
    return lines


# the links of the cost model: (name, bytes/s, assumed per-message latency)
LINKS = (("25 Gb/s Ethernet (TCP, 10 us a message)", 25e9 / 8, 10e-6),
         ("100 Gb/s (RDMA, 3 us a message)", 100e9 / 8, 3e-6))
RANKS = (2, 8, 64, 512)


def cost_model(res: dict) -> list[str]:
    """The step of one rank, t = o + c b + t_ar(N), calibrated here; predictions for N ranks.

    o (per step, whatever the batch: the optimizer's update of every weight, Python overhead,
    the copies into and out of the flat buffer) and c (forward + backward per row, one thread)
    come from the two-rank steps minus their Allreduce time, at two local batch sizes.
    t_ar(N) = 2 (N - 1) alpha + 2 (N - 1) / N x bytes / bandwidth: a ring Allreduce, one rank per
    node, each link at the nominal rate."""
    points = []
    for batch, b in res["batches"].items():
        step = statistics.median(b["times"]["mpiexec -n 2"]) / b["steps"]
        points.append((int(batch) // 2, step - statistics.median(b["comm_per_step"])))
    if len(points) < 2:
        return ["(the cost model needs two batch sizes)", ""]
    (b1, t1), (b2, t2) = sorted(points)[0], sorted(points)[-1]
    c = (t2 - t1) / (b2 - b1)
    o = t1 - c * b1
    nbytes = 4 * (res["bare_allreduce"]["n_grad"] + 4)
    lines = [f"Cost model (docs/distributed.md): one rank's step t = o + c b + t_ar(N), with o = "
             f"{o * 1e3:.2f} ms and c = {c * 1e6:.1f} us a row, fitted to the two-rank steps "
             f"(local batches {b1} and {b2}) less their Allreduce; t_ar(N) = 2(N-1) alpha + "
             f"2(N-1)/N x {nbytes / 1e6:.2f} MB / bandwidth (ring). Predicted samples/s:", "",
             "| link | global batch | " + " | ".join(f"N = {n}" for n in RANKS) + " |",
             "|---|---|" + "---:|" * len(RANKS)]
    for name, bandwidth, alpha in LINKS:
        for label, per_rank in (("1024 (strong scaling)", None),
                                ("128 a rank (weak scaling)", 128)):
            cells = []
            for n in RANKS:
                rows = per_rank if per_rank is not None else 1024 / n
                t_ar = 2 * (n - 1) * alpha + 2 * (n - 1) / n * nbytes / bandwidth
                t = o + c * rows + t_ar
                cells.append(f"{rows * n / t:,.0f} ({t_ar / t:.0%} comm)")
            lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=lambda s: [int(v) for v in s.split(",")],
                        default=[128, 1024], help="global batch sizes (default 128,1024)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pause", type=float, default=0.05,
                        help="seconds of idle before each timed segment (default 0.05)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keep-blas-env", action="store_true",
                        help="do not re-execute without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE")
    args = parser.parse_args()
    if args.worker:
        worker(args)
    else:
        driver(args)


if __name__ == "__main__":
    main()
