"""A categorical policy: any retrograd Module mapping observations to logits, pi(a | s) =
softmax(net(s))[a], with action sampling that records no graph.

Sampling happens once per environment step, so it must cost little: for a Sequential of Linear,
ReLU, Tanh, Sigmoid, Dropout and Identity layers the forward runs on the parameters' ndarrays
directly (the modules' arithmetic, to rounding, with no Tensor or graph objects); any other
Module runs its own forward under no_grad.
"""

from __future__ import annotations

import math

import numpy as np

from .. import nn
from .. import random as _random
from ..functions import tensor
from ..grad_mode import no_grad
from ..tensor import Tensor

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def mlp(n_inputs: int, hidden: list[int], n_outputs: int, activation: str = "relu",
        dropout: float = 0.0) -> nn.Sequential:
    """Linear -> activation [-> Dropout] -> ... -> Linear, with torch's Sequential key names."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: unknown value {activation!r} (choose from "
                         f"{', '.join(ACTIVATIONS)})")
    layers, width = [], n_inputs
    for h in hidden:
        layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


def _numpy_forward(net: nn.Module):
    """A function obs -> logits on ndarrays equal to net's forward, or None if net is not a plain
    Sequential of the layers it knows."""
    if type(net) is not nn.Sequential:
        return None
    layers = list(net)
    if not all(type(m) in (nn.Linear, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Dropout, nn.Identity)
               for m in layers):
        return None

    copy_input = not layers or type(layers[0]) is not nn.Linear

    def forward(x: np.ndarray) -> np.ndarray:
        if copy_input:  # the in-place activations must never touch the caller's array
            x = np.array(x)
        for m in layers:
            kind = type(m)
            if kind is nn.Linear:
                # the parameters are read at each call: optimizers update them in place, and a
                # load_state_dict may replace them
                x = x @ m.weight._data.T
                if m.bias is not None:
                    x += m.bias._data
            elif kind is nn.ReLU:
                np.maximum(x, 0, out=x)
            elif kind is nn.Tanh:
                np.tanh(x, out=x)
            elif kind is nn.Sigmoid:
                x = 1 / (1 + np.exp(-x))
            elif kind is nn.Dropout and m.training and m.p > 0:
                # F.dropout's rule and draw, so both paths consume the generator alike
                keep = _random.generator().random(x.shape, dtype=x.dtype) >= m.p
                x = x * (keep * np.asarray(1 / (1 - m.p), dtype=x.dtype))
        return x

    return forward


class CategoricalPolicy(nn.Module):
    """pi(a | s) = softmax(net(s))[a] for a Module `net` mapping (N, obs_dim) to (N, n_actions)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"CategoricalPolicy: net must be a retrograd Module, got "
                            f"{type(net).__name__}")
        self.net = net
        self._fast = _numpy_forward(net)
        params = list(net.parameters())
        self.dtype = params[0].dtype if params else np.dtype(np.float32)

    @property
    def obs_dim(self) -> int | None:
        """The input width of the first Linear layer (None if there is none)."""
        for m in self.net.modules():
            if isinstance(m, nn.Linear):
                return m.in_features
        return None

    def forward(self, obs) -> Tensor:
        """Logits (N, n_actions) for observations (N, obs_dim)."""
        return self.net(obs if isinstance(obs, Tensor) else tensor(np.asarray(obs, self.dtype)))

    def logits(self, obs: np.ndarray) -> np.ndarray:
        """Logits as an ndarray, no graph recorded; obs is one observation or a batch."""
        x = np.asarray(obs, dtype=self.dtype)
        if self._fast is not None:
            return self._fast(x)
        with no_grad():
            return self.net(tensor(x.reshape(1, -1) if x.ndim == 1 else x)).numpy() \
                .reshape(x.shape[:-1] + (-1,))

    def probs(self, obs: np.ndarray) -> np.ndarray:
        """softmax(logits) along the last axis, in float64."""
        return _softmax_rows(self.logits(obs))

    def act(self, obs: np.ndarray, greedy: bool = False):
        """a ~ pi(. | obs) drawn from retrograd's generator (argmax if greedy): an np.int64 for
        one observation (the dtype of gymnasium's Discrete spaces), an int64 array for a batch."""
        z = self.logits(obs)
        if z.ndim == 1:
            return np.int64(self._sample_one(z.tolist(), greedy))
        p = self.probs(obs) if self._fast is None else _softmax_rows(z)
        if greedy:
            return p.argmax(axis=-1).astype(np.int64)
        # inverse-CDF sampling: one uniform per observation from the seeded generator
        u = _random.generator().random(p.shape[:-1] + (1,))
        a = (np.cumsum(p, axis=-1) < u).sum(axis=-1)
        return np.minimum(a, p.shape[-1] - 1).astype(np.int64)  # a cumsum a hair below 1

    @staticmethod
    def _sample_one(z: list[float], greedy: bool) -> int:
        # one observation, a handful of actions: Python floats cost less than NumPy calls
        top = max(z)
        if greedy:
            return z.index(top)
        e = [math.exp(v - top) for v in z]
        u = _random.generator().random() * sum(e)
        for a, ea in enumerate(e):
            u -= ea
            if u < 0:
                return a
        return len(e) - 1  # rounding left u a hair above 0


def _softmax_rows(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z
