"""Run the course's experiments: find every eNN_* module, run each, write claims.json and
report.html into one folder.

A crashed experiment is recorded as not holding (with its error) and the others still run: one
broken claim must not hide fifteen measured ones, and a crash must never read as a verdict.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import pkgutil
import re
import time
import traceback
from collections.abc import Callable

import numpy as np

from .experiment import Experiment, Result

_MODULE = re.compile(r"^e(\d\d)_\w+$")


def discover() -> list[Experiment]:
    """Every experiment of the package, ordered by number (modules named eNN_<name>).

    A module that fails to import becomes an experiment that reports the import error, so a
    broken file shows up in the report instead of silently shrinking the course.
    """
    from . import __path__ as package_path

    experiments = []
    for info in pkgutil.iter_modules(package_path):
        match = _MODULE.match(info.name)
        if not match:
            continue
        try:
            module = importlib.import_module(f"{__package__}.{info.name}")
            experiment = module.EXPERIMENT
            if not isinstance(experiment, Experiment):
                raise TypeError(f"{info.name}.EXPERIMENT is a {type(experiment).__name__}, "
                                "not an Experiment")
        except Exception as exc:  # noqa: BLE001 - reported as a failing claim below
            experiment = _broken(info.name, int(match.group(1)), exc)
        experiments.append(experiment)
    experiments.sort(key=lambda e: (e.number, e.id))
    ids = [e.id for e in experiments]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise RuntimeError(f"course: duplicate experiment ids {duplicates}")
    return experiments


def _broken(module_name: str, number: int, exc: Exception) -> Experiment:
    message = f"module {module_name} could not be loaded: {type(exc).__name__}: {exc}"

    def run(quick: bool, out_dir: str) -> Result:
        raise RuntimeError(message)

    return Experiment(number, module_name, f"(experiment module {module_name} is broken)", "",
                      run)


def select(experiments: list[Experiment], only) -> list[Experiment]:
    """The experiments named in `only` (ids or numbers, e.g. ["softmax", "3"]), in course order.

    ValueError naming the unknown entry and listing the valid ids.
    """
    if only is None:
        return experiments
    wanted = [str(item).strip() for item in only]
    wanted = [w for w in wanted if w]
    if not wanted:
        raise ValueError("--only: no claim named (give ids or numbers, separated by commas)")
    by_id = {e.id: e for e in experiments}
    by_number = {e.number: e for e in experiments}
    chosen = set()
    for item in wanted:
        if item in by_id:
            chosen.add(by_id[item].id)
        elif item.isdigit() and int(item) in by_number:
            chosen.add(by_number[int(item)].id)
        else:
            valid = ", ".join(f"{e.number} {e.id}" for e in experiments)
            raise ValueError(f"--only: unknown claim {item!r}; valid claims: {valid}")
    return [e for e in experiments if e.id in chosen]


def run_course(out: str, quick: bool = False, only: list[str] | None = None,
               log: Callable[[str], None] | None = print, *,
               blas_threads: int | None = 1) -> list[dict]:
    """Run the selected experiments, write out/claims.json, one PNG each and out/report.html.

    Returns the claims.json entries: id, number, claim, formula, tex, measured, holds, summary,
    figure, notes, table, condition, stepper, seconds, error (None unless the experiment
    crashed).
    blas_threads: BLAS threads during the run (None: leave them alone). The experiments' matrices
    are small, and on a shared 2-core machine two BLAS threads collapsed: 50 full-batch steps of
    a 512x64 MLP took 3.2 s with two threads and 0.016 s with one (needs threadpoolctl).
    """
    with _blas_limited(blas_threads):
        return _run(out, quick, only, log)


class _blas_limited:
    """threadpoolctl's BLAS limit when it is installed, otherwise nothing."""

    def __init__(self, threads: int | None):
        self.threads, self.limits = threads, None

    def __enter__(self):
        if self.threads is not None:
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:
                return self
            self.limits = threadpool_limits(limits=self.threads, user_api="blas")
        return self

    def __exit__(self, *exc):
        if self.limits is not None:
            self.limits.restore_original_limits()
        return False


def _run(out: str, quick: bool, only, log) -> list[dict]:
    from .. import random as _random
    from ..train.run_folder import check_writable
    from .report import write_report

    log = log or (lambda message: None)
    experiments = select(discover(), only)
    # Fail on an unwritable folder before spending minutes on experiments.
    check_writable(out)
    os.makedirs(out, exist_ok=True)
    meta = {"quick": bool(quick), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    entries: list[dict] = []
    start = time.perf_counter()
    try:
        for k, experiment in enumerate(experiments, 1):
            log(f"[{k}/{len(experiments)}] {experiment.number:2d} {experiment.id} ...")
            # Each experiment starts from the same seed, so its numbers do not depend on which
            # experiments ran before it (--only reproduces the full run's values).
            _random.manual_seed(0)
            entry = _run_one(experiment, quick, out)
            entries.append(entry)
            verdict = ("holds" if entry["holds"] else
                       "CRASHED" if entry["error"] else "does NOT hold")
            log(f"      {verdict} ({entry['seconds']:.1f} s): {entry['summary']}")
            # Written after every experiment: an interrupted run keeps what it measured.
            write_claims(entries, out)
    finally:
        # Also on Ctrl-C: the page shows what was measured and says the run was cut short.
        meta["seconds"] = round(time.perf_counter() - start, 2)
        if len(entries) < len(experiments):
            meta["interrupted"] = (f"interrupted after {len(entries)} of {len(experiments)} "
                                   "claims")
        write_report(entries, out, meta)
    return entries


def _run_one(experiment: Experiment, quick: bool, out: str) -> dict:
    entry = {"id": experiment.id, "number": experiment.number, "claim": experiment.claim,
             "formula": experiment.formula, "tex": experiment.tex}
    start = time.perf_counter()
    try:
        result = experiment.run(quick, out)
        if not isinstance(result, Result):
            raise TypeError(f"run() returned a {type(result).__name__}, not a Result")
        if not isinstance(result.holds, (bool, np.bool_)):
            raise TypeError(f"Result.holds must be a bool, got {result.holds!r}")
        for kind, name in (("figure", result.figure), ("stepper", result.stepper)):
            if name is not None and not os.path.isfile(os.path.join(out, name)):
                raise FileNotFoundError(f"the {kind} {name!r} was not written to {out}")
        entry.update(measured=to_json(result.measured), holds=bool(result.holds),
                     summary=str(result.summary), figure=result.figure,
                     notes=[str(n) for n in result.notes],
                     table=[[str(label), str(value)] for label, value in result.table],
                     condition=str(result.condition), stepper=result.stepper, error=None)
    except Exception as exc:  # noqa: BLE001 - a crash is recorded as a claim that does not hold
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        entry.update(measured={}, holds=False, summary=f"crashed: {type(exc).__name__}: {exc}",
                     figure=None, notes=[], table=[], condition="", stepper=None,
                     error="".join(lines[-6:]))
    entry["seconds"] = round(time.perf_counter() - start, 3)
    return entry


def to_json(value):
    """NumPy scalars and arrays as plain Python; non-finite floats as the strings "nan", "inf",
    "-inf" (strict JSON has no NaN, and a diverged loss is a measurement worth keeping)."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if value is None or isinstance(value, str):
        return value
    return str(value)


def write_claims(entries: list[dict], out: str) -> str:
    """Write out/claims.json atomically; returns its path."""
    from ..train.checkpoint import atomic_write

    path = os.path.join(out, "claims.json")
    text = json.dumps(entries, indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda f: write_shared(f, text))
    return path


def write_shared(f, text: str) -> None:
    """Write text to the temporary file of atomic_write (which gives it open()'s
    permissions, so a report can be opened and shared)."""
    f.write(text.encode("utf-8"))
