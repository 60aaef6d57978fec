"""A rank's guard under `retrograd train --workers N`: run as a script (not imported, so it
loads nothing but the standard library), it starts the real rank as its child and reports in
one line if that child is killed by a signal.

A rank killed by SIGKILL (or by the kernel's OOM killer) cannot say so itself, and MPICH's
hydra names only a pid, sometimes not the killed one. The guard, the process hydra started,
outlives its rank long enough to print `retrograd: rank 1 of 2 was killed by signal 9
(SIGKILL)...`, then dies of the same signal, and hydra stops the other ranks. The rank dies with its
guard (PR_SET_PDEATHSIG), so hydra killing a guard never leaves a rank behind.

    python rank_guard.py PYTHON_ARGS...   ->   python PYTHON_ARGS... as the rank
"""

import ctypes
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
FLUSH_SECONDS = 0.2  # for hydra to forward the line before it sees this process end


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: a rank may outlive a killed guard, as without the guard
    if os.getppid() == 1:  # the guard died before prctl took effect
        os._exit(1)


def _rank_and_size() -> tuple[str, str]:
    env = os.environ
    rank = env.get("PMI_RANK", env.get("OMPI_COMM_WORLD_RANK", "?"))
    return rank, env.get("PMI_SIZE", env.get("OMPI_COMM_WORLD_SIZE", "?"))


def main(argv: list[str]) -> int:
    child = os.fork()
    if child == 0:
        _die_with_parent()
        os.execv(sys.executable, [sys.executable, *argv])
    # hydra's SIGINT/SIGTERM reach the guard: hand them to the rank, which stops cleanly
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda s, _frame: os.kill(child, s))
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    signum = os.WTERMSIG(status)
    if signum in (signal.SIGINT, signal.SIGTERM):  # a stop request it did not catch
        return 128 + signum
    rank, size = _rank_and_size()
    name = signal.Signals(signum).name
    print(f"retrograd: rank {rank} of {size} was killed by signal {signum} ({name}); the job "
          f"stops. The run folder keeps its last checkpoint: the same command with --resume "
          f"continues it", file=sys.stderr, flush=True)
    time.sleep(FLUSH_SECONDS)
    signal.signal(signum, signal.SIG_DFL) if signum != signal.SIGKILL else None
    os.kill(os.getpid(), signum)
    return 128 + signum  # a signal whose default is to continue (SIGCONT...)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
