"""Every bad input, on every command: exit status 2, one line on stderr naming the bad value and
pointing at --help, no traceback, nothing written, and an existing run folder untouched.
And the help itself: a version, a description for every command, help text and a default for
every option."""

import gzip
import io
import os
import shutil

import numpy as np
import pytest

from retrograd.cli import build_parser, main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished run (spirals: 2 features, 2 classes) that every case must leave untouched."""
    folder = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", "--data", "spirals", "--hidden", "8", "--epochs", "2",
                 "--no-progress", "--out", str(folder)]) == 0
    return folder


def write(path, content) -> str:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return str(path)


def csv(d, text, name="bad.csv"):
    return write(d / name, text)


def npy_bytes() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    return buffer.getvalue()


def rows(labels, width=2) -> str:
    """A CSV with `width` feature columns and the given labels (3 rows each)."""
    head = ",".join(f"f{i}" for i in range(width)) + ",label\n"
    return head + "\n".join(",".join(["0.5"] * width) + f",{lab}" for lab in labels
                            for _ in range(3))


def run_copy(d, trained, mutate=None) -> str:
    """A copy of the trained run, optionally damaged by mutate(folder)."""
    folder = d / f"copy{len(os.listdir(d))}"
    shutil.copytree(trained, folder)
    if mutate is not None:
        mutate(folder)
    return str(folder)


def truncate(name, keep=0.5):
    def mutate(folder):
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[:int(len(data) * keep)])
    return mutate


def safetensors_with_header(header: bytes):
    def mutate(folder):
        (folder / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    return mutate


T = "train"
# (command line as a function of the temp dir d and the trained run r, a string the one line
#  must contain)
CASES = [
    # train: numbers out of range, not finite, not numbers
    (lambda d, r: [T, "--lr", "0"], "got 0"),
    (lambda d, r: [T, "--lr", "-1"], "got -1"),
    (lambda d, r: [T, "--lr", "inf"], "'inf'"),
    (lambda d, r: [T, "--lr", "nan"], "'nan'"),
    (lambda d, r: [T, "--lr", "fast"], "'fast'"),
    (lambda d, r: [T, "--weight-decay", "inf"], "'inf'"),
    (lambda d, r: [T, "--weight-decay", "-0.1"], "-0.1"),
    (lambda d, r: [T, "--momentum", "1.5"], "1.5"),
    (lambda d, r: [T, "--label-smoothing", "1.5"], "1.5"),
    (lambda d, r: [T, "--label-smoothing", "nan"], "'nan'"),
    (lambda d, r: [T, "--loss", "focal", "--gamma", "-1"], "-1"),
    (lambda d, r: [T, "--class-weights", "effective", "--beta", "1"], "--beta"),
    (lambda d, r: [T, "--clip-grad", "0"], "--clip-grad"),
    (lambda d, r: [T, "--clip-grad=-inf"], "'-inf'"),
    (lambda d, r: [T, "--validation-fraction", "0.7"], "0.7"),
    (lambda d, r: [T, "--validation-fraction", "-0.1"], "-0.1"),
    (lambda d, r: [T, "--epochs", "0"], "got 0"),
    (lambda d, r: [T, "--epochs", "many"], "'many'"),
    (lambda d, r: [T, "--epochs", "1.5"], "'1.5'"),
    (lambda d, r: [T, "--batch-size", "0"], "--batch-size"),
    (lambda d, r: [T, "--hidden", "0"], "[0]"),
    (lambda d, r: [T, "--hidden", "16", "-3"], "-3"),
    (lambda d, r: [T, "--seed", "-1"], "-1"),
    (lambda d, r: [T, "--threads", "0"], "--threads"),
    (lambda d, r: [T, "--early-stopping", "0"], "--early-stopping"),
    (lambda d, r: [T, "--early-stopping", "3", "--validation-fraction", "0"],
     "--early-stopping"),
    (lambda d, r: [T, "--loss", "focal", "--label-smoothing", "0.1"], "focal"),
    # train: names
    (lambda d, r: [T, "--optimizer", "sgdd"], "'sgdd'"),
    (lambda d, r: [T, "--loss", "hinge"], "'hinge'"),
    (lambda d, r: [T, "--schedule", "linear"], "'linear'"),
    (lambda d, r: [T, "--activation", "gelu"], "'gelu'"),
    (lambda d, r: [T, "--class-weights", "balanced"], "'balanced'"),
    (lambda d, r: [T, "--data", "cifar"], "cifar"),
    (lambda d, r: [T, "--model", "rnn"], "'rnn'"),
    (lambda d, r: [T, "--model", "cnn", "--data", "spirals"], "image shape"),
    (lambda d, r: [T, "--model", "cnn", "--data", csv(d, rows([0, 1] * 20))], "image shape"),
    (lambda d, r: [T, "--model", "cnn", "--hidden", "32"], "--hidden"),
    (lambda d, r: [T, "--model", "cnn", "--activation", "tanh"], "--activation"),
    (lambda d, r: [T, "--frobnicate"], "--frobnicate"),
    (lambda d, r: [T, "--no-compile=yes"], "--no-compile"),
    # train: data files
    (lambda d, r: [T, "--data", str(d / "missing.csv")], "missing.csv"),
    (lambda d, r: [T, "--data", csv(d, "a,y\n1,0\nx,1\n")], "'x'"),
    (lambda d, r: [T, "--data", csv(d, "a,y\n1,0\nnan,1\n")], "row 3"),
    (lambda d, r: [T, "--data", csv(d, "a,y\n1,0\n2,0.5\n")], "0.5"),
    (lambda d, r: [T, "--data", csv(d, "a,b,y\n1,2,0\n3,1\n")], "row 3"),
    (lambda d, r: [T, "--data", csv(d, "")], "bad.csv"),
    (lambda d, r: [T, "--data", csv(d, rows([0, 100000]))], "100000"),
    (lambda d, r: [T, "--data", csv(d, rows([0, 1e30]))], "1e+30"),
    (lambda d, r: [T, "--data", csv(d, rows([0, -1]))], "-1"),
    (lambda d, r: [T, "--data", csv(d, rows([1, 1, 1]))], "single class"),
    (lambda d, r: [T, "--data", csv(d, rows([0, 1] * 2))], "rows"),
    (lambda d, r: [T, "--data", csv(d, rows([0, 1, 2, 0, 1, 2]) + "\n", "tiny.csv")],
     "tiny.csv"),
    (lambda d, r: [T, "--data", csv(d, rows([0, 1] * 20)), "--label-column", "nope"],
     "'nope'"),
    (lambda d, r: [T, "--data", write(d / "junk.npz", b"\x00\x01junk")], "not an NPZ"),
    (lambda d, r: [T, "--data", write(d / "array.npz", npy_bytes())], "not an NPZ"),
    (lambda d, r: [T, "--data", write(d / "data.json", "{}")], "data.json"),
    (lambda d, r: [T, "--data", write(d / "gz.csv", gzip.compress(b"a,b\n1,2"))], "gz.csv"),
    # train: output folders and resume
    (lambda d, r: [T, "--out", str(d / "a-file" / "run")], "a-file"),
    (lambda d, r: [T, "--out", str(r)], "already holds a run"),
    (lambda d, r: [T, "--resume"], "--out"),
    (lambda d, r: [T, "--resume", "--out", str(d)], "no checkpoint"),
    (lambda d, r: [T, "--resume", "--overwrite", "--out", str(r)], "--overwrite"),
    (lambda d, r: [T, "--resume", "--out", str(r), "--lr", "0.5"], "--lr"),
    (lambda d, r: [T, "--resume", "--out", str(r), "--epochs", "1"], "--epochs 1"),
    (lambda d, r: [T, "--resume", "--out", run_copy(d, r, truncate("checkpoint.npz"))],
     "checkpoint.npz"),
    (lambda d, r: [T, "--resume", "--out", run_copy(d, r, truncate("checkpoint.npz", 0.99))],
     "checkpoint.npz"),
    # evaluate
    (lambda d, r: ["evaluate", "--model", str(d / "nothing")], "nothing"),
    (lambda d, r: ["evaluate", "--model", str(d)], "model.json"),
    (lambda d, r: ["evaluate", "--model", run_copy(d, r, truncate("model.json"))],
     "model.json"),
    (lambda d, r: ["evaluate", "--model", run_copy(d, r, safetensors_with_header(b"null"))],
     "model.safetensors"),
    (lambda d, r: ["evaluate", "--model", run_copy(d, r, safetensors_with_header(b"7"))],
     "model.safetensors"),
    (lambda d, r: ["evaluate", "--model", run_copy(d, r, truncate("model.safetensors"))],
     "model.safetensors"),
    (lambda d, r: ["evaluate", "--model", str(r), "--data", csv(d, rows([0, 1] * 4, 5))],
     "5 feature columns"),
    (lambda d, r: ["evaluate", "--model", str(r), "--data", str(d / "none.csv")],
     "none.csv"),
    (lambda d, r: ["evaluate", "--model", str(r), "--data", "digits"], "64 feature columns"),
    (lambda d, r: ["evaluate"], "--model"),
    # predict
    (lambda d, r: ["predict", "--model", str(r), "--data", csv(d, "1,2\n3,4\n")],
     "--no-header"),
    (lambda d, r: ["predict", "--model", str(r), "--data", csv(d, "a,b,c,d,e\n1,2,3,4,5\n")],
     "has 5 columns"),
    (lambda d, r: ["predict", "--model", str(r), "--data", csv(d, "a,b\n1,2\n"),
                   "--output", str(r / "model.safetensors")], "model.safetensors"),
    (lambda d, r: ["predict", "--model", str(r), "--data", csv(d, "a,b\n1,2\n"),
                   "--output", str(d / "no" / "dir" / "p.csv")], "--output"),
    (lambda d, r: ["predict", "--model", str(d / "nothing"), "--data", "x.csv"], "nothing"),
    (lambda d, r: ["predict", "--model", str(r), "--data", write(d / "x.txt", "1,2")],
     "x.txt"),
    (lambda d, r: ["predict", "--model", str(r), "--data", csv(d, "a,b\n1,inf\n")], "inf"),
    # lr-find
    (lambda d, r: ["lr-find", "--end-lr", "inf"], "'inf'"),
    (lambda d, r: ["lr-find", "--start-lr", "0"], "--start-lr"),
    (lambda d, r: ["lr-find", "--start-lr", "1", "--end-lr", "0.5"], "--end-lr"),
    (lambda d, r: ["lr-find", "--iterations", "1"], "--iterations"),
    (lambda d, r: ["lr-find", "--epochs", "3"], "--epochs"),
    (lambda d, r: ["lr-find", "--lr", "0.1"], "--lr"),
    (lambda d, r: ["lr-find", "--out", str(r)], "already holds a run"),
    # rl
    (lambda d, r: ["rl", "--env", "CartPole-v1", "--lr", "inf"], "'inf'"),
    (lambda d, r: ["rl", "--env", "CartPole-v1", "--gamma", "2"], "--gamma"),
    (lambda d, r: ["rl", "--env", "CartPole-v1", "--episodes", "0"], "--episodes"),
    (lambda d, r: ["rl", "--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    (lambda d, r: ["rl", "--env", "CartPole-v1", "--dropout", "1"], "--dropout"),
    (lambda d, r: ["rl", "--env", "CartPole-v1", "--entropy-coef", "-1"], "--entropy-coef"),
    (lambda d, r: ["rl", "--env", "CartPole-v1", "--out", str(r)], "already holds a run"),
    (lambda d, r: ["rl", "--play", str(d / "nothing")], "nothing"),
    (lambda d, r: ["rl", "--env", "CartPole-v1", "--greedy"], "--greedy"),
    (lambda d, r: ["rl"], "--env"),
    # course
    (lambda d, r: ["course", "--only", "99"], "'99'"),
    (lambda d, r: ["course", "--only", ","], "--only"),
    (lambda d, r: ["course", "--out", str(d / "a-file")], "a-file"),
]


def tree(folder) -> dict:
    """relative path -> bytes for every file under folder."""
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


@pytest.mark.parametrize("make_args,needle", CASES)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, trained,
                                                         make_args, needle, monkeypatch):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.chdir(tmp_path)  # a default runs/ folder would appear here
    args = make_args(tmp_path, trained)
    if args[0] in (T, "lr-find") and "--no-progress" not in args:
        args.append("--no-progress")
    before, run_before = tree(tmp_path), tree(trained)
    code = main(args)
    captured = capsys.readouterr()
    err = captured.err
    assert code == 2, (args, err)
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err, (needle, err)
    assert err.strip().endswith(f"(see retrograd {args[0]} --help)"), err
    assert "Traceback" not in err + captured.out
    assert tree(tmp_path) == before  # nothing written (the case's own inputs were made before)
    assert tree(trained) == run_before


def test_there_are_at_least_sixty_cases_across_all_the_commands(tmp_path, trained):
    (tmp_path / "a-file").write_text("")
    commands = [make_args(tmp_path, trained)[0] for make_args, _ in CASES]
    assert len(commands) >= 60
    assert set(commands) == {"train", "evaluate", "predict", "lr-find", "rl", "course"}


def subparsers(parser):
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def test_every_command_has_a_description_and_every_option_help_and_its_default():
    parser = build_parser()
    for name, sub in subparsers(parser).items():
        assert sub.description, name
        for action in sub._actions:
            if action.dest == "help":
                continue
            assert action.help, (name, action.dest)
            takes_value = action.nargs != 0 and action.__class__.__name__ not in (
                "_StoreTrueAction", "_StoreFalseAction")
            if takes_value and not action.required:
                assert "default" in action.help, (name, action.dest, action.help)


def test_version_and_help(capsys):
    from retrograd import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"retrograd {__version__}"
    with pytest.raises(SystemExit):
        main(["lr-find", "--help"])
    text = capsys.readouterr().out
    assert "--start-lr" in text and "--epochs" not in text and "--resume" not in text
