"""The main job: train an MLP classifier from a TrainConfig and write the run folder
(metrics.json, history.csv, model.safetensors + model.json, checkpoint.npz, figures).

Promises (issue 13): everything that can be wrong with the options or the data is found before
the first file is written; a run folder is never overwritten unless asked; a checkpoint holds
everything training depends on (weights, optimizer, schedule, random state, early stopping's
best weights), so a resumed run ends bit-identical to an uninterrupted one; a resumed run keeps
its saved settings.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from .. import data as D
from .. import random as _random
from .. import registry
from ..targets import effective_number_weights, inverse_frequency_weights
from . import checkpoint as ckpt
from . import interrupts, threads
from .callbacks import Callback, EarlyStopping
from .config import TrainConfig, differences
from .fit import History, fit
from .results import ResultWriter
from .run_folder import RunFolder
from .saved_run import build_mlp

CHECKPOINT_FORMAT = "retrograd-checkpoint-2"
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
    x_tr, y_tr, x_val, y_val = split.x_train, split.y_train, None, None
    if config.validation_fraction:
        # every class on both sides, or the validation metrics would count zero rows
        D.check_split_sizes(split.y_train, config.validation_fraction,
                            f"--validation-fraction {config.validation_fraction:g} of the "
                            f"training split of {config.data}", "validation",
                            split.class_names)
        x_tr, y_tr, x_val, y_val = D.datasets.stratified_split(
            split.x_train, split.y_train, config.validation_fraction, seed=config.seed)
    standardizer = D.Standardizer().fit(x_tr)
    return Prepared(config, split, standardizer, standardizer.transform(x_tr), y_tr,
                    None if x_val is None else standardizer.transform(x_val), y_val)


def class_weights(config: TrainConfig, y_train: np.ndarray, n_classes: int):
    if config.class_weights == "inverse":
        return inverse_frequency_weights(y_train, n_classes)
    if config.class_weights == "effective":
        return effective_number_weights(y_train, n_classes, config.beta)
    return None


def make_loss(config: TrainConfig, y_train: np.ndarray, n_classes: int):
    """loss_fn(logits, labels): the configured loss with the configured class weights."""
    loss = registry.LOSSES[config.loss]
    weight = class_weights(config, y_train, n_classes)
    return lambda out, y: loss(out, y, weight=weight, label_smoothing=config.label_smoothing,
                               gamma=config.gamma)


def make_optimizer(config: TrainConfig, params):
    return registry.make_optimizer(config.optimizer, params, lr=config.lr,
                                   momentum=config.momentum, weight_decay=config.weight_decay)


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


class _LBFGSStep:
    """Adapts LBFGS (which needs a closure) to the loop's zero_grad/backward/step: the closure
    re-evaluates the current batch."""

    def __init__(self, optimizer, model, loss_fn):
        self.optimizer, self.model, self.loss_fn = optimizer, model, loss_fn
        self.param_groups = optimizer.param_groups
        self.batch = None

    def zero_grad(self):
        self.optimizer.zero_grad()

    def step(self):
        x, y = self.batch

        def closure():
            self.optimizer.zero_grad()
            loss = self.loss_fn(self.model(x), y)
            loss.backward()
            return loss

        self.optimizer.step(closure)


class _Trainer(Callback):
    """The model, optimizer, schedule and early stopping of one run, and its checkpoints (a
    callback: it saves one at the end of every epoch)."""

    def __init__(self, p: Prepared, checkpoint_path: str):
        config = self.config = p.config
        self.p, self.path = p, checkpoint_path
        _random.manual_seed(config.seed)
        self.model = build_mlp(p.split.n_features, config.hidden, p.n_classes, config.activation)
        self.loss_fn = make_loss(config, p.y_train, p.n_classes)
        self.optimizer = make_optimizer(config, self.model.parameters())
        self.scheduler = registry.make_scheduler(config.schedule, self.optimizer, config.epochs)
        self.early_stopping = EarlyStopping(config.early_stopping) \
            if config.early_stopping is not None else None
        sampler = D.ClassBalancedSampler(p.y_train) if config.balanced_sampling else None
        self.loader = D.DataLoader(D.TensorDataset(p.x_train, p.y_train),
                                   batch_size=config.batch_size, shuffle=sampler is None,
                                   sampler=sampler)
        self.stepper = self.optimizer
        if config.optimizer == "lbfgs":
            self.stepper = _LBFGSStep(self.optimizer, self.model, self.loss_fn)
        self.history = History()
        self.epoch = 0
        self.state: dict | None = None  # the last checkpoint written or loaded

    # ---------------------------------------------------------------- checkpoints
    def on_batch_begin(self, loop) -> None:
        if self.stepper is not self.optimizer:
            self.stepper.batch = loop.batch

    def on_epoch_end(self, loop) -> None:
        self.epoch = loop.epoch
        self.save(None, "")

    def snapshot_state(self, stopped: str | None, message: str) -> dict:
        return {
            "format": CHECKPOINT_FORMAT, "epoch": self.epoch, "config": self.config.to_dict(),
            # copies: this dict outlives the epoch (mark() saves it again at the end)
            "model": {k: v.numpy().copy() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "early_stopping": None if self.early_stopping is None
            else self.early_stopping.state_dict(),
            "rng": _random.get_rng_state(),
            "history": {"epochs": self.history.epochs, "best_epoch": self.history.best_epoch},
            "stopped": stopped, "message": message,
        }

    def save(self, stopped: str | None, message: str) -> None:
        self.state = self.snapshot_state(stopped, message)
        ckpt.save_checkpoint(self.state, self.path)

    def mark(self, stopped: str, message: str) -> None:
        """Record in the last checkpoint how training ended (its weights and state stay those
        of the last finished epoch, which is what a finished run keeps)."""
        state = self.state if self.state is not None else self.snapshot_state(None, "")
        self.state = {**state, "stopped": stopped, "message": message}
        ckpt.save_checkpoint(self.state, self.path)

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.early_stopping is not None and state["early_stopping"] is not None:
            self.early_stopping.load_state_dict(state["early_stopping"])
        _random.set_rng_state(state["rng"])
        self.history = History(epochs=list(state["history"]["epochs"]),
                               best_epoch=state["history"]["best_epoch"],
                               stopped=state["stopped"] or "completed",
                               message=state["message"])
        self.epoch, self.state = int(state["epoch"]), state

    def replan_schedule(self, saved_epochs: int) -> str:
        """After --epochs changed on resume: the schedule continues as if planned over the new
        total from the start (its closed form at the current epoch). Returns what it did."""
        s, total, e = self.scheduler, self.config.epochs, self.epoch
        if s is None or total == saved_epochs or self.config.schedule == "plateau":
            return ""
        base = s.base_lrs
        if self.config.schedule == "cosine":
            s.T_max = total
            lrs = [s.eta_min + (b - s.eta_min) * (1 + math.cos(math.pi * e / total)) / 2
                   for b in base]
        else:  # step
            s.step_size = max(1, total // 3)
            lrs = [b * s.gamma ** (e // s.step_size) for b in base]
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        s._last_lr = lrs
        return (f"the {self.config.schedule} schedule now spans {total} epochs instead of "
                f"{saved_epochs} (lr at epoch {e + 1}: {lrs[0]:.4g})")

    def finish(self) -> int:
        """Put in the weights the run keeps and return their epoch: early stopping's best when
        it has one (unless training was cut short), else the last finished epoch's."""
        es = self.early_stopping
        if es is not None and es.best_weights is not None and \
                self.history.stopped in ("completed", "early-stopping"):
            self.model.load_state_dict(es.best_weights)
            self.history.best_epoch = es.best_epoch
            return es.best_epoch
        return len(self.history.epochs)

    def train(self, progress: bool) -> History:
        return fit(self.model, self.loss_fn, self.stepper, self.loader, self.config.epochs,
                   validation=self.p.validation, scheduler=self.scheduler,
                   early_stopping=self.early_stopping, clip_grad_norm=self.config.clip_grad,
                   progress=progress, history=self.history, start_epoch=self.epoch,
                   callbacks=[self])


def run(options: TrainConfig, *, given: dict | None = None, out: str | None = None,
        resume: bool = False, overwrite: bool = False, progress: bool = True,
        graph: bool = False, log=print) -> dict:
    """Train and write the run folder; returns the metrics written to metrics.json, plus "out"
    (the folder) and "note" (set when a finished run was resumed: what was done instead).

    options: the user's settings, None where not given (the dataset's recipe fills those in);
    given: the options named on the command line (default: every option that is not None),
    which a resume compares with the saved run's. graph: also write graph.html (the graph of
    one training batch, with a backward stepper).
    """
    if given is None:
        given = {k: v for k, v in options.to_dict().items() if v is not None}
    if resume and overwrite:
        raise ValueError("--resume continues the run in --out, --overwrite replaces it: "
                         "choose one")
    if resume:
        return _resume(given, out, progress, graph, log)
    config = options.resolved()
    config.validate()
    name = os.path.basename(os.path.normpath(config.data)) or "data"
    folder = RunFolder(out, name, exists_ok=overwrite)
    p = prepare(config)
    line = options.recipe_line()
    if line:
        log(line)
    for warning in warnings_for(config, p.y_train):
        log(warning)
    return _train(p, folder, progress, log, overwrite=overwrite, graph=graph)


def _resume(given: dict, out, progress: bool, graph: bool, log) -> dict:
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
    config = TrainConfig(**{**saved, "threads": given.get("threads", saved.get("threads"))})
    done = int(state["epoch"])
    if "epochs" in given:
        if given["epochs"] < done:
            raise ValueError(f"--epochs {given['epochs']}: the run in {out} already finished "
                             f"{done} epochs")
        config.epochs = given["epochs"]
    folder = RunFolder(out, "", exists_ok=True)
    p = prepare(config)
    stopped = state["stopped"]
    finalize = stopped in FINISHED and (stopped != "completed" or config.epochs <= done)
    if finalize and _results_current(out, state):
        how = {"completed": f"completed its {done} epochs",
               "early-stopping": f"stopped early at epoch {done}",
               "non-finite": f"stopped at epoch {done + 1} on a non-finite value"}[stopped]
        note = f"the run in {out} already {how}: nothing to resume, nothing changed"
        log(note)
        with open(os.path.join(out, "metrics.json")) as f:
            return {**json.load(f), "out": out, "note": note}
    log(f"the run in {out} finished but not all of its results were written: writing them"
        if finalize else f"resuming {out} after epoch {done}")
    return _train(p, folder, progress, log, state=state, finalize=finalize,
                  saved_epochs=int(saved["epochs"]), graph=graph)


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


def _train(p: Prepared, folder: RunFolder, progress: bool, log, *, state: dict | None = None,
           finalize: bool = False, saved_epochs: int | None = None,
           overwrite: bool = False, graph: bool = False) -> dict:
    """Train (or, finalize: only write the results of a finished checkpoint) into `folder`.
    A new run that fails or stops before its first epoch ends removes the folder it made."""
    t0 = time.perf_counter()
    trainer = None
    try:
        if state is None:
            folder.create()
            if overwrite:
                folder.remove_run_files()
        trainer = _Trainer(p, os.path.join(folder.path, "checkpoint.npz"))
        blas = threads.resolve(p.config.threads, p.split.n_features, p.config.hidden,
                               p.config.batch_size)
        with threads.blas_threads(blas):
            if state is not None:
                trainer.load(state)
                change = "" if finalize else trainer.replan_schedule(saved_epochs)
                if change:
                    log(f"--epochs {p.config.epochs}: {change}")
            history = trainer.history if finalize else trainer.train(progress)
            if history.stopped == "interrupted" and not history.epochs:
                folder.discard()  # nothing worth keeping: no epoch finished
                raise interrupts.Terminated() if history.signal == "SIGTERM" \
                    else KeyboardInterrupt()
            if history.stopped in FINISHED and not finalize:
                trainer.mark(history.stopped, history.message)
            kept = trainer.finish()
            if history.message and not finalize:
                log(history.message)
            if history.stopped == "interrupted":
                log(f"checkpoint of epoch {len(history.epochs)} kept: continue with --resume "
                    f"--out {folder.path}")
            result = ResultWriter(p, trainer.model, trainer.loss_fn, history, kept,
                                  time.perf_counter() - t0, blas).write(folder, graph)
    except BaseException:
        if state is None and (trainer is None or not trainer.history.epochs):
            folder.discard()
        raise
    return {**result, "out": folder.path, "note": ""}
