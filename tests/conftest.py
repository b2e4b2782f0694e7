"""Fixtures shared by the whole suite. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests run on 2 cores beside other work: keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be downloaded at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


class CliRun:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def json(self):
        import json

        return json.loads(self.out.strip().splitlines()[-1])

    def __repr__(self) -> str:
        return f"CliRun(code={self.code}, out={self.out[-500:]!r}, err={self.err[-500:]!r})"


@pytest.fixture
def cli(capsys):
    """Run `mintline ARGS...` in-process; returns CliRun(code, out, err)."""
    from mintline.cli import main

    def run(*args: str) -> CliRun:
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as stop:  # argparse's own exits
            code = int(stop.code or 0)
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def builtin_documents():
    """The built-in corpus (Python documentation), read once per session."""
    from pretrain.corpus.builtin import iter_builtin_corpus

    return list(iter_builtin_corpus())


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, builtin_documents) -> Path:
    """A byte-level BPE tokenizer (vocab 4096) trained on the built-in corpus, saved with save_pretrained."""
    from pretrain.tokenizer import TokenizerConfig, save_tokenizer, train_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    tokenizer = train_tokenizer((d.text for d in builtin_documents), TokenizerConfig(vocab_size=4096))
    return save_tokenizer(tokenizer, out)
