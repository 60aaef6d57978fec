"""The captured training step: retrograd.compile vs eager retrograd, hand-written NumPy, PyTorch
eager and the GEMM-only floor, for the MLP 784-256-256-10 (float32) of bench/mlp.py.

    python bench/compile.py                          # SGD and Adam, batch 32, 128, 1024
    python bench/compile.py --optimizer adam --batch-sizes 32 --rounds 10
    python bench/compile.py --check                  # compiled vs eager, byte for byte

The model, data, initial weights, optimizers and methodology are bench/mlp.py's (interleaved
rounds with the order rotated, median samples/s and median per-round ratios). Two columns are
added:
- compiled: `retrograd.compile` of the eager step (zero_grad, forward, cross-entropy, backward,
  optimizer step). The first call traces; the warm-up replays. `--check` first verifies that the
  compiled step gives the eager step's weights byte for byte.
- GEMM floor: the step's eight matrix products alone (three forward, three weight gradients,
  two input gradients), with the shapes and memory layouts of the hand NumPy step: the time no
  implementation of this step can go below with NumPy's BLAS.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

if __name__ == "__main__":
    common.reexec_without_blas_overrides(__file__)

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import mlp  # noqa: E402  (the model, data, implementations and harness)

rg = mlp.rg
IMPLS = ("compiled", "retrograd", "NumPy", "PyTorch", "GEMM floor")


class CompiledMLP(mlp.RetrogradMLP):
    """bench/mlp.py's retrograd step, run through retrograd.compile."""

    name = "compiled"

    def __init__(self, params, optimizer: str):
        super().__init__(params, optimizer)
        self.compiled = rg.compile(super().step)

    def step(self, batch):
        return self.compiled(batch)


class GemmFloor:
    """The eight matrix products of one step, nothing else (inputs fixed, outputs discarded)."""

    name = "GEMM floor"

    def __init__(self, params, optimizer: str):
        self.w = [p.copy() for p in params]
        self.cache: dict = {}

    def prepare(self, x, y):
        return x, y

    def step(self, batch):
        x, _ = batch
        w1, _, w2, _, w3, _ = self.w
        n = len(x)
        a1, a2, g3, g2, g1 = self._activations(n)
        x @ w1.T
        a1 @ w2.T
        a2 @ w3.T
        g3.T @ a2
        g3 @ w3
        g2.T @ a1
        g2 @ w2
        g1.T @ x
        return None

    def _activations(self, n: int):
        acts = self.cache.get(n)
        if acts is None:  # realistic values: ReLU outputs are about half zeros
            g = np.random.default_rng(n)
            h1, h2, c = mlp.SIZES[1], mlp.SIZES[2], mlp.SIZES[3]
            acts = self.cache[n] = (
                np.maximum(g.standard_normal((n, h1), dtype=np.float32), 0),
                np.maximum(g.standard_normal((n, h2), dtype=np.float32), 0),
                g.standard_normal((n, c), dtype=np.float32) / n,
                g.standard_normal((n, h2), dtype=np.float32) / n,
                g.standard_normal((n, h1), dtype=np.float32) / n)
        return acts


CLASSES = {"compiled": CompiledMLP, "retrograd": mlp.RetrogradMLP, "NumPy": mlp.NumpyMLP,
           "PyTorch": mlp.TorchMLP, "GEMM floor": GemmFloor}


def check(pool, batch_sizes, steps: int, seed: int, optimizer: str) -> bool:
    """Compiled and eager retrograd from the same weights on the same batches: every weight
    equal byte for byte after `steps` steps."""
    ok = True
    params = mlp.initial_params(seed)
    for b in batch_sizes:
        eager, compiled = mlp.RetrogradMLP(params, optimizer), CompiledMLP(params, optimizer)
        for x, y in mlp.batch_list(*pool, b, 0, steps):
            eager.step(eager.prepare(x, y))
            compiled.step(compiled.prepare(x, y))
        same = all(p.tobytes() == q.tobytes()
                   for p, q in zip(eager.params(), compiled.params(), strict=True))
        replays = compiled.compiled.replays
        print(f"  {optimizer} batch {b}: {steps} steps ({replays} replayed), weights "
              f"{'identical byte for byte' if same else 'DIFFER'}")
        ok &= same and replays == steps - 1
    return ok


def bench_batch(pool, batch: int, steps: int, rounds: int, warmup: int, pause: float,
                seed: int, optimizer: str) -> dict[str, list[float]]:
    params = mlp.initial_params(seed)
    by_name = {name: cls(params, optimizer) for name, cls in CLASSES.items()}
    for impl in by_name.values():
        for b in [impl.prepare(x, y) for x, y in mlp.batch_list(*pool, batch, 0, warmup)]:
            impl.step(b)

    def make_segment(name: str, r: int):
        impl = by_name[name]
        batches = [impl.prepare(x, y)
                   for x, y in mlp.batch_list(*pool, batch, warmup + r * steps, steps)]

        def run():
            for b in batches:
                impl.step(b)

        def lead_in():
            impl.step(batches[0])
        return lead_in, run

    times = common.interleaved(IMPLS, rounds, make_segment, pause=pause)
    return {name: [steps * batch / t for t in ts] for name, ts in times.items()}


def markdown(results: dict, args, env_lines, elapsed: float, load: str) -> str:
    fmt_rate, fmt_ratio, stats = common.fmt_rate, common.fmt_ratio, common.ratio_stats
    details = [f"{args.rounds} interleaved rounds per cell; {elapsed:.0f} s in all; {load}.",
               "optimizers: " + "; ".join(mlp.OPTIMIZER_TITLES[o] for o in args.optimizer)
               + "."]
    out = common.report_header(
        "MLP 784-256-256-10 training step, compiled (float32, samples/s)", __file__, details,
        env_lines)
    out += ["| optimizer, batch | compiled | eager | NumPy | PyTorch | compiled / NumPy "
            "| compiled / PyTorch | compiled / eager | step / GEMM floor |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (opt, b), r in results.items():
        med = {k: statistics.median(v) for k, v in r.items()}
        out.append(
            f"| {opt.upper() if opt == 'sgd' else opt.capitalize()} {b} "
            f"| {fmt_rate(med['compiled'])} | {fmt_rate(med['retrograd'])} "
            f"| {fmt_rate(med['NumPy'])} | {fmt_rate(med['PyTorch'])} "
            f"| {fmt_ratio(stats(r['compiled'], r['NumPy']))} "
            f"| {fmt_ratio(stats(r['compiled'], r['PyTorch']))} "
            f"| {fmt_ratio(stats(r['compiled'], r['retrograd']))} "
            f"| {fmt_ratio(stats(r['GEMM floor'], r['compiled']))} |")
    out += ["", "Samples/s: median over rounds. Ratios: median of the per-round ratios of "
            "samples/s (interquartile range in parentheses); above 1 means the first is faster. "
            "step / GEMM floor: the compiled step's time over the eight products' time (1.00 "
            "would be no cost besides the products)."]
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--optimizer", type=mlp.parse_optimizers, default=["sgd", "adam"],
                        help="sgd, adam or both, comma-separated (default sgd,adam)")
    parser.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")],
                        default=[32, 128, 1024], help="comma-separated (default 32,128,1024)")
    parser.add_argument("--rounds", type=int, default=16,
                        help="interleaved timed rounds per cell (default 16)")
    parser.add_argument("--check", action="store_true",
                        help="only check compiled against eager, byte for byte")
    common.add_harness_args(parser, "BLAS threads for NumPy and torch threads (default 2)",
                            pause=0.05)
    args = parser.parse_args(argv)
    if args.rounds < 1 or min(args.batch_sizes) < 1:
        parser.error("--rounds and --batch-sizes must be positive")
    limits = common.limit_threads(args.threads)  # noqa: F841 (kept alive)
    env_lines = common.environment_lines(args.threads)
    for line in env_lines:
        print(line)
    pool = mlp.make_pool(args.seed)
    print("compiled vs eager, byte for byte:")
    ok = all([check(pool, args.batch_sizes, 20, args.seed, opt) for opt in args.optimizer])
    if args.check or not ok:
        return 0 if ok else 1
    t_start, load = time.perf_counter(), common.OtherLoad()
    results = {}
    for opt in args.optimizer:
        for b in args.batch_sizes:
            k = mlp.default_steps(b)
            t0 = time.perf_counter()
            rates = bench_batch(pool, b, k, args.rounds, k, args.pause, args.seed, opt)
            results[(opt, b)] = rates
            print(f"{opt:>4}, batch {b:>5}: " + "  ".join(
                f"{name} {common.fmt_rate(statistics.median(rates[name]))}/s"
                for name in IMPLS) + f"   ({args.rounds} rounds x {k} steps, "
                f"{time.perf_counter() - t0:.0f} s)", flush=True)
    print()
    print(markdown(results, args, env_lines, time.perf_counter() - t_start, load.describe()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
