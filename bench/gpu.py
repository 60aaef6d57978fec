"""retrograd on a CUDA GPU (CuPy): correctness checks, then an MLP step against PyTorch CUDA eager.

Needs only `PYTHONPATH=src python3 bench/gpu.py` on a machine with CuPy and PyTorch (CUDA) and
a GPU; nothing is installed. Without CuPy or a GPU it stops with one line (exit 2).

    PYTHONPATH=src python3 bench/gpu.py             # checks + benchmark, a markdown table
    PYTHONPATH=src python3 bench/gpu.py --dry-run   # the same logic on the CPU, tiny sizes
                                                    # (what the test suite runs)

1. The primitive table (tests/test_ops_table.py's cases) on the device: the forward agrees with
   the host's and the gradients with finite differences (float64).
2. Losses on the device against the host (float64, value and gradient).
3. Every optimizer (SGD to L-BFGS and Newton-CG) and the target algebra on the device against
   the host (float64, three steps), and an MLP's trajectory (seeded weights, 20 SGD steps,
   float32) on the device against the CPU's.
4. One training step (forward, cross-entropy, backward, SGD update) of MLP 784-4096-4096-10 at
   batch 4096 and 784-256-256-10 at batch 128, float32: retrograd on CuPy against PyTorch CUDA
   eager, interleaved round by round (median step time of each, median per-round ratio), with
   the CUDA kernels one step launches (counted by torch.profiler through CUPTI, which sees
   CuPy's launches as well as PyTorch's).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _stub_pytest() -> None:
    """tests/test_ops_table.py imports pytest for its decorators; the GPU image may lack it."""
    try:
        import pytest  # noqa: F401
        return
    except ImportError:
        pass

    class _Param(tuple):
        values = property(lambda self: tuple(self))

    stub = types.ModuleType("pytest")
    stub.param = lambda *values, **_: _Param(values)
    stub.mark = types.SimpleNamespace(parametrize=lambda *a, **k: (lambda f: f))
    sys.modules["pytest"] = stub


def need_gpu() -> None:
    """Stop with one line unless CuPy and a CUDA GPU are here."""
    import retrograd

    if not retrograd.cuda.is_available():
        print("bench/gpu.py: needs CuPy and a CUDA GPU (retrograd.cuda.is_available() is "
              "False); --dry-run runs its logic on the CPU", file=sys.stderr)
        sys.exit(2)


# ------------------------------------------------------------------ checks


def check_table(device) -> tuple[int, list[str]]:
    """(cases passed, failures) of the primitive table on `device`."""
    import numpy as np

    import retrograd
    from retrograd import backend
    from retrograd.autograd import gradcheck
    from retrograd.ops import PRIMITIVES
    from retrograd.tensor import apply

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    _stub_pytest()
    import test_ops_table as table

    def on(value):
        if isinstance(value, (np.ndarray, np.generic)):
            return backend.move(np.asarray(value), device)
        if isinstance(value, dict):
            return {k: v if k == "device" else on(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(on(v) for v in value)
        return value

    passed, failures = 0, []
    for case in table.cases():
        name, args, params = case.values
        prim = PRIMITIVES[name]
        try:
            inputs = table.as_inputs(prim, on(args))
            out = apply(prim, *inputs, **on(params))
            host_args = [np.asarray(a) if isinstance(a, np.generic) else a for a in args]
            want = apply(prim, *table.as_inputs(prim, host_args), **params).numpy()
            got = out.cpu().numpy()
            if not np.allclose(got, want, rtol=1e-10, atol=1e-10, equal_nan=True):
                raise AssertionError(f"forward differs from the host by "
                                     f"{np.nanmax(np.abs(got - want)):.3g}")
            gradcheck(lambda *xs, prim=prim, params=params: apply(prim, *xs, **on(params)),
                      inputs, atol=1e-6, rtol=1e-5)
            passed += 1
        except Exception as exc:  # report every failing case, not only the first
            failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
    del retrograd
    return passed, failures


def check_losses(device) -> list[str]:
    """Failures of the losses on `device` against the host (float64, values and gradients)."""
    import numpy as np

    import retrograd
    from retrograd.nn import functional as F

    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((16, 5)), rng.integers(0, 5, 16)
    probs = rng.uniform(0.05, 0.95, (16, 5))
    w = rng.uniform(0.5, 2.0, 5)
    losses = {
        "cross_entropy": lambda x, t, p, w: F.cross_entropy(x, t, weight=w, label_smoothing=0.1),
        "cross_entropy_probs": lambda x, t, p, w: F.cross_entropy(x, p),
        "nll_loss": lambda x, t, p, w: F.nll_loss(x.log_softmax(1), t, ignore_index=2),
        "focal_loss": lambda x, t, p, w: F.focal_loss(x, t, gamma=2.0),
        "mse_loss": lambda x, t, p, w: F.mse_loss(x, p),
        "bce": lambda x, t, p, w: F.binary_cross_entropy(x.sigmoid(), p),
        "bce_with_logits": lambda x, t, p, w: F.binary_cross_entropy_with_logits(x, p,
                                                                               pos_weight=w),
    }
    failures = []
    for name, loss in losses.items():
        try:
            results = []
            for dev in ("cpu", device):
                xs = retrograd.tensor(x, device=dev, requires_grad=True)
                value = loss(xs, *(retrograd.tensor(a, device=dev) for a in (t, probs, w)))
                value.backward()
                results.append((value.item(), xs.grad.cpu().numpy()))
            (v0, g0), (v1, g1) = results
            if not (np.isclose(v0, v1, rtol=1e-12) and np.allclose(g0, g1, rtol=1e-10,
                                                                    atol=1e-14)):
                raise AssertionError(f"value {v1} vs {v0}")
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
    return failures


def trajectory(device, steps: int = 20):
    """Losses and final weights of a seeded MLP trained with SGD on `device` (float32)."""
    import numpy as np

    import retrograd
    from retrograd import nn
    from retrograd.nn import functional as F

    retrograd.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 10)).to(device)
    opt = retrograd.optim.SGD(model.parameters(), lr=0.05)
    x, y = mnist_like(256, 0)
    x, y = retrograd.tensor(x, device=device), retrograd.tensor(y, device=device)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses), [p.cpu().numpy() for p in model.parameters()]


def check_optimizers(device) -> list[str]:
    """Failures of every optimizer (and the target algebra) on `device` against the host: a
    small float64 model, three steps each, the weights compared to 1e-10 relative."""
    import numpy as np

    import retrograd
    from retrograd import nn, targets
    from retrograd.nn import functional as F

    optim = retrograd.optim
    makers = {
        "SGD nesterov": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
        "Adam": lambda ps: optim.Adam(ps, lr=0.01),
        "AdamW amsgrad": lambda ps: optim.AdamW(ps, lr=0.01, amsgrad=True),
        "RMSprop centered": lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
        "Adagrad": lambda ps: optim.Adagrad(ps, lr=0.1),
        "Adadelta": lambda ps: optim.Adadelta(ps),
        "LBFGS strong_wolfe": lambda ps: optim.LBFGS(ps, max_iter=4,
                                                     line_search_fn="strong_wolfe"),
        "NewtonCG": lambda ps: optim.NewtonCG(ps, max_cg_iters=5),
    }
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((24, 6)), rng.integers(0, 3, 24)

    def run(dev, make):
        retrograd.manual_seed(2)
        model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double().to(dev)
        opt = make(model.parameters())
        xs, ys = retrograd.tensor(x, device=dev), retrograd.tensor(y, device=dev)
        soft = targets.smooth(targets.one_hot(ys, 3, dtype=np.float64), 0.1)
        weight = targets.inverse_frequency_weights(ys, 3, dtype=np.float64)

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(model(xs), soft) + F.cross_entropy(model(xs), ys,
                                                                      weight=weight)
            loss.backward()
            return loss

        for _ in range(3):
            opt.step(closure)
        return [p.cpu().numpy() for p in model.parameters()]

    failures = []
    for name, make in makers.items():
        try:
            for a, b in zip(run("cpu", make), run(device, make), strict=True):
                np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
    return failures


def check_trajectory(device) -> str:
    import numpy as np

    l0, w0 = trajectory("cpu")
    l1, w1 = trajectory(device)
    loss_diff = float(np.max(np.abs(l1 - l0) / np.abs(l0)))
    weight_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(w0, w1, strict=True))
    ok = loss_diff < 1e-4 and weight_diff < 1e-4
    return (f"{'ok' if ok else 'FAILED'}: 20 SGD steps, max relative loss difference "
            f"{loss_diff:.2e}, max weight difference {weight_diff:.2e} (float32; tolerance 1e-4)")


# ------------------------------------------------------------------ benchmark


def mnist_like(n: int, seed: int):
    """About 20% non-zero pixels, labels from a fixed linear teacher (no denormal trap)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = ((rng.random((n, 784)) < 0.2) * rng.random((n, 784))).astype(np.float32)
    teacher = np.random.default_rng(99).standard_normal((784, 10)).astype(np.float32)
    return x, (x @ teacher).argmax(axis=1).astype(np.int64)


def make_steps(sizes, batch, device, torch_device):
    """{name: one training step}, both models from the same weights on the same batch."""
    import torch

    import retrograd
    from retrograd import nn
    from retrograd.nn import functional as F

    layers, ref_layers = [], []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        ref_layers.append(torch.nn.Linear(a, b))
        if k < len(sizes) - 2:
            layers.append(nn.ReLU())
            ref_layers.append(torch.nn.ReLU())
    model = nn.Sequential(*layers)
    ref = torch.nn.Sequential(*ref_layers)
    ref.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    model.to(device)
    ref.to(torch_device)
    opt = retrograd.optim.SGD(model.parameters(), lr=0.01)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.01)
    x, y = mnist_like(batch, 1)
    xr, yr = retrograd.tensor(x, device=device), retrograd.tensor(y, device=device)
    xt, yt = torch.tensor(x, device=torch_device), torch.tensor(y, device=torch_device)

    def ours():
        opt.zero_grad()
        F.cross_entropy(model(xr), yr).backward()
        opt.step()

    def theirs():
        ref_opt.zero_grad()
        torch.nn.functional.cross_entropy(ref(xt), yt).backward()
        ref_opt.step()

    return {"retrograd": ours, "torch": theirs}


def synchronize(device) -> None:
    import torch

    import retrograd

    if str(device).startswith("cuda"):
        retrograd.cuda.synchronize()
        torch.cuda.synchronize()


def time_steps(steps, device, rounds: int, per_round: int) -> dict[str, list[float]]:
    """Seconds per step of each implementation, one list entry per round, interleaved (the
    order alternating round by round)."""
    names = list(steps)
    times = {n: [] for n in names}
    for name in names:  # warm up: kernels compiled, memory pools filled
        for _ in range(3):
            steps[name]()
    synchronize(device)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            synchronize(device)
            t0 = time.perf_counter()
            for _ in range(per_round):
                steps[name]()
            synchronize(device)
            times[name].append((time.perf_counter() - t0) / per_round)
    return times


def count_kernels(step) -> str:
    """CUDA kernels one step launches (torch.profiler over CUPTI: CuPy's launches too)."""
    try:
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile

        step()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            step()
            synchronize("cuda")
        kernels = [e for e in prof.events() if e.device_type == DeviceType.CUDA
                   and "memcpy" not in e.name.lower() and "memset" not in e.name.lower()]
        return str(len(kernels))
    except Exception as exc:
        return f"not counted ({type(exc).__name__})"


def benchmark(device, torch_device, configs, rounds, per_round, dry_run: bool) -> list[str]:
    import numpy as np

    ours, theirs = ("retrograd (NumPy, dry run)", "PyTorch CPU eager (dry run)") if dry_run \
        else ("retrograd (CuPy)", "PyTorch CUDA eager")
    rows = [f"| model | batch | {ours} ms/step | {theirs} ms/step | "
            "speed vs PyTorch (median of rounds, IQR) | kernels/step retrograd | "
            "kernels/step PyTorch |", "|---|---|---|---|---|---|---|"]
    for sizes, batch in configs:
        steps = make_steps(sizes, batch, device, torch_device)
        times = time_steps(steps, device, rounds, per_round)
        ratios = np.array(times["torch"]) / np.array(times["retrograd"])
        q1, med, q3 = np.percentile(ratios, [25, 50, 75])
        kernels = ("n/a (dry run)",) * 2 if dry_run else \
            (count_kernels(steps["retrograd"]), count_kernels(steps["torch"]))
        rows.append(f"| {'-'.join(map(str, sizes))} | {batch} | "
                    f"{statistics.median(times['retrograd']) * 1e3:.3f} | "
                    f"{statistics.median(times['torch']) * 1e3:.3f} | "
                    f"{med:.2f}x ({q1:.2f}-{q3:.2f}) | {kernels[0]} | {kernels[1]} |")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="run everything on the CPU at tiny sizes (a check of this script)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 15)")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.join(ROOT, "src"))
    if args.dry_run:
        import torch

        torch.set_num_threads(1)
        device, torch_device = "cpu", "cpu"
        configs = [((784, 64, 64, 10), 64), ((784, 16, 16, 10), 16)]
        rounds, per_round = args.rounds or 2, 2
    else:
        need_gpu()
        device, torch_device = "cuda:0", "cuda"
        configs = [((784, 4096, 4096, 10), 4096), ((784, 256, 256, 10), 128)]
        rounds, per_round = args.rounds or 15, 10
    passed, failures = check_table(device)
    print(f"primitive table on {device}: {passed} cases passed, {len(failures)} failed")
    for line in failures:
        print(f"  FAILED {line}")
    loss_failures = check_losses(device)
    print(f"losses on {device}: {'ok' if not loss_failures else 'FAILED'}")
    for line in loss_failures:
        print(f"  FAILED {line}")
    optimizer_failures = check_optimizers(device)
    print(f"optimizers and targets on {device}: {'ok' if not optimizer_failures else 'FAILED'}")
    for line in optimizer_failures:
        print(f"  FAILED {line}")
    try:
        print(f"MLP trajectory on {device} vs cpu: {check_trajectory(device)}")
    except Exception as exc:
        failures.append("trajectory")
        print(f"MLP trajectory on {device}: FAILED {type(exc).__name__}: {str(exc)[:200]}")
    print()
    for row in benchmark(device, torch_device, configs, rounds, per_round, args.dry_run):
        print(row)
    print(f"(float32, SGD lr 0.01, {rounds} rounds of {per_round} steps, interleaved; "
          f"command: PYTHONPATH=src python3 bench/gpu.py{' --dry-run' if args.dry_run else ''})")
    return 1 if failures or loss_failures or optimizer_failures else 0


if __name__ == "__main__":
    sys.exit(main())
