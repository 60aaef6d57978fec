"""`retrograd train --workers N`: mpiexec run as a child, its ranks under guards, and MPICH's
report of a rank that died shortened to one line.

Each rank runs under `rank_guard.py`, which says in one line which rank a signal killed. MPICH's
hydra then ends the job with its own eleven-line block on stdout ("BAD TERMINATION OF ONE OF
YOUR APPLICATION PROCESSES ... EXIT STRING: Killed (signal 9)"), naming a pid; the launcher
passes the ranks' output through and drops that block when the guard has spoken (a signal),
or turns it into one line (an exit status). A job launched by hand (`mpiexec -n N retrograd
train`) has no guards and prints hydra's block as it is.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

GUARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rank_guard.py")
_BLOCK_EDGE = re.compile(r"^={20,}\s*$")
_LAST_LINE = "Please see the FAQ page"


def guarded(python_argv: list[str]) -> list[str]:
    """The arguments of `python` that run `python *python_argv` under a rank guard."""
    return [GUARD, *python_argv]


def summarize_report(block: list[str]) -> str | None:
    """None for hydra's report of a rank killed by a signal (its guard printed the line),
    else one line with the exit status it gives."""
    text = "\n".join(block)
    cause = re.search(r"EXIT STRING: (.+?)\s*$", text, re.M)
    if cause and "signal" in cause.group(1):
        return None
    code = re.search(r"EXIT CODE: (\d+)", text)
    what = cause.group(1) if cause else f"exit code {code.group(1) if code else '?'}"
    return f"retrograd: a rank ended the job ({what}); MPI stopped every rank"


def run_workers(command: list[str]) -> int:
    """Run the mpiexec `command`, passing its output through with hydra's report shortened;
    SIGINT and SIGTERM are forwarded to it once. Returns its exit status."""
    # its own process group: a Ctrl-C reaches mpiexec once, from here, and mpiexec hands it to
    # every rank (as when mpiexec is run directly); stdin closed so it never stops on the tty
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, bufsize=1, process_group=0)
    forward = lambda signum, _frame: proc.send_signal(signum)  # noqa: E731
    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        _pass_output(proc.stdout)
        return proc.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _pass_output(stream) -> None:
    block: list[str] | None = None
    for line in stream:
        if block is None:
            if _BLOCK_EDGE.match(line):
                block = [line]
            else:
                sys.stdout.write(line)
                sys.stdout.flush()
            continue
        block.append(line)
        if len(block) == 2 and "BAD TERMINATION" not in line:  # a rule of the job's own
            sys.stdout.write("".join(block))
            block = None
        elif _LAST_LINE in line:
            summary = summarize_report(block)
            if summary:
                print(summary, file=sys.stderr, flush=True)
            block = None
    if block:  # the output ended inside a block that was not hydra's report
        sys.stdout.write("".join(block))
        sys.stdout.flush()
