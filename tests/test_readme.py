"""The README as a user reads it: every Python snippet runs as pasted (in order, each in a new
process, in an empty folder), the numbers it prints are the ones the README states, and the
public names it promises exist."""

import os
import re
import subprocess
import sys

import pytest

import retrograd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_blocks() -> list[str]:
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """stdout of every README snippet, run in order in one empty folder."""
    folder = tmp_path_factory.mktemp("readme")
    results = []
    for block in python_blocks():
        result = subprocess.run([sys.executable, "-c", block], cwd=folder, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, f"{block}\n{result.stderr}"
        results.append(result.stdout)
    return results


def test_every_python_snippet_of_the_readme_runs_as_pasted(outputs):
    assert len(outputs) == len(python_blocks()) >= 9


def test_the_scikit_learn_snippet_prints_what_the_readme_says(outputs):
    blocks = python_blocks()
    i = next(k for k, b in enumerate(blocks) if "cross_val_score" in b)
    scores = [float(v) for v in outputs[i].strip().strip("[]").split()]
    stated = re.search(r"It prints `\[([0-9. ]+)\]`", open(os.path.join(ROOT, "README.md"))
                       .read()).group(1).split()
    assert scores == pytest.approx([float(v) for v in stated], abs=0.02)


def test_the_public_names_the_readme_promises():
    import retrograd.nn.functional as F

    assert retrograd.targets.one_hot is not None and callable(retrograd.load_run)
    assert not hasattr(retrograd, "np") and not hasattr(F, "np")
    assert retrograd.viz.graph is not None and retrograd.data.DataLoader is not None
    with pytest.raises(AttributeError):
        retrograd.no_such_name  # noqa: B018


def test_the_bump_detector_snippet_prints_what_the_readme_says(outputs):
    blocks = python_blocks()
    i = next(k for k, b in enumerate(blocks) if "class Bumps(Dataset)" in b)
    printed = float(outputs[i].split()[-1])
    stated = re.search(r"It prints `bump detector test accuracy ([0-9.]+)`",
                       open(os.path.join(ROOT, "README.md")).read()).group(1)
    assert printed == pytest.approx(float(stated), abs=0.02)
    # the CNN run folder's layers rebuilt the torch model with strict loading
    j = next(k for k, b in enumerate(blocks) if "digits-cnn" in b)
    assert "['Unflatten', 'Conv2d', 'BatchNorm2d', 'ReLU', 'Conv2d']" in outputs[j]
