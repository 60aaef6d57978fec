"""retrograd.compile's fallbacks: whatever a replay could not reproduce keeps the step eager,
with one CompileWarning saying why, and its results stay the eager results (the oracle: the
eager step, from the same seed; torch where labels are ignored; values worked out by hand).
A branch is never frozen, a value made in Python on each call is never frozen, and the state a
step changes outside the recorded operations is noticed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import retrograd as rg
from retrograd import nn, optim
from test_compile import _batches, _quiet_compile, _setup, _weights

# a step that falls back to eager where a test expects replays fails it; tests that expect a
# fallback catch the warning themselves
pytestmark = pytest.mark.filterwarnings("error::retrograd.compiled.CompileWarning")


# ---------------------------------------------------------------------------- values in Python


@pytest.mark.parametrize("read", ["item", "bool", "float"])
def test_reading_a_value_in_python_runs_eagerly_with_one_warning(read):
    """A data-dependent branch: the loss is doubled when it exceeds a threshold. A frozen
    branch would double it always or never; eager and compiled must agree on every call."""
    def branchy(model, opt, x, y):
        loss = nn.functional.cross_entropy(model(x), y)
        big = {"item": lambda: loss.item() > 1.4, "bool": lambda: bool(loss > 1.4),
               "float": lambda: float(loss) > 1.4}[read]()
        if big:
            loss = loss * 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    batches = _batches(12)

    def one(compiled):
        model, opt, _ = _setup(dropout=0.0)

        def step(x, y):
            return branchy(model, opt, x, y)

        f = rg.compile(step) if compiled else step
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            losses = [f(x, y).numpy().tobytes() for x, y in batches]
        mine = [w for w in caught if issubclass(w.category, rg.CompileWarning)]
        if compiled:
            assert len(mine) == 1
            assert "into Python" in str(mine[0].message)
            assert f.replays == 0
        return losses

    assert one(False) == one(True)


def test_lbfgs_closure_runs_eagerly_with_one_warning():
    torch.manual_seed(0)
    g = np.random.default_rng(0)
    x = g.standard_normal((20, 3)).astype(np.float64)
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.3

    def one(compiled):
        w = rg.zeros(3, dtype=rg.float64, requires_grad=True)
        opt = optim.LBFGS([w], lr=1, max_iter=5)
        xt, yt = rg.tensor(x), rg.tensor(y)

        def step():
            def closure():
                opt.zero_grad()
                loss = ((xt @ w - yt) ** 2).mean()
                loss.backward()
                return loss
            return opt.step(closure)

        f = rg.compile(step) if compiled else step
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                f()
        mine = [c for c in caught if issubclass(c.category, rg.CompileWarning)]
        if compiled:
            assert len(mine) == 1 and "closure" in str(mine[0].message)
        return w.numpy().copy()

    np.testing.assert_array_equal(one(False), one(True))


def test_a_mask_made_outside_the_operations_is_not_frozen():
    """(x > 0) is computed by NumPy, not by a primitive: its value changes with the data, so
    the second trace of the key finds it differs and the function stays eager."""
    def masked(x):
        return (x * (x > 0)).sum()

    f = rg.compile(masked)
    g = np.random.default_rng(0)
    xs = [rg.tensor(g.standard_normal(10).astype(np.float32)) for _ in range(4)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = [f(x).item() for x in xs]
    expected = [float(np.maximum(x.numpy(), 0).sum(dtype=np.float32)) for x in xs]
    assert got == pytest.approx(expected, rel=1e-6)
    assert sum(issubclass(w.category, rg.CompileWarning) for w in caught) == 1
    assert f.replays == 0


def test_class_weighted_mean_depends_on_the_data_and_stays_eager():
    batches = _batches(10)

    def one(compiled):
        model, opt, _ = _setup(dropout=0.0)
        loss_fn = nn.CrossEntropyLoss(weight=rg.tensor([1.0, 2.0, 0.5, 1.0]))

        def step(x, y):
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

        f = rg.compile(step) if compiled else step
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            losses = [f(x, y).numpy().tobytes() for x, y in batches]
        if compiled:
            assert f.replays == 0
            assert sum(issubclass(w.category, rg.CompileWarning) for w in caught) == 1
        return losses, _weights(model)

    # the weighted mean divides by the targets' summed weight, which depends on the data: it
    # is caught by the second trace and the function stays eager, never frozen
    assert one(False) == one(True)


def test_a_constant_built_inside_the_step_is_never_frozen():
    """Built anew on each call, a tensor could come from the data: it stays eager, even when
    its values happen to repeat."""
    def scaled(x):
        return (x * rg.tensor([1.0, 2.0, 3.0])).sum()

    f = rg.compile(scaled)
    xs = [rg.tensor([1.0, 1.0, 1.0]), rg.tensor([0.5, 0.0, 2.0]), rg.tensor([3.0, 1.0, 0.0])]
    with pytest.warns(rg.CompileWarning, match="made in Python on each call"):
        got = [f(x).item() for x in xs + xs]
    assert got == [6.0, 6.5, 5.0] * 2  # by hand
    assert f.replays == 0


def test_a_tensor_captured_from_outside_is_read_live_on_every_replay():
    scale = rg.tensor([1.0, 2.0, 3.0])

    def scaled(x):
        return (x * scale).sum()

    f = _quiet_compile(scaled)
    x = rg.tensor([1.0, 1.0, 1.0])
    assert [f(x).item() for _ in range(3)] == [6.0] * 3
    scale.copy_(rg.tensor([0.0, 0.0, 10.0]))
    assert f(x).item() == 10.0  # by hand: the new values, not the recorded ones
    assert f.traces == 2 and f.replays == 2  # the second call saw the same object


def test_equal_label_counts_on_the_first_calls_do_not_freeze_a_weighted_mean():
    """The first two batches have the same labels (permuted), so the class-weighted mean's
    divisor is equal on both; the third batch's differs. Eager and compiled must agree."""
    labels = [[0, 0, 1, 2, 3, 3], [3, 0, 2, 1, 0, 3], [1, 1, 1, 2, 2, 0]]
    g = np.random.default_rng(0)
    xs = [rg.tensor(g.standard_normal((6, 12)).astype(np.float32)) for _ in labels]

    def one(compiled):
        model, opt, _ = _setup(dropout=0.0)
        weight = rg.tensor([1.0, 5.0, 0.5, 2.0])

        def step(x, y):
            loss = nn.functional.cross_entropy(model(x), y, weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

        f = rg.compile(step) if compiled else step
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rg.CompileWarning)
            return [f(x, rg.tensor(y)).numpy().tobytes() for x, y in zip(xs, labels,
                                                                          strict=True)]

    assert one(False) == one(True)


def test_labels_equal_to_ignore_index_after_tracing_are_honored():
    """Traced on batches whose labels are all classes, then given -100 (ignore_index): the
    replay must not keep the recorded 'nothing ignored' decision. Oracle: torch."""
    g = np.random.default_rng(1)
    lin = nn.Linear(5, 3)

    @rg.no_grad()
    def loss_of(x, y):
        return nn.functional.cross_entropy(lin(x), y)

    f = _quiet_compile(loss_of)
    x = g.standard_normal((6, 5)).astype(np.float32)
    for _ in range(3):
        f(rg.tensor(x), rg.tensor(np.array([0, 1, 2, 0, 1, 2])))
    assert f.replays == 2
    y = np.array([0, -100, 2, -100, 1, 2])
    got = f(rg.tensor(x), rg.tensor(y)).item()
    t = torch.nn.functional.cross_entropy(
        torch.tensor(x) @ torch.tensor(lin.weight.numpy()).T + torch.tensor(lin.bias.numpy()),
        torch.tensor(y))
    assert got == pytest.approx(t.item(), rel=1e-5)
    with pytest.raises(IndexError, match="out of bounds"):  # as eager: the label is checked
        f(rg.tensor(x), rg.tensor(np.array([0, 1, 7, 0, 1, 2])))


def test_an_in_place_change_inside_the_step_runs_eagerly():
    w = rg.ones(3)

    def step(x):
        with rg.no_grad():
            w.add_(x)
        return w * 2

    f = rg.compile(step)
    with pytest.warns(rg.CompileWarning, match="in-place"):
        f(rg.ones(3))
    f(rg.ones(3))
    np.testing.assert_array_equal(w.numpy(), [3, 3, 3])


# ---------------------------------------------------------------------------- gradients


def test_gradient_clipping_inside_the_step_runs_live_on_every_replay():
    batches = _batches(15)

    def one(compiled):
        model, opt, _ = _setup(dropout=0.0, opt="sgd")

        def step(x, y):
            model.train()
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.05)
            opt.step()
            return loss

        f = _quiet_compile(step) if compiled else step
        for x, y in batches:
            f(x, y)
        if compiled:
            assert f.replays == len(batches) - 1
        return _weights(model)

    assert one(False) == one(True)


def test_a_gradient_changed_by_numpy_inside_the_step_runs_eagerly():
    lin = nn.Linear(3, 2)
    opt = optim.SGD(lin.parameters(), lr=0.1)

    def step(x):
        opt.zero_grad()
        lin(x).sum().backward()
        lin.weight.grad._data *= 0.5  # by hand, outside retrograd's operations
        opt.step()

    f = rg.compile(step)
    with pytest.warns(rg.CompileWarning, match="gradient was changed"):
        f(rg.ones(4, 3))
    before = lin.weight.numpy().copy()
    f(rg.ones(4, 3))
    # by hand: d sum(x W^T + b) / dW = column sums of x = 4, halved, times lr
    np.testing.assert_allclose(lin.weight.numpy(), before - 0.1 * 2.0, rtol=1e-6)


def test_a_hand_written_update_of_the_weights_runs_eagerly():
    lin = nn.Linear(3, 2)

    def step(x):
        loss = lin(x).sum()
        lin.zero_grad()
        loss.backward()
        lin.weight._data -= 0.1 * lin.weight.grad._data  # NumPy, not an optimizer

    f = rg.compile(step)
    with pytest.warns(rg.CompileWarning, match="parameter or buffer was changed"):
        f(rg.ones(4, 3))
    before = lin.weight.numpy().copy()
    f(rg.ones(4, 3))
    np.testing.assert_allclose(lin.weight.numpy(), before - 0.1 * 4.0, rtol=1e-6)  # by hand


def test_the_same_array_passed_twice_is_a_different_key_from_two_arrays():
    f = _quiet_compile(lambda a, b: a * 2 + b)
    x, y = rg.tensor([1.0, 2.0]), rg.tensor([10.0, 20.0])
    for _ in range(2):
        np.testing.assert_array_equal(f(x, x).numpy(), [3, 6])
    np.testing.assert_array_equal(f(x, y).numpy(), [12, 24])  # by hand
    assert f.traces == 2


def test_keyword_arguments_in_any_order():
    f = _quiet_compile(lambda *, a, b: a - b)
    x, y = rg.tensor([5.0]), rg.tensor([1.0])
    assert [f(a=x, b=y).item(), f(b=y, a=x).item(), f(b=x, a=y).item()] == [4.0, 4.0, -4.0]
    assert f.traces == 1


def test_modules_reached_indirectly_still_key_the_cache_on_their_mode():
    rg.manual_seed(0)
    name = "_indirect_net"
    globals()[name] = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))

    def forward(x):
        with rg.no_grad():  # the module is looked up by a computed name: no code names it
            return globals()[name](x)

    f = _quiet_compile(forward)
    assert f._modules == []  # not found by looking at the function
    x = rg.ones(3, 4)
    for _ in range(3):
        f(x)
    assert f.traces == 2 and f.replays == 1  # the first trace found it: the key grew
    globals()[name].eval()
    with rg.no_grad():
        expected = globals()[name](x).numpy()  # eval: no dropout
    np.testing.assert_array_equal(f(x).numpy(), expected)
    np.testing.assert_array_equal(f(x).numpy(), expected)
    del globals()[name]
