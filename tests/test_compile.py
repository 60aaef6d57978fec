"""retrograd.compile: a step traced once and replayed, bit for bit the eager step.

The oracle of most tests is the eager step itself, run from the same seed: the replay must
give the same bytes. Where a rule concerns values (dropout masks, learning-rate changes), a
second oracle is independent: NumPy's generator drawn by hand, torch.optim's trajectory.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import retrograd as rg
from retrograd import nn, optim
from retrograd.optim.lr_scheduler import CosineAnnealingLR


def _batches(n: int, batch: int = 16, features: int = 12, classes: int = 4, seed: int = 1):
    g = np.random.default_rng(seed)
    return [(rg.tensor(g.standard_normal((batch, features)).astype(np.float32)),
             rg.tensor(g.integers(0, classes, batch))) for _ in range(n)]


def _setup(seed: int = 0, dropout: float = 0.2, features: int = 12, classes: int = 4,
           opt: str = "adam"):
    rg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(features, 24), nn.ReLU(), nn.Dropout(dropout),
                          nn.Linear(24, 24), nn.Tanh(), nn.Linear(24, classes))
    if opt == "adam":
        optimizer = optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3)
    else:
        optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def train_step(x, y):
        out = model(x)
        loss = loss_fn(out, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    return model, optimizer, train_step


def _weights(model) -> list[bytes]:
    return [p.numpy().tobytes() for p in model.parameters()]


# a step that falls back to eager where a test expects replays fails it; tests that expect a
# fallback catch the warning themselves
pytestmark = pytest.mark.filterwarnings("error::retrograd.compiled.CompileWarning")


def _quiet_compile(fn, **kw):
    """compile, where the test expects no fallback (pytestmark turns one into an error)."""
    return rg.compile(fn, **kw)


# ---------------------------------------------------------------------------- bit identity


def test_200_steps_with_dropout_adam_and_cosine_schedule_are_bit_identical():
    steps = 200
    batches = _batches(steps)
    runs = []
    for compiled in (False, True):
        model, opt, train_step = _setup()
        sched = CosineAnnealingLR(opt, T_max=steps)
        step = rg.compile(train_step) if compiled else train_step
        losses = []
        with warnings.catch_warnings():
            warnings.simplefilter("error", rg.CompileWarning)
            for x, y in batches:
                losses.append(step(x, y).numpy().tobytes())
                sched.step()
        runs.append((_weights(model), losses, opt.state_dict(), step))
    (w_e, l_e, s_e, _), (w_c, l_c, s_c, compiled) = runs
    assert compiled.replays == steps - 1 and compiled.traces == 1  # it really replayed
    assert w_e == w_c
    assert l_e == l_c
    for k, state in s_e["state"].items():
        for name, value in state.items():
            other = s_c["state"][k][name]
            assert np.asarray(value).tobytes() == np.asarray(other).tobytes()


def test_sgd_momentum_step_and_returned_logits_match_eager():
    batches = _batches(20)

    def one(compiled):
        model, opt, _ = _setup(opt="sgd", dropout=0.0)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)

        def step(x, y):
            out = model(x)
            loss = loss_fn(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return {"loss": loss, "logits": out}

        f = _quiet_compile(step) if compiled else step
        outs = [f(x, y) for x, y in batches]
        return [o["logits"].numpy().tobytes() for o in outs], _weights(model)

    assert one(False) == one(True)


# ---------------------------------------------------------------------------- cache key


def test_a_new_shape_traces_again_and_each_shape_matches_eager():
    shapes = [16, 16, 7, 16, 7, 7]
    outs = []
    for compiled in (False, True):
        rg.manual_seed(0)
        model, opt, train_step = _setup(dropout=0.0)
        f = _quiet_compile(train_step) if compiled else train_step
        g = np.random.default_rng(3)
        outs.append([f(rg.tensor(g.standard_normal((n, 12)).astype(np.float32)),
                       rg.tensor(g.integers(0, 4, n))).numpy().tobytes() for n in shapes])
        outs.append(_weights(model))
    assert outs[0] == outs[2] and outs[1] == outs[3]
    assert f.traces == 2 and f.replays == 4


def test_train_and_eval_mode_are_part_of_the_key():
    rg.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.5), nn.Linear(8, 2))

    @rg.no_grad()
    def forward(x):
        return model(x)

    f = _quiet_compile(forward)
    x = rg.ones(4, 6)
    f(x)
    f(x)  # replayed in train mode: dropout active
    model.eval()
    expected = forward(x).numpy()  # eval: no dropout, deterministic
    got = f(x).numpy()
    assert f.traces == 2
    assert np.array_equal(got, expected)
    assert np.array_equal(f(x).numpy(), expected)
    model.train()
    rg.manual_seed(5)
    a = f(x).numpy()
    rg.manual_seed(5)
    b = forward(x).numpy()
    assert np.array_equal(a, b) and not np.array_equal(a, expected)


def test_parameter_group_structure_and_dtype_are_part_of_the_key():
    model, opt, train_step = _setup(dropout=0.0)
    f = _quiet_compile(train_step)
    (x, y), = _batches(1)
    f(x, y)
    f(x, y)
    extra = rg.zeros(3, requires_grad=True)
    opt.add_param_group({"params": [extra], "lr": 0.5})
    f(x, y)
    assert f.traces == 2
    model.double()  # the parameters change dtype: the float32 program no longer fits
    x64 = rg.tensor(x.numpy().astype(np.float64))
    loss = f(x64, y)
    assert loss.dtype == np.float64 and f.traces == 3


def test_the_cache_is_bounded_then_eager_with_one_warning():
    model, opt, train_step = _setup(dropout=0.0)
    f = rg.compile(train_step, max_cache=2)
    g = np.random.default_rng(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in (4, 5, 6, 7, 6):
            f(rg.tensor(g.standard_normal((n, 12)).astype(np.float32)),
              rg.tensor(g.integers(0, 4, n)))
    mine = [w for w in caught if issubclass(w.category, rg.CompileWarning)]
    assert len(mine) == 1 and "max_cache" in str(mine[0].message)
    assert f.traces == 2 and len(f.cache) == 2


# ---------------------------------------------------------------------------- dropout


def test_dropout_draws_fresh_masks_from_the_generator_in_eager_order():
    p = 0.3
    f = _quiet_compile(lambda x: nn.functional.dropout(x, p, True) * 1)
    rg.manual_seed(7)
    x = rg.ones(5, 8)
    masks = [f(x).numpy().copy() for _ in range(4)]
    hand = np.random.default_rng(7)  # the same PCG64 stream, drawn by hand
    scale = np.float32(1 / (1 - p))
    for m in masks:
        keep = hand.random((5, 8), dtype=np.float32) >= p
        np.testing.assert_array_equal(m, keep * scale)
    assert f.replays == 3
    assert not np.array_equal(masks[1], masks[2])


# ---------------------------------------------------------------------------- live state


def test_lr_changes_step_count_weight_decay_and_loaded_state_are_honored():
    batches = _batches(30)
    runs = []
    for compiled in (False, True):
        model, opt, train_step = _setup(dropout=0.1)
        f = _quiet_compile(train_step) if compiled else train_step
        saved_model = saved_opt = None
        for i, (x, y) in enumerate(batches):
            if i == 5:
                opt.param_groups[0]["lr"] = 0.05
            if i == 8:
                opt.param_groups[0]["weight_decay"] = 0.1
            if i == 10:
                saved_model = {k: v.numpy().copy() for k, v in model.state_dict().items()}
                saved_opt = opt.state_dict()
            if i == 20:  # back to step 10: Adam's step count goes back too
                model.load_state_dict(saved_model)
                opt.load_state_dict(saved_opt)
            f(x, y)
        runs.append((_weights(model), opt.state_dict()["state"][0]["step"]))
    assert runs[0] == runs[1]
    assert runs[1][1] == 20  # 10 steps, then back to 10, then 10 more


def test_lr_changes_follow_torch_sgd():
    """An independent oracle: torch.optim.SGD with the same lr changes mid-run."""
    g = np.random.default_rng(0)
    x = g.standard_normal((8, 5)).astype(np.float32)
    y = g.integers(0, 3, 8)
    lin = nn.Linear(5, 3)
    tlin = torch.nn.Linear(5, 3, dtype=torch.float32)
    with torch.no_grad():
        tlin.weight.copy_(torch.tensor(lin.weight.numpy()))
        tlin.bias.copy_(torch.tensor(lin.bias.numpy()))
    opt = optim.SGD(lin.parameters(), lr=0.1, momentum=0.5)
    topt = torch.optim.SGD(tlin.parameters(), lr=0.1, momentum=0.5)

    def step(xb, yb):
        loss = nn.functional.cross_entropy(lin(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    f = _quiet_compile(step)
    for i in range(12):
        if i in (4, 8):
            opt.param_groups[0]["lr"] *= 0.3
            topt.param_groups[0]["lr"] *= 0.3
        f(rg.tensor(x), rg.tensor(y))
        tloss = torch.nn.functional.cross_entropy(tlin(torch.tensor(x)), torch.tensor(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
    assert f.replays == 11
    np.testing.assert_allclose(lin.weight.numpy(), tlin.weight.detach().numpy(), atol=1e-5)


def test_gradients_accumulate_without_zero_grad_as_in_eager():
    def one(compiled):
        rg.manual_seed(0)
        lin = nn.Linear(4, 2)

        def step(x):
            (lin(x) ** 2).sum().backward()
            return lin.weight.grad

        f = _quiet_compile(step) if compiled else step
        x = rg.tensor(np.arange(12, dtype=np.float32).reshape(3, 4) / 10)
        for _ in range(3):
            f(x)
        return lin.weight.grad.numpy().copy()

    results = [one(False), one(True)]
    np.testing.assert_array_equal(results[0], results[1])
    # three identical backward passes: three times one gradient (by hand: 2 y x summed)
    xn = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    rg.manual_seed(0)
    lin = nn.Linear(4, 2)
    y = xn @ lin.weight.numpy().T + lin.bias.numpy()
    np.testing.assert_allclose(results[1], 3 * (2 * y).T @ xn, rtol=1e-5)


def test_returned_tensors_are_never_overwritten_by_a_later_replay():
    model, opt, _ = _setup(dropout=0.0)

    def step(x, y):
        out = model(x)
        loss = nn.functional.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return out, loss

    f = _quiet_compile(step)
    batches = _batches(6)
    kept = [f(x, y) for x, y in batches]
    copies = [(o.numpy().copy(), loss.numpy().copy()) for o, loss in kept]
    for x, y in batches:  # more replays
        f(x, y)
    for (o, loss), (o0, l0) in zip(kept, copies, strict=True):
        np.testing.assert_array_equal(o.numpy(), o0)
        np.testing.assert_array_equal(loss.numpy(), l0)
    assert len({id(o._data) for o, _ in kept}) == len(kept)


# ---------------------------------------------------------------------------- verify


def test_verify_passes_for_a_faithful_step_and_keeps_eager_results():
    batches = _batches(6)
    runs = []
    for verify in (0, 4):
        model, opt, train_step = _setup()
        f = rg.compile(train_step, verify=verify) if verify else train_step
        runs.append(([f(x, y).numpy().tobytes() for x, y in batches], _weights(model)))
    assert runs[0] == runs[1]


def test_verify_raises_at_the_first_difference():
    """A Python float read from outside the step is frozen at trace time (as in torch.compile
    and jax.jit); verify catches the difference on the first call where it matters."""
    scale = {"value": 1.0}
    model, opt, _ = _setup(dropout=0.0)

    def step(x, y):
        loss = nn.functional.cross_entropy(model(x), y) * scale["value"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    f = rg.compile(step, verify=3)
    (x, y), = _batches(1)
    f(x, y)
    f(x, y)  # verified: equal
    scale["value"] = 3.0
    with pytest.raises(rg.VerifyError, match="differs from eager"):
        f(x, y)


# ---------------------------------------------------------------------------- the surface


def test_a_function_whose_output_keeps_its_graph_runs_eagerly():
    """Compiling only a forward: the caller backpropagates outside, so the graph must exist."""
    lin = nn.Linear(3, 1)
    f = rg.compile(lambda x: lin(x).sum())
    with pytest.warns(rg.CompileWarning, match="graph is still alive"):
        f(rg.ones(2, 3)).backward()
    f(rg.ones(2, 3)).backward()
    np.testing.assert_allclose(lin.bias.grad.numpy(), [4.0])  # by hand: 2 rows, 2 calls


def test_bad_arguments_raise_before_anything_runs():
    with pytest.raises(TypeError, match="expected a function"):
        rg.compile(3)
    with pytest.raises(ValueError, match="verify"):
        rg.compile(lambda: None, verify=-1)
    with pytest.raises(ValueError, match="max_cache"):
        rg.compile(lambda: None, max_cache=0)


def test_decorator_forms():
    @rg.compile
    def double(x):
        return x * 2

    @rg.compile(verify=1)
    def triple(x):
        return x * 3

    x = rg.tensor([1.0, 2.0])
    for _ in range(3):
        np.testing.assert_array_equal(double(x).numpy(), [2, 4])
        np.testing.assert_array_equal(triple(x).numpy(), [3, 6])
    assert double.replays == 2 and triple.verified == 1
