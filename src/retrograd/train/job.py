"""The main job: train an MLP or CNN classifier from a TrainConfig and write the run folder
(metrics.json, history.csv, model.safetensors + model.json, checkpoint.npz, figures).

Promises (issue 13): everything that can be wrong with the options or the data is found before
the first file is written; a run folder is never overwritten unless asked; a checkpoint holds
everything training depends on (weights, optimizer, schedule, random state, early stopping's
best weights), so a resumed run ends bit-identical to an uninterrupted one; a resumed run keeps
its saved settings.

Under `mpiexec -n N` (issue 17) every rank runs this same job: rank 0 checks the options, the
run folder and the checkpoint and decides the plan, which every rank then follows; each rank
loads the data and trains on its shard of every global batch (fit); rank 0 alone writes. Each
phase ends with one exchange (ranks.py), so a bad input is one line from rank 0 and every rank
exits together, before anything is written. A run resumes with any number of ranks: the
checkpoint does not depend on it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .. import data as D
from . import checkpoint as ckpt
from . import interrupts, threads
from .architectures import layers_for, step_work
from .config import TrainConfig, differences
from .ranks import Ranks, all_ranks
from .results import ResultWriter
from .run_folder import RunFolder
from .trainer import CHECKPOINT_FORMAT, Trainer, make_loss, make_optimizer

__all__ = ["run", "prepare", "Prepared", "make_loss", "make_optimizer", "warnings_for",
           "check_processes", "Trainer", "CHECKPOINT_FORMAT", "FINISHED"]

# how a run ended, as the checkpoint records it once training is over (None while it runs or
# after an interruption: those continue with --resume)
FINISHED = ("completed", "early-stopping", "non-finite")


@dataclass
class Prepared:
    """A validated config with its data split, standardized."""

    config: TrainConfig
    split: D.Split
    standardizer: D.Standardizer
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None  # None: --validation-fraction 0, every training row is used
    y_val: np.ndarray | None
    layers: list[dict] = field(default_factory=list)  # the model (train/architectures.py)

    @property
    def validation(self) -> tuple[np.ndarray, np.ndarray] | None:
        return None if self.x_val is None else (self.x_val, self.y_val)

    @property
    def n_classes(self) -> int:
        return self.split.n_classes

    @property
    def class_names(self) -> list[str] | None:
        return self.split.class_names


def prepare(config: TrainConfig) -> Prepared:
    """Validate the (resolved) config, load and split the data: everything that can fail on
    bad input, before anything is written."""
    config.validate()
    split = D.load(config.data, config.label_column)
    if len(np.unique(split.y_train)) < 2:
        raise ValueError(f"{config.data}: the training data has a single class")
    layers = layers_for(config, split.sample_shape, split.n_classes)  # a CNN on a table: refused
    x_tr, y_tr, x_val, y_val = split.x_train, split.y_train, None, None
    if config.validation_fraction:
        # every class on both sides, or the validation metrics would count zero rows
        D.check_split_sizes(split.y_train, config.validation_fraction,
                            f"--validation-fraction {config.validation_fraction:g} of the "
                            f"training split of {config.data}", "validation",
                            split.class_names)
        x_tr, y_tr, x_val, y_val = D.datasets.stratified_split(
            split.x_train, split.y_train, config.validation_fraction, seed=config.seed)
    # a convolution shares its weights across positions: one scale for all of them
    standardizer = D.Standardizer().fit(x_tr, per_feature=config.model != "cnn")
    return Prepared(config, split, standardizer, standardizer.transform(x_tr), y_tr,
                    None if x_val is None else standardizer.transform(x_val), y_val, layers)


def warnings_for(config: TrainConfig, y_train: np.ndarray) -> list[str]:
    """One line per combination of settings known to hurt."""
    counts = np.bincount(y_train)
    counts = counts[counts > 0]
    ratio = counts.max() / counts.min()
    if config.label_smoothing > 0 and config.class_weights == "inverse" and ratio > 10:
        return [f"warning: label smoothing {config.label_smoothing:g} with inverse class weights "
                f"on {ratio:.0f}:1 imbalanced data pulls every prediction toward 50/50 (the "
                f"weighted smoothed targets' optimum); drop one of them"]
    return []


def check_processes(config: TrainConfig, n_rows: int, size: int) -> None:
    """ValueError (one line) unless the run can be shared among `size` MPI ranks: the global
    batch splits into equal shards, every rank has a training row, and the optimizer takes one
    gradient per step."""
    if size == 1:
        return
    if config.model == "cnn":
        raise ValueError(f"--model cnn runs on one process, not {size}: its BatchNorm layers "
                         "normalize by the statistics of the whole batch, which the processes "
                         "would each see only a shard of")
    if config.optimizer == "lbfgs":
        raise ValueError(f"--optimizer lbfgs runs on one process, not {size}: it evaluates the "
                         "loss several times inside each step (choose sgd, adam or rmsprop)")
    from ..distributed import check_batch_size

    check_batch_size(config.batch_size, size, n_rows=n_rows)


@dataclass
class Plan:
    """What a run will do: decided and checked on rank 0 before anything is written, then
    followed by every rank."""

    config: TrainConfig
    folder: RunFolder
    lines: list[str] = field(default_factory=list)  # to print before training
    p: Prepared | None = None  # rank 0's data (the other ranks load their own)
    state: dict | None = None  # the checkpoint a resumed run continues
    finalize: bool = False  # training is over: only write the results
    saved_epochs: int | None = None
    overwrite: bool = False
    done: dict | None = None  # a finished run resumed: its metrics; nothing to do


def run(options: TrainConfig, *, given: dict | None = None, out: str | None = None,
        resume: bool = False, overwrite: bool = False, progress: bool = True,
        graph: bool = False, log=print, device: str = "cpu") -> dict:
    """Train and write the run folder; returns the metrics written to metrics.json, plus "out"
    (the folder) and "note" (set when a finished run was resumed: what was done instead).

    options: the user's settings, None where not given (the dataset's recipe fills those in);
    given: the options named on the command line (default: every option that is not None),
    which a resume compares with the saved run's. graph: also write graph.html (the graph of
    one training batch, with a backward stepper). Under MPI every rank calls it alike; rank 0
    logs and writes, and every rank returns rank 0's result.
    """
    defaults = TrainConfig().to_dict()
    if given is None:
        given = {k: v for k, v in options.to_dict().items() if v is not None}
        # from Python, a field left at its default was not chosen (hidden, activation)
        mlp_given = [k for k in ("hidden", "activation") if given.get(k) != defaults[k]]
    else:
        mlp_given = [k for k in ("hidden", "activation") if k in given]
    ranks = Ranks()
    kept: dict = {}

    def plan_on_root() -> Plan:
        if resume and overwrite:
            raise ValueError("--resume continues the run in --out, --overwrite replaces it: "
                             "choose one")
        if options.model == "cnn" and mlp_given:
            raise ValueError(f"--{sorted(mlp_given)[0]} shapes the MLP; --model cnn takes its "
                             "architecture from the dataset's recipe")
        plan = _plan_resume(given, out, ranks.size) if resume else \
            _plan_new(options, out, overwrite, ranks.size)
        kept["p"] = plan.p
        return dataclasses.replace(plan, p=None)  # not sent: each rank loads the data

    plan = ranks.together(plan_on_root, root_only=True, share=True)
    if ranks.is_root:
        for line in plan.lines:
            log(line)
    if plan.done is not None:
        return plan.done
    p = ranks.together(lambda: kept["p"] if ranks.is_root else prepare(plan.config))
    return _train(p, plan, ranks, progress, log if ranks.is_root else _quiet, graph, device)


def _quiet(line: str) -> None:
    pass


def _plan_new(options: TrainConfig, out, overwrite: bool, size: int) -> Plan:
    config = options.resolved()
    config.validate()
    name = os.path.basename(os.path.normpath(config.data)) or "data"
    folder = RunFolder(out, name, exists_ok=overwrite)
    p = prepare(config)
    check_processes(config, len(p.y_train), size)
    line = options.recipe_line()
    return Plan(config, folder, ([line] if line else []) + warnings_for(config, p.y_train), p,
                overwrite=overwrite)


def _plan_resume(given: dict, out, size: int) -> Plan:
    if out is None:
        raise ValueError("--resume needs --out DIR, the run folder to continue")
    path = os.path.join(out, "checkpoint.npz")
    if not os.path.isfile(path):
        raise ValueError(f"--resume: no checkpoint.npz in {out}")
    state = ckpt.load_checkpoint(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else None
        raise ValueError(f"--resume: {path} was not written by this version of retrograd "
                         f"(format {found!r}, expected {CHECKPOINT_FORMAT!r})")
    saved = state["config"]
    changed = differences(saved, given)
    if changed:
        raise ValueError(f"--resume: options differ from the run's saved settings: "
                         f"{'; '.join(changed)} (a resumed run keeps its settings; only "
                         f"--epochs may change)")
    config = TrainConfig(**{**saved, "threads": given.get("threads", saved.get("threads")),
                            "compile": given.get("compile", saved.get("compile", True))})
    done = int(state["epoch"])
    if "epochs" in given:
        if given["epochs"] < done:
            raise ValueError(f"--epochs {given['epochs']}: the run in {out} already finished "
                             f"{done} epochs")
        config.epochs = given["epochs"]
    folder = RunFolder(out, "", exists_ok=True)
    p = prepare(config)
    check_processes(config, len(p.y_train), size)
    stopped = state["stopped"]
    finalize = stopped in FINISHED and (stopped != "completed" or config.epochs <= done)
    if finalize and _results_current(out, state):
        how = {"completed": f"completed its {done} epochs",
               "early-stopping": f"stopped early at epoch {done}",
               "non-finite": f"stopped at epoch {done + 1} on a non-finite value"}[stopped]
        note = f"the run in {out} already {how}: nothing to resume, nothing changed"
        with open(os.path.join(out, "metrics.json")) as f:
            result = {**json.load(f), "out": out, "note": note}
        return Plan(config, folder, [note], done=result)
    line = (f"the run in {out} finished but not all of its results were written: writing them"
            if finalize else f"resuming {out} after epoch {done}")
    return Plan(config, folder, [line], p, state=state, finalize=finalize,
                saved_epochs=int(saved["epochs"]))


def _results_current(out: str, state: dict) -> bool:
    """Whether metrics.json is the one written when this checkpoint's training ended."""
    try:
        with open(os.path.join(out, "metrics.json")) as f:
            metrics = json.load(f)
        return metrics.get("epochs") == state["epoch"] and \
            metrics.get("stopped") == state["stopped"] and \
            os.path.isfile(os.path.join(out, "model.safetensors"))
    except (OSError, ValueError):
        return False


def _start(folder: RunFolder, overwrite: bool) -> None:
    folder.create()
    if overwrite:
        folder.remove_run_files()


def _train(p: Prepared, plan: Plan, ranks: Ranks, progress: bool, log, graph: bool,
           device: str = "cpu") -> dict:
    """Train (or, plan.finalize: only write the results of a finished checkpoint) into the
    plan's folder. A new run that fails or stops before its first epoch ends removes the folder
    it made."""
    folder, state, finalize = plan.folder, plan.state, plan.finalize
    t0 = time.perf_counter()
    trainer = None
    try:
        if state is None:
            ranks.together(lambda: _start(folder, plan.overwrite), root_only=True)
        trainer = Trainer(p, os.path.join(folder.path, "checkpoint.npz"), ranks)
        if device != "cpu":  # in place: the optimizer keeps its Parameters; fit moves batches
            trainer.model.to(device)
        blas = threads.resolve(p.config.threads, p.split.n_features, p.config.hidden,
                               p.config.batch_size // ranks.size, ranks.local_size,
                               work=step_work(p.layers, p.config.batch_size // ranks.size))
        with threads.blas_threads(blas):
            if state is not None:
                ranks.together(lambda: trainer.load(state))  # a damaged state: all refuse
                change = "" if finalize else trainer.replan_schedule(plan.saved_epochs)
                if change:
                    log(f"--epochs {p.config.epochs}: {change}")
            history = trainer.history if finalize else trainer.train(progress)
            if history.stopped == "interrupted" and not history.epochs:
                if ranks.is_root:
                    folder.discard()  # nothing worth keeping: no epoch finished
                # every rank stopped at the same step (collective.py)
                raise all_ranks(interrupts.Terminated() if history.signal == "SIGTERM"
                                else KeyboardInterrupt())
            if history.stopped in FINISHED and not finalize:
                ranks.together(lambda: trainer.mark(history.stopped, history.message),
                               root_only=True)
            kept = trainer.finish()
            if history.message and not finalize:
                log(history.message)
            if history.stopped == "interrupted":
                log(f"checkpoint of epoch {len(history.epochs)} kept: continue with --resume "
                    f"--out {folder.path}")
            seconds = time.perf_counter() - t0

            def write() -> dict:
                writer = ResultWriter(p, trainer.model, trainer.loss_fn, history, kept, seconds,
                                      processes=ranks.size, blas_threads=blas)
                return {**writer.write(folder, graph), "out": folder.path}

            result = ranks.together(write, root_only=True, share=True)
    except BaseException:
        if ranks.is_root and state is None and (trainer is None or not trainer.history.epochs):
            folder.discard()
        raise
    return {**result, "note": ""}
