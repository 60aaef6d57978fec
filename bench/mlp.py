"""Training throughput of an MLP 784-256-256-10: retrograd vs hand-written NumPy vs PyTorch vs
JAX jit, against the GEMM-only floor.

The three implementations train the same model (ReLU, cross-entropy on logits, float32) with the
same optimizer -- SGD with lr 0.01 and momentum 0.9, or Adam with lr 1e-3 and the default betas
and eps -- from the same initial weights on the same batches, so they do the same work; `--check`
verifies that by comparing their loss trajectories and weight updates.

    python bench/mlp.py                         # the benchmark with SGD (~2 min on 2 idle cores)
    python bench/mlp.py --optimizer sgd,adam    # both optimizers, one table each (~4 min)
    python bench/mlp.py --check                 # equal-work check only (a few seconds)
    python bench/mlp.py --profile               # cProfile of retrograd's training step

Methodology:
- The data is MNIST-like: a fixed, seeded pool of 8192 samples with about 20% non-zero pixels
  (a random mask times U(0, 1)), labels from a fixed random linear "teacher". Dense uniform noise
  would kill ReLUs and fill the momentum buffers with denormals, slowing every library 2-4x.
- Implementations are interleaved: after a warm-up, each of R rounds runs K training steps of
  every implementation on the same K batches, the order rotated from round to round. We report
  the median samples/s per implementation and the median of the per-round ratios (with their
  interquartile range), which cancels most of the drift of a shared, noisy machine.
- Each timed segment starts settled: 50 ms idle (`--pause`), then one untimed step. PyTorch's
  OpenMP workers spin for 10-30 ms after its last step; without this, the next implementation's
  first step took 10-14 ms instead of 1.5 and the next six were 20-70% slower, and with the
  rotation retrograd followed PyTorch in two rounds of three, NumPy in one.
- NumPy's BLAS and torch both use 2 threads (`--threads`). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
  slow NumPy's OpenBLAS down; if set, the script re-executes itself without them and says so.
  Denormals: each library runs with its own default. retrograd's optimizers flush denormals to
  zero inside their update (Adam's moments decay into denormals, which made its step at batch
  32 1.8x slower after 3000 steps); XLA (JAX) flushes everywhere; NumPy and PyTorch keep
  gradual underflow, so the hand-written Adam slows down by about 25% over the same steps.
- Columns beyond the first three: "JAX jit" (bench/mlp_jax.py: the whole step under jax.jit,
  parameters and optimizer state donated) runs in its own process, driven over a pipe segment by
  segment so it interleaves with the others while XLA's threads stay out of this process; it
  appears when JAX is importable (`pip install -e '.[bench]'`), else the report says it was
  skipped. "retrograd compiled" appears when `retrograd.compile` exists (the same step, captured
  and replayed). "GEMM floor" replays the step's eight matrix products alone (three forward,
  three weight gradients, two input gradients, into preallocated outputs): no implementation
  doing this arithmetic with this BLAS can take less; the second table gives each step time
  over it.
- The hand-written NumPy optimizers follow torch.optim's rules exactly and update in place
  (Adam through one scratch array per parameter, as retrograd's Adam does); PyTorch's optimizer
  runs with its defaults (for Adam on CPU that is the single-tensor loop, not foreach; the report
  says which it used).
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
import importlib.util  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

rg = common.import_retrograd()

SIZES = (784, 256, 256, 10)
SGD_LR, MOMENTUM = 0.01, 0.9
ADAM_LR, BETAS, EPS = 1e-3, (0.9, 0.999), 1e-8
OPTIMIZERS = ("sgd", "adam")
OPTIMIZER_TITLES = {"sgd": f"SGD lr {SGD_LR} momentum {MOMENTUM}",
                    "adam": f"Adam lr {ADAM_LR:g}, betas {BETAS}, eps {EPS:g}"}
POOL, DENSITY = 8192, 0.2
IMPLS = ("retrograd", "NumPy", "PyTorch")  # always there; see implementations() for the rest
JAX_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mlp_jax.py")


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

    def __init__(self, params: list[np.ndarray], optimizer: str):
        self.model = _retrograd_model()
        keys = [k for k, _ in self.model.named_parameters()]
        self.model.load_state_dict(dict(zip(keys, params, strict=True)))
        if optimizer == "sgd":
            self.opt = rg.optim.SGD(self.model.parameters(), lr=SGD_LR, momentum=MOMENTUM)
        else:
            self.opt = rg.optim.Adam(self.model.parameters(), lr=ADAM_LR, betas=BETAS, eps=EPS)

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

    def set_params(self, values: list[np.ndarray]) -> None:
        with rg.no_grad():
            for p, value in zip(self.model.parameters(), values, strict=True):
                p.copy_(value)


class CompiledRetrogradMLP(RetrogradMLP):
    """retrograd's step under `retrograd.compile` (absent before that lands: no column)."""

    name = "retrograd compiled"

    def __init__(self, params: list[np.ndarray], optimizer: str):
        super().__init__(params, optimizer)
        self.compiled = rg.compile(self._train_step)

    def _train_step(self, x, y):
        self.opt.zero_grad()
        loss = rg.nn.functional.cross_entropy(self.model(x), y)
        loss.backward()
        self.opt.step()
        return loss

    def step(self, batch):
        return self.compiled(*batch)


class NumpyMLP:
    """The same training step written out by hand: forward, the fused softmax-cross-entropy
    gradient (p - onehot) / N, backward, and torch.optim's SGD-with-momentum or Adam update,
    in place."""

    name = "NumPy"

    def __init__(self, params: list[np.ndarray], optimizer: str):
        self.w = [p.copy() for p in params]  # W1, b1, W2, b2, W3, b3
        self.update = self._sgd if optimizer == "sgd" else self._adam
        self.bufs: list[np.ndarray | None] = [None] * len(self.w)  # SGD's momentum buffers
        self.t = 0  # Adam's step count, moments and scratch arrays
        self.m = [np.zeros_like(p) for p in self.w]
        self.v = [np.zeros_like(p) for p in self.w]
        self.tmp = [np.empty_like(p) for p in self.w]

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
        self.update((gw1, gb1, gw2, gb2, gw3, gb3))
        return loss

    def _sgd(self, grads) -> None:
        """torch.optim.SGD with momentum: buf = g at the first step, then buf = m * buf + g;
        p -= lr * buf."""
        for i, g in enumerate(grads):
            buf = self.bufs[i]
            if buf is None:
                self.bufs[i] = buf = g  # g is a fresh array nothing else holds
            else:
                buf *= MOMENTUM
                buf += g
            self.w[i] -= SGD_LR * buf

    def _adam(self, grads) -> None:
        """torch.optim.Adam: m += (1 - b1)(g - m) (torch's lerp); v = b2 v + (1 - b2) g^2;
        denom = sqrt(v) / sqrt(1 - b2^t) + eps; p -= lr / (1 - b1^t) * m / denom. Fused and in
        place through one scratch array per parameter: nothing allocated per step."""
        self.t += 1
        b1, b2 = BETAS
        step_size = ADAM_LR / (1 - b1 ** self.t)  # constants in float64, as torch
        bc2_sqrt = math.sqrt(1 - b2 ** self.t)
        for p, g, m, v, tmp in zip(self.w, grads, self.m, self.v, self.tmp, strict=True):
            np.subtract(g, m, out=tmp)
            tmp *= 1 - b1
            m += tmp
            v *= b2
            np.multiply(g, g, out=tmp)
            tmp *= 1 - b2
            v += tmp
            np.sqrt(v, out=tmp)
            tmp /= bc2_sqrt
            tmp += EPS
            np.divide(m, tmp, out=tmp)
            tmp *= step_size
            p -= tmp

    def params(self) -> list[np.ndarray]:
        return [p.copy() for p in self.w]

    def set_params(self, values: list[np.ndarray]) -> None:
        for p, value in zip(self.w, values, strict=True):
            np.copyto(p, value)


class TorchMLP:
    name = "PyTorch"

    def __init__(self, params: list[np.ndarray], optimizer: str):
        nn = torch.nn
        self.model = nn.Sequential(nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(),
                                   nn.Linear(SIZES[1], SIZES[2]), nn.ReLU(),
                                   nn.Linear(SIZES[2], SIZES[3]))
        with torch.no_grad():
            for p, value in zip(self.model.parameters(), params, strict=True):
                p.copy_(torch.from_numpy(value))
        if optimizer == "sgd":
            self.opt = torch.optim.SGD(self.model.parameters(), lr=SGD_LR, momentum=MOMENTUM)
        else:  # torch's defaults: foreach=None, fused=None
            self.opt = torch.optim.Adam(self.model.parameters(), lr=ADAM_LR, betas=BETAS,
                                        eps=EPS)

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

    def set_params(self, values: list[np.ndarray]) -> None:
        with torch.no_grad():
            for p, value in zip(self.model.parameters(), values, strict=True):
                p.copy_(torch.from_numpy(value))

    def implementation(self) -> str:
        """Which of torch's optimizer implementations step() runs (defaults resolved as
        torch.optim resolves them)."""
        kind = type(self.opt).__name__
        d = self.opt.defaults
        foreach, fused = d.get("foreach"), d.get("fused")
        how = "explicit"
        if not foreach and not fused and foreach is None and fused is None:
            how = "default"
            try:
                from torch.optim.optimizer import _default_to_fused_or_foreach

                params = list(self.model.parameters())
                _, foreach = _default_to_fused_or_foreach(params, False, use_fused=False)
            except (ImportError, TypeError):  # private API: fall back to the CPU behaviour
                foreach = False
        impl = "fused" if fused else "foreach (multi-tensor)" if foreach \
            else f"single-tensor for-loop (_single_tensor_{kind.lower()})"
        return f"torch.optim.{kind} ran the {impl} implementation ({how} foreach/fused)"


class GemmFloor:
    """The step's eight matrix products alone, as NumpyMLP computes them, into preallocated
    outputs: the time no implementation of this step on this BLAS can beat."""

    name = "GEMM floor"

    def __init__(self, params: list[np.ndarray], optimizer: str):
        self.w1, self.w2, self.w3 = params[0], params[2], params[4]
        self.out: dict[int, list[np.ndarray]] = {}

    def prepare(self, x, y):
        return x, y

    def step(self, batch):
        x = batch[0]
        n = len(x)
        out = self.out.get(n)
        if out is None:
            shapes = [(n, SIZES[1]), (n, SIZES[2]), (n, SIZES[3]), (SIZES[3], SIZES[2]),
                      (n, SIZES[2]), (SIZES[2], SIZES[1]), (n, SIZES[1]), (SIZES[1], SIZES[0])]
            out = self.out[n] = [np.empty(s, np.float32) for s in shapes]
        a1, a2, z, gw3, g2, gw2, g1, gw1 = out
        w1, w2, w3 = self.w1, self.w2, self.w3
        np.matmul(x, w1.T, out=a1)  # forward
        np.matmul(a1, w2.T, out=a2)
        np.matmul(a2, w3.T, out=z)
        np.matmul(z.T, a2, out=gw3)  # backward: z stands in for dL/dz
        np.matmul(z, w3, out=g2)
        np.matmul(g2.T, a1, out=gw2)
        np.matmul(g2, w2, out=g1)
        np.matmul(g1.T, x, out=gw1)
        return None


class JaxMLP:
    """A proxy for bench/mlp_jax.py's jitted step, running in its own process."""

    name = "JAX jit"

    def __init__(self, params: list[np.ndarray], optimizer: str, pool=None, threads: int = 2):
        self.optimizer = optimizer
        self._tmp = tempfile.TemporaryDirectory()
        path = os.path.join(self._tmp.name, "pool.npz")
        np.savez(path, x=pool[0], y=pool[1], **{f"p{i}": p for i, p in enumerate(params)})
        env = dict(os.environ, XLA_FLAGS=f"--xla_cpu_multi_thread_eigen=true "
                   f"intra_op_parallelism_threads={threads}", JAX_PLATFORMS="cpu")
        self.proc = subprocess.Popen([sys.executable, JAX_SCRIPT, "--serve", path], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ask(f"reset {optimizer}")

    def ask(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if not answer or answer.startswith("error"):
            raise RuntimeError(f"bench/mlp_jax.py answered {answer!r} to {line!r}")
        return answer

    def segment(self, batch: int, first: int, count: int):
        self.ask(f"prepare {batch} {first} {count}")
        return (lambda: self.ask("one")), (lambda: self.ask("step"))

    def losses(self, batch: int, count: int) -> list[float]:
        return [float(v) for v in self.ask(f"losses {batch} {count} {self.optimizer}").split()]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        self._tmp.cleanup()


CLASSES = (RetrogradMLP, NumpyMLP, TorchMLP)


def jax_available() -> bool:
    return importlib.util.find_spec("jax") is not None


def implementations(jax: bool = True) -> tuple[str, ...]:
    """The columns of this run: the three, retrograd compiled when retrograd.compile exists,
    JAX jit when JAX is importable (and wanted), the GEMM floor."""
    names = list(IMPLS)
    if getattr(rg, "compile", None) is not None:
        names.insert(1, CompiledRetrogradMLP.name)
    if jax and jax_available():
        names.append(JaxMLP.name)
    return tuple(names + [GemmFloor.name])


def build_all(seed: int, optimizer: str, names=IMPLS, pool=None, threads: int = 2):
    params = initial_params(seed)
    by_name = {cls.name: cls for cls in (*CLASSES, CompiledRetrogradMLP, GemmFloor)}
    impls = [JaxMLP(params, optimizer, pool, threads) if n == JaxMLP.name
             else by_name[n](params, optimizer) for n in names]
    return impls, params


# ----------------------------------------------------------------------------------------------
# equal-work check

# A pre-activation that rounding puts on the other side of 0 changes one unit's gradient, and
# Adam keeps it in its moment for ~10 steps and scales every weight's step to about lr: allow
# 1e-3 for Adam (a misplaced eps or bias correction is off by far more than that).
MOVE_TOL = {"sgd": 1e-4, "adam": 1e-3}


def check(pool, batch_sizes, steps: int, seed: int, optimizer: str) -> bool:
    """Train each implementation `steps` steps from the same weights on the same batches and
    compare, step by step, the losses and the weight updates with NumPy's (to float32
    tolerance).

    After every step the weights of all three are reset to NumPy's (their optimizer states
    carry on untouched): free-running trajectories of ReLU networks part at the first
    pre-activation that rounding puts on the other side of 0, and Adam, which moves every weight
    by about lr whatever the size of its gradient, turns that into visible differences within a
    few steps. Synchronised, each step compares the same forward, backward and optimizer rule.
    """
    ok = True
    print(f"equal-work check ({optimizer}): {steps} steps per batch size from the same initial "
          "weights, weights re-synchronised to NumPy's after each step")
    names = [n for n in implementations(jax=False) if n != GemmFloor.name]
    others = [n for n in names if n != "NumPy"]
    for b in batch_sizes:
        impls, weights = build_all(seed, optimizer, names)
        losses = {impl.name: [] for impl in impls}
        move_err = dict.fromkeys(losses, 0.0)
        for x, y in batch_list(*pool, b, 0, steps):
            moves = {}
            for impl in impls:
                impl.set_params(weights)
                losses[impl.name].append(impl.step(impl.prepare(x, y)).item())
                moves[impl.name] = [p - q for p, q in zip(impl.params(), weights, strict=True)]
            for name in others:  # each parameter's update vs NumPy's
                move_err[name] = max(move_err[name], *(
                    np.linalg.norm(m - r) / np.linalg.norm(r)
                    for m, r in zip(moves[name], moves["NumPy"], strict=True)))
            weights = [q + m for q, m in zip(weights, moves["NumPy"], strict=True)]
        ref_loss = np.array(losses["NumPy"])
        print(f"  batch {b}: losses " + ", ".join(f"{v:.5f}" for v in ref_loss) + " (NumPy)")
        for name in others:
            loss_err = np.max(np.abs(np.array(losses[name]) - ref_loss) / np.abs(ref_loss))
            good = loss_err < 1e-5 and move_err[name] < MOVE_TOL[optimizer]
            ok &= good
            print(f"    {name:>9} vs NumPy: max rel loss diff {loss_err:.1e}, max rel diff of a "
                  f"weight update {move_err[name]:.1e}  {'ok' if good else 'MISMATCH'}")
    print("check " + ("passed" if ok else "FAILED"))
    return ok


def check_jax(pool, batch_sizes, steps: int, seed: int, optimizer: str, threads: int) -> bool:
    """JAX's losses over `steps` free-running steps from the same weights vs NumPy's (JAX
    cannot be re-synchronised step by step through the pipe; over a few steps free-running
    trajectories stay within float32 rounding of each other)."""
    ok = True
    for b in batch_sizes:
        jax = JaxMLP(initial_params(seed), optimizer, pool, threads)
        try:
            theirs = np.array(jax.losses(b, steps))
        finally:
            jax.close()
        numpy = NumpyMLP(initial_params(seed), optimizer)
        ours = np.array([numpy.step(xy).item() for xy in batch_list(*pool, b, 0, steps)])
        err = np.max(np.abs(theirs - ours) / np.abs(ours))
        good = err < 1e-4
        ok &= good
        print(f"    JAX jit vs NumPy, batch {b}: {steps} free-running steps, max rel loss diff "
              f"{err:.1e}  {'ok' if good else 'MISMATCH'}")
    return ok


# ----------------------------------------------------------------------------------------------
# benchmark


def bench_batch(pool, batch: int, steps: int, rounds: int, warmup: int, pause: float,
                seed: int, optimizer: str, names, threads: int) -> dict[str, list[float]]:
    """Samples/s per round for each implementation, interleaved round by round."""
    impls, _ = build_all(seed, optimizer, names, pool, threads)
    by_name = {impl.name: impl for impl in impls}
    try:
        for impl in impls:  # warm-up: caches, allocator, optimizer state, lazy init, jit
            if isinstance(impl, JaxMLP):
                lead_in, run = impl.segment(batch, 0, warmup)
                run()
                continue
            for b in [impl.prepare(x, y) for x, y in batch_list(*pool, batch, 0, warmup)]:
                impl.step(b)
        return _bench_rounds(pool, batch, steps, rounds, warmup, pause, by_name)
    finally:
        for impl in impls:
            if isinstance(impl, JaxMLP):
                impl.close()


def _bench_rounds(pool, batch, steps, rounds, warmup, pause, by_name):
    def make_segment(name: str, r: int):
        impl = by_name[name]
        if isinstance(impl, JaxMLP):
            return impl.segment(batch, warmup + r * steps, steps)
        batches = [impl.prepare(x, y)
                   for x, y in batch_list(*pool, batch, warmup + r * steps, steps)]

        def run():
            for b in batches:
                impl.step(b)

        def lead_in():  # wakes this implementation's threads and caches, untimed
            impl.step(batches[0])
        return lead_in, run

    times = common.interleaved(list(by_name), rounds, make_segment, pause=pause)
    return {name: [steps * batch / t for t in ts] for name, ts in times.items()}


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


def parse_optimizers(text: str) -> list[str]:
    names = [s.strip().lower() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in OPTIMIZERS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown optimizer {bad or text!r}: choose from "
                                         + ", ".join(OPTIMIZERS))
    return list(dict.fromkeys(names))


# ----------------------------------------------------------------------------------------------
# reporting


def markdown(optimizer: str, results, args, steps, env_lines, elapsed: float,
             torch_impl: str, load: str, skipped: str = "") -> str:
    fmt_rate, fmt_ratio, ratio_stats = common.fmt_rate, common.fmt_ratio, common.ratio_stats
    details = [
        f"{args.rounds} interleaved rounds, steps per round "
        + ", ".join(f"{k} at batch {b}" for b, k in zip(args.batch_sizes, steps, strict=True))
        + f"; {elapsed:.0f} s in all; {load}.",
        f"optimizer: {OPTIMIZER_TITLES[optimizer]}; {torch_impl}.",
    ] + ([skipped] if skipped else [])
    out = common.report_header(
        f"MLP 784-256-256-10 training throughput (float32, {OPTIMIZER_TITLES[optimizer]}, "
        "samples/s)", __file__, details, env_lines)
    names = [n for n in next(iter(results.values())) if n != GemmFloor.name]
    # ratios of the retrograd columns against each peer
    ours = [n for n in names if n.startswith("retrograd")]
    peers = [n for n in names if not n.startswith("retrograd")]
    pairs = [(a, b) for a in ours for b in peers]
    out += [
        "| batch | " + " | ".join(names) + " | "
        + " | ".join(f"{a} / {b}" for a, b in pairs) + " |",
        "|---:|" + "---:|" * (len(names) + len(pairs)),
    ]
    for b, rates in results.items():
        med = {k: statistics.median(v) for k, v in rates.items()}
        out.append(f"| {b} | " + " | ".join(fmt_rate(med[n]) for n in names) + " | "
                   + " | ".join(fmt_ratio(ratio_stats(rates[x], rates[y])) for x, y in pairs)
                   + " |")
    out += ["", "Samples/s: median over rounds. Ratios: median of the per-round ratios of "
            "samples/s (interquartile range in parentheses); above 1 means the first is faster.",
            "", "Step time over the GEMM floor (the step's eight matrix products alone; "
            "median of per-round ratios, 1.00 is the floor):", "",
            "| batch | floor, us per step | " + " | ".join(names) + " |",
            "|---:|---:|" + "---:|" * len(names)]
    for b, rates in results.items():
        floor = rates[GemmFloor.name]
        floor_us = b / statistics.median(floor) * 1e6
        out.append(f"| {b} | {floor_us:.0f} | " + " | ".join(
            fmt_ratio(ratio_stats(floor, rates[n])) for n in names) + " |")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# profile


def profile(pool, batch: int, steps: int, seed: int, optimizer: str) -> None:
    impl = RetrogradMLP(initial_params(seed), optimizer)
    for b in [impl.prepare(x, y) for x, y in batch_list(*pool, batch, 0, 5)]:
        impl.step(b)
    batches = [impl.prepare(x, y) for x, y in batch_list(*pool, batch, 5, steps)]

    def run():
        for b in batches:
            impl.step(b)

    t0 = time.perf_counter()
    run()  # once without the profiler, for the real time per step
    plain = time.perf_counter() - t0
    print(f"retrograd ({optimizer}), batch {batch}, {steps} steps: "
          f"{plain / steps * 1e6:.0f} us per step without the profiler")
    common.profile(run, f"the same {steps} steps")


# ----------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--optimizer", type=parse_optimizers, default=["sgd"],
                        help="sgd, adam, or a comma-separated list run one after the other, "
                             "one table each (default sgd)")
    parser.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")],
                        default=[32, 128, 1024], help="comma-separated (default 32,128,1024)")
    parser.add_argument("--rounds", type=int, default=40,
                        help="interleaved timed rounds per batch size (default 40)")
    parser.add_argument("--steps", default=None,
                        help="training steps per implementation per round: one integer or one "
                             "per batch size (default: 16384 samples, at least 4 steps)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed steps per implementation first (default: one round)")
    parser.add_argument("--no-jax", action="store_true",
                        help="leave out the JAX jit column even when JAX is installed")
    parser.add_argument("--check", action="store_true",
                        help="only check that the three implementations do the same work")
    parser.add_argument("--profile", action="store_true",
                        help="only profile retrograd's training step at the first batch size "
                             "with the first optimizer")
    common.add_harness_args(parser, "BLAS threads for NumPy and torch threads (default 2)",
                            pause=0.05)
    args = parser.parse_args(argv)
    if args.rounds < 1 or min(args.batch_sizes) < 1:
        parser.error("--rounds and --batch-sizes must be positive")
    steps = parse_steps(args.steps, args.batch_sizes)

    limits = common.limit_threads(args.threads)  # noqa: F841 (kept alive)
    env_lines = common.environment_lines(args.threads)
    for line in env_lines:
        print(line)
    pool = make_pool(args.seed)
    print(f"data: {len(pool[0])} samples, {np.count_nonzero(pool[0]) / pool[0].size:.1%} "
          f"non-zero pixels, label counts {np.bincount(pool[1], minlength=SIZES[-1]).tolist()}")
    print()

    if args.check:
        ok = True
        for opt in args.optimizer:
            ok &= check(pool, args.batch_sizes, int(args.steps or 5), args.seed, opt)
            if not args.no_jax and jax_available():
                ok &= check_jax(pool, args.batch_sizes, int(args.steps or 5), args.seed, opt,
                                args.threads)
            print()
        return 0 if ok else 1
    if args.profile:
        profile(pool, args.batch_sizes[0], steps[0] * args.rounds, args.seed, args.optimizer[0])
        return 0

    names, skipped = implementations(jax=not args.no_jax), ""
    if not args.no_jax and JaxMLP.name not in names:
        skipped = ("JAX jit column skipped: JAX is not importable in this environment "
                   "(pip install -e '.[bench]')")
        print(skipped)
    for opt in args.optimizer:
        if not check(pool, [args.batch_sizes[0]], 3, args.seed, opt):
            return 1
        if JaxMLP.name in names and not check_jax(pool, [args.batch_sizes[0]], 3, args.seed,
                                                  opt, args.threads):
            return 1
        print()
    tables = []
    for opt in args.optimizer:
        t_start = time.perf_counter()
        load = common.OtherLoad()
        results = {}
        for b, k in zip(args.batch_sizes, steps, strict=True):
            t0 = time.perf_counter()
            batch_load = common.OtherLoad()
            warmup = k if args.warmup is None else args.warmup
            rates = bench_batch(pool, b, k, args.rounds, warmup, args.pause, args.seed, opt,
                                names, args.threads)
            results[b] = rates
            print(f"{opt:>4}, batch {b:>5}: " + "  ".join(
                f"{name} {common.fmt_rate(statistics.median(rates[name]))}/s" for name in names)
                + f"   ({args.rounds} rounds x {k} steps, {time.perf_counter() - t0:.0f} s; "
                f"slowest segment {common.noise(rates, slow_is_high=False):.1f}x the median; "
                f"{batch_load.describe()})", flush=True)
        torch_impl = TorchMLP(initial_params(args.seed), opt).implementation()
        tables.append(markdown(opt, results, args, steps, env_lines,
                               time.perf_counter() - t_start, torch_impl, load.describe(),
                               skipped))
        print()
        print(tables[-1], flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
