"""What a training run is: its options, how the ones the user left out are filled in (the
dataset's recipe, then the defaults), and how they are checked.

A run saves its config with every value resolved, so a run folder says exactly how it was made
and `--resume` needs no option repeated.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .. import registry

ACTIVATIONS = ("relu", "tanh", "sigmoid")
CLASS_WEIGHTS = ("none", "inverse", "effective")


@dataclass
class TrainConfig:
    """A run's options. None means "not given": `resolved()` fills it from the recipe."""

    data: str = "digits"
    label_column: str | None = None
    model: str = "mlp"  # mlp, or cnn (its architecture comes from the dataset's recipe)
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    activation: str = "relu"
    loss: str = "cross-entropy"
    label_smoothing: float = 0.0
    class_weights: str = "none"
    beta: float = 0.999
    balanced_sampling: bool = False
    gamma: float = 2.0
    optimizer: str | None = None
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    schedule: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    validation_fraction: float | None = None
    early_stopping: int | None = None
    clip_grad: float | None = None
    seed: int = 0
    threads: int | None = None  # BLAS threads; None: chosen by model size (see blas.py)
    compile: bool = True  # steps run as retrograd.compile'd steps (the same results, faster)

    def resolved(self) -> TrainConfig:
        """A copy with every recipe option filled: the user's value, else the dataset's recipe,
        else (lr only) the optimizer's default; a user-chosen optimizer without --lr takes its
        own default learning rate, not the recipe's."""
        _, recipe = registry.recipe_for(self.data, self.model)
        values = dataclasses.asdict(self)
        for key, value in recipe.items():
            if values[key] is None and not (key == "lr" and self.optimizer is not None
                                            and self.optimizer != recipe["optimizer"]):
                values[key] = value
        if self.early_stopping is not None and self.validation_fraction is None and \
                not values["validation_fraction"]:
            # early stopping needs a validation split, which some recipes leave out
            values["validation_fraction"] = registry.GENERIC_RECIPE["validation_fraction"]
        if values["lr"] is None and values["optimizer"] in registry.OPTIMIZERS:
            values["lr"] = registry.OPTIMIZERS[values["optimizer"]].default_lr
        return TrainConfig(**values)

    def recipe_line(self) -> str:
        """One line naming the recipe and the values it supplied (for the start of a run)."""
        name, recipe = registry.recipe_for(self.data, self.model)
        taken = [k for k in recipe if getattr(self, k) is None]
        if not taken:
            return ""
        full = self.resolved()
        parts = ", ".join(f"{k.replace('_', '-')} {getattr(full, k)}" for k in recipe
                          if k in taken or k == "lr" and self.lr is None)
        return f"{name} recipe: {parts} (options you give override it)"

    def validate(self) -> None:
        """ValueError naming the first bad option (call on the resolved config)."""
        _choice("model", self.model, registry.MODELS)
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("loss", self.loss, registry.LOSSES)
        _choice("class-weights", self.class_weights, CLASS_WEIGHTS)
        _choice("optimizer", self.optimizer, registry.OPTIMIZERS)
        _choice("schedule", self.schedule, registry.SCHEDULES)
        if not self.hidden or any(not _is_int(h) or h <= 0 for h in self.hidden):
            raise ValueError(f"--hidden: layer sizes must be positive integers, got "
                             f"{self.hidden}")
        _in_range("lr", self.lr, low=0.0, low_open=True)
        _in_range("label-smoothing", self.label_smoothing, 0.0, 1.0)
        if self.loss == "focal" and self.label_smoothing:
            raise ValueError("--label-smoothing applies to the cross-entropy and mse losses, "
                             "not 'focal'")
        _in_range("gamma", self.gamma, low=0.0)
        _in_range("beta", self.beta, 0.0, 1.0, high_open=True)
        _in_range("momentum", self.momentum, 0.0, 1.0, high_open=True)
        _in_range("weight-decay", self.weight_decay, low=0.0)
        for name in ("epochs", "batch_size"):
            _positive_int(name, getattr(self, name))
        _in_range("validation-fraction", self.validation_fraction, 0.0, 0.5, high_open=True)
        if self.early_stopping is not None:
            _positive_int("early_stopping", self.early_stopping)
            if self.validation_fraction == 0:
                raise ValueError("--early-stopping needs a validation split: "
                                 "--validation-fraction is 0")
        if self.clip_grad is not None:
            _in_range("clip-grad", self.clip_grad, low=0.0, low_open=True)
        if not _is_int(self.seed) or not 0 <= self.seed < 2 ** 32:
            raise ValueError(f"--seed must be an integer in [0, 2^32), got {self.seed}")
        if self.threads is not None:
            _positive_int("threads", self.threads)
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be true or false, got {self.compile!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Options that may change when a run is resumed: --epochs extends (or, up to the epochs already
# done, shortens) the run; --threads and --no-compile change the speed, never the result.
RESUMABLE_CHANGES = ("epochs", "threads", "compile")


def differences(saved: dict, given: dict) -> list[str]:
    """'--name saved -> given' for every option given on the command line that differs from the
    saved run's (except those a resume may change)."""
    out = []
    for key, value in given.items():
        if key in RESUMABLE_CHANGES or key not in saved:
            continue
        if _normalized(saved[key]) != _normalized(value):
            out.append(f"--{key.replace('_', '-')} {_show(saved[key])} -> {_show(value)}")
    return out


def _normalized(value):
    return list(value) if isinstance(value, tuple) else value


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return "(none)" if value is None else str(value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"--{name}: unknown value {value!r} (choose from "
                         f"{', '.join(allowed)})")


def _positive_int(name: str, value) -> None:
    if not _is_int(value) or value <= 0:
        raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")


def _in_range(name: str, value, low: float | None = None, high: float | None = None,
              low_open: bool = False, high_open: bool = False) -> None:
    """ValueError unless value is a finite number within the bounds."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
        where = (f"in {lo}, {hi}" if low is not None and high is not None
                 else f"{'>' if low_open else '>='} {low:g}" if low is not None
                 else f"{'<' if high_open else '<='} {high:g}")
        raise ValueError(f"--{name} must be a finite number {where}, got {value}")
