"""The shape every cleaning block has (after datatrove's `pipeline/filters/base_filter.py`).

A block's `filter(doc)` returns True to keep the document or `(False, "reason")` to drop it,
and may rewrite `doc.text` on the way (line filters, PII scrubbing). The base class does the
book-keeping for every block alike: documents and UTF-8 bytes kept and dropped per reason,
documents edited and bytes the edits removed. A block that drops a document says what it
measured with `self.drop(doc, reason, value, threshold, ...)`; that measurement travels with
the document into `removed.jsonl`, which is what `mintline prepare --explain` reads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from pretrain.corpus.document import Document

REMOVAL_KEY = "removal"  # doc.metadata key holding the measurement behind a drop
BYTES_KEY = "bytes"  # doc.metadata key caching len(text.encode()) for the current text


def text_bytes(doc: Document) -> int:
    cached = doc.metadata.get(BYTES_KEY)
    if cached is not None and cached[0] is doc.text:
        return cached[1]
    size = len(doc.text.encode("utf-8", errors="surrogatepass"))
    doc.metadata[BYTES_KEY] = (doc.text, size)
    return size


@dataclass
class FilterStats:
    """Counts of one block; merged across worker processes by addition."""

    docs_in: int = 0
    bytes_in: int = 0
    kept_docs: int = 0
    kept_bytes: int = 0
    dropped: dict[str, list[int]] = field(default_factory=dict)  # reason -> [docs, bytes]
    edited_docs: int = 0
    edited_bytes_removed: int = 0

    def merge(self, other: FilterStats) -> None:
        self.docs_in += other.docs_in
        self.bytes_in += other.bytes_in
        self.kept_docs += other.kept_docs
        self.kept_bytes += other.kept_bytes
        self.edited_docs += other.edited_docs
        self.edited_bytes_removed += other.edited_bytes_removed
        for reason, (docs, size) in other.dropped.items():
            entry = self.dropped.setdefault(reason, [0, 0])
            entry[0] += docs
            entry[1] += size

    @property
    def dropped_docs(self) -> int:
        return sum(docs for docs, _ in self.dropped.values())

    @property
    def dropped_bytes(self) -> int:
        return sum(size for _, size in self.dropped.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "docs_in": self.docs_in,
            "bytes_in": self.bytes_in,
            "kept": {"docs": self.kept_docs, "bytes": self.kept_bytes},
            "dropped": {
                "docs": self.dropped_docs,
                "bytes": self.dropped_bytes,
                "by_reason": {r: {"docs": d, "bytes": b} for r, (d, b) in sorted(self.dropped.items())},
            },
            "edited": {"docs": self.edited_docs, "bytes_removed": self.edited_bytes_removed},
        }


class DocumentFilter(ABC):
    """One cleaning block. Subclasses set `name` and implement `filter`."""

    name: str = "filter"

    def __init__(self) -> None:
        self.stats = FilterStats()

    @abstractmethod
    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        """True keeps the document; (False, reason) drops it. May rewrite doc.text."""

    def drop(
        self,
        doc: Document,
        reason: str,
        value: Any,
        threshold: Any,
        comparison: str,
        measured: str,
    ) -> tuple[bool, str]:
        """Drop `doc` for `reason`, recording that `measured` was `value`, `comparison` `threshold`
        (e.g. "non-symbol words", 12, 50, "<")."""
        doc.metadata[REMOVAL_KEY] = {
            "filter": self.name,
            "reason": reason,
            "measured": measured,
            "value": _rounded(value),
            "comparison": comparison,
            "threshold": threshold,
        }
        return False, reason

    def __call__(self, doc: Document) -> bool:
        """Run the block on one document and count the outcome; True if the document goes on."""
        size_in = text_bytes(doc)
        text_in = doc.text
        self.stats.docs_in += 1
        self.stats.bytes_in += size_in
        result = self.filter(doc)
        keep, reason = (result, None) if isinstance(result, bool) else (result[0], result[1])
        if keep:
            size_out = size_in if doc.text is text_in else text_bytes(doc)
            self.stats.kept_docs += 1
            self.stats.kept_bytes += size_out
            if doc.text != text_in:
                self.stats.edited_docs += 1
                self.stats.edited_bytes_removed += size_in - size_out
            return True
        reason = reason or "dropped"
        doc.metadata.setdefault(REMOVAL_KEY, {"filter": self.name, "reason": reason})
        entry = self.stats.dropped.setdefault(reason, [0, 0])
        entry[0] += 1
        entry[1] += size_in
        return False

    def take_stats(self) -> FilterStats:
        """The counts so far, reset to zero (workers hand them to the parent once per batch)."""
        stats, self.stats = self.stats, FilterStats()
        return stats


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    return value


WORDS_KEY = "words"  # doc.metadata key caching the word split of the current text


def words_of(doc: Document) -> list[str]:
    """datatrove's English word split of doc.text, computed once however many blocks ask."""
    from pretrain.filters.words import default_splitter

    cached = doc.metadata.get(WORDS_KEY)
    if cached is not None and cached[0] is doc.text:
        return cached[1]
    words = default_splitter().words(doc.text)
    doc.metadata[WORDS_KEY] = (doc.text, words)
    return words


def forget_caches(doc: Document) -> None:
    doc.metadata.pop(WORDS_KEY, None)
    doc.metadata.pop(BYTES_KEY, None)
