"""Checkpoints: exact round trips, damaged files refused in one line (fuzzed: every truncation,
a bit flip at every byte), and atomic writes whose leftovers from killed writers are removed by
the next write (a real process killed with SIGKILL in the middle of a large write)."""

import io
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from retrograd.train import checkpoint as ckpt


def sample_state():
    rng = np.random.default_rng(0)
    return {
        "format": "retrograd-checkpoint-1", "epoch": 7, "best": (0.25, None), "ok": True,
        "model": {"0.weight": rng.standard_normal((4, 3)).astype(np.float32),
                  "0.bias": np.zeros(4, np.float32)},
        "optimizer": {"state": {0: {"step": 3,
                                    "exp_avg": np.asfortranarray(rng.standard_normal((3, 4)))}},
                      "param_groups": [{"lr": 1e-3, "params": [0, 1]}]},
        "rng": ("PCG64", np.arange(4, dtype=np.uint64), 2 ** 70),
        "flags": np.array([True, False]), "scalar": np.array(1.5),
        "empty": np.zeros((0, 3), np.int8), "name": "run \u00e9",
    }


def same(a, b) -> bool:
    """Equal content, types, dtypes, shapes, bytes and memory order."""
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
                and a.tobytes() == b.tobytes()
                and a.flags.f_contiguous == b.flags.f_contiguous
                and a.flags.c_contiguous == b.flags.c_contiguous)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return (type(a) is type(b) and len(a) == len(b)
                and all(same(x, y) for x, y in zip(a, b, strict=True)))
    return type(a) is type(b) and a == b


def test_round_trip_is_exact_and_readable_by_numpy_without_pickle(tmp_path):
    state = sample_state()
    path = str(tmp_path / "checkpoint.npz")
    ckpt.save_checkpoint(state, path)
    assert same(state, ckpt.load_checkpoint(path))
    with np.load(path, allow_pickle=False) as data:  # still a plain .npz
        assert {"__document__", "__sha256__"} <= set(data.files)


def outcome(path, state) -> str:
    """'same' if the file loads to exactly `state`, 'refused' if it raises the one-line
    CheckpointError naming the file; anything else fails the test."""
    try:
        back = ckpt.load_checkpoint(path)
    except ckpt.CheckpointError as exc:
        message = str(exc)
        assert isinstance(exc, ValueError)
        assert "\n" not in message and path in message and "damaged" in message, message
        return "refused"
    assert same(state, back), "a damaged file loaded different content"
    return "same"


def test_every_truncation_is_refused_in_one_line(tmp_path):
    state = sample_state()
    good = str(tmp_path / "good.npz")
    ckpt.save_checkpoint(state, good)
    raw = open(good, "rb").read()
    path = str(tmp_path / "checkpoint.npz")
    for n in range(len(raw)):
        with open(path, "wb") as f:
            f.write(raw[:n])
        assert outcome(path, state) == "refused", n


def test_bit_flips_anywhere_load_the_saved_content_or_are_refused(tmp_path):
    state = sample_state()
    good = str(tmp_path / "good.npz")
    ckpt.save_checkpoint(state, good)
    raw = open(good, "rb").read()
    rng = np.random.default_rng(13)
    # one flip at every byte (a seeded bit), then 2000 more anywhere
    flips = [(i, int(rng.integers(8))) for i in range(len(raw))]
    flips += [(int(rng.integers(len(raw))), int(rng.integers(8))) for _ in range(2000)]
    path = str(tmp_path / "checkpoint.npz")
    seen = {"same": 0, "refused": 0}
    for i, bit in flips:
        damaged = bytearray(raw)
        damaged[i] ^= 1 << bit
        with open(path, "wb") as f:
            f.write(damaged)
        seen[outcome(path, state)] += 1
    # most flips hit checked bytes; some hit bytes zipfile ignores (timestamps, local copies
    # of sizes) and load exactly what was saved
    assert seen["refused"] > len(flips) // 2 and seen["same"] > 0, seen


def member_data_ranges(raw: bytes) -> dict[str, range]:
    """Byte ranges of each member's stored data (the .npy bytes) in the zip file."""
    ranges = {}
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        for info in z.infolist():
            local = raw[info.header_offset:info.header_offset + 30]
            start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") \
                + int.from_bytes(local[28:30], "little")
            ranges[info.filename] = range(start, start + info.compress_size)
    return ranges


def test_every_flip_in_array_data_is_caught(tmp_path):
    state = sample_state()
    good = str(tmp_path / "good.npz")
    ckpt.save_checkpoint(state, good)
    raw = open(good, "rb").read()
    ranges = member_data_ranges(raw)
    assert len(ranges) == 9  # document, digest and the 7 arrays
    path = str(tmp_path / "checkpoint.npz")
    checked = 0
    for positions in ranges.values():
        for i in positions:
            for bit in range(8):
                damaged = bytearray(raw)
                damaged[i] ^= 1 << bit
                with open(path, "wb") as f:
                    f.write(damaged)
                assert outcome(path, state) == "refused", (i, bit)
                checked += 1
    assert checked > 8 * 1000


def rezip(raw: bytes, change) -> bytes:
    """The archive rewritten member by member with change(name, data) -> data or None (drop),
    so that every CRC-32 is valid again."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as z, zipfile.ZipFile(out, "w") as w:
        for info in z.infolist():
            data = change(info.filename, z.read(info))
            if data is not None:
                w.writestr(info.filename, data)
    return out.getvalue()


def test_the_digest_catches_changes_the_zip_checksums_cannot(tmp_path):
    """A rewritten archive has valid CRCs; only the SHA-256 tells it from the saved one."""
    state = sample_state()
    path = str(tmp_path / "checkpoint.npz")
    ckpt.save_checkpoint(state, path)
    raw = open(path, "rb").read()
    name = next(n for n in member_data_ranges(raw) if n.startswith("s/"))  # an array

    def flip_last_byte(member, data):
        return data[:-1] + bytes([data[-1] ^ 1]) if member == name else data

    def drop(member, data):
        return None if member == name else data

    for change in (flip_last_byte, drop):
        with open(path, "wb") as f:
            f.write(rezip(raw, change))
        with pytest.raises(ckpt.CheckpointError, match="do not match their SHA-256 digest"):
            ckpt.load_checkpoint(path)


def test_other_files_and_missing_files_are_one_line(tmp_path):
    path = str(tmp_path / "checkpoint.npz")
    for content in (b"", b"not a zip file at all", os.urandom(4096)):
        with open(path, "wb") as f:
            f.write(content)
        with pytest.raises(ckpt.CheckpointError, match="is damaged"):
            ckpt.load_checkpoint(path)
    np.savez(path, x=np.arange(3))  # a valid npz, but no document or digest
    with pytest.raises(ckpt.CheckpointError, match="not a retrograd checkpoint"):
        ckpt.load_checkpoint(path)
    with pytest.raises(ckpt.CheckpointError, match="cannot read checkpoint"):
        ckpt.load_checkpoint(str(tmp_path / "missing.npz"))


# --------------------------------------------------------------------- killed writers' files

WRITER = """
import sys
import numpy as np
from retrograd.train.checkpoint import save_checkpoint
big = np.zeros(2 ** 23)  # 64 MiB: each write takes long enough to be caught in the middle
version = 0
while True:
    version += 1
    big[0] = big[-1] = version
    save_checkpoint({"version": version, "big": big}, sys.argv[1])
"""


def temporaries(folder, pid=None):
    return [n for n in os.listdir(folder)
            if n.startswith(".tmp-") and (pid is None or f"-{pid}-" in n)]


def consistent(path) -> int:
    state = ckpt.load_checkpoint(path)
    big = state["big"]
    assert big[0] == big[-1] == state["version"]
    return state["version"]


def test_a_writer_killed_mid_write_leaves_the_target_intact_and_its_leftover_is_cleaned(
        tmp_path):
    path = str(tmp_path / "checkpoint.npz")
    ckpt.save_checkpoint({"version": 0, "big": np.zeros(4)}, path)
    for _attempt in range(10):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, path])
        deadline = time.monotonic() + 120
        try:
            while True:
                assert time.monotonic() < deadline, "the writer never got through a write"
                version = consistent(path)  # readable at every moment the writer replaces it
                mine = temporaries(tmp_path, proc.pid)
                # once the writer has replaced the file at least once, kill it in the middle
                # of writing the next one
                if version >= 1 and mine and os.path.getsize(tmp_path / mine[0]) > 0:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
        finally:
            proc.kill()
            proc.wait()  # reaped: its pid no longer exists
        assert proc.returncode == -signal.SIGKILL
        consistent(path)  # the target is the last complete version
        if temporaries(tmp_path, proc.pid):
            break  # (otherwise the kill landed between two writes: try again)
    else:
        pytest.fail("no kill landed in the middle of a write in 10 tries")
    ckpt.save_checkpoint({"version": "next", "big": np.ones(2)}, path)
    assert temporaries(tmp_path) == []
    assert ckpt.load_checkpoint(path)["version"] == "next"


SLOW_WRITER = """
import sys
from retrograd.train.checkpoint import atomic_write

def write(f):
    f.write(b"x" * 1000)
    f.flush()
    print("writing", flush=True)
    sys.stdin.readline()  # hold the temporary file open until told to finish
    f.write(b"y")

atomic_write(sys.argv[1], write)
print("done", flush=True)
"""


def test_the_temporary_file_of_a_live_writer_is_never_removed(tmp_path):
    target = str(tmp_path / "slow.bin")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, target], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        live = temporaries(tmp_path, proc.pid)
        assert len(live) == 1
        ckpt.atomic_write(str(tmp_path / "other.bin"), lambda f: f.write(b"z"))
        assert temporaries(tmp_path, proc.pid) == live  # untouched
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "done"
    finally:
        proc.kill()
        proc.wait()
    with open(target, "rb") as f:
        assert f.read() == b"x" * 1000 + b"y"
    assert temporaries(tmp_path) == []


def test_old_style_and_other_machines_temporaries(tmp_path):
    """Old-style names carry no pid: removed only once untouched for LEGACY_TEMP_AGE seconds.
    Names from another machine (host tag) are never removed: their pid means nothing here."""
    old = tmp_path / ".tmp-a1b2c3d4checkpoint.npz"
    fresh = tmp_path / ".tmp-e5f6g7h8checkpoint.npz"
    foreign = tmp_path / ".tmp-00000000-1-abcdefgh-checkpoint.npz"
    if ckpt._HOST == "00000000":
        foreign = tmp_path / ".tmp-00000001-1-abcdefgh-checkpoint.npz"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    ours_dead = tmp_path / f".tmp-{ckpt._HOST}-{int(dead.stdout)}-abcdefgh-checkpoint.npz"
    not_ours = tmp_path / ".tmp-notes.txt"
    for p in (old, fresh, foreign, ours_dead, not_ours):
        p.write_bytes(b"partial")
    past = time.time() - ckpt.LEGACY_TEMP_AGE - 60
    for p in (old, foreign, not_ours):
        os.utime(p, (past, past))
    ckpt.save_checkpoint({"epoch": 1}, str(tmp_path / "checkpoint.npz"))
    left = set(os.listdir(tmp_path))
    assert old.name not in left and ours_dead.name not in left
    assert {fresh.name, foreign.name, not_ours.name, "checkpoint.npz"} == left
