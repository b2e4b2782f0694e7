"""Atomic file writes: write beside the target, then rename over it.

A reader sees the old file or the new one, never half of one, and a failed write leaves no
temporary file behind. Each stage package keeps its own few lines of this (DESIGN.md lets none
of them import another).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; it replaces `path` only if the block finishes without error.

    `suffix` ends the temporary name: numpy's savers append `.npy` / `.npz` to a name without it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
