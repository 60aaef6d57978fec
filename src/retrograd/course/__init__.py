"""The course, executable: each claim of course-0 measured by an experiment, drawn and reported.

`run_course(out, quick=False, only=None)` runs the experiments (modules eNN_<name>.py here) and
writes out/claims.json, one PNG per experiment and out/report.html.
"""

from .experiment import Experiment, Result
from .runner import run_course

__all__ = ["Experiment", "Result", "run_course"]
