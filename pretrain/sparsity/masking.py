"""Unstructured weight masks through `torch.nn.utils.parametrize`.

`linear.weight` becomes `original * mask` on every forward, so whatever the optimizer does to
the stored tensor, the model computes with the masked weights, and gradients reach only the
live connections. Two things the stock machinery does not give, added here:

* Checkpoints stay plain save_pretrained files: state-dict hooks write `…proj.weight` (the
  masked tensor) instead of `…proj.parametrizations.weight.original`, and read it back the same
  way, so a checkpoint loads with plain transformers and resumes into a masked model alike.
  The masks themselves travel beside the weights (see callbacks.py).
* RigL needs the dense gradient ∂L/∂W at pruned positions, which the masked product hides;
  `WeightMask` can record it from a hook on the computed weight.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from pretrain.sparsity.architectures import decoder_linears
from pretrain.sparsity.structured import weight_parameter

_HOOKS_ATTRIBUTE = "_mintline_mask_hooks"


class WeightMask(nn.Module):
    def __init__(self, mask: torch.Tensor):
        super().__init__()
        # Not persistent: the mask lives in the callback's checkpoint file, never in the weights.
        self.register_buffer("mask", mask, persistent=False)
        self.capture_dense_grad = False
        self.dense_grad: torch.Tensor | None = None

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        weight = original * self.mask.to(original.dtype)
        if self.capture_dense_grad and weight.requires_grad:
            weight.register_hook(self._record_dense_grad)
        return weight

    def _record_dense_grad(self, grad: torch.Tensor) -> None:
        grad = grad.detach().float()
        self.dense_grad = grad.clone() if self.dense_grad is None else self.dense_grad + grad

    def select(self, dim: int, index: torch.Tensor) -> None:
        """Follow a structured shrink of the weight (structured.select_linear calls this)."""
        self.mask = self.mask.index_select(dim, index.to(self.mask.device)).contiguous()
        self.dense_grad = None


def mask_of(linear) -> WeightMask | None:
    parametrizations = getattr(linear, "parametrizations", None)
    if parametrizations is None or "weight" not in parametrizations:
        return None
    for parametrization in parametrizations.weight:
        if isinstance(parametrization, WeightMask):
            return parametrization
    return None


def _save_masked_weight(module, state_dict, prefix, local_metadata) -> None:
    key = prefix + "parametrizations.weight.original"
    if key in state_dict:
        original = state_dict.pop(key)
        state_dict[prefix + "weight"] = original * mask_of(module).mask.to(original.dtype)


def _load_into_original(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
    if prefix + "weight" in state_dict:
        state_dict[prefix + "parametrizations.weight.original"] = state_dict.pop(prefix + "weight")


def attach_masks(model, masks: dict[str, torch.Tensor] | None = None) -> dict[str, WeightMask]:
    """Parametrize every decoder projection with a mask (all ones unless given); returns them by name."""
    attached = {}
    for name, linear in decoder_linears(model):
        weight = weight_parameter(linear)
        mask = masks[name] if masks is not None else torch.ones_like(weight, dtype=torch.bool)
        if tuple(mask.shape) != tuple(weight.shape):
            raise ValueError(f"{name}: mask of shape {tuple(mask.shape)} for a weight of shape {tuple(weight.shape)}")
        mask = mask.to(device=weight.device, dtype=weight.dtype)
        existing = mask_of(linear)
        if existing is not None:
            existing.mask = mask
            attached[name] = existing
            continue
        module = WeightMask(mask)
        parametrize.register_parametrization(linear, "weight", module)
        setattr(
            linear,
            _HOOKS_ATTRIBUTE,
            (
                linear.register_state_dict_post_hook(_save_masked_weight),
                linear.register_load_state_dict_pre_hook(_load_into_original),
            ),
        )
        attached[name] = module
    return attached


def detach_masks(model) -> None:
    """Bake the masks into plain weights and remove the parametrizations (parameter identity is kept)."""
    for _, linear in decoder_linears(model):
        if mask_of(linear) is None:
            continue
        for hook in getattr(linear, _HOOKS_ATTRIBUTE, ()):
            hook.remove()
        if hasattr(linear, _HOOKS_ATTRIBUTE):
            delattr(linear, _HOOKS_ATTRIBUTE)
        parametrize.remove_parametrizations(linear, "weight", leave_parametrized=True)


def masks_by_name(model) -> dict[str, torch.Tensor]:
    return {
        name: mask_of(linear).mask.bool().cpu()
        for name, linear in decoder_linears(model)
        if mask_of(linear) is not None
    }


def enforce_mask(linear, optimizer=None, reset: torch.Tensor | None = None) -> None:
    """Zero the stored weight and its optimizer state where the mask is off (and at `reset`).

    With zero weight, zero gradient (the product masks it) and zero moments, AdamW leaves a
    pruned entry at exactly zero; a regrown one starts from zero, as RigL prescribes.
    """
    weight = weight_parameter(linear)
    dead = ~mask_of(linear).mask.bool()
    if reset is not None:
        dead = dead | reset.to(dead.device)
    with torch.no_grad():
        weight.masked_fill_(dead, 0.0)
    if optimizer is None:
        return
    inner = getattr(optimizer, "optimizer", optimizer)
    for value in inner.state.get(weight, {}).values():
        if torch.is_tensor(value) and value.shape == weight.shape:
            value.masked_fill_(dead.to(value.device), 0.0)


def magnitude_update(linear, sparsity: float, optimizer=None) -> None:
    """Keep the largest-magnitude (1 - sparsity) of the live weights of one layer (pruned stay pruned)."""
    wrapper = mask_of(linear)
    weight = weight_parameter(linear).detach()
    scores = (weight * wrapper.mask).abs().flatten().float()
    keep = weight.numel() - round(sparsity * weight.numel())
    mask = torch.zeros_like(scores, dtype=torch.bool)
    mask[torch.topk(scores, keep, sorted=False).indices] = True
    wrapper.mask = mask.view_as(weight).to(wrapper.mask.dtype)
    enforce_mask(linear, optimizer)


def rigl_update(linear, drop_fraction: float, optimizer=None) -> int:
    """Drop the weakest live weights and regrow as many where the dense gradient is largest.

    Returns the number of connections moved. Needs `dense_grad` recorded during the step.
    """
    wrapper = mask_of(linear)
    if wrapper.dense_grad is None:
        return 0
    weight = weight_parameter(linear).detach().float()
    alive = wrapper.mask.bool()
    moved = round(drop_fraction * int(alive.sum()))
    if moved == 0:
        wrapper.dense_grad = None
        return 0
    drop_scores = torch.where(alive, weight.abs(), torch.full_like(weight, float("inf")))
    dropped = torch.topk(drop_scores.flatten(), moved, largest=False).indices
    after_drop = alive.flatten().clone()
    after_drop[dropped] = False
    grow_scores = torch.where(after_drop, torch.full_like(weight.flatten(), -1.0), wrapper.dense_grad.abs().flatten())
    grown = torch.topk(grow_scores, moved).indices
    new_mask = after_drop.clone()
    new_mask[grown] = True
    reset = torch.zeros_like(new_mask)
    reset[grown] = True
    wrapper.mask = new_mask.view_as(alive).to(wrapper.mask.dtype)
    wrapper.dense_grad = None
    enforce_mask(linear, optimizer, reset=reset.view_as(alive))
    return moved


def random_mask(shape: torch.Size, sparsity: float, generator: torch.Generator) -> torch.Tensor:
    numel = 1
    for size in shape:
        numel *= size
    keep = numel - round(sparsity * numel)
    mask = torch.zeros(numel, dtype=torch.bool)
    mask[torch.randperm(numel, generator=generator)[:keep]] = True
    return mask.view(shape)


def sparsity_report(model) -> dict[str, float]:
    """Fraction of exact zeros in the decoder projections (masked or baked), overall and per kind."""
    total = zeros = 0
    for _, linear in decoder_linears(model):
        weight = linear.weight.detach()
        total += weight.numel()
        zeros += int((weight == 0).sum())
    return {"decoder_weights": total, "decoder_zero_weights": zeros, "decoder_sparsity": zeros / max(total, 1)}
