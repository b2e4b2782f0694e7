"""The word split the Gopher rules count with: datatrove's English tokenizer (spaCy rules).

Expected splits below were produced by spaCy 3.8 (`spacy.blank("en")`), which datatrove
uses; test_prepare_datatrove_parity.py re-checks against it when datatrove is installed.
"""

import pytest

from pretrain.filters.words import WordSplitter, default_splitter

SPLITS = {
    "def f(x):": ["def", "f(x", "):"],  # the "):" emoticon special case survives affix splitting
    "f(x)):": ["f(x", ")", "):"],
    "foo.bar()": ["foo.bar", "(", ")"],
    "x[0]": ["x[0", "]"],
    "Don't use e.g. U.S.": ["Do", "n't", "use", "e.g.", "U.S."],
    "id": ["i", "d"],  # a contraction exception ("I'd" without the apostrophe)
    "its Its": ["its", "Its"],  # ...but "its" is excluded from them
    "1.5km 10%": ["1.5", "km", "10", "%"],
    "http://x.org/a?b=1": ["http://x.org/a?b=1"],
    "'hello'": ["'", "hello", "'"],
    "a...b": ["a", "...", "b"],
    "well-known": ["well", "-", "known"],
    "C++ :-) a:)": ["C++", ":-)", "a", ":)"],
    "  spaced\n\nout\t": ["spaced", "out"],
    "naïve café—ok": ["naïve", "café", "—", "ok"],
}


@pytest.mark.parametrize("text", sorted(SPLITS))
def test_words_match_spacy(text):
    assert default_splitter().words(text) == SPLITS[text]


@pytest.mark.parametrize(
    "line, count",
    [
        ("One sentence here", 1),
        ("First one. Second one! Third?", 3),
        ("Ends with dots... then more", 1),  # "..." is not one of the sentence-final marks
        ("Mr. Smith went home.", 1),  # "Mr." is one token, not a full stop
        ("Quote. 'Start' again.", 2),
        ("a.  . b", 2),  # a double space is a token of its own, and starts a sentence
        ("", 1),  # datatrove's split_into_sentences("") is [""]: C4 counts a blank line as a sentence
    ],
)
def test_sentence_count_matches_spacy_sentencizer(line, count):
    assert default_splitter().count_sentences(line) == count


def test_cache_is_consistent():
    splitter = WordSplitter()
    text = "def f(x): return x.y() # done, e.g. twice"
    assert splitter.words(text) == splitter.words(text)
