"""Run folders: where a run's files go, and the promises about them.

- A folder that holds a run is never written over unless the user says --resume or
  --overwrite; a default folder name is unique (claimed with an exclusive mkdir).
- Results are written into a staging folder inside the run folder and moved into place at the
  end, so a failure while writing them leaves the previous files as they were.
- A run that fails, or stops before its first epoch ends, removes what it created: it leaves no
  folder that looks like a finished run.

Shared by `train`, `lr-find` and `rl` (and anything else that writes a run folder).
"""

from __future__ import annotations

import datetime
import os
import shutil

# The files a run writes: a folder holding any of them holds a run.
RUN_FILES = frozenset({
    "metrics.json", "history.csv", "model.safetensors", "model.json", "checkpoint.npz",
    "learning_curves.png", "confusion_matrix.png", "reliability.png", "graph.html",
    "lr_find.png", "policy.safetensors", "policy.json", "returns.png",
})
_STAGING = ".staging-"


def check_writable(folder: str, option: str = "--out") -> None:
    """ValueError unless `folder` exists as a writable folder or can be created."""
    path = os.path.abspath(folder)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ValueError(f"{option}: {folder} exists and is not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{option}: the folder {folder} is not writable")
        return
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{option}: cannot create {folder} ({parent} is not a writable folder)")


def run_files(folder: str) -> list[str]:
    """The run files in `folder` (sorted; empty when it holds no run or does not exist)."""
    try:
        return sorted(set(os.listdir(folder)) & RUN_FILES)
    except (FileNotFoundError, NotADirectoryError):
        return []


def default_name(prefix: str) -> str:
    """runs/<prefix>-<date>-<time>-<microseconds>: the folder a run gets when not told; made
    unique on creation by `RunFolder` (two runs in the same second get different folders)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return os.path.join("runs", f"{prefix}-{stamp}")


class RunFolder:
    """The output folder of one run.

    `RunFolder(path, exists_ok=...)` checks, before anything is written, that the folder can be
    written and that it holds no run unless the caller continues or replaces one (exists_ok).
    `create()` makes it (or claims a unique name when no path was given); `write_results()`
    stages result files and moves them in; `discard()` removes what this run created.
    """

    def __init__(self, path: str | None, prefix: str, *, exists_ok: bool = False,
                 option: str = "--out"):
        self.given = path is not None
        self.path = path if path is not None else default_name(prefix)
        self.option = option
        self.created = False
        check_writable(self.path, option)
        found = run_files(self.path)
        if found and not exists_ok:
            raise ValueError(f"{option} {self.path} already holds a run ({', '.join(found)}): "
                             "--resume continues it, --overwrite replaces it, or choose another "
                             f"{option}")

    def create(self) -> str:
        """Make the folder (an exclusive mkdir for a default name: another run that picked the
        same name in the same microsecond gets a suffix); returns its path."""
        if self.given:
            if not os.path.isdir(self.path):
                os.makedirs(self.path)
                self.created = True
            return self.path
        base, n = self.path, 1
        while True:
            try:
                os.makedirs(self.path)
                self.created = True
                return self.path
            except FileExistsError:
                n += 1
                self.path = f"{base}-{n}"

    def remove_run_files(self) -> None:
        """For --overwrite: delete the previous run's files (nothing else in the folder)."""
        for name in run_files(self.path):
            os.unlink(os.path.join(self.path, name))

    def write_results(self, write) -> None:
        """write(staging_folder) writes the result files; they then replace the folder's files
        of the same names. A failure inside write() leaves the folder as it was."""
        staging = os.path.join(self.path, f"{_STAGING}{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        try:
            write(staging)
            for name in sorted(os.listdir(staging)):
                os.replace(os.path.join(staging, name), os.path.join(self.path, name))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def discard(self) -> None:
        """Remove the folder if this run created it (and so nothing else is in it)."""
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)
            self.created = False
