"""Checkpoint integrity: a checkpoint counts only once it is sealed.

The Trainer writes `checkpoint-N/` file by file, so a crash (or SIGKILL) can leave a partial
one. After the Trainer finishes a checkpoint we write `mintline-sealed.json` holding the size
and SHA-256 of every file in it; on resume, the newest checkpoint whose seal matches is used,
and any newer, broken one is set aside (renamed `*.corrupt`) with a message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

from pretrain.atomic import atomic_write_text

log = logging.getLogger("pretrain")

SEAL_NAME = "mintline-sealed.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
REQUIRED_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


def _sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def seal(checkpoint: Path) -> None:
    files = {
        p.relative_to(checkpoint).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(checkpoint.rglob("*"))
        if p.is_file() and p.name != SEAL_NAME
    }
    atomic_write_text(checkpoint / SEAL_NAME, json.dumps({"files": files}, indent=1))


def check(checkpoint: Path) -> str | None:
    """None if the checkpoint is sealed and intact, else why not."""
    seal_path = checkpoint / SEAL_NAME
    if not seal_path.is_file():
        return "not sealed (the save was interrupted)"
    try:
        files = json.loads(seal_path.read_text())["files"]
    except (OSError, ValueError, KeyError) as exc:
        return f"unreadable seal ({exc})"
    for required in REQUIRED_FILES:
        if required not in files:
            return f"missing {required}"
    if not any(name.endswith(".safetensors") for name in files):
        return "no weights"
    for name, expected in files.items():
        path = checkpoint / name
        if not path.is_file():
            return f"missing {name}"
        if path.stat().st_size != expected["size"]:
            return f"{name} has {path.stat().st_size} bytes, sealed with {expected['size']}"
        if _sha256(path) != expected["sha256"]:
            return f"{name} does not match its sealed digest"
    return None


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    found = []
    if output_dir.is_dir():
        for child in output_dir.iterdir():
            match = _CHECKPOINT.match(child.name)
            if match and child.is_dir():
                found.append((int(match.group(1)), child))
    return sorted(found)


def latest_good_checkpoint(output_dir: Path) -> Path | None:
    """The newest intact checkpoint; broken newer ones are renamed aside so the Trainer ignores them."""
    for step, checkpoint in reversed(list_checkpoints(output_dir)):
        problem = check(checkpoint)
        if problem is None:
            return checkpoint
        aside = checkpoint.with_name(f"{checkpoint.name}.corrupt")
        log.warning("checkpoint-%d is unusable: %s; set aside as %s, trying an older one", step, problem, aside.name)
        if aside.exists():
            import shutil

            shutil.rmtree(aside)
        checkpoint.rename(aside)
    return None
