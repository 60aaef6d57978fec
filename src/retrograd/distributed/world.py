"""The world of processes: who we are (rank, size), MPI set up only when an MPI launcher started
us, and the fault rule: a rank that fails takes the whole job down at once, with one line.

A plain `python` never imports mpi4py: the launcher is recognised from the environment it
leaves (MPICH's and Intel MPI's hydra set PMI_RANK / PMI_SIZE, Open MPI sets
OMPI_COMM_WORLD_SIZE, PMIx launchers PMIX_RANK, MVAPICH MV2_COMM_WORLD_SIZE). Without one, the
world is a single process and every collective is the identity.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import NoReturn

# environment variables that mean "an MPI launcher started this process"
_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
                  "PMIX_RANK", "MV2_COMM_WORLD_SIZE")
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
MPI_EXTRA_HINT = "pip install 'retrograd[mpi]' (mpi4py and MPICH)"
ABORT_FLUSH_SECONDS = 0.2  # abort(): time for mpiexec to forward the line before the teardown


class _World:
    """The one process-wide record: filled by init(), read by everything else."""

    initialized = False
    rank = 0
    size = 1
    local_rank = 0
    local_size = 1
    comm = None  # mpi4py's COMM_WORLD when size > 1 (or when launched with -n 1)
    MPI = None  # the mpi4py.MPI module, once imported


def launched_by_mpi(environ=None) -> bool:
    """Whether an MPI launcher (mpiexec, mpirun, srun with PMI) started this process."""
    env = os.environ if environ is None else environ
    if not any(k in env for k in _LAUNCHER_VARS):
        return False
    # hydra hands each rank its PMI connection as an inherited descriptor; a child process that
    # a rank started (with the default close_fds) inherits the variables but not the
    # descriptor, and is not a rank: MPI_Init there would fail
    fd = env.get("PMI_FD")
    if fd is not None and "PMI_PORT" not in env:
        try:
            os.fstat(int(fd))
        except (OSError, ValueError):
            return False
    return True


def _launcher_size(environ=None) -> int | None:
    env = os.environ if environ is None else environ
    for key in _SIZE_VARS:
        if key in env:
            try:
                return int(env[key])
            except ValueError:
                return None
    return None


def init() -> None:
    """Join the MPI world if an MPI launcher started this process, else a world of one.

    Idempotent. Under mpiexec it imports mpi4py (initializing MPI), reads the rank and size, and
    installs the fault rule (an uncaught exception on any rank prints one line naming the rank
    and the cause, then aborts every rank). Without a launcher, or launched as a single process
    without mpi4py, the world is rank 0 of 1 and mpi4py is never imported. Launched as several
    processes without mpi4py is an ImportError naming the extra to install (N independent
    copies would each train on everything and write the same files).
    """
    if _World.initialized:
        return
    if not launched_by_mpi():
        _World.initialized = True
        return
    try:
        from mpi4py import MPI
    except ImportError as exc:
        size = _launcher_size()
        if size is not None and size <= 1:
            _World.initialized = True
            return
        raise ImportError(f"retrograd.distributed: this process was started by an MPI launcher "
                          f"({size or 'several'} processes) but mpi4py is not installed: "
                          f"{MPI_EXTRA_HINT}") from exc
    comm = MPI.COMM_WORLD
    _World.MPI, _World.comm = MPI, comm
    _World.rank, _World.size = comm.Get_rank(), comm.Get_size()
    # ranks on this node: for BLAS threads per rank (cores // local size)
    local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=_World.rank)
    _World.local_rank, _World.local_size = local.Get_rank(), local.Get_size()
    local.Free()
    _World.initialized = True
    if _World.size > 1:
        _install_excepthook()


def is_initialized() -> bool:
    """Whether init() has run (also True for a world of one)."""
    return _World.initialized


def get_rank() -> int:
    """This process's rank in 0 .. world size - 1 (0 without MPI); calls init() if needed."""
    init()
    return _World.rank


def get_world_size() -> int:
    """The number of processes in the job (1 without MPI); calls init() if needed."""
    init()
    return _World.size


def get_local_rank() -> int:
    """This process's rank among the ranks on its node (0 without MPI)."""
    init()
    return _World.local_rank


def get_local_size() -> int:
    """The number of ranks on this process's node (1 without MPI): a rank's share of the
    node's cores is cores // get_local_size()."""
    init()
    return _World.local_size


def get_comm():
    """mpi4py's COMM_WORLD, or None in a world of one without MPI (for what this module lacks:
    Allgather, point-to-point messages)."""
    init()
    return _World.comm


def barrier() -> None:
    """Return once every rank has called barrier() (no-op in a world of one)."""
    init()
    if _World.comm is not None and _World.size > 1:
        _World.comm.Barrier()


def is_root(root: int = 0) -> bool:
    """Whether this is the rank that writes (progress, run folder, checkpoints)."""
    return get_rank() == root


def check_root(root, what: str) -> int:
    """ValueError unless root names a rank of this world."""
    size = get_world_size()
    if isinstance(root, bool) or not isinstance(root, int) or not 0 <= root < size:
        raise ValueError(f"{what}: root must be a rank in 0 .. {size - 1}, got {root!r}")
    return root


# ------------------------------------------------------------------------------------------
# faults


def abort(reason: str, code: int = 1) -> NoReturn:
    """Print `retrograd: rank R of N failed: <reason>; stopping all ranks` on stderr (one
    line) and end every rank of the job now, with exit status `code`.

    Under MPI this is MPI_Abort on COMM_WORLD: mpiexec kills the other ranks within about a
    second. MPICH's MPI_Abort may return to the caller while the job is torn down (measured:
    12 of 16 calls returned); the caller would then run on and could enter the next collective,
    and its peers could complete one with it. So the process ends itself right after
    (os._exit), and never returns. In a world of one it prints the line and exits.
    """
    line = f"retrograd: rank {_World.rank} of {_World.size} failed: {_one_line(reason)}; " \
           f"stopping all ranks"
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or broken stream must not stop the abort
            pass
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001
        pass
    if _World.comm is not None:
        # The line travels through hydra's proxy, which forwards this rank's stderr; MPI_Abort
        # makes it tear the job down, and a line still in the pipe can be lost (seen twice on
        # the shared machine: 1 run in 40, and once in a full test run). A moment lets the
        # proxy forward it first (none lost in 280 runs since, 40 of them beside two busy
        # loops; too rare to show that the pause is what prevents it).
        time.sleep(ABORT_FLUSH_SECONDS)
        # MPICH prints its own "Abort(1) on node ..." line: the line above says it better
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
        except OSError:
            pass
        _World.comm.Abort(code)
    os._exit(code)


def describe(exc: BaseException) -> str:
    """`Type: message (at file:line)`: an exception as one line, with its innermost frame."""
    where = ""
    tb = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else None
    if tb:
        frame = tb[-1]
        where = f" (at {os.path.basename(frame.filename)}:{frame.lineno} in {frame.name})"
    text = str(exc)
    return f"{type(exc).__name__}: {text}{where}" if text else f"{type(exc).__name__}{where}"


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _excepthook(exc_type, exc, tb) -> None:
    """An uncaught exception on this rank: the other ranks are (or soon will be) waiting for it
    in a collective and would wait forever, so the whole job ends here."""
    if exc is None:
        exc = exc_type()
    if exc.__traceback__ is None:
        exc = exc.with_traceback(tb)
    code = 130 if isinstance(exc, KeyboardInterrupt) else 1
    abort(describe(exc), code)


def _install_excepthook() -> None:
    sys.excepthook = _excepthook
