"""Shared test setup. The PyTorch oracle must be importable: a missing oracle fails the run."""

import numpy as np
import pytest

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise pytest.UsageError(
        "PyTorch 2.13.0 (the oracle) could not be imported: install the test extras "
        "(pip install -e '.[test]'); oracle tests must fail, not skip") from exc

if torch.__version__.split("+")[0] != "2.13.0":
    raise pytest.UsageError(f"tests need torch 2.13.0 as the oracle, found {torch.__version__}")

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)

import retrograd  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same seeds, so failures reproduce."""
    retrograd.manual_seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def one_blas_thread():
    """Many small BLAS products (the course's experiments): two BLAS threads on two shared,
    busy cores collapse, one does not. The course runner limits itself the same way."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # only slower without it
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
