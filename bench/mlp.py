"""Training throughput of an MLP 784-256-256-10: retrograd vs hand-written NumPy vs PyTorch.

The three implementations train the same model (ReLU, cross-entropy on logits, SGD with lr 0.01
and momentum 0.9, float32) from the same initial weights on the same batches, so they do the same
work; `--check` verifies that by comparing their loss trajectories and weight updates.

    python bench/mlp.py                      # the benchmark (~2 min on 2 idle cores)
    python bench/mlp.py --check              # equal-work check only (a few seconds)
    python bench/mlp.py --profile            # cProfile of retrograd's training step

Methodology:
- The data is MNIST-like: a fixed, seeded pool of 8192 samples with about 20% non-zero pixels
  (a random mask times U(0, 1)), labels from a fixed random linear "teacher". Dense uniform noise
  would kill ReLUs and fill the momentum buffers with denormals, slowing every library 2-4x.
- Implementations are interleaved: after a warm-up, each of R rounds runs K training steps of
  every implementation on the same K batches, the order rotated from round to round. We report
  the median samples/s per implementation and the median of the per-round ratios (with their
  interquartile range), which cancels most of the drift of a shared, noisy machine.
- NumPy's BLAS and torch both use 2 threads (`--threads`). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
  slow NumPy's OpenBLAS down; if set, the script re-executes itself without them and says so.
  Flushing denormals to zero is left off (the default) for all three.
"""

from __future__ import annotations

import argparse
import os
import sys

_BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_UNSET_MARK = "RETROGRAD_BENCH_UNSET"  # what the re-exec removed, for the report
_COMMAND_MARK = "RETROGRAD_BENCH_COMMAND"  # the command as the user typed it


def _reexec_without_blas_overrides() -> None:
    """Replace this process by the same command without the OpenBLAS overrides (before NumPy
    is imported: OpenBLAS reads them when it loads)."""
    found = [k for k in _BLAS_OVERRIDES if k in os.environ]
    if not found or "--keep-blas-env" in sys.argv:
        return
    env = {k: v for k, v in os.environ.items() if k not in _BLAS_OVERRIDES}
    env[_UNSET_MARK] = " ".join(f"{k}={os.environ[k]}" for k in found)
    env.setdefault(_COMMAND_MARK, _typed_command())
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env)


def _typed_command() -> str:
    import shlex

    script = os.path.relpath(os.path.abspath(__file__))
    if script.startswith(".."):
        script = os.path.abspath(__file__)
    python = os.path.relpath(sys.executable) if not sys.executable.startswith("/usr") \
        else os.path.basename(sys.executable)
    if python.startswith(".."):
        python = sys.executable
    return shlex.join([python, script, *sys.argv[1:]])


if __name__ == "__main__":
    _reexec_without_blas_overrides()

# Imported after the re-exec above, so that OpenBLAS never sees the overrides.
import cProfile  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

try:
    import retrograd as rg
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    import retrograd as rg

SIZES = (784, 256, 256, 10)
LR, MOMENTUM = 0.01, 0.9
POOL, DENSITY = 8192, 0.2
IMPLS = ("retrograd", "NumPy", "PyTorch")


# ----------------------------------------------------------------------------------------------
# data and initial weights


def make_pool(seed: int, n: int = POOL) -> tuple[np.ndarray, np.ndarray]:
    """n MNIST-like samples: ~20% non-zero pixels in (0, 1), labels from a random linear
    teacher applied to the centered inputs; float32 inputs, int64 labels."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, SIZES[0]), dtype=np.float32)
    x *= rng.random((n, SIZES[0]), dtype=np.float32) < DENSITY
    teacher = rng.standard_normal((SIZES[0], SIZES[-1]), dtype=np.float32)
    y = np.argmax((x - x.mean(axis=0)) @ teacher, axis=1).astype(np.int64)
    return x, y


def initial_params(seed: int) -> list[np.ndarray]:
    """[W1, b1, W2, b2, W3, b3] with torch's Linear init (retrograd's, seeded), as copies."""
    rg.manual_seed(seed)
    model = _retrograd_model()
    return [p.numpy().copy() for p in model.parameters()]


def batch_list(x: np.ndarray, y: np.ndarray, batch: int, first: int, count: int):
    """Batches first .. first+count-1 of an endless pass over the pool, as contiguous arrays."""
    n = len(x)
    out = []
    for j in range(first, first + count):
        start = (j * batch) % n
        if start + batch <= n:  # a view, no copy
            out.append((x[start:start + batch], y[start:start + batch]))
        else:
            idx = np.arange(start, start + batch) % n
            out.append((x[idx], y[idx]))
    return out


# ----------------------------------------------------------------------------------------------
# the three implementations: prepare(x, y) converts a batch, step(batch) trains on it and
# returns the loss (in the implementation's own type), params() copies the weights to NumPy


def _retrograd_model():
    nn = rg.nn
    return nn.Sequential(nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(),
                         nn.Linear(SIZES[1], SIZES[2]), nn.ReLU(),
                         nn.Linear(SIZES[2], SIZES[3]))


class RetrogradMLP:
    name = "retrograd"

    def __init__(self, params: list[np.ndarray]):
        self.model = _retrograd_model()
        keys = [k for k, _ in self.model.named_parameters()]
        self.model.load_state_dict(dict(zip(keys, params, strict=True)))
        self.opt = rg.optim.SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM)

    def prepare(self, x, y):
        return rg.from_numpy(x), rg.from_numpy(y)

    def step(self, batch):
        x, y = batch
        self.opt.zero_grad()
        loss = rg.nn.functional.cross_entropy(self.model(x), y)
        loss.backward()
        self.opt.step()
        return loss

    def params(self) -> list[np.ndarray]:
        return [p.numpy().copy() for p in self.model.parameters()]


class NumpyMLP:
    """The same training step written out by hand: forward, the fused softmax-cross-entropy
    gradient (p - onehot) / N, backward, and torch.optim.SGD's momentum update in place."""

    name = "NumPy"

    def __init__(self, params: list[np.ndarray]):
        self.w = [p.copy() for p in params]  # W1, b1, W2, b2, W3, b3
        self.bufs: list[np.ndarray | None] = [None] * len(self.w)

    def prepare(self, x, y):
        return x, y

    def step(self, batch):
        x, y = batch
        w1, b1, w2, b2, w3, b3 = self.w
        n = len(x)
        rows = np.arange(n)
        # forward
        a1 = x @ w1.T
        a1 += b1
        np.maximum(a1, 0, out=a1)
        a2 = a1 @ w2.T
        a2 += b2
        np.maximum(a2, 0, out=a2)
        z = a2 @ w3.T
        z += b3
        # softmax + cross-entropy, fused: loss = mean(log sum exp(z) - z[y])
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        s = p.sum(axis=1, keepdims=True)
        loss = np.log(s).mean() - z[rows, y].mean()
        p /= s
        p[rows, y] -= 1
        p /= n  # dL/dz = (softmax - onehot) / N
        # backward
        g3 = p
        gw3, gb3 = g3.T @ a2, g3.sum(axis=0)
        g2 = g3 @ w3
        g2 *= a2 > 0
        gw2, gb2 = g2.T @ a1, g2.sum(axis=0)
        g1 = g2 @ w2
        g1 *= a1 > 0
        gw1, gb1 = g1.T @ x, g1.sum(axis=0)
        # SGD with momentum, as torch: buf = g at the first step, then buf = m * buf + g;
        # p -= lr * buf
        for i, g in enumerate((gw1, gb1, gw2, gb2, gw3, gb3)):
            buf = self.bufs[i]
            if buf is None:
                self.bufs[i] = buf = g  # g is a fresh array nothing else holds
            else:
                buf *= MOMENTUM
                buf += g
            self.w[i] -= LR * buf
        return loss

    def params(self) -> list[np.ndarray]:
        return [p.copy() for p in self.w]


class TorchMLP:
    name = "PyTorch"

    def __init__(self, params: list[np.ndarray]):
        nn = torch.nn
        self.model = nn.Sequential(nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(),
                                   nn.Linear(SIZES[1], SIZES[2]), nn.ReLU(),
                                   nn.Linear(SIZES[2], SIZES[3]))
        with torch.no_grad():
            for p, value in zip(self.model.parameters(), params, strict=True):
                p.copy_(torch.from_numpy(value))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM)

    def prepare(self, x, y):
        return torch.from_numpy(x), torch.from_numpy(y)

    def step(self, batch):
        x, y = batch
        self.opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(self.model(x), y)
        loss.backward()
        self.opt.step()
        return loss

    def params(self) -> list[np.ndarray]:
        return [p.detach().numpy().copy() for p in self.model.parameters()]


CLASSES = (RetrogradMLP, NumpyMLP, TorchMLP)


def build_all(seed: int):
    params = initial_params(seed)
    return [cls(params) for cls in CLASSES], params


# ----------------------------------------------------------------------------------------------
# equal-work check


def check(pool, batch_sizes, steps: int, seed: int) -> bool:
    """Train each implementation `steps` steps from the same weights on the same batches and
    compare losses step by step and the total weight updates (to float32 tolerance)."""
    ok = True
    print(f"equal-work check: {steps} steps per batch size, from the same initial weights")
    for b in batch_sizes:
        impls, init = build_all(seed)
        batches = batch_list(*pool, b, 0, steps)
        losses = {}
        for impl in impls:
            losses[impl.name] = [impl.step(impl.prepare(x, y)).item() for x, y in batches]
        # each parameter's total update, compared with NumPy's
        moves = {impl.name: [p - q for p, q in zip(impl.params(), init, strict=True)]
                 for impl in impls}
        ref_loss, ref_move = np.array(losses["NumPy"]), moves["NumPy"]
        print(f"  batch {b}: losses " + ", ".join(f"{v:.5f}" for v in ref_loss) + " (NumPy)")
        for name in ("retrograd", "PyTorch"):
            loss_err = np.max(np.abs(np.array(losses[name]) - ref_loss) / np.abs(ref_loss))
            move_err = max(np.linalg.norm(m - r) / np.linalg.norm(r)
                           for m, r in zip(moves[name], ref_move, strict=True))
            good = loss_err < 1e-5 and move_err < 1e-4
            ok &= good
            print(f"    {name:>9} vs NumPy: max rel loss diff {loss_err:.1e}, "
                  f"max rel diff of a weight update {move_err:.1e}  {'ok' if good else 'MISMATCH'}")
    print("check " + ("passed" if ok else "FAILED"))
    return ok


# ----------------------------------------------------------------------------------------------
# benchmark


def bench_batch(pool, batch: int, steps: int, rounds: int, warmup: int, pause: float,
                seed: int) -> dict:
    """Samples/s per round for each implementation, interleaved round by round."""
    impls, _ = build_all(seed)
    rates = {impl.name: [] for impl in impls}
    # Exempt everything alive now (torch's many objects above all) from the cyclic GC, so the
    # gc.collect() before each segment costs microseconds instead of ~80 ms.
    gc.collect()
    gc.freeze()
    first = 0
    for impl in impls:  # warm-up: caches, allocator, momentum buffers, lazy init
        for b in [impl.prepare(x, y) for x, y in batch_list(*pool, batch, first, warmup)]:
            impl.step(b)
    first += warmup
    for r in range(rounds):
        raw = batch_list(*pool, batch, first, steps)
        first += steps
        order = impls[r % len(impls):] + impls[:r % len(impls)]
        for impl in order:
            batches = [impl.prepare(x, y) for x, y in raw]
            gc.collect()
            if pause:
                time.sleep(pause)
            t0 = time.perf_counter()
            for b in batches:
                impl.step(b)
            dt = time.perf_counter() - t0
            rates[impl.name].append(steps * batch / dt)
    gc.unfreeze()
    return rates


def ratio_stats(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Median and quartiles of the per-round ratios a/b."""
    r = [x / y for x, y in zip(a, b, strict=True)]
    if len(r) < 2:
        return r[0], r[0], r[0]
    q1, med, q3 = statistics.quantiles(r, n=4, method="inclusive")
    return med, q1, q3


def default_steps(batch: int) -> int:
    """About 16384 samples per timed segment (at least 4 steps)."""
    return max(4, -(-16384 // batch))


def parse_steps(text: str | None, batch_sizes: list[int]) -> list[int]:
    if text is None:
        return [default_steps(b) for b in batch_sizes]
    values = [int(s) for s in text.split(",")]
    if len(values) == 1:
        values *= len(batch_sizes)
    if len(values) != len(batch_sizes) or min(values) < 1:
        raise SystemExit("--steps: one positive integer, or one per batch size")
    return values


# ----------------------------------------------------------------------------------------------
# reporting


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_summary() -> str:
    parts = []
    for info in threadpool_info():
        lib = os.path.basename(info.get("filepath", ""))
        owner = "numpy" if "numpy" in info.get("filepath", "") else \
            "torch" if "torch" in info.get("filepath", "") else "other"
        desc = f"{info['internal_api']} {info.get('version') or ''}".strip()
        if info.get("architecture"):
            desc += f" ({info['architecture']})"
        parts.append(f"{owner}: {desc}, {info['num_threads']} threads [{lib}]")
    return "; ".join(parts)


def environment_lines(threads: int) -> list[str]:
    lines = [
        f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs, Python "
        f"{platform.python_version()}",
        f"numpy {np.__version__}, retrograd {rg.__version__}, torch {torch.__version__} "
        f"(torch.get_num_threads() = {torch.get_num_threads()}, "
        f"interop {torch.get_num_interop_threads()})",
        f"thread pools (threadpoolctl, NumPy's BLAS limited to {threads}): {blas_summary()}",
    ]
    unset = os.environ.get(_UNSET_MARK)
    if unset:
        lines.append(f"re-executed without {unset} (they slow NumPy's OpenBLAS down)")
    else:
        kept = [f"{k}={os.environ[k]}" for k in _BLAS_OVERRIDES if k in os.environ]
        lines.append("OpenBLAS overrides: " + (", ".join(kept) + " (kept, --keep-blas-env)"
                                              if kept else "none set"))
    return lines


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def fmt_ratio(stats: tuple[float, float, float]) -> str:
    med, q1, q3 = stats
    return f"{med:.2f} ({q1:.2f}-{q3:.2f})"


def markdown(results, args, steps, env_lines, elapsed: float) -> str:
    today = datetime.date.today().isoformat()
    command = os.environ.get(_COMMAND_MARK) or _typed_command()
    out = [
        "### MLP 784-256-256-10 training throughput (float32, SGD momentum, samples/s)",
        "",
        f"{today}, `{command}`  ",
        f"{args.rounds} interleaved rounds, steps per round "
        + ", ".join(f"{k} at batch {b}" for b, k in zip(args.batch_sizes, steps, strict=True))
        + f"; {elapsed:.0f} s in all.  ",
        *(line + "  " for line in env_lines),
        "",
        "| batch | retrograd | NumPy | PyTorch | retrograd / NumPy | retrograd / PyTorch "
        "| NumPy / PyTorch |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b, rates in results.items():
        med = {k: statistics.median(v) for k, v in rates.items()}
        r = rates
        out.append(
            f"| {b} | {fmt_rate(med['retrograd'])} | {fmt_rate(med['NumPy'])} "
            f"| {fmt_rate(med['PyTorch'])} "
            f"| {fmt_ratio(ratio_stats(r['retrograd'], r['NumPy']))} "
            f"| {fmt_ratio(ratio_stats(r['retrograd'], r['PyTorch']))} "
            f"| {fmt_ratio(ratio_stats(r['NumPy'], r['PyTorch']))} |")
    out += ["", "Samples/s: median over rounds. Ratios: median of the per-round ratios of "
            "samples/s (interquartile range in parentheses); above 1 means the first is faster."]
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# profile


def profile(pool, batch: int, steps: int, seed: int, top: int = 25) -> None:
    impl = RetrogradMLP(initial_params(seed))
    warm = [impl.prepare(x, y) for x, y in batch_list(*pool, batch, 0, 5)]
    for b in warm:
        impl.step(b)
    batches = [impl.prepare(x, y) for x, y in batch_list(*pool, batch, 5, steps)]
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for b in batches:
        impl.step(b)
    prof.disable()
    dt = time.perf_counter() - t0
    print(f"retrograd under cProfile, batch {batch}, {steps} steps: "
          f"{dt / steps * 1e6:.0f} us per step (profiler overhead included)")
    for key in ("tottime", "cumtime"):
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats(key).print_stats(top)
        text = s.getvalue()
        print(f"\n--- top {top} by {key} ---")
        print(text[text.find("   ncalls"):].rstrip())


# ----------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")],
                        default=[32, 128, 1024], help="comma-separated (default 32,128,1024)")
    parser.add_argument("--rounds", type=int, default=40,
                        help="interleaved timed rounds per batch size (default 40)")
    parser.add_argument("--steps", default=None,
                        help="training steps per implementation per round: one integer or one "
                             "per batch size (default: 16384 samples, at least 4 steps)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed steps per implementation first (default: one round)")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds of idle before each timed segment, to let the previous "
                             "library's spinning threads sleep (default 0: made no difference "
                             "on 2 cores)")
    parser.add_argument("--threads", type=int, default=2,
                        help="BLAS threads for NumPy and torch threads (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true",
                        help="only check that the three implementations do the same work")
    parser.add_argument("--profile", action="store_true",
                        help="only profile retrograd's training step at the first batch size")
    parser.add_argument("--keep-blas-env", action="store_true",
                        help="do not re-execute without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE")
    args = parser.parse_args(argv)
    if args.rounds < 1 or min(args.batch_sizes) < 1:
        parser.error("--rounds and --batch-sizes must be positive")
    steps = parse_steps(args.steps, args.batch_sizes)

    limits = threadpool_limits(limits=args.threads, user_api="blas")  # noqa: F841 (kept alive)
    torch.set_num_threads(args.threads)
    env_lines = environment_lines(args.threads)
    for line in env_lines:
        print(line)
    pool = make_pool(args.seed)
    print(f"data: {len(pool[0])} samples, {np.count_nonzero(pool[0]) / pool[0].size:.1%} "
          f"non-zero pixels, label counts {np.bincount(pool[1], minlength=SIZES[-1]).tolist()}")
    print()

    if args.check:
        return 0 if check(pool, args.batch_sizes, int(args.steps or 5), args.seed) else 1
    if args.profile:
        profile(pool, args.batch_sizes[0], steps[0] * args.rounds, args.seed)
        return 0

    if not check(pool, [args.batch_sizes[0]], 3, args.seed):
        return 1
    print()
    t_start = time.perf_counter()
    results = {}
    for b, k in zip(args.batch_sizes, steps, strict=True):
        t0 = time.perf_counter()
        warmup = k if args.warmup is None else args.warmup
        rates = bench_batch(pool, b, k, args.rounds, warmup, args.pause, args.seed)
        results[b] = rates
        # how much slower the slowest segment was than the median one: the machine's noise
        outlier = max(statistics.median(v) / min(v) for v in rates.values())
        print(f"batch {b:>5}: " + "  ".join(
            f"{name} {fmt_rate(statistics.median(rates[name]))}/s" for name in IMPLS)
            + f"   ({args.rounds} rounds x {k} steps, {time.perf_counter() - t0:.0f} s; "
            f"slowest segment {outlier:.1f}x the median)", flush=True)
    print()
    print(markdown(results, args, steps, env_lines, time.perf_counter() - t_start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
