"""Reading preference files (TRL `prompt`/`chosen`/`rejected`, or hh-rlhf whole dialogues) with numbered checks.

A file is JSONL (`.jsonl`, `.jsonl.gz`; rows numbered by line) or Parquet (`.parquet`; rows
numbered from 1 in file order).

Bad rows do not stop a run: each one is reported with its line number and reason, counted, and
skipped. Only a file with no usable row at all is an error.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from alignment.errors import PreferenceDataError

log = logging.getLogger("alignment")

# hh-rlhf rows hold two whole dialogues sharing everything up to the last assistant turn.
HH_ASSISTANT = "\n\nAssistant:"
_REPORTED_LINES = 10  # per file: enough to find the problem, not a wall of text


@dataclass(frozen=True)
class PreferenceRow:
    prompt: str
    chosen: str
    rejected: str
    line: int = 0


@dataclass
class SkippedRow:
    line: int
    reason: str


@dataclass
class PreferenceFile:
    path: str
    rows: list[PreferenceRow]
    skipped: list[SkippedRow] = field(default_factory=list)

    def skipped_by_reason(self) -> dict[str, int]:
        return dict(Counter(s.reason.split(":")[0] for s in self.skipped))


def _open_text(path: Path):
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _as_text(value) -> str | None:
    """A plain string, or a conversational message list flattened as 'role: content' turns."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, dict) and "content" in m for m in value):
        return "\n".join(f"{m.get('role', 'user')}: {m['content']}" for m in value)
    return None


def split_hh_dialogue(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two hh-rlhf dialogues at their last '\\n\\nAssistant:' into (prompt, chosen, rejected)."""
    cut_c, cut_r = chosen.rfind(HH_ASSISTANT), rejected.rfind(HH_ASSISTANT)
    if cut_c < 0 or cut_r < 0:
        raise ValueError("no '\\n\\nAssistant:' turn to split at")
    end_c, end_r = cut_c + len(HH_ASSISTANT), cut_r + len(HH_ASSISTANT)
    if chosen[:end_c] != rejected[:end_r]:
        raise ValueError("chosen and rejected do not share their dialogue up to the last assistant turn")
    return chosen[:end_c], chosen[end_c:].strip(), rejected[end_r:].strip()


def parse_row(record, line: int) -> PreferenceRow:
    """One JSON object to a PreferenceRow; raises ValueError with the reason."""
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    for name in ("chosen", "rejected"):
        if name not in record:
            raise ValueError(f"missing field: {name!r}")
    chosen, rejected = _as_text(record["chosen"]), _as_text(record["rejected"])
    if chosen is None or rejected is None:
        raise ValueError("bad field: 'chosen' and 'rejected' must be text or message lists")
    if "prompt" in record:
        prompt = _as_text(record["prompt"])
        if prompt is None:
            raise ValueError("bad field: 'prompt' must be text or a message list")
    else:
        prompt, chosen, rejected = split_hh_dialogue(chosen, rejected)
    if not chosen.strip() or not rejected.strip():
        raise ValueError("empty text: 'chosen' or 'rejected' is empty")
    if chosen.strip() == rejected.strip():
        raise ValueError("identical: 'chosen' equals 'rejected'")
    return PreferenceRow(prompt=prompt, chosen=chosen, rejected=rejected, line=line)


PREFERENCE_FILE_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")


def is_preference_file_name(path: str | Path) -> bool:
    return str(path).endswith(PREFERENCE_FILE_SUFFIXES)


def read_preference_file(path: str | Path) -> PreferenceFile:
    """All valid rows of a .jsonl / .jsonl.gz / .parquet preference file, and the skipped ones with reasons."""
    path = Path(path)
    if not path.is_file():
        raise PreferenceDataError(f"pairs: no such file: {path}")
    rows: list[PreferenceRow] = []
    skipped: list[SkippedRow] = []
    try:
        for number, record in _numbered_records(path):
            if isinstance(record, SkippedRow):
                skipped.append(record)
                continue
            try:
                rows.append(parse_row(record, number))
            except ValueError as exc:
                skipped.append(SkippedRow(number, str(exc)))
    except (OSError, UnicodeDecodeError, EOFError, ValueError) as exc:
        raise PreferenceDataError(f"pairs: cannot read {path}: {exc}") from exc
    for row in skipped[:_REPORTED_LINES]:
        log.warning("%s line %d: %s; skipped", path, row.line, row.reason)
    if len(skipped) > _REPORTED_LINES:
        log.warning("%s: %d more rows skipped", path, len(skipped) - _REPORTED_LINES)
    if not rows:
        first = f" (line {skipped[0].line}: {skipped[0].reason})" if skipped else ""
        raise PreferenceDataError(f"pairs: {path} holds no usable preference row{first}")
    return PreferenceFile(path=str(path), rows=rows, skipped=skipped)


def _numbered_records(path: Path):
    """(row number, parsed record or SkippedRow) for every non-blank row of the file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a file that is not Parquet
            raise ValueError(f"not a Parquet file ({exc})") from None
        yield from enumerate(table.to_pylist(), start=1)
        return
    with _open_text(path) as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, SkippedRow(number, f"invalid JSON: {exc.msg}")
