"""Edits an adversary (or an ordinary editor) applies to marked text before detection.

An attack is named by a spec string `name:rate`, e.g. `word_substitution:0.5`:

* word_deletion / word_insertion / word_substitution: each word is deleted, followed by an
  inserted word, or replaced, with probability `rate`. Inserted and substituted words are drawn
  from a pool of human words (the evaluation passes the human corpus's words); whitespace
  between surviving words is kept, so the edit is the only change.
* token_deletion / token_insertion / token_substitution: the same on token ids (uniformly
  random replacement ids), then decoded: a model-level paraphrase proxy.
* copy_paste: a contiguous span holding `rate` of the text's words is pasted into human text,
  which fills the rest of the original length (the "needle in human text" case).
* crop: only a random contiguous `rate` of the words is kept.
* none: the text unchanged.

Every attack takes an explicit numpy Generator, so an evaluation is reproducible.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from watermark.errors import ConfigError

WORD_ATTACKS = ("word_deletion", "word_insertion", "word_substitution")
TOKEN_ATTACKS = ("token_deletion", "token_insertion", "token_substitution")
SPAN_ATTACKS = ("copy_paste", "crop")
ATTACK_NAMES = ("none", *WORD_ATTACKS, *TOKEN_ATTACKS, *SPAN_ATTACKS)
_PIECES = re.compile(r"(\s+)")


@dataclass(frozen=True)
class Attack:
    name: str
    rate: float = 0.0

    @property
    def label(self) -> str:
        return self.name if self.name == "none" else f"{self.name}:{self.rate:g}"


def parse_attack(spec: str) -> Attack:
    name, _, rate_text = spec.strip().partition(":")
    if name not in ATTACK_NAMES:
        raise ConfigError(f"attack {spec!r}: unknown; choose from {', '.join(ATTACK_NAMES)} (as name:rate)")
    if name == "none":
        return Attack("none")
    try:
        rate = float(rate_text)
    except ValueError:
        raise ConfigError(f"attack {spec!r}: needs a rate, e.g. {name}:0.3") from None
    low_ok = rate > 0 if name in SPAN_ATTACKS else rate >= 0
    if not (low_ok and rate <= 1):
        raise ConfigError(f"attack {spec!r}: rate must be in (0, 1], got {rate}")
    return Attack(name, rate)


def split_words(text: str) -> tuple[list[tuple[str, str]], str]:
    """([(separator before, word), ...], trailing whitespace); joining them gives the text back."""
    pieces = _PIECES.split(text)  # word, sep, word, sep, ..., word (words may be "")
    if len(pieces) % 2 == 0:
        pieces.append("")
    leading = ""
    if pieces[0] == "" and len(pieces) > 1:
        leading, pieces = pieces[1], pieces[2:]
    words, seps = pieces[0::2], pieces[1::2]
    trailing = ""
    if words and words[-1] == "":
        words.pop()
        trailing = seps.pop() if seps else ""
    pairs = [(leading if i == 0 else seps[i - 1], word) for i, word in enumerate(words)]
    return pairs, trailing


def join_words(pairs: list[tuple[str, str]], trailing: str = "") -> str:
    return "".join(sep + word for sep, word in pairs) + trailing


def edit_words(text: str, rate: float, rng: np.random.Generator, pool: Sequence[str], mode: str) -> str:
    pairs, trailing = split_words(text)
    hit = rng.random(len(pairs)) < rate
    out: list[tuple[str, str]] = []
    for (sep, word), chosen in zip(pairs, hit):
        if chosen and mode == "word_deletion":
            continue
        if chosen and mode == "word_substitution":
            word = pool[int(rng.integers(len(pool)))]
        out.append((sep, word))
        if chosen and mode == "word_insertion":
            out.append((" ", pool[int(rng.integers(len(pool)))]))
    return join_words(out, trailing)


def edit_tokens(
    text: str, rate: float, rng: np.random.Generator, encode: Callable, decode: Callable, vocab_size: int, mode: str
) -> str:
    ids = list(encode(text))
    hit = rng.random(len(ids)) < rate
    out: list[int] = []
    for token, chosen in zip(ids, hit):
        if mode == "token_deletion" and chosen:
            continue
        if mode == "token_substitution" and chosen:
            token = int(rng.integers(vocab_size))
        out.append(int(token))
        if mode == "token_insertion" and chosen:
            out.append(int(rng.integers(vocab_size)))
    return decode(out)


def copy_paste(text: str, fraction: float, rng: np.random.Generator, human_text: str) -> str:
    words = [w for _, w in split_words(text)[0]]
    human = [w for _, w in split_words(human_text)[0]] or ["the"]
    keep = max(1, int(round(fraction * len(words))))
    start = int(rng.integers(0, len(words) - keep + 1))
    filler = len(words) - keep
    human = (human * (1 + filler // len(human)))[:filler]
    cut = int(rng.integers(0, len(human) + 1))
    return " ".join(human[:cut] + words[start : start + keep] + human[cut:])


def crop(text: str, fraction: float, rng: np.random.Generator) -> str:
    pairs, _ = split_words(text)
    keep = max(1, int(round(fraction * len(pairs))))
    start = int(rng.integers(0, len(pairs) - keep + 1))
    kept = pairs[start : start + keep]
    return join_words([("", kept[0][1]), *kept[1:]]) if kept else ""


def human_word_pool(human_texts: Sequence[str], limit: int = 2000) -> list[str]:
    """The words substitutions and insertions draw from: short alphabetic words of human text."""
    return sorted({w for text in human_texts[:limit] for w in text.split() if w.isalpha() and len(w) < 16})


class Attacker:
    """Applies attacks with what they need: a word pool, human filler text, and the tokenizer."""

    def __init__(
        self, word_pool: Sequence[str], human_texts: Sequence[str], encode: Callable, decode: Callable, vocab_size: int
    ):
        if not word_pool:
            raise ConfigError("attacks need a non-empty pool of human words")
        self.word_pool = list(word_pool)
        self.human_texts = list(human_texts)
        self.encode, self.decode, self.vocab_size = encode, decode, vocab_size

    def apply(self, attack: Attack, text: str, rng: np.random.Generator) -> str:
        if attack.name == "none":
            return text
        if attack.name in WORD_ATTACKS:
            return edit_words(text, attack.rate, rng, self.word_pool, attack.name)
        if attack.name in TOKEN_ATTACKS:
            return edit_tokens(text, attack.rate, rng, self.encode, self.decode, self.vocab_size, attack.name)
        if attack.name == "copy_paste":
            human = self.human_texts[int(rng.integers(len(self.human_texts)))] if self.human_texts else ""
            return copy_paste(text, attack.rate, rng, human)
        return crop(text, attack.rate, rng)
