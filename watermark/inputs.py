"""Texts to detect, from files, JSON Lines or stdin: every unusable input is an error naming it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from watermark.errors import InputTextError


def read_inputs(paths: list[str]) -> list[tuple[str, str, str | None]]:
    """(source, text, prompt) for every input; empty, missing or non-UTF-8 input is an error naming it."""
    items: list[tuple[str, str, str | None]] = []
    for name in paths:
        if name == "-":
            raw = sys.stdin.buffer.read()
            source = "<stdin>"
        else:
            try:
                raw = Path(name).read_bytes()
            except FileNotFoundError:
                raise InputTextError(f"{name}: no such file") from None
            except IsADirectoryError:
                raise InputTextError(f"{name}: is a directory, not a text file") from None
            except OSError as exc:
                raise InputTextError(f"{name}: cannot read ({exc.strerror})") from None
            source = name
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputTextError(f"{source}: not UTF-8 text (invalid byte at offset {exc.start})") from None
        if not text.strip():
            raise InputTextError(f"{source}: empty input; nothing to detect")
        if name.endswith(".jsonl"):
            items.extend(_jsonl_items(source, text))
        else:
            items.append((source, text, None))
    return items


def _jsonl_items(source: str, text: str) -> list[tuple[str, str, str | None]]:
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputTextError(f"{source} line {number}: invalid JSON ({exc.msg})") from None
        body = record.get("text", record.get("completion")) if isinstance(record, dict) else None
        if not isinstance(body, str) or not body.strip():
            raise InputTextError(f"{source} line {number}: needs a non-empty 'text' or 'completion' string")
        prompt = record.get("prompt") if "completion" in record and "text" not in record else None
        items.append((f"{source}:{number}", body, prompt if isinstance(prompt, str) else None))
    if not items:
        raise InputTextError(f"{source}: empty input; no texts in the JSON Lines file")
    return items
