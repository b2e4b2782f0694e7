"""Gopher repetition rules (Rae et al. 2021, Table A1), as datatrove's GopherRepetitionFilter.

Defaults are datatrove's; a fraction of 0 turns its rule off. The measures are datatrove's to
the character, quirks included: top n-grams are joined with spaces, duplicated n-grams
without, and a scan that finds a repeated n-gram skips past it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import compress
from operator import add

from pretrain.corpus.document import Document
from pretrain.filters.base import DocumentFilter, words_of

TOP_NGRAM_SIZES = (2, 3, 4)
DUP_NGRAM_SIZES = (5, 6, 7, 8, 9, 10)


@dataclass
class GopherRepetitionConfig:
    dup_line_frac: float = field(default=0.3, metadata={"help": "drop if more lines are repeats of earlier lines"})
    dup_para_frac: float = field(default=0.3, metadata={"help": "drop if more paragraphs are repeats"})
    dup_line_char_frac: float = field(
        default=0.2, metadata={"help": "drop if repeated lines hold more of the characters"}
    )
    dup_para_char_frac: float = field(
        default=0.2, metadata={"help": "drop if repeated paragraphs hold more of the characters"}
    )
    top_2_gram_frac: float = field(
        default=0.2, metadata={"help": "drop if the most frequent 2-gram covers more of the characters"}
    )
    top_3_gram_frac: float = field(default=0.18, metadata={"help": "same for the most frequent 3-gram"})
    top_4_gram_frac: float = field(default=0.16, metadata={"help": "same for the most frequent 4-gram"})
    dup_5_gram_frac: float = field(
        default=0.15, metadata={"help": "drop if repeated 5-grams cover more of the characters"}
    )
    dup_6_gram_frac: float = field(default=0.14, metadata={"help": "same for repeated 6-grams"})
    dup_7_gram_frac: float = field(default=0.13, metadata={"help": "same for repeated 7-grams"})
    dup_8_gram_frac: float = field(default=0.12, metadata={"help": "same for repeated 8-grams"})
    dup_9_gram_frac: float = field(default=0.11, metadata={"help": "same for repeated 9-grams"})
    dup_10_gram_frac: float = field(default=0.10, metadata={"help": "same for repeated 10-grams"})

    def __post_init__(self):
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name}: must be a fraction in [0, 1] (0 turns the rule off), got {value}")


_PARAGRAPH_BREAK = re.compile(r"\n{2,}")
_LINE_BREAK = re.compile("\n+")


def find_duplicates(items: list[str]) -> tuple[int, int]:
    """(number of items that repeat an earlier one, characters in those repeats)."""
    seen: set[str] = set()
    duplicates = duplicate_chars = 0
    for item in items:
        if item in seen:
            duplicates += 1
            duplicate_chars += len(item)
        else:
            seen.add(item)
    return duplicates, duplicate_chars


def top_ngram_chars(words: list[str], n: int) -> int:
    """Characters covered by the most frequent n-gram (its length times its count; the
    first-seen n-gram wins a tie), n-grams joined with spaces as datatrove does."""
    return _top_chars(list(map(" ".join, zip(*(words[i:] for i in range(n))))))


def duplicated_ngram_chars(words: list[str], n: int) -> int:
    """datatrove's find_all_duplicate: scan left to right; an n-gram (joined without spaces)
    seen before adds its length and the scan jumps past it, otherwise it steps one word."""
    return _duplicated_chars(list(map("".join, zip(*(words[i:] for i in range(n))))), n)


def _top_chars(grams: list[str]) -> int:
    if not grams:
        return 0
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count


def _duplicated_chars(grams: list[str], n: int) -> int:
    counts = Counter(grams)
    if len(counts) == len(grams):
        return 0
    # Only n-grams that occur more than once can ever be "seen before", so the scan jumps
    # straight between those positions (selected without a Python-level loop): same answer,
    # a fraction of the steps.
    repeated_positions = compress(range(len(grams)), map((1).__lt__, map(counts.__getitem__, grams)))
    seen: set[str] = set()
    repeated_chars = 0
    next_free = 0  # first position the scan can stand on
    for position in repeated_positions:
        if position < next_free:
            continue
        gram = grams[position]
        if gram in seen:
            repeated_chars += len(gram)
            next_free = position + n
        else:
            seen.add(gram)
            next_free = position + 1
    return repeated_chars


def _growing_ngrams(words: list[str], sizes, separator: str):
    """(n, n-grams) for increasing n, each built from the previous by appending one word
    (one concatenation per position instead of an n-word join)."""
    suffixes = [separator + w for w in words] if separator else words
    first = sizes[0]
    grams = list(map(separator.join, zip(*(words[i:] for i in range(first)))))
    previous = first
    for n in sizes:
        for m in range(previous + 1, n + 1):
            grams = list(map(add, grams, suffixes[m - 1 :]))
        previous = n
        yield n, grams


class GopherRepetitionFilter(DocumentFilter):
    name = "gopher_repetition"

    def __init__(self, config: GopherRepetitionConfig | None = None):
        super().__init__()
        self.config = config or GopherRepetitionConfig()
        c = self.config
        self.top_ngrams = [(n, getattr(c, f"top_{n}_gram_frac")) for n in TOP_NGRAM_SIZES]
        self.dup_ngrams = [(n, getattr(c, f"dup_{n}_gram_frac")) for n in DUP_NGRAM_SIZES]

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        c = self.config
        text = doc.text
        if not text:
            return self.drop(doc, "empty", 0, 1, "<", "characters")
        length = len(text)

        paragraphs = _PARAGRAPH_BREAK.split(text.strip())
        repeats, repeat_chars = find_duplicates(paragraphs)
        if c.dup_para_frac and repeats / len(paragraphs) > c.dup_para_frac:
            return self.drop(
                doc,
                "dup_para_frac",
                repeats / len(paragraphs),
                c.dup_para_frac,
                ">",
                "fraction of paragraphs repeated",
            )
        if c.dup_para_char_frac and repeat_chars / length > c.dup_para_char_frac:
            return self.drop(
                doc,
                "dup_para_char_frac",
                repeat_chars / length,
                c.dup_para_char_frac,
                ">",
                "fraction of characters in repeated paragraphs",
            )

        lines = _LINE_BREAK.split(text)
        repeats, repeat_chars = find_duplicates(lines)
        if c.dup_line_frac and repeats / len(lines) > c.dup_line_frac:
            return self.drop(
                doc, "dup_line_frac", repeats / len(lines), c.dup_line_frac, ">", "fraction of lines repeated"
            )
        if c.dup_line_char_frac and repeat_chars / length > c.dup_line_char_frac:
            return self.drop(
                doc,
                "dup_line_char_frac",
                repeat_chars / length,
                c.dup_line_char_frac,
                ">",
                "fraction of characters in repeated lines",
            )

        words = words_of(doc)
        top_sizes = [n for n, limit in self.top_ngrams if limit and len(words) >= n]
        limits = dict(self.top_ngrams)
        for n, grams in _growing_ngrams(words, top_sizes, " ") if top_sizes else ():
            share = _top_chars(grams) / length
            if share > limits[n]:
                return self.drop(
                    doc,
                    f"top_{n}_gram",
                    share,
                    limits[n],
                    ">",
                    f"fraction of characters in the most frequent {n}-gram",
                )
        dup_sizes = [n for n, limit in self.dup_ngrams if limit]
        limits = dict(self.dup_ngrams)
        for n, grams in _growing_ngrams(words, dup_sizes, "") if dup_sizes else ():
            share = _duplicated_chars(grams, n) / length
            if share > limits[n]:
                return self.drop(
                    doc,
                    f"duplicated_{n}_n_grams",
                    share,
                    limits[n],
                    ">",
                    f"fraction of characters in repeated {n}-grams",
                )
        return True
