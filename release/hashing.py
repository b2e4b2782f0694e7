"""Bytes → SHA-256 digests, for many files at once, in flat memory.

The lowest layer of signing and verification (model-transparency's `_hashing/`): it knows
nothing about manifests or bundles, only "hash these files" (and, for bundle assembly, "copy
these files and hash the bytes on the way through", so a build reads every byte once).

Why it is fast and stays flat on multi-GB weights:

* **parallel over files**: a small pool of threads (one per core by default) pulls jobs from a
  shared queue. `hashlib` and `FileIO.readinto` release the GIL on large buffers, so threads
  really run on separate cores.
* **largest first**: jobs are taken in decreasing size, so one big file never starts last and
  leaves the other cores idle (longest-processing-time-first scheduling).
* **large files in shards**: a file is streamed through one reused buffer per worker, shard
  after shard (`chunk_size`, 1 MiB); the kernel is told the access is sequential so it reads
  ahead while the previous shard is hashed. Memory is `workers × chunk_size`, whatever the
  file sizes. (SHA-256 of one file is inherently sequential, and the model-signing v1.0
  `files` layout wants one digest per file, so shards of one file are hashed in order.)
* files are opened without following symlinks (unless asked) and must be regular files: a
  FIFO planted in a bundle cannot hang verification.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

CHUNK_SIZE = 1 << 20
ALGORITHM = "sha256"


@dataclass(frozen=True)
class HashJob:
    """Hash the file at `path`, recorded under `name`; optionally copy its bytes to `copy_to`."""

    name: str
    path: Path
    size: int = 0  # expected size: only used to schedule big files first and for progress
    copy_to: Path | None = None


@dataclass
class HashReport:
    digests: dict[str, str] = field(default_factory=dict)  # name -> hex digest
    sizes: dict[str, int] = field(default_factory=dict)  # name -> bytes actually read
    errors: dict[str, str] = field(default_factory=dict)  # name -> why it could not be read
    seconds: float = 0.0
    workers: int = 1

    @property
    def bytes_hashed(self) -> int:
        return sum(self.sizes.values())

    def figures(self) -> dict:
        seconds = max(self.seconds, 1e-9)
        return {
            "files_hashed": len(self.digests),
            "bytes_hashed": self.bytes_hashed,
            "hash_seconds": round(self.seconds, 3),
            "hash_mb_per_s": round(self.bytes_hashed / seconds / 1e6, 1),
            "hash_workers": self.workers,
        }


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_files(
    jobs: Iterable[HashJob],
    *,
    workers: int | None = None,
    chunk_size: int = CHUNK_SIZE,
    follow_symlinks: bool = False,
    progress: Callable[[int], None] | str | None = None,
) -> HashReport:
    """Hash every job's file; never raises for an unreadable file (see `HashReport.errors`).

    `progress` is a callback taking a byte count, or a label for a tqdm bar over all bytes.
    """
    pending = sorted(jobs, key=lambda job: job.size, reverse=True)
    if isinstance(progress, str):
        total = sum(job.size for job in pending)
        if not total:  # nothing worth a bar (e.g. every digest was already known)
            return hash_files(pending, workers=workers, chunk_size=chunk_size, follow_symlinks=follow_symlinks)
        bar = ByteProgress(total, progress)
        try:
            return hash_files(
                pending, workers=workers, chunk_size=chunk_size, follow_symlinks=follow_symlinks, progress=bar
            )
        finally:
            bar.close()
    workers = max(1, min(workers or default_workers(), len(pending) or 1))
    report = HashReport(workers=workers)
    lock = threading.Lock()
    queue = iter(pending)
    started = time.perf_counter()

    def work() -> None:
        buffer = bytearray(chunk_size)  # one buffer per worker, reused for every shard
        while True:
            with lock:
                job = next(queue, None)
            if job is None:
                return
            try:
                digest, size = _hash_one(job, buffer, follow_symlinks, progress)
            except OSError as exc:
                with lock:
                    report.errors[job.name] = _describe(exc)
                continue
            with lock:
                report.digests[job.name] = digest
                report.sizes[job.name] = size

    if workers == 1:
        work()
    else:
        threads = [threading.Thread(target=work, name=f"hash-{i}", daemon=True) for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    report.seconds = time.perf_counter() - started
    return report


class ByteProgress:
    """A tqdm bar over bytes that several hashing threads may advance at once.

    tqdm reads TQDM_DISABLE itself (the CLI's -q sets it), so `disable=` is never passed here.
    """

    def __init__(self, total: int, desc: str):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False)
        self._lock = threading.Lock()

    def __call__(self, count: int) -> None:
        with self._lock:
            self._bar.update(count)

    def close(self) -> None:
        self._bar.close()


def _hash_one(job: HashJob, buffer: bytearray, follow_symlinks: bool, progress) -> tuple[str, int]:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW  # a symlink swapped in after listing fails with ELOOP
    fd = os.open(job.path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"not a regular file: {job.path}")
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        hasher = hashlib.sha256()
        view = memoryview(buffer)
        total = 0
        sink = open(job.copy_to, "xb") if job.copy_to is not None else None  # noqa: SIM115
        try:
            with open(fd, "rb", buffering=0, closefd=False) as source:
                while count := source.readinto(buffer):
                    chunk = view[:count]
                    hasher.update(chunk)
                    if sink is not None:
                        sink.write(chunk)
                    total += count
                    if progress is not None:
                        progress(count)
            if sink is not None:
                sink.flush()
                os.fsync(sink.fileno())
        finally:
            if sink is not None:
                sink.close()
        return hasher.hexdigest(), total
    finally:
        os.close(fd)


def _describe(exc: OSError) -> str:
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc) or type(exc).__name__
