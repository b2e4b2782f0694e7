"""Fixtures of the annotation unit tests: a fresh ledger and a handful of pairs."""

from __future__ import annotations

import pytest

from annotation.ledger import Ledger
from annotation.pairs import PreferencePair


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "annotate" / "ledger.sqlite") as opened:
        yield opened


@pytest.fixture
def pairs():
    return [
        PreferencePair(
            f"prompt {i}", f"answer a{i}", f"answer b{i}", model="nano", predicted="a", confidence=0.5 + i / 20
        )
        for i in range(6)
    ]
