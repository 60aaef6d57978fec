"""A plain install (NumPy and retrograd, no extras), for real: a new virtual environment. Each
command that needs an extra says which one in one line instead of a ModuleNotFoundError."""

import os
import subprocess
import sys

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """A venv with NumPy only; retrograd's source is on its path as `pip install .` would put
    the package there (a .pth file), without any optional dependency."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "numpy"], check=True)
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True)
    with open(os.path.join(site.stdout.strip(), "retrograd-src.pth"), "w") as f:
        f.write(SRC + "\n")
    return python


def test_import_needs_numpy_alone(bare_python):
    code = ("import sys, retrograd, retrograd.nn, retrograd.optim; "
            "heavy = {'sklearn', 'matplotlib', 'tqdm', 'torch', 'gymnasium', 'cupy', 'mpi4py'}"
            " & set(sys.modules); assert not heavy, heavy; print('ok')")
    result = subprocess.run([bare_python, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize("args,extra", [
    (["train"], "train"), (["train", "--data", "spirals"], "train"),
    (["evaluate", "--model", "runs/x"], "train"), (["lr-find"], "train"),
    (["course", "--quick"], "train"), (["rl", "--env", "CartPole-v1"], "rl"),
])
def test_a_command_without_its_extra_names_the_extra_in_one_line(bare_python, tmp_path, args,
                                                                  extra):
    result = subprocess.run([bare_python, "-m", "retrograd", *args], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pip install 'retrograd[{extra}]'" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not os.listdir(tmp_path)
