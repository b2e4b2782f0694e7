"""Word and sentence splitting that reproduces datatrove's English word tokenizer.

The Gopher rules count words, and their thresholds were tuned on a particular notion of
"word": datatrove splits English with spaCy's rule-based tokenizer (`spacy.blank("en")`),
then drops whitespace tokens. Whether `f(x):` is one word or three moves the symbol and
alphabetic-word ratios, so agreeing with datatrove on keep/drop needs the same splitting.

spaCy is a large dependency for a few regular expressions and a table of exceptions, so this
module ports its tokenizer algorithm (whitespace split, prefix/suffix loop with special
cases, URL match, infix split, then the special-case matcher) to plain Python, driven by the
rules exported from spaCy into `word_rules.json` (spaCy is MIT-licensed; the punctuation
table comes from datatrove, Apache-2.0). Results are cached per whitespace-separated chunk,
as spaCy does, so a corpus costs one dict lookup per chunk once its vocabulary is seen.

Regenerate the rules (needs `pip install spacy datatrove`):
    python -m pretrain.filters.words --export pretrain/filters/word_rules.json
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

RULES_PATH = Path(__file__).with_name("word_rules.json")
_CACHE_LIMIT = 200_000  # chunks (~40 MB); spaCy's own cache is unbounded, ours is cleared when full


@lru_cache(maxsize=1)
def load_rules(path: str = str(RULES_PATH)) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def punctuation_set() -> frozenset[str]:
    """datatrove's PUNCTUATION_SET: a word made only of these characters is a symbol, not a word."""
    return frozenset(load_rules()["datatrove"]["punctuation_set"])


class WordSplitter:
    """`words(text)` equals datatrove's `split_into_words(text, "eng")`; `count_sentences(line)`
    equals `len(split_into_sentences(line, "eng"))` (spaCy's sentencizer)."""

    def __init__(self, rules: dict | None = None):
        rules = rules or load_rules()
        spacy = rules["spacy"]
        self._prefix_search = re.compile(spacy["prefix_pattern"]).search
        self._suffix_search = re.compile(spacy["suffix_pattern"]).search
        self._infix_finditer = re.compile(spacy["infix_pattern"]).finditer
        self._url_match = re.compile(spacy["url_pattern"]).match
        self._specials: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in spacy["special_cases"].items()}
        # spaCy re-applies special cases over the affix-split tokens ("f(x):" -> "f(x", "):"):
        # a special case joins tokens whose plain affix split equals its pattern.
        self._patterns: dict[tuple[str, ...], str] = {}
        for special in spacy["special_cases"]:
            if self._prefix_len(special) or self._suffix_len(special) or self._has_infix(special) or " " in special:
                self._patterns.setdefault(tuple(self._split_chunk(special, with_specials=False)), special)
        self._longest_pattern = max((len(p) for p in self._patterns), default=0)
        self._sentence_ends = frozenset(spacy["sentence_punct_chars"])
        self._chunk_cache: dict[str, tuple[str, ...]] = {}
        self._punct_cache: dict[str, int] = {}

    # -- words -------------------------------------------------------------------------
    def words(self, text: str) -> list[str]:
        cache = self._chunk_cache
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        out: list[str] = []
        extend = out.extend
        for chunk in text.split():
            tokens = cache.get(chunk)
            if tokens is None:
                tokens = cache[chunk] = self.split_chunk(chunk)
            extend(tokens)
        return out

    def split_chunk(self, chunk: str) -> tuple[str, ...]:
        """Tokens of one whitespace-free chunk, special cases applied."""
        tokens = self._split_chunk(chunk, with_specials=True)
        if len(tokens) > 1 and self._longest_pattern:
            tokens = self._merge_special_spans(tokens)
        return tuple(tokens)

    def _split_chunk(self, string: str, with_specials: bool) -> list[str]:
        specials = self._specials if with_specials else {}
        if string in specials:
            return list(specials[string])
        prefixes: list[str] = []
        suffixes: list[str] = []
        last_size = 0
        # spaCy's _split_affixes: peel one prefix and/or suffix per round until nothing changes.
        while string and len(string) != last_size:
            if string in specials:
                break
            last_size = len(string)
            pre_len = self._prefix_len(string)
            if pre_len:
                prefix, minus_pre = string[:pre_len], string[pre_len:]
                if minus_pre and minus_pre in specials:
                    string = minus_pre
                    prefixes.append(prefix)
                    break
            suf_len = self._suffix_len(string[pre_len:])
            if suf_len:
                suffix, minus_suf = string[-suf_len:], string[:-suf_len]
                if minus_suf and minus_suf in specials:
                    string = minus_suf
                    suffixes.append(suffix)
                    break
            if pre_len and suf_len and pre_len + suf_len <= len(string):
                string = string[pre_len:-suf_len]
                prefixes.append(prefix)
                suffixes.append(suffix)
            elif pre_len:
                string = minus_pre
                prefixes.append(prefix)
            elif suf_len:
                string = minus_suf
                suffixes.append(suffix)
        tokens = prefixes
        if string:
            if string in specials:
                tokens.extend(specials[string])
            elif self._url_match(string):
                tokens.append(string)
            else:
                tokens.extend(self._split_infixes(string))
        tokens.extend(reversed(suffixes))
        return tokens

    def _split_infixes(self, string: str) -> list[str]:
        pieces: list[str] = []
        start = 0
        for match in self._infix_finditer(string):
            infix_start, infix_end = match.start(), match.end()
            if infix_start == 0:  # spaCy never splits an infix off the front
                continue
            if infix_start != start:
                pieces.append(string[start:infix_start])
            if infix_start != infix_end:
                pieces.append(string[infix_start:infix_end])
            start = infix_end
        if string[start:]:
            pieces.append(string[start:])
        return pieces

    def _merge_special_spans(self, tokens: list[str]) -> list[str]:
        """spaCy's _apply_special_cases, within one chunk (special cases never hold spaces)."""
        matches = []
        for start in range(len(tokens)):
            for length in range(2, min(self._longest_pattern, len(tokens) - start) + 1):
                special = self._patterns.get(tuple(tokens[start : start + length]))
                if special is not None:
                    matches.append((start, start + length, special))
        if not matches:
            return tokens
        # Longest first, then leftmost; a span is dropped if either end is already taken.
        matches.sort(key=lambda m: (-(m[1] - m[0]), m[0]))
        seen: set[int] = set()
        chosen = []
        for start, end, special in matches:
            if start not in seen and end - 1 not in seen:
                chosen.append((start, end, special))
            seen.update(range(start, end))
        chosen.sort()
        merged: list[str] = []
        position = 0
        for start, end, special in chosen:
            merged.extend(tokens[position:start])
            merged.extend(self._specials[special])
            position = end
        merged.extend(tokens[position:])
        return merged

    def _prefix_len(self, string: str) -> int:
        match = self._prefix_search(string)
        return match.end() - match.start() if match else 0

    def _suffix_len(self, string: str) -> int:
        match = self._suffix_search(string)
        return match.end() - match.start() if match else 0

    def _has_infix(self, string: str) -> bool:
        return any(True for _ in self._infix_finditer(string))

    # -- sentences ---------------------------------------------------------------------
    def count_sentences(self, line: str) -> int:
        """spaCy's sentencizer: a new sentence starts at the first non-punctuation token after
        a sentence-final mark. Whitespace runs other than one plain space are tokens too.
        An empty line counts as one, as it does in datatrove's C4 filter."""
        sentences = 0
        seen_end = False
        first = True
        cache = self._chunk_cache
        for match in _SPACE_OR_CHUNK.finditer(line):
            piece = match.group()
            if piece[0].isspace():
                rest = piece[1:] if (piece[0] == " " and not first) else piece
                if not rest:
                    continue
                tokens: tuple[str, ...] = (rest,)
            else:
                tokens = cache.get(piece)
                if tokens is None:
                    tokens = cache[piece] = self.split_chunk(piece)
            for token in tokens:
                if first:
                    sentences, first = 1, False
                kind = self._punct_kind(token)
                if seen_end and kind == 0:
                    sentences += 1
                    seen_end = False
                elif kind == 2:
                    seen_end = True
        # datatrove turns spaCy's spans into pieces with zip([0] + ends[:-1], ends[:-1] + [len]):
        # a text with no sentence at all still gives one (empty) piece
        return sentences or 1

    def _punct_kind(self, token: str) -> int:
        """0: not punctuation; 1: punctuation; 2: a sentence-final mark."""
        kind = self._punct_cache.get(token)
        if kind is None:
            if token in self._sentence_ends:
                kind = 2
            elif all(unicodedata.category(ch).startswith("P") for ch in token):
                kind = 1
            else:
                kind = 0
            self._punct_cache[token] = kind
        return kind


_SPACE_OR_CHUNK = re.compile(r"\s+|\S+")


@lru_cache(maxsize=1)
def default_splitter() -> WordSplitter:
    return WordSplitter()


def export_rules(path: Path) -> None:
    """Write word_rules.json from the installed spaCy and datatrove (a maintenance step)."""
    from importlib.metadata import version

    import spacy
    from datatrove.utils.text import PUNCTUATION_SET
    from spacy.pipeline import Sentencizer

    tokenizer = spacy.blank("en").tokenizer
    rules = {
        "spacy": {
            "source": f"spaCy {spacy.__version__} English tokenizer (spacy.blank('en')), MIT License, (c) ExplosionAI GmbH",
            "prefix_pattern": tokenizer.prefix_search.__self__.pattern,
            "suffix_pattern": tokenizer.suffix_search.__self__.pattern,
            "infix_pattern": tokenizer.infix_finditer.__self__.pattern,
            "url_pattern": tokenizer.url_match.__self__.pattern,
            "special_cases": {k: [t[65] for t in v] for k, v in sorted(tokenizer.rules.items())},  # 65 = ORTH
            "sentence_punct_chars": sorted(Sentencizer.default_punct_chars),
        },
        "datatrove": {
            "source": f"datatrove {version('datatrove')} datatrove/utils/text.py, Apache License 2.0, (c) HuggingFace",
            "punctuation_set": sorted(PUNCTUATION_SET),
        },
    }
    path.write_text(json.dumps(rules, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, required=True, help="where to write the rules JSON")
    export_rules(parser.parse_args().export)
