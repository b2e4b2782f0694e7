"""Side by side with datatrove itself (in the `dev` extra, so the README's test command and CI
run these; on an install without it they skip).

benchmarks/prepare.py does the same at scale; these keep a small sample in the test suite.
"""

import pytest

datatrove_filters = pytest.importorskip("datatrove.pipeline.filters")
pytest.importorskip("spacy")


@pytest.fixture(scope="module")
def sample(builtin_documents):
    return builtin_documents[::25]


def test_words_and_sentences(sample):
    from datatrove.utils.text import split_into_sentences, split_into_words

    from pretrain.filters.words import WordSplitter

    splitter = WordSplitter()
    for document in sample:
        assert splitter.words(document.text) == split_into_words(document.text), document.id
        for line in document.text.splitlines()[:30]:
            assert splitter.count_sentences(line.strip()) == len(split_into_sentences(line.strip())), line


@pytest.mark.parametrize("profile", ["datatrove", "python-docs"])
def test_each_filter_decides_and_edits_like_datatrove(sample, profile):
    from datatrove.data import Document as DatatroveDocument

    from pretrain.corpus.config import PrepareConfig
    from pretrain.corpus.document import Document

    config = PrepareConfig.from_profile(profile, inputs=["x"])
    config.c4.keep_line_indentation = False  # datatrove has no such option
    r, q, c = config.gopher_repetition, config.gopher_quality, config.c4
    theirs = [
        datatrove_filters.GopherRepetitionFilter(
            dup_line_frac=r.dup_line_frac,
            dup_para_frac=r.dup_para_frac,
            dup_line_char_frac=r.dup_line_char_frac,
            dup_para_char_frac=r.dup_para_char_frac,
            top_n_grams=tuple((n, getattr(r, f"top_{n}_gram_frac")) for n in (2, 3, 4)),
            dup_n_grams=tuple((n, getattr(r, f"dup_{n}_gram_frac")) for n in range(5, 11)),
        ),
        datatrove_filters.GopherQualityFilter(max_non_alpha_words_ratio=q.max_non_alpha_words_ratio),
        datatrove_filters.C4QualityFilter(
            filter_no_terminal_punct=c.filter_no_terminal_punct,
            min_words_per_line=c.min_words_per_line,
            filter_curly_bracket=c.filter_curly_bracket,
        ),
    ]
    ours = config.build_filters()[1:4]  # normalize first and pii last are not datatrove filters
    for mine, baseline in zip(ours, theirs):
        for document in sample:
            a = Document(id=document.id, text=document.text)
            b = DatatroveDocument(id=document.id, text=document.text)
            kept = mine(a)
            result = baseline.filter(b)
            assert kept == (result is True), (mine.name, document.id)
            if kept:
                assert a.text == b.text, (mine.name, document.id)
            else:
                assert a.metadata["removal"]["reason"] == result[1], (mine.name, document.id)
