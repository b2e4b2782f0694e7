"""Hand-made documents whose measures are known exactly (imported by the prepare tests)."""

from __future__ import annotations

import json
import random
from pathlib import Path

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pa", "do", "fe"]


def pseudo_words(count: int, seed: int = 0, length: int = 3) -> list[str]:
    """Distinct lower-case words (no English stop words among them)."""
    rng = random.Random(seed)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < count:
        word = "".join(rng.choice(SYLLABLES) for _ in range(length))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def prose(n_sentences: int = 12, seed: int = 0, words_per_sentence: int = 12) -> str:
    """English-like text that passes every rule with datatrove's defaults: varied words,
    stop words, one sentence per line ending in a full stop."""
    vocabulary = pseudo_words(n_sentences * words_per_sentence, seed)
    stop = ["the", "of", "and", "to", "with", "that"]
    lines = []
    for s in range(n_sentences):
        chunk = vocabulary[s * words_per_sentence : (s + 1) * words_per_sentence]
        words = []
        for i, word in enumerate(chunk):
            words.append(word)
            if i % 3 == 1:
                words.append(stop[(s + i) % len(stop)])
        lines.append(" ".join(words).capitalize() + ".")
    return "\n".join(lines)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def small_corpus_records() -> list[dict]:
    """Clean documents, an exact and a near duplicate, and junk a known rule removes."""
    records = [{"id": f"clean-{i}", "text": prose(12, seed=i)} for i in range(30)]
    # the same text with extra spaces: identical once whitespace is normalised
    records.append({"id": "exact-copy", "text": records[3]["text"].replace(" ", "  ").replace("\n", "   \n")})
    near = records[5]["text"].split(" ")
    for position in (7, 40, 90):
        near[position] = "changed"
    records.append({"id": "near-copy", "text": " ".join(near)})
    # 30 distinct words + "of the end" (33): under min_doc_words=50, and no n-gram repeats
    records.append({"id": "too-short", "text": " ".join(pseudo_words(30, seed=77)).capitalize() + " of the end."})
    records.append({"id": "symbols", "text": " ".join(["1234 5678 = ( ) ; 42 the of ."] * 30)})
    records.append(
        {"id": "contact", "text": prose(12, seed=99) + "\nWrite to jane.doe@mail.com or call 8.8.8.8 today."}
    )
    return records
