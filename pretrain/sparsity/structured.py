"""Physically remove attention heads and MLP neurons from a Llama-layout model, in place.

Every layer loses the same number, so the result is a standard config (`num_attention_heads`,
`num_key_value_heads`, explicit `head_dim`, `intermediate_size`) that plain transformers loads.
Parameters keep their identity (`param.data` is replaced, the `nn.Parameter` object stays), so
the optimizer's param groups remain valid; its per-parameter state (AdamW's exp_avg and
exp_avg_sq) is sliced with the same index so training continues exactly where it was.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from pretrain.errors import CheckpointError, ConfigError
from pretrain.sparsity.architectures import (
    DecoderShape,
    check_supported,
    config_accepts,
    decoder_layers,
    decoder_shape,
    unwrap,
)

log = logging.getLogger("pretrain")


def weight_parameter(linear) -> torch.nn.Parameter:
    """The trainable tensor behind `linear.weight` (the original when a sparsity mask is parametrized on it)."""
    parametrizations = getattr(linear, "parametrizations", None)
    if parametrizations is not None and "weight" in parametrizations:
        return parametrizations.weight.original
    return linear.weight


def _select_parameter(param: torch.nn.Parameter, dim: int, index: torch.Tensor, optimizer) -> None:
    old_shape = param.shape
    index = index.to(param.device)
    with torch.no_grad():
        param.data = param.data.index_select(dim, index).contiguous()
    if param.grad is not None:
        param.grad = param.grad.index_select(dim, index).contiguous()
    if optimizer is not None:
        shrink_optimizer_state(optimizer, param, dim, index, old_shape)


def shrink_optimizer_state(optimizer, param, dim: int, index: torch.Tensor, old_shape: torch.Size) -> None:
    """Slice every per-element state tensor of `param` (AdamW: exp_avg, exp_avg_sq) like the parameter."""
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps the real one
    state = inner.state.get(param)
    if not state:
        return
    for key, value in list(state.items()):
        if not torch.is_tensor(value) or value.dim() == 0:
            continue  # step counters
        if value.shape != old_shape:
            raise ConfigError(
                f"optimizer {type(inner).__name__}: state {key!r} of shape {tuple(value.shape)} does not follow the "
                f"parameter's {tuple(old_shape)}; structured pruning needs an element-wise optimizer such as AdamW"
            )
        state[key] = value.index_select(dim, index.to(value.device)).contiguous()


def select_linear(linear, dim: int, index: torch.Tensor, optimizer=None) -> None:
    """Keep rows (dim 0: outputs) or columns (dim 1: inputs) `index` of a Linear, its bias and mask."""
    index = torch.as_tensor(index, dtype=torch.long)
    _select_parameter(weight_parameter(linear), dim, index, optimizer)
    if dim == 0 and linear.bias is not None:
        _select_parameter(linear.bias, 0, index, optimizer)
    parametrizations = getattr(linear, "parametrizations", None)
    if parametrizations is not None and "weight" in parametrizations:
        for parametrization in parametrizations.weight:
            if hasattr(parametrization, "select"):
                parametrization.select(dim, index)
    if dim == 0:
        linear.out_features = len(index)
    else:
        linear.in_features = len(index)


def _head_rows(heads: torch.Tensor, head_dim: int) -> torch.Tensor:
    return (heads[:, None] * head_dim + torch.arange(head_dim)[None, :]).reshape(-1)


def valid_head_counts(config) -> list[int]:
    """Head counts (per layer) this config class accepts with the layer's key/value grouping kept.

    With multi-head attention, heads go with their key/value projections; with grouped-query
    attention, the same number of query heads leaves every group and the key/value heads stay.
    """
    shape = decoder_shape(config)
    if shape.num_kv_heads == shape.num_heads:
        candidates = [(n, n) for n in range(1, shape.num_heads + 1)]
    else:
        candidates = [(shape.num_kv_heads * per, shape.num_kv_heads) for per in range(1, shape.heads_per_group + 1)]
    return [heads for heads, kv in candidates if config_accepts(config, heads, kv)]


def prune_heads(model, keep: Sequence[torch.Tensor], optimizer=None) -> DecoderShape:
    """Keep query heads `keep[layer]` (sorted, the same count in every layer); returns the new shape."""
    check_supported(model)
    model = unwrap(model)
    config = model.config
    shape = decoder_shape(config)
    layers = decoder_layers(model)
    counts = {len(k) for k in keep}
    if len(keep) != len(layers) or len(counts) != 1:
        raise ConfigError("prune_heads: every layer must keep the same number of heads")
    new_heads = counts.pop()
    mha = shape.num_kv_heads == shape.num_heads
    new_kv = new_heads if mha else shape.num_kv_heads
    if not config_accepts(config, new_heads, new_kv):
        raise ConfigError(f"prune_heads: {new_heads} heads per layer is not a valid {config.model_type} config")
    for layer, kept in zip(layers, keep):
        kept = torch.sort(torch.as_tensor(kept, dtype=torch.long)).values
        if not mha:
            per_group = torch.bincount(kept // shape.heads_per_group, minlength=shape.num_kv_heads)
            if not bool((per_group == new_heads // new_kv).all()):
                raise ConfigError(
                    "prune_heads: with grouped-query attention every key/value group must keep as many heads"
                )
        attention = layer.self_attn
        rows = _head_rows(kept, shape.head_dim)
        select_linear(attention.q_proj, 0, rows, optimizer)
        select_linear(attention.o_proj, 1, rows, optimizer)
        if mha:
            select_linear(attention.k_proj, 0, rows, optimizer)
            select_linear(attention.v_proj, 0, rows, optimizer)
        attention.num_key_value_groups = new_heads // new_kv
    config.num_attention_heads = new_heads
    config.num_key_value_heads = new_kv
    config.head_dim = shape.head_dim  # explicit: hidden_size // heads no longer says it
    return decoder_shape(config)


def prune_neurons(model, keep: Sequence[torch.Tensor], optimizer=None) -> DecoderShape:
    """Keep MLP neurons `keep[layer]` (the same count in every layer); returns the new shape."""
    check_supported(model)
    model = unwrap(model)
    layers = decoder_layers(model)
    counts = {len(k) for k in keep}
    if len(keep) != len(layers) or len(counts) != 1:
        raise ConfigError("prune_neurons: every layer must keep the same number of neurons")
    new_size = counts.pop()
    if new_size < 1:
        raise ConfigError("prune_neurons: at least one neuron per layer must remain")
    for layer, kept in zip(layers, keep):
        kept = torch.sort(torch.as_tensor(kept, dtype=torch.long)).values
        mlp = layer.mlp
        select_linear(mlp.gate_proj, 0, kept, optimizer)
        select_linear(mlp.up_proj, 0, kept, optimizer)
        select_linear(mlp.down_proj, 1, kept, optimizer)
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = new_size
    model.config.intermediate_size = new_size
    return decoder_shape(model.config)


def read_checkpoint_config(checkpoint: str | Path) -> dict:
    path = Path(checkpoint)
    path = path / "config.json" if path.is_dir() else path
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no config.json to restore the pruned shapes from") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable config ({exc})") from exc


def restore_pruned_shapes(model, checkpoint: str | Path | dict) -> bool:
    """Shrink a freshly built model to the shapes recorded in a checkpoint's config.json.

    Call before `trainer.train(resume_from_checkpoint=...)`: the Trainer loads the checkpoint's
    weights into the model as it is, so a checkpoint taken after a pruning event needs the
    smaller shapes first. Which heads/neurons are kept does not matter here (the loaded weights
    overwrite them). Returns True when the model was shrunk.
    """
    check_supported(model)
    model = unwrap(model)
    saved = checkpoint if isinstance(checkpoint, dict) else read_checkpoint_config(checkpoint)
    current = decoder_shape(model.config)
    for key in ("num_hidden_layers", "hidden_size"):
        if key in saved and saved[key] != getattr(model.config, key):
            raise CheckpointError(
                f"checkpoint config has {key}={saved[key]} but the model has {getattr(model.config, key)}; not the same model"
            )
    heads = saved.get("num_attention_heads", current.num_heads)
    kv_heads = saved.get("num_key_value_heads") or heads
    neurons = saved.get("intermediate_size", current.intermediate_size)
    if heads > current.num_heads or neurons > current.intermediate_size or kv_heads > current.num_kv_heads:
        raise CheckpointError(
            f"checkpoint has {heads} heads / {neurons} neurons per layer, more than the model's "
            f"{current.num_heads} / {current.intermediate_size}; build the model from the checkpoint's config"
        )
    grouped = current.num_kv_heads != current.num_heads
    if (grouped and kv_heads != current.num_kv_heads) or (not grouped and kv_heads != heads):
        raise CheckpointError(
            f"checkpoint has {heads} heads with {kv_heads} key/value heads; pruning never changes the model's "
            f"grouping ({current.num_heads} heads, {current.num_kv_heads} key/value heads)"
        )
    if saved.get("head_dim", current.head_dim) != current.head_dim:
        raise CheckpointError(f"checkpoint head_dim {saved['head_dim']} differs from the model's {current.head_dim}")
    changed = False
    if heads < current.num_heads:
        if kv_heads == heads:
            kept = torch.arange(heads)
        else:
            per_group = heads // kv_heads
            kept = torch.cat([g * current.heads_per_group + torch.arange(per_group) for g in range(kv_heads)])
        prune_heads(model, [kept] * current.num_layers)
        changed = True
    if neurons < current.intermediate_size:
        prune_neurons(model, [torch.arange(neurons)] * current.num_layers)
        changed = True
    if changed:
        log.info("restored pruned shapes: %d heads, %d neurons per layer", heads, neurons)
    return changed
