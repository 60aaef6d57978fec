"""Standardization fitted on the training split only, and saved with the model."""

from __future__ import annotations

import numpy as np


class Standardizer:
    """x -> (x - mean) / std per feature, mean and std from the training data; constant
    features keep std 1 (so they map to 0 instead of dividing by zero)."""

    def __init__(self, mean: np.ndarray | None = None, std: np.ndarray | None = None):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.std = None if std is None else np.asarray(std, dtype=np.float32)

    def fit(self, x: np.ndarray, per_feature: bool = True) -> Standardizer:
        """Mean and std per feature, or (per_feature=False) one mean and std of all the values,
        repeated for every feature: what a convolution wants, whose weights are shared across
        positions (the saved form is the same)."""
        x = np.asarray(x, dtype=np.float64)
        if per_feature:
            mean, std = x.mean(axis=0), x.std(axis=0)
        else:
            mean = np.full(x.shape[1], x.mean() if x.size else 0.0)
            std = np.full(x.shape[1], x.std() if x.size else 1.0)
        self.mean = mean.astype(np.float32)
        self.std = np.where(std > 0, std, 1.0).astype(np.float32)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self.mean is None:
            raise RuntimeError("Standardizer.transform before fit")
        x = np.asarray(x, dtype=np.float32)
        if x.shape[-1] != self.mean.shape[0]:
            raise ValueError(f"expected {self.mean.shape[0]} features, got {x.shape[-1]}")
        return (x - self.mean) / self.std

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_state_dict(cls, state: dict) -> Standardizer:
        return cls(state["mean"], state["std"])
