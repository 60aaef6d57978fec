"""A trained run, loaded back: `retrograd.load_run(DIR)` gives the model with its preprocessing
and class names, ready to predict on raw features.

model.json records how the weights in model.safetensors were trained: the architecture (its
"layers": torch.nn class names and constructor arguments, train/architectures.py), the
standardizer (mean and std of the training split, per feature) and the class names. A model
loaded elsewhere (PyTorch) must standardize its inputs the same way: x -> (x - mean) / std.
Run folders of the first format (an MLP described by "hidden" and "activation") still load.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from .. import nn
from ..data import load_safetensors
from ..functions import tensor
from ..grad_mode import no_grad
from . import architectures
from . import checkpoint as ckpt

MODEL_FORMAT = "retrograd-model-2"
OLD_FORMATS = ("retrograd-mlp-1",)  # an MLP described by hidden and activation


def build_mlp(n_features: int, hidden: list[int], n_classes: int, activation: str = "relu"):
    """Dense -> activation -> ... -> Dense, keys "0.weight", "2.weight"... as torch's."""
    return architectures.build(architectures.mlp_layers(n_features, hidden, n_classes,
                                                        activation))


@dataclass
class SavedRun:
    """A run folder's model: `predict_proba(x)` and `predict(x)` take raw features (the
    standardizer is applied), predictions are class indices, `class_names` their labels."""

    folder: str
    model: nn.Module
    description: dict
    mean: np.ndarray
    std: np.ndarray

    @property
    def n_features(self) -> int:
        return int(self.description["n_features"])

    @property
    def class_names(self) -> list[str]:
        names = self.description.get("class_names")
        return [str(c) for c in range(self.description["n_classes"])] if names is None \
            else list(names)

    @property
    def layers(self) -> list[dict]:
        """The model as torch.nn class names and arguments (see train/architectures.py)."""
        return self.description["layers"]

    @property
    def config(self) -> dict:
        return dict(self.description.get("config", {}))

    def standardize(self, x) -> np.ndarray:
        """(x - mean) / std with the training split's statistics."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got an array of "
                             f"shape {x.shape}")
        return (x - self.mean) / self.std

    def predict_proba(self, x) -> np.ndarray:
        """softmax(model((x - mean) / std)), shape (n, n_classes)."""
        self.model.eval()
        with no_grad():
            return self.model(tensor(self.standardize(x))).softmax(1).numpy()

    def predict(self, x) -> np.ndarray:
        return self.predict_proba(x).argmax(axis=1)


def save_model(folder: str, model, description: dict) -> None:
    """model.safetensors (torch's key names) and model.json (everything to rebuild and use it)."""
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    ckpt.save_safetensors(weights, os.path.join(folder, "model.safetensors"), {"format": "pt"})
    text = json.dumps({"format": MODEL_FORMAT, **description}, indent=2)
    ckpt.atomic_write(os.path.join(folder, "model.json"), lambda f: f.write(text.encode()))


def load_run(folder: str) -> SavedRun:
    """The model of a run folder written by `retrograd train` (ValueError, one line, when the
    folder is not one or its files are damaged or do not match)."""
    where = f"--model: {folder}"
    try:
        with open(os.path.join(folder, "model.json")) as f:
            description = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{where} is not a retrograd run folder (no model.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: model.json is damaged ({exc})") from None
    try:
        if description.get("format") in OLD_FORMATS:
            description = {**description, "layers": architectures.mlp_layers(
                int(description["n_features"]), [int(h) for h in description["hidden"]],
                int(description["n_classes"]), description["activation"])}
        model = architectures.build(description["layers"])
        standardizer = description["standardizer"]
        mean = np.asarray(standardizer["mean"], dtype=np.float32)
        std = np.asarray(standardizer["std"], dtype=np.float32)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: model.json is not a retrograd model description "
                         f"({type(exc).__name__}: {exc})") from None
    if description.get("format") not in (MODEL_FORMAT, *OLD_FORMATS):
        raise ValueError(f"{where}: model.json has format {description.get('format')!r}, "
                         f"expected {MODEL_FORMAT!r}")
    path = os.path.join(folder, "model.safetensors")
    if not os.path.isfile(path):
        raise ValueError(f"{where} has no model.safetensors")
    weights = load_safetensors(path, expected=model.state_dict())
    model.load_state_dict(weights)
    model.eval()
    return SavedRun(folder, model, description, mean, std)
