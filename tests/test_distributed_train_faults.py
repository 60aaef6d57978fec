"""The main job's faults and refusals under a real `mpiexec -n 2` (issue 17): a rank killed
by SIGKILL mid-epoch ends the job and the last checkpoint resumes (on 1 or 2 ranks); Ctrl-C
and SIGTERM, on every rank or on one, stop all ranks at the same step; a checkpoint that only
rank 0 fails to write aborts the job instead of hanging it; bad combinations are one line from
rank 0, exit 2, before anything is written; --workers without MPI names the extra.

Oracles: real processes, killed or signalled for real; the uninterrupted run of the same
command (a run resumed on the same number of ranks ends with its very bytes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from test_distributed_mpi import mpiexec
from test_distributed_train import cli_env, metrics, train, train_command

BIG = ["--data", "digits", "--hidden", "1024", "1024", "--epochs", "6", "--no-progress"]
# ~1 s an epoch on 2 ranks here, 9 MB checkpoints: room to land a signal mid-epoch


def start(n: int, args: list[str], cwd=None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(train_command(n, args), env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd,
                            start_new_session=True, **kwargs)


def rank_pids(launcher: int) -> dict[int, int]:
    """{rank: pid} of the MPI ranks under the mpiexec process `launcher` (from /proc)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = dict(item.split(b"=", 1) for item in f.read().split(b"\0")
                           if b"=" in item)
            rank = env.get(b"PMI_RANK")
            pid = int(entry)
            while rank is not None and pid > 1 and pid != launcher:
                with open(f"/proc/{pid}/stat") as f:
                    pid = int(f.read().rsplit(")", 1)[1].split()[1])  # the parent
        except (OSError, ValueError):
            continue
        if rank is not None and pid == launcher:
            found[int(rank)] = int(entry)
    return found


def wait_for_epoch(proc: subprocess.Popen, out, epoch: int, deadline: float = 180) -> None:
    """Until the checkpoint of `epoch` is in the run folder."""
    from retrograd.train.checkpoint import load_checkpoint

    end = time.monotonic() + deadline
    path = out / "checkpoint.npz"
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()
        if path.exists():
            try:
                if load_checkpoint(str(path))["epoch"] >= epoch:
                    return
            except ValueError:
                pass  # being replaced right now
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint of epoch {epoch} within {deadline} s")


def finish(proc: subprocess.Popen, timeout: float) -> tuple[str, str, float]:
    """(stdout, stderr, seconds until the job ended); the job is killed if it outlives
    timeout (a hang fails the test instead of blocking it)."""
    t0 = time.monotonic()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise AssertionError(f"the job did not end within {timeout} s:\n{stderr[-2000:]}") \
            from None
    return stdout, stderr, time.monotonic() - t0


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """BIG run to its end on 2 ranks: what a resumed 2-rank run must reproduce exactly."""
    out = tmp_path_factory.mktemp("whole") / "run"
    proc = train(2, [*BIG, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "metrics.json").read_text())
    assert result["processes"] == 2 and result["epochs"] == 6
    return out


def test_sigkill_of_one_rank_mid_epoch_ends_the_job_and_the_checkpoint_resumes(
        tmp_path, uninterrupted):
    """SIGKILL rank 1 in the middle of epoch 3: mpiexec ends the job within 30 s (measured:
    under 0.1 s) with hydra's report, whose one line naming the cause is checked (the ranks
    cannot add theirs: hydra SIGKILLs the survivor too, see docs/distributed.md); the run
    folder keeps the checkpoint of epoch 2, from which the run finishes on 1 rank, and on 2
    ranks to the uninterrupted run's very model."""
    from retrograd.train.checkpoint import load_checkpoint

    for resume_on in (1, 2):
        out = tmp_path / f"killed-{resume_on}"
        proc = start(2, [*BIG, "--out", str(out)])
        wait_for_epoch(proc, out, 2)
        time.sleep(0.5)  # into epoch 3
        pids = rank_pids(proc.pid)
        assert sorted(pids) == [0, 1], pids
        os.kill(pids[1], signal.SIGKILL)
        stdout, stderr, seconds = finish(proc, 30)
        assert seconds < 30 and proc.returncode == 9, (proc.returncode, stderr[-2000:])
        causes = [ln for ln in (stdout + stderr).splitlines() if "Killed (signal 9)" in ln]
        assert len(causes) == 1, stdout
        assert "Traceback" not in stderr
        saved = load_checkpoint(str(out / "checkpoint.npz"))
        assert saved["epoch"] in (2, 3) and saved["stopped"] is None  # the last good one
        assert not (out / "metrics.json").exists()
        resumed = train(resume_on, ["--resume", "--out", str(out), "--no-progress"])
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert f"after epoch {saved['epoch']}" in resumed.stderr
        result = metrics(out)
        assert result["epochs"] == 6 and result["processes"] == resume_on
        assert result["test_accuracy"] >= 0.95
        assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]
        if resume_on == 2:
            assert (out / "model.safetensors").read_bytes() == \
                (uninterrupted / "model.safetensors").read_bytes()


@pytest.mark.parametrize("how", ["SIGTERM to mpiexec", "SIGINT to rank 1 only"])
def test_a_stop_request_stops_every_rank_at_the_same_step(tmp_path, uninterrupted, how):
    """mpiexec forwards SIGTERM (and Ctrl-C's SIGINT) to every rank, each wherever it is;
    `kill -INT` of one rank reaches that rank only. Either way the ranks agree on the step
    (the request travels in the step's Allreduce): the job ends with the signal's status, one
    "interrupted" line from rank 0, the results of the last finished epoch and its checkpoint;
    --resume on 2 ranks then ends with the uninterrupted run's very model."""
    from retrograd.train.checkpoint import load_checkpoint

    out = tmp_path / "run"
    proc = start(2, [*BIG, "--out", str(out)])
    wait_for_epoch(proc, out, 2)
    time.sleep(0.5)
    if how == "SIGTERM to mpiexec":
        proc.send_signal(signal.SIGTERM)
        name, status = "SIGTERM", 143
    else:
        os.kill(rank_pids(proc.pid)[1], signal.SIGINT)
        name, status = "SIGINT", 130
    stdout, stderr, _ = finish(proc, 60)
    assert proc.returncode == status, stderr[-3000:]
    assert "Traceback" not in stderr
    assert stderr.count(f"interrupted ({name})") == 1, stderr
    assert stderr.count("continue with --resume") == 1 and stdout.count("run folder") == 1
    kept = metrics(out)
    assert kept["stopped"] == "interrupted" and kept["signal"] == name
    assert load_checkpoint(str(out / "checkpoint.npz"))["epoch"] == kept["epochs"] >= 2
    resumed = train(2, ["--resume", "--out", str(out), "--no-progress"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (out / "model.safetensors").read_bytes() == \
        (uninterrupted / "model.safetensors").read_bytes()


def test_a_run_stopped_before_its_first_epoch_ends_leaves_no_folder(tmp_path):
    """SIGTERM to mpiexec during the first epoch of a slow run: every rank stops at the same
    step, rank 0 removes the folder it made, one line, exit status 143."""
    out = tmp_path / "run"
    proc = start(2, ["--data", "digits", "--hidden", "2048", "2048", "--batch-size", "2",
                     "--no-progress", "--out", str(out)])
    end = time.monotonic() + 120
    while not out.is_dir():
        assert proc.poll() is None and time.monotonic() < end, proc.communicate()
        time.sleep(0.01)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr, _ = finish(proc, 60)
    assert proc.returncode == 143, stderr
    assert [ln for ln in stderr.splitlines() if "recipe:" not in ln] == [
        "retrograd: stopped by SIGTERM"]
    assert not out.exists() and "Traceback" not in stdout


def test_a_checkpoint_only_rank_0_fails_to_write_aborts_the_job(tmp_path):
    """Rank 0 cannot write its checkpoint (the run folder vanished during the first epoch, as
    an unmounted disk would) while rank 1 already waits in the next step's Allreduce: the job
    ends at once with one line naming rank 0 and the cause, exit status 2 (had rank 0 just
    returned, the job would hang)."""
    out = tmp_path / "run"
    proc = start(2, [*BIG, "--out", str(out)])
    end = time.monotonic() + 120
    while not out.is_dir():
        assert proc.poll() is None and time.monotonic() < end, proc.communicate()
        time.sleep(0.01)
    out.rmdir()  # rank 0 made it and is training its first epoch: nothing in it yet
    out.write_text("not a folder any more")
    stdout, stderr, _ = finish(proc, 60)
    assert proc.returncode == 2, stderr[-3000:]
    lines = [ln for ln in stderr.splitlines() if ln.strip() and "recipe:" not in ln]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("retrograd: rank 0 of 2 failed: could not write the checkpoint")
    assert "Not a directory" in lines[0] and lines[0].endswith("stopping all ranks")
    assert "Traceback" not in stderr + stdout


def tree(folder) -> dict:
    return {os.path.join(root, name): os.path.getmtime(os.path.join(root, name))
            for root, _, names in os.walk(folder) for name in names}


def tiny_csv(path) -> str:
    """6 rows of 2 classes: 4 training rows (and 2 test rows)."""
    rows = [f"{0.1 * i:.1f},{0.5 * (i % 3):.1f},{i % 2}" for i in range(6)]
    path.write_text("a,b,label\n" + "\n".join(rows) + "\n")
    return str(path)


BAD = [
    # (ranks, arguments, what the one line must contain)
    (2, ["--data", "digits", "--batch-size", "33"],
     "batch size 33 does not divide among 2 processes"),
    (5, ["--data", "TINY", "--validation-fraction", "0", "--batch-size", "10"],
     "5 processes for 4 training rows"),
    (2, ["--data", "digits", "--optimizer", "lbfgs"], "--optimizer lbfgs runs on one process"),
    (2, ["--data", "digits", "--workers", "3"], "--workers 3: this job already runs as 2"),
    (2, ["--data", "digits", "--lr", "0"], "--lr must be"),
    (2, ["--data", "digits", "--frobnicate"], "--frobnicate"),
]


@pytest.mark.parametrize("n,args,needle", BAD, ids=[b[2].split(":")[0][:30] for b in BAD])
def test_bad_combinations_are_one_line_from_rank_0_and_nothing_is_written(tmp_path, n, args,
                                                                          needle):
    args = [tiny_csv(tmp_path / "tiny.csv") if a == "TINY" else a for a in args]
    (tmp_path / "out").mkdir()
    before = tree(tmp_path)
    proc = train(n, [*args, "--no-progress", "--out", str(tmp_path / "out" / "run")],
                 cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert lines[0].endswith("(see retrograd train --help)") and not proc.stdout.strip()
    assert tree(tmp_path) == before  # nothing written (no run folder, no runs/)


def test_only_train_runs_on_several_ranks(tmp_path):
    command = [mpiexec(), "-n", "2", sys.executable, "-m", "retrograd", "evaluate", "--model",
               str(tmp_path)]
    proc = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "retrograd evaluate: error: retrograd evaluate runs on one process; only retrograd "
        "train runs on several (this job has 2 MPI processes) (see retrograd evaluate --help)"]


def test_workers_without_mpiexec_names_the_extra(tmp_path, monkeypatch, capsys):
    """No mpiexec beside this Python nor on PATH: one line naming the mpi extra, exit 2,
    nothing written (and nothing started)."""
    from retrograd.cli import main

    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--data", "digits", "--workers", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "pip install 'retrograd[mpi]'" in err and "mpiexec was not found" in err
    assert os.listdir(tmp_path) == []


def test_workers_must_be_positive(tmp_path, capsys, monkeypatch):
    from retrograd.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--workers", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--workers must be a positive integer, got 0" in err and os.listdir(tmp_path) == []

