"""Prepared shards → one flat token file per split → fixed-length packed blocks.

Documents are tokenized once (the tokenizer adds BOS; we append EOS) into a flat uint16/uint32
memory-mapped file, nanoGPT style, named by the digest of the shards and the tokenizer so a
change invalidates it. A block is a slice of that file: memory stays flat whatever the corpus
size, and any block is read in O(1), which is what exact resume needs (the Trainer replays the
sampler and skips the consumed batches).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pretrain.atomic import atomic_path
from pretrain.errors import CorpusError

log = logging.getLogger("pretrain")

SHARD_SUFFIXES = (".jsonl", ".parquet")


def find_shards(data_dir: str | Path, split: str) -> list[Path]:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise CorpusError(f"data_dir: no such directory: {data_dir} (run `mintline prepare` first)")
    shards = sorted(p for p in data_dir.iterdir() if p.name.startswith(f"{split}-") and p.suffix in SHARD_SUFFIXES)
    if not shards:
        raise CorpusError(f"data_dir: {data_dir} holds no {split}-*.jsonl or {split}-*.parquet shards")
    return shards


def iter_shard_texts(shards: list[Path]) -> Iterator[str]:
    """The `text` of every record in .jsonl / .parquet shards; a malformed record is a CorpusError."""
    for shard in shards:
        if shard.suffix == ".jsonl":
            with open(shard, encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    try:
                        text = json.loads(line)["text"]
                    except (json.JSONDecodeError, KeyError, TypeError) as exc:
                        raise CorpusError(f"{shard} line {number}: not a {{'text': ...}} record ({exc})") from exc
                    if not isinstance(text, str):
                        raise CorpusError(f"{shard} line {number}: 'text' is not a string")
                    yield text
        else:
            import pyarrow.parquet as pq

            try:
                for batch in pq.ParquetFile(shard).iter_batches(columns=["text"], batch_size=1024):
                    yield from batch.column(0).to_pylist()
            except (OSError, KeyError, ValueError) as exc:
                raise CorpusError(f"{shard}: not a Parquet file with a 'text' column ({exc})") from exc


def tokenizer_digest(tokenizer_dir: str | Path) -> str:
    hasher = hashlib.sha256()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        path = Path(tokenizer_dir) / name
        if path.is_file():
            hasher.update(name.encode() + b"\0" + path.read_bytes())
    return hasher.hexdigest()


def shards_digest(shards: list[Path]) -> str:
    hasher = hashlib.sha256()
    for shard in shards:
        stat = shard.stat()
        hasher.update(f"{shard.name}\0{stat.st_size}\0".encode())
        with open(shard, "rb") as handle:
            while chunk := handle.read(1 << 20):
                hasher.update(chunk)
    return hasher.hexdigest()


def token_dtype(vocab_size: int):
    return np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.uint32


def tokenize_split(shards: list[Path], tokenizer, tokenizer_dir: str | Path, cache_dir: Path, split: str) -> Path:
    """Write (once) and return the flat token file of one split."""
    from tqdm.auto import tqdm

    key = hashlib.sha256(f"{shards_digest(shards)}:{tokenizer_digest(tokenizer_dir)}".encode()).hexdigest()[:16]
    target = cache_dir / f"tokens-{split}-{key}.bin"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(len(tokenizer))
    total = 0
    with atomic_path(target) as tmp, open(tmp, "wb") as out, tqdm(desc=f"tokenize {split}", unit="doc") as bar:
        batch: list[str] = []
        for text in _with_sentinel(iter_shard_texts(shards)):
            if text is not None:
                batch.append(text)
            if batch and (text is None or len(batch) == 512):
                for ids in tokenizer(batch, add_special_tokens=True, verbose=False)["input_ids"]:
                    ids.append(tokenizer.eos_token_id)
                    np.asarray(ids, dtype=dtype).tofile(out)
                    total += len(ids)
                bar.update(len(batch))
                batch = []
    log.info("tokenized %s: %d tokens → %s", split, total, target)
    return target


def _with_sentinel(texts: Iterator[str]) -> Iterator[str | None]:
    yield from texts
    yield None


def document_position_ids(input_ids, eos_token_id: int):
    """Position ids that restart at 0 after every EOS, for packing without cross-document attention.

    Given position ids and no attention mask, transformers (masking_utils.find_packed_sequence_indices)
    reads each restart as a new sequence and builds a block-diagonal causal mask, so a token attends
    only to earlier tokens of its own document, and RoPE counts from that document's start. It does
    so only without a KV cache: call the model with `use_cache=False`.
    """
    import torch

    index = torch.arange(input_ids.shape[-1]).expand_as(input_ids)
    follows_eos = torch.zeros_like(input_ids, dtype=torch.bool)
    follows_eos[..., 1:] = input_ids[..., :-1] == eos_token_id
    document_start = torch.cummax(torch.where(follows_eos, index, torch.zeros_like(index)), dim=-1).values
    return index - document_start


class PackedBlocks:
    """A map-style torch dataset of non-overlapping `block_size` slices of a token file."""

    def __init__(self, token_file: Path, block_size: int, vocab_size: int, limit: int = 0):
        self.tokens = np.memmap(token_file, dtype=token_dtype(vocab_size), mode="r")
        self.block_size = block_size
        blocks = len(self.tokens) // block_size
        self.num_blocks = min(blocks, limit) if limit else blocks

    def __len__(self) -> int:
        return self.num_blocks

    def __getitem__(self, index: int) -> dict:
        import torch

        if not 0 <= index < self.num_blocks:
            raise IndexError(index)
        start = index * self.block_size
        block = torch.from_numpy(self.tokens[start : start + self.block_size].astype(np.int64))
        return {"input_ids": block, "labels": block}

    @property
    def num_tokens(self) -> int:
        return self.num_blocks * self.block_size
