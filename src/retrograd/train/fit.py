"""The training loop: THE one loop that the command line, the scikit-learn estimator and the
course all run. Epochs of mini-batch steps, validation, and callbacks (callbacks.py) for
everything else: schedules, clipping, early stopping, progress, checkpoints.

Guards that are always on: a non-finite loss or gradient stops training before the optimizer
writes it into the weights, and the weights of the last finished epoch are kept (weights that
are not finite are never snapshotted, so never checkpointed); Ctrl-C and SIGTERM stop after the
current step with those same weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from .. import backend
from ..grad_mode import no_grad
from ..tensor import Tensor, _wrap
from . import interrupts
from .callbacks import (
    Callback,
    EarlyStopping,
    GradientClipping,
    LambdaCallback,
    LRSchedule,
    ProgressBar,
)


@dataclass
class History:
    """One dict per finished epoch (epoch, train_loss, train_accuracy, val_loss,
    val_accuracy, lr, seconds) and why training stopped."""

    epochs: list[dict] = field(default_factory=list)
    # completed | early-stopping | non-finite | interrupted
    stopped: str = "completed"
    message: str = ""
    best_epoch: int | None = None
    signal: str | None = None  # SIGINT or SIGTERM when interrupted

    def column(self, key: str) -> list:
        return [e.get(key) for e in self.epochs]


def evaluate(model, loss_fn: Callable, x: np.ndarray, y: np.ndarray,
             batch_size: int = 1024) -> tuple[float, float, np.ndarray]:
    """(mean loss, accuracy, logits) of the model on (x, y), in eval mode, without a graph."""
    if len(x) == 0:
        raise ValueError("evaluate: no rows to evaluate")
    was_training = model.training
    device = next((p.device for p in model.parameters()), backend.CPU)
    model.eval()
    logits, total = [], 0.0
    with no_grad():
        for start in range(0, len(x), batch_size):
            xb, yb = _wrap(x[start:start + batch_size]), _wrap(y[start:start + batch_size])
            if device.type != "cpu":
                xb, yb = xb.to(device), yb.to(device)
            out = model(xb)
            total += float(loss_fn(out, yb).item()) * len(xb)
            logits.append(out.cpu().numpy())
    model.train(was_training)
    logits = np.concatenate(logits)
    accuracy = float(np.mean(logits.argmax(axis=1) == y))
    return total / len(x), accuracy, logits


class Loop:
    """Where training is; what every callback hook receives."""

    def __init__(self, model, loss_fn, optimizer, loader, epochs, start_epoch, history,
                 callbacks, collective=None):
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.collective = collective  # train/collective.py under MPI, else None
        self.loader, self.epochs, self.start_epoch = loader, epochs, start_epoch
        self.history, self.callbacks = history, callbacks
        self.params = [p for p in model.parameters() if p.requires_grad]
        device = self.params[0].device if self.params else None
        self.device = device if device is not None and device.type != "cpu" else None
        self.epoch = start_epoch
        self.step = 0  # optimizer steps in this call
        self.batch = self.out = self.loss = None
        self.loss_value = math.nan
        self.seen = 0
        self.loss_sum = 0.0
        self.correct = 0
        self.record: dict = {}
        self.skip_batch = False
        self.stop: str | None = None  # set by a callback (or the guards) to end training
        self.stopped = "completed"
        self.message = ""
        self.last_good = self.snapshot()
        self._zeros: dict = {}
        self.compiled = None  # see use_compile

    def use_compile(self) -> None:
        """Run forward, loss, zero_grad and backward as a compiled step (retrograd.compile):
        the same results bit for bit, without the graph bookkeeping. Quietly eager where it
        does not apply (a loss that reads values into Python, a model with data-dependent
        branches): the step then falls back without a warning."""
        from ..compiled import CompiledFunction

        model, loss_fn, optimizer = self.model, self.loss_fn, self.optimizer

        def forward_backward(x, *targets):
            out = model(x)
            loss = loss_fn(out, *targets)
            optimizer.zero_grad()
            loss.backward()
            return out, loss

        self.compiled = CompiledFunction(forward_backward, quiet=True)

    def snapshot(self) -> dict[str, np.ndarray]:
        """A copy of the model's state (parameters and buffers)."""
        return {k: v.cpu().numpy().copy() for k, v in self.model.state_dict().items()}

    def restore_last_good(self) -> None:
        self.model.load_state_dict(self.last_good)

    def all_finite(self, arrays: Iterable[np.ndarray]) -> bool:
        """Whether every element of every array is finite: one BLAS dot with zeros per array
        (0 * x is 0 for finite x and NaN for inf or NaN; it cannot overflow like a sum of
        squares, and it reads each array once)."""
        total = 0.0
        with np.errstate(invalid="ignore"):
            for a in arrays:
                flat = a.ravel(order="K")  # a view of a contiguous array in either order
                zeros = self._zeros.get(a.dtype)
                if zeros is None or zeros.size < flat.size:
                    zeros = self._zeros[a.dtype] = np.zeros(flat.size, a.dtype)
                total += float(np.dot(flat, zeros[:flat.size]))
        return total == 0.0

    def hook(self, name: str) -> None:
        """Call every callback's `name` hook with this loop."""
        for callback in self.callbacks:
            getattr(callback, name)(self)

    def _halt(self, reason: str, message: str) -> None:
        """Stop now with the weights of the last finished epoch."""
        self.restore_last_good()
        self.stopped, self.message = reason, message

    def halt_on_loss(self, step: int, value: float) -> None:
        self._halt("non-finite", f"the loss became {value} at epoch {self.epoch}, step {step}: "
                   f"training stopped and {self._kept()}; try a lower learning rate (now "
                   f"{self.optimizer.param_groups[0]['lr']:g})")

    def halt_on_gradient(self, step: int, value: float) -> None:
        self._halt("non-finite", f"a gradient became NaN or infinite at epoch {self.epoch}, "
                   f"step {step} (the loss was finite, {value:.6g}): training stopped before "
                   f"the update and {self._kept()}")

    def gradients_finite(self) -> bool:
        grads = [p.grad._data for p in self.params if p.grad is not None]
        if self.device is not None:  # off the host: a reduction there, no copy to the host
            return all(bool(backend.of(g).isfinite(g).all()) for g in grads)
        return self.all_finite(grads)

    def _kept(self) -> str:
        done = self.epoch - 1
        return f"the weights of epoch {done} were kept" if done > 0 else \
            "the initial weights were kept (no epoch finished)"

    def run(self, validation, check_finite: bool, max_steps: int | None) -> None:
        if self.collective is None:
            self._run(validation, check_finite, max_steps)
            return
        # under MPI a signal must not raise where it lands (interrupts.py): the ranks agree
        with interrupts.stop_requests():
            self._run(validation, check_finite, max_steps)

    def _run(self, validation, check_finite: bool, max_steps: int | None) -> None:
        self.hook("on_train_begin")
        try:
            for epoch in range(self.start_epoch + 1, self.epochs + 1):
                self.epoch = epoch
                if not self._run_epoch(check_finite, max_steps):
                    return  # halted by a guard: no record for this epoch
                self._end_epoch(validation)
                if self.collective is not None:
                    self.collective.end_epoch()  # a stop request on any rank: all raise
                if self.stop is not None:
                    if self.stop != "max-steps":
                        self.stopped = self.stop
                    return
        except KeyboardInterrupt as exc:
            self.restore_last_good()
            self.stopped = "interrupted"
            self.history.signal = "SIGTERM" if isinstance(exc, interrupts.Terminated) \
                else "SIGINT"
            self.message = (f"interrupted ({self.history.signal}): "
                            f"{self._kept().replace('were kept', 'are kept')}")
        finally:
            self.hook("on_train_end")

    def _run_epoch(self, check_finite: bool, max_steps: int | None) -> bool:
        """One epoch of steps; False when a guard halted training."""
        self.model.train()
        self.hook("on_epoch_begin")
        self.seen, self.loss_sum, self.correct = 0, 0.0, 0
        self._t0 = time.perf_counter()
        for step, batch in enumerate(self.loader, start=1):
            self.batch, self.skip_batch = batch, False
            self.hook("on_batch_begin")
            if self.collective is not None:
                # every rank takes every step; decisions on global sums (collective.py)
                stepped = self.collective.step(self, step, check_finite)
                if stepped is False:
                    return False
                if stepped is None:
                    continue
            else:
                if self.skip_batch:
                    continue
                if self.device is not None:  # the model is off the host: batches follow it
                    batch = tuple(t.to(self.device) if isinstance(t, Tensor) else t
                                  for t in batch)
                x, *targets = batch
                if self.compiled is not None:
                    # forward, loss, zero_grad and backward as one captured step (compile.py);
                    # a non-finite loss still halts before the optimizer writes the weights
                    self.out, self.loss = out, loss = self.compiled(x, *targets)
                    self.loss_value = value = float(loss.item())
                    if not math.isfinite(value):
                        self.halt_on_loss(step, value)
                        return False
                else:
                    self.out = out = self.model(x)
                    self.loss = loss = self.loss_fn(out, *targets)
                    self.loss_value = value = float(loss.item())
                    if not math.isfinite(value):
                        self.halt_on_loss(step, value)
                        return False
                    self.optimizer.zero_grad()
                    loss.backward()
                self.hook("on_after_backward")
                if check_finite and not self.gradients_finite():
                    self.halt_on_gradient(step, value)
                    return False
                self.optimizer.step()
                n = len(targets[0]) if targets else len(x)
                self.seen += n
                self.loss_sum += value * n
                if targets:
                    self.correct += _correct(out, targets[0])
            self.step += 1
            self.hook("on_batch_end")
            if max_steps is not None and self.step >= max_steps:
                self.stop = "max-steps"
                break
        return True

    def _end_epoch(self, validation) -> None:
        seen = max(self.seen, 1)
        record = self.record = {"epoch": self.epoch, "train_loss": self.loss_sum / seen,
                                "train_accuracy": self.correct / seen,
                                "lr": self.optimizer.param_groups[0]["lr"]}
        if validation is not None:
            record["val_loss"], record["val_accuracy"], _ = evaluate(
                self.model, self.loss_fn, *validation)
        record["seconds"] = time.perf_counter() - self._t0
        # the epoch's record, its snapshot, its callbacks (a checkpoint) land together or not
        with interrupts.deferred():
            if not self.all_finite(p.cpu().numpy() for p in self.params):
                self._halt("non-finite", f"the weights became NaN or infinite during epoch "
                           f"{self.epoch}: training stopped and {self._kept()}")
                self.stop = "non-finite"
                return
            self.history.epochs.append(record)
            self.last_good = self.snapshot()
            self.hook("on_epoch_end")


def fit(model, loss_fn: Callable, optimizer, train_loader, epochs: int, *,
        validation: tuple[np.ndarray, np.ndarray] | None = None, scheduler=None,
        early_stopping: int | EarlyStopping | None = None, clip_grad_norm: float | None = None,
        progress: bool = True, history: History | None = None, start_epoch: int = 0,
        callbacks: Iterable[Callback] = (), on_epoch_end: Callable | None = None,
        max_steps: int | None = None, check_finite: bool = True,
        distributed: bool | None = None, compile: bool = True) -> History:  # noqa: A002
    """Train for epochs start_epoch+1 .. epochs (or max_steps optimizer steps); returns the
    History.

    Each batch is (x, *targets) and its loss is loss_fn(model(x), *targets). validation (x, y)
    is evaluated after every epoch. early_stopping (a patience, or an EarlyStopping) stops after
    that many epochs without a lower validation loss and ends with the best weights.
    on_epoch_end(epoch, history) runs after each epoch (checkpoints). check_finite: a non-finite
    gradient stops training like a non-finite loss (one BLAS pass over the gradients per step).

    Under `mpiexec -n N` (distributed None or True; False trains each rank alone) every rank
    runs this same call: a DataLoader's global batches are sharded over the ranks, the
    optimizer averages the gradients weighted by rows (the single process's gradient), rank
    0's weights are broadcast first, and every decision (non-finite values, early stopping,
    Ctrl-C) is taken by all ranks together; the progress bar is rank 0's. See
    docs/distributed.md.

    compile: run each step's forward, loss and backward as a compiled step
    (retrograd.compile; single process only): the same results bit for bit, faster. False runs
    them eagerly (`retrograd train --no-compile`).
    """
    from .collective import distribute

    optimizer, train_loader, collective = distribute(model, optimizer, train_loader,
                                                     distributed)
    if collective is not None and progress:
        from ..distributed import get_rank

        progress = get_rank() == 0
    history = history if history is not None else History()
    built: list[Callback] = []
    if clip_grad_norm is not None:
        built.append(GradientClipping(clip_grad_norm))
    if scheduler is not None:
        built.append(LRSchedule(scheduler))
    if early_stopping is not None:
        if validation is None:
            raise ValueError("early stopping needs a validation split")
        built.append(early_stopping if isinstance(early_stopping, EarlyStopping)
                     else EarlyStopping(early_stopping))
    if progress:
        built.append(ProgressBar())
    built += list(callbacks)
    if on_epoch_end is not None:
        built.append(LambdaCallback(
            on_epoch_end=lambda loop: on_epoch_end(loop.epoch, loop.history)))
    loop = Loop(model, loss_fn, optimizer, train_loader, epochs, start_epoch, history, built,
                collective)
    if compile and collective is None:
        loop.use_compile()
    loop.run(validation, check_finite, max_steps)
    history.stopped, history.message = loop.stopped, loop.message
    return history


def _correct(out: Tensor, y) -> int:
    logits = out.cpu().numpy()
    labels = y.cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)
    if logits.ndim != 2 or labels.ndim != 1 or labels.dtype.kind not in "iu":
        return 0
    return int(np.count_nonzero(logits.argmax(axis=1) == labels))
