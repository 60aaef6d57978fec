"""One training run's model, optimizer, schedule, early stopping and checkpoints (the job's
callback: it saves a checkpoint at the end of every epoch). Under MPI every rank holds all of
it, identical; rank 0 alone writes the checkpoints."""

from __future__ import annotations

import math

import numpy as np

from .. import data as D
from .. import random as _random
from .. import registry
from ..targets import effective_number_weights, inverse_frequency_weights
from . import checkpoint as ckpt
from .architectures import build
from .callbacks import Callback, EarlyStopping
from .fit import History, fit

CHECKPOINT_FORMAT = "retrograd-checkpoint-2"


def class_weights(config, y_train: np.ndarray, n_classes: int):
    if config.class_weights == "inverse":
        return inverse_frequency_weights(y_train, n_classes)
    if config.class_weights == "effective":
        return effective_number_weights(y_train, n_classes, config.beta)
    return None


def make_loss(config, y_train: np.ndarray, n_classes: int):
    """loss_fn(logits, labels): the configured loss with the configured class weights."""
    loss = registry.LOSSES[config.loss]
    weight = class_weights(config, y_train, n_classes)
    return lambda out, y: loss(out, y, weight=weight, label_smoothing=config.label_smoothing,
                               gamma=config.gamma)


def make_optimizer(config, params):
    return registry.make_optimizer(config.optimizer, params, lr=config.lr,
                                   momentum=config.momentum, weight_decay=config.weight_decay)


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


class Trainer(Callback):
    """The model, optimizer, schedule and early stopping of one run, and its checkpoints (a
    callback: it saves one at the end of every epoch)."""

    def __init__(self, p, checkpoint_path: str, ranks=None):
        config = self.config = p.config
        self.p, self.path = p, checkpoint_path
        self.ranks = ranks  # train/ranks.py: who writes (None: a world of one)
        _random.manual_seed(config.seed)
        self.layers = p.layers
        self.model = build(p.layers)
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
        """Write the checkpoint (rank 0 only). Under MPI a failure here is rank 0's alone,
        in the middle of training, while the other ranks wait in the next step: it ends the
        whole job (distributed.abort), with exit status 2 like any write error."""
        if self.ranks is not None and not self.ranks.is_root:
            return
        self.state = self.snapshot_state(stopped, message)
        if self.ranks is None or self.ranks.size == 1:
            ckpt.save_checkpoint(self.state, self.path)
            return
        try:
            ckpt.save_checkpoint(self.state, self.path)
        except Exception as exc:  # noqa: BLE001 - any failure: the peers must not wait forever
            from ..distributed import abort
            from ..distributed.world import describe

            abort(f"could not write the checkpoint {self.path}: {describe(exc)}", 2)

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
                   callbacks=[self], compile=self.config.compile)
