"""Gopher repetition rules: just inside and just outside each threshold.

Line and paragraph documents are built so the measured fraction equals the default threshold
exactly; for n-grams the measure is known by construction and the threshold is set to it.
"""

import random

import pytest
from prepare_helpers import prose, pseudo_words

from pretrain.corpus.document import Document
from pretrain.filters import GopherRepetitionConfig, GopherRepetitionFilter
from pretrain.filters.gopher_repetition import duplicated_ngram_chars

ALL_OFF = dict.fromkeys(GopherRepetitionConfig.__dataclass_fields__, 0)


def judge(text: str, **rule):
    block = GopherRepetitionFilter(GopherRepetitionConfig(**{**ALL_OFF, **rule}))
    doc = Document(id="d", text=text)
    return block(doc), doc.metadata.get("removal")


def blocks(distinct: int, repeats: int, separator: str) -> str:
    parts = [f"part {w} says something" for w in pseudo_words(distinct, seed=3)]
    return separator.join(parts + [parts[0]] * repeats)


@pytest.mark.parametrize(
    "rule, separator, reason",
    [("dup_para_frac", "\n\n", "dup_para_frac"), ("dup_line_frac", "\n", "dup_line_frac")],
)
def test_repeated_line_and_paragraph_fraction(rule, separator, reason):
    kept, _ = judge(blocks(7, 3, separator), **{rule: 0.3})  # 3 of 10 repeat
    assert kept
    kept, removal = judge(blocks(6, 4, separator), **{rule: 0.3})  # 4 of 10
    assert not kept and removal["reason"] == reason and removal["value"] == pytest.approx(0.4, abs=1e-6)


@pytest.mark.parametrize("rule, separator", [("dup_para_char_frac", "\n\n"), ("dup_line_char_frac", "\n")])
def test_characters_in_repeated_lines_and_paragraphs(rule, separator):
    # A + sep + B + sep + A: the repeated A holds 10 of 50 characters (0.2), or 10 of 49
    a = "a" * 10
    inside = separator.join([a, "b" * (30 - 2 * len(separator)), a])
    outside = separator.join([a, "b" * (29 - 2 * len(separator)), a])
    assert len(inside) == 50 and len(outside) == 49
    kept, _ = judge(inside, **{rule: 0.2})
    assert kept
    kept, removal = judge(outside, **{rule: 0.2})
    assert not kept and removal["reason"] == rule and removal["value"] == pytest.approx(10 / 49, abs=1e-6)


@pytest.mark.parametrize(
    "n, text, covered",
    [
        (2, "aa bb aa bb cc dd", 2 * len("aa bb")),
        (3, "aa bb cc aa bb cc dd", 2 * len("aa bb cc")),
        (4, "aa bb cc dd aa bb cc dd ee", 2 * len("aa bb cc dd")),
    ],
)
def test_top_ngram_fraction(n, text, covered):
    share = covered / len(text)
    kept, _ = judge(text, **{f"top_{n}_gram_frac": share})
    assert kept
    kept, removal = judge(text, **{f"top_{n}_gram_frac": share - 1e-6})
    assert not kept and removal["reason"] == f"top_{n}_gram" and removal["value"] == pytest.approx(share, abs=1e-6)


@pytest.mark.parametrize("n", [5, 6, 7, 8, 9, 10])
def test_duplicated_ngram_fraction(n):
    gram = pseudo_words(n, seed=n, length=2)  # n distinct 4-letter words
    filler = pseudo_words(6, seed=100 + n, length=3)
    text = " ".join(gram + filler + gram)
    share = sum(len(w) for w in gram) / len(text)  # n-grams are joined without spaces
    kept, _ = judge(text, **{f"dup_{n}_gram_frac": share})
    assert kept
    kept, removal = judge(text, **{f"dup_{n}_gram_frac": share - 1e-6})
    assert (
        not kept
        and removal["reason"] == f"duplicated_{n}_n_grams"
        and removal["value"] == pytest.approx(share, abs=1e-6)
    )


def _datatrove_find_all_duplicate(words, n):
    """datatrove's loop, verbatim in behaviour: the reference the fast scan must equal."""
    unique, repeated, idx = set(), 0, 0
    while idx < len(words) - n + 1:
        gram = "".join(words[idx : idx + n])
        if gram in unique:
            repeated += len(gram)
            idx += n
        else:
            unique.add(gram)
            idx += 1
    return repeated


def test_fast_duplicate_scan_equals_datatrove_loop():
    rng = random.Random(7)
    # tiny vocabularies repeat constantly; "a"/"aa" make joins collide ("a"+"aa" == "aa"+"a")
    for vocabulary in (["a", "aa", "b"], ["x", "y"], pseudo_words(5)):
        for _ in range(150):
            words = [rng.choice(vocabulary) for _ in range(rng.randint(0, 60))]
            for n in range(5, 11):
                assert duplicated_ngram_chars(words, n) == _datatrove_find_all_duplicate(words, n)


def test_defaults_keep_prose_and_drop_spam():
    block = GopherRepetitionFilter()
    assert block(Document(id="p", text=prose()))
    spam = Document(id="s", text="Buy cheap pills now. " * 40)
    assert not block(spam) and spam.metadata["removal"]["filter"] == "gopher_repetition"


def test_empty_text_is_dropped():
    kept, removal = judge("")
    assert not kept and removal["reason"] == "empty"


def test_grown_ngrams_equal_joined_ngrams():
    from pretrain.filters.gopher_repetition import _growing_ngrams

    rng = random.Random(3)
    for _ in range(50):
        words = [rng.choice(["a", "bb", "c", "dd", "(", "):"]) for _ in range(rng.randint(0, 30))]
        for separator, sizes in ((" ", [2, 4]), ("", [5, 6, 7, 8, 9, 10])):
            for n, grams in _growing_ngrams(words, sizes, separator):
                assert grams == [separator.join(words[i : i + n]) for i in range(len(words) - n + 1)]
