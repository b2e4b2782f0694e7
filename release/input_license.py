"""The licence a model directory already carries, read before it is published under MIT.

A bundle is always MIT. Releasing a model that its authors licensed otherwise (Apache-2.0, a GPL,
a Creative Commons or a community licence) would relicense it, which only its rights holders may
do; even an MIT model by someone else must keep their copyright notice. So the input's licence is
read from a licence file at its top level (LICENSE, LICENCE, COPYING, with or without .txt/.md)
and from its model card's front matter (`license:` in README.md); a conflict stops the release
unless the publisher says explicitly that they may relicense (`--allow_relicense`), and the
finding is recorded in provenance either way.

Licence texts are recognised by their own title lines, not by a full comparison: it is enough to
tell MIT from everything else, and an unrecognised text counts as a conflict (fail closed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from release import license as mit
from release.card import CARD_NAME, card_license

LICENSE_FILE_NAMES = {stem + suffix for stem in ("LICENSE", "LICENCE", "COPYING") for suffix in ("", ".TXT", ".MD")}
# Public-domain dedications put no condition on reuse: an MIT release of such a model is fine.
PUBLIC_DOMAIN = {"unlicense", "cc0-1.0", "mit-0", "0bsd", "wtfpl"}
_MAX_LICENSE_BYTES = 1 << 20


@dataclass
class DeclaredLicense:
    """What the input declares: a Hub-style licence id per source ('LICENSE', 'README.md license:')."""

    by_source: dict[str, str] = field(default_factory=dict)
    mit_holder: str | None = None  # the copyright holder of an MIT licence file

    @property
    def license(self) -> str | None:
        """One id when every source agrees, 'a / b' when they differ, None when nothing is declared."""
        ids = list(dict.fromkeys(self.by_source.values()))
        return " / ".join(ids) if ids else None

    def to_dict(self) -> dict:
        return {"license": self.license, "sources": dict(self.by_source), "mit_copyright_holder": self.mit_holder}


def read_declared_license(model_dir: str | Path) -> DeclaredLicense:
    root = Path(model_dir)
    declared = DeclaredLicense()
    if not root.is_dir():
        return declared
    for path in sorted(root.iterdir()):
        if path.name.upper() in LICENSE_FILE_NAMES and path.is_file():
            text = _read_text(path)
            declared.by_source[path.name] = identify_license_text(text)
            if declared.by_source[path.name] == "mit" and declared.mit_holder is None:
                declared.mit_holder = _mit_holder(text)
    card = root / CARD_NAME
    if card.is_file():
        value = card_license(_read_text(card))
        if value:
            declared.by_source[f"{CARD_NAME} license:"] = value
    return declared


def identify_license_text(text: str) -> str:
    """A Hub licence id for a licence text ('mit', 'apache-2.0', 'gpl-3.0', ...), or 'unknown'."""
    flat = " ".join(text.lower().split())
    if mit.mit_problem(text) is None or "permission is hereby granted, free of charge" in flat:
        return "mit"
    if "apache license" in flat and "version 2.0" in flat:
        return "apache-2.0"
    gnu = re.search(r"gnu (affero |lesser |library )?general public license", flat)
    if gnu:
        version = "3.0" if "version 3" in flat else "2.1" if gnu.group(1) in ("lesser ", "library ") else "2.0"
        family = {"affero ": "agpl", "lesser ": "lgpl", "library ": "lgpl"}.get(gnu.group(1) or "", "gpl")
        return f"{family}-{version}"
    if "mozilla public license" in flat:
        return "mpl-2.0"
    if "this is free and unencumbered software released into the public domain" in flat:
        return "unlicense"
    if "cc0 1.0" in flat or "creative commons zero" in flat:
        return "cc0-1.0"
    if "creative commons" in flat or "attribution-" in flat:
        kind = "-nc" if "noncommercial" in flat else ""
        kind += "-nd" if "noderivatives" in flat else "-sa" if "sharealike" in flat else ""
        return f"cc-by{kind}-4.0" if "4.0" in flat else f"cc-by{kind}"
    if "redistribution and use in source and binary forms" in flat:
        return "bsd-3-clause" if "neither the name" in flat else "bsd-2-clause"
    if "openrail" in flat or "responsible ai license" in flat:
        return "openrail"
    if "llama" in flat and "community license" in flat:
        return "llama"
    return "unknown"


def relicense_conflict(declared: DeclaredLicense, holder: str) -> str | None:
    """Why publishing this input under MIT with `holder` would relicense it; None when it would not."""
    others = sorted(
        {
            f"{value} ({source})"
            for source, value in declared.by_source.items()
            if value != "mit" and value not in PUBLIC_DOMAIN
        }
    )
    if others:
        return f"it declares the {', '.join(others)} licence, and a release is MIT"
    wanted = " ".join(holder.split())
    if declared.mit_holder and declared.mit_holder.casefold() != wanted.casefold():
        return (
            f"its MIT licence names the copyright holder {declared.mit_holder!r}, whose notice an MIT "
            f"release by {wanted!r} would drop (pass --holder {declared.mit_holder!r} to keep it)"
        )
    return None


def _mit_holder(text: str) -> str | None:
    found = mit.copyright_of(text)
    if found:
        return found[1].strip()
    match = re.search(r"copyright\s*(?:\(c\)|©)?\s*[\d\s,-]*\d{4}\s+(\S[^\n]*)", text, re.IGNORECASE)
    return match.group(1).strip().rstrip(".") if match else None


def _read_text(path: Path) -> str:
    with open(path, "rb") as handle:
        return handle.read(_MAX_LICENSE_BYTES).decode("utf-8", errors="replace")
