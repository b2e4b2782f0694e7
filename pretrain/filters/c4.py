"""C4 line and document rules (Raffel et al. 2020), as datatrove's C4QualityFilter.

Line rules drop single lines (no terminal punctuation, too few words, a word over 1000
characters, "javascript", cookie/terms-of-use notices); document rules drop the whole
document ("lorem ipsum", a curly bracket, fewer than 5 sentences left). Defaults are
datatrove's, which split the document on lines as C4 did.

datatrove strips every kept line, which flattens code; `keep_line_indentation` keeps the
original line instead (the python-docs profile uses it). It is off by default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pretrain.corpus.document import Document
from pretrain.filters.base import DocumentFilter
from pretrain.filters.words import default_splitter

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")
ELLIPSIS = "..."
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)


@dataclass
class C4Config:
    remove_citations: bool = field(
        default=True, metadata={"help": "delete wikipedia-style [1], [edit], [citation needed]"}
    )
    filter_no_terminal_punct: bool = field(default=True, metadata={"help": "drop lines that do not end in . ? ! \" '"})
    min_num_sentences: int = field(
        default=5, metadata={"help": "drop documents with fewer sentences in kept lines (-1: off)"}
    )
    min_words_per_line: int = field(default=3, metadata={"help": "drop lines with fewer words (-1: off)"})
    max_word_length: int = field(default=1000, metadata={"help": "drop lines holding a longer word (-1: off)"})
    filter_lorem_ipsum: bool = field(default=True, metadata={"help": "drop documents containing 'lorem ipsum'"})
    filter_javascript: bool = field(default=True, metadata={"help": "drop lines mentioning javascript"})
    filter_curly_bracket: bool = field(default=True, metadata={"help": "drop documents containing '{'"})
    filter_policy: bool = field(
        default=True, metadata={"help": "drop lines about cookies, terms of use, privacy policy"}
    )
    keep_line_indentation: bool = field(
        default=False, metadata={"help": "keep kept lines as they were (datatrove strips them, flattening code)"}
    )

    def __post_init__(self):
        for name in ("min_num_sentences", "min_words_per_line", "max_word_length"):
            if getattr(self, name) < -1:
                raise ValueError(f"{name}: must be >= 0, or -1 to turn the rule off, got {getattr(self, name)}")


class C4QualityFilter(DocumentFilter):
    name = "c4"

    def __init__(self, config: C4Config | None = None):
        super().__init__()
        self.config = config or C4Config()
        self.splitter = default_splitter()
        self.line_stats: dict[str, int] = {}  # line-level removals, as datatrove's stat_update

    def _line_removed(self, reason: str) -> None:
        self.line_stats[reason] = self.line_stats.get(reason, 0) + 1

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        c = self.config
        sentences = 0
        kept: list[str] = []
        for original in doc.text.splitlines():
            line = original.strip()
            words = line.split()
            if c.max_word_length != -1 and any(len(word) > c.max_word_length for word in words):
                self._line_removed("too_long_word")
                continue
            if c.remove_citations:
                line = CITATION.sub("", line)
            if c.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
                self._line_removed("no_terminal_punct")
                continue
            if len(words) < c.min_words_per_line:
                self._line_removed("too_few_words")
                continue
            lowered = line.lower()
            if c.filter_lorem_ipsum and "lorem ipsum" in lowered:
                return self.drop(doc, "lorem_ipsum", "'lorem ipsum'", "none allowed", "found", "text")
            if c.filter_javascript and "javascript" in lowered:
                self._line_removed("javascript")
                continue
            if c.filter_curly_bracket and "{" in line:
                return self.drop(doc, "curly_bracket", "'{'", "none allowed", "found", "text")
            if c.filter_policy and any(p in lowered for p in POLICY_SUBSTRINGS):
                self._line_removed("policy")
                continue
            if c.min_num_sentences != -1:
                sentences += self.splitter.count_sentences(line)
            if c.keep_line_indentation:
                # the original line, citations removed as in the stripped form
                line = CITATION.sub("", original.rstrip()) if c.remove_citations else original.rstrip()
            kept.append(line)
        if sentences < c.min_num_sentences:
            return self.drop(doc, "too_few_sentences", sentences, c.min_num_sentences, "<", "sentences in kept lines")
        text = "\n".join(kept)
        doc.text = text.strip("\n").rstrip() if c.keep_line_indentation else text.strip()
        return True

    def take_line_stats(self) -> dict[str, int]:
        stats, self.line_stats = self.line_stats, {}
        return stats
