"""Callbacks: what the training loop lets other code do at its fixed points (Keras' and skorch's
model). Each hook receives the `Loop` (train/fit.py), whose fields say where training is.

    on_train_begin    before the first epoch
    on_epoch_begin    before each epoch's first batch
    on_batch_begin    loop.batch is set; setting loop.skip_batch = True skips the step
    on_after_backward gradients are in .grad, the optimizer has not stepped (clip, add, inspect)
    on_batch_end      loop.loss_value is the batch's loss
    on_epoch_end      loop.record is the epoch's dict; setting loop.stop = reason ends training
    on_train_end      after the last epoch, also when stopped or interrupted

A callback that must survive a resume (early stopping's best weights) has state_dict() /
load_state_dict(); the run's checkpoint stores them.
"""

from __future__ import annotations

import math

import numpy as np

from ..nn.utils import clip_grad_norm_
from ..optim.lr_scheduler import ReduceLROnPlateau


class Callback:
    """Base class: every hook does nothing."""

    def on_train_begin(self, loop) -> None: ...
    def on_epoch_begin(self, loop) -> None: ...
    def on_batch_begin(self, loop) -> None: ...
    def on_after_backward(self, loop) -> None: ...
    def on_batch_end(self, loop) -> None: ...
    def on_epoch_end(self, loop) -> None: ...
    def on_train_end(self, loop) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class LambdaCallback(Callback):
    """Plain functions as hooks: LambdaCallback(on_epoch_end=lambda loop: ...)."""

    def __init__(self, **hooks):
        for name, fn in hooks.items():
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise TypeError(f"LambdaCallback: unknown hook {name!r}")
            setattr(self, name, fn)


class GradientClipping(Callback):
    """Rescale the gradients so that their joint L2 norm is at most max_norm (torch's
    clip_grad_norm_), after each backward."""

    def __init__(self, max_norm: float):
        self.max_norm = max_norm

    def on_after_backward(self, loop) -> None:
        clip_grad_norm_(loop.params, self.max_norm)


class LRSchedule(Callback):
    """Step a learning-rate scheduler after each epoch; ReduceLROnPlateau watches the validation
    loss (the training loss when there is no validation split)."""

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def on_epoch_end(self, loop) -> None:
        if isinstance(self.scheduler, ReduceLROnPlateau):
            record = loop.record
            self.scheduler.step(record.get("val_loss", record["train_loss"]))
        else:
            self.scheduler.step()


class EarlyStopping(Callback):
    """Stop after `patience` epochs without a lower `monitor` value, and end with the weights of
    the best epoch (restore_best), whether training stopped early or ran all its epochs.

    Its state (best value, best epoch and a copy of the best weights) is part of a checkpoint,
    so a resumed run stops and restores exactly as an uninterrupted one.
    """

    def __init__(self, patience: int, monitor: str = "val_loss", restore_best: bool = True):
        if not isinstance(patience, int) or patience <= 0:
            raise ValueError(f"patience must be a positive integer, got {patience!r}")
        self.patience, self.monitor, self.restore_best = patience, monitor, restore_best
        self.best, self.best_epoch, self.best_weights = math.inf, None, None

    def on_epoch_end(self, loop) -> None:
        value = loop.record.get(self.monitor)
        if value is None:
            raise ValueError(f"early stopping monitors {self.monitor!r}, which the epoch's "
                             f"record lacks (is there a validation split?)")
        if value < self.best:
            self.best, self.best_epoch = value, loop.epoch
            self.best_weights = loop.snapshot()
            loop.history.best_epoch = loop.epoch
        elif self.best_epoch is not None and loop.epoch - self.best_epoch >= self.patience:
            loop.stop = "early-stopping"
            loop.message = (f"no lower {self.monitor.replace('_', ' ')} for {self.patience} "
                            f"epochs: stopped at epoch {loop.epoch}")

    def on_train_end(self, loop) -> None:
        if not self.restore_best or self.best_weights is None or loop.stopped in (
                "interrupted", "non-finite"):
            return
        loop.model.load_state_dict(self.best_weights)
        note = f"best epoch {self.best_epoch} restored" if self.best_epoch != loop.epoch \
            else f"the last epoch, {loop.epoch}, was the best"
        loop.message = f"{loop.message}, {note}" if loop.message else \
            f"training ended at epoch {loop.epoch}; {note}"
        loop.history.best_epoch = self.best_epoch

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch,
                "best_weights": self.best_weights}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = float(state["best"]), state["best_epoch"]
        weights = state["best_weights"]
        self.best_weights = None if weights is None else {
            k: np.array(v) for k, v in weights.items()}


class ProgressBar(Callback):
    """A tqdm bar over all the run's steps, with the running loss, accuracy and lr."""

    def __init__(self):
        self.bar = None

    def on_train_begin(self, loop) -> None:
        epochs = loop.epochs - loop.start_epoch
        if epochs > 0:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=epochs * len(loop.loader), unit="step", dynamic_ncols=True,
                            leave=False)

    def on_batch_end(self, loop) -> None:
        if self.bar is not None:
            self.bar.update(1)
            seen = max(loop.seen, 1)
            self.bar.set_postfix(epoch=loop.epoch, loss=f"{loop.loss_sum / seen:.4f}",
                                 acc=f"{loop.correct / seen:.3f}",
                                 lr=f"{loop.optimizer.param_groups[0]['lr']:.3g}",
                                 refresh=False)

    def on_train_end(self, loop) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
