"""retrograd.viz: the recorded graph (nodes and edges counted by hand, by the engine's own
traversal and by Graphviz's parser), its recorded backward (gradients against PyTorch), DOT/SVG,
the engine's observing hook, MathML, and the `retrograd graph` command."""

import json
import shutil
import sys
import xml.etree.ElementTree as ET

import graphviz
import numpy as np
import pytest
import torch

import retrograd as rg
import retrograd.nn.functional as F
from retrograd import engine, viz
from retrograd.cli import main


def mlp_and_loss(batch=3):
    rg.manual_seed(0)
    model = rg.nn.Sequential(rg.nn.Linear(4, 8), rg.nn.ReLU(), rg.nn.Linear(8, 3))
    x = np.random.default_rng(0).standard_normal((batch, 4)).astype(np.float32)
    y = np.array([0, 2, 1][:batch])
    return model, x, y, F.cross_entropy(model(rg.tensor(x)), rg.tensor(y))


def torch_mlp(model):
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(torch.tensor(dict(model.named_parameters())[name].numpy()))
    return net.float()


def graphviz_counts(dot_text):
    """(nodes, edges) as Graphviz's own parser reads the DOT text."""
    layout = json.loads(graphviz.Source(dot_text).pipe(format="json"))
    return len(layout.get("objects", [])), len(layout.get("edges", []))


def observed_backward(loss, **kwargs):
    """The nodes a real backward visits, in its order, seen through engine.observing."""
    seen = []
    with engine.observing(lambda node, grad: seen.append(node)):
        loss.backward(**kwargs)
    return seen


def test_mlp_graph_matches_the_hand_count_and_the_engines_order():
    model, _, _, loss = mlp_and_loss()
    g = viz.graph(loss, params=model)
    # by hand: Linear+ReLU (fused by Sequential), Linear, softmax-CE; 4 parameters, the input
    # and the target; edges: 3 into each Linear, logits and target into the loss
    assert [v.prim for v in g.operations] == ["linear_relu", "linear", "softmax_cross_entropy"]
    params = sorted(v.label for v in g.vertices if v.kind == "param")
    assert params == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert len(g.vertices) == 3 + 4 + 2 and len(g.edges) == 3 + 3 + 2
    assert graphviz_counts(g.dot()) == (9, 8)
    fused = g.vertex(g.forward[0])
    assert fused.label == "Linear+ReLU" and "fuses" in g.dot()
    # the recorded order is the engine's: a real backward, observed here, visits the same nodes
    seq_to_id = {v.seq: v.id for v in g.operations}
    real = [seq_to_id[node.seq] for node in observed_backward(loss)]
    assert [s.node for s in g.backward] == real == g.forward[::-1]


def test_recorded_gradients_equal_torchs_and_leave_grad_untouched():
    model, x, y, loss = mlp_and_loss()
    g = viz.graph(loss, params=model)
    assert all(p.grad is None for p in model.parameters())
    net = torch_mlp(model)
    logits = net(torch.tensor(x))
    logits.retain_grad()
    torch_loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y))
    torch_loss.backward()
    by_label = {v.label: v for v in g.vertices}
    for name, p in net.named_parameters():
        np.testing.assert_allclose(by_label[name].grad["values"], p.grad.numpy(), atol=1e-6)
    # the upstream gradient the engine handed the last Linear is dL/dlogits
    step = next(s for s in g.backward if g.vertex(s.node).prim == "linear")
    np.testing.assert_allclose(step.grad["values"], logits.grad.numpy(), atol=1e-6)
    # the loss panel's (p - onehot)/N is torch's gradient too, and the engine's to 1e-6
    panel = g.vertex(g.root).loss
    np.testing.assert_allclose(panel["grad"], logits.grad.numpy(), atol=1e-6)
    assert panel["engine_max_abs_diff"] < 1e-6
    assert g.vertex(g.root).summary["values"] == pytest.approx(torch_loss.item(), rel=1e-6)
    loss.backward()  # the graph was retained: the user's own backward still runs
    np.testing.assert_allclose(model[0].weight.grad.numpy(), net[0].weight.grad.numpy(),
                               atol=1e-6)


def test_a_freed_graph_is_an_error_naming_the_fix():
    _, _, _, loss = mlp_and_loss()
    loss.backward()
    with pytest.raises(RuntimeError, match="before loss.backward"):
        viz.graph(loss)


def test_double_backward_graph_counts_and_gradient_against_torch():
    x0, w0 = np.array([1.0, 2.0, -0.5]), np.array([0.5, -1.0, 2.0])
    x = rg.tensor(x0, requires_grad=True)
    w = rg.tensor(w0, requires_grad=True)
    y = ((x * w).tanh() ** 2).sum()
    (gx,) = rg.autograd.grad(y, x, create_graph=True)
    z = (gx * gx).sum()
    g = viz.graph(z, params={"x": x, "w": w})
    # count the same graph another way: the nodes and tensor arguments the engine itself
    # reaches in a backward of z (a heap, not viz's depth-first walk)
    seen, arguments = [], 0
    with engine.observing(lambda node, grad: seen.append(node)):
        z.backward(retain_graph=True)
    arguments = sum(isinstance(a, rg.Tensor) for node in seen for a in node.args)
    assert len(g.operations) == len(set(seen)) == len(seen)
    assert len(g.edges) == arguments
    assert graphviz_counts(g.dot()) == (len(g.vertices), len(g.edges))
    # torch's double backward: d/dx and d/dw of sum((d/dx sum(tanh(xw)^2))^2)
    xt, wt = (torch.tensor(a, requires_grad=True) for a in (x0, w0))
    (gxt,) = torch.autograd.grad((torch.tanh(xt * wt) ** 2).sum(), xt, create_graph=True)
    dx, dw = torch.autograd.grad((gxt * gxt).sum(), (xt, wt))
    labels = {v.label: v for v in g.vertices}
    np.testing.assert_allclose(labels["x"].grad["values"], dx.numpy(), rtol=1e-12)
    np.testing.assert_allclose(labels["w"].grad["values"], dw.numpy(), rtol=1e-12)


def test_dot_renders_with_graphviz_and_parses_to_the_same_counts(tmp_path):
    assert shutil.which("dot"), "Graphviz's dot program is required (apt-get install graphviz)"
    model, _, _, loss = mlp_and_loss()
    g = viz.graph(loss, params=model)
    svg = g.svg()
    root = ET.fromstring(svg.encode())
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert {v.id for v in g.vertices} <= set(titles)  # dot drew every vertex
    assert g._repr_svg_() == svg
    for ext in ("dot", "svg", "html"):
        path = tmp_path / f"g.{ext}"
        assert g.save(str(path)) == str(path) and path.stat().st_size > 0
    assert (tmp_path / "g.dot").read_text() == g.dot()
    with pytest.raises(ValueError, match=r"\.png"):
        g.save(str(tmp_path / "g.png"))
    assert not (tmp_path / "g.png").exists()


def test_svg_without_graphviz_says_what_to_install(monkeypatch):
    model, _, _, loss = mlp_and_loss()
    g = viz.graph(loss, params=model)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        g.svg()
    with pytest.warns(UserWarning, match="graphviz"):
        assert g._repr_svg_() is None
    monkeypatch.setitem(sys.modules, "graphviz", None)
    with pytest.raises(ImportError, match="pip install graphviz"):
        g.svg()


def test_params_names_shapes_and_bad_arguments():
    a = rg.tensor(np.ones((2, 3)), requires_grad=True)
    b = rg.tensor(np.full(3, 2.0), requires_grad=True)
    out = (a * b).sum(axis=1)
    g = viz.graph(out, params={"alpha": a, "beta": b})
    assert sorted(v.label for v in g.vertices if v.kind == "param") == ["alpha", "beta"]
    edge_shapes = sorted(tuple(e.shape) for e in g.edges)
    assert edge_shapes == [(2, 3), (2, 3), (3,)]  # a and b into mul, the product into sum
    # a non-scalar output starts its backward from ones: d sum(a*b, axis=1) / da = b
    assert "ones" in g.seed
    np.testing.assert_array_equal(g.vertex(next(v.id for v in g.vertices if v.label == "alpha"))
                                  .grad["values"], np.full((2, 3), 2.0))
    with pytest.raises(TypeError, match="Tensor"):
        viz.graph(np.ones(3))
    with pytest.raises(TypeError, match="Module or a dict"):
        viz.graph(out, params=[a, b])
    with pytest.raises(TypeError, match="'alpha'"):
        viz.graph(out, params={"alpha": np.ones(3)})


def test_a_leaf_alone_is_a_one_vertex_graph():
    t = rg.tensor([1.0, 2.0], requires_grad=True)
    g = viz.graph(t)
    assert len(g.vertices) == 1 and g.edges == [] and g.backward == []
    assert graphviz_counts(g.dot()) == (1, 0)


def test_to_dict_round_trips_through_json():
    model, _, _, loss = mlp_and_loss()
    g = viz.graph(loss, params=model)
    back = viz.Graph.from_dict(json.loads(json.dumps(g.to_dict())))
    assert back.dot() == g.dot() and back.html() == g.html()


def test_observing_reports_each_node_once_newest_first_with_torchs_gradients():
    x0 = np.array([[0.3, -1.2], [2.0, 0.5]])
    x = rg.tensor(x0, requires_grad=True)
    h = x.exp()
    s = (h * h).sum()
    calls = []
    with engine.observing(lambda node, grad: calls.append((node.prim.name, np.array(grad)))):
        s.backward()
    assert [name for name, _ in calls] == ["sum", "mul", "exp"]
    xt = torch.tensor(x0, requires_grad=True)
    ht = xt.exp()
    ht.retain_grad()
    (ht * ht).sum().backward()
    np.testing.assert_allclose(calls[2][1], ht.grad.numpy(), rtol=1e-12)  # dL/d exp(x)
    with pytest.raises(ZeroDivisionError):
        with engine.observing(lambda node, grad: 1 / 0):
            (rg.tensor([1.0], requires_grad=True) * 2).sum().backward()
    assert engine._OBSERVERS == []  # removed even when the block raised
    # under create_graph the gradient handed over is a Tensor (of the graph being built)
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    kinds = []
    with engine.observing(lambda node, grad: kinds.append((node.prim.name, type(grad)))):
        rg.autograd.grad((x ** 3).sum(), x, create_graph=True)
    assert kinds == [("sum", rg.Tensor), ("pow", rg.Tensor)]


def test_mathml_is_well_formed_and_structured():
    from retrograd.viz.mathml import inline_math, mathml

    out = mathml(r"\frac{\partial L}{\partial o_i} = p_i - \delta_{i,\hat c}", display=True)
    root = ET.fromstring(out)
    assert root.tag == "math" and root.get("display") == "block"
    frac = root.find(".//mfrac")
    assert frac is not None and len(frac) == 2
    assert [m.text for m in root.iter("mo")].count("\u2212") == 1  # '-' is a real minus
    assert root.find(".//mover/mo").text == "^"  # the hat accent
    sums = ET.fromstring(mathml(r"\sum_{c=1}^{C} p_c", display=True))
    assert sums.find(".//munderover") is not None
    text = inline_math("cost $-\\log p_c$ & <b>")
    assert "&amp; &lt;b&gt;" in text and text.count("<math") == 1
    for bad in (r"\frac{a}{b", r"\nosuchcommand", "a}", "^2"):
        with pytest.raises(ValueError):
            mathml(bad)
    with pytest.raises(ValueError, match=r"unmatched '\$'"):
        inline_math("one $ sign")


def test_save_training_graph_writes_the_stepper(tmp_path):
    model, x, y, _ = mlp_and_loss()
    path = tmp_path / "graph.html"
    g = viz.save_training_graph(model, F.cross_entropy, x, y, str(path), title="a <run>")
    html = path.read_text()
    assert "a &lt;run&gt;" in html and html.count('class="rg-step"') == 6
    assert len(g.operations) == 3 and all(p.grad is None for p in model.parameters())


def test_graph_command_draws_a_trained_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", "spirals", "--hidden", "5", "--epochs", "1",
                 "--no-progress", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["graph", "--model", str(run), "--batch-size", "3"]) == 0
    html = (run / "graph.html").read_text()
    # by hand: Linear+ReLU, Linear, softmax-CE; three forward and three backward steps
    assert html.count('data-phase="forward"') == 3 and html.count('data-phase="backward"') == 3
    assert 'data-prim="linear_relu"' in html and "0.weight" in html
    out = tmp_path / "g.dot"
    assert main(["graph", "--model", str(run), "--out", str(out)]) == 0
    assert graphviz_counts(out.read_text()) == (3 + 4 + 2, 8)
    capsys.readouterr()
    for args, message in ((["--out", str(tmp_path / "g.png")], "'.png'"),
                          (["--batch-size", "0"], "--batch-size"),
                          (["--out", str(tmp_path / "missing" / "g.html")], "does not exist")):
        assert main(["graph", "--model", str(run), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
    assert main(["graph", "--model", str(tmp_path / "nothing")]) == 2
    assert "not a retrograd run folder" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists() and not (tmp_path / "missing").exists()


def test_a_cnn_graph_names_the_conv_node_and_its_edges_shapes(tmp_path):
    rg.manual_seed(0)
    model = rg.nn.Sequential(rg.nn.Conv1d(1, 4, 3), rg.nn.BatchNorm1d(4), rg.nn.ReLU(),
                             rg.nn.MaxPool1d(2), rg.nn.Flatten(), rg.nn.Linear(16, 3))
    x = np.random.default_rng(0).standard_normal((2, 1, 10)).astype(np.float32)
    y = np.array([0, 2])
    loss = F.cross_entropy(model(rg.tensor(x)), rg.tensor(y))
    g = viz.graph(loss, params=model)
    # by hand: conv, BatchNorm, ReLU, pool, flatten, Linear, softmax-CE
    assert [v.prim for v in g.operations] == ["conv", "normalize", "relu", "max_pool", "reshape",
                                              "linear", "softmax_cross_entropy"]
    conv = g.vertex(g.forward[0])
    assert conv.label == "Conv" and conv.shape == [2, 4, 8]  # (10 - 3) + 1 positions
    into_conv = {e.name: (g.vertex(e.source).label, e.shape) for e in g.edges
                 if e.target == conv.id}
    assert into_conv == {"input": ("input", [2, 1, 10]), "weight": ("0.weight", [4, 1, 3]),
                         "bias": ("0.bias", [4])}
    pooled = [e for e in g.edges if g.vertex(e.target).prim == "reshape"]
    assert [e.shape for e in pooled] == [[2, 4, 4]]
    assert graphviz_counts(g.dot()) == (7 + 6 + 2, 14)  # 7 ops, 6 parameters, input, target
    # the recorded conv weight gradient is torch's
    net = torch.nn.Sequential(torch.nn.Conv1d(1, 4, 3), torch.nn.BatchNorm1d(4),
                              torch.nn.ReLU(), torch.nn.MaxPool1d(2), torch.nn.Flatten(),
                              torch.nn.Linear(16, 3)).float()
    net.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    torch.nn.functional.cross_entropy(net(torch.tensor(x)), torch.tensor(y)).backward()
    weight = next(v for v in g.vertices if v.label == "0.weight")
    expected = net[0].weight.grad.numpy().astype(np.float64)  # (3-D: summarized, not listed)
    np.testing.assert_allclose([weight.grad[k] for k in ("min", "max", "mean")],
                               [expected.min(), expected.max(), expected.mean()], rtol=1e-4,
                               atol=1e-6)
    path = tmp_path / "cnn.html"
    g.save(str(path))
    assert 'data-prim="conv"' in path.read_text()
