"""Fixtures of the prepare tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from prepare_helpers import small_corpus_records, write_jsonl


@pytest.fixture
def small_corpus(tmp_path) -> Path:
    """A JSONL corpus: clean documents, an exact and a near duplicate, and junk (see small_corpus_records)."""
    return write_jsonl(tmp_path / "corpus" / "docs.jsonl", small_corpus_records())
