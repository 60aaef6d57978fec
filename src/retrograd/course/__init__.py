"""The course, executable: each claim of course-0 measured by an experiment, drawn and reported."""

from .experiment import Experiment, Result
