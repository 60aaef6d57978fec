"""fit and `retrograd train` with compiled steps (the default) against eager steps: the same
history and the same weights byte for byte (the oracle is the eager loop itself), and the
compiled loop really replays."""

from __future__ import annotations

import numpy as np
import pytest

import retrograd
from retrograd import data, nn
from retrograd.cli import main
from retrograd.train import Callback, fit


def _blobs(n=200, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[2, 0, 0], [0, 2, 0], [0, 0, 2]], np.float32)
    y = rng.integers(0, 3, n)
    return (centers[y] + rng.standard_normal((n, 3)).astype(np.float32)), y


class _Replays(Callback):
    def on_train_end(self, loop):
        self.compiled = loop.compiled


def _train(compile: bool):
    x, y = _blobs()
    retrograd.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=32, shuffle=True)
    opt = retrograd.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    sched = retrograd.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=6)
    probe = _Replays()
    hist = fit(model, nn.CrossEntropyLoss(label_smoothing=0.05), opt, loader, 6,
               validation=_blobs(60, 1), scheduler=sched, clip_grad_norm=1.0, progress=False,
               compile=compile, callbacks=[probe])
    weights = [p.numpy().tobytes() for p in model.parameters()]
    return hist, weights, probe.compiled


def test_fit_compiled_equals_eager_byte_for_byte():
    eager, eager_weights, none = _train(compile=False)
    compiled, compiled_weights, cf = _train(compile=True)
    assert none is None
    assert cf.eager_reason is None and cf.replays > 0  # the loop really replayed
    assert compiled_weights == eager_weights
    strip = [{k: v for k, v in e.items() if k != "seconds"} for e in eager.epochs]
    assert [{k: v for k, v in e.items() if k != "seconds"} for e in compiled.epochs] == strip


def test_fit_falls_back_quietly_when_the_loss_reads_values(recwarn):
    def loss_fn(out, y):  # a data-dependent branch in Python
        loss = nn.functional.cross_entropy(out, y)
        return loss * 2 if loss.item() > 1.0 else loss

    x, y = _blobs()
    runs = []
    for compile in (False, True):
        retrograd.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 3))
        loader = data.DataLoader(data.TensorDataset(x, y), batch_size=50)
        opt = retrograd.optim.SGD(model.parameters(), lr=0.1)
        fit(model, loss_fn, opt, loader, 3, progress=False, compile=compile)
        runs.append([p.numpy().tobytes() for p in model.parameters()])
    assert runs[0] == runs[1]
    assert not [w for w in recwarn if issubclass(w.category, retrograd.CompileWarning)]


@pytest.mark.parametrize("flag", [[], ["--no-compile"]])
def test_train_cli_with_and_without_compile_writes_the_same_weights(tmp_path, flag):
    args = ["train", "--data", "spirals", "--hidden", "16", "--epochs", "3", "--no-progress"]
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(args + ["--no-compile", "--out", str(ref)]) == 0
    assert main(args + flag + ["--out", str(out)]) == 0
    assert (ref / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()
