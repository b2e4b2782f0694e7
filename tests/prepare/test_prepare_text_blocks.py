"""C4 line and document rules, normalisation, PII scrubbing, and the blocks' shared counting."""

import pytest
from prepare_helpers import prose

from pretrain.corpus.document import Document
from pretrain.filters import (
    C4Config,
    C4QualityFilter,
    GopherQualityFilter,
    NormalizeConfig,
    NormalizeFilter,
    PIIConfig,
    PIIFilter,
)

FIVE_SENTENCES = "\n".join(f"This is sentence number {n} here." for n in range(5))


def c4(text: str, **config):
    block = C4QualityFilter(C4Config(**config))
    doc = Document(id="d", text=text)
    return block(doc), doc, block


# -- C4 --------------------------------------------------------------------------------------
def test_min_num_sentences_inside_and_outside():
    kept, _, _ = c4(FIVE_SENTENCES)
    assert kept
    kept, doc, _ = c4("\n".join(FIVE_SENTENCES.splitlines()[:4]))
    assert (
        not kept and doc.metadata["removal"]["reason"] == "too_few_sentences" and doc.metadata["removal"]["value"] == 4
    )


def test_sentences_are_counted_inside_a_line():
    # spaCy's sentencizer: two sentences in one line count twice
    kept, _, _ = c4("One two three. Four five six.\nSeven eight nine. Ten eleven twelve.\nAnd a fifth one here.")
    assert kept


@pytest.mark.parametrize(
    "line, reason",
    [
        ("this line has no final stop", "no_terminal_punct"),
        ("this line trails off...", "no_terminal_punct"),
        ("Two words.", "too_few_words"),
        ("A " + "x" * 1001 + " word.", "too_long_word"),
        ("Enable JavaScript to view this page.", "javascript"),
        ("Read our privacy policy for details.", "policy"),
    ],
)
def test_line_rules_remove_the_line_only(line, reason):
    kept, doc, block = c4(FIVE_SENTENCES + "\n" + line)
    assert kept
    assert doc.text == FIVE_SENTENCES
    assert block.take_line_stats() == {reason: 1}


def test_word_limits_just_inside():
    inside = "\n".join([FIVE_SENTENCES, "Three words here.", "A " + "x" * 1000 + " word."])
    kept, doc, _ = c4(inside)
    assert kept and doc.text == inside


def test_citations_are_removed_from_kept_lines():
    kept, doc, _ = c4(FIVE_SENTENCES + "\nThe sky is blue[1] and wide[citation needed].")
    assert kept and doc.text.endswith("The sky is blue and wide.")


@pytest.mark.parametrize(
    "line, reason",
    [("Lorem ipsum dolor sit amet.", "lorem_ipsum"), ("Use a dict like {a: 1} here.", "curly_bracket")],
)
def test_document_rules_drop_the_document(line, reason):
    kept, doc, _ = c4(FIVE_SENTENCES + "\n" + line)
    assert not kept and doc.metadata["removal"]["reason"] == reason


def test_curly_bracket_on_a_removed_line_does_not_count():
    # datatrove checks "{" only on lines that survived the line rules
    kept, _, _ = c4(FIVE_SENTENCES + "\nif x {")
    assert kept


def test_keep_line_indentation_keeps_code_shape():
    code = "def f(x):\n    return x ** 2\n\nprint(f(3))"
    kept, doc, _ = c4(
        FIVE_SENTENCES + "\n" + code,
        filter_no_terminal_punct=False,
        min_words_per_line=-1,
        filter_curly_bracket=False,
        keep_line_indentation=True,
    )
    assert kept and doc.text.endswith(code)
    kept, doc, _ = c4(FIVE_SENTENCES + "\n" + code, filter_no_terminal_punct=False, min_words_per_line=-1)
    assert "\nreturn x ** 2\n" in doc.text  # datatrove's behaviour: lines stripped, blank lines dropped


# -- normalisation ---------------------------------------------------------------------------
def test_normalize_unicode_whitespace_and_invisibles():
    block = NormalizeFilter()
    doc = Document(id="n", text="\ufeffcafe\u0301 ok  \r\nline\u200b two\t\r\n\r\n\r\n\r\n    indented\n\n")
    assert block(doc)
    assert doc.text == "caf\u00e9 ok\nline two\n\n    indented"
    assert block.stats.edited_docs == 1 and block.stats.edited_bytes_removed > 0


def test_normalize_drops_empty_and_keeps_nfkc_choice():
    block = NormalizeFilter()
    doc = Document(id="e", text=" \u200b\n\t\n")
    assert not block(doc) and doc.metadata["removal"]["reason"] == "empty"
    doc = Document(id="k", text="ﬁne ①")
    assert NormalizeFilter(NormalizeConfig(unicode_form="NFKC"))(doc) and doc.text == "fine 1"
    with pytest.raises(ValueError, match="unicode_form"):
        NormalizeConfig(unicode_form="NFX")


# -- PII -------------------------------------------------------------------------------------
def test_pii_replaces_emails_and_public_ips_as_fineweb():
    block = PIIFilter()
    doc = Document(
        id="p",
        text="Mail jane.doe@mail.com or bob@corp.co.uk; server 8.8.8.8, router 192.168.1.1, localhost 127.0.0.1, version 1.2.3.",
    )
    assert block(doc)
    assert "jane.doe" not in doc.text and "bob@" not in doc.text
    assert "email@example.com" in doc.text and "firstname.lastname@example.org" in doc.text  # stand-ins in turn
    assert "8.8.8.8" not in doc.text and "22.214.171.124" in doc.text
    assert "192.168.1.1" in doc.text and "127.0.0.1" in doc.text and "1.2.3" in doc.text
    assert block.take_replacements() == {"emails": 2, "ips": 1}


def test_pii_stand_ins_restart_in_every_document():
    block = PIIFilter()
    first, second = Document(id="1", text="a@b.org"), Document(id="2", text="c@d.org")
    block(first), block(second)
    assert first.text == second.text == "email@example.com"


def test_pii_private_ips_when_asked():
    doc = Document(id="p", text="router 192.168.1.1")
    PIIFilter(PIIConfig(only_remove_public_ips=False))(doc)
    assert "192.168.1.1" not in doc.text


# -- counting --------------------------------------------------------------------------------
def test_base_class_counts_docs_and_bytes_per_reason():
    block = GopherQualityFilter()
    texts = [prose(seed=1), prose(seed=2), "too short é", "also short"]
    for i, text in enumerate(texts):
        block(Document(id=str(i), text=text))
    stats = block.take_stats().to_dict()
    assert stats["docs_in"] == 4 and stats["kept"]["docs"] == 2
    assert stats["kept"]["bytes"] == len(texts[0].encode()) + len(texts[1].encode())
    assert stats["dropped"]["by_reason"] == {
        "gopher_short_doc": {"docs": 2, "bytes": len("too short é".encode()) + len("also short")}
    }
    assert block.take_stats().docs_in == 0  # taken means reset
