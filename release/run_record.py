"""Read a pipeline `run.json` defensively, and keep secrets out of anything published.

Layout written by mintline's journal (any part may be missing or malformed; a stage that never
ran is simply absent):

    {"run": {"created_at", "mintline_version", ...},
     "stages": {"prepare": {"config", "inputs", "outputs", "figures", "started_at", "finished_at", "status"},
                "pretrain": ..., "align": ..., "watermark": ...}}

Everything read here ends up in a public model card or provenance file, so every mapping goes
through `redact`, which drops keys that name secrets (passwords, API keys, private keys,
watermark secrets) while keeping public identifiers (`key_id`, `public_key_id`, `fingerprint`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from release.errors import ReleaseError

_PUBLIC_KEY_NAMES = re.compile(r"(key_id|public_key|fingerprint|key_fingerprint|public_key_id)$", re.IGNORECASE)
_SECRET_KEY_NAMES = re.compile(
    r"secret|private|passw|passphrase|api[_-]?key|credential|(^|_)auth($|_)|authorization|hashing_key|(^|_)salt$"
    r"|(^|_)keys?($|_)|(^|_)token($|_)",
    re.IGNORECASE,
)
REDACTED = "[redacted]"


def is_secret_key(name: str) -> bool:
    return bool(_SECRET_KEY_NAMES.search(name)) and not _PUBLIC_KEY_NAMES.search(name)


def redact(value: Any) -> Any:
    """A copy of `value` without secret-named entries (at any depth)."""
    if isinstance(value, dict):
        return {str(k): redact(v) for k, v in value.items() if not is_secret_key(str(k))}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


@dataclass
class Stage:
    name: str
    status: str | None = None
    config: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None


@dataclass
class RunRecord:
    header: dict = field(default_factory=dict)
    stages: dict[str, Stage] = field(default_factory=dict)
    path: str | None = None

    def stage(self, name: str) -> Stage | None:
        return self.stages.get(name)

    def figures(self, *names: str) -> dict:
        """Figures of the named stages merged (later names win)."""
        merged: dict = {}
        for name in names:
            if name in self.stages:
                merged.update(self.stages[name].figures)
        return merged

    def started_at(self) -> str | None:
        times = [s.started_at for s in self.stages.values() if isinstance(s.started_at, str)]
        return min(times) if times else self.header.get("created_at")

    def finished_at(self) -> str | None:
        times = [s.finished_at for s in self.stages.values() if isinstance(s.finished_at, str)]
        return max(times) if times else None


def load_run_record(path: str | os.PathLike | None) -> RunRecord:
    """An empty record for None; a typed error only if the file is missing or not JSON."""
    if path is None:
        return RunRecord()
    path = Path(path)
    if path.is_dir():
        path = path / "run.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReleaseError(f"run_json: no such file: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReleaseError(f"run_json: {path} is not readable JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ReleaseError(f"run_json: {path} does not hold a JSON object")
    header = document.get("run") if isinstance(document.get("run"), dict) else {}
    stages = {}
    raw_stages = document.get("stages") if isinstance(document.get("stages"), dict) else {}
    for name, raw in raw_stages.items():
        if not isinstance(raw, dict):
            continue
        stages[str(name)] = Stage(
            name=str(name),
            status=raw.get("status") if isinstance(raw.get("status"), str) else None,
            config=redact(_mapping(raw.get("config"))),
            figures=redact(_mapping(raw.get("figures"))),
            inputs=_mapping(raw.get("inputs")),
            outputs=_mapping(raw.get("outputs")),
            started_at=raw.get("started_at") if isinstance(raw.get("started_at"), str) else None,
            finished_at=raw.get("finished_at") if isinstance(raw.get("finished_at"), str) else None,
        )
    # argv may carry a passphrase or token typed on a command line: never republish it.
    safe_header = {k: v for k, v in redact(header).items() if k != "argv"}
    return RunRecord(header=safe_header, stages=stages, path=os.fspath(path))


def find_number(figures: dict, *patterns: str) -> float | int | None:
    """The first numeric figure whose (flattened) key matches one of the regex patterns."""
    flat = flatten(figures)
    for pattern in patterns:
        regex = re.compile(pattern, re.IGNORECASE)
        for key, value in flat.items():
            if regex.search(key) and isinstance(value, (int, float)) and not isinstance(value, bool):
                return value
    return None


def find_text(mapping: dict, *patterns: str) -> str | None:
    flat = flatten(mapping)
    for pattern in patterns:
        regex = re.compile(pattern, re.IGNORECASE)
        for key, value in flat.items():
            if regex.search(key) and isinstance(value, str) and value:
                return value
    return None


def flatten(mapping: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}
