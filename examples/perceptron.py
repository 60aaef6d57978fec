"""The course's two-layer perceptron, Dense -> ReLU -> Dense -> softmax cross-entropy, trained
by SGD with momentum on synthetic data (three Gaussian blobs on a ring): watch the loss fall.

Run: make demo   (or: python examples/perceptron.py)
"""

import numpy as np

import retrograd
import retrograd.nn as nn
import retrograd.nn.functional as F


def make_blobs(n_per_class: int, n_classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(n_classes) / n_classes
    centers = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    x = np.concatenate([c + 0.8 * rng.standard_normal((n_per_class, 2)) for c in centers])
    y = np.repeat(np.arange(n_classes), n_per_class)
    return x.astype(np.float32), y


def main() -> None:
    retrograd.manual_seed(0)
    x, y = make_blobs(200)
    inputs, labels = retrograd.tensor(x), retrograd.tensor(y)
    model = nn.Sequential(nn.Dense(2, 32), nn.ReLU(), nn.Dense(32, 3))
    optimizer = retrograd.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    for epoch in range(1, 101):
        loss = F.cross_entropy(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if epoch == 1 or epoch % 10 == 0:
            with retrograd.no_grad():
                accuracy = (model(inputs).argmax(1) == labels).numpy().mean()
            print(f"epoch {epoch:3d}  loss {loss.item():.4f}  accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
