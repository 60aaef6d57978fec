"""The training loop: epochs of mini-batch steps with a progress bar, validation, early
stopping, gradient clipping, a learning-rate schedule, and a guard against NaN / inf losses
that stops with advice and keeps the last good weights."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..grad_mode import no_grad
from ..nn.utils import clip_grad_norm_
from ..optim.lr_scheduler import ReduceLROnPlateau
from ..tensor import Tensor, _wrap


@dataclass
class History:
    """One dict per finished epoch (epoch, train_loss, train_accuracy, val_loss,
    val_accuracy, lr, seconds) and why training stopped."""

    epochs: list[dict] = field(default_factory=list)
    stopped: str = "completed"  # completed | early-stopping | non-finite-loss | interrupted
    message: str = ""
    best_epoch: int | None = None

    def column(self, key: str) -> list:
        return [e.get(key) for e in self.epochs]


def evaluate(model, loss_fn: Callable, x: np.ndarray, y: np.ndarray,
             batch_size: int = 1024) -> tuple[float, float, np.ndarray]:
    """(mean loss, accuracy, logits) of the model on (x, y), in eval mode, without a graph."""
    was_training = model.training
    model.eval()
    logits, total = [], 0.0
    with no_grad():
        for start in range(0, len(x), batch_size):
            xb, yb = _wrap(x[start:start + batch_size]), _wrap(y[start:start + batch_size])
            out = model(xb)
            total += float(loss_fn(out, yb).item()) * len(xb)
            logits.append(out.numpy())
    model.train(was_training)
    logits = np.concatenate(logits) if logits else np.zeros((0, 0))
    accuracy = float(np.mean(logits.argmax(axis=1) == y)) if len(y) else float("nan")
    return total / max(len(x), 1), accuracy, logits


def fit(model, loss_fn: Callable, optimizer, train_loader, epochs: int, *,
        validation: tuple[np.ndarray, np.ndarray] | None = None, scheduler=None,
        early_stopping: int | None = None, clip_grad_norm: float | None = None,
        progress: bool = True, history: History | None = None, start_epoch: int = 0,
        on_epoch_end: Callable | None = None) -> History:
    """Train for epochs start_epoch+1 .. epochs; returns the History.

    validation (x, y) is evaluated after every epoch; with early_stopping=k, training stops
    after k epochs without a lower validation loss and the best weights are restored.
    on_epoch_end(epoch, history) runs after each epoch (checkpoints). A NaN or infinite loss
    stops training with a message and restores the weights of the last finished epoch.
    KeyboardInterrupt stops after the current step (stopped="interrupted").
    """
    history = history or History()
    params = list(model.parameters())
    last_good = _snapshot(model)
    best = (math.inf, None)
    if history.best_epoch is not None:
        best = (min(e["val_loss"] for e in history.epochs if e.get("val_loss") is not None),
                None)
    bar = _progress(progress, epochs - start_epoch, len(train_loader))
    try:
        for epoch in range(start_epoch + 1, epochs + 1):
            t0 = time.perf_counter()
            model.train()
            seen = loss_sum = correct = 0
            for step, (xb, yb) in enumerate(train_loader, start=1):
                out = model(xb)
                loss = loss_fn(out, yb)
                value = float(loss.item())
                if not math.isfinite(value):
                    _restore(model, last_good)
                    history.stopped = "non-finite-loss"
                    history.message = (
                        f"the loss became {value} at epoch {epoch}, step {step}: training "
                        f"stopped and the weights of epoch {epoch - 1} were kept; try a lower "
                        f"learning rate (now {optimizer.param_groups[0]['lr']:g})")
                    return history
                optimizer.zero_grad()
                loss.backward()
                if clip_grad_norm is not None:
                    clip_grad_norm_(params, clip_grad_norm)
                optimizer.step()
                n = len(yb)
                seen += n
                loss_sum += value * n
                correct += _correct(out, yb)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch, loss=f"{loss_sum / seen:.4f}",
                                    acc=f"{correct / seen:.3f}",
                                    lr=f"{optimizer.param_groups[0]['lr']:.3g}", refresh=False)
            record = {"epoch": epoch, "train_loss": loss_sum / max(seen, 1),
                      "train_accuracy": correct / max(seen, 1),
                      "lr": optimizer.param_groups[0]["lr"]}
            if validation is not None:
                record["val_loss"], record["val_accuracy"], _ = evaluate(model, loss_fn,
                                                                         *validation)
            if scheduler is not None:
                if isinstance(scheduler, ReduceLROnPlateau):
                    scheduler.step(record.get("val_loss", record["train_loss"]))
                else:
                    scheduler.step()
            record["seconds"] = time.perf_counter() - t0
            # the epoch's record, its snapshot and its checkpoint land together or not at all
            with _interrupt_deferred():
                history.epochs.append(record)
                last_good = _snapshot(model)
                stop = False
                if early_stopping is not None and validation is not None:
                    if record["val_loss"] < best[0]:
                        best = (record["val_loss"], last_good)
                        history.best_epoch = epoch
                    elif history.best_epoch is not None and epoch - history.best_epoch >= \
                            early_stopping:
                        stop = True
                if on_epoch_end is not None:
                    on_epoch_end(epoch, history)
            if stop:
                if best[1] is not None:
                    _restore(model, best[1])
                history.stopped = "early-stopping"
                history.message = (f"no lower validation loss for {early_stopping} epochs: "
                                   f"stopped at epoch {epoch}, best epoch "
                                   f"{history.best_epoch} restored")
                return history
    except KeyboardInterrupt:
        history.stopped = "interrupted"
        history.message = "interrupted: the weights of the last finished epoch are kept"
        _restore(model, last_good)
    finally:
        if bar is not None:
            bar.close()
    return history


@contextlib.contextmanager
def _interrupt_deferred():
    """Hold a Ctrl-C (SIGINT) that arrives inside the block and raise it when the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are delivered to the main thread only
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else
                      signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt


def _correct(out: Tensor, y: Tensor) -> int:
    logits = out.numpy()
    if logits.ndim != 2:
        return 0
    return int(np.sum(logits.argmax(axis=1) == y.numpy()))


def _snapshot(model) -> dict:
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def _restore(model, snapshot: dict) -> None:
    model.load_state_dict(snapshot)


def _progress(enabled: bool, epochs: int, steps: int):
    if not enabled or epochs <= 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=epochs * steps, unit="step", dynamic_ncols=True, leave=False)
