"""Gumbel / EXP sampling (Aaronson 2022; the EXP scheme of Kuditipudi et al. 2023 with a hashed key).

Generation: after a context of `context_width` tokens the keyed PRF gives every token v a uniform
r_v, and the next token is argmax_v log p_v - log(-log r_v): the Gumbel-max trick with the key's
noise instead of fresh noise. Over the key's randomness this is an exact sample from p, so the
mark costs no quality in expectation (no bias is added to any logit); the price is that a given
context and distribution always give the same token. A context already used earlier in the same
text is therefore sampled normally (as SynthID does), or the text could loop deterministically.

Detection (watermark.scoring.GumbelScorer): each distinct context's token scores -log(1 - r_x),
Exp(1) without the key, so the sum over n scored tokens has the exact Gamma(n, 1) tail
(watermark.stats.gamma_sf). The sampler picks tokens with large r, which raises the sum.

The choice is made on the distribution that generate samples from: transformers runs processors
passed to `generate(logits_processor=...)` before its temperature / top-k / top-p warpers, so the
processor applies those warpers first (watermark.processor.warpers_after) and returns a one-hot row,
which they then leave unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import LogitsProcessor

from watermark.keys import WatermarkKey
from watermark.processor import one_hot_rows, warp, warpers_after
from watermark.scoring import gumbel_prf, uniforms


class KeyedGumbelLogitsProcessor(LogitsProcessor):
    """Replace each row by a one-hot row on the keyed Gumbel-max choice; repeated contexts pass unchanged."""

    def __init__(self, key: WatermarkKey, vocab_size: int, device: str | torch.device = "cpu"):
        self.key_id = key.key_id
        self.context_width = int(key.params["context_width"])
        self.vocab_size = int(vocab_size)
        self.device = device
        self.prf = gumbel_prf(key)
        self._seen: list[set[int]] | None = None  # per row: context seeds already used in this generate call
        self._length = -1

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        h = self.context_width
        batch, vocab = scores.shape
        # one processor serves many generate() calls: a call continues only if it is one token longer
        if self._seen is None or len(self._seen) != batch or input_ids.shape[-1] != self._length + 1:
            self._seen = [set() for _ in range(batch)]
        self._length = input_ids.shape[-1]
        if input_ids.shape[-1] < h:
            return scores
        contexts = input_ids[:, -h:].detach().cpu().numpy().astype(np.int64)
        seeds = self.prf.left_seeds(contexts)
        noise = -np.log(-np.log(uniforms(self.prf.candidate_values(contexts, max(vocab, self.vocab_size))[:, :vocab])))
        warped = warp(warpers_after(self), input_ids, scores)
        logits = torch.log_softmax(warped.detach().float().cpu(), dim=-1)
        choice = torch.argmax(logits + torch.from_numpy(noise).float(), dim=-1)
        out = one_hot_rows(scores, choice)
        for row, seed in enumerate(seeds.tolist()):
            if seed in self._seen[row]:
                out[row] = scores[row]  # a repeated context: plain sampling, no evidence claimed
            else:
                self._seen[row].add(seed)
        return out
