"""Small-model training shared by the course experiments 9-16: an MLP, a mini-batch loop that
accepts class indices or probability targets, and predictions as NumPy arrays.

Kept deliberately plain (no validation, no checkpoints) so an experiment's cost is its steps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

import retrograd as rg
from retrograd import nn
from retrograd.data import DataLoader, TensorDataset
from retrograd.train.callbacks import LambdaCallback
from retrograd.train.fit import fit


def mlp(sizes: list[int], seed: int) -> nn.Sequential:
    """Linear-ReLU-...-Linear through `sizes` (input, hidden..., classes), seeded."""
    rg.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def train(model: nn.Module, loss_fn: Callable, x: np.ndarray, targets: np.ndarray, *,
          steps: int, batch_size: int = 64, lr: float = 1e-2, seed: int = 0,
          sampler=None, optimizer: str = "adam",
          on_step: Callable[[int], None] | None = None) -> list[float]:
    """`steps` optimizer steps of loss_fn(logits, target_batch) over reshuffled epochs (or the
    sampler's draws), through the library's one training loop; returns the loss of every step.
    targets: labels (N,) or probabilities."""
    rg.manual_seed(seed)  # the shuffles (and the sampler's draws) come from this seed
    loader = DataLoader(TensorDataset(x, targets), batch_size=batch_size,
                        shuffle=sampler is None, sampler=sampler)
    opt = (rg.optim.Adam(model.parameters(), lr=lr) if optimizer == "adam"
           else rg.optim.SGD(model.parameters(), lr=lr))
    losses: list[float] = []

    def record(loop) -> None:
        losses.append(loop.loss_value)
        if on_step is not None:
            on_step(len(losses))

    epochs = -(-steps // len(loader))
    fit(model, loss_fn, opt, loader, epochs, max_steps=steps, progress=False,
        callbacks=[LambdaCallback(on_batch_end=record)])
    return losses


def logits(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """The model's outputs on x as float64, without building a graph."""
    model.eval()
    with rg.no_grad():
        out = model(rg.tensor(np.asarray(x, dtype=np.float32))).numpy()
    model.train()
    return out.astype(np.float64)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax in NumPy (for metrics on held-out logits)."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def standardize(x_train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale every column by the training mean and standard deviation."""
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std < 1e-6] = 1.0  # constant columns (digits' blank border pixels) stay constant
    return [((a - mean) / std).astype(np.float32) for a in (x_train, *others)]


@functools.lru_cache(maxsize=1)
def mnist1d_split():
    """MNIST-1D, generated once per process (about 2 s) and shared by the experiments that use
    it; callers must not modify the arrays."""
    from retrograd.data import mnist1d

    return mnist1d()
