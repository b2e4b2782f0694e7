"""Watermark fixtures: keys for the shared tokenizer, and marked / unmarked samples of the trained model.

Samples are generated once per session with EOS suppressed, so every text has its full length.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from thread_helpers import one_thread

PROMPTS = [
    "The return value",
    "If the argument is",
    "This module provides",
    "Return a new",
    "The following",
    "An object that",
    "Raise an exception",
    "For example,",
    "When the file",
    "The default is",
    "Changed in version",
    "A list of",
]


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="session")
def kgw_key(key_dir, tokenizer_dir) -> Path:
    from watermark.keys import generate_key

    path = key_dir / "kgw.json"
    generate_key(tokenizer_dir, path, scheme="kgw")  # named: the default scheme is no longer kgw
    return path


@pytest.fixture(scope="session")
def other_kgw_key(key_dir, tokenizer_dir) -> Path:
    from watermark.keys import generate_key

    path = key_dir / "kgw-other.json"
    generate_key(tokenizer_dir, path, scheme="kgw")
    return path


@pytest.fixture
def single_thread():
    """Torch work in the test body runs on one thread (see one_thread)."""
    with one_thread():
        yield


def generate(
    model_dir: Path,
    key_path: Path | None,
    prompts: list[str],
    max_new_tokens: int,
    seed: int = 0,
    batch_size: int | None = None,
):
    """(completions, token ids) from the trained model, watermarked with `key_path` if given.

    One processor serves every batch, as in `mintline generate`."""
    from transformers import LogitsProcessorList, SuppressTokensLogitsProcessor

    from pretrain.generation import GenerationArguments, generate_texts, load_model_and_tokenizer
    from watermark.keys import load_key
    from watermark.processor import logits_processor_for

    model, tokenizer = load_model_and_tokenizer(model_dir)
    processors = [SuppressTokensLogitsProcessor([tokenizer.eos_token_id])]
    if key_path is not None:
        processors.append(logits_processor_for(load_key(key_path), tokenizer, vocab_size=model.config.vocab_size))
    args = GenerationArguments(max_new_tokens=max_new_tokens, batch_size=batch_size or len(prompts), seed=seed)
    with one_thread():
        ids = generate_texts(
            model, tokenizer, prompts, args, logits_processor=LogitsProcessorList(processors), return_token_ids=True
        )
    texts = [tokenizer.decode(row, skip_special_tokens=True) for row in ids]
    return texts, ids


@pytest.fixture(scope="session")
def sample_prompts() -> list[str]:
    return list(PROMPTS)


@pytest.fixture(scope="session")
def generate_samples():
    """The `generate` helper as a fixture, for test modules that need their own samples."""
    return generate


@pytest.fixture(scope="session")
def marked_generation(trained_model_dir, kgw_key):
    """(completions, token ids): 12 texts of 200 tokens watermarked with `kgw_key`."""
    return generate(trained_model_dir, kgw_key, PROMPTS, 200)


@pytest.fixture(scope="session")
def marked_samples(marked_generation):
    return marked_generation[0]


@pytest.fixture(scope="session")
def unmarked_samples(trained_model_dir):
    return generate(trained_model_dir, None, PROMPTS, 200)[0]


@pytest.fixture(scope="session")
def human_passages(builtin_documents) -> list[str]:
    """>= 1,000 distinct passages of ~120 words of human text (the built-in corpus, Python's documentation)."""
    from mintline.pipeline.corpus import human_passages as cut_passages

    return cut_passages(document.text for document in builtin_documents)
