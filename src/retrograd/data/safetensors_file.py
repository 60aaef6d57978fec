"""The safetensors format: encode name -> array, and a reader that validates a file as the
reference `safetensors` library (0.8) does, so that whatever it refuses we refuse in one line,
and whatever it accepts we load to the same arrays.

The format: 8 bytes (little-endian u64) N, N bytes of UTF-8 JSON (the header), then the data.
The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
into the data), plus an optional "__metadata__" map of strings to strings. The reference parses
it with serde_json into typed structs; the checks below are that parse written out (the tests
in tests/test_safetensors.py compare the two on crafted and mutated files).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping

import numpy as np

from .errors import DataError

# the dtypes the reference's NumPy loader can return; its others (BF16, F8_*, F6_*, F4) are
# valid in a header but NumPy has no such type, and the reference then fails to load the file
NUMPY_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
                "U64": np.uint64, "I32": np.int32, "U32": np.uint32, "I16": np.int16,
                "U16": np.uint16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
                "C64": np.complex64}
_CODES = {np.dtype(v): k for k, v in NUMPY_DTYPES.items()}
_OTHER_DTYPES = ("F4", "F6_E2M3", "F6_E3M2", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ",
                 "F8_E5M2FNUZ", "BF16")
_MAX_HEADER = 100_000_000  # the reference's MAX_HEADER_SIZE
_USIZE_MAX = 2 ** 64 - 1   # shapes and offsets are Rust usize (64-bit)
_MAX_DEPTH = 127           # serde_json's recursion limit: 128 levels refused (measured)
_FIELDS = ("dtype", "shape", "data_offsets")


def encode_safetensors(tensors: Mapping[str, np.ndarray],
                       metadata: Mapping[str, str] | None = None) -> list[bytes]:
    """The pieces of a safetensors file: length, header (padded to 8 bytes), then each
    tensor's little-endian C-order bytes, in the order given."""
    header, chunks, offset = {}, [], 0
    for name, value in tensors.items():
        if hasattr(value, "cpu") and hasattr(value, "numpy"):  # a tensor on any device
            value = value.detach().cpu().numpy()
        elif hasattr(value, "get") and hasattr(value, "device"):  # a CuPy array
            value = value.get()
        a = np.asarray(value)
        if not a.flags.c_contiguous:  # (not ascontiguousarray: it makes a 0-d array 1-d)
            a = a.copy(order="C")
        if a.dtype.newbyteorder("=") not in _CODES:
            raise TypeError(f"save_safetensors: {name!r} has unsupported dtype {a.dtype}")
        code = _CODES[a.dtype.newbyteorder("=")]
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned
    return [len(encoded).to_bytes(8, "little"), encoded, *chunks]


class _Bad(Exception):
    """A reason the header is invalid; turned into one DataError line naming the file."""


class _Negative(int):
    """A JSON integer written with a minus sign: serde_json never reads one as a usize (not
    even -0, which it reads as a float)."""


def _parse_int(text: str) -> int:
    value = int(text)
    try:
        float(value)  # serde_json falls back to f64 for big integers and refuses infinity
    except OverflowError:
        raise _Bad(f"number {text[:20]}... out of range") from None
    return _Negative(value) if text.startswith("-") else value


def _parse_float(text: str) -> float:
    value = float(text)
    if not np.isfinite(value):
        raise _Bad(f"number {text[:20]} out of range")
    return value


def _refuse_constant(text: str):
    raise _Bad(f"{text} is not JSON")


class _Pairs(list):
    """A JSON object as its (key, value) pairs, duplicates kept (serde treats them per type)."""


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def _nesting_depth(header: bytes) -> int:
    """Deepest bracket nesting of valid JSON text (strings removed first)."""
    bare = np.frombuffer(_STRING.sub(b'""', header), dtype=np.uint8)
    step = np.isin(bare, (ord("["), ord("{"))).astype(np.int64) \
        - np.isin(bare, (ord("]"), ord("}")))
    return int(np.cumsum(step).max(initial=0))


def _check_strings(node) -> None:
    """serde_json refuses lone surrogates (e.g. "\\ud800"); Python's json module accepts them."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if re.search("[\ud800-\udfff]", item):
                raise _Bad(f"string {item[:30]!r} holds an unpaired UTF-16 surrogate")
        elif isinstance(item, list):  # _Pairs is a list of (key, value) tuples
            stack.extend(item)
        elif isinstance(item, tuple):
            stack.extend(item)


def _usize(value, what: str) -> int:
    if type(value) is not int or not 0 <= value <= _USIZE_MAX:
        raise _Bad(f"{what} is {value!r}, expected an integer from 0 to 2^64-1")
    return value


def _dtype(value, name: str) -> str:
    # serde reads a unit enum variant from "F32" or from {"F32": null}
    if isinstance(value, _Pairs) and len(value) == 1 and value[0][1] is None:
        value = value[0][0]
    if not isinstance(value, str) or value not in NUMPY_DTYPES and value not in _OTHER_DTYPES:
        raise _Bad(f"tensor {name!r} has unknown dtype {value!r}")
    return value


def _tensor_info(value, name: str) -> tuple[str, list[int], tuple[int, int]]:
    if isinstance(value, list) and not isinstance(value, _Pairs):
        # serde also reads a struct from a JSON array of its fields, in order
        if len(value) != 3:
            raise _Bad(f"tensor {name!r} is a list of {len(value)} items, expected 3")
        fields = dict(zip(_FIELDS, value, strict=True))
    elif isinstance(value, _Pairs):
        fields = {}
        for key, item in value:
            if key in _FIELDS:
                if key in fields:
                    raise _Bad(f"tensor {name!r} has two {key!r} fields")
                fields[key] = item
        missing = [k for k in _FIELDS if k not in fields]
        if missing:
            raise _Bad(f"tensor {name!r} has no {missing[0]!r}")
    else:
        raise _Bad(f"tensor {name!r} is {_kind(value)}, expected an object")
    dtype = _dtype(fields["dtype"], name)
    shape, offsets = fields["shape"], fields["data_offsets"]
    if not isinstance(shape, list) or isinstance(shape, _Pairs):
        raise _Bad(f"tensor {name!r} has shape {_kind(shape)}, expected a list")
    shape = [_usize(n, f"a dimension of tensor {name!r}") for n in shape]
    if not isinstance(offsets, list) or isinstance(offsets, _Pairs) or len(offsets) != 2:
        raise _Bad(f"tensor {name!r} has data_offsets {offsets!r}, expected [begin, end]")
    begin, end = (_usize(n, f"a data offset of tensor {name!r}") for n in offsets)
    return dtype, shape, (begin, end)


def _kind(value) -> str:
    if isinstance(value, _Pairs):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "null" if value is None else f"{type(value).__name__} {value!r}"[:60]


def _itembits(dtype: str) -> int:
    if dtype in NUMPY_DTYPES:
        return 8 * np.dtype(NUMPY_DTYPES[dtype]).itemsize
    return {"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "BF16": 16}.get(dtype, 8)


def _parse_header(raw: bytes) -> tuple[int, dict[str, tuple]]:
    """(header length, name -> (dtype, shape, offsets)) of a whole file, validated."""
    if len(raw) < 8:
        raise _Bad(f"{len(raw)} bytes, shorter than the 8-byte header length")
    n = int.from_bytes(raw[:8], "little")
    if n > _MAX_HEADER:
        raise _Bad(f"header length {n} is over the limit of {_MAX_HEADER} bytes")
    if 8 + n > len(raw):
        raise _Bad(f"header length {n} runs past the end of the file ({len(raw)} bytes)")
    text = raw[8:8 + n]
    try:
        tree = json.loads(text.decode("utf-8"), object_pairs_hook=_Pairs,
                          parse_int=_parse_int, parse_float=_parse_float,
                          parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise _Bad(f"header is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise _Bad(f"header is not valid JSON ({str(exc)[:80]})") from None
    if _nesting_depth(text) > _MAX_DEPTH:
        raise _Bad(f"header nests deeper than {_MAX_DEPTH} levels")
    _check_strings(tree)
    if not isinstance(tree, _Pairs):
        raise _Bad(f"header is {_kind(tree)}, expected a JSON object")
    tensors, seen_metadata = {}, False
    for key, value in tree:
        if key == "__metadata__":
            if seen_metadata:
                raise _Bad("header has two __metadata__ entries")
            seen_metadata = True
            if value is not None and not (isinstance(value, _Pairs)
                                          and all(isinstance(v, str) for _, v in value)):
                raise _Bad("__metadata__ must map names to strings")
        else:
            tensors[key] = _tensor_info(value, key)  # a repeated name: the last one counts
    # the data must be covered exactly: tensors back to back in offset order, no gap, no
    # overlap, nothing after the last one
    start = 0
    for name, (dtype, shape, (begin, end)) in sorted(tensors.items(), key=lambda t: t[1][2]):
        if begin != start or end < begin:
            raise _Bad(f"tensor {name!r} has data_offsets [{begin}, {end}], expected to "
                       f"begin at {start}")
        start = end
        bits = 1
        for dim in (*shape, _itembits(dtype)):
            bits *= dim
            if bits > _USIZE_MAX:
                raise _Bad(f"tensor {name!r}: shape {shape} overflows")
        if bits % 8 or end - begin != bits // 8:
            raise _Bad(f"tensor {name!r} holds {end - begin} bytes, but shape {shape} of "
                       f"{dtype} needs {bits / 8:g}")
    if 8 + n + start != len(raw):
        raise _Bad(f"the tensors cover {start} bytes of data, the file holds "
                   f"{len(raw) - 8 - n}")
    return n, tensors


def load_safetensors(path: str, expected: Mapping | None = None,
                     device=None) -> dict[str, np.ndarray]:
    """name -> array from a safetensors file, validated as the reference library does; with
    `expected` (name -> (shape, dtype), or name -> array), also check_state against it; with
    `device` ('cuda:0', a retrograd.device), the arrays are put on that device.

    Any problem raises DataError (a ValueError) in one line naming the file and the problem."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise DataError(f"cannot read safetensors file {path}: {exc.strerror or exc}") from None
    try:
        n, tensors = _parse_header(raw)
        out, base, view = {}, 8 + n, memoryview(raw)
        for name, (dtype, shape, (begin, end)) in tensors.items():
            if dtype not in NUMPY_DTYPES:
                raise _Bad(f"tensor {name!r} has dtype {dtype}, which NumPy cannot hold")
            little = np.dtype(NUMPY_DTYPES[dtype]).newbyteorder("<")
            try:  # as the reference's NumPy loader does: frombuffer, then reshape
                array = np.frombuffer(view[base + begin:base + end], dtype=little).reshape(shape)
            except (ValueError, OverflowError) as exc:  # e.g. a dimension over NumPy's limit
                raise _Bad(f"tensor {name!r} of shape {shape}: {exc}") from None
            out[name] = array.astype(little.newbyteorder("="))
    except _Bad as exc:
        raise DataError(f"{path} is not a valid safetensors file: {exc}") from None
    if expected is not None:
        check_state(out, expected, path)
    if device is not None:
        from .. import backend

        out = {name: backend.move(a, device) for name, a in out.items()}
    return out


def check_state(weights: Mapping[str, np.ndarray], expected: Mapping, path: str) -> None:
    """Raise one DataError line unless `weights` has exactly the names of `expected`, each
    with its shape and dtype. expected: name -> (shape, dtype), or name -> anything with
    .shape and .dtype (a state_dict)."""
    problems = []
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    if missing:
        problems.append("missing " + _some(missing))
    if unexpected:
        problems.append("unexpected " + _some(unexpected))
    for name, want in expected.items():
        if name not in weights:
            continue
        shape, dtype = (want.shape, want.dtype) if hasattr(want, "shape") else want
        shape, dtype = tuple(int(n) for n in shape), np.dtype(dtype)
        got = weights[name]
        if tuple(got.shape) != shape:
            problems.append(f"{name} has shape {tuple(got.shape)}, expected {shape}")
        if np.dtype(got.dtype) != dtype:
            problems.append(f"{name} has dtype {np.dtype(got.dtype)}, expected {dtype}")
    if problems:
        raise DataError(f"{path} does not match the model: {'; '.join(problems[:6])}"
                        + (f"; and {len(problems) - 6} more" if len(problems) > 6 else ""))


def _some(names: list[str], shown: int = 5) -> str:
    text = ", ".join(names[:shown])
    return text + (f" and {len(names) - shown} more" if len(names) > shown else "")
