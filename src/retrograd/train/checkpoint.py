"""Saving and loading: weights in the safetensors format (PyTorch's key names, so
safetensors.torch.load_file reads them into a torch model), and full training checkpoints.

Both are written atomically: to a temporary file in the same folder, flushed to disk, then
renamed over the target, so a crash or a kill during the write leaves the previous file intact.
Nothing is ever unpickled: a checkpoint is an .npz of arrays plus a JSON document, sealed with
a SHA-256 digest of both, so a damaged file is refused in one line (CheckpointError) instead of
loading different content or failing deep inside zipfile.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable

import numpy as np

from ..data.safetensors_file import check_state, encode_safetensors, load_safetensors

__all__ = ["CheckpointError", "atomic_write", "remove_stale_temporaries", "save_safetensors",
           "load_safetensors", "check_state", "save_checkpoint", "load_checkpoint"]


class CheckpointError(ValueError):
    """A checkpoint file cannot be loaded (missing, unreadable or damaged); one line."""


# Temporary files are named .tmp-<host>-<pid>-<random>-<target>, so a later write can tell a
# leftover of a killed writer (its process is gone) from a file another process is writing
# right now (its process is alive: never touched). The host tag (machine name and, on Linux,
# pid namespace) keeps a folder shared between machines or containers safe: a pid is only
# checked where it means that process.


def _host_tag() -> str:
    ident = socket.gethostname()
    try:
        ident += f"/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:  # not Linux
        pass
    return format(zlib.crc32(ident.encode()), "08x")


_HOST = _host_tag()
_TEMP = re.compile(r"\.tmp-([0-9a-f]{8})-(\d+)-")
# Before pids were in the name, temporaries were .tmp-<8 random chars><target>. Those carry no
# owner, so only age can tell: a live write keeps its file's mtime fresh (every write() updates
# it; only the final fsync and rename follow the last one, seconds at most), so one untouched
# for 10 minutes has no writer left.
_LEGACY_TEMP = re.compile(r"\.tmp-[a-z0-9_]{8}.")
LEGACY_TEMP_AGE = 600.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError) as exc:
        return isinstance(exc, PermissionError)  # another user's live process / not a pid
    return True  # (a zombie counts as alive: its file goes once it is reaped)


def remove_stale_temporaries(folder: str) -> list[str]:
    """Remove the temporary files of killed writers in `folder`; returns their paths.

    Removed: ours (this machine) whose writer process no longer exists, and old-style ones
    untouched for LEGACY_TEMP_AGE seconds. A temporary of a live process is never touched."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(".tmp-"):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            owner = _TEMP.match(entry.name)
            if owner:
                if owner.group(1) != _HOST or _alive(int(owner.group(2))):
                    continue
            elif not (_LEGACY_TEMP.match(entry.name)
                      and now - entry.stat(follow_symlinks=False).st_mtime > LEGACY_TEMP_AGE):
                continue
            os.unlink(entry.path)
            removed.append(entry.path)
        except OSError:  # gone already (another cleaner), or not ours to remove: leave it
            continue
    return removed


def atomic_write(path: str, write: Callable) -> None:
    """Call write(file) on a temporary file next to `path`, then rename it over `path`;
    first remove the temporaries that killed writers left in that folder.

    The file gets the permissions a plain open() would give it (mkstemp makes it 0600)."""
    folder = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{_HOST}-{os.getpid()}-",
                               suffix="-" + os.path.basename(path), dir=folder)
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
    """Write name -> array in the safetensors format (little-endian, C order), atomically."""
    pieces = encode_safetensors(tensors, metadata)

    def write(f):
        for piece in pieces:
            f.write(piece)

    atomic_write(path, write)


def _flatten(tree, prefix: str, arrays: dict) -> object:
    """JSON-able copy of `tree` with every ndarray moved into `arrays` under a path key."""
    if isinstance(tree, np.ndarray):
        if tree.dtype.hasobject:  # np.savez would pickle it
            raise TypeError(f"cannot save an array of Python objects in a checkpoint (at "
                            f"{prefix})")
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


def _digest(document: bytes, arrays: dict[str, np.ndarray]) -> bytes:
    """SHA-256 of the document and of every array's name, dtype, shape and bytes."""
    h = hashlib.sha256(b"retrograd-checkpoint\n")
    h.update(len(document).to_bytes(8, "little") + document)
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        head = json.dumps([name, a.dtype.str, list(a.shape)]).encode()
        h.update(len(head).to_bytes(8, "little") + head)
        h.update(a.reshape(-1).view(np.uint8))
    return h.digest()


def save_checkpoint(state: dict, path: str) -> None:
    """Save a nested dict of arrays, numbers, strings, lists and dicts (model and optimizer
    state dicts, RNG state, epoch, config...) atomically as .npz + JSON + SHA-256; no pickle."""
    arrays: dict[str, np.ndarray] = {}
    document = json.dumps(_flatten(state, "s", arrays)).encode()
    digest = _digest(document, arrays)

    def write(f):
        np.savez(f, __document__=np.frombuffer(document, dtype=np.uint8),
                 __sha256__=np.frombuffer(digest, dtype=np.uint8), **arrays)

    atomic_write(path, write)


class _Damage(Exception):
    """Why the bytes are not the checkpoint that was written."""


def _read_member(data: bytes, name: str) -> np.ndarray:
    """An array from .npy bytes, as np.load gives it, after checking the header against the
    size (a corrupt shape must not allocate terabytes)."""
    fp = io.BytesIO(data)
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        raise _Damage(f"array {name!r} has .npy format version {version}")
    if dtype.hasobject:
        raise _Damage(f"array {name!r} holds Python objects")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(data) - fp.tell():
        raise _Damage(f"array {name!r}: shape {shape} of {dtype} does not fit its "
                      f"{len(data) - fp.tell()} bytes")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=fp.tell())
    array = array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)
    return array.copy(order="K")


def _read_arrays(raw: bytes) -> dict[str, np.ndarray]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile:
        raise _Damage("not a complete zip archive (truncated?)") from None
    arrays = {}
    for info in archive.infolist():
        # np.savez stores members uncompressed and unencrypted; anything else is damage, and
        # is refused before zipfile tries a decompressor on it
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 1:
            raise _Damage(f"member {info.filename!r} is not stored as np.savez stores it")
        if info.file_size != info.compress_size or info.file_size > len(raw):
            raise _Damage(f"member {info.filename!r} has inconsistent sizes")
        if not info.filename.endswith(".npy") or info.filename[:-4] in arrays:
            raise _Damage(f"unexpected member {info.filename!r}")
        name = info.filename[:-4]
        arrays[name] = _read_member(archive.read(info), name)  # checks the member's CRC-32
    return arrays


def load_checkpoint(path: str) -> dict:
    """The dict saved by save_checkpoint, exactly; CheckpointError (one line naming the file)
    if it is missing, unreadable, damaged or not a checkpoint."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    try:
        arrays = _read_arrays(raw)
        if "__document__" not in arrays or "__sha256__" not in arrays:
            raise _Damage("no document or digest inside: not a retrograd checkpoint, or one "
                          "written before checkpoints carried a digest")
        document = arrays.pop("__document__").tobytes()
        if arrays.pop("__sha256__").tobytes() != _digest(document, arrays):
            raise _Damage("its contents do not match their SHA-256 digest")
        return _unflatten(json.loads(document.decode("utf-8")), arrays)
    except _Damage as exc:
        raise CheckpointError(f"checkpoint {path} is damaged: {exc}") from None
    except MemoryError:
        raise
    except Exception as exc:
        # Any other failure while parsing these bytes is damage too: zipfile alone raises
        # BadZipFile, EOFError, struct.error, ValueError, NotImplementedError and more on
        # corrupt headers (tests/test_checkpoint.py fuzzes truncations and bit flips)
        reason = " ".join(str(exc).split())[:120]
        raise CheckpointError(f"checkpoint {path} is damaged: {type(exc).__name__}"
                              + (f": {reason}" if reason else "")) from None
