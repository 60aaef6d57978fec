"""retrograd.compile's output buffers: a replay writes the outputs of primitives that offer
`Primitive.into` (linear, linear_relu, matmul) into its last replay's arrays, but only when
nothing else holds them. Oracles: NumPy by hand from the weights of the moment, and eager
execution byte for byte.
"""

from __future__ import annotations

import weakref

import numpy as np
import pytest

import retrograd as rg
from retrograd import nn, optim
from retrograd.ops import PRIMITIVES

pytestmark = pytest.mark.filterwarnings("error::retrograd.compiled.CompileWarning")


def _program(f):
    (program,) = f.cache.values()
    return program


def _hidden_by_hand(model, x: np.ndarray) -> np.ndarray:
    w, b = model[0][0].weight.numpy(), model[0][0].bias.numpy()
    return np.maximum(x @ w.T + b, 0)


def test_held_views_of_an_activation_are_never_overwritten():
    rg.manual_seed(0)
    # Sequential runs Linear + ReLU as one linear_relu operation, which writes into buffers
    model = nn.Sequential(nn.Sequential(nn.Linear(6, 8), nn.ReLU()), nn.Linear(8, 3))
    opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)

    def step(x, y):
        hidden = model[0](x)
        loss = nn.functional.cross_entropy(model[1](hidden), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return hidden.detach().reshape(-1)[:10], loss  # a view of the activation

    f = rg.compile(step)
    g = np.random.default_rng(3)
    kept, expected = [], []
    for _ in range(6):
        x = g.standard_normal((5, 6)).astype(np.float32)
        expected.append(_hidden_by_hand(model, x).reshape(-1)[:10])  # weights before the step
        kept.append(f(rg.tensor(x), rg.tensor(g.integers(0, 3, 5)))[0])
    assert f.replays == 5
    for view, want in zip(kept, expected, strict=True):
        np.testing.assert_allclose(view.numpy(), want, rtol=1e-5, atol=1e-6)


def test_a_dead_output_is_reused_and_every_call_is_right():
    rg.manual_seed(1)
    lin = nn.Linear(5, 4)

    def scores(x):
        with rg.no_grad():
            return (lin(x) * 2).sum(axis=1)  # lin(x) dies inside the call

    f = rg.compile(scores)
    g = np.random.default_rng(4)
    arrays = []
    for _ in range(5):
        x = g.standard_normal((3, 5)).astype(np.float32)
        got = f(rg.tensor(x)).numpy()
        by_hand = ((x @ lin.weight.numpy().T + lin.bias.numpy()) * 2).sum(axis=1)
        np.testing.assert_allclose(got, by_hand, rtol=1e-5, atol=1e-6)
        if f.replays:
            arrays.append(weakref.ref(_program(f).slots[0]))  # (a reference would hold it)
    # the linear's output array of the first replay is written again by the later ones
    assert len(arrays) == 4 and arrays[0]() is not None
    assert all(a() is arrays[0]() for a in arrays)


def test_returned_outputs_make_the_next_replay_allocate_afresh():
    rg.manual_seed(2)
    lin = nn.Linear(4, 3)
    def forward(x):
        with rg.no_grad():
            return lin(x)

    f = rg.compile(forward)
    g = np.random.default_rng(5)
    xs = [g.standard_normal((2, 4)).astype(np.float32) for _ in range(4)]
    outs = [f(rg.tensor(x)) for x in xs]
    assert len({id(o._data) for o in outs}) == len(outs)
    w, b = lin.weight.numpy(), lin.bias.numpy()
    for o, x in zip(outs, xs, strict=True):
        np.testing.assert_allclose(o.numpy(), x @ w.T + b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name, shapes", [
    ("linear", [(7, 5), (3, 5), (3,)]), ("linear_relu", [(7, 5), (3, 5), (3,)]),
    ("matmul", [(4, 6), (6, 2)]), ("matmul", [(6,), (6, 2)]), ("matmul", [(6,), (6,)])])
def test_into_writes_the_forwards_bytes(name, shapes):
    prim = PRIMITIVES[name]
    g = np.random.default_rng(6)
    arrays = [g.standard_normal(s).astype(np.float32) for s in shapes]
    from retrograd.backend import numpy_backend as xp

    want = np.asarray(prim.forward(xp, *arrays))
    out = np.full_like(want, np.nan)
    got = prim.into(xp, out, *arrays)
    assert np.asarray(got).tobytes() == want.tobytes() and out.tobytes() == want.tobytes()


def test_values_used_twice_accumulate_their_gradients_as_eager_does():
    """A residual block (h feeds both the skip and the next layer; x feeds two layers): the
    replay adds the second gradient into the first in place, and the weights after ten steps
    are eager's byte for byte; the first step's gradients also match torch's."""
    import torch

    def run(compiled: bool):
        rg.manual_seed(7)
        a, b, c = nn.Linear(6, 6), nn.Linear(6, 6), nn.Linear(6, 3)
        params = [*a.parameters(), *b.parameters(), *c.parameters()]
        opt = optim.SGD(params, lr=0.1, momentum=0.9)
        start = [p.numpy().copy() for p in params]

        def step(x, y):
            h = a(x).tanh() + x  # x used twice
            out = c(h + b(h).relu())  # h used twice
            loss = nn.functional.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

        f = rg.compile(step) if compiled else step
        g = np.random.default_rng(8)
        first = None
        for _ in range(10):
            f(rg.tensor(g.standard_normal((5, 6)).astype(np.float32)),
              rg.tensor(g.integers(0, 3, 5)))
            if first is None:
                first = [p.grad.numpy().copy() for p in params]
        return [p.numpy().tobytes() for p in params], start, first

    eager, start, first = run(False)
    compiled, _, _ = run(True)
    assert compiled == eager
    tp = [torch.tensor(w, requires_grad=True) for w in start]
    g = np.random.default_rng(8)
    x = torch.tensor(g.standard_normal((5, 6)).astype(np.float32))
    y = torch.tensor(g.integers(0, 3, 5))
    h = torch.tanh(x @ tp[0].T + tp[1]) + x
    out = (h + torch.relu(h @ tp[2].T + tp[3])) @ tp[4].T + tp[5]
    torch.nn.functional.cross_entropy(out, y).backward()
    for mine, theirs in zip(first, tp, strict=True):
        np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=1e-5, atol=1e-6)
