"""Corpus readers: each yields Document records, streaming, one at a time."""

from pretrain.corpus.document import Document

__all__ = ["Document"]
