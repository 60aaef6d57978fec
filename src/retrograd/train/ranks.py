"""The ranks of a job under MPI take every decision together (docs/distributed.md).

MPI's rule is that every rank makes the same collective calls in the same order; a rank that
leaves while its peers wait for it in a collective hangs the job. So the training job runs in
phases, and each phase ends with one exchange of its outcome:

    ranks.together(fn)                  fn on every rank (loading the data)
    ranks.together(fn, root_only=True)  fn on rank 0 only (reading or writing the run folder)

If fn raised a bad-input error (ValueError, TypeError, KeyError, OSError, ImportError) on any
rank, every rank raises it (the failing rank's own exception, the others a copy naming that
rank), marked as raised on all ranks: the command line then prints it once, on rank 0, and
every rank exits with status 2 together. A stop request (Ctrl-C, SIGTERM) that any rank holds
raises KeyboardInterrupt (Terminated) on every rank at the same point. In a world of one
process, together(fn) is fn().

An error that was not raised on all ranks (a checkpoint that rank 0 alone fails to write in the
middle of training) cannot be handled that way: the others are already waiting in the next
step's Allreduce. Such a failure ends the whole job through `distributed.abort`.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable
from typing import TypeVar

from . import interrupts

T = TypeVar("T")

BAD_INPUT = (ValueError, TypeError, KeyError, OSError, ImportError)
_MARK = "_retrograd_on_all_ranks"


def all_ranks(exc: BaseException) -> BaseException:
    """Mark exc as raised on every rank at the same point (returns it, to raise)."""
    setattr(exc, _MARK, True)
    return exc


def raised_on_all_ranks(exc: BaseException) -> bool:
    """Whether exc was raised on every rank together (always True in a world of one)."""
    return getattr(exc, _MARK, False) or Ranks().size == 1


def message(exc: BaseException) -> str:
    """What the command line prints of an exception (a KeyError's own text, not its repr)."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc)


def _rebuild(name: str, text: str) -> BaseException:
    """A failure on another rank, raised here as the same built-in type."""
    kinds = {k.__name__: k for k in BAD_INPUT}
    return kinds.get(name, ValueError)(text)


class Ranks:
    """This process's place in the job: rank and size (0 of 1 without MPI), and the phases."""

    def __init__(self):
        from .. import distributed as dist  # mpi4py only under an MPI launcher

        self.size = dist.get_world_size()
        self.rank = dist.get_rank()
        self.local_size = dist.get_local_size()

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def together(self, fn: Callable[[], T], *, root_only: bool = False,
                 share: bool = False) -> T:
        """fn() on every rank (root_only: on rank 0), then one exchange of the outcome: the
        first failure, or a stop request, is raised on every rank; else fn's result (share:
        rank 0's, on every rank; otherwise each rank's own, None where fn did not run)."""
        if self.size == 1:
            return fn()
        from .. import distributed as dist

        result, error = None, None
        if self.is_root or not root_only:
            try:
                result = fn()
            except BAD_INPUT as exc:
                error = exc
        outcome = None if error is None else (type(error).__name__, message(error))
        comm = dist.get_comm()
        outcomes = comm.allgather((outcome, *interrupts.pending()))
        failed = [(r, o) for r, (o, _, _) in enumerate(outcomes) if o is not None]
        if failed:
            if error is not None:
                raise all_ranks(error)
            rank, (name, text) = failed[0]
            raise all_ranks(_rebuild(name, f"rank {rank} of {self.size}: {text}"))
        stop = interrupts.as_exception(sum(o[1] for o in outcomes),
                                       sum(o[2] for o in outcomes))
        if stop is not None:
            interrupts.clear()
            raise all_ranks(stop)
        if share:
            result = comm.bcast(result if self.is_root else None, root=0)
        return result

    def fail(self, exc: BaseException, line: str, code: int, print_line: Callable) -> int:
        """The end of a command that raised exc: on every rank together, rank 0 prints the
        line and every rank returns code; on some ranks only, the whole job is aborted (one
        line naming this rank) with that code."""
        if raised_on_all_ranks(exc):
            if self.is_root:
                print_line(line)
            return code
        from .. import distributed as dist

        dist.abort(line, code)


def run_command(argv: list[str], command: str | None, parse: Callable, train: Callable,
                error_line: Callable) -> int:
    """The command line's main on one of several MPI ranks: parse(argv) on every rank (only
    `train` runs on several), then train(args); every phase ends on all ranks together, rank 0
    prints, all ranks return the same exit status; a failure on some ranks only aborts the job
    with one line naming the rank. error_line(exc, command) is the line of a bad-input error.
    """
    from .interrupts import Terminated, stop_requests

    ranks = Ranks()

    def parse_once():
        quiet = contextlib.nullcontext() if ranks.is_root else \
            contextlib.redirect_stdout(io.StringIO())  # --help and --version: printed once
        with quiet:
            args = parse(argv)
        if args.command != "train":
            raise ValueError(f"retrograd {args.command} runs on one process; only retrograd "
                             f"train runs on several (this job has {ranks.size} MPI "
                             "processes)")
        return args

    def stderr(line: str) -> None:
        print(line, file=sys.stderr)

    # the command line's exit statuses (cli.py): bad input, SIGTERM, Ctrl-C
    with stop_requests():  # signals become requests that the ranks act on together
        try:
            args = ranks.together(parse_once)
            command = args.command
            return train(args)
        except BAD_INPUT as exc:
            return ranks.fail(exc, error_line(exc, command), 2, stderr)
        except Terminated as exc:
            return ranks.fail(exc, "retrograd: stopped by SIGTERM", 143, stderr)
        except KeyboardInterrupt as exc:
            return ranks.fail(exc, "retrograd: interrupted", 130, stderr)
