"""BatchNorm1d/2d and LayerNorm against torch: outputs and the gradients of input, weight and
bias at every training step, the running statistics and num_batches_tracked after N steps
(momentum 0.1, 0.5 and None), evaluation mode, affine=False, track_running_stats=False; state
dicts with torch's keys (buffers included) load both ways; train()/eval() switch BatchNorm and
Dropout together."""

import numpy as np
import pytest
import torch

import retrograd
from oracle import as_np, check_layer, rel_err
from retrograd import nn
from retrograd.nn import functional as F

TF = torch.nn.functional


def pair(cls, *args, dtype=np.float64, **kw):
    ours = getattr(nn, cls)(*args, **kw).to(dtype)
    theirs = getattr(torch.nn, cls)(*args, **kw).to({np.float64: torch.float64,
                                                     np.float32: torch.float32}[dtype])
    return ours, theirs


def step(module, x, g, lib):
    tensor = retrograd.tensor if lib == "retrograd" else torch.tensor
    xt = tensor(x, requires_grad=True)
    out = module(xt)
    out.backward(tensor(g))
    grads = [as_np(xt.grad)] + [as_np(p.grad) for p in module.parameters()]
    for p in module.parameters():
        p.grad = None
    return as_np(out), grads


@pytest.mark.parametrize("cls,shape,kw", [
    ("BatchNorm1d", (8, 4), {}),
    ("BatchNorm1d", (5, 3, 7), dict(momentum=0.5, eps=1e-3)),
    ("BatchNorm1d", (2, 3, 1), dict(momentum=None)),
    ("BatchNorm2d", (4, 3, 5, 6), {}),
    ("BatchNorm2d", (1, 2, 3, 3), dict(momentum=None)),  # batch 1, several values per channel
    ("BatchNorm2d", (3, 2, 4, 4), dict(affine=False)),
    ("BatchNorm1d", (6, 3), dict(track_running_stats=False)),
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_norm_training_steps_then_eval_match_torch(cls, shape, kw, dtype):
    """float64: within 1e-10 of torch; float32: every value's error (against torch in float64)
    within 8 times torch's own float32 error, or 1e-6."""
    ours, theirs = pair(cls, shape[1], dtype=dtype, **kw)
    _, exact = pair(cls, shape[1], **kw)  # torch in float64: the reference for float32
    rng = np.random.default_rng(0)

    def close(a, t, e, what):
        if dtype == np.float64:
            assert rel_err(a, t) < 1e-10, what
        else:
            assert rel_err(a, e) <= max(8 * rel_err(t, e), 1e-6), what

    for phase in ("train", "train", "train", "eval", "eval"):
        for m in (ours, theirs, exact):
            m.train(phase == "train")
        x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
        g = rng.standard_normal(shape).astype(dtype)
        o_out, o_grads = step(ours, x, g, "retrograd")
        t_out, t_grads = step(theirs, x, g, "torch")
        e_out, e_grads = step(exact, x.astype(np.float64), g.astype(np.float64), "torch")
        close(o_out, t_out, e_out, phase)
        for a, t, e in zip(o_grads, t_grads, e_grads, strict=True):
            close(a, t, e, phase)
        theirs_state, exact_state = theirs.state_dict(), exact.state_dict()
        for key, value in ours.state_dict().items():
            close(value.numpy(), theirs_state[key].numpy(), exact_state[key].numpy(), key)
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_batch_norm_state_dict_has_torch_keys_and_loads_both_ways():
    ours, theirs = pair("BatchNorm2d", 3)
    theirs.train()
    theirs(torch.randn(4, 3, 2, 2) * 2 + 1)  # non-trivial running statistics
    ours.load_state_dict(theirs.state_dict())
    assert int(ours.num_batches_tracked.item()) == 1
    assert ours.num_batches_tracked.dtype == np.int64 and ours.num_batches_tracked.shape == ()
    ours.eval()
    theirs.eval()
    x = np.random.default_rng(1).standard_normal((2, 3, 2, 2))
    assert rel_err(ours(retrograd.tensor(x)), theirs(torch.tensor(x))) < 1e-12
    back = torch.nn.BatchNorm2d(3).double()
    back.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()},
                         strict=True)
    assert rel_err(back.running_var, ours.running_var.numpy()) == 0
    # buffers are state, not parameters: the optimizer never sees them
    assert [n for n, _ in ours.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in ours.named_buffers()] == ["running_mean", "running_var",
                                                    "num_batches_tracked"]


def test_train_and_eval_switch_batch_norm_and_dropout_together():
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Dropout(0.5), nn.Linear(6, 2))
    x = retrograd.tensor(np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32))
    model.eval()
    first, second = model(x).numpy(), model(x).numpy()
    np.testing.assert_array_equal(first, second)  # no dropout, fixed statistics
    assert int(model[1].num_batches_tracked.item()) == 0
    model.train()
    assert not np.array_equal(model(x).numpy(), first)
    assert int(model[1].num_batches_tracked.item()) == 1
    assert all(m.training for m in model.modules())


def test_batch_norm_refuses_bad_input_before_any_state_changes():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"expected more than 1 value per channel when "
                                         r"training, got input of shape \(1, 3\)"):
        bn(retrograd.zeros(1, 3))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\): expected input with 3 channels "
                                         r"\(axis 1\), got input of shape \(4, 5\)"):
        bn(retrograd.zeros(4, 5))
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected 2-D or 3-D input, got 4-D"):
        bn(retrograd.zeros(2, 3, 2, 2))
    assert int(bn.num_batches_tracked.item()) == 0
    np.testing.assert_array_equal(bn.running_mean.numpy(), np.zeros(3))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        torch.nn.BatchNorm1d(3)(torch.zeros(1, 3))  # the oracle refuses it too


def test_functional_batch_norm_matches_torch():
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((6, 4, 5)), rng.standard_normal(4), rng.standard_normal(4)
    rm, rv = rng.standard_normal(4), rng.uniform(0.5, 2, 4)
    for training in (True, False):
        ours_rm, ours_rv = retrograd.tensor(rm.copy()), retrograd.tensor(rv.copy())
        theirs_rm, theirs_rv = torch.tensor(rm.copy()), torch.tensor(rv.copy())
        kw = dict(training=training, momentum=0.3, eps=1e-4)
        check_layer(lambda t, w, b, rm=ours_rm, rv=ours_rv, kw=kw: F.batch_norm(t, rm, rv, w, b,
                                                                                  **kw),
                    lambda t, w, b, rm=theirs_rm, rv=theirs_rv, kw=kw: TF.batch_norm(
                        t, rm, rv, w, b, **kw),
                    [x, w, b], float32=False)
        assert rel_err(ours_rm.numpy(), theirs_rm) < 1e-12
        assert rel_err(ours_rv.numpy(), theirs_rv) < 1e-12


@pytest.mark.parametrize("shape,normalized,kw", [
    ((4, 6), 6, {}),
    ((2, 3, 4, 5), (4, 5), dict(eps=1e-3)),
    ((3, 1, 7), [7], dict(elementwise_affine=False)),
    ((2, 5, 4), 4, dict(bias=False)),
    ((0, 4), 4, {}),
])
def test_layer_norm_matches_torch(shape, normalized, kw):
    """The module's keys are torch's; its function (with the module's weight and bias as
    inputs) matches torch's in every gradient."""
    ours, theirs = pair("LayerNorm", normalized, **kw)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    eps = kw.get("eps", 1e-5)
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(shape)] + [rng.standard_normal(p.shape)
                                             for p in ours.parameters()]
    has_w, has_b = ours.weight is not None, ours.bias is not None

    def call(fn):
        def f(x, *ps):
            w = ps[0] if has_w else None
            b = ps[-1] if has_b else None
            return fn(x, ours.normalized_shape, w, b, eps)
        return f

    check_layer(call(F.layer_norm), call(TF.layer_norm), arrays)
    x = rng.standard_normal(shape)
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    assert rel_err(ours(retrograd.tensor(x)), theirs(torch.tensor(x))) < 1e-12


def test_layer_norm_refuses_a_shape_that_does_not_end_the_input():
    with pytest.raises(ValueError, match=r"layer_norm: normalized_shape \[5\] expects input of "
                                         r"shape \[\*, 5\], got \[3, 4\]"):
        nn.LayerNorm(5)(retrograd.zeros(3, 4))
