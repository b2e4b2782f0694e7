"""Attacks: each edit does what its name says, at its rate, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest

from watermark.attacks import Attacker, copy_paste, crop, edit_words, join_words, parse_attack, split_words
from watermark.errors import ConfigError

TEXT = " ".join(f"w{i}" for i in range(400)) + "\n"
POOL = ["alpha", "beta", "gamma"]


@pytest.mark.parametrize("text", ["", "one", "  lead and trail  ", "a\n\nb\tc ", "x  y"])
def test_words_round_trip(text):
    pairs, trailing = split_words(text)
    assert join_words(pairs, trailing) == text


def test_word_edits_hit_their_rate():
    rng = np.random.default_rng(0)
    deleted = edit_words(TEXT, 0.3, rng, POOL, "word_deletion").split()
    assert 0.25 < 1 - len(deleted) / 400 < 0.35 and set(deleted) <= set(TEXT.split())
    substituted = edit_words(TEXT, 0.5, rng, POOL, "word_substitution").split()
    assert len(substituted) == 400 and 0.43 < np.mean([w in POOL for w in substituted]) < 0.57
    inserted = edit_words(TEXT, 0.3, rng, POOL, "word_insertion").split()
    assert 0.25 < (len(inserted) - 400) / 400 < 0.35
    assert [w for w in inserted if w not in POOL] == TEXT.split()  # originals kept, in order


def test_span_attacks():
    rng = np.random.default_rng(1)
    pasted = copy_paste(TEXT, 0.25, rng, "h1 h2 h3 h4 h5").split()
    assert len(pasted) == 400
    marked = [w for w in pasted if w.startswith("w")]
    assert len(marked) == 100 and marked == TEXT.split()[int(marked[0][1:]) : int(marked[0][1:]) + 100]
    cropped = crop(TEXT, 0.5, rng).split()
    assert len(cropped) == 200 and " ".join(cropped) in TEXT


def test_token_attacks_and_reproducibility(tokenizer_dir):
    from watermark.detect import TextTokenizer

    tokenizer = TextTokenizer(tokenizer_dir).tokenizer
    attacker = Attacker(
        POOL,
        ["human text"],
        lambda t: tokenizer.encode(t, add_special_tokens=False).ids,
        lambda ids: tokenizer.decode(ids),
        tokenizer.get_vocab_size(),
    )
    original = "The return value is a new list of the items in the given order, or None."
    n = len(tokenizer.encode(original, add_special_tokens=False).ids)
    shorter = attacker.apply(parse_attack("token_deletion:0.5"), original, np.random.default_rng(2))
    assert len(tokenizer.encode(shorter, add_special_tokens=False).ids) < n
    one = attacker.apply(parse_attack("token_substitution:0.3"), original, np.random.default_rng(3))
    two = attacker.apply(parse_attack("token_substitution:0.3"), original, np.random.default_rng(3))
    assert one == two != original
    assert attacker.apply(parse_attack("none"), original, np.random.default_rng(0)) == original


@pytest.mark.parametrize("spec", ["paraphrase:0.3", "word_deletion", "word_deletion:x", "crop:0", "word_deletion:1.5"])
def test_bad_attack_specs(spec):
    with pytest.raises(ConfigError):
        parse_attack(spec)
