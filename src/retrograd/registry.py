"""The names the command line and the scikit-learn estimator share: losses, optimizers,
learning-rate schedules, and the per-dataset training recipes.

One table per kind, so `retrograd train --loss mse` and `MLPClassifier(loss='mse')` are the same
function, and adding an optimizer here adds it to both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import optim
from .nn import functional as F
from .targets import one_hot, smooth
from .tensor import Tensor

# ---------------------------------------------------------------------------------------------
# losses: f(logits, labels, *, weight=None, label_smoothing=0, gamma=2, reduction="mean")
# `weight` holds per-class weights; 'mean' divides by the summed weight of the batch's samples,
# as torch's weighted cross-entropy does.


def _cross_entropy(out: Tensor, y, *, weight=None, label_smoothing: float = 0.0,
                   gamma: float = 2.0, reduction: str = "mean") -> Tensor:
    return F.cross_entropy(out, y, weight=weight, label_smoothing=label_smoothing,
                           reduction=reduction)


def _focal(out: Tensor, y, *, weight=None, label_smoothing: float = 0.0, gamma: float = 2.0,
           reduction: str = "mean") -> Tensor:
    if label_smoothing:
        raise ValueError("label smoothing applies to the cross-entropy and mse losses, not focal")
    return F.focal_loss(out, y, gamma=gamma, weight=weight, reduction=reduction)


def softmax_mse(out: Tensor, y, *, weight=None, label_smoothing: float = 0.0,
                gamma: float = 2.0, reduction: str = "mean") -> Tensor:
    """The course's squared error on the softmax output, sum_c (p_c - t_c)^2 per sample, with
    t the one-hot (optionally smoothed) target of label y."""
    labels = y.numpy() if isinstance(y, Tensor) else y
    target = one_hot(labels, out.shape[1], dtype=out.dtype)
    if label_smoothing:
        target = smooth(target, label_smoothing)
    per_sample = ((out.softmax(1) - target) ** 2).sum(1)
    if weight is not None:
        w = (weight.numpy() if isinstance(weight, Tensor) else weight)[labels]
        w = w.astype(out.dtype, copy=False)
        per_sample = per_sample * w
        if reduction == "mean":
            return per_sample.sum() / float(w.sum())
    if reduction == "none":
        return per_sample
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


LOSSES: dict[str, Callable[..., Tensor]] = {
    "cross-entropy": _cross_entropy,
    "focal": _focal,
    "mse": softmax_mse,
}

# ---------------------------------------------------------------------------------------------
# optimizers: name -> (class, default learning rate); options a class does not take are dropped


@dataclass(frozen=True)
class OptimizerEntry:
    cls: type
    default_lr: float
    options: tuple[str, ...]  # the training options it takes (momentum, weight_decay)


OPTIMIZERS: dict[str, OptimizerEntry] = {
    "sgd": OptimizerEntry(optim.SGD, 0.05, ("momentum", "weight_decay")),
    "adam": OptimizerEntry(optim.Adam, 1e-3, ("weight_decay",)),
    "adamw": OptimizerEntry(optim.AdamW, 1e-3, ("weight_decay",)),
    "rmsprop": OptimizerEntry(optim.RMSprop, 1e-3, ("momentum", "weight_decay")),
    "adadelta": OptimizerEntry(optim.Adadelta, 1.0, ("weight_decay",)),
    "adagrad": OptimizerEntry(optim.Adagrad, 1e-2, ("weight_decay",)),
    "lbfgs": OptimizerEntry(optim.LBFGS, 1.0, ()),
}


def make_optimizer(name: str, params, lr: float | None = None, **options):
    """The optimizer `name` over params; lr None takes the table's default. Options the
    optimizer does not take are ignored (the CLI's --momentum means nothing to Adam), and
    extra keyword options (betas, eps, nesterov...) go to the constructor as they are."""
    entry = OPTIMIZERS[name]
    kwargs = {k: v for k, v in options.items()
              if k in entry.options or k not in ("momentum", "weight_decay")}
    if name == "lbfgs":
        kwargs.setdefault("line_search_fn", "strong_wolfe")
    return entry.cls(params, lr=entry.default_lr if lr is None else lr, **kwargs)


# ---------------------------------------------------------------------------------------------
# learning-rate schedules, stepped once per epoch over a run of `epochs` epochs


def _step_lr(optimizer, epochs: int):
    return optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3))


def _cosine(optimizer, epochs: int):
    return optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)


def _plateau(optimizer, epochs: int):
    return optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=3)


SCHEDULES: dict[str, Callable | None] = {
    "none": None,
    "step": _step_lr,      # lr x 0.1 after each third of the run
    "cosine": _cosine,     # cosine annealing to 0 over the run
    "plateau": _plateau,   # lr x 0.1 after 3 epochs without a lower validation loss
}


def make_scheduler(name: str, optimizer, epochs: int):
    """The schedule `name` for a run of `epochs` epochs (None for 'none')."""
    factory = SCHEDULES[name]
    return None if factory is None else factory(optimizer, epochs)


# ---------------------------------------------------------------------------------------------
# recipes: the settings `retrograd train --data NAME` uses where the user says nothing. Each was
# measured over seeds 0-4 (see BENCHMARKS.md, "Recipes"); user data gets the generic one.

GENERIC_RECIPE = {"optimizer": "adam", "lr": 1e-3, "schedule": "none", "epochs": 30,
                  "weight_decay": 0.0, "batch_size": 64, "validation_fraction": 0.1}

RECIPES: dict[str, dict] = {
    # without label smoothing (no longer a default), Adam 1e-3 for 30 epochs gave 96.4-97.2%;
    # this recipe gives 97.5-98.1% on seeds 0-4 in about 1.5 s
    "digits": {"optimizer": "sgd", "lr": 0.1, "schedule": "cosine", "epochs": 60,
               "weight_decay": 1e-3, "batch_size": 32, "validation_fraction": 0.0},
    # the MNIST-1D paper's MLP reaches 68%; SGD + cosine + weight decay on the whole training
    # split reaches 71-72% on seeds 0-4 in about 4 s
    "mnist1d": {"optimizer": "sgd", "lr": 0.1, "schedule": "cosine", "epochs": 100,
                "weight_decay": 1e-3, "batch_size": 64, "validation_fraction": 0.0},
    "spirals": {**GENERIC_RECIPE, "lr": 1e-2, "epochs": 60},
    "imbalanced-spirals": {**GENERIC_RECIPE, "lr": 1e-2, "epochs": 60},
}


# --model cnn: the training settings per dataset, and the architecture (blocks of convolution,
# BatchNorm, ReLU and an optional max pool; train/architectures.py builds them)

GENERIC_CNN_RECIPE = {"optimizer": "adam", "lr": 1e-3, "schedule": "cosine", "epochs": 10,
                      "weight_decay": 0.0, "batch_size": 64, "validation_fraction": 0.1}

CNN_RECIPES: dict[str, dict] = {
    # the MNIST-1D paper's CNN (three convolutions of 25 channels, kernels 5, 3, 3, stride 2),
    # with BatchNorm after each; the paper reports 94% for it
    "mnist1d": {"optimizer": "adam", "lr": 1e-2, "schedule": "cosine", "epochs": 100,
                "weight_decay": 0.0, "batch_size": 100, "validation_fraction": 0.0},
    # lr 1e-2 reached 98.3% on seed 0, 3e-3 99.2% (bench/cnn_recipes.py measures every seed)
    "digits": {"optimizer": "adam", "lr": 3e-3, "schedule": "cosine", "epochs": 60,
               "weight_decay": 0.0, "batch_size": 64, "validation_fraction": 0.0},
}

CNN_ARCHITECTURES: dict[str, list[dict]] = {
    "mnist1d": [{"channels": 25, "kernel": 5, "stride": 2, "padding": 1},
                {"channels": 25, "kernel": 3, "stride": 2, "padding": 1},
                {"channels": 25, "kernel": 3, "stride": 2, "padding": 1}],
    "digits": [{"channels": 32, "kernel": 3, "padding": 1},
               {"channels": 32, "kernel": 3, "padding": 1, "pool": 2},
               {"channels": 64, "kernel": 3, "padding": 1, "pool": 2}],
}

MODELS = ("mlp", "cnn")


def recipe_for(data: str, model: str = "mlp") -> tuple[str, dict]:
    """(name, settings) of the recipe for a dataset and model: its own, or the generic one."""
    if model == "cnn":
        if data in CNN_RECIPES:
            return f"{data} cnn", CNN_RECIPES[data]
        return "generic cnn", GENERIC_CNN_RECIPE
    if data in RECIPES:
        return data, RECIPES[data]
    return "generic", GENERIC_RECIPE
