"""`retrograd train --model cnn` end to end: the run folder's model.json rebuilds the CNN in
PyTorch, whose load_state_dict(strict=True) takes the safetensors (BatchNorm buffers included)
and computes retrograd's logits; evaluate, predict and resume work on it; the mnist1d recipe
learns in a few epochs; bad choices are one line and exit 2."""

import json

import numpy as np
import pytest
import torch

from retrograd.cli import main
from retrograd.data import digits
from retrograd.train.architectures import cnn_layers, layers_for
from retrograd.train.checkpoint import load_safetensors
from retrograd.train.config import TrainConfig
from retrograd.train.saved_run import load_run

FAST = ["--no-progress", "--epochs", "2"]


def torch_model(layers):
    """torch.nn.Sequential built from model.json's layer list alone (the documented recipe)."""
    return torch.nn.Sequential(*(getattr(torch.nn, spec["type"])(
        **{k: v for k, v in spec.items() if k != "type"}) for spec in layers)).float()


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cnn") / "run"
    assert main(["train", "--model", "cnn", "--out", str(folder), *FAST]) == 0
    return folder


def test_safetensors_load_into_the_torch_model_and_give_the_same_logits(digits_run):
    description = json.loads((digits_run / "model.json").read_text())
    layers = description["layers"]
    assert [spec["type"] for spec in layers if spec["type"].startswith(("Conv", "Batch"))] \
        == ["Conv2d", "BatchNorm2d"] * 3
    net = torch_model(layers)
    state = load_safetensors(str(digits_run / "model.safetensors"))
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()},
                        strict=True)
    # num_batches_tracked counts the steps: 2 epochs of ceil(1438 / 64) batches
    bn = [k for k in state if k.endswith("num_batches_tracked")]
    assert len(bn) == 3 and all(int(state[k]) == 2 * 23 for k in bn)
    assert all(state[k].dtype == np.int64 for k in bn)
    assert state[bn[0].replace("num_batches_tracked", "running_var")].std() > 0  # trained
    split, run = digits(), load_run(str(digits_run))
    x = run.standardize(split.x_test)
    net.eval()
    with torch.no_grad():
        theirs = net(torch.from_numpy(x)).numpy()
    ours = run.predict_proba(split.x_test)
    np.testing.assert_allclose(ours, torch.softmax(torch.from_numpy(theirs), 1).numpy(),
                               rtol=1e-4, atol=1e-5)
    metrics = json.loads((digits_run / "metrics.json").read_text())
    assert metrics["test_accuracy"] == pytest.approx(np.mean(theirs.argmax(1) == split.y_test))


def test_evaluate_predict_and_graph_rebuild_the_cnn(digits_run, tmp_path, capsys):
    metrics = json.loads((digits_run / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", "--model", str(digits_run)]) == 0
    out = capsys.readouterr().out
    assert f"{metrics['test_accuracy']:.4f}" in out
    split = digits()
    rows = split.x_test[:5]
    path = tmp_path / "x.csv"
    path.write_text(",".join(f"p{i}" for i in range(64)) + "\n"
                    + "\n".join(",".join(f"{v:g}" for v in r) for r in rows) + "\n")
    predictions = tmp_path / "p.csv"
    assert main(["predict", "--model", str(digits_run), "--data", str(path),
                 "--output", str(predictions)]) == 0
    net = torch_model(json.loads((digits_run / "model.json").read_text())["layers"])
    state = load_safetensors(str(digits_run / "model.safetensors"))
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    net.eval()
    with torch.no_grad():
        expected = net(torch.from_numpy(load_run(str(digits_run)).standardize(rows))).argmax(1)
    lines = predictions.read_text().strip().splitlines()[1:]
    assert [int(line.split(",")[1]) for line in lines] == expected.tolist()
    graph = tmp_path / "g.html"
    assert main(["graph", "--model", str(digits_run), "--batch-size", "4",
                 "--out", str(graph)]) == 0
    assert graph.read_text().count('data-prim="conv"') >= 3


def image_npz(path, n=240, n_test=60, size=6):
    """An .npz of (N, size, size) images: class c brightens row c (3 classes), plus noise."""
    rng = np.random.default_rng(0)

    def images(labels):
        x = rng.normal(0, 1, (len(labels), size, size))
        x[np.arange(len(labels)), labels] += 2
        return x

    y, y_test = rng.integers(0, 3, n), rng.integers(0, 3, n_test)
    np.savez(path, x=images(y), y=y, x_test=images(y_test), y_test=y_test)
    return str(path)


def test_resume_restores_the_running_statistics(tmp_path, capsys):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    data = image_npz(tmp_path / "images.npz")
    base = ["--model", "cnn", "--no-progress", "--schedule", "none", "--data", data]
    assert main(["train", "--out", str(whole), "--epochs", "2", *base]) == 0
    assert main(["train", "--out", str(parts), "--epochs", "1", *base]) == 0
    assert main(["train", "--out", str(parts), "--epochs", "2", "--resume", *base]) == 0
    a = load_safetensors(str(whole / "model.safetensors"))
    b = load_safetensors(str(parts / "model.safetensors"))
    assert sorted(a) == sorted(b) and any(k.endswith("running_mean") for k in a)
    assert json.loads((whole / "model.json").read_text())["sample_shape"] == [1, 6, 6]
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_the_mnist1d_cnn_recipe_learns_in_a_few_epochs(tmp_path, capsys):
    """A short run of the recipe (the full one, 5 seeds, is bench/cnn_recipes.py): far above
    the paper's MLP (68%) after 6 epochs."""
    out = tmp_path / "m"
    assert main(["train", "--data", "mnist1d", "--model", "cnn", "--epochs", "6",
                 "--no-progress", "--out", str(out)]) == 0
    description = json.loads((out / "model.json").read_text())
    assert [s["out_channels"] for s in description["layers"] if s["type"] == "Conv1d"] \
        == [25, 25, 25]
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] > 0.8


def test_layer_sizes_follow_torchs_arithmetic():
    layers = cnn_layers((1, 40), 10, [{"channels": 25, "kernel": 5, "stride": 2, "padding": 1},
                                      {"channels": 25, "kernel": 3, "stride": 2, "padding": 1}])
    net = torch_model(layers)
    assert net(torch.zeros(2, 40, dtype=torch.float32)).shape == (2, 10)  # in_features fit
    layers = layers_for(TrainConfig(data="some.npz", model="cnn"), (3, 9, 7), 4)
    assert torch_model(layers)(torch.zeros(2, 3 * 9 * 7, dtype=torch.float32)).shape == (2, 4)
    with pytest.raises(ValueError, match=r"\(1, 2\) are too small"):
        cnn_layers((1, 2), 3, [{"channels": 4, "kernel": 3}])
    with pytest.raises(ValueError, match="needs samples with an image shape"):
        layers_for(TrainConfig(data="x.csv", model="cnn"), (5,), 2)


@pytest.mark.parametrize("args,needle", [
    (["--data", "spirals", "--model", "cnn"], "needs samples with an image shape"),
    (["--model", "rnn"], "'rnn'"),
    (["--model", "cnn", "--hidden", "32"], "--hidden"),
])
def test_bad_model_choices_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, args,
                                                                 needle, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--no-progress", "--out", str(tmp_path / "run"), *args])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_run_folder_of_the_old_mlp_format_still_loads(tmp_path, capsys):
    """Folders written before --model existed (format retrograd-mlp-1: hidden and activation,
    no layer list) rebuild the same MLP and evaluate to the same accuracy."""
    folder = tmp_path / "old"
    assert main(["train", "--data", "spirals", "--hidden", "8", "--epochs", "2",
                 "--no-progress", "--out", str(folder)]) == 0
    description = json.loads((folder / "model.json").read_text())
    expected = json.loads((folder / "metrics.json").read_text())["test_accuracy"]
    old = {k: v for k, v in description.items()
           if k not in ("layers", "model", "sample_shape")}
    old.update(format="retrograd-mlp-1", hidden=[8], activation="relu")
    (folder / "model.json").write_text(json.dumps(old))
    capsys.readouterr()
    assert main(["evaluate", "--model", str(folder)]) == 0
    assert f"accuracy {expected:.4f}" in capsys.readouterr().out
