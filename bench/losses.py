"""Fused softmax cross-entropy, forward + backward: retrograd vs PyTorch.

One call is `loss = F.cross_entropy(x, y); x.grad = None; loss.backward()` on float32 logits x
(a leaf that requires grad) and class-index targets y, reduction 'mean', in either library:

    cross_entropy        (1024, 10) and (256, 1000)
    cross_entropy        (256, 1000) with label_smoothing=0.1 and class weights
    focal_loss, gamma 2  (1024, 10): retrograd's fused F.focal_loss vs the formula composed in
                         torch, -(1 - p_y)^g log p_y from log_softmax, gather and exp (torch has
                         no multi-class focal loss)

    python bench/losses.py             # the benchmark (~1.5 min on 2 idle cores)
    python bench/losses.py --check     # losses and gradients agree (rtol 1e-5) only
    python bench/losses.py --profile   # cProfile of retrograd's calls, case by case

Methodology (as bench/mlp.py): the implementations are interleaved -- each of R rounds times a
segment of K calls of every implementation, the order rotated from round to round, after one
untimed warm-up round -- and we report the median time per call and the median of the per-round
speed ratios with their interquartile range. PyTorch runs with 2 intra-op threads (the machine's
cores; `--threads`) and, as an extra column, with 1 thread (set before each of its segments).
K is calibrated per case so that one segment takes about `--segment-ms`.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (imports nothing heavy: the re-exec below must precede NumPy)

if __name__ == "__main__":
    common.reexec_without_blas_overrides(__file__)

# Imported after the re-exec above, so that OpenBLAS never sees the overrides.
import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

rg = common.import_retrograd()
F = rg.nn.functional
TF = torch.nn.functional

RTOL = 1e-5
GAMMA, SMOOTHING = 2.0, 0.1
RG, PT, PT1 = "retrograd", "PyTorch", "PyTorch 1 thread"
IMPLS = (RG, PT, PT1)


@dataclass(frozen=True)
class Case:
    name: str
    shape: tuple[int, int]
    kind: str  # "ce", "ce_smooth_weight" or "focal"
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} ({self.shape[0]}, {self.shape[1]})"


CASES = (
    Case("cross_entropy", (1024, 10), "ce"),
    Case("cross_entropy", (256, 1000), "ce"),
    Case("cross_entropy, label_smoothing 0.1 + class weights", (256, 1000), "ce_smooth_weight"),
    Case("focal_loss, gamma 2", (1024, 10), "focal", "vs torch composed"),
)


def make_data(case: Case, seed: int):
    """float32 logits ~ N(0, 2^2) (confident enough that focal's (1 - p)^g matters), uniform
    int64 labels, and class weights in [0.5, 1.5)."""
    rng = np.random.default_rng(seed)
    n, c = case.shape
    logits = (2 * rng.standard_normal((n, c))).astype(np.float32)
    labels = rng.integers(0, c, size=n, dtype=np.int64)
    weight = (0.5 + rng.random(c)).astype(np.float32)
    return logits, labels, weight


def torch_focal(x, y, gamma: float):
    """-(1 - p_y)^gamma log p_y, mean over samples, composed from torch primitives."""
    logp = TF.log_softmax(x, dim=1).gather(1, y[:, None]).squeeze(1)
    return (-(1 - logp.exp()) ** gamma * logp).mean()


def make_calls(case: Case, seed: int) -> dict:
    """For each library a (call, x) pair: call() runs forward + backward once and returns the
    loss; x is the logits leaf whose .grad holds the gradient afterwards."""
    logits, labels, weight = make_data(case, seed)
    x = rg.tensor(logits, requires_grad=True)
    y = rg.from_numpy(labels)
    tx = torch.tensor(logits, requires_grad=True)
    ty = torch.from_numpy(labels)
    if case.kind == "ce":
        def rg_loss():
            return F.cross_entropy(x, y)

        def torch_loss():
            return TF.cross_entropy(tx, ty)
    elif case.kind == "ce_smooth_weight":
        w, tw = rg.from_numpy(weight), torch.from_numpy(weight)

        def rg_loss():
            return F.cross_entropy(x, y, weight=w, label_smoothing=SMOOTHING)

        def torch_loss():
            return TF.cross_entropy(tx, ty, weight=tw, label_smoothing=SMOOTHING)
    else:
        def rg_loss():
            return F.focal_loss(x, y, gamma=GAMMA)

        def torch_loss():
            return torch_focal(tx, ty, GAMMA)

    def rg_call():
        loss = rg_loss()
        x.grad = None
        loss.backward()
        return loss

    def torch_call():
        loss = torch_loss()
        tx.grad = None
        loss.backward()
        return loss

    return {RG: (rg_call, x), PT: (torch_call, tx), PT1: (torch_call, tx)}


# ----------------------------------------------------------------------------------------------
# check


def check(seed: int, threads: int) -> bool:
    """Each case's loss and gradient agree with torch's (both thread counts) within rtol 1e-5.

    Gradient entries are compared as |a - b| <= rtol (|b| + max |b|): the softmax gradient of
    an unlikely class is a difference of float32 numbers (with label smoothing, p_c sum(a) -
    eps w_c / C cancels), so an element-wise relative bound on it would test rounding, not the
    formula. The element-wise maximum is printed too.
    """
    ok = True
    print(f"check: losses and gradients vs torch, rtol {RTOL:g}")
    for case in CASES:
        calls = make_calls(case, seed)
        out = {}
        for name, (call, x) in calls.items():
            torch.set_num_threads(1 if name == PT1 else threads)
            loss = call()
            grad = x.grad.numpy() if name == RG else x.grad.detach().numpy()
            out[name] = (float(loss.item()), grad.copy())
        torch.set_num_threads(threads)
        ref_loss, ref_grad = out[PT]
        for name in (RG, PT1):
            loss, grad = out[name]
            loss_err = abs(loss - ref_loss) / abs(ref_loss)
            scale = np.abs(ref_grad) + np.abs(ref_grad).max()
            grad_err = float(np.max(np.abs(grad - ref_grad) / scale))
            with np.errstate(divide="ignore", invalid="ignore"):
                elementwise = float(np.nanmax(np.abs(grad - ref_grad) / np.abs(ref_grad)))
            good = loss_err <= RTOL and grad_err <= RTOL and grad.dtype == np.float32
            ok &= good
            print(f"  {case.label:<62} {name:>16} vs {PT}: loss {loss:.6f} "
                  f"(rel diff {loss_err:.1e}), gradient rel diff {grad_err:.1e} "
                  f"(element-wise {elementwise:.1e})  {'ok' if good else 'MISMATCH'}")
    print("check " + ("passed" if ok else "FAILED"))
    return ok


# ----------------------------------------------------------------------------------------------
# benchmark


def calibrate(calls: dict, threads: int, segment_s: float) -> int:
    """Calls per segment, so that the slowest implementation's segment takes about segment_s."""
    worst = 0.0
    for name, (call, _) in calls.items():
        torch.set_num_threads(1 if name == PT1 else threads)
        for _ in range(20):  # warm
            call()
        best = math.inf
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(20):
                call()
            best = min(best, (time.perf_counter() - t0) / 20)
        worst = max(worst, best)
    torch.set_num_threads(threads)
    return max(5, round(segment_s / worst))


def bench_case(case: Case, rounds: int, segment_s: float, threads: int, pause: float,
               seed: int) -> tuple[int, dict[str, list[float]]]:
    """(calls per segment, seconds per call for each round) per implementation."""
    calls = make_calls(case, seed)
    k = calibrate(calls, threads, segment_s)

    def make_segment(name: str, r: int):
        call = calls[name][0]
        torch.set_num_threads(1 if name == PT1 else threads)

        def run():
            for _ in range(k):
                call()
        return run

    try:
        times = common.interleaved(IMPLS, rounds, make_segment, warmup_rounds=1, pause=pause)
    finally:
        torch.set_num_threads(threads)
    return k, {name: [t / k for t in ts] for name, ts in times.items()}


def markdown(results, args, env_lines, elapsed: float, load: str) -> str:
    fmt_us, fmt_ratio, ratio_stats = common.fmt_us, common.fmt_ratio, common.ratio_stats
    details = [
        f"{args.rounds} interleaved rounds per case after 1 warm-up round, segments of about "
        f"{args.segment_ms:g} ms (calls per segment: "
        + ", ".join(f"{k}" for _, (k, _) in results.items())
        + f"); {elapsed:.0f} s in all; {load}.",
        "One call: loss = F.cross_entropy(x, y) (or the focal loss); x.grad = None; "
        "loss.backward(). float32 logits, int64 class indices, reduction 'mean'.",
    ]
    out = common.report_header("Fused softmax cross-entropy, forward + backward "
                               "(float32, us per call)", __file__, details, env_lines)
    out += [
        f"| case | retrograd | PyTorch ({args.threads} threads) | PyTorch (1 thread) "
        f"| retrograd / PyTorch ({args.threads} threads) | retrograd / PyTorch (1 thread) |",
        "|:---|---:|---:|---:|---:|---:|",
    ]
    for case, (_, t) in results.items():
        med = {name: statistics.median(v) for name, v in t.items()}
        label = case.label + (f", {case.note}" if case.note else "")
        out.append(
            f"| {label} | {fmt_us(med[RG])} | {fmt_us(med[PT])} | {fmt_us(med[PT1])} "
            f"| {fmt_ratio(ratio_stats(t[PT], t[RG]))} "
            f"| {fmt_ratio(ratio_stats(t[PT1], t[RG]))} |")
    out += ["", "Times: median over rounds of the mean time per call in a segment. Ratios: "
            "median of the per-round speed ratios (PyTorch's time / retrograd's; interquartile "
            "range in parentheses); above 1 means retrograd is faster. \"vs torch composed\": "
            "torch has no fused multi-class focal loss, so it runs the formula built from "
            "log_softmax, gather and exp."]
    return "\n".join(out)


def profile(seed: int, threads: int, seconds: float) -> None:
    for case in CASES:
        call = make_calls(case, seed)[RG][0]
        for _ in range(20):
            call()
        t0 = time.perf_counter()
        n = 0
        while time.perf_counter() - t0 < seconds / 2:
            call()
            n += 1
        per_call = (time.perf_counter() - t0) / n
        print(f"\n===== retrograd, {case.label}: {per_call * 1e6:.1f} us per call without the "
              f"profiler =====")

        def run(n=n, call=call):
            for _ in range(n):
                call()
        common.profile(run, f"{n} calls", top=15)


# ----------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100,
                        help="interleaved timed rounds per case (default 100)")
    parser.add_argument("--segment-ms", type=float, default=60.0,
                        help="target duration of one timed segment, in ms (default 60)")
    parser.add_argument("--check", action="store_true",
                        help="only check that losses and gradients agree with torch's")
    parser.add_argument("--profile", action="store_true",
                        help="only profile retrograd's calls, case by case")
    common.add_harness_args(parser, "torch intra-op threads (and NumPy's BLAS threads) for the "
                                    "main PyTorch column (default 2)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.segment_ms <= 0:
        parser.error("--rounds and --segment-ms must be positive")

    limits = common.limit_threads(args.threads)  # noqa: F841 (kept alive)
    env_lines = common.environment_lines(args.threads)
    for line in env_lines:
        print(line)
    print()
    if args.profile:
        profile(args.seed, args.threads, 2.0)
        return 0
    ok = check(args.seed, args.threads)
    if args.check or not ok:
        return 0 if ok else 1
    print()

    t_start = time.perf_counter()
    load = common.OtherLoad()
    results = {}
    for case in CASES:
        t0 = time.perf_counter()
        case_load = common.OtherLoad()
        k, t = bench_case(case, args.rounds, args.segment_ms / 1e3, args.threads, args.pause,
                          args.seed)
        results[case] = (k, t)
        print(f"{case.label:<62}: " + "  ".join(
            f"{name} {common.fmt_us(statistics.median(t[name]))} us" for name in IMPLS)
            + f"   ({args.rounds} rounds x {k} calls, {time.perf_counter() - t0:.0f} s; "
            f"slowest segment {common.noise(t):.1f}x the median; {case_load.describe()})",
            flush=True)
    print()
    print(markdown(results, args, env_lines, time.perf_counter() - t_start, load.describe()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
