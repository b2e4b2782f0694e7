"""Watermarking logits processors: transformers' KGW and SynthID processors on the keyed PRF.

    processor = logits_processor_for(load_key("key.json"), tokenizer)
    model.generate(**inputs, logits_processor=LogitsProcessorList([processor]))

Both subclass transformers' own processors and keep their logic; what changes is where the
randomness comes from. transformers derives KGW green lists from `torch.manual_seed(hashing_key
* token)` and SynthID g-values from an LCG over small integer keys; here both come from the
256-bit key through `watermark.prf`, computed for the whole vocabulary and batch at once
(transformers' KGW loops over rows, and its self-hash re-seeds a generator per candidate).

A processor passed to `generate(logits_processor=...)` runs before temperature, top-k and top-p
(transformers appends custom processors after its own processors and before the warpers), so
the bias is added to raw logits, as in the KGW paper. The distortion-free schemes (SynthID here,
Gumbel in watermark/gumbel.py) must instead act on the distribution that is finally sampled, where
transformers puts its own watermark processors (after the warpers, huggingface/transformers#34630):
they apply the warpers that follow them first, then draw the token themselves (`warpers_after`).
"""

from __future__ import annotations

import sys
from collections import OrderedDict

import numpy as np
import torch
from transformers import SynthIDTextWatermarkingConfig
from transformers.generation.logits_process import (
    LogitsProcessorList,
    SynthIDTextWatermarkLogitsProcessor,
    WatermarkLogitsProcessor,
)

from watermark.keys import WatermarkKey
from watermark.prf import GreenListPRF, mix64
from watermark.scoring import g_value_bits, synthid_prf

# Left-hash with one context token has at most |vocab| green lists: cache them (bounded).
_CACHE_BYTES = 64 << 20  # 4096 x 4096 float32 rows


def warpers_after(processor) -> list:
    """The processors `generate` runs after `processor` in this step: its temperature, top-k, top-p.

    Found on the stack: the LogitsProcessorList that is calling `processor` (transformers builds one
    per generate call, our processors before its warpers). Called directly, there are none.
    """
    frame = sys._getframe(1)
    for _ in range(6):
        frame = frame.f_back
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if isinstance(owner, LogitsProcessorList):
            for index, member in enumerate(owner):
                if member is processor:
                    return list(owner[index + 1 :])
            break
    return []


def warp(warpers: list, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
    for warper in warpers:
        scores = warper(input_ids, scores)
    return scores


def one_hot_rows(scores: torch.FloatTensor, choice: torch.LongTensor) -> torch.FloatTensor:
    """0 on each row's chosen token, the dtype's minimum elsewhere: temperature, top-k and top-p leave it as is."""
    out = torch.full_like(scores, torch.finfo(scores.dtype).min)
    out[torch.arange(scores.shape[0], device=scores.device), choice.to(scores.device)] = 0.0
    return out


class KeyedWatermarkLogitsProcessor(WatermarkLogitsProcessor):
    """KGW (Kirchenbauer et al. 2023): add `delta` to the logits of the green tokens.

    left-hash: the green list depends on the `context_width` previous tokens;
    self-hash: on the min-hash of those tokens and the candidate itself, so every candidate in
    the vocabulary is tested against its own list (vectorised, not transformers' top-40 loop).
    """

    def __init__(self, key: WatermarkKey, vocab_size: int, device: str | torch.device = "cpu"):
        # transformers' __init__ builds a 1M-entry permutation from the integer hashing_key;
        # none of it is used here, so set the attributes its detector and docs rely on instead.
        params = key.params
        self.key_id = key.key_id
        self.vocab_size = int(vocab_size)
        self.greenlist_ratio = float(params["gamma"])
        self.greenlist_size = int(self.vocab_size * self.greenlist_ratio)
        self.bias = float(params["delta"])
        self.seeding_scheme = params["seeding"]
        self.context_width = int(params["context_width"])
        self.device = device
        self.prf = GreenListPRF(
            key.secret, self.greenlist_ratio, self.seeding_scheme, self.context_width, self.vocab_size
        )
        self._rows: OrderedDict[int, np.ndarray] = OrderedDict()  # an LRU cache of bias rows
        self._table: torch.Tensor | None = None
        self._filled = np.zeros(0, dtype=bool)
        self._max_rows = max(1, _CACHE_BYTES // (4 * max(1, self.vocab_size)))

    # transformers' WatermarkDetector and selfhash path call this per sequence.
    def _get_greenlist_ids(self, input_seq: torch.LongTensor) -> torch.LongTensor:
        h = self.context_width
        ids = input_seq.detach().cpu().numpy().astype(np.int64)
        if self.seeding_scheme == "selfhash":
            # transformers passes the n-gram ending with the scored token: its list is seeded
            # by the h tokens before it (and, per candidate, by the candidate itself)
            ids = ids[:-1]
        mask = self.prf.green_mask(ids[None, -h:], self.vocab_size)[0]
        return torch.from_numpy(np.nonzero(mask)[0])

    def green_mask(self, contexts: np.ndarray, vocab_size: int) -> np.ndarray:
        """(batch, vocab) bool: the green tokens after each context row (batch, h)."""
        return self.prf.green_mask(contexts, vocab_size)

    def bias_rows(self, contexts: np.ndarray, vocab_size: int) -> np.ndarray:
        """(batch, vocab) float32: delta on green tokens, 0 elsewhere; a fresh array the caller may modify.

        Left-hash with one context token has at most |vocab| distinct rows: they are cached
        (least recently used evicted first), so a decoding step costs one gather and one add.
        """
        if self.seeding_scheme != "lefthash" or self.context_width != 1:
            return np.where(self.prf.green_mask(contexts, vocab_size), np.float32(self.bias), np.float32(0.0))
        last = contexts[:, 0].tolist()
        needed = list(dict.fromkeys(last))
        missing = [t for t in needed if t not in self._rows]
        for token in needed:
            if token in self._rows:
                self._rows.move_to_end(token)  # least recently used first: this call's rows are the newest
        if missing:
            masks = self.prf.green_mask(np.asarray(missing, dtype=np.int64)[:, None], vocab_size)
            rows = np.where(masks, np.float32(self.bias), np.float32(0.0))
            self._rows.update(zip(missing, rows))
        bias = np.stack([self._rows[t] for t in last])
        # Evict only after the gather, oldest first: a batch with more distinct contexts than the
        # cache holds still gets every row it needs, and the rows kept are the most recent.
        while len(self._rows) > self._max_rows:
            self._rows.popitem(last=False)
        return bias

    def _full_table(self, last: torch.LongTensor, vocab: int) -> torch.Tensor | None:
        """Left-hash h=1 with a small vocabulary: one float32 table of every context's bias row,
        filled lazily, so a step is one index_select (the fastest path measured: ~2x the row dict)."""
        if self.seeding_scheme != "lefthash" or self.context_width != 1 or 4 * vocab * vocab > _CACHE_BYTES:
            return None
        if self._table is None or self._table.shape[1] != vocab:
            self._table = torch.zeros((vocab, vocab), dtype=torch.float32)
            self._filled = np.zeros(vocab, dtype=bool)
        ids = last.numpy()
        if not self._filled[ids].all():
            missing = np.unique(ids[~self._filled[ids]])
            masks = self.prf.green_mask(missing[:, None], vocab)
            self._table[torch.from_numpy(missing)] = torch.from_numpy(
                np.where(masks, np.float32(self.bias), np.float32(0.0))
            )
            self._filled[missing] = True
        return self._table.index_select(0, last)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        h = self.context_width
        if input_ids.shape[-1] < h:
            return scores  # not enough context yet: transformers' processor also skips
        vocab = scores.shape[-1]
        if vocab != self.vocab_size:  # logits wider than the tokenizer (padded embeddings): resize the rows
            self.vocab_size = vocab
            self._rows.clear()
            self._max_rows = max(1, _CACHE_BYTES // (4 * vocab))
        contexts = input_ids[:, -h:].cpu()
        bias = self._full_table(contexts[:, -1], vocab)
        if bias is None:
            bias = torch.from_numpy(self.bias_rows(contexts.numpy(), vocab))
        if bias.dtype != scores.dtype or bias.device != scores.device:
            bias = bias.to(device=scores.device, dtype=scores.dtype)
        # a fresh tensor, added out of place for the caller: `scores` may be kept (output_logits) and must stay raw
        return bias.add_(scores)


class KeyedSynthIDLogitsProcessor(SynthIDTextWatermarkLogitsProcessor):
    """SynthID-Text (Dathathri et al. 2024): tournament sampling over `depth` layers of g-values.

    transformers' tournament update, context-repetition masking and state handling are kept;
    the g-values are the low `depth` bits of the keyed PRF of (ngram_len - 1 context tokens,
    candidate), and the state is reset at the start of each `generate` call, so one processor
    can serve many batches.
    """

    def __init__(self, key: WatermarkKey, vocab_size: int, device: str | torch.device = "cpu"):
        params = key.params
        config = SynthIDTextWatermarkingConfig(
            ngram_len=int(params["ngram_len"]),
            keys=list(range(int(params["depth"]))),  # placeholders: g-values come from the PRF
            context_history_size=int(params["context_history_size"]),
        )
        super().__init__(
            ngram_len=config.ngram_len,
            keys=config.keys,
            sampling_table_size=2,
            sampling_table_seed=0,
            context_history_size=config.context_history_size,
            device=device,
            skip_first_ngram_calls=config.skip_first_ngram_calls,
        )
        self.key_id = key.key_id
        self.depth = int(params["depth"])
        self.vocab_size = int(vocab_size)
        self.prf = synthid_prf(key)
        self._last_tokens: torch.Tensor | None = None
        self._last_length = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # transformers' state assumes one processor per generate() call. A continuation is one
        # token longer, same batch, and each row extends a previous row (beams may reorder);
        # anything else is a new call and starts from an empty context.
        previous = self._last_tokens
        continues = (
            self.state is not None
            and previous is not None
            and input_ids.shape[0] == previous.shape[0]
            and input_ids.shape[-1] == self._last_length + 1
            and set(input_ids[:, -2].tolist()) <= set(previous.tolist())
        )
        if not continues:
            self.state = None
        self._last_tokens, self._last_length = input_ids[:, -1].clone(), input_ids.shape[-1]
        warpers = warpers_after(self)
        if not warpers:  # the tournament's distribution is what generate samples from
            return super().__call__(input_ids, scores)
        # Tournament on the distribution the warpers leave (as transformers' own SynthID processor,
        # which runs after them), and the draw made here: warping the tournament's output again would
        # sharpen or cut it, and the mark would sample from the untempered tails instead.
        marked = super().__call__(input_ids, warp(warpers, input_ids, scores))
        choice = torch.multinomial(torch.softmax(marked.float(), dim=-1), 1).squeeze(-1)
        return one_hot_rows(scores, choice)

    def _compute_keys(self, n_minus_1_grams: torch.LongTensor, indices: torch.LongTensor):
        """(g-values (batch, candidates, depth), context hash (batch,)) for every candidate.

        The g-values are float32 laid out depth-major in memory (a permuted view), so the
        per-layer slices transformers' `update_scores` takes are contiguous: 4x faster.
        """
        contexts = n_minus_1_grams.detach().cpu().numpy().astype(np.int64)
        values = self.prf.candidate_values(contexts, max(self.vocab_size, indices.shape[-1]))[:, : indices.shape[-1]]
        shifts = np.arange(self.depth, dtype=np.uint64)[:, None, None]
        bits = ((values[None] >> shifts) & np.uint64(1)).astype(np.float32)  # (depth, batch, candidates)
        g_values = torch.from_numpy(bits).permute(1, 2, 0).to(indices.device)
        context_hash = torch.from_numpy(self.prf.left_seeds(contexts).view(np.int64)).to(indices.device)
        return g_values, context_hash

    def sample_g_values(self, ngram_keys: torch.LongTensor) -> torch.LongTensor:
        return ngram_keys  # _compute_keys already returns g-values

    def compute_ngram_keys(self, ngrams: torch.LongTensor) -> torch.LongTensor:
        """g-values of each n-gram (batch, n, ngram_len) -> (batch, n, depth), for transformers' detector."""
        grams = ngrams.detach().cpu().numpy().astype(np.int64)
        batch, count, n = grams.shape
        flat = grams.reshape(-1, n)
        seeds = self.prf.left_seeds(flat[:, :-1])
        values = mix64(seeds + self.prf.vocab[flat[:, -1]])
        return torch.from_numpy(g_value_bits(values, self.depth).reshape(batch, count, self.depth))

    def accumulate_hash(self, current_hash, data, multiplier=6364136223846793005, increment=1):
        """Context hashes for repetition masking: the keyed left-hash seed instead of the LCG."""
        if current_hash.ndim == 1 and data.ndim == 2 and data.shape[-1] == self.ngram_len - 1:
            contexts = data.detach().cpu().numpy().astype(np.int64)
            return torch.from_numpy(self.prf.left_seeds(contexts).view(np.int64)).to(data.device)
        return super().accumulate_hash(current_hash, data, multiplier, increment)


def logits_processor_for(key: WatermarkKey, tokenizer=None, vocab_size: int | None = None, device="cpu"):
    """The processor for a key. `tokenizer` (or `vocab_size`) sizes the tables; logits wider than
    that (padded embeddings) extend them on the fly."""
    if vocab_size is None:
        vocab_size = len(tokenizer) if tokenizer is not None else key.vocab_size
    if key.scheme == "kgw":
        return KeyedWatermarkLogitsProcessor(key, vocab_size, device)
    if key.scheme == "gumbel":
        from watermark.gumbel import KeyedGumbelLogitsProcessor

        return KeyedGumbelLogitsProcessor(key, vocab_size, device)
    return KeyedSynthIDLogitsProcessor(key, vocab_size, device)
