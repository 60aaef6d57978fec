"""The JAX jit column of bench/mlp.py, in its own process: the whole training step (forward,
cross-entropy, backward, the SGD-with-momentum or Adam update of torch.optim's rules) under one
`jax.jit`, parameters and optimizer state donated, so XLA fuses the update and reuses buffers.

bench/mlp.py starts this script with `--serve POOL.npz` and drives it over stdin/stdout, one
line per command, so that its segments interleave with the other implementations' round by
round while XLA's threads live in this process only:

    prepare BATCH FIRST COUNT   put batches FIRST .. FIRST+COUNT-1 on the device (untimed)
    step                     run the prepared batches, one step each (answers "ok")
    one                      one step on the first prepared batch (the untimed lead-in)
    losses BATCH COUNT OPT   a fresh model from the initial weights, COUNT steps from batch 0:
                             the losses, space-separated (the equal-work check)
    reset OPTIMIZER          a fresh model and optimizer (answers "ok")
    quit

It imports only NumPy and JAX (the `bench` extra); it needs neither retrograd nor torch.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

SGD_LR, MOMENTUM = 0.01, 0.9
ADAM_LR, BETAS, EPS = 1e-3, (0.9, 0.999), 1e-8


def batch_list(x, y, batch: int, first: int, count: int):
    """bench/mlp.py's batches: an endless pass over the pool."""
    n = len(x)
    out = []
    for j in range(first, first + count):
        start = (j * batch) % n
        idx = np.arange(start, start + batch) % n
        out.append((x[idx], y[idx]))
    return out


def make_step(optimizer: str):
    """The jitted step(params, state, x, y) -> (params, state, loss), params and state
    donated."""
    import jax
    import jax.numpy as jnp

    def loss_fn(params, x, y):
        w1, b1, w2, b2, w3, b3 = params
        a1 = jax.nn.relu(x @ w1.T + b1)
        a2 = jax.nn.relu(a1 @ w2.T + b2)
        z = a2 @ w3.T + b3
        logp = jax.nn.log_softmax(z, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    grad_fn = jax.value_and_grad(loss_fn)

    def sgd(params, state, x, y):
        # torch's SGD: buf = g at the first step, then m * buf + g; starting buf at 0 gives
        # exactly g at the first step (0 * m + g)
        loss, grads = grad_fn(params, x, y)
        bufs = [MOMENTUM * b + g for b, g in zip(state, grads, strict=True)]
        params = [p - SGD_LR * b for p, b in zip(params, bufs, strict=True)]
        return params, bufs, loss

    def adam(params, state, x, y):
        t, ms, vs = state
        loss, grads = grad_fn(params, x, y)
        t = t + 1
        b1, b2 = BETAS
        tf = t.astype(jnp.float32)
        step_size = ADAM_LR / (1 - b1 ** tf)
        bc2 = jnp.sqrt(1 - b2 ** tf)
        ms = [m + (1 - b1) * (g - m) for m, g in zip(ms, grads, strict=True)]
        vs = [b2 * v + (1 - b2) * g * g for v, g in zip(vs, grads, strict=True)]
        params = [p - step_size * m / (jnp.sqrt(v) / bc2 + EPS)
                  for p, m, v in zip(params, ms, vs, strict=True)]
        return params, (t, ms, vs), loss

    return jax.jit(sgd if optimizer == "sgd" else adam, donate_argnums=(0, 1))


class Model:
    def __init__(self, init: list[np.ndarray], optimizer: str):
        import jax.numpy as jnp

        self.jnp = jnp
        self.params = [jnp.asarray(p) for p in init]
        zeros = [jnp.zeros_like(p) for p in self.params]
        self.state = zeros if optimizer == "sgd" else \
            (jnp.asarray(0, jnp.int32), zeros, [jnp.zeros_like(p) for p in self.params])
        self.step_fn = make_step(optimizer)

    def step(self, x, y):
        self.params, self.state, loss = self.step_fn(self.params, self.state, x, y)
        return loss


def serve(pool_path: str) -> int:
    import jax

    data = np.load(pool_path)
    x, y = data["x"], data["y"].astype(np.int32)
    init = [data[f"p{i}"] for i in range(6)]
    model, batches = None, []
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "quit":
            break
        if cmd == "reset":
            model = Model(init, args[0])
            batches = []
            out = "ok"
        elif cmd == "prepare":
            b, first, count = map(int, args)
            batches = [(jax.device_put(xb), jax.device_put(yb))
                       for xb, yb in batch_list(x, y, b, first, count)]
            out = "ok"
        elif cmd in ("step", "one"):
            loss = None
            for xb, yb in batches if cmd == "step" else batches[:1]:
                loss = model.step(xb, yb)
            loss.block_until_ready()
            out = "ok"
        elif cmd == "losses":
            b, count, opt = int(args[0]), int(args[1]), args[2]
            fresh = Model(init, opt)
            out = " ".join(repr(float(fresh.step(xb, yb)))
                           for xb, yb in batch_list(x, y, b, 0, count))
        else:
            out = f"error unknown command {cmd!r}"
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", required=True, help="the .npz with x, y, p0 .. p5")
    args = parser.parse_args(argv)
    return serve(args.serve)


if __name__ == "__main__":
    sys.exit(main())
