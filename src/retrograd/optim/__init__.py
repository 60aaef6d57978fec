"""retrograd.optim: optimizers with torch.optim's names, signatures and update rules."""

from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD"]
