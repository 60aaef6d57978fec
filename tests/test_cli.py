"""The retrograd command end to end: every data source, resume, evaluate, predict, lr-find, and
bad input (exit status 2, one line on stderr naming the bad value, nothing written)."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from retrograd.cli import main
from retrograd.train.checkpoint import load_checkpoint, load_safetensors
from test_data import idx_bytes

FAST = ["--no-progress", "--hidden", "32", "--epochs", "2"]


def run(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_digits_writes_the_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run(["train", "--out", str(out), *FAST], capsys)
    assert code == 0 and "test accuracy" in stdout
    for name in ("metrics.json", "history.csv", "model.safetensors", "model.json",
                 "checkpoint.npz", "learning_curves.png", "confusion_matrix.png",
                 "reliability.png"):
        assert (out / name).stat().st_size > 0, name
    result = json.loads((out / "metrics.json").read_text())
    for key in ("test_accuracy", "test_balanced_accuracy", "test_nll", "test_ece", "epochs",
                "seconds", "config"):
        assert key in result
    assert result["epochs"] == 2 and result["config"]["hidden"] == [32]
    assert 0.5 < result["test_accuracy"] <= 1.0  # two epochs of a small model
    assert len((out / "history.csv").read_text().strip().splitlines()) == 3
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_train_on_mnist1d_and_user_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    x = np.eye(3)[y] * 2 + rng.standard_normal((120, 3))
    csv_path = tmp_path / "data.csv"
    csv_path.write_text("a,b,c,label\n" + "\n".join(
        ",".join(f"{v:.5f}" for v in row) + f",{lab}" for row, lab in zip(x, y, strict=True)))
    np.savez(tmp_path / "data.npz", x=x, y=y)
    # above chance (0.1 for mnist1d's ten classes after two short epochs; the blobs are easy)
    for source, floor in (("mnist1d", 0.15), (str(csv_path), 0.6),
                          (str(tmp_path / "data.npz"), 0.6)):
        out = tmp_path / f"out-{os.path.basename(source)}"
        code, _, err = run(["train", "--data", source, "--out", str(out), *FAST], capsys)
        assert code == 0, err
        assert json.loads((out / "metrics.json").read_text())["test_accuracy"] > floor


def test_train_on_an_idx_folder_and_the_synthetic_sets(tmp_path, capsys):
    """MNIST's IDX layout (gzipped) made from learnable 4x4 images, and the two spirals."""
    rng = np.random.default_rng(0)

    def images(labels):  # class c lights up row c of a 4x4 image, plus noise
        x = rng.integers(0, 60, (len(labels), 4, 4))
        x[np.arange(len(labels)), labels] += 180
        return x.astype(np.uint8)

    y_train, y_test = rng.integers(0, 3, 300), rng.integers(0, 3, 60)
    folder = tmp_path / "idx"
    folder.mkdir()
    for name, array in (("train-images-idx3-ubyte", images(y_train)),
                        ("train-labels-idx1-ubyte", y_train.astype(np.uint8)),
                        ("t10k-images-idx3-ubyte", images(y_test)),
                        ("t10k-labels-idx1-ubyte", y_test.astype(np.uint8))):
        (folder / (name + ".gz")).write_bytes(gzip.compress(idx_bytes(array, 0x08)))
    # (source, options, metric, floor): floors well above chance (1/3 for the images, 1/2 for
    # the spirals, balanced accuracy 1/2 for the 95/5 spirals, where plain accuracy is 0.95 by
    # predicting the majority)
    runs = ((str(folder), FAST, "test_accuracy", 0.6),
            ("spirals", ["--no-progress", "--hidden", "64", "64", "--epochs", "30"],
             "test_accuracy", 0.85),
            ("imbalanced-spirals", ["--no-progress", "--hidden", "64", "64", "--epochs", "30",
                                    "--class-weights", "inverse"],
             "test_balanced_accuracy", 0.65))
    for source, options, metric, floor in runs:
        out = tmp_path / f"out-{os.path.basename(source)}"
        code, _, err = run(["train", "--data", source, "--out", str(out), *options], capsys)
        assert code == 0, err
        result = json.loads((out / "metrics.json").read_text())
        assert result[metric] > floor, (source, result[metric])


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, capsys):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    base = ["--no-progress", "--hidden", "16", "--optimizer", "sgd", "--batch-size", "128",
            "--schedule", "none"]  # (a schedule is re-planned when --epochs extends a run)
    assert run(["train", "--out", str(whole), "--epochs", "4", *base], capsys)[0] == 0
    assert run(["train", "--out", str(parts), "--epochs", "2", *base], capsys)[0] == 0
    code, _, err = run(["train", "--out", str(parts), "--epochs", "4", "--resume", *base],
                       capsys)
    assert code == 0 and "resuming" in err
    a = load_safetensors(str(whole / "model.safetensors"))
    b = load_safetensors(str(parts / "model.safetensors"))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_validation_fraction_zero_trains_on_the_whole_training_split(tmp_path, capsys):
    from retrograd.data import digits

    out = tmp_path / "run"
    code, _, err = run(["train", "--out", str(out), "--validation-fraction", "0", *FAST], capsys)
    assert code == 0, err
    result = json.loads((out / "metrics.json").read_text())
    assert result["n_train"] == len(digits().y_train) and result["n_validation"] == 0
    header, *rows = (out / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 2 and all(",," in row or row.endswith(",") for row in rows)


def test_ctrl_c_keeps_the_last_epoch_checkpoint_and_resume_continues(tmp_path):
    """SIGINT in the middle of a long run: exit status 130, one line naming the kept
    checkpoint (the end of the last finished epoch), metrics written, and --resume goes on."""
    out = tmp_path / "run"
    args = [sys.executable, "-m", "retrograd", "train", "--data", "spirals", "--hidden", "8",
            "--epochs", "100000", "--no-progress", "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.npz").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (out / "checkpoint.npz").exists(), "no checkpoint within 120 s"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr + stdout
    kept = [line for line in stderr.splitlines() if "checkpoint of epoch" in line]
    assert len(kept) == 1, stderr
    epoch = int(kept[0].split("checkpoint of epoch ")[1].split(" ")[0])
    result = json.loads((out / "metrics.json").read_text())
    assert result["stopped"] == "interrupted" and result["epochs"] == epoch
    state = load_checkpoint(str(out / "checkpoint.npz"))
    assert state["epoch"] == epoch
    resumed = subprocess.run([*args[:-5], "--epochs", str(epoch + 1), "--no-progress", "--out",
                              str(out), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {out} after epoch {epoch}" in resumed.stderr
    assert json.loads((out / "metrics.json").read_text())["epochs"] == epoch + 1


def test_evaluate_and_predict_reproduce_the_training_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(["train", "--out", str(out), *FAST], capsys)[0] == 0
    trained = json.loads((out / "metrics.json").read_text())
    code, stdout, _ = run(["evaluate", "--model", str(out), "--json"], capsys)
    assert code == 0
    assert json.loads(stdout)["accuracy"] == pytest.approx(trained["test_accuracy"])
    code, stdout, _ = run(["evaluate", "--model", str(out)], capsys)
    assert code == 0 and len(stdout.strip().splitlines()) == 1
    assert stdout.startswith(f"accuracy {trained['test_accuracy']:.4f}, balanced accuracy")
    from retrograd.data import digits

    split = digits()
    features = tmp_path / "features.csv"
    features.write_text(",".join(f"f{i}" for i in range(64)) + "\n" + "\n".join(
        ",".join(str(v) for v in row) for row in split.x_test))
    code, stdout, err = run(["predict", "--model", str(out), "--data", str(features)], capsys)
    assert code == 0, err
    rows = stdout.strip().splitlines()  # standard output: the run folder gets nothing
    assert rows[0].startswith("row,prediction,p_0") and len(rows) == len(split.y_test) + 1
    predicted = np.array([int(r.split(",")[1]) for r in rows[1:]])
    assert np.mean(predicted == split.y_test) == pytest.approx(trained["test_accuracy"])
    assert not (out / "predictions.csv").exists()
    # --output writes the same CSV to a file
    code, _, _ = run(["predict", "--model", str(out), "--data", str(features), "--output",
                      str(tmp_path / "p.csv")], capsys)
    assert code == 0 and (tmp_path / "p.csv").read_text().strip().splitlines() == rows
    # evaluate --data FILE scores the whole file: every one of its rows
    labeled = tmp_path / "labeled.csv"
    labeled.write_text(",".join(f"f{i}" for i in range(64)) + ",y\n" + "\n".join(
        ",".join(str(v) for v in row) + f",{c}" for row, c in zip(split.x_test[:20],
                                                                    split.y_test[:20],
                                                                    strict=True)))
    code, stdout, _ = run(["evaluate", "--model", str(out), "--data", str(labeled), "--json"],
                          capsys)
    assert code == 0 and json.loads(stdout)["n_rows"] == 20
    assert json.loads(stdout)["accuracy"] == pytest.approx(
        np.mean(predicted[:20] == split.y_test[:20]))


def test_lr_find_plots_and_suggests(tmp_path, capsys):
    code, stdout, _ = run(["lr-find", "--out", str(tmp_path / "lr"), "--hidden", "16",
                           "--iterations", "30", "--no-progress"], capsys)
    assert code == 0 and "suggested learning rate" in stdout
    assert (tmp_path / "lr" / "lr_find.png").read_bytes()[:4] == b"\x89PNG"


def bad_file(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def npy_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    return buffer.getvalue()


def bad_csv(tmp_path, text):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("make_args,needle", [
    (lambda d: ["--data", str(d / "missing.csv")], "missing.csv"),
    (lambda d: ["--data", bad_csv(d, "a,y\n1,0\nx,1\n")], "'x' is not a number"),
    (lambda d: ["--data", bad_csv(d, "a,y\n1,0\nnan,1\n")], "row 3"),
    (lambda d: ["--data", bad_csv(d, "a,y\n1,0\n2,0.5\n")], "0.5"),
    (lambda d: ["--lr", "0"], "--lr must be a finite number > 0, got 0"),
    (lambda d: ["--lr", "-1"], "got -1"),
    (lambda d: ["--hidden", "0"], "[0]"),
    (lambda d: ["--label-smoothing", "1.5"], "1.5"),
    (lambda d: ["--optimizer", "sgdd"], "'sgdd'"),
    (lambda d: ["--loss", "hinge"], "'hinge'"),
    (lambda d: ["--epochs", "0"], "got 0"),
    (lambda d: ["--out", str(d / "a-file" / "run")], "a-file"),
    (lambda d: ["--epochs", "many"], "many"),
    (lambda d: ["--validation-fraction", "0.7"], "0.7"),
    (lambda d: ["--data", bad_csv(d, "a,b,y\n1,2,0\n3,1\n")], "row 3 has 2 fields"),
    (lambda d: ["--data", bad_file(d, "junk.npz", b"\x00\x01junk")], "not an NPZ"),
    (lambda d: ["--data", bad_file(d, "array.npz", npy_bytes())], "not an NPZ"),
    (lambda d: ["--validation-fraction", "0", "--early-stopping", "3"], "--early-stopping"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, make_args,
                                                            needle):
    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / "run"
    args = ["train", "--no-progress", *make_args(tmp_path)]
    before = set(os.listdir(tmp_path))
    if "--out" not in args:
        args += ["--out", str(out)]
    code, stdout, err = run(args, capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert "Traceback" not in err + stdout
    assert set(os.listdir(tmp_path)) == before  # nothing written


def test_console_entry_point_runs_as_a_module(tmp_path):
    result = subprocess.run([sys.executable, "-m", "retrograd", "train", "--lr", "-3"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and "got -3" in result.stderr
    assert "Traceback" not in result.stderr and not os.listdir(tmp_path)
