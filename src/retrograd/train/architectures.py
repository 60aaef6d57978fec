"""The models `retrograd train` builds (--model mlp, --model cnn), described as a list of layers:
torch.nn's class names and constructor arguments, in order. model.json records that list, so a
run folder rebuilds its model in retrograd (`build`) and in PyTorch alike:

    torch.nn.Sequential(*(getattr(torch.nn, l["type"])(**{k: v for k, v in l.items()
                                                           if k != "type"}) for l in layers))

whose state_dict keys are the safetensors' ("1.weight", "2.running_mean"...). Every model takes
rows of features (what the standardizer, evaluate and predict handle); a CNN starts with an
Unflatten to the samples' shape, (C, L) or (C, H, W).
"""

from __future__ import annotations

import math

from .. import nn, registry

# the layer types a description may name (and their retrograd classes)
LAYER_TYPES = {name: getattr(nn, name) for name in (
    "Linear", "ReLU", "Tanh", "Sigmoid", "Conv1d", "Conv2d", "BatchNorm1d", "BatchNorm2d",
    "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "Flatten", "Unflatten", "Dropout")}
ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}


def mlp_layers(n_features: int, hidden: list[int], n_classes: int,
               activation: str = "relu") -> list[dict]:
    """Linear -> activation -> ... -> Linear (keys "0.weight", "2.weight"... as torch's)."""
    layers, width = [], n_features
    for h in hidden:
        layers += [{"type": "Linear", "in_features": width, "out_features": int(h)},
                   {"type": ACTIVATIONS[activation]}]
        width = int(h)
    return layers + [{"type": "Linear", "in_features": width, "out_features": n_classes}]


def _conv_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def cnn_layers(sample_shape: tuple[int, ...], n_classes: int, blocks: list[dict]) -> list[dict]:
    """Unflatten to sample_shape, then per block Conv (channels, kernel, stride, padding) ->
    BatchNorm -> ReLU (-> MaxPool of `pool`), then Flatten -> Linear to the classes. 1-D
    layers for (C, L) samples, 2-D for (C, H, W). ValueError when a block would leave no
    output (the samples are too small for the architecture)."""
    channels, *spatial = (int(n) for n in sample_shape)
    d = len(spatial)
    if d not in (1, 2):
        raise ValueError(f"a CNN needs samples of shape (C, L) or (C, H, W), got "
                         f"{tuple(sample_shape)}")
    layers = [{"type": "Unflatten", "dim": 1, "unflattened_size": [channels, *spatial]}]
    for i, block in enumerate(blocks):
        k, s, p = block["kernel"], block.get("stride", 1), block.get("padding", 0)
        out = [_conv_size(n, k, s, p) for n in spatial]
        pool = block.get("pool")
        if pool:
            out = [n // pool for n in out]
        if min(out) < 1:
            raise ValueError(f"samples of shape {tuple(sample_shape)} are too small for the "
                             f"CNN: its block {i + 1} (kernel {k}, stride {s}"
                             f"{f', pool {pool}' if pool else ''}) leaves nothing of a "
                             f"{'x'.join(map(str, spatial))} input")
        layers += [{"type": f"Conv{d}d", "in_channels": channels,
                    "out_channels": block["channels"], "kernel_size": k, "stride": s,
                    "padding": p},
                   {"type": f"BatchNorm{d}d", "num_features": block["channels"]},
                   {"type": "ReLU"}]
        if pool:
            layers.append({"type": f"MaxPool{d}d", "kernel_size": pool})
        channels, spatial = block["channels"], out
    return layers + [{"type": "Flatten"},
                     {"type": "Linear", "in_features": channels * math.prod(spatial),
                      "out_features": n_classes}]


def generic_blocks(sample_shape: tuple[int, ...]) -> list[dict]:
    """The CNN for image-shaped data without a recipe of its own: up to three blocks of 3-wide
    convolutions (32, 64, 64 channels), each halving the size with a max pool while the
    samples are at least 4 wide."""
    size, blocks = min(sample_shape[1:]), []
    for channels in (32, 64, 64):
        pool = 2 if size >= 4 else None
        blocks.append({"channels": channels, "kernel": 3, "padding": 1, "pool": pool})
        size = size // 2 if pool else size
    return blocks


def layers_for(config, sample_shape: tuple[int, ...], n_classes: int) -> list[dict]:
    """The layer list of a run: the MLP of --hidden and --activation, or the CNN of the
    dataset's recipe (the generic one for other image-shaped data). ValueError (one line) for
    --model cnn on samples without an image shape."""
    if config.model != "cnn":
        return mlp_layers(math.prod(sample_shape), config.hidden, n_classes, config.activation)
    if len(sample_shape) not in (2, 3):
        raise ValueError(f"--model cnn needs samples with an image shape, (channels, length) or "
                         f"(channels, height, width) (digits, mnist1d, a folder of IDX files, "
                         f"an .npz of (N, H, W) or (N, C, H, W) arrays); {config.data} holds rows "
                         f"of {math.prod(sample_shape)} features (a table): use --model mlp")
    blocks = registry.CNN_ARCHITECTURES.get(config.data) or generic_blocks(sample_shape)
    return cnn_layers(sample_shape, n_classes, blocks)


def build(layers: list[dict]) -> nn.Sequential:
    """The retrograd model a layer list describes (ValueError naming a bad entry)."""
    modules = []
    for i, spec in enumerate(layers):
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind not in LAYER_TYPES:
            raise ValueError(f"layer {i}: unknown layer type {kind!r} (known: "
                             f"{', '.join(sorted(LAYER_TYPES))})")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()
                  if k != "type"}
        try:
            modules.append(LAYER_TYPES[kind](**kwargs))
        except TypeError as exc:
            raise ValueError(f"layer {i} ({kind}): {exc}") from None
    return nn.Sequential(*modules)


def describe(layers: list[dict]) -> str:
    """A short name for figure titles: "MLP 256-256 relu" or "CNN 25-25-25 (Conv1d, BN)"."""
    convs = [layer for layer in layers if layer["type"].startswith("Conv")]
    if not convs:
        hidden = [str(layer["out_features"]) for layer in layers
                  if layer["type"] == "Linear"][:-1]
        act = next((k for k, v in ACTIVATIONS.items() for layer in layers
                    if layer["type"] == v), "linear")
        return f"MLP {'-'.join(hidden) or '(no hidden layer)'} {act}"
    norm = ", BN" if any(layer["type"].startswith("BatchNorm") for layer in layers) else ""
    widths = "-".join(str(layer["out_channels"]) for layer in convs)
    return f"CNN {widths} ({convs[0]['type']}{norm})"


def step_work(layers: list[dict], batch_size: int) -> float:
    """Multiply-adds of one training step's products (3 per weight use: the forward product,
    the weight gradient and the input gradient), for the choice of BLAS threads."""
    shape: list[int] = []
    total = 0.0
    for spec in layers:
        kind = spec["type"]
        if kind == "Unflatten":
            shape = list(spec["unflattened_size"])
        elif kind == "Linear":
            total += spec["in_features"] * spec["out_features"]
        elif kind.startswith("Conv"):
            d = int(kind[4])
            k, s, p = spec["kernel_size"], spec["stride"], spec["padding"]
            out = [_conv_size(n, k, s, p) for n in shape[1:]]
            total += spec["in_channels"] * spec["out_channels"] * k ** d * math.prod(out)
            shape = [spec["out_channels"], *out]
        elif kind.startswith("MaxPool") or kind.startswith("AvgPool"):
            shape = [shape[0], *(n // spec["kernel_size"] for n in shape[1:])]
    return 3.0 * total * batch_size
