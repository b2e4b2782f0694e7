"""Passages of human text for the watermark's false-positive checks, attacks and prompts.

Used by the pipeline's watermark stage and by `mintline watermark`, so it lives below both: the
command layer may import the pipeline, never the reverse.
"""

from __future__ import annotations

import json
import random
from pathlib import Path


def human_passages(texts=None, words: int = 120, limit: int | None = None) -> list[str]:
    """Distinct passages of human text (the built-in corpus by default) for FPRs, attacks and prompts."""
    from watermark.evaluate import split_passages

    if texts is None:
        from pretrain.corpus.builtin import iter_builtin_corpus

        texts = (document.text for document in iter_builtin_corpus())
    return split_passages(texts, words, limit)


def human_passages_from_shards(data_dir: Path, words: int, limit: int, seed: int) -> list[str]:
    """Passages of the prepared validation split (text the model never trained on), shuffled by `seed`."""
    from watermark.evaluate import split_passages

    texts = [
        json.loads(line)["text"]
        for shard in sorted(data_dir.glob("validation-*.jsonl"))
        for line in shard.read_text(encoding="utf-8").splitlines()
    ]
    passages = split_passages(texts, words, None)
    random.Random(seed).shuffle(passages)
    return passages[:limit]
