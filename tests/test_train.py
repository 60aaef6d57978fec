"""Metrics against scikit-learn, checkpoints against safetensors/torch, the training loop."""

import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn import metrics as skm

import retrograd
from retrograd import data, nn
from retrograd.train import checkpoint as ckpt
from retrograd.train import fit, metrics


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((300, 4)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.where(rng.random(300) < 0.7, probs.argmax(1), rng.integers(0, 4, 300))
    return probs, y


def test_metrics_match_scikit_learn(predictions):
    probs, y = predictions
    pred = probs.argmax(1)
    assert metrics.accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred))
    assert metrics.balanced_accuracy(y, pred) == pytest.approx(
        skm.balanced_accuracy_score(y, pred))
    np.testing.assert_array_equal(metrics.confusion_matrix(y, pred),
                                  skm.confusion_matrix(y, pred))
    np.testing.assert_allclose(metrics.per_class_recall(y, pred),
                               skm.recall_score(y, pred, average=None))
    assert metrics.nll(probs, y) == pytest.approx(skm.log_loss(y, probs), rel=1e-9)


def test_ece_against_a_direct_computation(predictions):
    probs, y = predictions
    conf, correct = probs.max(1), probs.argmax(1) == y
    ece = 0.0
    for lo, hi in zip(np.linspace(0, 1, 16)[:-1], np.linspace(0, 1, 16)[1:], strict=True):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    assert metrics.expected_calibration_error(probs, y) == pytest.approx(ece, rel=1e-12)
    perfect = np.eye(3)[[0, 1, 2, 1]]
    assert metrics.expected_calibration_error(perfect, [0, 1, 2, 1]) == 0.0


def test_safetensors_weights_load_into_torch_with_the_same_predictions(tmp_path):
    retrograd.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    path = str(tmp_path / "model.safetensors")
    ckpt.save_safetensors({k: v.numpy() for k, v in model.state_dict().items()}, path)
    twin = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(),
                               torch.nn.Linear(8, 3)).float()
    twin.load_state_dict(load_file(path))
    x = np.random.default_rng(1).standard_normal((7, 5)).astype(np.float32)
    np.testing.assert_allclose(twin(torch.tensor(x)).detach().numpy(),
                               model(retrograd.tensor(x)).numpy(), rtol=1e-5, atol=1e-6)
    back = ckpt.load_safetensors(path)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(back[k], v.numpy())


def test_checkpoint_round_trip_without_pickle(tmp_path):
    state = {"epoch": 3, "nested": {1: [np.arange(3), (0.5, "x")], "none": None},
             "big": 2 ** 70}
    path = str(tmp_path / "c.npz")
    ckpt.save_checkpoint(state, path)
    back = ckpt.load_checkpoint(path)
    assert back["epoch"] == 3 and back["big"] == 2 ** 70 and back["nested"]["none"] is None
    np.testing.assert_array_equal(back["nested"][1][0], np.arange(3))
    assert back["nested"][1][1] == (0.5, "x")
    with np.load(path, allow_pickle=False) as data:  # loads with pickling disabled
        assert "__document__" in data.files


def test_interrupted_atomic_write_leaves_the_previous_file(tmp_path):
    path = str(tmp_path / "checkpoint.npz")
    ckpt.save_checkpoint({"epoch": 1}, path)

    def dies_midway(f):
        f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ckpt.atomic_write(path, dies_midway)
    assert ckpt.load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["checkpoint.npz"]  # no temporary file left behind


def blobs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = (np.eye(3)[y] * 3 + rng.standard_normal((n, 3))).astype(np.float32)
    return x, y


def test_fit_learns_and_records_history():
    x, y = blobs()
    retrograd.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 3))
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=32,
                                       shuffle=True)
    opt = retrograd.optim.Adam(model.parameters(), lr=1e-2)
    hist = fit(model, retrograd.nn.functional.cross_entropy, opt, loader, 10,
               validation=blobs(100, 1), progress=False)
    assert hist.stopped == "completed" and len(hist.epochs) == 10
    assert hist.epochs[-1]["val_accuracy"] > 0.9 > hist.epochs[0]["train_accuracy"] - 0.5
    assert hist.epochs[-1]["train_loss"] < hist.epochs[0]["train_loss"]


def test_fit_stops_on_nan_and_keeps_the_last_good_weights():
    x, y = blobs()
    retrograd.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 3))
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=32)
    opt = retrograd.optim.SGD(model.parameters(), lr=1e4)  # diverges within a few steps
    snapshots = []
    hist = fit(model, retrograd.nn.functional.cross_entropy, opt, loader, 20, progress=False,
               on_epoch_end=lambda e, h: snapshots.append(
                   {k: v.numpy().copy() for k, v in model.state_dict().items()}))
    assert hist.stopped == "non-finite" and "lower learning rate" in hist.message
    expected = snapshots[-1] if snapshots else None
    for k, v in model.state_dict().items():
        assert np.all(np.isfinite(v.numpy()))
        if expected is not None:
            np.testing.assert_array_equal(v.numpy(), expected[k])


def test_clip_grad_norm_matches_torch():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    ours = [retrograd.tensor(g, requires_grad=True) for g in grads]
    theirs = [torch.tensor(g, requires_grad=True) for g in grads]
    for p, g in zip(ours, grads, strict=True):
        p.grad = retrograd.tensor(g.copy())
    for p, g in zip(theirs, grads, strict=True):
        p.grad = torch.tensor(g.copy())
    n1 = nn.utils.clip_grad_norm_(ours, 1.5)
    n2 = torch.nn.utils.clip_grad_norm_(theirs, 1.5)
    assert n1 == pytest.approx(float(n2))
    for p, q in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12)


def test_ctrl_c_inside_an_epoch_end_is_raised_after_it_completes():
    """The epoch's record and checkpoint are written together: a SIGINT arriving in between is
    held until both are done, then raised as KeyboardInterrupt."""
    import os
    import signal

    from retrograd.train.interrupts import deferred

    done = []
    with pytest.raises(KeyboardInterrupt):
        with deferred():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("record")
            done.append("checkpoint")
    assert done == ["record", "checkpoint"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_atomic_write_gives_the_permissions_of_a_plain_open(tmp_path):
    """mkstemp makes its file 0600; the written file must be as readable as open() makes one."""
    import stat

    from retrograd.train.checkpoint import atomic_write

    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"x")
    atomic_write(str(tmp_path / "atomic.txt"), lambda f: f.write(b"x"))
    mode = stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode)
