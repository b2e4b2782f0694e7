"""The record every reader yields and every filter sees."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Document:
    id: str  # stable across runs: `--explain ID` and filter_report.json refer to it
    text: str
    source: str = ""  # where it came from (file path, dataset name)
    metadata: dict[str, Any] = field(default_factory=dict)  # per-filter measurements land here

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "source": self.source}
