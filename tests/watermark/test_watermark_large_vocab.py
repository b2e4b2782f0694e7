"""Watermarked batched generation with a real-size vocabulary (50,000 tokens), past the bias-row cache.

At this vocabulary the left-hash row cache holds 64 MiB / (4 x 50,000) = 335 rows; a batch of 12
generating 80 tokens meets more distinct contexts than that, so rows must be evicted while the batch still
needs the ones it had cached (the KeyError of issue 24 when the cache was cleared wholesale).
"""

from __future__ import annotations

import numpy as np
import pytest

VOCAB = 50_000


@pytest.fixture(scope="module")
def large_vocab_model(tmp_path_factory):
    """A 1-layer Llama with a 50,000-word word-level tokenizer, saved with save_pretrained."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<eos>"]
    vocab = {token: i for i, token in enumerate(specials)}
    vocab.update({f"w{i}": i for i in range(len(specials), VOCAB)})
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>", bos_token="<eos>"
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=1,
        eos_token_id=2,
        bos_token_id=2,
    )
    out = tmp_path_factory.mktemp("vocab50k")
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def large_vocab_key(large_vocab_model, tmp_path_factory):
    from watermark.keys import generate_key

    path = tmp_path_factory.mktemp("vocab50k-key") / "key.json"
    generate_key(large_vocab_model, path, scheme="kgw")  # left-hash over one token: the cached bias-row path
    return path


def test_bias_rows_stay_exact_past_the_cache_capacity(large_vocab_key):
    """Steps of 12 contexts, fresh and already cached ones mixed, well past the row limit: every row
    returned equals the uncached green list, and the cache never grows past its bound (+ one batch)."""
    from watermark.keys import load_key
    from watermark.processor import KeyedWatermarkLogitsProcessor

    processor = KeyedWatermarkLogitsProcessor(load_key(large_vocab_key), VOCAB)
    assert processor._max_rows < 400  # the premise: the cache holds far fewer rows than the vocabulary
    rng = np.random.default_rng(0)
    seen: list[int] = []
    for step in range(60):
        fresh = rng.integers(3, VOCAB, size=8).tolist()
        again = rng.choice(seen, size=4).tolist() if seen else rng.integers(3, VOCAB, size=4).tolist()
        contexts = np.asarray(fresh + again, dtype=np.int64)[:, None]
        rows = processor.bias_rows(contexts, VOCAB)
        expected = np.where(processor.prf.green_mask(contexts, VOCAB), np.float32(processor.bias), np.float32(0))
        np.testing.assert_array_equal(rows, expected)
        assert len(processor._rows) <= processor._max_rows
        seen += fresh
    assert len(set(seen)) > processor._max_rows

    # One call needing more distinct rows than the cache holds still gets them all.
    wide = np.arange(3, 3 + processor._max_rows + 50, dtype=np.int64)[:, None]
    rows = processor.bias_rows(wide, VOCAB)
    assert rows.shape == (len(wide), VOCAB) and (rows.sum(axis=1) > 0).all()


def test_batched_watermarked_generation_with_50k_vocabulary_is_detected(large_vocab_model, large_vocab_key):
    """The path of `mintline watermark evaluate --batch_size 12` and of `mintline generate` with
    several prompts: 12 prompts in one batch, 80 new tokens each, through a 335-row cache.

    Real text mixes a few frequent tokens (met again and again, so cached) with a long tail of rare
    ones (which fill the cache); a processor before the watermark gives 40 "frequent" tokens about
    half the probability mass to reproduce that mix on an untrained model."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList, SuppressTokensLogitsProcessor

    class FrequentTokens(LogitsProcessor):
        def __init__(self, tokens):
            self.tokens = torch.as_tensor(tokens)

        def __call__(self, input_ids, scores):
            scores = scores.clone()
            scores[:, self.tokens] += 5.5
            return scores

    from pretrain.generation import GenerationArguments, generate_texts, load_model_and_tokenizer
    from watermark.detect import Detector
    from watermark.keys import load_key
    from watermark.processor import logits_processor_for

    model, tokenizer = load_model_and_tokenizer(large_vocab_model)
    key = load_key(large_vocab_key)
    processor = logits_processor_for(key, tokenizer, vocab_size=model.config.vocab_size)
    prompts = [f"w{10 + i} w{2000 + i}" for i in range(12)]
    args = GenerationArguments(max_new_tokens=80, min_new_tokens=80, batch_size=12, seed=0, top_k=0, top_p=1.0)
    # EOS and padding suppressed, as evaluate's make_generate does: an untrained 50k-vocabulary model samples the pad
    # token now and then (about 2% of runs), and generate_texts drops pad ids, so a row came back short
    suppress = SuppressTokensLogitsProcessor([tokenizer.pad_token_id, tokenizer.eos_token_id])
    processors = LogitsProcessorList([suppress, FrequentTokens(list(range(100, 140))), processor])
    torch.set_num_threads(1)
    ids = generate_texts(model, tokenizer, prompts, args, logits_processor=processors, return_token_ids=True)
    assert len(ids) == 12 and all(len(row) == 80 for row in ids)
    tokens = [t for row in ids for t in row]
    assert len(set(tokens)) > processor._max_rows  # the cache really overflowed
    assert sum(100 <= t < 140 for t in tokens) > len(tokens) / 4  # and cached rows were needed again

    contexts = [np.asarray(tokenizer(p)["input_ids"][-1:] + row, dtype=np.int64) for p, row in zip(prompts, ids)]
    results = Detector([key], large_vocab_model).detect_token_ids(contexts, score_from=[1] * len(contexts))
    z_scores = [r.to_dict()["z_score"] for r in results]
    assert min(z_scores) > 4, z_scores  # an untrained model's near-flat logits follow the green lists
