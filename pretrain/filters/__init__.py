"""Cleaning blocks in datatrove's shape: `filter(doc)` keeps (True) or drops ((False, reason)).

    normalize -> gopher_repetition -> gopher_quality -> c4 -> pii

is FineWeb's order (repetition and quality judge the text as written; C4 then edits lines;
PII scrubbing last). Every threshold is a field of the block's config dataclass, with
datatrove's values as defaults.
"""

from __future__ import annotations

from pretrain.filters.base import DocumentFilter, FilterStats
from pretrain.filters.c4 import C4Config, C4QualityFilter
from pretrain.filters.gopher_quality import GopherQualityConfig, GopherQualityFilter
from pretrain.filters.gopher_repetition import GopherRepetitionConfig, GopherRepetitionFilter
from pretrain.filters.normalize import NormalizeConfig, NormalizeFilter
from pretrain.filters.pii import PIIConfig, PIIFilter

FILTER_NAMES = ("normalize", "gopher_repetition", "gopher_quality", "c4", "pii")


def build_filters(
    names,
    normalize: NormalizeConfig | None = None,
    gopher_repetition: GopherRepetitionConfig | None = None,
    gopher_quality: GopherQualityConfig | None = None,
    c4: C4Config | None = None,
    pii: PIIConfig | None = None,
) -> list[DocumentFilter]:
    """The named blocks, in the order given, each with its config."""
    makers = {
        "normalize": lambda: NormalizeFilter(normalize),
        "gopher_repetition": lambda: GopherRepetitionFilter(gopher_repetition),
        "gopher_quality": lambda: GopherQualityFilter(gopher_quality),
        "c4": lambda: C4QualityFilter(c4),
        "pii": lambda: PIIFilter(pii),
    }
    unknown = [n for n in names if n not in makers]
    if unknown:
        raise ValueError(f"filters: unknown block {unknown[0]!r}; choose from {', '.join(FILTER_NAMES)}")
    return [makers[name]() for name in names]


__all__ = [
    "C4Config",
    "C4QualityFilter",
    "DocumentFilter",
    "FILTER_NAMES",
    "FilterStats",
    "GopherQualityConfig",
    "GopherQualityFilter",
    "GopherRepetitionConfig",
    "GopherRepetitionFilter",
    "NormalizeConfig",
    "NormalizeFilter",
    "PIIConfig",
    "PIIFilter",
    "build_filters",
]
