"""Unicode normalisation and whitespace clean-up, the first block of the pipeline.

Line endings become "\\n"; control and invisible format characters (NUL, BOM, zero-width
spaces, soft hyphens) go; text is brought to one Unicode normal form (NFC by default, so
"é" written two ways is one string for dedup and the tokenizer); trailing spaces are cut
from every line and runs of blank lines shrink to one. Leading indentation is kept: in code
it is meaning. A document with nothing left is dropped as "empty".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from pretrain.corpus.document import Document
from pretrain.filters.base import DocumentFilter

UNICODE_FORMS = ("NFC", "NFKC", "NFD", "NFKD", "none")

# C0/C1 controls except tab and newline, plus invisible format characters that only confuse
# tokenizers and dedup: zero-width space/joiners, word joiner, BOM, soft hyphen.
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u200b-\u200d\u2060\ufeff]")
_TRAILING_SPACE = re.compile(r"[ \t\u00a0\u3000]+(?=\n|\Z)")
_BLANK_RUNS = re.compile(r"\n{3,}")


@dataclass
class NormalizeConfig:
    unicode_form: str = field(default="NFC", metadata={"help": "Unicode normal form", "choices": list(UNICODE_FORMS)})

    def __post_init__(self):
        if self.unicode_form not in UNICODE_FORMS:
            raise ValueError(f"unicode_form: choose from {', '.join(UNICODE_FORMS)}, got {self.unicode_form!r}")


def normalize_text(text: str, unicode_form: str = "NFC") -> str:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE.sub("", text)
    if unicode_form != "none" and not (text.isascii()):
        text = unicodedata.normalize(unicode_form, text)
    text = _TRAILING_SPACE.sub("", text)
    text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip("\n")


class NormalizeFilter(DocumentFilter):
    name = "normalize"

    def __init__(self, config: NormalizeConfig | None = None):
        super().__init__()
        self.config = config or NormalizeConfig()

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = normalize_text(doc.text, self.config.unicode_form)
        if text != doc.text:
            doc.text = text
        if not text.strip():
            return self.drop(doc, "empty", 0, 1, "<", "non-space characters")
        return True
