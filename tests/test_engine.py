"""The backward engine and the Tensor surface: graph shape, accumulation, grad modes, errors."""

import weakref

import numpy as np
import pytest

import retrograd
from retrograd.autograd import GradcheckError, grad, gradcheck
from retrograd.ops import primitive
from retrograd.tensor import apply


def t64(a, requires_grad=True):
    return retrograd.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def test_ten_thousand_deep_chain_has_no_recursion_limit():
    x = t64(1.5)
    y = x
    for _ in range(10_000):
        y = y * 0.9999 + 0.0001
    y.backward()
    # y_n = 0.9999 y_{n-1} + c, so dy/dx = 0.9999 ** n
    np.testing.assert_allclose(x.grad.item(), 0.9999 ** 10_000, rtol=1e-10)
    del y  # freeing a deep graph must not overflow the stack either


def test_reused_nodes_accumulate():
    x = t64([0.5, -1.0, 2.0])
    a = x * x  # used three times below
    y = (a * a + a * 3.0 + a.exp()).sum()
    y.backward()
    xv = x.numpy()
    expected = 4 * xv ** 3 + 6 * xv + 2 * xv * np.exp(xv ** 2)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


def test_a_node_runs_only_after_all_its_consumers_across_interleaved_branches():
    """The backward takes nodes newest first as gradients reach them: `a`, used by an early and
    a late consumer with an unrelated branch and a comparison created in between, runs once,
    with both contributions summed (hand-derived gradient)."""
    x = t64([0.3, -0.7, 0.1])
    a = x.tanh()
    b = a * 2.0
    c = (x * 5.0).exp()
    mask = c > 1.0  # no gradient flows through a comparison
    e = b * b + a * c + retrograd.where(mask, a, a * 0.0)
    e.sum().backward()
    av, cv, m = np.tanh(x.numpy()), np.exp(5 * x.numpy()), np.exp(5 * x.numpy()) > 1.0
    expected = (8 * av + cv + m) * (1 - av ** 2) + av * 5 * cv
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


def test_leaf_grad_accumulates_across_backward_calls_and_zeroes():
    x = t64([1.0, 2.0])
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 + 2 * x.numpy())
    x.grad = None
    (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_two_leaves_sharing_one_gradient_array_get_separate_grads():
    a, b = t64([1.0, 2.0]), t64([3.0, 4.0])
    (a + b).sum().backward()
    a.grad.zero_()
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0])


def test_backward_with_gradient_does_not_alias_callers_array():
    x = t64([1.0, 2.0])
    seed = np.array([5.0, 7.0])
    (x + 0).backward(seed)
    seed[:] = 0
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 7.0])


def test_no_grad_builds_no_graph():
    x = t64([1.0, 2.0])
    with retrograd.no_grad():
        y = (x * 2).exp().sum()
    assert not y.requires_grad and y.grad_fn is None

    @retrograd.no_grad()
    def f(v):
        return v * 3

    assert f(x).grad_fn is None
    assert retrograd.is_grad_enabled()
    with retrograd.no_grad(), retrograd.enable_grad():
        assert (x * 2).grad_fn is not None


def test_plain_backward_builds_no_graph_and_create_graph_does():
    x = t64([0.3, -0.7])
    y = (x.tanh() * x).sum()
    (g,) = grad(y, x)
    assert g.grad_fn is None and not g.requires_grad
    y = (x.tanh() * x).sum()
    (g,) = grad(y, x, create_graph=True)
    assert g.grad_fn is not None
    # d/dx (tanh x * x) = tanh x + x (1 - tanh^2 x); the second derivative of the sum:
    (h,) = grad(g.sum(), x)
    th = np.tanh(x.numpy())
    np.testing.assert_allclose(h.numpy(), 2 * (1 - th ** 2) - 2 * x.numpy() * th * (1 - th ** 2))


def test_grad_leaves_dot_grad_untouched_and_reaches_intermediates():
    x = t64([1.0, 2.0, 3.0])
    h = x * x
    y = (h * 2).sum()
    gx, gh = grad(y, [x, h], retain_graph=True)
    assert x.grad is None
    np.testing.assert_allclose(gx.numpy(), 4 * x.numpy())
    np.testing.assert_allclose(gh.numpy(), [2.0, 2.0, 2.0])


def test_grad_unused_input():
    x, z = t64([1.0]), t64([2.0])
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="not used"):
        grad(y, [x, z], retain_graph=True)
    gx, gz = grad(y, [x, z], allow_unused=True)
    assert gz is None and gx.item() == 2.0


def test_second_backward_through_freed_graph_raises_unless_retained():
    x = t64([1.0, 2.0])
    y = (x.exp()).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(x.numpy()))
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_backward_on_non_scalar_needs_gradient():
    x = t64([1.0, 2.0])
    y = x * 2
    with pytest.raises(RuntimeError, match=r"shape \(2,\) needs a `gradient`"):
        y.backward()
    assert x.grad is None
    y.backward(retrograd.tensor([1.0, 10.0], dtype=np.float64))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 20.0])


def test_backward_without_requires_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        retrograd.tensor([1.0]).sum().backward()


def test_matmul_shape_mismatch_names_both_shapes():
    a, b = retrograd.randn(2, 3), retrograd.randn(4, 5)
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        a @ b


def test_in_place_change_of_a_saved_array_is_detected():
    w = retrograd.randn(3, 2, requires_grad=True)
    x = retrograd.randn(4, 3)
    loss = (x @ w).tanh().sum()
    with retrograd.no_grad():
        w.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()
    assert w.grad is None


def test_in_place_change_of_input_data_is_detected():
    w = retrograd.randn(3, 2, requires_grad=True)
    x = retrograd.randn(4, 3)
    loss = (x @ w).sum()
    x[0, 0] = 5.0
    with pytest.raises(RuntimeError, match="in-place"):
        loss.backward()


def test_in_place_change_of_an_intermediate_through_detach_is_detected():
    x = t64([0.5, 1.5])
    h = x.exp()
    loss = (h * h).sum()
    h.detach().mul_(2.0)
    with pytest.raises(RuntimeError, match="in-place"):
        loss.backward()


def test_optimizer_step_before_backward_is_detected():
    model = retrograd.nn.Linear(3, 2)
    opt = retrograd.optim.SGD(model.parameters(), lr=0.1)
    loss = model(retrograd.randn(5, 3)).sum()
    loss.backward(retain_graph=True)
    opt.step()
    with pytest.raises(RuntimeError, match="in-place"):
        loss.backward()


def test_in_place_on_leaf_requiring_grad_is_refused_outside_no_grad():
    w = t64([1.0, 2.0])
    before = w.numpy().copy()
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w.mul_(2.0)
    np.testing.assert_array_equal(w.numpy(), before)


def test_tensor_dtypes_follow_torch():
    assert retrograd.tensor([1.0, 2.0]).dtype == np.float32
    assert retrograd.tensor(3.5).dtype == np.float32
    assert retrograd.tensor([1, 2]).dtype == np.int64
    assert retrograd.tensor([True, False]).dtype == np.bool_
    assert retrograd.tensor(np.zeros(2)).dtype == np.float64
    assert retrograd.tensor(np.zeros(2, dtype=np.int32)).dtype == np.int32
    with pytest.raises(TypeError, match="floating-point"):
        retrograd.tensor([1, 2], requires_grad=True)


def test_float32_stays_float32_with_python_and_numpy_scalars():
    x = retrograd.randn(3, requires_grad=True)
    y = (x * 0.5 + np.float64(2.0)) / 3 - 1.5 ** x
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_mixed_dtypes_promote_forward_and_cast_gradients_back():
    a = retrograd.tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    b = retrograd.tensor(np.ones(2), requires_grad=True)
    y = (a * b).sum()
    assert y.dtype == np.float64
    y.backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


def test_tensor_surface():
    t = retrograd.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert t.shape == (2, 2) and t.ndim == 2 and t.numel() == 4
    np.testing.assert_array_equal(np.asarray(t), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(t.T.numpy(), [[1, 3], [2, 4]])
    assert t.sum().item() == 10.0
    d = t.detach()
    assert not d.requires_grad and d.numpy() is t.numpy()
    assert "requires_grad=True" in repr(t)
    assert "grad_fn=<MulBackward0>" in repr(t * 2)


def test_from_numpy_shares_memory_and_refuses_what_torch_refuses():
    import torch

    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = retrograd.from_numpy(a)
    a[0, 0] = 7.0
    assert t.dtype == torch.from_numpy(a).numpy().dtype and t[0, 0].item() == 7.0
    assert not t.requires_grad and t.grad_fn is None
    for bad in ([1.0, 2.0], 3.0):
        with pytest.raises(TypeError) as theirs:
            torch.from_numpy(bad)
        with pytest.raises(type(theirs.value), match="expected an array"):
            retrograd.from_numpy(bad)


def test_gradcheck_accepts_a_correct_gradient():
    x = t64(np.random.default_rng(0).standard_normal((3, 2)))
    w = t64(np.random.default_rng(1).standard_normal((2, 4)))
    assert gradcheck(lambda a, b: (a @ b).tanh().softmax(1), [x, w])


def test_gradcheck_reports_the_worst_entry_of_a_wrong_gradient():
    wrong_square = primitive("wrong_square", lambda xp, x: xp.multiply(x, x),
                             lambda ops, g, out, x: g * x, register=False)
    x = t64([1.0, -2.0, 3.0])
    with pytest.raises(GradcheckError, match=r"input index \(2,\): analytic 3, numerical 6\.0"):
        gradcheck(lambda a: apply(wrong_square, a), [x])
    assert gradcheck(lambda a: apply(wrong_square, a), [x], raise_exception=False) is False


def test_gradient_shared_by_two_inputs_is_never_overwritten_in_place():
    """add hands the same gradient array to both fused Linear+ReLU nodes; each may overwrite
    only a gradient nobody else holds (compared with torch)."""
    import torch

    rng = np.random.default_rng(3)
    x_np, w1, w2, b = (rng.standard_normal(s) for s in [(5, 3), (4, 3), (4, 3), (4,)])
    F = retrograd.nn.functional
    x = t64(x_np, requires_grad=False)
    ws = [t64(w1), t64(w2)]
    h = F.linear_relu(x, ws[0], t64(b, requires_grad=False)) + F.linear_relu(x, ws[1])
    (h * h).sum().backward()
    xt = torch.tensor(x_np)
    wt = [torch.tensor(w1, requires_grad=True), torch.tensor(w2, requires_grad=True)]
    ht = torch.relu(xt @ wt[0].T + torch.tensor(b)) + torch.relu(xt @ wt[1].T)
    (ht * ht).sum().backward()
    for mine, theirs in zip(ws, wt, strict=True):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-12)


def test_gradient_of_an_intermediate_is_not_overwritten_by_later_vjps():
    F = retrograd.nn.functional
    rng = np.random.default_rng(4)
    x = t64(rng.standard_normal((5, 3)), requires_grad=False)
    w1, w2 = t64(rng.standard_normal((4, 3))), t64(rng.standard_normal((2, 4)))
    h = F.linear_relu(x, w1)
    out = F.linear(h, w2)
    g_out = rng.standard_normal((5, 2))
    gh, gw1 = grad(out, [h, w1], grad_outputs=t64(g_out, requires_grad=False))
    np.testing.assert_allclose(gh.numpy(), g_out @ w2.numpy(), rtol=1e-12)
    gate = (x.numpy() @ w1.numpy().T > 0)
    np.testing.assert_allclose(gw1.numpy(), ((g_out @ w2.numpy()) * gate).T @ x.numpy(),
                               rtol=1e-12)


def test_grad_takes_a_fresh_vjp_result_without_copying_and_copies_a_shared_one():
    """A `.grad` owns its array: the VJP's fresh result is handed over as is (no copy on the
    hot path), while one array given to two leaves is copied so that each owns its own."""
    made = []  # weak references: a strong one would make the array shared

    def fresh_double(ops, g, out, x):
        result = 2 * g
        made.append(weakref.ref(result))
        return result

    double = primitive("double", lambda xp, x: 2 * x, fresh_double, register=False)
    x = t64([1.0, 2.0])
    apply(double, x).sum().backward()
    assert x.grad._data is made[0]()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])

    a, b = t64([1.0, 2.0]), t64([3.0, 4.0])
    (a + b).sum().backward()  # add hands the same gradient array to both leaves
    assert a.grad._data is not b.grad._data
    a.grad._data += 1
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0])


def test_grad_takes_a_transposed_fresh_result_and_copies_a_transposed_shared_one():
    """A view is as good as its base when it covers the whole base and nothing else holds the
    base (a column-major weight's gradient is the transpose of a fresh product); a transposed
    view of an array that another leaf also receives must be copied."""
    made = []

    def fresh_transposed(ops, g, out, x):
        base = np.ascontiguousarray(3 * g.T)
        made.append(weakref.ref(base))
        return base.T

    triple = primitive("triple", lambda xp, x: 3 * x, fresh_transposed, register=False)
    x = t64(np.arange(6.0).reshape(2, 3))
    apply(triple, x).sum().backward()
    assert made[0]() is not None  # alive: the view was handed over, not copied and freed
    assert x.grad._data.base is made[0]()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 3.0))

    a, b = t64(np.ones((2, 3))), t64(np.ones((3, 2)))
    (a.T + b).sum().backward()  # a's gradient is the transpose of the array b receives
    assert not np.shares_memory(a.grad._data, b.grad._data)
    b.grad._data += 1
    np.testing.assert_array_equal(a.grad.numpy(), np.ones((2, 3)))


def test_relu_gate_runs_in_place_on_a_private_gradient(monkeypatch):
    """In a plain MLP each layer's incoming gradient is held by nothing else, so the engine
    lets the fused Linear+ReLU gate it in place (the path the torch comparisons then check)."""
    import dataclasses

    from retrograd import ops

    seen = []
    vjp = ops.PRIMITIVES["linear_relu"].vjp

    def spy(ops, g, out, args, params, wanted, g_private):
        seen.append(g_private)
        return vjp(ops, g, out, args, params, wanted, g_private)

    monkeypatch.setitem(ops.PRIMITIVES, "linear_relu",
                        dataclasses.replace(ops.PRIMITIVES["linear_relu"], vjp=spy))
    nn = retrograd.nn
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3))
    x = retrograd.tensor(np.random.default_rng(0).standard_normal((6, 5)))
    nn.functional.cross_entropy(model(x), retrograd.tensor([0, 1, 2, 0, 1, 2])).backward()
    assert seen == [True, True]
