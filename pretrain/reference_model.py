"""A nano Llama trained for a few hundred steps on in-memory text: the shared test/benchmark model.

Tests and benchmarks need, in seconds and without a run directory, a small model that writes
corpus-like text (validation loss ~4.5 nats on the built-in corpus after 300 steps). The
pretraining engine needs prepared shards on disk and a journal; this fixed recipe (random
packed blocks, AdamW, one-cycle schedule, fixed seeds) does not, and gives the same weights
every time for the same text, steps and machine. It autocasts to bf16 only where the CPU runs bf16
natively (`choose_precision("auto")`): on a CPU without AMX/AVX512-BF16 emulated bf16 made the
300-step fixture take tens of minutes instead of seconds.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from transformers import AutoModelForCausalLM

from pretrain.precision import choose_precision
from pretrain.presets import build_config


def train_reference_nano(tokenizer, texts: Iterable[str], steps: int, block: int = 128, batch_size: int = 16):
    """The trained `nano` model (in eval mode) for `texts`, each ended by EOS and packed into blocks."""
    torch.manual_seed(0)
    config = build_config(
        "nano", len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    )
    model = AutoModelForCausalLM.from_config(config)
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text)["input_ids"] + [tokenizer.eos_token_id])
    data = torch.tensor(ids[: (len(ids) // block) * block]).view(-1, block)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(0)
    dtype = choose_precision("auto").autocast_dtype
    model.train()
    for _ in range(steps):
        rows = data[torch.randint(0, len(data), (batch_size,), generator=generator)]
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = model(input_ids=rows, labels=rows).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    return model.eval()


def save_reference_nano(out, steps: int):
    """Tokenizer + model trained on the built-in corpus, saved in `out` (kept if already there)."""
    from pathlib import Path

    from transformers import AutoTokenizer

    from pretrain.corpus.builtin import iter_builtin_corpus
    from pretrain.tokenizer import TokenizerConfig, save_tokenizer, train_tokenizer

    out = Path(out)
    if (out / "config.json").is_file():
        return out
    documents = [d.text for d in iter_builtin_corpus()]
    save_tokenizer(train_tokenizer(documents, TokenizerConfig(vocab_size=4096)), out / "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer")
    train_reference_nano(tokenizer, documents, steps).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
