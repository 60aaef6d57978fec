"""The main job: train an MLP classifier from a configuration and write everything a user keeps
(metrics.json, history.csv, model.safetensors + model.json, checkpoint.npz, figures).

Everything that can be wrong with the configuration or the data is found before the first file
is written, and raised as ValueError (DataError for data) with the bad value in the message.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .. import data as D
from .. import nn, optim
from .. import random as _random
from ..nn import functional as F
from ..targets import effective_number_weights, inverse_frequency_weights
from ..tensor import _wrap
from . import checkpoint as ckpt
from . import metrics, plots
from .fit import History, evaluate, fit

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
LOSSES = ("cross-entropy", "focal", "mse")
CLASS_WEIGHTS = ("none", "inverse", "effective")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adadelta", "adagrad", "lbfgs")
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3, "adadelta": 1.0,
              "adagrad": 1e-2, "lbfgs": 1.0}
SCHEDULES = ("none", "step", "cosine", "plateau")


@dataclass
class TrainConfig:
    data: str = "digits"
    label_column: str | None = None
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    activation: str = "relu"
    loss: str = "cross-entropy"
    # None: 0.1 for cross-entropy (the course's advice: on digits it lifts test accuracy by about
    # a point), 0 for the other losses
    label_smoothing: float | None = None
    class_weights: str = "none"
    beta: float = 0.999
    balanced_sampling: bool = False
    gamma: float = 2.0
    optimizer: str = "adam"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "none"
    epochs: int = 30
    batch_size: int = 64
    validation_fraction: float = 0.1
    early_stopping: int | None = None
    clip_grad: float | None = None
    seed: int = 0
    out: str | None = None
    progress: bool = True

    def validate(self) -> None:
        """ValueError naming the first bad option."""
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("loss", self.loss, LOSSES)
        _choice("class-weights", self.class_weights, CLASS_WEIGHTS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        if not self.hidden or any(not isinstance(h, int) or h <= 0 for h in self.hidden):
            raise ValueError(f"--hidden: layer sizes must be positive integers, got "
                             f"{self.hidden}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if self.label_smoothing is not None and not 0.0 <= self.label_smoothing <= 1.0:
            raise ValueError(f"--label-smoothing must be in [0, 1], got {self.label_smoothing}")
        if self.loss != "cross-entropy" and self.label_smoothing:
            raise ValueError(f"--label-smoothing applies to the cross-entropy loss, not "
                             f"{self.loss!r}")
        if not self.gamma >= 0:
            raise ValueError(f"--gamma must be >= 0, got {self.gamma}")
        if not 0.0 <= self.beta < 1.0:
            raise ValueError(f"--beta must be in [0, 1), got {self.beta}")
        for name in ("momentum", "weight_decay"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got "
                                 f"{getattr(self, name)}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got "
                                 f"{value}")
        if not 0.0 <= self.validation_fraction < 0.5:
            raise ValueError(f"--validation-fraction must be in [0, 0.5), got "
                             f"{self.validation_fraction}")
        if self.validation_fraction == 0 and self.early_stopping is not None:
            raise ValueError("--early-stopping needs a validation split: "
                             "--validation-fraction is 0")
        if self.early_stopping is not None and self.early_stopping <= 0:
            raise ValueError(f"--early-stopping must be a positive number of epochs, got "
                             f"{self.early_stopping}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise ValueError(f"--clip-grad must be > 0, got {self.clip_grad}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"--seed must be a non-negative integer, got {self.seed}")

    @property
    def smoothing(self) -> float:
        if self.label_smoothing is not None:
            return self.label_smoothing
        return 0.1 if self.loss == "cross-entropy" else 0.0

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _choice(name: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"--{name}: unknown value {value!r} (choose from "
                         f"{', '.join(allowed)})")


# ----------------------------------------------------------------------------------------------
# building blocks


def build_mlp(n_features: int, hidden: list[int], n_classes: int, activation: str = "relu"):
    """Dense -> activation -> ... -> Dense, keys "0.weight", "2.weight"... as torch's."""
    layers, width = [], n_features
    for h in hidden:
        layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def make_loss(config: TrainConfig, y_train: np.ndarray, n_classes: int):
    """loss_fn(logits, labels) for the configured loss and class weights."""
    weight = None
    if config.class_weights == "inverse":
        weight = inverse_frequency_weights(y_train, n_classes)
    elif config.class_weights == "effective":
        weight = effective_number_weights(y_train, n_classes, config.beta)
    if config.loss == "focal":
        return lambda out, y: F.focal_loss(out, y, gamma=config.gamma, weight=weight)
    if config.loss == "mse":
        def mse(out, y):  # the course's exercise: squared error between softmax and one-hot
            target = np.eye(n_classes, dtype=out.dtype)[y.numpy()]
            err = (out.softmax(1) - target) ** 2
            if weight is not None:
                err = err * np.asarray(weight.numpy()[y.numpy()], dtype=out.dtype)[:, None]
            return err.sum(1).mean()
        return mse
    return lambda out, y: F.cross_entropy(out, y, weight=weight,
                                          label_smoothing=config.smoothing)


def make_optimizer(config: TrainConfig, params):
    lr, wd = config.learning_rate, config.weight_decay
    if config.optimizer == "sgd":
        return optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    if config.optimizer == "lbfgs":
        return optim.LBFGS(params, lr=lr, line_search_fn="strong_wolfe")
    cls = {"adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop,
           "adadelta": optim.Adadelta, "adagrad": optim.Adagrad}[config.optimizer]
    return cls(params, lr=lr, weight_decay=wd)


def make_scheduler(config: TrainConfig, optimizer):
    if config.schedule == "step":
        return optim.lr_scheduler.StepLR(optimizer, step_size=max(1, config.epochs // 3))
    if config.schedule == "cosine":
        return optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "plateau":
        return optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=3)
    return None


class _LBFGSStep:
    """Adapts LBFGS (which needs a closure) to the training loop's zero_grad/backward/step."""

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

    def state_dict(self):
        return self.optimizer.state_dict()

    def load_state_dict(self, state):
        self.optimizer.load_state_dict(state)


# ----------------------------------------------------------------------------------------------
# output folder


def default_out(data_name: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", f"{data_name}-{stamp}")


def check_writable(folder: str) -> None:
    """ValueError unless `folder` exists as a writable folder or can be created."""
    path = os.path.abspath(folder)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ValueError(f"--out: {folder} exists and is not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"--out: the folder {folder} is not writable")
        return
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out: cannot create {folder} ({parent} is not a writable folder)")


# ----------------------------------------------------------------------------------------------
# the job


@dataclass
class Prepared:
    config: TrainConfig
    split: D.Split
    standardizer: D.Standardizer
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None  # None: --validation-fraction 0, every training sample is used
    y_val: np.ndarray | None
    out: str

    @property
    def validation(self) -> tuple[np.ndarray, np.ndarray] | None:
        return None if self.x_val is None else (self.x_val, self.y_val)


def prepare(config: TrainConfig, resume: bool = False) -> Prepared:
    """Validate, load and split the data, check the output folder: everything that can fail
    on bad input, before anything is written."""
    config.validate()
    split = D.load(config.data, config.label_column)
    out = config.out or default_out(split.name)
    check_writable(out)
    if resume and not os.path.exists(os.path.join(out, "checkpoint.npz")):
        raise ValueError(f"--resume: no checkpoint.npz in {out}")
    if len(np.unique(split.y_train)) < 2:
        raise ValueError(f"{config.data}: the training data has a single class")
    if config.validation_fraction:
        x_tr, y_tr, x_val, y_val = D.datasets.stratified_split(
            split.x_train, split.y_train, config.validation_fraction, seed=config.seed)
    else:
        x_tr, y_tr, x_val, y_val = split.x_train, split.y_train, None, None
    standardizer = D.Standardizer().fit(x_tr)
    return Prepared(config, split, standardizer, standardizer.transform(x_tr), y_tr,
                    None if x_val is None else standardizer.transform(x_val), y_val, out)


def run(config: TrainConfig, resume: bool = False, log=print) -> dict:
    """Train and write the run folder; returns the metrics written to metrics.json."""
    p = prepare(config, resume)
    t0 = time.perf_counter()
    n_classes = p.split.n_classes
    _random.manual_seed(config.seed)
    model = build_mlp(p.split.n_features, config.hidden, n_classes, config.activation)
    loss_fn = make_loss(config, p.y_train, n_classes)
    optimizer = make_optimizer(config, model.parameters())
    scheduler = make_scheduler(config, optimizer)
    dataset = D.TensorDataset(p.x_train, p.y_train)
    sampler = D.ClassBalancedSampler(p.y_train) if config.balanced_sampling else None
    loader = D.DataLoader(dataset, batch_size=config.batch_size, shuffle=sampler is None,
                          sampler=sampler)
    stepper = _LBFGSStep(optimizer, model, loss_fn) if config.optimizer == "lbfgs" else optimizer
    if config.optimizer == "lbfgs":
        loader = _remember_batches(loader, stepper)

    os.makedirs(p.out, exist_ok=True)
    checkpoint_path = os.path.join(p.out, "checkpoint.npz")
    history, start = History(), 0
    if resume:
        history, start = _restore(checkpoint_path, config, model, optimizer, scheduler)
        log(f"resuming {p.out} after epoch {start}")

    def save(epoch: int, hist: History) -> None:
        _save_checkpoint(checkpoint_path, config, model, optimizer, scheduler, epoch, hist,
                         p.standardizer)

    history = fit(model, loss_fn, stepper, loader, config.epochs,
                  validation=p.validation, scheduler=scheduler,
                  early_stopping=config.early_stopping, clip_grad_norm=config.clip_grad,
                  progress=config.progress, history=history, start_epoch=start,
                  on_epoch_end=save)
    if history.message:
        log(history.message)
    if history.stopped == "interrupted" and history.epochs:
        # the checkpoint written at the end of the last finished epoch is the exact state to
        # resume from (weights, optimizer, RNG); a mid-epoch one could not continue identically
        log(f"checkpoint of epoch {len(history.epochs)} kept: continue with --resume "
            f"--out {p.out}")
    return _write_results(p, model, loss_fn, history, time.perf_counter() - t0)


def _remember_batches(loader, stepper):
    """For LBFGS: let the step's closure see the current batch."""
    class Loader:
        def __iter__(self):
            for batch in loader:
                stepper.batch = batch
                yield batch

        def __len__(self):
            return len(loader)

    return Loader()


def _save_checkpoint(path, config, model, optimizer, scheduler, epoch, history, standardizer):
    state = {
        "format": "retrograd-checkpoint-1", "epoch": epoch, "config": config.to_dict(),
        "model": {k: v.numpy() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": _random.get_rng_state(),
        "history": {"epochs": history.epochs, "best_epoch": history.best_epoch},
        "standardizer": standardizer.state_dict(),
    }
    ckpt.save_checkpoint(state, path)


_RESUME_MUST_MATCH = ("data", "label_column", "hidden", "activation", "loss", "optimizer",
                      "class_weights", "balanced_sampling", "batch_size", "seed", "schedule")


def _restore(path, config, model, optimizer, scheduler):
    state = ckpt.load_checkpoint(path)
    saved = state["config"]
    for key in _RESUME_MUST_MATCH:
        if saved.get(key) != getattr(config, key):
            raise ValueError(f"--resume: the checkpoint was made with {key}={saved.get(key)!r}, "
                             f"not {getattr(config, key)!r}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    _random.set_rng_state(state["rng"])
    history = History(epochs=list(state["history"]["epochs"]),
                      best_epoch=state["history"]["best_epoch"])
    return history, int(state["epoch"])


def _write_results(p: Prepared, model, loss_fn, history: History, seconds: float) -> dict:
    config, out = p.config, p.out
    x_test = p.standardizer.transform(p.split.x_test)
    _, _, logits = evaluate(model, loss_fn, x_test, p.split.y_test)
    probs = _wrap(logits).softmax(1).numpy()
    report = metrics.classification_report(probs, p.split.y_test)
    result = {
        "test_accuracy": report["accuracy"],
        "test_balanced_accuracy": report["balanced_accuracy"],
        "test_nll": report["nll"],
        "test_ece": report["ece"],
        "test_per_class_recall": report["per_class_recall"],
        "test_confusion_matrix": report["confusion_matrix"],
        "epochs": len(history.epochs),
        "stopped": history.stopped,
        "seconds": seconds,
        "n_train": int(len(p.y_train)),
        "n_validation": 0 if p.y_val is None else int(len(p.y_val)),
        "n_test": int(len(p.split.y_test)),
        "config": config.to_dict(),
    }
    save_model(out, model, config, p.split.n_features, p.split.n_classes, p.standardizer)
    _write_text(os.path.join(out, "metrics.json"), json.dumps(result, indent=2))
    _write_text(os.path.join(out, "history.csv"), _history_csv(history))
    plots.learning_curves(history, os.path.join(out, "learning_curves.png"),
                          f"{p.split.name}: MLP {config.hidden}, {config.optimizer}")
    plots.confusion_matrix(np.array(report["confusion_matrix"]),
                           os.path.join(out, "confusion_matrix.png"))
    plots.reliability_diagram(*metrics.calibration_bins(probs, p.split.y_test),
                              report["ece"], os.path.join(out, "reliability.png"))
    return result


def save_model(out, model, config, n_features, n_classes, standardizer) -> None:
    """model.safetensors (torch's key names) and model.json (architecture, preprocessing)."""
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    ckpt.save_safetensors(weights, os.path.join(out, "model.safetensors"), {"format": "pt"})
    description = {"format": "retrograd-mlp-1", "n_features": n_features,
                   "n_classes": n_classes, "hidden": list(config.hidden),
                   "activation": config.activation, "data": config.data,
                   "label_column": config.label_column,
                   "standardizer": {k: v.tolist() for k, v in standardizer.state_dict().items()}}
    _write_text(os.path.join(out, "model.json"), json.dumps(description, indent=2))


def load_model(folder: str):
    """(model, description, standardizer) from a run folder written by `run`."""
    try:
        with open(os.path.join(folder, "model.json")) as f:
            description = json.load(f)
        weights = ckpt.load_safetensors(os.path.join(folder, "model.safetensors"))
    except (OSError, json.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"--model: {folder} is not a retrograd model folder ({exc})") from None
    model = build_mlp(description["n_features"], description["hidden"],
                      description["n_classes"], description["activation"])
    model.load_state_dict(weights)
    model.eval()
    standardizer = D.Standardizer.from_state_dict(
        {k: np.asarray(v, dtype=np.float32) for k, v in description["standardizer"].items()})
    return model, description, standardizer


def _history_csv(history: History) -> str:
    keys = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
            "seconds"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in history.epochs:
        writer.writerow(record)
    return buf.getvalue()


def _write_text(path: str, text: str) -> None:
    ckpt.atomic_write(path, lambda f: f.write(text.encode()))
