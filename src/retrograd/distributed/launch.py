"""Starting a job on N processes from a plain command (`retrograd train --workers N`): the
mpiexec that the `mpi` extra installed next to this Python, else one on PATH."""

from __future__ import annotations

import os
import shutil
import sys

from .world import MPI_EXTRA_HINT


def find_mpiexec() -> str:
    """The path of mpiexec: this Python's environment first (MPICH's wheel puts it there),
    then PATH; ImportError naming the extra when there is none."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("mpiexec")
    if found is None:
        raise ImportError(f"running on several processes needs MPI (mpiexec was not found): "
                          f"{MPI_EXTRA_HINT}")
    return found


def mpiexec_argv(workers: int, argv: list[str]) -> list[str]:
    """[mpiexec, -n, workers, python, *argv]: the command that runs `python *argv` as
    `workers` ranks (argv such as ["-m", "retrograd", "train", ...])."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    return [find_mpiexec(), "-n", str(workers), sys.executable, *argv]
