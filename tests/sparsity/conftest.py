"""Tiny models and data for the sparsity tests (seconds on 2 cores)."""

from __future__ import annotations

import pytest
import torch
from sparsity_helpers import tiny_llama


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


WANDA_STEPS, WANDA_BATCH, WANDA_BLOCK = 400, 16, 128


@pytest.fixture(scope="session")
def wanda_model(tmp_path_factory, builtin_documents, tokenizer_dir):
    """A 4-layer, 64-wide Llama trained on the built-in corpus, and a held-out validation shard.

    The shared `trained_model_dir` (2 layers × 128 wide, 300 steps) is too lightly trained for
    the choice of weights to matter: 50% of its decoder goes for ~1.5% perplexity, magnitude and
    Wanda alike (measured: +1.44% vs +1.63%, and 2-layer models trained longer tie as well).
    Four narrower layers trained for 400 steps (~2/3 of that fixture's FLOPs) separate them
    (measured: loss +0.045 magnitude vs +0.021 Wanda).
    """
    import json

    from transformers import AutoTokenizer

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    held_out = builtin_documents[-300:]
    ids: list[int] = []
    for document in builtin_documents[:-300]:
        ids.extend(tokenizer(document.text, verbose=False)["input_ids"] + [tokenizer.eos_token_id])
    data = torch.tensor(ids[: (len(ids) // WANDA_BLOCK) * WANDA_BLOCK]).view(-1, WANDA_BLOCK)
    model = tiny_llama(vocab_size=len(tokenizer), hidden=64, layers=4, heads=4, kv_heads=4, intermediate=192)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=5e-3, total_steps=WANDA_STEPS, pct_start=0.1)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(WANDA_STEPS):
        rows = data[torch.randint(0, len(data), (WANDA_BATCH,), generator=generator)]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=rows, labels=rows).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    out = tmp_path_factory.mktemp("wanda-model")
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    validation = out / "validation-00000-of-00001.jsonl"
    with open(validation, "w", encoding="utf-8") as handle:
        for document in held_out:
            handle.write(json.dumps({"id": document.id, "text": document.text, "source": document.source}) + "\n")
    torch.set_num_threads(previous)
    return out / "model", validation
