"""Candidate preference pairs from the policy: K sampled responses per prompt, paired up.

Generation is transformers' own batched `model.generate` with `num_return_sequences=K`; the
pipeline may pass a `logits_processor` (the watermark) so the pairs people label are the text
the released model will really produce. Pairs are every two distinct responses to one prompt
(at most `max_pairs_per_prompt`), plus, optionally, cross-prompt pairs: a response to this
prompt against a response written for another prompt — an easy question whose answer the
reward model should get right, which anchors its scale.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from alignment.errors import ConfigError, PreferenceDataError
from annotation.pairs import PreferencePair

log = logging.getLogger("alignment")


@dataclass
class CandidateConfig:
    samples_per_prompt: int = field(default=4, metadata={"help": "K responses sampled per prompt"})
    max_pairs_per_prompt: int = field(default=6, metadata={"help": "pairs kept per prompt (of K(K-1)/2)"})
    cross_prompt_pairs: int = field(
        default=0, metadata={"help": "extra pairs per prompt against another prompt's response"}
    )
    max_new_tokens: int = field(default=48, metadata={"help": "tokens per response"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling mass"})
    top_k: int = field(default=0, metadata={"help": "sample from the k most likely tokens (0 = off)"})
    generate_batch_size: int = field(default=16, metadata={"help": "prompts per generate call"})
    sample_seed: int = field(default=0, metadata={"help": "seed for sampling the candidate responses"})

    def __post_init__(self):
        if self.samples_per_prompt < 2:
            raise ConfigError(f"samples_per_prompt: must be >= 2 to form pairs, got {self.samples_per_prompt}")
        if self.max_pairs_per_prompt < 1 or self.max_new_tokens < 1 or self.generate_batch_size < 1:
            raise ConfigError("max_pairs_per_prompt, max_new_tokens and generate_batch_size: must be >= 1")
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.cross_prompt_pairs < 0:
            raise ConfigError("temperature > 0, top_p in (0, 1] and cross_prompt_pairs >= 0 are required")


def read_prompts(path: str | Path) -> list[str]:
    """Prompts from a text file (one per line, '\\n' escapes allowed) or JSONL (`prompt` or `text` field)."""
    path = Path(path)
    if not path.is_file():
        raise PreferenceDataError(f"prompts: no such file: {path}")
    prompts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                row = json.loads(line)
                prompts.append(str(row.get("prompt", row.get("text"))))
            except (json.JSONDecodeError, AttributeError):
                raise PreferenceDataError(f"{path} line {number}: not a JSON object with 'prompt' or 'text'") from None
        else:
            prompts.append(line.replace("\\n", "\n"))
    if not prompts:
        raise PreferenceDataError(f"prompts: {path} holds no prompts")
    return prompts


def prompts_from_documents(
    texts: list[str], count: int, seed: int = 0, words: tuple[int, int] = (6, 16), avoid: list[str] = ()
) -> list[str]:
    """Prompts drawn from held-out documents: the opening words of a random paragraph.

    `avoid`: prompts cut earlier; no paragraph they were cut from is drawn again (a prompt is a paragraph's
    first 6 to 16 words, so two prompts share a paragraph exactly when they share their first `words[0]`).
    """
    rng = random.Random(seed)
    taken = {tuple(p.split()[: words[0]]) for p in avoid}
    paragraphs = [
        p.strip()
        for text in texts
        for p in text.split("\n\n")
        if len(p.split()) >= words[1] + 8 and tuple(p.split()[: words[0]]) not in taken
    ]
    if not paragraphs:
        raise PreferenceDataError("prompts: the documents hold no paragraph long enough to cut a prompt from")
    picked = rng.sample(paragraphs, min(count, len(paragraphs)))
    return [" ".join(p.split()[: rng.randint(*words)]) for p in picked]


def sample_responses(
    model, tokenizer, prompts: list[str], config: CandidateConfig, logits_processor=None
) -> list[list[str]]:
    """K sampled continuations per prompt, batched."""
    import torch
    from tqdm.auto import tqdm

    torch.manual_seed(config.sample_seed)
    tokenizer.padding_side = "left"
    out: list[list[str]] = []
    k = config.samples_per_prompt
    for start in tqdm(range(0, len(prompts), config.generate_batch_size), desc="sample pairs", unit="batch"):
        batch = prompts[start : start + config.generate_batch_size]
        encoded = tokenizer(batch, return_tensors="pt", padding=True)
        with torch.inference_mode():
            generated = model.generate(
                **encoded,
                do_sample=True,
                num_return_sequences=k,
                max_new_tokens=config.max_new_tokens,
                temperature=config.temperature,
                top_p=config.top_p,
                top_k=config.top_k or None,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                logits_processor=logits_processor,
            )
        texts = tokenizer.batch_decode(generated[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
        out.extend(texts[i * k : (i + 1) * k] for i in range(len(batch)))
    return out


def form_pairs(
    prompts: list[str], responses: list[list[str]], config: CandidateConfig, model_id: str = ""
) -> list[PreferencePair]:
    """Within-prompt pairs of distinct, non-empty responses (and optional cross-prompt pairs), deduplicated."""
    rng = random.Random(config.sample_seed)
    pairs: dict[str, PreferencePair] = {}
    for index, (prompt, texts) in enumerate(zip(prompts, responses)):
        distinct = list(dict.fromkeys(t for t in texts if t.strip()))
        combos = list(itertools.combinations(distinct, 2))
        rng.shuffle(combos)
        for a, b in combos[: config.max_pairs_per_prompt]:
            pair = PreferencePair(
                prompt=prompt,
                response_a=a,
                response_b=b,
                model=model_id,
                metadata={"kind": "within_prompt", "prompt_index": index},
            )
            pairs.setdefault(pair.pair_id, pair)
        for _ in range(config.cross_prompt_pairs if len(prompts) > 1 and distinct else 0):
            other = rng.choice([j for j in range(len(prompts)) if j != index])
            foreign = [t for t in responses[other] if t.strip() and t not in distinct]
            if foreign:
                a, b = rng.choice(distinct), rng.choice(foreign)
                a, b = (a, b) if rng.random() < 0.5 else (b, a)
                pair = PreferencePair(
                    prompt=prompt,
                    response_a=a,
                    response_b=b,
                    model=model_id,
                    metadata={"kind": "cross_prompt", "prompt_index": index, "other_prompt": other},
                )
                pairs.setdefault(pair.pair_id, pair)
    return list(pairs.values())


def generate_candidate_pairs(
    model,
    tokenizer,
    prompts: list[str],
    config: CandidateConfig | None = None,
    logits_processor=None,
    model_id: str = "",
) -> list[PreferencePair]:
    config = config or CandidateConfig()
    if not prompts:
        raise PreferenceDataError("prompts: no prompts to generate pairs for")
    responses = sample_responses(model, tokenizer, prompts, config, logits_processor)
    pairs = form_pairs(prompts, responses, config, model_id)
    log.info("candidate pairs: %d from %d prompts x %d samples", len(pairs), len(prompts), config.samples_per_prompt)
    return pairs
