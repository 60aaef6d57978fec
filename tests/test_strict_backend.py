"""Device independence, proved on the CPU: the primitive table, the engine, the losses and short
trainings run on the strict backend (tests/strict_backend.py: NumPy behind an array type that
refuses any NumPy call made past the seam), and agree with the host (itself checked against
torch elsewhere) or with torch directly. A leak monkeypatched into the core fails here."""

import dataclasses

import numpy as np
import pytest
import torch

import retrograd
import strict_backend
import test_ops_table as table
from retrograd import backend, nn
from retrograd.autograd import grad, gradcheck
from retrograd.nn import functional as F
from retrograd.ops import PRIMITIVES
from retrograd.tensor import apply

STRICT = strict_backend.STRICT


def on_strict(value):
    """Arrays (also inside tuples, lists and dicts) moved to the strict device."""
    if isinstance(value, (np.ndarray, np.generic)):
        return backend.move(np.asarray(value), STRICT)
    if isinstance(value, dict):
        return {k: on_strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_strict(v) for v in value)
    return value


def host(t) -> np.ndarray:
    return t.cpu().numpy()


# ------------------------------------------------------------------ the primitive table


@pytest.mark.parametrize("name,args,params", list(table.cases()))
def test_first_derivatives_on_the_strict_backend(name, args, params):
    prim = PRIMITIVES[name]
    inputs = table.as_inputs(prim, on_strict(args))
    for t in inputs:
        if isinstance(t, retrograd.Tensor):
            assert t.device == STRICT
    out = apply(prim, *inputs, **on_strict(params))
    assert out.device == (params["device"] if name == "to_device" else STRICT)
    # the same values as the host's forward, and the gradients by finite differences
    on_host = [np.asarray(a) if isinstance(a, np.generic) else a for a in args]
    want = apply(prim, *table.as_inputs(prim, on_host), **params)
    np.testing.assert_allclose(host(out), want.numpy(), rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda *xs: apply(prim, *xs, **on_strict(params)), inputs,
                     atol=1e-6, rtol=1e-5)


SECOND_ORDER = ["matmul", "linear", "softmax_cross_entropy", "conv", "normalize", "max_pool",
                "exp", "tanh", "div", "getitem", "sum", "log_softmax"]


@pytest.mark.parametrize("name,args,params",
                         [c for c in table.cases() if c.values[0] in SECOND_ORDER])
def test_second_derivatives_on_the_strict_backend(name, args, params):
    prim = PRIMITIVES[name]
    params = on_strict(params)
    inputs = table.as_inputs(prim, on_strict(args))
    wrt = [t for t in inputs if isinstance(t, retrograd.Tensor)]
    rng = np.random.default_rng(7)
    w = retrograd.tensor(rng.standard_normal(apply(prim, *inputs, **params).shape),
                         device=STRICT)
    vs = [retrograd.tensor(rng.standard_normal(t.shape), device=STRICT) for t in wrt]

    @retrograd.enable_grad()
    def vjp_dot(*xs):
        out = apply(prim, *xs, **params)
        grads = grad(out, [x for x in xs if isinstance(x, retrograd.Tensor)], grad_outputs=w,
                     create_graph=True, allow_unused=True)
        return sum(((g * v).sum() for g, v in zip(grads, vs, strict=True) if g is not None),
                   retrograd.zeros((), dtype=np.float64, device=STRICT))

    assert gradcheck(vjp_dot, inputs, atol=1e-6, rtol=1e-5)


# ------------------------------------------------------------------ a leak past the seam fails


def leak(monkeypatch, name, forward):
    """Replace a primitive's forward by one that calls NumPy directly."""
    monkeypatch.setitem(PRIMITIVES, name, dataclasses.replace(PRIMITIVES[name], forward=forward))


def test_a_numpy_call_leaked_into_a_primitive_fails_on_the_strict_backend(monkeypatch):
    x = retrograd.randn(3, device=STRICT, requires_grad=True)
    apply(PRIMITIVES["exp"], x)  # through the seam: fine
    leak(monkeypatch, "exp", lambda xp, a: np.exp(a))
    with pytest.raises(strict_backend.LeakError, match="numpy.exp"):
        apply(PRIMITIVES["exp"], x)


def test_an_array_made_by_numpy_in_the_core_fails_when_it_meets_a_device_array(monkeypatch):
    x = retrograd.randn(4, 3, device=STRICT, requires_grad=True)
    t = retrograd.tensor([0, 2, 1, 1], device=STRICT)
    F.cross_entropy(x, t).backward()  # through the seam: fine
    leak = lambda a, t: a[np.arange(a.shape[0]), t]  # noqa: E731  (np.arange past the seam)
    monkeypatch.setattr(strict_backend, "take_class", leak)
    with pytest.raises(strict_backend.LeakError, match="plain numpy.ndarray"):
        F.cross_entropy(x, t)


def test_the_ops_table_check_fails_with_a_leak(monkeypatch):
    leak(monkeypatch, "tanh", lambda xp, a: np.tanh(a))
    case = next(c for c in table.cases() if c.values[0] == "tanh")
    with pytest.raises(strict_backend.LeakError):
        test_first_derivatives_on_the_strict_backend(*case.values)


# ------------------------------------------------------------------ the engine


def test_engine_on_strict_matches_the_host_deep_chain_reuse_and_accumulation():
    results = []
    for device in ("cpu", STRICT):
        x = retrograd.tensor([0.5, -1.0, 2.0], dtype=np.float64, device=device,
                             requires_grad=True)
        y = x
        for _ in range(2000):  # deep: no recursion
            y = y * 1.0001
        z = (y * y).sum() + (y.exp() * x).sum()  # x reused: contributions accumulate
        z.backward()
        z2 = (x * 3).sum()
        z2.backward()  # .grad accumulates across calls
        results.append(host(x.grad))
        assert x.grad.device == x.device
    np.testing.assert_allclose(results[1], results[0], rtol=1e-13)
    xt = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    yt = xt * 1.0001 ** 2000
    ((yt * yt).sum() + (yt.exp() * xt).sum() + (xt * 3).sum()).backward()
    np.testing.assert_allclose(results[1], xt.grad.numpy(), rtol=1e-9)


def test_in_place_change_of_a_saved_array_is_detected_on_strict():
    x = retrograd.randn(3, device=STRICT, requires_grad=True)
    y = x.exp()
    with retrograd.no_grad():
        y.mul_(2)
    with pytest.raises(RuntimeError, match="modified"):
        y.sum().backward()


def test_graph_crossing_devices_sends_gradients_back_to_each_device():
    x = retrograd.tensor([1.0, 2.0, 3.0], dtype=np.float64, requires_grad=True)
    y = (x * x).to(STRICT)
    assert y.device == STRICT
    z = (y.exp() * 2).to("cpu").sum()
    z.backward()
    assert x.grad.device == retrograd.device("cpu")
    xt = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    ((xt * xt).exp() * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-13)
    # second order across the move
    x.grad = None
    (g,) = grad(((x * x).to(STRICT) ** 3).sum(), [x], create_graph=True)
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 30 * x.numpy() ** 4, rtol=1e-13)


# ------------------------------------------------------------------ losses against torch


LOSSES = [
    ("cross_entropy", lambda m, x, t, p: m.cross_entropy(x, t, label_smoothing=0.1)),
    ("cross_entropy_weighted",
     lambda m, x, t, p: m.cross_entropy(x, t, weight=p["w"], ignore_index=1)),
    ("cross_entropy_probs", lambda m, x, t, p: m.cross_entropy(x, p["probs"])),
    ("nll_loss", lambda m, x, t, p: m.nll_loss(m.log_softmax(x, 1), t, weight=p["w"])),
    ("mse_loss", lambda m, x, t, p: m.mse_loss(x, p["probs"])),
    ("bce", lambda m, x, t, p: m.binary_cross_entropy(m.sigmoid(x), p["probs"])),
    ("bce_with_logits",
     lambda m, x, t, p: m.binary_cross_entropy_with_logits(x, p["probs"], pos_weight=p["w"])),
]


@pytest.mark.parametrize("name,loss", LOSSES, ids=[n for n, _ in LOSSES])
def test_losses_on_strict_match_torch(name, loss):
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((5, 3)), np.array([0, 2, 1, 2, 1])
    probs = rng.uniform(0.05, 0.95, (5, 3))
    w = np.array([0.5, 2.0, 1.5])

    class R:  # retrograd's functional under torch's names
        cross_entropy, nll_loss, mse_loss = F.cross_entropy, F.nll_loss, F.mse_loss
        binary_cross_entropy = F.binary_cross_entropy
        binary_cross_entropy_with_logits = F.binary_cross_entropy_with_logits
        log_softmax, sigmoid = staticmethod(lambda a, d: a.log_softmax(d)), \
            staticmethod(lambda a: a.sigmoid())

    class T:
        cross_entropy, nll_loss, mse_loss = (torch.nn.functional.cross_entropy,
                                             torch.nn.functional.nll_loss,
                                             torch.nn.functional.mse_loss)
        binary_cross_entropy = torch.nn.functional.binary_cross_entropy
        binary_cross_entropy_with_logits = torch.nn.functional.binary_cross_entropy_with_logits
        log_softmax, sigmoid = staticmethod(torch.log_softmax), staticmethod(torch.sigmoid)

    xs = retrograd.tensor(x, device=STRICT, requires_grad=True)
    p = {k: retrograd.tensor(v, device=STRICT) for k, v in dict(w=w, probs=probs).items()}
    out = loss(R, xs, retrograd.tensor(t, device=STRICT), p)
    out.backward()
    assert out.device == STRICT and xs.grad.device == STRICT
    xt = torch.tensor(x, requires_grad=True)
    want = loss(T, xt, torch.tensor(t), {k: torch.tensor(v) for k, v in
                                         dict(w=w, probs=probs).items()})
    want.backward()
    np.testing.assert_allclose(out.item(), want.item(), rtol=1e-12)
    np.testing.assert_allclose(host(xs.grad), xt.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_target_algebra_on_strict_stays_on_the_device_and_matches_torch():
    """one_hot, smooth, soft labels and class weights made from device labels live on that
    device and equal torch's one_hot, torch's label smoothing (through the loss) and the
    hand formulas N / (C n_c) and (1 - b) / (1 - b^n_c) normalized to sum to C."""
    from retrograd import targets as T

    y_host = np.array([0, 2, 1, 2, 2, 0])
    y = retrograd.tensor(y_host, device=STRICT)
    hot = T.one_hot(y, 3)
    assert hot.device == STRICT and hot.dtype == retrograd.float32
    want = torch.nn.functional.one_hot(torch.tensor(y_host), 3).numpy()
    np.testing.assert_array_equal(host(hot), want)
    smoothed = T.smooth(hot, 0.1)
    assert smoothed.device == STRICT
    logits = np.random.default_rng(0).standard_normal((6, 3))
    ours = F.cross_entropy(retrograd.tensor(logits, device=STRICT), smoothed.double())
    theirs = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(y_host),
                                               label_smoothing=0.1)
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-7)
    soft = T.soft_labels(y, 3, positive=0.8, negative=0.05)
    np.testing.assert_allclose(host(soft), np.where(want == 1, 0.8, 0.05), rtol=1e-7)
    counts = np.array([2, 1, 3])
    inverse = T.inverse_frequency_weights(y, 3, dtype=np.float64)
    assert inverse.device == STRICT
    np.testing.assert_allclose(host(inverse), 6 / (3 * counts), rtol=1e-15)
    effective = T.effective_number_weights(y, 3, beta=0.9, dtype=np.float64)
    w = (1 - 0.9) / (1 - 0.9 ** counts)
    np.testing.assert_allclose(host(effective), 3 * w / w.sum(), rtol=1e-13)
    with pytest.raises(ValueError, match="label 3 is outside"):
        T.one_hot(retrograd.tensor([0, 3], device=STRICT), 3)
    with pytest.raises(ValueError, match="class 1 never occurs"):
        T.class_counts(retrograd.tensor([0, 2], device=STRICT), 3)


# ------------------------------------------------------------------ training


def mlp_trajectory(device, optimizer: str, steps: int = 5):
    retrograd.manual_seed(4)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.0), nn.Linear(16, 3))
    model.to(device)
    optim = retrograd.optim
    opt = {"sgd": lambda ps: optim.SGD(ps, lr=0.1),
           "sgd-nesterov": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True,
                                                weight_decay=1e-3),
           "adam": lambda ps: optim.Adam(ps, lr=0.01),
           "adamw-amsgrad": lambda ps: optim.AdamW(ps, lr=0.01, amsgrad=True),
           "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
           "adagrad": lambda ps: optim.Adagrad(ps, lr=0.1),
           "adadelta": lambda ps: optim.Adadelta(ps)}[optimizer](model.parameters())
    rng = np.random.default_rng(5)
    x = retrograd.tensor(rng.standard_normal((32, 6)), dtype=np.float32, device=device)
    y = retrograd.tensor(rng.integers(0, 3, 32), device=device)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, [host(p) for p in model.parameters()], model


@pytest.mark.parametrize("optimizer", ["sgd", "sgd-nesterov", "adam", "adamw-amsgrad",
                                       "rmsprop", "adagrad", "adadelta"])
def test_mlp_training_on_strict_follows_the_host_trajectory(optimizer):
    losses_cpu, weights_cpu, _ = mlp_trajectory("cpu", optimizer)
    losses, weights, model = mlp_trajectory(STRICT, optimizer)
    assert all(p.device == STRICT for p in model.parameters())
    np.testing.assert_allclose(losses, losses_cpu, rtol=1e-6)
    for w, w_cpu in zip(weights, weights_cpu, strict=True):
        np.testing.assert_allclose(w, w_cpu, rtol=1e-5, atol=1e-6)
    assert losses[-1] < losses[0]


def closure_trajectory(device, optimizer: str, steps: int = 3):
    """A float64 logistic model trained by a closure optimizer: losses and final weights."""
    retrograd.manual_seed(6)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double().to(device)
    opt = {"lbfgs": lambda ps: retrograd.optim.LBFGS(ps, max_iter=5),
           "lbfgs-wolfe": lambda ps: retrograd.optim.LBFGS(ps, max_iter=5,
                                                           line_search_fn="strong_wolfe"),
           "newton-cg": lambda ps: retrograd.optim.NewtonCG(ps, max_cg_iters=10)}[optimizer](
        model.parameters())
    rng = np.random.default_rng(7)
    x = retrograd.tensor(rng.standard_normal((24, 4)), device=device)
    y = retrograd.tensor(rng.integers(0, 3, 24), device=device)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    losses = [float(opt.step(closure)) for _ in range(steps)]
    return losses, [host(p) for p in model.parameters()], model


@pytest.mark.parametrize("optimizer", ["lbfgs", "lbfgs-wolfe", "newton-cg"])
def test_closure_optimizers_on_strict_follow_the_host_trajectory(optimizer):
    losses_cpu, weights_cpu, _ = closure_trajectory("cpu", optimizer)
    losses, weights, model = closure_trajectory(STRICT, optimizer)
    assert all(p.device == STRICT for p in model.parameters())
    np.testing.assert_allclose(losses, losses_cpu, rtol=1e-12)
    for w, w_cpu in zip(weights, weights_cpu, strict=True):
        np.testing.assert_allclose(w, w_cpu, rtol=1e-10, atol=1e-12)
    assert losses[-1] < losses[0]


def test_small_cnn_forward_and_gradients_on_strict_match_torch():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 8, 8))
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(4, 2, 3, stride=2), nn.Flatten(),
                          nn.Linear(2, 3)).double()
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                              torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Conv2d(4, 2, 3, stride=2), torch.nn.Flatten(),
                              torch.nn.Linear(2, 3)).double()
    ref.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    model.to(STRICT)
    xs = retrograd.tensor(x, device=STRICT)
    out = model(xs)
    out.square().sum().backward() if hasattr(out, "square") else (out * out).sum().backward()
    xt = torch.tensor(x)
    out_t = ref(xt)
    (out_t * out_t).sum().backward()
    np.testing.assert_allclose(host(out), out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    for (name, p), pt in zip(model.named_parameters(), ref.parameters(), strict=True):
        assert p.grad.device == STRICT, name
        np.testing.assert_allclose(host(p.grad), pt.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(host(model[1].running_mean), ref[1].running_mean.numpy(),
                               rtol=1e-12)


# ------------------------------------------------------------------ devices


def test_mixing_devices_in_one_op_raises_torchs_error_in_either_order():
    a = retrograd.ones(3)
    b = retrograd.ones(3, device=STRICT)
    for op in (lambda u, v: u + v, lambda u, v: u * v, lambda u, v: retrograd.cat([u, v]),
               lambda u, v: u @ v):
        with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device, "
                           "but found at least two devices, cpu and strict!"):
            op(a, b)
        with pytest.raises(RuntimeError, match="found at least two devices, strict and cpu!"):
            op(b, a)


def test_numpy_refuses_a_device_tensor_and_cpu_copies_it():
    x = retrograd.tensor([1.0, 2.0], device=STRICT)
    with pytest.raises(TypeError, match="can't convert strict device type tensor to numpy. "
                       r"Use Tensor.cpu\(\) to copy the tensor to host memory first."):
        x.numpy()
    with pytest.raises(TypeError, match="can't convert strict"):
        np.asarray(x)
    c = x.cpu()
    assert c.device == retrograd.device("cpu") and type(c.numpy()) is np.ndarray
    np.testing.assert_array_equal(c.numpy(), [1.0, 2.0])


def test_factories_and_like_functions_place_tensors_on_the_device():
    made = [retrograd.zeros(2, 3, device=STRICT), retrograd.ones(2, device=STRICT),
            retrograd.empty(4, device=STRICT), retrograd.full((2,), 7.0, device=STRICT),
            retrograd.arange(5, device=STRICT), retrograd.eye(3, device=STRICT),
            retrograd.randn(2, device=STRICT), retrograd.rand(2, device=STRICT),
            retrograd.randint(0, 5, (3,), device=STRICT), retrograd.randperm(4, device=STRICT),
            retrograd.linspace(0, 1, 5, device=STRICT),
            retrograd.tensor([1, 2], device=STRICT)]
    x = retrograd.ones(2, 2, device=STRICT)
    made += [retrograd.zeros_like(x), retrograd.ones_like(x), retrograd.empty_like(x),
             retrograd.full_like(x, 2.0), retrograd.randn_like(x), retrograd.rand_like(x)]
    for t in made:
        assert t.device == STRICT and type(t._data) is strict_backend.StrictArray
    np.testing.assert_array_equal(host(made[4]), torch.arange(5).numpy())
    np.testing.assert_array_equal(host(made[5]), torch.eye(3).numpy())
    assert made[4].dtype == np.int64 and made[3].dtype == np.float32


def test_same_seed_gives_the_same_initial_weights_on_every_device():
    retrograd.manual_seed(11)
    cpu = nn.Linear(5, 4)
    retrograd.manual_seed(11)
    dev = nn.Linear(5, 4).to(STRICT)
    np.testing.assert_array_equal(host(dev.weight), cpu.weight.numpy())
    retrograd.manual_seed(11)
    a = retrograd.randn(6)
    retrograd.manual_seed(11)
    np.testing.assert_array_equal(host(retrograd.randn(6, device=STRICT)), a.numpy())


def test_dropout_on_the_device_draws_there_keeps_its_rate_and_scale():
    retrograd.manual_seed(0)
    x = retrograd.ones(20000, device=STRICT)
    y = F.dropout(x, 0.25)
    assert y.device == STRICT
    values = host(y)
    assert set(np.unique(values)) <= {0.0, np.float32(1 / 0.75)}
    kept = (values != 0).mean()
    assert abs(kept - 0.75) < 4 * np.sqrt(0.75 * 0.25 / 20000)  # 4 standard deviations


def test_module_to_moves_parameters_and_buffers_in_place_and_returns_self():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    params = list(model.parameters())
    assert model.to(STRICT) is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    assert all(t.device == STRICT for t in [*model.parameters(), *model.buffers()])
    model.to("cpu", np.float64)
    assert all(t.device == retrograd.device("cpu") and t.dtype == np.float64
               for t in model.parameters())


def test_layers_take_device_as_torch_and_match_their_host_twins():
    made = {}
    for device in (None, STRICT):
        retrograd.manual_seed(2)
        made[device] = [nn.Linear(3, 2, device=device), nn.Conv2d(1, 2, 3, device=device),
                        nn.BatchNorm1d(2, device=device), nn.LayerNorm(4, device=device),
                        nn.Embedding(5, 3, device=device)]
    for host_layer, layer in zip(made[None], made[STRICT], strict=True):
        for (name, p), (_, q) in zip(host_layer.state_dict().items(),
                                     layer.state_dict().items(), strict=True):
            assert q.device == STRICT, (type(layer).__name__, name)
            np.testing.assert_array_equal(host(q), p.numpy())


def test_state_dict_loads_across_devices():
    src = nn.Linear(3, 2)
    dst = nn.Linear(3, 2).to(STRICT)
    dst.load_state_dict(src.state_dict())
    np.testing.assert_array_equal(host(dst.weight), src.weight.numpy())
    assert dst.weight.device == STRICT
    back = nn.Linear(3, 2)
    back.load_state_dict(dst.state_dict())
    np.testing.assert_array_equal(back.weight.numpy(), src.weight.numpy())


def test_a_tensor_off_the_host_prints_its_device_as_torch_places_it():
    """torch's order of suffixes: device, then size (empty tensors), dtype, grad_fn."""
    t = retrograd.tensor([1.5, -2.0], device=STRICT)
    assert repr(t) == f"tensor([ 1.5000, -2.0000], device='{STRICT}')"
    empty = retrograd.zeros((2, 0), dtype=retrograd.float64, device=STRICT)
    assert repr(empty) == (f"tensor([], device='{STRICT}', size=(2, 0), "
                           f"dtype=retrograd.float64)")
