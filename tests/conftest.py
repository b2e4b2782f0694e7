"""Fixtures shared by the whole suite. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import json
import os
import random
import shutil
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


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory, builtin_documents, tokenizer_dir) -> Path:
    """A `nano` (~1M parameter) Llama trained briefly on the built-in corpus, saved with its tokenizer.

    Good enough to produce varied, corpus-like text (validation loss ~4.5 nats); build your own
    only if a test needs something this cannot give.
    """
    from transformers import AutoTokenizer

    from pretrain.reference_model import train_reference_nano

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = train_reference_nano(tokenizer, (document.text for document in builtin_documents), steps=300)
    out = tmp_path_factory.mktemp("trained-nano")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def prepared_data(tmp_path_factory, builtin_documents, tokenizer_dir) -> dict[str, Path]:
    """Shards laid out as `mintline prepare` writes them, plus its tokenizer."""
    root = tmp_path_factory.mktemp("prepared")
    documents = list(builtin_documents)
    random.Random(0).shuffle(documents)
    data = root / "data"
    data.mkdir()
    for split, chunk in (("validation", documents[:30]), ("train", documents[30:])):
        with open(data / f"{split}-00000-of-00001.jsonl", "w", encoding="utf-8") as handle:
            for document in chunk:
                handle.write(json.dumps(document.to_record()) + "\n")
    return {"data": data, "tokenizer": tokenizer_dir}


@pytest.fixture
def run_dir(tmp_path, prepared_data) -> Path:
    """A run directory whose prepare/ stage holds the shards and tokenizer."""
    run = tmp_path / "run"
    (run / "prepare").mkdir(parents=True)
    shutil.copytree(prepared_data["data"], run / "prepare" / "data")
    shutil.copytree(prepared_data["tokenizer"], run / "prepare" / "tokenizer")
    return run
