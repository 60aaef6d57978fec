"""retrograd.optim: optimizers with torch.optim's names, signatures and update rules."""

from . import lr_scheduler
from .adam import Adam, AdamW
from .lbfgs import LBFGS
from .lr_finder import LRFinderResult, find_lr
from .newton_cg import NewtonCG
from .optimizer import Optimizer
from .rmsprop import Adadelta, Adagrad, RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adadelta", "Adagrad", "LBFGS",
           "NewtonCG", "lr_scheduler", "find_lr", "LRFinderResult"]
