"""Gopher quality rules (Rae et al. 2021, Table A1), as datatrove's GopherQualityFilter.

Defaults are datatrove's. A threshold of 0 turns its rule off (datatrove's `None`/falsy).
Words are datatrove's English word split (see words.py), so each ratio is the one datatrove
computes, and documents just inside and outside a threshold land on the same side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pretrain.corpus.document import Document
from pretrain.filters.base import DocumentFilter, words_of
from pretrain.filters.words import punctuation_set

STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]


@dataclass
class GopherQualityConfig:
    min_doc_words: int = field(default=50, metadata={"help": "drop documents with fewer non-symbol words (0: off)"})
    max_doc_words: int = field(
        default=100_000, metadata={"help": "drop documents with more non-symbol words (0: off)"}
    )
    min_avg_word_length: float = field(
        default=3, metadata={"help": "drop if the mean non-symbol word length is below (0: off)"}
    )
    max_avg_word_length: float = field(
        default=10, metadata={"help": "drop if the mean non-symbol word length is above (0: off)"}
    )
    max_symbol_word_ratio: float = field(
        default=0.1, metadata={"help": "drop if '#' per word, or '...'/'…' per word, is above (0: off)"}
    )
    max_bullet_lines_ratio: float = field(
        default=0.9, metadata={"help": "drop if more lines start with a bullet (0: off)"}
    )
    max_ellipsis_lines_ratio: float = field(
        default=0.3, metadata={"help": "drop if more lines end with an ellipsis (0: off)"}
    )
    max_non_alpha_words_ratio: float = field(
        default=0.8,
        metadata={"help": "drop if fewer than this fraction of words hold a letter (datatrove's name; 0: off)"},
    )
    min_stop_words: int = field(default=2, metadata={"help": "drop if fewer distinct stop words occur (0: off)"})
    stop_words: list[str] = field(
        default_factory=lambda: list(STOP_WORDS), metadata={"help": "the stop words counted"}
    )

    def __post_init__(self):
        for name in ("min_doc_words", "max_doc_words", "min_stop_words"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0 (0 turns the rule off), got {getattr(self, name)}")
        for name in ("min_avg_word_length", "max_avg_word_length", "max_symbol_word_ratio"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0 (0 turns the rule off), got {getattr(self, name)}")
        for name in ("max_bullet_lines_ratio", "max_ellipsis_lines_ratio", "max_non_alpha_words_ratio"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: must be in [0, 1] (0 turns the rule off), got {getattr(self, name)}")


class GopherQualityFilter(DocumentFilter):
    name = "gopher_quality"

    def __init__(self, config: GopherQualityConfig | None = None):
        super().__init__()
        self.config = config or GopherQualityConfig()
        self.stop_words = frozenset(self.config.stop_words)
        self._punctuation = punctuation_set()
        self._word_kind: dict[str, tuple[bool, bool]] = {}  # word -> (is a non-symbol word, holds a letter)

    def _kind(self, word: str) -> tuple[bool, bool]:
        kind = self._word_kind.get(word)
        if kind is None:
            punctuation = self._punctuation
            kind = (any(ch not in punctuation for ch in word), any(ch.isalpha() for ch in word))
            if len(self._word_kind) > 500_000:
                self._word_kind.clear()
            self._word_kind[word] = kind
        return kind

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        c = self.config
        text = doc.text
        words = words_of(doc)
        n_words = len(words)
        kind = self._word_kind.get
        n_content = content_chars = n_alpha = 0
        for word in words:
            k = kind(word) or self._kind(word)
            if k[0]:
                n_content += 1
                content_chars += len(word)
            if k[1]:
                n_alpha += 1

        if c.min_doc_words and n_content < c.min_doc_words:
            return self.drop(doc, "gopher_short_doc", n_content, c.min_doc_words, "<", "non-symbol words")
        if c.max_doc_words and n_content > c.max_doc_words:
            return self.drop(doc, "gopher_long_doc", n_content, c.max_doc_words, ">", "non-symbol words")

        if n_content:  # datatrove takes np.mean of an empty list: nan, which fails no comparison
            mean_length = content_chars / n_content
            if c.min_avg_word_length and mean_length < c.min_avg_word_length:
                return self.drop(
                    doc, "gopher_below_avg_threshold", mean_length, c.min_avg_word_length, "<", "mean word length"
                )
            if c.max_avg_word_length and mean_length > c.max_avg_word_length:
                return self.drop(
                    doc, "gopher_above_avg_threshold", mean_length, c.max_avg_word_length, ">", "mean word length"
                )

        per_word = max(n_words, 1)
        if c.max_symbol_word_ratio:
            hashes = text.count("#") / per_word
            if hashes > c.max_symbol_word_ratio:
                return self.drop(doc, "gopher_too_many_hashes", hashes, c.max_symbol_word_ratio, ">", "'#' per word")
            ellipses = (text.count("...") + text.count("…")) / per_word
            if ellipses > c.max_symbol_word_ratio:
                return self.drop(
                    doc, "gopher_too_many_ellipsis", ellipses, c.max_symbol_word_ratio, ">", "ellipses per word"
                )

        if c.max_bullet_lines_ratio or c.max_ellipsis_lines_ratio:
            lines = text.splitlines() or [""]
            if c.max_bullet_lines_ratio:
                bullets = sum(1 for s in lines if s.lstrip().startswith(("•", "-"))) / len(lines)
                if bullets > c.max_bullet_lines_ratio:
                    return self.drop(
                        doc,
                        "gopher_too_many_bullets",
                        bullets,
                        c.max_bullet_lines_ratio,
                        ">",
                        "fraction of lines starting with a bullet",
                    )
            if c.max_ellipsis_lines_ratio:
                trailing = sum(1 for s in lines if s.rstrip().endswith(("...", "…"))) / len(lines)
                if trailing > c.max_ellipsis_lines_ratio:
                    return self.drop(
                        doc,
                        "gopher_too_many_end_ellipsis",
                        trailing,
                        c.max_ellipsis_lines_ratio,
                        ">",
                        "fraction of lines ending with an ellipsis",
                    )

        if c.max_non_alpha_words_ratio:
            alpha = n_alpha / per_word
            if alpha < c.max_non_alpha_words_ratio:
                return self.drop(
                    doc,
                    "gopher_below_alpha_threshold",
                    alpha,
                    c.max_non_alpha_words_ratio,
                    "<",
                    "fraction of words with a letter",
                )

        if c.min_stop_words:
            present = len(self.stop_words.intersection(words))
            if present < c.min_stop_words:
                return self.drop(
                    doc, "gopher_enough_stop_words", present, c.min_stop_words, "<", "distinct stop words"
                )
        return True
