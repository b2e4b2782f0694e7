"""Which model architectures the pruning code knows, and where their prunable parts live.

Llama-layout decoders (Llama, Mistral, Qwen2) share the module names this package edits:
`model.layers[i].self_attn.{q,k,v,o}_proj` and `model.layers[i].mlp.{gate,up,down}_proj`.
Anything else is refused up front with one line, rather than half-pruned.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from pretrain.errors import ConfigError

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2")
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")


class UnsupportedArchitectureError(ConfigError):
    """The model is not one of the decoder layouts this package can prune."""


@dataclass(frozen=True)
class DecoderShape:
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int

    @property
    def heads_per_group(self) -> int:
        return self.num_heads // self.num_kv_heads

    @property
    def attention_width(self) -> int:
        return self.num_heads * self.head_dim

    def as_dict(self) -> dict[str, int]:
        return {
            "num_hidden_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "intermediate_size": self.intermediate_size,
        }


def unwrap(model):
    """The transformers model inside DDP / torch.compile / accelerate wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def check_supported(model) -> None:
    model = unwrap(model)
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        name = model_type or type(model).__name__
        raise UnsupportedArchitectureError(
            f"architecture {name!r} is not supported for pruning; known: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None or len(layers) == 0:
        raise UnsupportedArchitectureError(f"{type(model).__name__}: no decoder layers at model.layers")
    for part, names in (("self_attn", ATTENTION_PROJECTIONS), ("mlp", MLP_PROJECTIONS)):
        block = getattr(layers[0], part, None)
        missing = [n for n in names if not hasattr(block, n)]
        if block is None or missing:
            raise UnsupportedArchitectureError(
                f"{type(model).__name__}: decoder layer lacks {part}.{', '.join(missing or names)}"
            )


def decoder_layers(model) -> list:
    return list(unwrap(model).model.layers)


def decoder_shape(config) -> DecoderShape:
    heads = config.num_attention_heads
    return DecoderShape(
        num_layers=config.num_hidden_layers,
        hidden_size=config.hidden_size,
        num_heads=heads,
        num_kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
        intermediate_size=config.intermediate_size,
    )


def decoder_linears(model) -> list[tuple[str, object]]:
    """(qualified name, nn.Linear) of every projection in every decoder layer, in order."""
    found = []
    for index, layer in enumerate(decoder_layers(model)):
        for part, names in (("self_attn", ATTENTION_PROJECTIONS), ("mlp", MLP_PROJECTIONS)):
            block = getattr(layer, part)
            for name in names:
                found.append((f"model.layers.{index}.{part}.{name}", getattr(block, name)))
    return found


def config_accepts(config, num_heads: int, num_kv_heads: int) -> bool:
    """Would this config class accept these head counts? (Llama's insists hidden_size % heads == 0.)"""
    if num_heads < 1 or num_kv_heads < 1 or num_heads % num_kv_heads:
        return False
    trial = copy.deepcopy(config)
    trial.num_attention_heads = num_heads
    trial.num_key_value_heads = num_kv_heads
    validate = getattr(trial, "validate", None)
    if validate is None:
        return True
    try:
        validate()
    except Exception:  # noqa: BLE001 - any validator complaint means "not a loadable config"
        return False
    return True
