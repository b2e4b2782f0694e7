"""Per-token evidence for one key over many token sequences at once, without the model.

A scorer turns token ids into, for every sequence, the ordered list of scored units (one per
distinct n-gram) and each unit's successes out of `trials_per_unit` Bernoulli(`null_rate`)
trials under the null hypothesis:

* KGW: one trial per unit, success = the token is green, null rate gamma;
* SynthID: `depth` trials per unit, success = a g-value of 1, null rate 1/2 (each g-value is
  one bit of a keyed 64-bit PRF output, so the bits are independent fair coins without the key);
* Gumbel: one score per unit, -log(1 - r) of the token's keyed uniform r, which is Exp(1)
  without the key, so the sum over n units has the exact Gamma(n, 1) tail (`null="gamma"`).

All sequences are concatenated and scored with a handful of numpy passes, so throughput does
not depend on how many texts there are. Repeated n-grams are scored once: the PRF input of a
repeat is identical, so its bit is the same and counting it again would only inflate z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from watermark.keys import WatermarkKey
from watermark.prf import GreenListPRF, KeyedPRF, mix64
from watermark.stats import binomial_sf, critical_count, gamma_critical, gamma_sf, z_score


@dataclass
class ScoredSequence:
    successes: np.ndarray  # (units,): successes (int) or Exp(1)-null scores (float) of each unit, in text order
    positions: np.ndarray  # (units,) int: index of the scored token in the sequence
    trials_per_unit: int
    null_rate: float  # binomial: P(success) per trial; gamma: the mean score per unit (1)
    null: str = "binomial"  # binomial (KGW, SynthID) or gamma (Gumbel)

    @property
    def units(self) -> int:
        return int(len(self.successes))

    @property
    def total(self) -> int | float:
        return self.sum_of(self.successes)

    def sum_of(self, values: np.ndarray) -> int | float:
        return float(values.sum()) if self.null == "gamma" else int(values.sum())

    def p_value(self, total: float, trials: int) -> float:
        """The exact one-sided p-value of `total` over `trials` trials (units for gamma)."""
        if trials <= 0:
            return 1.0
        if self.null == "gamma":
            return gamma_sf(float(total), int(trials))
        return binomial_sf(int(total), int(trials), self.null_rate)

    def z_score(self, total: float, trials: int) -> float:
        if self.null == "gamma":  # Gamma(n, 1): mean n, variance n
            return (float(total) - trials) / math.sqrt(trials) if trials > 0 else 0.0
        return z_score(total, trials, self.null_rate)

    def critical(self, trials: int, alpha: float) -> float:
        """The smallest total whose p-value is <= alpha."""
        if self.null == "gamma":
            return gamma_critical(int(trials), float(alpha))
        return critical_count(int(trials), self.null_rate, alpha)


class Scorer:
    trials_per_unit = 1
    null_rate = 0.5
    null = "binomial"
    context_width = 1
    prf: KeyedPRF

    def unit_values(self, values: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def dedupe_ids(self, identity: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        return identity

    def score(
        self, sequences: list[np.ndarray], score_from: list[int] | None = None, dedupe: bool = True
    ) -> list[ScoredSequence]:
        """Score every sequence; token i of a sequence counts only if i >= score_from (and i >= h)."""
        h = self.context_width
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        if len(sequences) == 0:
            return []
        tokens = (
            np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
            if lengths.sum()
            else np.zeros(0, np.int64)
        )
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        doc = np.repeat(np.arange(len(sequences)), lengths)
        position = np.arange(len(tokens)) - np.repeat(starts, lengths)
        first = np.full(len(sequences), h, dtype=np.int64)
        if score_from is not None:
            first = np.maximum(first, np.asarray(score_from, dtype=np.int64))
        values, identity, seeds = self._values(tokens)
        # values[g] belongs to token g + h, whose context is tokens g..g+h-1 (all in one sequence
        # exactly when the token's position in its sequence is >= h).
        target_doc, target_pos = doc[h:], position[h:]
        valid = np.nonzero(target_pos >= first[target_doc])[0]
        if dedupe and len(valid):
            keys = self.dedupe_ids(identity[valid], seeds[valid]) ^ mix64(
                target_doc[valid].astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
            )
            _, first_seen = np.unique(keys, return_index=True)
            valid = valid[np.sort(first_seen)]
        successes = self.unit_values(values[valid])
        owner = target_doc[valid]
        bounds = np.searchsorted(owner, np.arange(len(sequences) + 1))
        return [
            ScoredSequence(successes[a:b], target_pos[valid[a:b]], self.trials_per_unit, self.null_rate, self.null)
            for a, b in zip(bounds[:-1], bounds[1:])
        ]

    def _values(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        values, identity = self.prf.sequence_values(tokens)
        return values, identity, identity


class KGWScorer(Scorer):
    def __init__(self, key: WatermarkKey):
        p = key.params
        self.prf = GreenListPRF(key.secret, p["gamma"], p["seeding"], p["context_width"], max(key.vocab_size, 1))
        self.null_rate = float(p["gamma"])
        self.context_width = int(p["context_width"])
        self.trials_per_unit = 1

    def unit_values(self, values: np.ndarray) -> np.ndarray:
        return (values < self.prf.threshold).astype(np.int64)


def synthid_prf(key: WatermarkKey) -> KeyedPRF:
    """SynthID's g-values come from the same keyed PRF: left-hash over the ngram_len - 1 previous tokens."""
    return KeyedPRF(key.secret, "lefthash", int(key.params["ngram_len"]) - 1, max(key.vocab_size, 1), label="synthid")


def g_value_bits(values: np.ndarray, depth: int) -> np.ndarray:
    """(..., depth) int64 g-values: the low `depth` bits of each 64-bit PRF output."""
    shifts = np.arange(depth, dtype=np.uint64)
    return ((values[..., None] >> shifts) & np.uint64(1)).astype(np.int64)


class ContextScorer(Scorer):
    """Schemes that leave a repeated *context* unwatermarked at generation (SynthID, Gumbel): only a
    context's first occurrence carries evidence (transformers' compute_context_repetition_mask)."""

    def _values(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        values, identity = self.prf.sequence_values(tokens)
        seeds = identity - self.prf.vocab[tokens[self.context_width :]] if len(identity) else identity
        return values, identity, seeds

    def dedupe_ids(self, identity: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        return seeds


class SynthIDScorer(ContextScorer):
    def __init__(self, key: WatermarkKey):
        self.prf = synthid_prf(key)
        self.depth = int(key.params["depth"])
        self.context_width = int(key.params["ngram_len"]) - 1
        self.trials_per_unit = self.depth
        self.null_rate = 0.5

    def unit_values(self, values: np.ndarray) -> np.ndarray:
        return g_value_bits(values, self.depth).sum(axis=-1)


def gumbel_prf(key: WatermarkKey) -> KeyedPRF:
    """The Gumbel scheme's uniforms: left-hash over `context_width` previous tokens, its own domain label."""
    return KeyedPRF(key.secret, "lefthash", int(key.params["context_width"]), max(key.vocab_size, 1), label="gumbel")


def uniforms(values: np.ndarray) -> np.ndarray:
    """Keyed 64-bit values -> uniforms in (0, 1): the top 53 bits, centred, so never exactly 0 or 1."""
    return ((values >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


class GumbelScorer(ContextScorer):
    null = "gamma"

    def __init__(self, key: WatermarkKey):
        self.prf = gumbel_prf(key)
        self.context_width = int(key.params["context_width"])
        self.trials_per_unit = 1
        self.null_rate = 1.0

    def unit_values(self, values: np.ndarray) -> np.ndarray:
        return -np.log1p(-uniforms(values))  # Exp(1) under the null; large where the sampler favoured the token


def scorer_for(key: WatermarkKey) -> Scorer:
    return {"kgw": KGWScorer, "synthid": SynthIDScorer, "gumbel": GumbelScorer}[key.scheme](key)
