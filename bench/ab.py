"""A/B of two retrograd source trees in one process: the MLP training step of bench/mlp.py, the
loss calls of bench/losses.py and the convolution layers of bench/conv.py (forward + backward),
old commit against this checkout, interleaved round by round.

Both trees are imported side by side under different package names (retrograd_a, retrograd_b),
so they share one interpreter, one NumPy, one BLAS pool and the machine's state at every moment:
the ratio of their times measures the code, not the drift of a shared machine. Each round runs
a segment of A and a segment of B on the same batches, the order alternating.

    python bench/ab.py --a-rev 3ddf9da                   # A: that commit, B: this checkout
    python bench/ab.py --a-src /path/to/old/src          # A: any source tree
    python bench/ab.py --a-rev 3ddf9da --what losses --rounds 60
    python bench/ab.py --a-rev 4e56d02 --what conv --rounds 15   # bench/conv.py's layers
    python bench/ab.py --a-rev 3ddf9da --what mlp --compiled   # the steps under rg.compile

Reported per workload: median time per step (or call) of each tree, and the median of the
per-round speed ratios B/A (A's time / B's time; above 1 means B is faster) with their
interquartile range. Before timing, both trees train from the same weights on the same batches
for a few steps and must agree (a check that they do the same work).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (imports nothing heavy: the re-exec below must precede NumPy)

if __name__ == "__main__":
    common.reexec_without_blas_overrides(__file__)

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = (784, 256, 256, 10)  # bench/mlp.py's model, data and optimizers
SGD_LR, MOMENTUM = 0.01, 0.9
ADAM_LR = 1e-3
POOL, DENSITY = 8192, 0.2
LOSS_CASES = (("cross_entropy (1024, 10)", (1024, 10), "ce"),
              ("cross_entropy (256, 1000)", (256, 1000), "ce"),
              ("cross_entropy (256, 1000), smoothing 0.1 + weights", (256, 1000), "smooth"),
              ("focal_loss gamma 2 (1024, 10)", (1024, 10), "focal"))


def load_tree(name: str, src: str):
    """Import the retrograd package under `src` as the top-level package `name`."""
    pkg = os.path.join(src, "retrograd")
    spec = importlib.util.spec_from_file_location(name, os.path.join(pkg, "__init__.py"),
                                                  submodule_search_locations=[pkg])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def export_rev(rev: str, dest: str) -> str:
    """src/ of commit `rev` of this repository, extracted under dest; returns its path."""
    repo = os.path.dirname(HERE)
    archive = subprocess.run(["git", "-C", repo, "archive", rev, "src/retrograd"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    return os.path.join(dest, "src")


def make_pool(seed: int):
    """bench/mlp.py's MNIST-like pool: ~20% non-zero pixels, labels from a linear teacher."""
    rng = np.random.default_rng(seed)
    x = rng.random((POOL, SIZES[0]), dtype=np.float32)
    x *= rng.random((POOL, SIZES[0]), dtype=np.float32) < DENSITY
    teacher = rng.standard_normal((SIZES[0], SIZES[-1]), dtype=np.float32)
    y = np.argmax((x - x.mean(axis=0)) @ teacher, axis=1).astype(np.int64)
    return x, y


def batches(pool, batch: int, first: int, count: int) -> list:
    x, y = pool
    out = []
    for j in range(first, first + count):
        start = (j * batch) % len(x)
        idx = np.arange(start, start + batch) % len(x)
        out.append((np.ascontiguousarray(x[idx]), y[idx]))
    return out


class MLP:
    """bench/mlp.py's retrograd step on one tree (under `rg.compile` when `compiled`)."""

    def __init__(self, rg, state: dict, optimizer: str, compiled: bool = False):
        nn = rg.nn
        self.rg = rg
        self.model = nn.Sequential(nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(),
                                   nn.Linear(SIZES[1], SIZES[2]), nn.ReLU(),
                                   nn.Linear(SIZES[2], SIZES[3]))
        self.model.load_state_dict(state)
        params = self.model.parameters()
        self.opt = rg.optim.SGD(params, lr=SGD_LR, momentum=MOMENTUM) if optimizer == "sgd" \
            else rg.optim.Adam(params, lr=ADAM_LR)
        if compiled:
            self.step = rg.compile(self.step)

    def prepare(self, batch_list):
        return [(self.rg.from_numpy(x), self.rg.from_numpy(y)) for x, y in batch_list]

    def step(self, batch):
        x, y = batch
        self.opt.zero_grad()
        loss = self.rg.nn.functional.cross_entropy(self.model(x), y)
        loss.backward()
        self.opt.step()
        return loss


def initial_state(rg, seed: int) -> dict:
    """The seeded initial weights (tree `rg`'s Linear init), as arrays."""
    rg.manual_seed(seed)
    nn = rg.nn
    model = nn.Sequential(nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(),
                          nn.Linear(SIZES[1], SIZES[2]), nn.ReLU(),
                          nn.Linear(SIZES[2], SIZES[3]))
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def check_mlp(trees: dict, pool, optimizer: str, seed: int, compiled: bool) -> float:
    """Max relative difference of the two trees' losses over 5 steps from the same weights."""
    state = initial_state(trees["A"], seed)
    losses = {}
    for name, rg in trees.items():
        mlp = MLP(rg, state, optimizer, compiled)
        losses[name] = [mlp.step(b).item() for b in mlp.prepare(batches(pool, 128, 0, 5))]
    a, b = np.array(losses["A"]), np.array(losses["B"])
    return float(np.max(np.abs(a - b) / np.abs(a)))


def bench_mlp(trees: dict, pool, batch: int, steps: int, rounds: int, optimizer: str,
              seed: int, pause: float, compiled: bool) -> dict[str, list[float]]:
    state = initial_state(trees["A"], seed)
    mlps = {name: MLP(rg, state, optimizer, compiled) for name, rg in trees.items()}
    for mlp in mlps.values():  # warm-up: caches, allocator, optimizer state
        for b in mlp.prepare(batches(pool, batch, 0, steps)):
            mlp.step(b)

    def make_segment(name: str, r: int):
        mlp = mlps[name]
        data = mlp.prepare(batches(pool, batch, steps * (r + 1), steps))

        def run():
            for b in data:
                mlp.step(b)

        return (lambda: mlp.step(data[0])), run

    times = common.interleaved(list(trees), rounds, make_segment, pause=pause)
    return {name: [t / steps for t in ts] for name, ts in times.items()}


def loss_call(rg, kind: str, shape, seed: int):
    rng = np.random.default_rng(seed)
    logits = (2 * rng.standard_normal(shape)).astype(np.float32)
    labels = rng.integers(0, shape[1], size=shape[0], dtype=np.int64)
    weight = rg.from_numpy((0.5 + rng.random(shape[1])).astype(np.float32))
    x, y, F = rg.tensor(logits, requires_grad=True), rg.from_numpy(labels), rg.nn.functional

    def call():
        if kind == "ce":
            loss = F.cross_entropy(x, y)
        elif kind == "smooth":
            loss = F.cross_entropy(x, y, weight=weight, label_smoothing=0.1)
        else:
            loss = F.focal_loss(x, y, gamma=2.0)
        x.grad = None
        loss.backward()
        return loss

    return call, x


def check_losses(trees: dict, seed: int) -> float:
    worst = 0.0
    for _, shape, kind in LOSS_CASES:
        out = {}
        for name, rg in trees.items():
            call, x = loss_call(rg, kind, shape, seed)
            out[name] = (call().item(), x.grad.numpy().copy())
        (la, ga), (lb, gb) = out["A"], out["B"]
        worst = max(worst, abs(la - lb) / abs(la),
                    float(np.max(np.abs(ga - gb)) / np.max(np.abs(ga))))
    return worst


def bench_loss(trees: dict, kind: str, shape, rounds: int, segment_s: float, seed: int,
               pause: float) -> dict[str, list[float]]:
    calls = {name: loss_call(rg, kind, shape, seed)[0] for name, rg in trees.items()}
    return bench_calls(calls, rounds, segment_s, pause)


# bench/conv.py's convolutions: (label, layer, in, out, kernel, spatial, stride, padding)
CONV_CASES = [("Conv1d(25, 25, 3, s2, p1) on (128, 25, 19)", "Conv1d", 25, 25, 3, (19,), 2, 1),
              ("Conv1d(64, 64, 5, p2) on (128, 64, 64)", "Conv1d", 64, 64, 5, (64,), 1, 2),
              ("Conv2d(32, 32, 3, p1) on (128, 32, 8, 8)", "Conv2d", 32, 32, 3, (8, 8), 1, 1),
              ("Conv2d(16, 32, 3, p1) on (128, 16, 16, 16)", "Conv2d", 16, 32, 3, (16, 16), 1,
               1)]


def conv_call(rg, case, seed: int):
    """One forward + backward of a convolution layer (input, weight and bias gradients)."""
    _, layer_name, cin, cout, kernel, spatial, stride, padding = case
    rng = np.random.default_rng(seed)
    out = tuple((n + 2 * padding - kernel) // stride + 1 for n in spatial)
    x = rg.tensor(rng.standard_normal((128, cin, *spatial)).astype(np.float32),
                  requires_grad=True)
    g = rg.tensor(rng.standard_normal((128, cout, *out)).astype(np.float32))
    rg.manual_seed(seed)
    layer = getattr(rg.nn, layer_name)(cin, cout, kernel, stride=stride, padding=padding)

    def call():
        layer.zero_grad()
        x.grad = None
        layer(x).backward(g)

    return call, lambda: [x.grad.numpy(), layer.weight.grad.numpy(), layer.bias.grad.numpy()]


def check_convs(trees: dict, seed: int) -> float:
    worst = 0.0
    for case in CONV_CASES:
        grads = {}
        for name, rg in trees.items():
            call, result = conv_call(rg, case, seed)
            call()
            grads[name] = result()
        for a, b in zip(grads["A"], grads["B"], strict=True):
            worst = max(worst, float(np.max(np.abs(a - b)) / np.max(np.abs(a))))
    return worst


def bench_calls(calls: dict, rounds: int, segment_s: float, pause: float) -> dict:
    """Interleaved segments of each tree's call, about segment_s long (by A's speed)."""
    for call in calls.values():
        for _ in range(20):
            call()
    t0 = time.perf_counter()
    for _ in range(20):
        calls["A"]()
    k = max(5, round(segment_s / ((time.perf_counter() - t0) / 20)))

    def make_segment(name: str, r: int):
        call = calls[name]

        def run():
            for _ in range(k):
                call()

        return call, run

    times = common.interleaved(list(calls), rounds, make_segment, warmup_rounds=1, pause=pause)
    return {name: [t / k for t in ts] for name, ts in times.items()}


def row(label: str, times: dict[str, list[float]]) -> str:
    med = {name: statistics.median(ts) for name, ts in times.items()}
    ratio = common.ratio_stats(times["A"], times["B"])  # A's time / B's: B's speed relative
    return (f"| {label} | {common.fmt_us(med['A'])} | {common.fmt_us(med['B'])} "
            f"| {common.fmt_ratio(ratio)} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    old = parser.add_mutually_exclusive_group(required=True)
    old.add_argument("--a-rev", help="tree A: this commit of the repository")
    old.add_argument("--a-src", help="tree A: a src/ directory holding retrograd/")
    parser.add_argument("--b-src", default=os.path.join(os.path.dirname(HERE), "src"),
                        help="tree B (default: this checkout's src/)")
    parser.add_argument("--what", default="mlp,losses",
                        help="a comma-separated subset of mlp, losses, conv (default mlp,losses)")
    parser.add_argument("--optimizer", default="sgd", help="sgd, adam or sgd,adam")
    parser.add_argument("--compiled", action="store_true",
                        help="time the MLP steps under retrograd.compile (both trees)")
    parser.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")],
                        default=[32, 128, 1024])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--segment-ms", type=float, default=150.0,
                        help="length of a loss segment (default 150 ms)")
    common.add_harness_args(parser, "BLAS threads (default 2)", pause=0.02)
    args = parser.parse_args(argv)
    what = set(args.what.split(","))

    from threadpoolctl import threadpool_limits
    limits = threadpool_limits(limits=args.threads, user_api="blas")  # noqa: F841 (kept alive)
    with tempfile.TemporaryDirectory() as tmp:
        a_src = export_rev(args.a_rev, tmp) if args.a_rev else args.a_src
        trees = {"A": load_tree("retrograd_a", a_src), "B": load_tree("retrograd_b", args.b_src)}
    print(f"A: {args.a_rev or args.a_src}   B: {args.b_src}")
    print(f"machine: {common.cpu_name()}, {os.cpu_count()} logical CPUs; numpy {np.__version__};"
          f" BLAS threads {args.threads}")
    pool = make_pool(args.seed)
    lines = ["| workload | A (us) | B (us) | B / A speed |", "|:---|---:|---:|---:|"]
    t_start, load = time.perf_counter(), common.OtherLoad()
    if "mlp" in what:
        for opt in args.optimizer.split(","):
            diff = check_mlp(trees, pool, opt, args.seed, args.compiled)
            print(f"check ({opt}): max relative difference of A's and B's losses over 5 steps "
                  f"{diff:.1e}")
            if diff > 1e-5:
                print("A and B do not do the same work")
                return 1
            for b in args.batch_sizes:
                steps = max(4, -(-16384 // b))
                times = bench_mlp(trees, pool, b, steps, args.rounds, opt, args.seed, args.pause,
                                  args.compiled)
                kind = "compiled MLP step" if args.compiled else "MLP step"
                lines.append(row(f"{kind}, {opt}, batch {b}", times))
                print(lines[-1], flush=True)
    if "losses" in what:
        diff = check_losses(trees, args.seed)
        print(f"check (losses): max relative difference of losses and gradients {diff:.1e}")
        if diff > 1e-6:
            print("A and B do not compute the same losses")
            return 1
        for label, shape, kind in LOSS_CASES:
            times = bench_loss(trees, kind, shape, args.rounds, args.segment_ms / 1e3, args.seed,
                               args.pause)
            lines.append(row(f"{label}, fwd+bwd", times))
            print(lines[-1], flush=True)
    if "conv" in what:
        diff = check_convs(trees, args.seed)
        print(f"check (conv): max relative difference of the gradients {diff:.1e}")
        if diff > 1e-4:
            print("A and B do not compute the same convolution gradients")
            return 1
        for case in CONV_CASES:
            calls = {name: conv_call(rg, case, args.seed)[0] for name, rg in trees.items()}
            times = bench_calls(calls, args.rounds, args.segment_ms / 1e3, args.pause)
            lines.append(row(f"{case[0]}, fwd+bwd", times))
            print(lines[-1], flush=True)
    print()
    print(f"{args.rounds} interleaved rounds per workload; {time.perf_counter() - t_start:.0f} s;"
          f" {load.describe()}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
