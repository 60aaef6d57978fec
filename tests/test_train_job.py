"""The main job's promises (issue 13): resume equals an uninterrupted run, also with early
stopping and a plateau schedule; a finished run resumed changes nothing; resume keeps the saved
settings; runs are never overwritten; defaults and recipes; the NaN guard; SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import retrograd
from retrograd import data, nn
from retrograd.cli import main
from retrograd.train import fit
from retrograd.train.checkpoint import load_checkpoint


def run(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def files(folder) -> dict:
    """name -> bytes of every file in folder (to prove it unchanged)."""
    return {n: (folder / n).read_bytes() for n in sorted(os.listdir(folder))}


# digits overfits this small model within 20 epochs: early stopping fires (best epoch 11,
# stop at 16) and the plateau schedule cuts the lr on the way, so both states must resume
ES = ["--data", "digits", "--hidden", "32", "--no-progress", "--optimizer", "adam", "--lr",
      "0.01", "--batch-size", "64", "--weight-decay", "0", "--early-stopping", "5",
      "--schedule", "plateau", "--validation-fraction", "0.2"]


def test_resume_with_early_stopping_ends_bit_identical_to_an_uninterrupted_run(tmp_path,
                                                                               capsys):
    """A run stopped by a shorter --epochs and resumed with the full one ends with the same
    model.safetensors, byte for byte, as the run that was never stopped; early stopping fired
    in it (so the best epoch's weights, carried by the checkpoint, are what is kept)."""
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    code, stdout, err = run(["train", *ES, "--epochs", "40", "--out", str(whole)], capsys)
    assert code == 0, err
    metrics = json.loads((whole / "metrics.json").read_text())
    assert metrics["stopped"] == "early-stopping", metrics["message"]
    best, stop = metrics["weights_from_epoch"], metrics["epochs"]
    assert best == stop - 5 and f"best epoch {best} restored" in err
    for first in (best - 1, best, stop - 1):  # before, at and after the best epoch
        out = parts / str(first)
        assert run(["train", *ES, "--epochs", str(first), "--out", str(out)], capsys)[0] == 0
        code, _, err = run(["train", "--out", str(out), "--epochs", "40", "--resume",
                            "--no-progress"], capsys)
        assert code == 0, err
        assert (out / "model.safetensors").read_bytes() == \
            (whole / "model.safetensors").read_bytes(), first
        resumed = json.loads((out / "metrics.json").read_text())
        assert resumed["weights_from_epoch"] == best and resumed["epochs"] == stop


def test_a_finished_run_resumed_is_a_no_op_with_one_note(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(["train", *ES, "--epochs", "40", "--out", str(out)], capsys)[0] == 0
    before = files(out)
    code, stdout, err = run(["train", "--out", str(out), "--resume", "--no-progress"], capsys)
    assert code == 0 and "nothing to resume" in stdout and str(out) in stdout
    assert files(out) == before
    # the same for a completed run (no early stopping) resumed without more epochs
    done = tmp_path / "done"
    assert run(["train", "--data", "spirals", "--hidden", "8", "--epochs", "2",
                "--no-progress", "--out", str(done)], capsys)[0] == 0
    before = files(done)
    code, stdout, _ = run(["train", "--out", str(done), "--resume", "--epochs", "2"], capsys)
    assert code == 0 and "completed its 2 epochs" in stdout and files(done) == before


def test_resume_of_a_finished_run_whose_results_were_not_written_writes_them(tmp_path,
                                                                            capsys):
    """Killed after training ended but before the results landed: resume writes the results
    (the kept weights come from the checkpoint), it does not train another epoch."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    for out in (whole, cut):
        assert run(["train", *ES, "--epochs", "40", "--out", str(out)], capsys)[0] == 0
    for name in ("metrics.json", "model.safetensors"):
        (cut / name).unlink()
    code, _, err = run(["train", "--out", str(cut), "--resume", "--no-progress"], capsys)
    assert code == 0 and "writing them" in err
    assert (cut / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()
    assert json.loads((cut / "metrics.json").read_text())["epochs"] == \
        json.loads((whole / "metrics.json").read_text())["epochs"]


def test_resume_reads_the_saved_config_and_refuses_every_difference_at_once(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--data", "spirals", "--hidden", "16", "--optimizer", "sgd", "--lr", "0.05",
            "--schedule", "cosine", "--no-progress"]
    assert run(["train", *args, "--epochs", "3", "--out", str(out)], capsys)[0] == 0
    before = files(out)
    code, _, err = run(["train", "--out", str(out), "--resume", "--epochs", "6", "--lr", "0.5",
                        "--weight-decay", "0.5", "--validation-fraction", "0.3"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    for part in ("--lr 0.05 -> 0.5", "--weight-decay 0.0 -> 0.5",
                 "--validation-fraction 0.1 -> 0.3"):
        assert part in err, err
    assert files(out) == before
    # nothing repeated: the saved settings; --epochs extends, the cosine spans the new total
    code, _, err = run(["train", "--out", str(out), "--resume", "--epochs", "6",
                        "--no-progress"], capsys)
    assert code == 0, err
    assert "cosine schedule now spans 6 epochs instead of 3" in err
    history = (out / "history.csv").read_text().strip().splitlines()[1:]
    lrs = [float(row.split(",")[5]) for row in history]
    assert len(lrs) == 6
    # epochs 4-6 follow 0.05 (1 + cos(pi e / 6)) / 2 for e = 3, 4, 5 (torch's closed form)
    np.testing.assert_allclose(lrs[3:], [0.05 * (1 + np.cos(np.pi * e / 6)) / 2
                                         for e in (3, 4, 5)], rtol=1e-9)
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert config["lr"] == 0.05 and config["epochs"] == 6 and config["optimizer"] == "sgd"


def test_the_saved_config_has_every_value_resolved_and_the_recipe_is_printed(tmp_path,
                                                                           capsys):
    out = tmp_path / "run"
    code, _, err = run(["train", "--data", "spirals", "--hidden", "8", "--epochs", "1",
                        "--no-progress", "--out", str(out)], capsys)
    assert code == 0
    assert err.startswith("spirals recipe: optimizer adam, lr 0.01")
    for name in ("model.json", "metrics.json"):
        config = json.loads((out / name).read_text())["config"]
        unset = [k for k, v in config.items() if v is None and k not in (
            "label_column", "early_stopping", "clip_grad", "threads")]
        assert not unset, (name, unset)
        assert config["label_smoothing"] == 0.0 and config["lr"] == 0.01


def test_no_label_smoothing_by_default_and_inverse_weights_work_on_imbalanced_spirals(
        tmp_path, capsys):
    """The README's example: 19:1 imbalanced spirals with inverse class weights. With the old
    default smoothing 0.1 its test accuracy was 30% (the weighted smoothed target's optimum is
    50/50); without smoothing both classes are learned."""
    out = tmp_path / "run"
    code, _, err = run(["train", "--data", "imbalanced-spirals", "--class-weights", "inverse",
                        "--no-progress", "--out", str(out)], capsys)
    assert code == 0, err
    result = json.loads((out / "metrics.json").read_text())
    assert result["config"]["label_smoothing"] == 0.0
    assert result["test_accuracy"] > 0.9 and result["test_balanced_accuracy"] > 0.85, result
    assert "warning" not in err


def test_smoothing_with_inverse_weights_on_strong_imbalance_warns_in_one_line(tmp_path,
                                                                             capsys):
    code, _, err = run(["train", "--data", "imbalanced-spirals", "--class-weights", "inverse",
                        "--label-smoothing", "0.1", "--epochs", "1", "--hidden", "8",
                        "--no-progress", "--out", str(tmp_path / "run")], capsys)
    assert code == 0
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "19:1" in warnings[0], err


@pytest.mark.parametrize("seed", range(5))
def test_bare_mnist1d_reaches_the_papers_mlp_on_every_seed(tmp_path, capsys, seed):
    """The MNIST-1D paper's MLP: 68% test accuracy; the recipe, with no other flag, beats it."""
    out = tmp_path / "m1d"
    code, _, err = run(["train", "--data", "mnist1d", "--seed", str(seed), "--no-progress",
                        "--out", str(out)], capsys)
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] >= 0.68


def test_bare_digits_reaches_97_percent(tmp_path, capsys):
    out = tmp_path / "digits"
    assert run(["train", "--no-progress", "--out", str(out)], capsys)[0] == 0
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] >= 0.97


def test_an_existing_run_is_never_overwritten_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    fast = ["--data", "spirals", "--hidden", "8", "--epochs", "1", "--no-progress"]
    assert run(["train", *fast, "--out", str(out)], capsys)[0] == 0
    before = files(out)
    code, _, err = run(["train", *fast, "--seed", "3", "--out", str(out)], capsys)
    assert code == 2 and "already holds a run" in err and "--overwrite" in err
    assert files(out) == before
    code, stdout, _ = run(["train", *fast, "--seed", "3", "--out", str(out), "--overwrite"],
                          capsys)
    assert code == 0 and str(out) in stdout
    assert json.loads((out / "metrics.json").read_text())["config"]["seed"] == 3
    # rl into a classifier's folder is refused as well, before any environment runs
    code, _, err = run(["rl", "--env", "CartPole-v1", "--episodes", "2", "--no-progress",
                        "--out", str(out)], capsys)
    assert code == 2 and "already holds a run" in err
    assert json.loads((out / "metrics.json").read_text())["config"]["seed"] == 3


def test_runs_without_out_get_unique_folders(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outs = []
    for _ in range(3):
        code, stdout, _ = run(["train", "--data", "spirals", "--hidden", "4", "--epochs", "1",
                               "--no-progress"], capsys)
        assert code == 0
        outs.append(stdout.strip().rsplit("run folder ", 1)[1])
    assert len(set(outs)) == 3 and all(os.path.isfile(os.path.join(o, "metrics.json"))
                                       for o in outs)


def test_every_run_command_names_its_folder_on_the_last_line(tmp_path, capsys):
    out = tmp_path / "lr"
    code, stdout, _ = run(["lr-find", "--data", "spirals", "--hidden", "8", "--iterations",
                           "20", "--no-progress", "--out", str(out)], capsys)
    assert code == 0 and stdout.strip().splitlines()[-1].endswith(f"run folder {out}")
    assert (out / "lr_find.png").is_file()
    code, stdout, _ = run(["rl", "--env", "CartPole-v1", "--episodes", "3", "--hidden", "8",
                           "--no-progress", "--out", str(tmp_path / "rl")], capsys)
    assert code == 0 and stdout.strip().splitlines()[-1].endswith(f"run folder {tmp_path}/rl")


def test_a_split_that_rounds_to_zero_rows_is_refused_before_anything_is_written(tmp_path,
                                                                                capsys):
    """4 rows per class: the validation fraction 0.1 of the 3 training rows of each class
    rounds to none; refused with the sizes, and no folder appears."""
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.csv"
    y = np.repeat([0, 1, 2], 5)
    x = rng.standard_normal((15, 2)) + y[:, None]
    path.write_text("a,b,label\n" + "\n".join(f"{a:.4f},{b:.4f},{c}" for (a, b), c in
                                               zip(x, y, strict=True)))
    before = sorted(os.listdir(tmp_path))
    code, _, err = run(["train", "--data", str(path), "--no-progress", "--out",
                        str(tmp_path / "run")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "0.1 validation split divides into 4 + 0" in err, err
    assert sorted(os.listdir(tmp_path)) == before


def test_a_failure_after_training_started_removes_the_new_folder(tmp_path, capsys,
                                                                 monkeypatch):
    from retrograd.train import results

    def broken(self, folder, graph=False):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(results.ResultWriter, "write", broken)
    out = tmp_path / "run"
    code, _, err = run(["train", "--data", "spirals", "--hidden", "4", "--epochs", "2",
                        "--no-progress", "--out", str(out)], capsys)
    assert code == 2 and "disk full" in err
    # epochs finished, so the checkpoint is kept for --resume; nothing that looks finished
    assert sorted(os.listdir(out)) == ["checkpoint.npz"]


def blobs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = (np.eye(3)[y] * 3 + rng.standard_normal((n, 3))).astype(np.float32)
    return x, y


def test_a_nan_gradient_with_a_finite_loss_stops_before_the_weights_change():
    """sigmoid focal loss with gamma 0.5 on a confidently correct row: the loss is finite,
    its gradient (1 - p)^(gamma - 1) is infinite. Training stops before the update, the kept
    weights are the last finished epoch's and finite, no checkpoint ever sees NaN."""
    x, y = blobs()
    retrograd.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
    target = (y == 0).astype(np.float32)[:, None]
    x[:32] *= 1e4  # the first batch of epoch 3 becomes confidently correct: p rounds to 1
    saw_nan, snapshots = [], []

    def loss_fn(out, t):
        return retrograd.nn.functional.sigmoid_focal_loss(out, t, gamma=0.5, reduction="mean")

    def checkpoint(epoch, history):
        params = [p.numpy() for p in model.parameters()]
        saw_nan.append(not all(np.isfinite(p).all() for p in params))
        snapshots.append([p.copy() for p in params])

    class Late:  # the big rows only from epoch 3 on
        def __init__(self):
            self.epoch = 0

        def __iter__(self):
            self.epoch += 1
            xs = x if self.epoch >= 3 else x / np.where(np.abs(x) > 100, 1e4, 1)
            return iter(data.DataLoader(data.TensorDataset(xs, target), batch_size=32))

        def __len__(self):
            return 10

    opt = retrograd.optim.SGD(model.parameters(), lr=0.1)
    hist = fit(model, loss_fn, opt, Late(), 10, progress=False, on_epoch_end=checkpoint)
    assert hist.stopped == "non-finite" and "gradient" in hist.message
    assert "epoch 3, step 1" in hist.message and "weights of epoch 2 were kept" in hist.message
    assert not any(saw_nan) and len(snapshots) == 2
    for p, kept in zip(model.parameters(), snapshots[-1], strict=True):
        np.testing.assert_array_equal(p.numpy(), kept)


def test_ctrl_c_and_sigterm_stop_cleanly_and_keep_the_last_epoch(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "retrograd", "train", "--data", "spirals", "--hidden", "64",
            "--epochs", "100000", "--no-progress", "--out", str(out)]
    for sig, status in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        proc = subprocess.Popen(args + (["--resume"] if sig == signal.SIGINT else []),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            start = os.path.getmtime(out / "checkpoint.npz") if sig == signal.SIGINT else 0
            while time.monotonic() < deadline and not (
                    (out / "checkpoint.npz").exists() and
                    os.path.getmtime(out / "checkpoint.npz") > start):
                time.sleep(0.05)
            proc.send_signal(sig)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
        assert proc.returncode == status, stderr
        assert "Traceback" not in stderr + stdout
        assert "interrupted (" + sig.name + ")" in stderr
        epoch = json.loads((out / "metrics.json").read_text())["epochs"]
        assert load_checkpoint(str(out / "checkpoint.npz"))["epoch"] == epoch
        assert f"continue with --resume --out {out}" in stderr


def test_a_run_stopped_before_its_first_epoch_ends_leaves_no_folder(tmp_path):
    """SIGTERM during the first epoch of a slow run: no run folder remains."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "retrograd", "train", "--data", "spirals",
                             "--hidden", "2048", "2048", "--batch-size", "1", "--no-progress",
                             "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr
    assert len(stderr.strip().splitlines()) <= 2 and not out.exists()


def test_threads_option_limits_blas_during_training(tmp_path, monkeypatch):
    """--threads 1 holds BLAS to one thread while the model trains (read by threadpoolctl
    from inside the loop), and the default picks 1 for a small model."""
    from threadpoolctl import threadpool_info

    from retrograd.train import threads, trainer

    seen = []
    original = trainer.Trainer.train

    def spy(self, progress):
        seen.append(max(p["num_threads"] for p in threadpool_info()
                        if p["user_api"] == "blas"))
        return original(self, progress)

    monkeypatch.setattr(trainer.Trainer, "train", spy)
    for option in (["--threads", "1"], []):
        out = tmp_path / f"run{len(seen)}"
        assert main(["train", "--data", "spirals", "--hidden", "8", "--epochs", "1",
                     "--no-progress", "--out", str(out), *option]) == 0
    assert seen == [1, 1]
    assert json.loads((tmp_path / "run1" / "metrics.json").read_text())["blas_threads"] == 1
    # a large model takes the idle cores: all of them on an idle machine, one beside a busy
    # neighbour (a load average of one core)
    big = (784, [1024, 1024], 256)
    assert threads.step_work(*big) > threads.MULTI_THREAD_WORK
    monkeypatch.setattr(threads, "cores", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert threads.default_threads(*big) == 2 and threads.default_threads(2, [8], 64) == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    assert threads.default_threads(*big) == 1


def test_train_graph_writes_the_stepper_of_one_batch(tmp_path, capsys):
    """--graph: graph.html holds the recorded graph of the trained model on one batch: the
    fused Linear+ReLU nodes and the softmax-cross-entropy node, parameters by state_dict key."""
    out = tmp_path / "run"
    code, _, err = run(["train", "--data", "spirals", "--hidden", "8", "8", "--epochs", "1",
                        "--graph", "--no-progress", "--out", str(out)], capsys)
    assert code == 0, err
    page = (out / "graph.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "http://" not in page.replace(
        "http://www.w3.org", "")
    for name in ("0.weight", "2.weight", "4.bias", "linear_relu", "cross_entropy"):
        assert name in page, name


def test_string_class_labels_train_and_come_back_as_names(tmp_path, capsys):
    """A CSV labelled cat/dog/bird: classes are the sorted names, kept for predict, evaluate and
    the confusion matrix; predictions agree with the trained model's test accuracy."""
    rng = np.random.default_rng(0)
    names = np.array(["bird", "cat", "dog"])
    y = rng.integers(0, 3, 300)
    x = np.eye(3)[y] * 3 + rng.standard_normal((300, 3))
    path = tmp_path / "animals.csv"
    path.write_text("a,b,c,animal\n" + "\n".join(
        ",".join(f"{v:.4f}" for v in row) + f",{names[c]}" for row, c in zip(x, y,
                                                                          strict=True)))
    out = tmp_path / "run"
    assert run(["train", "--data", str(path), "--hidden", "16", "--no-progress", "--out",
                str(out)], capsys)[0] == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["class_names"] == ["bird", "cat", "dog"] and metrics["test_accuracy"] > 0.9
    code, stdout, _ = run(["predict", "--model", str(out), "--data", str(path)], capsys)
    assert code == 0
    header, *rows = stdout.strip().splitlines()
    assert header == "row,prediction,p_bird,p_cat,p_dog"
    predicted = np.array([r.split(",")[1] for r in rows])
    assert np.mean(predicted == names[y]) > 0.9
    code, stdout, _ = run(["evaluate", "--model", str(out), "--data", str(path), "--json"],
                          capsys)
    assert code == 0
    assert json.loads(stdout)["accuracy"] == pytest.approx(np.mean(predicted == names[y]))
