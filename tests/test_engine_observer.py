"""retrograd.engine.observing: the backward reports each node it runs, in order, with the
gradient of the node's output, and an observer never changes what the backward computes."""

import numpy as np
import torch

import retrograd
from retrograd.autograd import grad
from retrograd.engine import observing


def t64(a, requires_grad=True):
    return retrograd.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def test_each_node_is_reported_after_its_consumers_with_its_output_gradient():
    """Gradients reported for every intermediate equal torch's (retain_grad), and every node
    comes after all the nodes that consume its output."""
    x_np = np.array([0.3, -0.7, 0.1])
    x = t64(x_np)
    a = x.tanh()
    b = a * 2.0
    c = (x * 5.0).exp()
    e = (b * b + a * c).sum()
    seen = []
    with observing(lambda node, g: seen.append((node, np.array(g, copy=True)))):
        e.backward()

    xt = torch.tensor(x_np, requires_grad=True)
    at = xt.tanh()
    bt = at * 2.0
    ct = (xt * 5.0).exp()
    for t in (at, bt, ct):
        t.retain_grad()
    (bt * bt + at * ct).sum().backward()
    reported = {id(node): g for node, g in seen}
    for mine, theirs in ((a, at), (b, bt), (c, ct)):
        np.testing.assert_allclose(reported[id(mine.grad_fn)], theirs.grad.numpy(), rtol=1e-12)
    assert len(seen) == 8  # tanh, a * 2, x * 5, exp, b * b, a * c, add, sum: each once
    position = {id(node): k for k, (node, _) in enumerate(seen)}
    for k, (node, _) in enumerate(seen):
        for _, arg in node.edges or ():
            if arg.grad_fn is not None:  # an input's node runs after this, its consumer
                assert position[id(arg.grad_fn)] > k
    assert seen[0][0].prim.name == "sum" and seen[0][1].shape == ()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12)


def test_the_node_keeps_its_record_while_it_is_reported():
    """prim.name, seq, args, out and edges are what the forward recorded."""
    x, w = t64([[1.0, 2.0]]), t64([[0.5, -1.0], [2.0, 1.0]])
    out = retrograd.nn.functional.linear(x, w)
    records = []

    def look(node, g):
        records.append((node.prim.name, node.seq, node.args, node.out.copy(),
                        [i for i, _ in node.edges]))

    with observing(look):
        out.sum().backward()
    (name, seq, args, value, positions), = [r for r in records if r[0] == "linear"]
    assert args[0] is x and args[1] is w and positions == [0, 1]
    np.testing.assert_array_equal(value, x.numpy() @ w.numpy().T)
    assert seq < [r[1] for r in records if r[0] == "sum"][0]


def test_nested_observers_both_see_the_backward_and_nothing_is_reported_after():
    outer, inner = [], []
    x = t64([1.0, 2.0])
    with observing(lambda n, g: outer.append(n.prim.name)):
        with observing(lambda n, g: inner.append(n.prim.name)):
            (x * x).sum().backward()
        (x * 3.0).sum().backward()
    (x * 4.0).sum().backward()
    assert inner == ["sum", "mul"]
    assert outer == ["sum", "mul", "sum", "mul"]


def test_under_create_graph_the_reported_gradient_is_a_tensor_of_the_new_graph():
    x = t64([0.5, 1.5])
    y = (x.exp() * x).sum()
    seen = []
    with observing(lambda node, g: seen.append(g)):
        (gx,) = grad(y, x, create_graph=True)
    assert all(isinstance(g, retrograd.Tensor) for g in seen)
    (h,) = grad(gx.sum(), x)  # d/dx of (x + 1) e^x summed: (x + 2) e^x
    np.testing.assert_allclose(h.numpy(), (x.numpy() + 2) * np.exp(x.numpy()), rtol=1e-12)


def test_an_observer_that_keeps_the_gradients_sees_them_unchanged():
    """The fused Linear+ReLU gates its incoming gradient in place when nothing else holds it;
    an observer that keeps that gradient makes it shared, so it must stay as reported, and the
    weights' gradients must still be torch's."""
    rng = np.random.default_rng(0)
    nn = retrograd.nn
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 3))
    model.double()
    x_np, y_np = rng.standard_normal((6, 4)), np.array([0, 1, 2, 0, 1, 2])
    kept = []
    with observing(lambda node, g: kept.append((g, np.array(g, copy=True)))):
        nn.functional.cross_entropy(model(retrograd.tensor(x_np)), retrograd.tensor(y_np)) \
            .backward()
    for g, snapshot in kept:
        np.testing.assert_array_equal(g, snapshot)

    layers = [torch.nn.Linear(4, 5), torch.nn.Linear(5, 5), torch.nn.Linear(5, 3)]
    mine = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for theirs, m in zip(layers, mine, strict=True):
            theirs.weight.copy_(torch.from_numpy(m.weight.numpy()))
            theirs.bias.copy_(torch.from_numpy(m.bias.numpy()))
    h = torch.from_numpy(x_np)
    h = torch.relu(layers[1](torch.relu(layers[0](h))))
    torch.nn.functional.cross_entropy(layers[2](h), torch.from_numpy(y_np)).backward()
    for theirs, m in zip(layers, mine, strict=True):
        np.testing.assert_allclose(m.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-10)


def test_nodes_that_autograd_grad_skips_are_not_reported():
    """grad(y, x) runs only the nodes on a path to x; the branch through z alone is skipped."""
    x, z = t64([1.0, 2.0]), t64([3.0, 4.0])
    y = (x * 2.0).sum() + (z.exp() * 3.0).sum()
    seen = []
    with observing(lambda node, g: seen.append(node.prim.name)):
        (gx,) = grad(y, x)
    np.testing.assert_array_equal(gx.numpy(), [2.0, 2.0])
    assert sorted(seen) == ["add", "mul", "sum"]
