"""Tiny models and data for the sparsity tests (seconds on 2 cores)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one thread beats two, and wins big when other work shares the cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def corpus_blocks(builtin_documents, tokenizer_dir) -> torch.Tensor:
    """[n, 32] blocks of real text from the built-in corpus, tokenized with the shared tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    ids: list[int] = []
    for document in builtin_documents[:400]:
        ids.extend(tokenizer(document.text)["input_ids"] + [tokenizer.eos_token_id])
        if len(ids) > 32 * 600:
            break
    count = len(ids) // 32
    return torch.tensor(ids[: count * 32]).view(count, 32)


@pytest.fixture(scope="session")
def validation_file(tmp_path_factory, builtin_documents):
    """A validation shard as `mintline prepare` writes it: one {"id", "text", "source"} per line."""
    import json

    path = tmp_path_factory.mktemp("prepared") / "validation-00000-of-00001.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for document in builtin_documents[-300:]:
            handle.write(json.dumps({"id": document.id, "text": document.text, "source": document.source}) + "\n")
    return path
