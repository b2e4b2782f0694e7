"""Calibration and evaluation text for post-training pruning, and the loss it is judged by.

Text comes from the prepare stage's validation shards (`{"id", "text", "source"}` per line, or
Parquet with a `text` column), is packed into fixed-length blocks (BOS doc EOS, as in
pretraining), shuffled with a fixed seed, and split into two disjoint sets: a few blocks for
calibration (Wanda's activation norms) and the rest, up to a limit, for measuring the loss, so
the method is never judged on the text it calibrated on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from pretrain.data import SHARD_SUFFIXES, iter_shard_texts
from pretrain.errors import CorpusError


def find_text_files(path: str | Path) -> list[Path]:
    """A .jsonl/.parquet file, or a directory's validation-* shards (any shard if it has none)."""
    path = Path(path)
    if path.is_file():
        if path.suffix not in SHARD_SUFFIXES:
            raise CorpusError(f"calibration_data: {path} is not a .jsonl or .parquet file")
        return [path]
    if not path.is_dir():
        raise CorpusError(f"calibration_data: no such file or directory: {path}")
    shards = sorted(p for p in path.iterdir() if p.name.startswith("validation-") and p.suffix in SHARD_SUFFIXES)
    if not shards:
        raise CorpusError(f"calibration_data: {path} holds no validation-*.jsonl or validation-*.parquet shards")
    return shards


def iter_texts(files: list[Path]) -> Iterator[str]:
    """The non-empty texts of the files (the engine's shard reader; empty documents add nothing here)."""
    return (text for text in iter_shard_texts(files) if text)


def pack_blocks(tokenizer, texts: Iterator[str], block_size: int, max_blocks: int) -> torch.Tensor:
    """[n, block_size] token ids of documents packed end to end; stops once max_blocks are full."""
    eos = tokenizer.eos_token_id
    needed = block_size * max_blocks
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, verbose=False)["input_ids"])  # long documents are split into blocks below
        if eos is not None:
            ids.append(eos)
        if len(ids) >= needed:
            break
    count = min(len(ids) // block_size, max_blocks)
    return torch.tensor(ids[: count * block_size], dtype=torch.long).view(count, block_size)


def calibration_and_evaluation_blocks(
    tokenizer, files: list[Path], block_size: int, calibration: int, evaluation: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    # Read a generous pool so the shuffle mixes documents from the whole sample, not only the first.
    blocks = pack_blocks(tokenizer, iter_texts(files), block_size, 4 * (calibration + evaluation))
    if len(blocks) < calibration + 1:
        raise CorpusError(
            f"calibration_data: {len(blocks)} blocks of {block_size} tokens, need more than {calibration} "
            "(calibration) plus some to evaluate on; give more text or lower block_size"
        )
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(seed))
    blocks = blocks[order]
    return blocks[:calibration], blocks[calibration : calibration + evaluation]


@torch.no_grad()
def evaluate_loss(model, blocks: torch.Tensor, batch_size: int = 8) -> float:
    """Mean next-token cross-entropy (nats) over all predicted tokens of the blocks."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    try:
        for start in range(0, len(blocks), batch_size):
            batch = blocks[start : start + batch_size].to(device)
            logits = model(input_ids=batch).logits[:, :-1].float()
            targets = batch[:, 1:]
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"
            )
            total += float(loss)
            count += targets.numel()
    finally:
        model.train(was_training)
    return total / max(count, 1)
