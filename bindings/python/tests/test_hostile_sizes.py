"""Files whose headers claim enormous sizes, and a gzip bomb, are rejected with a clear error
while memory stays bounded.

Each load runs in a fresh interpreter whose address space is limited (RLIMIT_AS) to what it
uses after a warm-up plus HEADROOM: whatever a hostile file claims, the library may take at
most that much more, and must say what is wrong instead of crashing or being killed.

Why the limit is set after a warm-up and not before the interpreter starts: the interpreter
with numpy and the library loaded needs about 560-640 MiB of address space (measured with
RLIMIT_AS set by preexec_fn: Python, numpy's and Debian's OpenBLAS, libomp's and Swift's
thread stacks, and a 128 MiB buffer OpenBLAS maps for each thread on its first matrix
product). Below that, OpenBLAS does not fail but spins forever in its allocator, and where
exactly the threshold lies varies from run to run. After one training step all of that is
mapped, so "current size + HEADROOM" bounds exactly what the code under test may add.
"""
from __future__ import annotations

import gzip
import json
import struct
import zlib
from pathlib import Path

import pytest

from conftest import run_python

TESTS_DIR = Path(__file__).resolve().parent
HEADROOM = 1 << 30           # what a hostile load may add to the warmed-up address space
ZERO_MEMBER_BYTES = 64 << 20  # one gzip member of zeros; members repeat to make a bomb


def limited(cases: list[tuple[str, str, str]]) -> list[dict]:
    """Runs each (kind, first path, second path) load in one fresh interpreter under the
    address-space limit; returns per case the exception's class and message (or "ok"), and
    how far the peak resident size grew during it (MiB)."""
    out = run_python(f"import sys; sys.path.insert(0, {str(TESTS_DIR)!r})\n"
                     f"import test_hostile_sizes\ntest_hostile_sizes.child({cases!r}, {HEADROOM})\n", timeout=300)
    return [json.loads(line) for line in out.splitlines()]


def child(cases, headroom: int) -> None:  # runs in the limited interpreter
    import resource

    import numpy as np

    import descent
    net = descent.Network([784, 100, 10])  # warm-up: BLAS and thread buffers get mapped
    net.train_step(np.zeros((64, 784), np.float32), np.zeros(64, np.int32))
    with open("/proc/self/statm") as f:
        size = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (size + headroom, size + headroom))

    for kind, first, second in cases:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            if kind == "checkpoint":
                descent.Network.load(first)
            elif kind == "idx":
                descent.datasets.load_idx(first, second)
            elif kind == "spec":
                descent.Network(json.loads(first))
            outcome = {"error": "none"}
        except descent.DescentError as e:
            outcome = {"error": type(e).__name__, "message": e.message}
        grown = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) // 1024
        print(json.dumps({**outcome, "peak_growth_mib": grown}), flush=True)


def idx_header(*dimensions: int) -> bytes:
    return struct.pack(">BBBB", 0, 0, 8, len(dimensions)) + struct.pack(f">{len(dimensions)}I", *dimensions)


def gzip_bomb(path: Path, header: bytes, gigabytes: int) -> int:
    """A gzip file: the IDX header, then `gigabytes` GiB of zero bytes. Built as one member of
    64 MiB of zeros compressed once (about 64 KiB) and written again and again: gzip readers
    read concatenated members as one stream. Returns the file's size."""
    zeros = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = zeros.compress(bytes(ZERO_MEMBER_BYTES)) + zeros.flush()
    with open(path, "wb") as f:
        f.write(gzip.compress(header))
        for _ in range(gigabytes * (1 << 30) // ZERO_MEMBER_BYTES):
            f.write(member)
    return path.stat().st_size


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    files = {}

    def put(name, data: bytes):
        files[name] = d / name
        files[name].write_bytes(data)
        return str(files[name])

    cases = {
        # The 8-byte header length claims 4 PiB.
        "checkpoint": ("checkpoint", put("huge-header.st", struct.pack("<Q", 1 << 52) + b'{"a":1}'), ""),
        # Raw images claiming 2,000,000 28x28 images (1.57 GB) with 16 bytes of data.
        "raw images": ("idx", put("raw-images", idx_header(2_000_000, 28, 28) + bytes(16)),
                       put("labels-2m", idx_header(2_000_000) + bytes(2_000_000))),
        # Labels claiming 2^31 - 1 entries (8 bytes of data), behind gzip images claiming as many.
        "raw labels": ("idx", put("images-max.gz", gzip.compress(idx_header(2**31 - 1, 1, 1) + bytes(8))),
                       put("raw-labels-max", idx_header(2**31 - 1) + bytes(8))),
        # The same claim as "raw images", gzip-compressed: the length is known only by reading.
        "gzip images": ("idx", put("gz-images.gz", gzip.compress(idx_header(2_000_000, 28, 28) + bytes(100))),
                        str(d / "labels-2m")),
        "spec": ("spec", json.dumps([100_000, 100_000, 10]), ""),
    }
    # Gzip bombs: 4 GiB of zeros in about 4 MiB, behind a header claiming 10 images (the
    # zeros are extra data), 1,000,000 images (784 MB: within the headroom, the rest extra),
    # and 2,000,000 images (1.57 GB: more than the headroom).
    bomb_header = {"bomb small claim": 10, "bomb 784 MB claim": 1_000_000, "bomb 1.57 GB claim": 2_000_000}
    sizes = {}
    for name, count in bomb_header.items():
        path = d / f"{count}.bomb.gz"
        sizes[name] = gzip_bomb(path, idx_header(count, 28, 28), 4)
        labels = put(f"labels-{count}", idx_header(count) + bytes(count))
        cases[name] = ("idx", str(path), labels)
    outcomes = limited(list(cases.values()))
    return dict(zip(cases, outcomes)), files, sizes, d


def test_the_bombs_are_small_files_expanding_to_gigabytes(results):
    _, _, sizes, _ = results
    for name, size in sizes.items():
        assert size < 8 << 20, (name, size)  # 4 GiB of data in less than 8 MiB


def test_a_checkpoint_header_length_of_4_pib(results):
    outcome, files, _, _ = results
    assert outcome["checkpoint"] == {
        "error": "FormatError", "peak_growth_mib": 0,
        "message": f"descent_net_load: '{files['huge-header.st']}': the header length is 4503599627370496 bytes; "
                   "at most 100000000 are allowed"}


def test_raw_idx_files_claiming_huge_counts(results):
    outcome, files, _, _ = results
    assert outcome["raw images"] == {
        "error": "FormatError", "peak_growth_mib": 0,
        "message": f"descent_dataset_load_idx: images file '{files['raw-images']}' is truncated: 32 bytes, "
                   "expected 1568000016 (16-byte header + 1568000000 data bytes for 2000000 x 28 x 28)"}
    assert outcome["raw labels"] == {
        "error": "FormatError", "peak_growth_mib": 0,
        "message": f"descent_dataset_load_idx: labels file '{files['raw-labels-max']}' is truncated: 16 bytes, "
                   "expected 2147483655 (8-byte header + 2147483647 data bytes for 2147483647)"}


def test_gzip_idx_files_claiming_huge_counts_cost_only_what_they_hold(results):
    outcome, files, _, _ = results
    gz_images = outcome["gzip images"]
    assert gz_images["error"] == "FormatError" and gz_images["message"] == (
        f"descent_dataset_load_idx: images file '{files['gz-images.gz']}' is truncated: 116 bytes after "
        "decompression, expected 1568000016 (16-byte header + 1568000000 data bytes for 2000000 x 28 x 28)")
    # The first buffer for data of unknown length is 16 MiB; nothing grows with the claim.
    assert gz_images["peak_growth_mib"] <= 32, gz_images


def test_a_gzip_bomb_stops_at_the_declared_size(results):
    outcome, _, _, d = results
    small = outcome["bomb small claim"]
    # 10 images: 7,840 data bytes; the zeros after them are counted up to 16 MiB for the message.
    assert small == {
        "error": "FormatError", "peak_growth_mib": small["peak_growth_mib"],
        "message": f"descent_dataset_load_idx: images file '{d}/10.bomb.gz' has more than 16785072 bytes after "
                   "decompression, more than the 7856 expected (16-byte header + 7840 data bytes for 10 x 28 x 28): "
                   "extra bytes after the data"}
    assert small["peak_growth_mib"] <= 32, small
    big = outcome["bomb 784 MB claim"]
    assert big["error"] == "FormatError" and big["message"] == (
        f"descent_dataset_load_idx: images file '{d}/1000000.bomb.gz' has more than 800777232 bytes after "
        "decompression, more than the 784000016 expected (16-byte header + 784000000 data bytes for "
        "1000000 x 28 x 28): extra bytes after the data")
    assert big["peak_growth_mib"] <= 784 * 1.1, big  # the claim, not the 4 GiB


def test_a_gzip_bomb_claiming_more_than_the_limit_is_out_of_memory(results):
    outcome, _, _, _ = results
    over = outcome["bomb 1.57 GB claim"]
    assert over["error"] == "OutOfMemory", over
    assert over["message"].startswith("descent_dataset_load_idx: cannot allocate "), over
    assert over["message"].endswith(" bytes for IDX data"), over


def test_a_network_spec_of_40_gb(results):
    outcome, _, _, _ = results
    assert outcome["spec"] == {
        "error": "OutOfMemory", "peak_growth_mib": 0,
        # All parameters are one block: W1 10^10 floats, b1 10^5, W2 10^6, b2 10 padded to 16.
        "message": "descent_net_create: the parameter arena: cannot allocate 10001100016 floats (40004400064 bytes)"}
