"""Faults under `mpiexec -n 2`, with real processes: an exception on one rank ends the job with
one line naming the rank and the cause, a rank killed by SIGKILL ends the job; and the launch
itself (the command --workers N will run; two ranks without mpi4py). This file is also the MPI
program (see test_distributed_mpi.py)."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from test_distributed_mpi import SRC, _check, launch, make_data, make_model_and_optimizer, train

HERE = Path(__file__).resolve()


def program_raise(out: str) -> None:
    import retrograd.distributed as dist

    dist.init()
    if dist.get_rank() == 1:
        time.sleep(0.3)
        _ = 1 / 0  # uncaught: must end the job
    while True:  # rank 0 waits in collectives: without the fault rule it would wait forever
        dist.all_reduce(np.ones(3), op="sum")


def program_loop(out: str) -> None:
    """Training steps forever; each rank writes its pid so the test can kill one."""
    import retrograd as rg
    import retrograd.distributed as dist

    dist.init()
    x, y = make_data(1295, "float32")
    model, opt = make_model_and_optimizer("sgd", "float32")
    opt = dist.DistributedOptimizer(opt)
    loader = dist.GlobalBatchLoader(rg.data.TensorDataset(x, y), batch_size=128, shuffle=True)
    Path(f"{out}.pid{dist.get_rank()}").write_text(str(os.getpid()))
    train(model, opt, loader, 10**9, True, lambda o, n, w: o.step(local_batch_size=n))


def program_world(out: str) -> None:
    import retrograd.distributed as dist

    dist.init()
    print(f"rank {dist.get_rank()} of {dist.get_world_size()} "
          f"mpi4py={'mpi4py' in sys.modules}", flush=True)


# ------------------------------------------------------------------------------------------


def test_exception_on_one_rank_ends_the_job_with_one_line(tmp_path):
    """Rank 1 raises while rank 0 waits in a collective: the job ends (a hang would hit
    the subprocess timeout) and stderr names the rank and the cause in one line."""
    proc = launch(HERE, "raise", tmp_path / "raise", timeout=60)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("retrograd: rank")]
    assert len(lines) == 1, proc.stderr
    assert re.fullmatch(r"retrograd: rank 1 of 2 failed: ZeroDivisionError: division by "
                        r"zero \(at test_distributed_mpi_faults.py:\d+ in program_raise\); "
                        r"stopping all ranks", lines[0]), lines[0]


def test_sigkill_of_one_rank_ends_the_job(tmp_path):
    """SIGKILL one of two training ranks: mpiexec (hydra) ends the other and exits
    non-zero; the 30 s timeout is the bound (measured: under a second)."""
    proc = launch(HERE, "loop", tmp_path / "loop", wait=False)
    try:
        pid_file = tmp_path / "loop.pid1"
        deadline = time.monotonic() + 120
        while not (pid_file.exists() and (tmp_path / "loop.pid0").exists()):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the ranks did not start"
            time.sleep(0.05)
        time.sleep(0.5)  # mid-epoch
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # hydra's report (on stdout): "BAD TERMINATION ... EXIT STRING: Killed (signal 9)"
    assert proc.returncode == 9, (proc.returncode, stdout[-2000:], stderr[-2000:])
    assert "Killed (signal 9)" in stdout, stdout[-2000:]


def test_mpiexec_argv_starts_the_ranks(tmp_path):
    """The command that `--workers N` will run starts N real ranks."""
    import retrograd.distributed as dist

    argv = dist.mpiexec_argv(2, [str(HERE), "world", str(tmp_path / "w")])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_"))}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    _check(proc)
    assert sorted(re.findall(r"rank \d of \d", proc.stdout)) == ["rank 0 of 2",
                                                                 "rank 1 of 2"]


def test_world_of_two_and_missing_mpi4py(tmp_path):
    """Two ranks see rank 0/1 of 2; launched as 2 ranks without mpi4py, init() is an
    ImportError naming the extra (never two independent copies of the job)."""
    proc = launch(HERE, "world", tmp_path / "w")
    _check(proc)
    assert sorted(re.findall(r"rank \d of \d mpi4py=(?:True|False)", proc.stdout)) == [
        "rank 0 of 2 mpi4py=True", "rank 1 of 2 mpi4py=True"], proc.stdout
    fake = tmp_path / "fake"
    (fake / "mpi4py").mkdir(parents=True)
    (fake / "mpi4py" / "__init__.py").write_text("raise ImportError('no mpi4py here')\n")
    proc = launch(HERE, "world", tmp_path / "w", extra_env={"PYTHONPATH": f"{fake}:{SRC}"})
    assert proc.returncode != 0
    assert "pip install 'retrograd[mpi]'" in proc.stderr, proc.stderr

if __name__ == "__main__":
    {"raise": program_raise, "loop": program_loop, "world": program_world}[sys.argv[1]](
        sys.argv[2])
