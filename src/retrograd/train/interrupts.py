"""Stopping a run cleanly: Ctrl-C (SIGINT) and SIGTERM both end training after the current step
with the last finished epoch's weights kept, and neither may land between an epoch's record and
its checkpoint."""

from __future__ import annotations

import contextlib
import signal
import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the same clean stop runs."""


def _raise_terminated(signum, frame):
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises Terminated (a KeyboardInterrupt) instead of killing the
    process: `kill PID` stops a run as cleanly as Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def deferred():
    """Hold SIGINT and SIGTERM that arrive inside the block and deliver them when it ends (to
    the handlers that were in place), so the block runs whole or not at all."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are delivered to the main thread only
        return
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
    for signum in dict.fromkeys(caught):
        signal.raise_signal(signum)


# ------------------------------------------------------------------------------------------
# Under MPI a signal may not raise where it lands: a rank that leaves its loop on Ctrl-C while
# its peers wait for it in an Allreduce hangs the job (mpiexec forwards SIGINT and SIGTERM to
# every rank, each wherever it happens to be; `kill` reaches one rank only). So there signals
# become requests, counted here, which the ranks exchange at their next collective (a training
# step carries them in its Allreduce) and all act on at the same point.

_requests = {signal.SIGINT: 0, signal.SIGTERM: 0}


def _request(signum, frame) -> None:
    _requests[signum] += 1


@contextlib.contextmanager
def stop_requests():
    """Within the block, SIGINT and SIGTERM are recorded (see pending()) instead of raising."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _request) for s in _requests}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def pending() -> tuple[int, int]:
    """(SIGINT, SIGTERM) requests received since the last clear()."""
    return _requests[signal.SIGINT], _requests[signal.SIGTERM]


def clear() -> None:
    for s in _requests:
        _requests[s] = 0


def as_exception(sigint: float, sigterm: float) -> KeyboardInterrupt | None:
    """The exception that a stop request raises (SIGTERM wins), or None without one."""
    if sigterm:
        return Terminated()
    return KeyboardInterrupt() if sigint else None
