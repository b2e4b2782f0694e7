"""Model presets by name: Llama-architecture configs built locally, nothing downloaded.

Parameter counts are for the default 4096-token vocabulary with tied embeddings.
"""

from __future__ import annotations

import json
from pathlib import Path

from pretrain.errors import ConfigError

# name: (hidden, layers, heads, kv_heads, intermediate, context)
PRESETS: dict[str, tuple[int, int, int, int, int, int]] = {
    "nano": (128, 2, 4, 4, 384, 512),  # ~1M: tests
    "tiny": (256, 5, 8, 8, 768, 1024),  # ~5M: the default run on 2 CPU cores
    "small": (512, 7, 8, 8, 1536, 1024),  # ~25M
    "base": (768, 16, 12, 12, 2048, 2048),  # ~120M
    "1b": (2048, 16, 32, 8, 5632, 2048),  # ~1B with a 32k vocabulary: GPUs only
}


def preset_names() -> list[str]:
    return list(PRESETS)


def build_config(model: str, vocab_size: int, bos_token_id: int, eos_token_id: int, pad_token_id: int):
    """A transformers config from a preset name or from a config.json file/directory."""
    from transformers import AutoConfig, LlamaConfig

    if model in PRESETS:
        hidden, layers, heads, kv_heads, intermediate, context = PRESETS[model]
        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            head_dim=hidden // heads,  # explicit, so pruning heads keeps the config standard
            intermediate_size=intermediate,
            max_position_embeddings=context,
            tie_word_embeddings=True,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
        )
    path = Path(model)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise ConfigError(f"model: {model!r} is neither a preset ({', '.join(PRESETS)}) nor a config.json file")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"model: cannot read {path}: {exc}") from exc
    if "model_type" not in raw:
        raise ConfigError(f"model: {path} has no model_type; not a Hugging Face config")
    try:
        config = AutoConfig.for_model(**raw)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"model: {path}: {exc}") from exc
    config.bos_token_id, config.eos_token_id, config.pad_token_id = bos_token_id, eos_token_id, pad_token_id
    return config
