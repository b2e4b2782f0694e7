"""Gopher quality rules: each on a document just inside and just outside its threshold.

Every other rule is switched off (0) so the document meets only the rule under test;
datatrove compares with strict inequalities, so a value equal to the threshold is kept.
"""

import pytest
from prepare_helpers import prose, pseudo_words

from pretrain.corpus.document import Document
from pretrain.filters import GopherQualityConfig, GopherQualityFilter

ALL_OFF = dict(
    min_doc_words=0,
    max_doc_words=0,
    min_avg_word_length=0,
    max_avg_word_length=0,
    max_symbol_word_ratio=0,
    max_bullet_lines_ratio=0,
    max_ellipsis_lines_ratio=0,
    max_non_alpha_words_ratio=0,
    min_stop_words=0,
)


def judge(text: str, **rule):
    block = GopherQualityFilter(GopherQualityConfig(**{**ALL_OFF, **rule}))
    doc = Document(id="d", text=text)
    return block(doc), doc.metadata.get("removal")


def words(n: int) -> str:
    return " ".join(pseudo_words(n))


CASES = {
    # rule: (threshold, text just inside, text just outside, reason, value outside)
    "min_doc_words": (50, words(50), words(49), "gopher_short_doc", 49),
    "max_doc_words": (100, words(100), words(101), "gopher_long_doc", 101),
    "min_avg_word_length": (3, "abc " * 10, "abc " * 9 + "ab", "gopher_below_avg_threshold", 2.9),
    "max_avg_word_length": (
        10,
        "abcdefghij " * 10,
        "abcdefghij " * 9 + "abcdefghijk",
        "gopher_above_avg_threshold",
        10.1,
    ),
    # '#' and '...' standing alone are words of their own: 2 of 20 words vs 3 of 20
    "max_symbol_word_ratio": (0.1, words(18) + " # #", words(17) + " # # #", "gopher_too_many_hashes", 0.15),
    "max_bullet_lines_ratio": (
        0.9,
        "\n".join(["- item one here"] * 9 + ["plain line here"]),
        "\n".join(["• item one here"] * 5 + ["- item two here"] * 5),
        "gopher_too_many_bullets",
        1.0,
    ),
    "max_ellipsis_lines_ratio": (
        0.3,
        "\n".join(["it trails off..."] * 3 + ["it ends well."] * 7),
        "\n".join(["it trails off…"] * 4 + ["it ends well."] * 6),
        "gopher_too_many_end_ellipsis",
        0.4,
    ),
    # words holding a letter: 8 of 10 vs 7 of 10 ("12" has none)
    "max_non_alpha_words_ratio": (
        0.8,
        words(8) + " 12 34",
        words(7) + " 12 34 56",
        "gopher_below_alpha_threshold",
        0.7,
    ),
    # distinct stop words: "the" and "of" vs "the" twice
    "min_stop_words": (2, words(10) + " the of", words(10) + " the the", "gopher_enough_stop_words", 1),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_keeps_inside_and_drops_outside(rule):
    threshold, inside, outside, reason, value = CASES[rule]
    kept, _ = judge(inside, **{rule: threshold})
    assert kept, f"{rule}: the document at the threshold must be kept"
    kept, removal = judge(outside, **{rule: threshold})
    assert not kept
    assert removal["reason"] == reason
    assert removal["value"] == pytest.approx(value, abs=1e-6)
    assert removal["threshold"] == threshold


def test_ellipsis_ratio_counts_both_spellings():
    kept, removal = judge(words(17) + " ... … ...", max_symbol_word_ratio=0.1)
    assert (
        not kept
        and removal["reason"] == "gopher_too_many_ellipsis"
        and removal["value"] == pytest.approx(0.15, abs=1e-6)
    )


def test_words_follow_datatrove_tokenizer():
    # "f(x):" is two words, "f(x" and "):", and neither is a symbol-only word
    kept, removal = judge("def f(x): " * 20, min_doc_words=41)
    assert not kept and removal["value"] == 40


def test_defaults_are_datatrove_and_keep_plain_prose():
    config = GopherQualityConfig()
    assert (config.min_doc_words, config.max_doc_words) == (50, 100_000)
    assert (config.min_avg_word_length, config.max_avg_word_length) == (3, 10)
    assert (config.max_symbol_word_ratio, config.max_bullet_lines_ratio, config.max_ellipsis_lines_ratio) == (
        0.1,
        0.9,
        0.3,
    )
    assert (config.max_non_alpha_words_ratio, config.min_stop_words) == (0.8, 2)
    assert GopherQualityFilter()(Document(id="p", text=prose()))


def test_bad_threshold_is_rejected_by_name():
    with pytest.raises(ValueError, match="max_non_alpha_words_ratio"):
        GopherQualityConfig(max_non_alpha_words_ratio=1.5)
