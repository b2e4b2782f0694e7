"""The MIT licence, word for word (the OSI/SPDX text as choosealicense.com publishes it).

A release bundle's LICENSE must be exactly this text with a year and a copyright holder;
`mit_problem` says why a given text is not.
"""

from __future__ import annotations

import datetime as _dt
import re

_HEADER = "MIT License\n\n"
_COPYRIGHT = "Copyright (c) {year} {holder}\n"
_BODY = """
Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""

SPDX_ID = "MIT"
# A year ("2026"), a range ("2024-2026") or a list ("2024, 2026"); then a holder on one line.
_COPYRIGHT_LINE = re.compile(r"Copyright \(c\) (\d{4}(?:\s*[-,]\s*\d{4})*) (\S[^\n]*)\n")


def mit_license(holder: str, year: int | str | None = None) -> str:
    holder = " ".join(str(holder).split())
    if not holder:
        raise ValueError("holder: the copyright holder must not be empty")
    year = year if year is not None else _dt.date.today().year
    return _HEADER + _COPYRIGHT.format(year=year, holder=holder) + _BODY


def mit_problem(text: str) -> str | None:
    """None when `text` is the MIT licence with a year and holder; otherwise what is wrong."""
    if not text.startswith(_HEADER):
        return "LICENSE does not start with 'MIT License'"
    rest = text[len(_HEADER) :]
    match = _COPYRIGHT_LINE.match(rest)
    if match is None:
        return "LICENSE has no 'Copyright (c) YEAR HOLDER' line after the title"
    body = rest[match.end() :]
    if body != _BODY:
        return "LICENSE is not the exact MIT licence text (the permission, notice or warranty wording differs)"
    return None


def copyright_of(text: str) -> tuple[str, str] | None:
    """(year, holder) of an MIT licence text, or None."""
    if mit_problem(text) is not None:
        return None
    match = _COPYRIGHT_LINE.match(text[len(_HEADER) :])
    return match.group(1), match.group(2)
