"""Hashing and serialization: correct digests, parallel == serial, flat memory, model-signing order."""

from __future__ import annotations

import hashlib
import os
import tracemalloc

from release.hashing import HashJob, hash_files
from release.manifest import Manifest
from release.serialization import list_files, sort_key


def write_tree(root, sizes):
    root.mkdir(parents=True, exist_ok=True)
    rng = os.urandom
    for name, size in sizes.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng(size))


def test_digests_match_hashlib_parallel_and_serial(tmp_path):
    sizes = {
        "empty": 0,
        "one": 1,
        "chunk": 1 << 20,
        "chunk_plus": (1 << 20) + 7,
        "big.safetensors": 3 * (1 << 20) + 5,
        "d/e/f": 4097,
    }
    write_tree(tmp_path, sizes)
    jobs = [HashJob(n, tmp_path / n, s) for n, s in sizes.items()]
    expected = {n: hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in sizes}
    for workers in (1, 2, 4):
        report = hash_files(jobs, workers=workers, chunk_size=64 << 10)
        assert report.digests == expected and not report.errors
        assert report.bytes_hashed == sum(sizes.values())


def test_copy_while_hashing_writes_identical_bytes(tmp_path):
    write_tree(tmp_path / "src", {"a": 300_001, "b/c": 5})
    (tmp_path / "dst" / "b").mkdir(parents=True)
    jobs = [HashJob(n, tmp_path / "src" / n, 0, copy_to=tmp_path / "dst" / n) for n in ("a", "b/c")]
    report = hash_files(jobs, workers=2)
    for name in ("a", "b/c"):
        data = (tmp_path / "src" / name).read_bytes()
        assert (tmp_path / "dst" / name).read_bytes() == data
        assert report.digests[name] == hashlib.sha256(data).hexdigest()


def test_memory_stays_flat_on_a_large_file(tmp_path):
    big = tmp_path / "weights.safetensors"
    with open(big, "wb") as handle:
        block = os.urandom(1 << 20)
        for _ in range(48):
            handle.write(block)
    tracemalloc.start()
    try:
        report = hash_files([HashJob("w", big, big.stat().st_size)], workers=2, chunk_size=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.bytes_hashed == 48 << 20
    assert peak < 4 << 20, f"peak Python allocations {peak} bytes while hashing 48 MiB"


def test_unreadable_and_special_files_are_errors_not_hangs(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "target").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    report = hash_files(
        [HashJob("fifo", tmp_path / "fifo"), HashJob("link", tmp_path / "link"), HashJob("gone", tmp_path / "gone")]
    )
    assert set(report.errors) == {"fifo", "link", "gone"} and not report.digests
    listing = list_files(tmp_path)
    assert any("fifo is not a regular file" in p for p in listing.problems)
    assert any("link is a symlink" in p for p in listing.problems)


def test_order_and_root_digest_match_stock_model_signing(tmp_path):
    """Our manifest of a directory equals what `model_signing` computes for it, item for item."""
    from model_signing import hashing as stock_hashing

    write_tree(tmp_path / "m", {"a.txt": 10, "a/b": 20, "a-b": 5, "A": 3, "z/y/x.safetensors": 100, "model.sig": 7})
    stock = stock_hashing.Config().set_ignored_paths(paths=["model.sig"]).hash(tmp_path / "m")
    stock_items = [(d.identifier, d.digest.digest_hex) for d in stock.resource_descriptors()]

    listing = list_files(tmp_path / "m")
    report = hash_files([HashJob(e.name, e.path, e.size) for e in listing.files])
    ours = Manifest.from_digests("m", report.digests)
    assert [(r.name, r.digest) for r in ours.resources] == stock_items
    assert [e.name for e in listing.files] == sorted((e.name for e in listing.files), key=sort_key)
    assert listing.ignored == ["model.sig"]
