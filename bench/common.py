"""The benchmarks' shared harness: environment hygiene, interleaved timing, ratio statistics and
the environment lines of the markdown reports.

bench/ is not a package: each script puts its own folder on sys.path and imports this module
*before* NumPy, calling `reexec_without_blas_overrides(__file__)` first thing. This module
therefore imports nothing heavy at module level (NumPy, torch and threadpoolctl are imported
inside the functions that need them).
"""

from __future__ import annotations

import cProfile
import datetime
import gc
import io
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence

BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
UNSET_MARK = "RETROGRAD_BENCH_UNSET"  # what the re-exec removed, for the report
COMMAND_MARK = "RETROGRAD_BENCH_COMMAND"  # the command as the user typed it


# ----------------------------------------------------------------------------------------------
# process setup


def reexec_without_blas_overrides(script: str) -> None:
    """Replace this process by the same command without the OpenBLAS overrides (call it before
    NumPy is imported: OpenBLAS reads them when it loads). `--keep-blas-env` disables it."""
    found = [k for k in BLAS_OVERRIDES if k in os.environ]
    if not found or "--keep-blas-env" in sys.argv:
        return
    env = {k: v for k, v in os.environ.items() if k not in BLAS_OVERRIDES}
    env[UNSET_MARK] = " ".join(f"{k}={os.environ[k]}" for k in found)
    env.setdefault(COMMAND_MARK, typed_command(script))
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, os.path.abspath(script), *sys.argv[1:]], env)


def typed_command(script: str) -> str:
    """The command line that ran `script`, with paths relative to the working directory."""
    import shlex

    path = os.path.relpath(os.path.abspath(script))
    if path.startswith(".."):
        path = os.path.abspath(script)
    python = os.path.relpath(sys.executable) if not sys.executable.startswith("/usr") \
        else os.path.basename(sys.executable)
    if python.startswith(".."):
        python = sys.executable
    return shlex.join([python, path, *sys.argv[1:]])


def command(script: str) -> str:
    """The command as the user typed it (kept across the re-exec)."""
    return os.environ.get(COMMAND_MARK) or typed_command(script)


def import_retrograd():
    """retrograd, installed or (from a bare checkout) from ../src."""
    try:
        import retrograd
    except ImportError:  # run from a checkout without `pip install -e .`
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
        import retrograd
    return retrograd


def add_harness_args(parser, threads_help: str, pause: float = 0.0) -> None:
    """The options every benchmark shares: --threads, --seed, --pause, --keep-blas-env."""
    parser.add_argument("--threads", type=int, default=2, help=threads_help)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pause", type=float, default=pause,
                        help="seconds of idle before each timed segment, to let the previous "
                             f"library's spinning threads sleep (default {pause:g})")
    parser.add_argument("--keep-blas-env", action="store_true",
                        help="do not re-execute without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE")


def limit_threads(threads: int):
    """NumPy's BLAS and torch's intra-op pool to `threads`; keep the returned object alive."""
    import torch
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(limits=threads, user_api="blas")
    torch.set_num_threads(threads)
    return limits


# ----------------------------------------------------------------------------------------------
# timing


def interleaved(names: Sequence[str], rounds: int, make_segment: Callable[[str, int], Callable],
                warmup_rounds: int = 0, pause: float = 0.0) -> dict[str, list[float]]:
    """Seconds per timed segment, per implementation, interleaved round by round.

    make_segment(name, r) prepares round r of implementation `name` (untimed: converting data,
    setting thread counts) and returns a callable that runs the segment, or a pair (lead_in,
    run) whose lead_in runs untimed just before run, after the pause; the order of the
    implementations is rotated from round to round. Rounds -warmup_rounds .. -1 run untimed
    first. Everything alive when this starts is exempted from the cyclic GC (gc.freeze), so the
    gc.collect() before each segment costs microseconds instead of tens of milliseconds.
    """
    times: dict[str, list[float]] = {name: [] for name in names}
    names = list(names)
    gc.collect()
    gc.freeze()
    try:
        for r in range(-warmup_rounds, rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                segment = make_segment(name, r)
                lead_in = None
                if isinstance(segment, tuple):
                    lead_in, segment = segment
                gc.collect()
                if pause:
                    time.sleep(pause)
                if lead_in is not None:
                    lead_in()
                t0 = time.perf_counter()
                segment()
                dt = time.perf_counter() - t0
                if r >= 0:
                    times[name].append(dt)
    finally:
        gc.unfreeze()
    return times


class OtherLoad:
    """How much of the machine's CPU time other processes (and the hypervisor's steal) took
    between construction and share(): the busy time in /proc/stat minus this process's own.
    A few percent is background; more means the timings were contended and should be rerun."""

    def __init__(self):
        self.start = self._read()

    @staticmethod
    def _read():
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")
        own = os.times()
        return busy, own.user + own.system, time.perf_counter()

    def share(self) -> float | None:
        """Fraction of (wall time x logical CPUs) used by everything but this process."""
        end = self._read()
        if end is None or self.start is None:
            return None
        busy, own, wall = (b - a for a, b in zip(self.start, end, strict=True))
        return max(0.0, busy - own) / (wall * (os.cpu_count() or 1))

    def describe(self) -> str:
        share = self.share()
        if share is None:
            return "load of other processes unknown (no /proc/stat)"
        return (f"other processes and steal took {share:.0%} of the {os.cpu_count()} CPUs' time"
                + (" (contended: rerun on a quieter machine)" if share > 0.05 else ""))


def ratio_stats(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Median and quartiles of the per-round ratios a/b."""
    r = [x / y for x, y in zip(a, b, strict=True)]
    if len(r) < 2:
        return r[0], r[0], r[0]
    q1, med, q3 = statistics.quantiles(r, n=4, method="inclusive")
    return med, q1, q3


def noise(values: dict[str, list[float]], slow_is_high: bool = True) -> float:
    """How much worse the worst segment was than the median one (the machine's noise)."""
    if slow_is_high:  # times
        return max(max(v) / statistics.median(v) for v in values.values())
    return max(statistics.median(v) / min(v) for v in values.values())  # rates


def profile(run: Callable[[], None], label: str, top: int = 25) -> None:
    """cProfile of run(), printed by tottime and by cumtime."""
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    run()
    prof.disable()
    dt = time.perf_counter() - t0
    print(f"{label}: {dt:.2f} s under cProfile (profiler overhead included)")
    for key in ("tottime", "cumtime"):
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats(key).print_stats(top)
        text = s.getvalue()
        print(f"\n--- top {top} by {key} ---")
        print(text[text.find("   ncalls"):].rstrip())


# ----------------------------------------------------------------------------------------------
# reporting


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_summary() -> str:
    from threadpoolctl import threadpool_info

    parts = []
    for info in threadpool_info():
        lib = os.path.basename(info.get("filepath", ""))
        owner = "numpy" if "numpy" in info.get("filepath", "") else \
            "torch" if "torch" in info.get("filepath", "") else "other"
        desc = f"{info['internal_api']} {info.get('version') or ''}".strip()
        if info.get("architecture"):
            desc += f" ({info['architecture']})"
        parts.append(f"{owner}: {desc}, {info['num_threads']} threads [{lib}]")
    return "; ".join(parts)


def environment_lines(threads: int) -> list[str]:
    import numpy as np
    import torch

    rg = import_retrograd()
    lines = [
        f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs, Python "
        f"{platform.python_version()}",
        f"numpy {np.__version__}, retrograd {rg.__version__}, torch {torch.__version__} "
        f"(torch.get_num_threads() = {torch.get_num_threads()}, "
        f"interop {torch.get_num_interop_threads()})",
        f"thread pools (threadpoolctl, NumPy's BLAS limited to {threads}): {blas_summary()}",
    ]
    unset = os.environ.get(UNSET_MARK)
    if unset:
        lines.append(f"re-executed without {unset} (they slow NumPy's OpenBLAS down)")
    else:
        kept = [f"{k}={os.environ[k]}" for k in BLAS_OVERRIDES if k in os.environ]
        lines.append("OpenBLAS overrides: " + (", ".join(kept) + " (kept, --keep-blas-env)"
                                              if kept else "none set"))
    return lines


def report_header(title: str, script: str, details: Sequence[str],
                  env_lines: Sequence[str]) -> list[str]:
    """A markdown heading, then date and command, the run's details and the environment, one
    per line (markdown hard breaks)."""
    today = datetime.date.today().isoformat()
    return [f"### {title}", "", f"{today}, `{command(script)}`  ",
            *(line + "  " for line in details), *(line + "  " for line in env_lines), ""]


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def fmt_us(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:,.0f}" if us >= 100 else f"{us:.1f}"


def fmt_ratio(stats: tuple[float, float, float]) -> str:
    med, q1, q3 = stats
    return f"{med:.2f} ({q1:.2f}-{q3:.2f})"
