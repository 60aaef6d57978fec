"""Convolutions, forward + backward, and one training step of the MNIST-1D CNN: retrograd vs
PyTorch eager on the CPU, with the GEMM-only floor and the im2col copy floor beside them.

Cases (float32, batch 128):

    Conv1d(25, 25, 3, stride 2, padding 1) on (128, 25, 19)    the MNIST-1D CNN's 2nd layer
    Conv1d(64, 64, 5, padding 2)            on (128, 64, 64)
    Conv2d(32, 32, 3, padding 1)            on (128, 32, 8, 8)   the digits CNN's 2nd layer
    Conv2d(16, 32, 3, padding 1)            on (128, 16, 16, 16)
    train step: `retrograd train --data mnist1d --model cnn`'s model (3 x Conv1d 25 + BatchNorm
                + ReLU, Linear), cross-entropy, Adam lr 1e-2, batch 128, on MNIST-1D batches

One conv call is `out = conv(x); out.backward(g)` with x a leaf that requires grad (so the
input, weight and bias gradients are all computed), in either library.

    python bench/conv.py             # the benchmark (~2 min on 2 idle cores)
    python bench/conv.py --check     # outputs and gradients agree with torch (rtol 1e-4) only

Where the time goes: "GEMM floor" is the three products a convolution's forward and backward
need, done by NumPy's BLAS alone on preallocated arrays of the same shapes; "copy floor" is the
data movement around them, done by hand in NumPy on preallocated buffers. Both follow the
algorithm retrograd runs for the case (src/retrograd/ops/conv.py dispatches on stride and
dimension): 2-D stride 1, channels-last: products cols @ w, cols^T @ g_rows and g_cols @
w_flipped (the input gradient as a convolution of g); copies: the zero-padded channels-last copy
of x and its window copy (one strided copy), then the same for g. Strided or 1-D, channels-first
(ops/conv_cf.py): products w @ cols, g @ cols^T, w^T @ g; copies: one strided slice copy per
kernel offset into a (C, K, N, O) buffer and its adjoint's scatter-add. What retrograd spends
beyond GEMM + copies is bias, the bias gradient, weight reorders, reshapes, graph bookkeeping
and allocation.

Methodology (as bench/mlp.py): interleaved rounds, the order rotated each round, one untimed
warm-up round; medians and the median of per-round ratios with their interquartile range.
NumPy's BLAS and torch both use 2 threads (`--threads`). Run it under
`flock /tmp/retrograd-bench.lock` on a shared machine.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (imports nothing heavy: the re-exec below must precede NumPy)

if __name__ == "__main__":
    common.reexec_without_blas_overrides(__file__)

import argparse  # noqa: E402
import itertools  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from numpy.lib.stride_tricks import as_strided  # noqa: E402

rg = common.import_retrograd()
RG, PT, GEMM, COPY = "retrograd", "PyTorch", "GEMM floor", "copy floor"
BATCH = 128


@dataclass(frozen=True)
class Case:
    name: str
    cin: int
    cout: int
    kernel: int
    spatial: tuple[int, ...]
    stride: int = 1
    padding: int = 0

    @property
    def dims(self) -> int:
        return len(self.spatial)

    @property
    def out(self) -> tuple[int, ...]:
        return tuple((n + 2 * self.padding - self.kernel) // self.stride + 1
                     for n in self.spatial)


CASES = [Case("Conv1d(25, 25, 3, s2, p1) on (128, 25, 19)", 25, 25, 3, (19,), 2, 1),
         Case("Conv1d(64, 64, 5, p2) on (128, 64, 64)", 64, 64, 5, (64,), 1, 2),
         Case("Conv2d(32, 32, 3, p1) on (128, 32, 8, 8)", 32, 32, 3, (8, 8), 1, 1),
         Case("Conv2d(16, 32, 3, p1) on (128, 16, 16, 16)", 16, 32, 3, (16, 16), 1, 1)]
STEP = "train step: MNIST-1D CNN (3 x Conv1d 25 + BN + ReLU, Linear), Adam, batch 128"


def conv_calls(case: Case, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, case.cin, *case.spatial)).astype(np.float32)
    g = rng.standard_normal((BATCH, case.cout, *case.out)).astype(np.float32)
    layer = (rg.nn.Conv1d if case.dims == 1 else rg.nn.Conv2d)(
        case.cin, case.cout, case.kernel, stride=case.stride, padding=case.padding)
    tlayer = (torch.nn.Conv1d if case.dims == 1 else torch.nn.Conv2d)(
        case.cin, case.cout, case.kernel, stride=case.stride, padding=case.padding)
    with torch.no_grad():
        tlayer.weight.copy_(torch.from_numpy(layer.weight.numpy()))
        tlayer.bias.copy_(torch.from_numpy(layer.bias.numpy()))
    xr, gr = rg.tensor(x, requires_grad=True), rg.tensor(g)
    xt, gt = torch.tensor(x, requires_grad=True), torch.from_numpy(g)

    def rg_call():
        layer.zero_grad()
        xr.grad = None
        layer(xr).backward(gr)

    def torch_call():
        tlayer.zero_grad()
        xt.grad = None
        tlayer(xt).backward(gt)

    gemm_call, copy_call = floors(case, x, g, rng)
    return {RG: rg_call, PT: torch_call, GEMM: gemm_call, COPY: copy_call,
            "check": (layer, tlayer, xr, xt)}


def floors_channels_first(case: Case, x: np.ndarray, rng):
    """(GEMM floor, copy floor) calls of conv_cf's algorithm (strided or 1-D): cols (C K, N O),
    w2 (C_out, C K), one slice copy per kernel offset and the col2im scatter-add."""
    k = case.kernel ** case.dims
    no = BATCH * math.prod(case.out)
    w2 = rng.standard_normal((case.cout, case.cin * k)).astype(np.float32)
    cols = rng.standard_normal((case.cin * k, no)).astype(np.float32)
    g2 = rng.standard_normal((case.cout, no)).astype(np.float32)
    out_f, out_w, out_x = np.empty((case.cout, no), np.float32), np.empty_like(w2), \
        np.empty_like(cols)

    def gemm_call():  # forward, weight gradient, input gradient
        np.matmul(w2, cols, out=out_f)
        np.matmul(g2, cols.T, out=out_w)
        np.matmul(w2.T, g2, out=out_x)

    xc = np.ascontiguousarray(x.transpose(1, 0, *range(2, x.ndim)))  # (C, N, *S)
    buffer = np.zeros((case.cin, *(case.kernel,) * case.dims, BATCH, *case.out), np.float32)
    grad_x = np.zeros_like(xc)
    windows = window_slices(case)

    def copy_call():  # im2col, then its adjoint (scatter-add back), one slice per offset
        for offset, (dst, src) in windows:
            buffer[(slice(None), *offset, slice(None), *dst)] = xc[(slice(None), slice(None),
                                                                   *src)]
        grad_x[...] = 0
        for offset, (dst, src) in windows:
            grad_x[(slice(None), slice(None), *src)] += buffer[(slice(None), *offset,
                                                                slice(None), *dst)]

    return gemm_call, copy_call


def floors(case: Case, x: np.ndarray, g: np.ndarray, rng):
    """(GEMM floor, copy floor) calls of retrograd's algorithm for 2-D stride 1
    (src/retrograd/ops/conv.py) on preallocated arrays: channels-last windows (N O, K C) and
    rows (N O, C_out); for strided and 1-D convolutions, conv_cf's."""
    if case.stride != 1 or case.dims == 1:
        return floors_channels_first(case, x, rng)
    d, kk = case.dims, (case.kernel,) * case.dims
    k, rows_in, rows = case.kernel ** case.dims, BATCH * math.prod(case.spatial), \
        BATCH * math.prod(case.out)
    f32 = np.float32
    w_f = rng.standard_normal((k * case.cin, case.cout)).astype(f32)  # forward's (K C, C_out)
    cols = rng.standard_normal((rows, k * case.cin)).astype(f32)
    g_rows = rng.standard_normal((rows, case.cout)).astype(f32)
    out_f, out_w = np.empty((rows, case.cout), f32), np.empty((k * case.cin, case.cout), f32)
    # the input gradient: the windows of the padded g times the flipped kernel
    g_cols = rng.standard_normal((rows_in, k * case.cout)).astype(f32)
    w_i = rng.standard_normal((k * case.cout, case.cin)).astype(f32)
    out_x = np.empty((rows_in, case.cin), f32)

    def gemm_call():  # forward, weight gradient, input gradient
        np.matmul(cols, w_f, out=out_f)
        np.matmul(cols.T, g_rows, out=out_w)  # the weight gradient, transposed (as conv.py)
        np.matmul(g_cols, w_i, out=out_x)

    def windows(a_padded, out_spatial, stride):
        st = a_padded.strides
        return as_strided(a_padded, (BATCH, *out_spatial, *kk, a_padded.shape[-1]),
                          (st[0], *(s * stride for s in st[1:1 + d]), *st[1:1 + d], st[-1]),
                          writeable=False)

    p, pk = case.padding, case.kernel - 1 - case.padding
    x_pad = np.zeros((BATCH, *(n + 2 * p for n in case.spatial), case.cin), f32)
    x_cols = np.empty((BATCH, *case.out, *kk, case.cin), f32)
    x_cl = np.moveaxis(x, 1, -1)
    g_cl = np.moveaxis(g, 1, -1)  # (g is (N, C_out, *O) in memory, as the benchmark passes it)
    inner = (slice(None), *(slice(p, p + n) for n in case.spatial))
    g_pad = np.zeros((BATCH, *(o + 2 * pk for o in case.out), case.cout), f32)
    g_cols_b = np.empty((BATCH, *case.spatial, *kk, case.cout), f32)
    g_inner = (slice(None), *(slice(pk, pk + o) for o in case.out))

    def input_copies():
        g_pad[g_inner] = g_cl
        np.copyto(g_cols_b, windows(g_pad, case.spatial, 1))

    def copy_call():  # pad + window copy of x, then of g
        x_pad[inner] = x_cl
        np.copyto(x_cols, windows(x_pad, case.out, case.stride))
        input_copies()

    return gemm_call, copy_call


def window_slices(case: Case):
    """Per kernel offset: (output slice, input slice) of the positions it reads in range."""
    per_axis = []
    for size, out in zip(case.spatial, case.out, strict=True):
        axis = []
        for k in range(case.kernel):
            # output positions o with 0 <= o*stride + k - padding < size
            lo = max(0, -(-(case.padding - k) // case.stride))
            hi = min(out, (size - 1 + case.padding - k) // case.stride + 1)
            start = lo * case.stride + k - case.padding
            axis.append((slice(lo, hi), slice(start, start + (hi - lo - 1) * case.stride + 1,
                                              case.stride)))
        per_axis.append(axis)
    result = []
    for offset in itertools.product(range(case.kernel), repeat=case.dims):
        pairs = [per_axis[d][k] for d, k in enumerate(offset)]
        result.append((offset, (tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))))
    return result


def mnist1d_models(seed: int):
    from retrograd.train.architectures import build, layers_for
    from retrograd.train.config import TrainConfig

    layers = layers_for(TrainConfig(data="mnist1d", model="cnn"), (1, 40), 10)
    rg.manual_seed(seed)
    ours = build(layers)
    theirs = torch.nn.Sequential(*(getattr(torch.nn, s["type"])(
        **{k: v for k, v in s.items() if k != "type"}) for s in layers)).float()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                            for k, v in ours.state_dict().items()})
    return ours, theirs


def step_calls(seed: int) -> dict:
    data = rg.data.mnist1d()
    x = ((data.x_train - data.x_train.mean()) / data.x_train.std()).astype(np.float32)
    ours, theirs = mnist1d_models(seed)
    opt = rg.optim.Adam(ours.parameters(), lr=1e-2)
    topt = torch.optim.Adam(theirs.parameters(), lr=1e-2)
    batches = [(x[i:i + BATCH], data.y_train[i:i + BATCH])
               for i in range(0, len(x) - BATCH + 1, BATCH)]
    tb = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in batches]
    rb = [(rg.tensor(a), rg.tensor(b)) for a, b in batches]
    state = {"i": 0, "j": 0}

    def rg_call():
        xb, yb = rb[state["i"] % len(rb)]
        state["i"] += 1
        opt.zero_grad()
        rg.nn.functional.cross_entropy(ours(xb), yb).backward()
        opt.step()

    def torch_call():
        xb, yb = tb[state["j"] % len(tb)]
        state["j"] += 1
        topt.zero_grad()
        torch.nn.functional.cross_entropy(theirs(xb), yb).backward()
        topt.step()

    return {RG: rg_call, PT: torch_call}


def check(seed: int) -> bool:
    ok = True
    for case in CASES:
        calls = conv_calls(case, seed)
        for name in (GEMM, COPY):  # the floors run
            calls[name]()
        layer, tlayer, xr, xt = calls["check"]
        g = np.random.default_rng(seed + 1).standard_normal(
            (BATCH, case.cout, *case.out)).astype(np.float32)
        out, tout = layer(xr), tlayer(xt)
        out.backward(rg.tensor(g))
        tout.backward(torch.from_numpy(g))
        pairs = [(out.numpy(), tout.detach().numpy()), (xr.grad.numpy(), xt.grad.numpy()),
                 (layer.weight.grad.numpy(), tlayer.weight.grad.numpy()),
                 (layer.bias.grad.numpy(), tlayer.bias.grad.numpy())]
        err = max(float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30)) for a, b in pairs)
        print(f"{case.name}: max relative difference {err:.1e}")
        ok &= err < 1e-4
    ours, theirs = mnist1d_models(seed)
    x = np.random.default_rng(seed).standard_normal((BATCH, 40)).astype(np.float32)
    d = float(np.max(np.abs(ours(rg.tensor(x)).numpy()
                            - theirs(torch.from_numpy(x)).detach().numpy())))
    print(f"MNIST-1D CNN logits: max abs difference {d:.1e}")
    return ok and d < 1e-3


def calibrate(calls: dict, segment_s: float) -> int:
    """Calls per segment so the slower library's segment takes about segment_s."""
    worst = 0.0
    for name in (RG, PT):
        calls[name]()
        t0 = time.perf_counter()
        for _ in range(3):
            calls[name]()
        worst = max(worst, (time.perf_counter() - t0) / 3)
    return max(1, int(segment_s / worst))


def bench(name: str, calls: dict, rounds: int, segment_s: float, pause: float) -> dict:
    names = [n for n in (RG, PT, GEMM, COPY) if n in calls]
    k = calibrate(calls, segment_s)

    def make_segment(impl: str, r: int):
        call = calls[impl]

        def run():
            for _ in range(k):
                call()
        return call, run  # one untimed call as the lead-in (settles torch's spinning pool)

    times = common.interleaved(names, rounds, make_segment, warmup_rounds=1, pause=pause)
    return {"name": name, "k": k, "times": {n: [t / k for t in v] for n, v in times.items()}}


def markdown(results, args, env_lines, load: str) -> str:
    fmt_us, fmt_ratio, ratio_stats = common.fmt_us, common.fmt_ratio, common.ratio_stats
    details = [f"{args.rounds} interleaved rounds after 1 warm-up round, segments of about "
               f"{args.segment_ms:g} ms, BLAS and torch threads: {args.threads}", load]
    out = common.report_header("Convolutions and the MNIST-1D CNN step vs PyTorch eager "
                               "(float32, batch 128, us per call)", __file__, details,
                               env_lines)
    out += ["| case | retrograd | PyTorch | PyTorch / retrograd (IQR) | GEMM floor | copy floor "
            "| retrograd − GEMM − copies |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for res in results:
        t = res["times"]
        med = {n: statistics.median(v) for n, v in t.items()}
        floors = [fmt_us(med[n]) if n in med else "" for n in (GEMM, COPY)]
        rest = ""
        if GEMM in med:
            left = med[RG] - med[GEMM] - med[COPY]
            rest = f"{fmt_us(max(left, 0.0))} ({max(left, 0.0) / med[RG]:.0%})"
            floors = [f"{fmt_us(med[n])} ({med[n] / med[RG]:.0%})" for n in (GEMM, COPY)]
        out.append(f"| {res['name']} | {fmt_us(med[RG])} | {fmt_us(med[PT])} "
                   f"| {fmt_ratio(ratio_stats(t[PT], t[RG]))} | {floors[0]} | {floors[1]} "
                   f"| {rest} |")
    out.append("")
    out.append("A ratio above 1 means retrograd is faster. Floors are % of retrograd's time.")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--segment-ms", type=float, default=150.0)
    parser.add_argument("--check", action="store_true", help="agreement with torch only")
    parser.add_argument("--only", default=None, help="run only cases whose name contains this")
    common.add_harness_args(parser, "NumPy BLAS and torch threads (default 2)", pause=0.05)
    args = parser.parse_args(argv)
    limits = common.limit_threads(args.threads)  # noqa: F841  (kept alive)
    torch.manual_seed(args.seed)
    rg.manual_seed(args.seed)
    if args.check:
        return 0 if check(args.seed) else 1
    if not check(args.seed):
        print("retrograd and torch disagree: not timing")
        return 1
    load = common.OtherLoad()
    results = []
    for case in CASES:
        if args.only and args.only not in case.name:
            continue
        calls = conv_calls(case, args.seed)
        calls.pop("check")
        results.append(bench(case.name, calls, args.rounds, args.segment_ms / 1e3, args.pause))
        print(f"done: {case.name}", flush=True)
    if not args.only or args.only in STEP:
        results.append(bench(STEP, step_calls(args.seed), args.rounds, args.segment_ms / 1e3,
                             args.pause))
    print(markdown(results, args, common.environment_lines(args.threads), load.describe()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
