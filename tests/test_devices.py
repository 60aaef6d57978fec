"""Devices, torch's surface: retrograd.device, Tensor.to/.cpu/.device, retrograd.cuda, CuPy
loaded only on demand, the training loop and safetensors on a non-host device (the strict test
backend stands in for a GPU), `retrograd train --device`, and bench/gpu.py's CPU dry run."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import safetensors.numpy
import torch

import retrograd
import strict_backend
from retrograd import nn
from retrograd.backend import cupy_backend, numpy_backend
from retrograd.data import DataLoader, TensorDataset, load_safetensors
from retrograd.train.checkpoint import save_safetensors
from retrograd.train.fit import evaluate, fit

STRICT = strict_backend.STRICT
ROOT = pathlib.Path(__file__).resolve().parents[1]
HAS_GPU = retrograd.cuda.is_available()


# ------------------------------------------------------------------ device objects


@pytest.mark.parametrize("spec", ["cpu", "cuda", "cuda:0", "cuda:3"])
def test_device_reads_and_prints_like_torch(spec):
    ours, theirs = retrograd.device(spec), torch.device(spec)
    assert (ours.type, ours.index) == (theirs.type, theirs.index)
    assert str(ours) == str(theirs)
    assert repr(ours) == repr(theirs)


def test_device_equality_index_form_and_hash():
    assert retrograd.device("cuda", 1) == retrograd.device("cuda:1") == "cuda:1"
    assert retrograd.device("cuda") != retrograd.device("cuda:0")  # as torch: index None
    assert retrograd.device("cpu") != retrograd.device("cuda:0")
    assert len({retrograd.device("cpu"), retrograd.device("cpu"), retrograd.device("cuda:0")}) \
        == 2
    assert retrograd.device(retrograd.device("cuda:2")) == retrograd.device("cuda:2")


@pytest.mark.parametrize("spec,match", [("gpu", "unknown device type 'gpu'"),
                                        ("cuda:x", "expected a device type"),
                                        ("cuda:-1", "expected a device type"),
                                        (3.5, "expected a string")])
def test_bad_device_names_raise_one_clear_error(spec, match):
    with pytest.raises((ValueError, TypeError), match=match):
        retrograd.device(spec)
    with pytest.raises(ValueError, match="index was given twice"):
        retrograd.device("cuda:0", 1)


def test_host_tensors_are_on_cpu_and_to_cpu_returns_self_as_torch():
    x = retrograd.tensor([1.0, 2.0])
    t = torch.tensor([1.0, 2.0])
    assert str(x.device) == str(t.device) == "cpu"
    assert (x.to("cpu") is x) == (t.to("cpu") is t) is True
    assert (x.cpu() is x) == (t.cpu() is t) is True
    assert x.to(retrograd.float32) is x
    assert x.is_cuda is t.is_cuda is False


def test_to_takes_a_device_a_dtype_both_or_a_tensor():
    x = retrograd.tensor([1.5, -2.0], requires_grad=True)
    assert x.to(retrograd.float64).dtype == np.float64
    y = x.to(STRICT, retrograd.float64)
    assert y.device == STRICT and y.dtype == np.float64
    z = x.to(device=STRICT, dtype="float64")
    assert z.device == STRICT and z.dtype == np.float64
    w = retrograd.zeros(1, dtype=retrograd.float64, device=STRICT)
    assert x.to(w).device == STRICT and x.to(w).dtype == np.float64
    (y * y).sum().backward()  # differentiable: the gradient returns to x's device and dtype
    assert x.grad.device == retrograd.device("cpu") and x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), [3.0, -4.0])
    with pytest.raises(TypeError, match="unexpected keyword argument 'devise'"):
        x.to(devise="cpu")


def test_numpy_of_a_tensor_on_a_device_refuses_with_torchs_message_shape():
    x = retrograd.ones(2, device=STRICT)
    with pytest.raises(TypeError) as ours:
        x.numpy()
    expected = ("can't convert {} device type tensor to numpy. Use Tensor.cpu() to copy the "
                "tensor to host memory first.")
    assert str(ours.value) == expected.format("strict")
    if torch.cuda.is_available():  # the wording is torch's own
        with pytest.raises(TypeError) as theirs:
            torch.ones(2, device="cuda").numpy()
        assert str(theirs.value) == expected.format("cuda:0")


# ------------------------------------------------------------------ CUDA without a GPU


def test_cuda_is_unavailable_here_and_asking_for_it_fails_in_one_line():
    assert retrograd.cuda.is_available() is HAS_GPU
    if HAS_GPU:
        pytest.fail("this test expects the CPU-only machine; bench/gpu.py covers the GPU")
    assert retrograd.cuda.device_count() == 0
    for make in (lambda: retrograd.zeros(2, device="cuda"),
                 lambda: retrograd.tensor([1.0]).cuda(),
                 lambda: nn.Linear(2, 2).to("cuda:0")):
        with pytest.raises(RuntimeError) as info:
            make()
        assert "\n" not in str(info.value) and ("cupy" in str(info.value).lower()
                                                or "CUDA" in str(info.value))
    model = nn.Linear(2, 2)
    before = model.weight.numpy().copy()
    with pytest.raises(RuntimeError):
        model.to("cuda")
    assert model.weight.device == retrograd.device("cpu")  # nothing moved
    np.testing.assert_array_equal(model.weight.numpy(), before)


def test_import_retrograd_never_imports_cupy_until_a_gpu_is_asked_for(tmp_path):
    """A stand-in `cupy` package on the path records being imported: ordinary work on the host
    leaves it alone; retrograd.cuda.is_available() imports it, and answers False (the
    stand-in has no CUDA runtime) without raising."""
    fake = tmp_path / "cupy"
    fake.mkdir()
    (fake / "__init__.py").write_text("import sys\nsys.stderr.write('cupy imported\\n')\n")
    code = ("import sys, retrograd\n"
            "from retrograd import nn\n"
            "m = nn.Sequential(nn.Linear(3, 2), nn.ReLU()).to('cpu')\n"
            "m(retrograd.randn(4, 3, device='cpu')).sum().backward()\n"
            "print('before', 'cupy' in sys.modules)\n"
            "print('available', retrograd.cuda.is_available())\n"
            "print('after', 'cupy' in sys.modules)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "src")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert out.stdout.split("\n")[:3] == ["before False", "available False", "after True"]
    assert out.stderr == "cupy imported\n"


def test_the_cupy_backend_covers_the_whole_vocabulary():
    defined = set(cupy_backend._FROM_CUPY) | set(vars(cupy_backend))
    missing = [n for n in numpy_backend.VOCABULARY if n not in defined]
    assert missing == []


# ------------------------------------------------------------------ training and files


def test_fit_moves_host_batches_to_the_models_device_and_follows_the_host():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    results = []
    for device in ("cpu", STRICT):
        retrograd.manual_seed(1)
        model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2)).to(device)
        opt = retrograd.optim.SGD(model.parameters(), lr=0.1)
        loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
        history = fit(model, nn.functional.cross_entropy, opt, loader, epochs=3,
                      validation=(x, y), progress=False)
        loss, acc, logits = evaluate(model, nn.functional.cross_entropy, x, y)
        assert all(p.device == retrograd.device(device) for p in model.parameters())
        results.append((history.column("train_loss"), loss, logits))
    (h0, l0, z0), (h1, l1, z1) = results
    np.testing.assert_allclose(h1, h0, rtol=1e-5)
    np.testing.assert_allclose(l1, l0, rtol=1e-5)
    np.testing.assert_allclose(z1, z0, rtol=1e-4, atol=1e-6)
    assert h0[-1] < h0[0]


def test_safetensors_save_from_a_device_and_load_onto_one(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).to(STRICT)
    path = tmp_path / "m.safetensors"
    save_safetensors(dict(model.state_dict()), str(path))
    reference = safetensors.numpy.load_file(str(path))  # the reference library reads it
    for name, t in model.state_dict().items():
        np.testing.assert_array_equal(reference[name], t.cpu().numpy())
    loaded = load_safetensors(str(path), device=STRICT)
    for name, a in loaded.items():
        assert type(a) is strict_backend.StrictArray
        np.testing.assert_array_equal(retrograd.from_numpy(a).cpu().numpy(), reference[name])
    host_copy = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    host_copy.load_state_dict(load_safetensors(str(path), device=STRICT))
    np.testing.assert_array_equal(host_copy[0].weight.numpy(), reference["0.weight"])


def test_train_device_cuda_without_a_gpu_is_one_line_and_exit_2(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "retrograd", "train", "--device", "cuda",
                           "--out", str(out), "--no-progress"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--device cuda" in lines[0] and "no CUDA GPU" in lines[0]
    assert not out.exists()


def test_train_device_auto_without_a_gpu_takes_the_cpu_silently():
    from retrograd.cli import _training_device

    said = []
    assert _training_device("auto", said.append) == "cpu" and said == []
    assert _training_device("cpu", said.append) == "cpu"


# ------------------------------------------------------------------ bench/gpu.py


def test_bench_gpu_stops_in_one_line_without_cupy():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py")], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "bench/gpu.py: needs CuPy and a CUDA GPU (retrograd.cuda.is_available() is False); "
        "--dry-run runs its logic on the CPU"]


def test_bench_gpu_dry_run_runs_its_checks_and_table_on_the_cpu():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--dry-run"],
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    table = next(line for line in lines if line.startswith("primitive table on cpu"))
    assert table.endswith(", 0 failed") and int(table.split(": ")[1].split()[0]) > 100
    assert "losses on cpu: ok" in lines
    assert "optimizers and targets on cpu: ok" in lines
    assert any(line.startswith("MLP trajectory on cpu vs cpu: ok") for line in lines)
    rows = [line for line in lines if line.startswith("| 784-")]
    assert [r.split(" | ")[0] for r in rows] == ["| 784-64-64-10", "| 784-16-16-10"]


def test_bench_gpu_checks_pass_off_the_host_on_the_strict_device():
    """The checks bench/gpu.py runs on a GPU, run on the strict device: every optimizer and the
    target algebra, and the losses, agree with the host there (and would catch a leak)."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import gpu
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert gpu.check_optimizers(STRICT) == []
    assert gpu.check_losses(STRICT) == []


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the infinite gradient, on purpose
def test_fit_on_a_device_halts_on_a_non_finite_gradient_as_on_the_host():
    """sqrt(|out - out|) is 0 with an infinite gradient: the loss is finite, the gradient not."""
    x = np.ones((8, 3), dtype=np.float32)
    y = np.zeros(8, dtype=np.int64)
    stops = []
    for device in ("cpu", STRICT):
        model = nn.Linear(3, 2).to(device)
        before = model.weight.cpu().numpy().copy()
        history = fit(model, lambda out, t: (out - out.detach()).abs().sqrt().sum(),
                      retrograd.optim.SGD(model.parameters(), lr=0.1),
                      DataLoader(TensorDataset(x, y), batch_size=4), epochs=1, progress=False)
        stops.append(history.stopped)
        np.testing.assert_array_equal(model.weight.cpu().numpy(), before)  # no step taken
    assert stops == ["non-finite", "non-finite"]
