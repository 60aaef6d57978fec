"""Saving and loading: weights in the safetensors format (PyTorch's key names, so
safetensors.torch.load_file reads them into a torch model), and full training checkpoints.

Both are written atomically: to a temporary file in the same folder, flushed to disk, then
renamed over the target, so a crash or a kill during the write leaves the previous file intact.
Nothing is ever unpickled: a checkpoint is an .npz of arrays plus a JSON document.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable

import numpy as np

_ST_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64",
              np.dtype(np.float16): "F16", np.dtype(np.int64): "I64", np.dtype(np.int32): "I32",
              np.dtype(np.int16): "I16", np.dtype(np.int8): "I8", np.dtype(np.uint8): "U8",
              np.dtype(np.bool_): "BOOL"}
_ST_NUMPY = {v: k for k, v in _ST_DTYPES.items()}


def atomic_write(path: str, write: Callable) -> None:
    """Call write(file) on a temporary file next to `path`, then rename it over `path`.

    The file gets the permissions a plain open() would give it (mkstemp makes it 0600)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def save_safetensors(tensors: dict[str, np.ndarray], path: str,
                     metadata: dict[str, str] | None = None) -> None:
    """Write name -> array in the safetensors format (little-endian, C order)."""
    header, chunks, offset = {}, [], 0
    for name, value in tensors.items():
        a = np.ascontiguousarray(value.numpy() if hasattr(value, "numpy") else value)
        if a.dtype not in _ST_DTYPES:
            raise TypeError(f"save_safetensors: {name!r} has unsupported dtype {a.dtype}")
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _ST_DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned

    def write(f):
        f.write(len(encoded).to_bytes(8, "little"))
        f.write(encoded)
        for chunk in chunks:
            f.write(chunk)

    atomic_write(path, write)


def load_safetensors(path: str) -> dict[str, np.ndarray]:
    """name -> array from a safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: not a safetensors file (too short)")
    n = int.from_bytes(raw[:8], "little")
    try:
        header = json.loads(raw[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path}: not a safetensors file (bad header)") from None
    header.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        dtype = _ST_NUMPY[info["dtype"]].newbyteorder("<")
        out[name] = np.frombuffer(raw[base + start:base + end], dtype=dtype) \
            .reshape(info["shape"]).astype(dtype.newbyteorder("="))
    return out


def _flatten(tree, prefix: str, arrays: dict) -> object:
    """JSON-able copy of `tree` with every ndarray moved into `arrays` under a path key."""
    if isinstance(tree, np.ndarray):
        arrays[prefix] = tree
        return {"__array__": prefix}
    if isinstance(tree, dict):
        return {"__dict__": [[_flatten(k, f"{prefix}/k{i}", arrays),
                              _flatten(v, f"{prefix}/{i}", arrays)]
                             for i, (k, v) in enumerate(tree.items())]}
    if isinstance(tree, (list, tuple)):
        kind = "__tuple__" if isinstance(tree, tuple) else "__list__"
        return {kind: [_flatten(v, f"{prefix}/{i}", arrays) for i, v in enumerate(tree)]}
    if isinstance(tree, np.generic):
        return tree.item()
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    raise TypeError(f"cannot save a {type(tree).__name__} in a checkpoint (at {prefix})")


def _unflatten(node, arrays):
    if isinstance(node, dict):
        if "__array__" in node:
            return arrays[node["__array__"]]
        if "__dict__" in node:
            return {_unflatten(k, arrays): _unflatten(v, arrays) for k, v in node["__dict__"]}
        if "__tuple__" in node:
            return tuple(_unflatten(v, arrays) for v in node["__tuple__"])
        if "__list__" in node:
            return [_unflatten(v, arrays) for v in node["__list__"]]
    return node


def save_checkpoint(state: dict, path: str) -> None:
    """Save a nested dict of arrays, numbers, strings, lists and dicts (model and optimizer
    state dicts, RNG state, epoch, config...) atomically as .npz + JSON; no pickle."""
    arrays: dict[str, np.ndarray] = {}
    document = json.dumps(_flatten(state, "s", arrays))

    def write(f):
        np.savez(f, __document__=np.frombuffer(document.encode(), dtype=np.uint8), **arrays)

    atomic_write(path, write)


def load_checkpoint(path: str) -> dict:
    """The dict saved by save_checkpoint."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from None
    if "__document__" not in arrays:
        raise ValueError(f"{path} is not a retrograd checkpoint")
    document = json.loads(arrays.pop("__document__").tobytes().decode())
    return _unflatten(document, arrays)
