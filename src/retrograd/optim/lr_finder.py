"""The learning-rate range test (Smith 2017, "Cyclical learning rates"): train briefly while the
learning rate grows exponentially from start_lr to end_lr, record the loss, and stop when it
explodes. The course's "too small is slow, too large diverges", measured in one short run."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from .optimizer import Optimizer
from .sgd import SGD


@dataclass
class LRFinderResult:
    lrs: list[float]
    losses: list[float]  # exponentially smoothed
    suggestion: float | None  # lr at the steepest descent of the smoothed loss

    def __iter__(self):
        return iter((self.lrs, self.losses, self.suggestion))


def find_lr(model, loss_fn, loader, optimizer: Optimizer | None = None, start_lr: float = 1e-7,
            end_lr: float = 10.0, num_iter: int = 100, smooth_f: float = 0.05,
            diverge_th: float = 5.0) -> LRFinderResult:
    """Run the range test; the model and the optimizer are restored afterwards.

    loader yields (inputs, targets) batches (cycled if shorter than num_iter); loss_fn(outputs,
    targets) returns a scalar; optimizer defaults to SGD with momentum 0.9. Stops early once the
    smoothed loss exceeds diverge_th times its best value or is not finite.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    if num_iter < 2:
        raise ValueError(f"num_iter must be at least 2, got {num_iter}")
    if not 0 < smooth_f <= 1:
        raise ValueError(f"smooth_f must be in (0, 1], got {smooth_f}")
    params = list(model.parameters())
    optimizer = optimizer or SGD(params, lr=start_lr, momentum=0.9)
    saved_model = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    saved_opt = copy.deepcopy(optimizer.state_dict())
    lrs, losses = [], []
    best = np.inf
    batches = iter(loader)
    try:
        for i in range(num_iter):
            try:
                x, y = next(batches)
            except StopIteration:
                batches = iter(loader)
                x, y = next(batches)
            lr = start_lr * (end_lr / start_lr) ** (i / (num_iter - 1))
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            value = float(loss.item())
            smoothed = value if not losses else smooth_f * value + (1 - smooth_f) * losses[-1]
            lrs.append(lr)
            losses.append(smoothed)
            if not np.isfinite(smoothed) or smoothed > diverge_th * best:
                break
            best = min(best, smoothed)
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_opt)
    return LRFinderResult(lrs, losses, _steepest(lrs, losses))


def _steepest(lrs: list[float], losses: list[float]) -> float | None:
    """The lr where the smoothed loss falls fastest per unit of log lr (finite points only)."""
    finite = [(lr, loss) for lr, loss in zip(lrs, losses, strict=True) if np.isfinite(loss)]
    if len(finite) < 3:
        return None
    log_lr = np.log([lr for lr, _ in finite])
    slope = np.gradient(np.array([loss for _, loss in finite]), log_lr)
    return float(finite[int(np.argmin(slope))][0])
