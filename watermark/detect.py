"""Detection with the key and the tokenizer only: never the model weights, never torch.

    results = detect_texts(["some text", ...], [key], "path/to/tokenizer")
    results[0].to_dict()  # z_score, p_value, num_tokens_scored, green_count, watermarked, key_id, ...

For each text and key: the scored tokens (distinct n-grams after the optional prompt), the
green count, a z-score, the exact one-sided binomial p-value, and a verdict at the chosen
false-positive rate: True (p <= fpr), False, or None ("insufficient evidence") when fewer
than `min_tokens` tokens could be scored. With several keys the smallest p-value is
Bonferroni-corrected for the number of keys and the text is attributed to that key. The
windowed mode also searches every window of `window` scored tokens, corrected for the number
of windows, and reports the watermarked spans with character offsets.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from watermark.errors import ConfigError, TokenizerError
from watermark.keys import WatermarkKey, load_keys, tokenizer_file
from watermark.scoring import ScoredSequence, scorer_for
from watermark.stats import bonferroni

VERDICTS = {True: "watermarked", False: "not watermarked", None: "insufficient evidence"}


@dataclass
class DetectionConfig:
    fpr: float = field(default=1e-4, metadata={"help": "false-positive rate of the verdict (p-value threshold)"})
    min_tokens: int = field(
        default=32, metadata={"help": "fewer scored tokens than this give 'insufficient evidence', never a verdict"}
    )
    ignore_repeated_ngrams: bool = field(default=True, metadata={"help": "score each distinct n-gram once"})
    window: int = field(
        default=0, metadata={"help": "windowed mode: find marked spans of this many scored tokens (0 = off)"}
    )

    def __post_init__(self):
        if not 0.0 < self.fpr < 1.0:
            raise ValueError(f"fpr: must be in (0, 1), got {self.fpr}")
        if self.min_tokens < 1:
            raise ValueError(f"min_tokens: must be >= 1, got {self.min_tokens}")
        if self.window < 0 or 0 < self.window < 8:
            raise ValueError(f"window: must be 0 (off) or >= 8 tokens, got {self.window}")


@dataclass
class KeyScore:
    key_id: str
    scheme: str
    num_tokens_scored: int
    num_trials: int
    green_count: int  # the gumbel scheme: the sum of its Exp(1)-null scores (a float)
    z_score: float
    p_value: float
    window_p_value: float | None = None
    spans: list[dict[str, Any]] = field(default_factory=list)

    @property
    def combined_p_value(self) -> float:
        # the whole-text test and the best window are two looks at one text: correct for both
        if self.window_p_value is None:
            return self.p_value
        return bonferroni(min(self.p_value, self.window_p_value), 2)


@dataclass
class DetectionResult:
    key_id: str
    scheme: str
    num_tokens: int
    num_tokens_scored: int
    num_trials: int
    green_count: int
    green_fraction: float
    z_score: float
    p_value: float
    watermarked: bool | None
    verdict: str
    fpr: float
    keys_tested: int
    source: str | None = None
    window_p_value: float | None = None
    spans: list[dict[str, Any]] = field(default_factory=list)
    per_key: list[dict[str, Any]] = field(default_factory=list)
    bayesian_posterior: float | None = None  # SynthID's trained detector, when one is given

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.bayesian_posterior is None:
            data.pop("bayesian_posterior")
        if self.keys_tested <= 1:
            data.pop("per_key")
        if self.window_p_value is None:
            data.pop("window_p_value")
            data.pop("spans")
        return data


class TextTokenizer:
    """The tokenizer as detection needs it: `tokenizers` reading tokenizer.json, no transformers, no torch."""

    def __init__(self, tokenizer_dir: str | os.PathLike):
        from tokenizers import Tokenizer

        path = tokenizer_file(tokenizer_dir)
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file
            raise TokenizerError(f"tokenizer: cannot load {path} ({str(exc).splitlines()[0]})") from None

    def encode(self, texts: list[str], offsets: bool = True) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """(token ids, character offsets (n, 2) or None) per text, without special tokens (no BOS).

        Without offsets the batch goes through `encode_batch_fast` (~10% faster, no offset tracking).
        """
        if not offsets:
            encodings = self.tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
            return [(np.asarray(e.ids, dtype=np.int64), None) for e in encodings]
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [
            (np.asarray(e.ids, dtype=np.int64), np.asarray(e.offsets, dtype=np.int64).reshape(-1, 2))
            for e in encodings
        ]


class Detector:
    def __init__(
        self,
        keys: list[WatermarkKey],
        tokenizer_dir: str | os.PathLike,
        config: DetectionConfig | None = None,
        synthid_detector: str | os.PathLike | None = None,
    ):
        if not keys:
            raise ConfigError("detection needs at least one key")
        self.keys = keys
        self.config = config or DetectionConfig()
        self.tokenizer = TextTokenizer(tokenizer_dir)
        self.scorers = [scorer_for(key) for key in keys]
        self.synthid_detector = synthid_detector
        if synthid_detector is not None and not any(k.scheme == "synthid" for k in keys):
            raise ConfigError("synthid_detector: given, but no synthid key to use it with")

    def detect_texts(
        self,
        texts: list[str],
        prompts: list[str | None] | str | None = None,
        sources: list[str] | None = None,
    ) -> list[DetectionResult]:
        """Detect every text; a prompt (one for all, or one per text) is context, never evidence."""
        if isinstance(prompts, str) or prompts is None:
            prompts = [prompts] * len(texts)
        if len(prompts) != len(texts):
            raise ConfigError(f"prompts: {len(prompts)} given for {len(texts)} texts")
        full_texts, boundaries = [], []
        for text, prompt in zip(texts, prompts):
            if prompt and not text.startswith(prompt):
                text = prompt + text
            full_texts.append(text)
            boundaries.append(len(prompt) if prompt else 0)
        need_offsets = bool(self.config.window) or any(boundaries)
        encoded = self.tokenizer.encode(full_texts, offsets=need_offsets)
        sequences = [ids for ids, _ in encoded]
        if not need_offsets:
            return self.detect_token_ids(sequences, sources=sources)
        score_from = [
            int(np.searchsorted(offsets[:, 0], b, side="left")) if b else 0
            for (_, offsets), b in zip(encoded, boundaries)
        ]
        return self.detect_token_ids(sequences, score_from, offsets=[off for _, off in encoded], sources=sources)

    def detect_token_ids(
        self,
        sequences: list[np.ndarray],
        score_from: list[int] | None = None,
        offsets: list[np.ndarray] | None = None,
        sources: list[str] | None = None,
    ) -> list[DetectionResult]:
        cfg = self.config
        per_key_scores = [
            scorer.score(sequences, score_from, dedupe=cfg.ignore_repeated_ngrams) for scorer in self.scorers
        ]
        results = []
        for i, sequence in enumerate(sequences):
            first = score_from[i] if score_from else 0
            scores = [
                self._key_score(key, scored[i], offsets[i] if offsets is not None else None)
                for key, scored in zip(self.keys, per_key_scores)
            ]
            results.append(self._combine(scores, len(sequence) - first, sources[i] if sources else None))
        if self.synthid_detector is not None and sequences:
            from watermark.synthid import bayesian_posteriors

            key = next(k for k in self.keys if k.scheme == "synthid")
            starts = score_from or [0] * len(sequences)
            tails = [np.asarray(s[f:]) for s, f in zip(sequences, starts)]
            for result, posterior in zip(results, bayesian_posteriors(self.synthid_detector, key, tails, pad_id=0)):
                result.bayesian_posterior = float(posterior)
        return results

    def _key_score(self, key: WatermarkKey, scored: ScoredSequence, offsets: np.ndarray | None) -> KeyScore:
        trials = scored.units * scored.trials_per_unit
        successes = scored.total
        score = KeyScore(
            key_id=key.key_id,
            scheme=key.scheme,
            num_tokens_scored=scored.units,
            num_trials=trials,
            green_count=successes,
            z_score=scored.z_score(successes, trials),
            p_value=scored.p_value(successes, trials),
        )
        if self.config.window:
            score.window_p_value, score.spans = find_spans(scored, self.config.window, self.config.fpr, offsets)
        return score

    def _combine(self, scores: list[KeyScore], num_tokens: int, source: str | None) -> DetectionResult:
        cfg = self.config
        best = min(scores, key=lambda s: (s.combined_p_value, -s.z_score))
        p_value = bonferroni(best.combined_p_value, len(scores))
        if best.num_tokens_scored < cfg.min_tokens:
            watermarked = None
        else:
            watermarked = bool(p_value <= cfg.fpr)
        return DetectionResult(
            key_id=best.key_id,
            scheme=best.scheme,
            num_tokens=int(num_tokens),
            num_tokens_scored=best.num_tokens_scored,
            num_trials=best.num_trials,
            green_count=best.green_count,
            green_fraction=(best.green_count / best.num_trials) if best.num_trials else 0.0,
            z_score=best.z_score,
            p_value=p_value,
            watermarked=watermarked,
            verdict=VERDICTS[watermarked],
            fpr=cfg.fpr,
            keys_tested=len(scores),
            source=source,
            window_p_value=None if best.window_p_value is None else bonferroni(best.window_p_value, len(scores)),
            spans=best.spans,
            per_key=[
                {k: v for k, v in asdict(s).items() if k != "spans"}
                | {"p_value_corrected": bonferroni(s.combined_p_value, len(scores))}
                for s in scores
            ],
        )


def find_spans(
    scored: ScoredSequence, window: int, fpr: float, offsets: np.ndarray | None
) -> tuple[float | None, list[dict[str, Any]]]:
    """Every window of `window` scored units whose count is significant after correcting for all windows.

    Returns (the smallest window p-value times the number of windows, capped at 1; the merged
    spans). Bonferroni over the windows keeps the text's false-positive rate at `fpr`
    however many windows a long text has.
    """
    units = scored.units
    if units < window:
        return None, []
    trials = window * scored.trials_per_unit
    counts = np.convolve(scored.successes, np.ones(window, dtype=np.int64), mode="valid")
    windows = len(counts)
    best = scored.sum_of(counts.max())
    window_p = bonferroni(scored.p_value(best, trials), windows)
    # 2 looks per text (whole text, best window): each window must pass fpr / (2 * windows)
    threshold = scored.critical(trials, fpr / (2 * windows))
    hits = np.nonzero(counts >= threshold)[0]
    spans: list[dict[str, Any]] = []
    for start in hits.tolist():
        end = start + window  # in scored units, exclusive
        if spans and start <= spans[-1]["_end"]:
            spans[-1]["_end"] = end
        else:
            spans.append({"_start": start, "_end": end})
    out = []
    for span in spans:
        a, b = span["_start"], span["_end"]
        # a significant window can overhang the marked text by a few units: trim to green ends
        hit = np.nonzero(scored.successes[a:b] > 0)[0]
        a, b = a + int(hit[0]), a + int(hit[-1]) + 1
        green = scored.sum_of(scored.successes[a:b])
        n_trials = (b - a) * scored.trials_per_unit
        first_token, last_token = int(scored.positions[a]), int(scored.positions[b - 1])
        item = {
            "start_token": first_token,
            "end_token": last_token + 1,
            "num_tokens_scored": b - a,
            "green_count": green,
            "z_score": scored.z_score(green, n_trials),
            "p_value": scored.p_value(green, n_trials),
        }
        if offsets is not None and len(offsets) > last_token:
            item["start_char"], item["end_char"] = int(offsets[first_token, 0]), int(offsets[last_token, 1])
        out.append(item)
    return window_p, out


def detect_texts(
    texts: list[str],
    keys: list[WatermarkKey] | WatermarkKey | list[str | os.PathLike] | str | os.PathLike,
    tokenizer_dir: str | os.PathLike,
    config: DetectionConfig | None = None,
    prompts: list[str | None] | str | None = None,
    sources: list[str] | None = None,
) -> list[DetectionResult]:
    """The library entry point: texts, key(s) (objects or key-file paths) and a tokenizer directory."""
    if not isinstance(keys, (list, tuple)):
        keys = [keys]
    if all(isinstance(k, WatermarkKey) for k in keys):
        from watermark.keys import tokenizer_digest

        digest, _ = tokenizer_digest(tokenizer_dir)
        for key in keys:
            key.check_tokenizer(digest, where=str(tokenizer_dir))
        loaded = list(keys)
    else:
        loaded, _ = load_keys([os.fspath(k) for k in keys], tokenizer_dir)
    return Detector(loaded, tokenizer_dir, config).detect_texts(list(texts), prompts=prompts, sources=sources)


def summarize(results: list[DetectionResult]) -> dict[str, Any]:
    """Counts of verdicts, for the CLI's summary line and run.json."""
    verdicts = [r.verdict for r in results]
    return {v: verdicts.count(v) for v in VERDICTS.values()} | {
        "texts": len(results),
        "max_z_score": max((r.z_score for r in results), default=math.nan),
    }
