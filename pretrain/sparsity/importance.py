"""Importance of each attention head and MLP neuron, accumulated over recent training steps.

Two scores, both summed over the steps of a window before a pruning event:

* taylor: the first-order Taylor estimate of the loss change when a weight is zeroed,
  |w · ∂L/∂w|, summed over the weights of the group (a head's q/k/v rows and o_proj columns;
  a neuron's gate/up rows and down_proj column). Read from the gradients right before the
  optimizer step, so it costs one element-wise product per weight per step and no extra pass.
* activation: how much a group contributes to the residual stream: the mean L2 norm of a
  head's output (a neuron's mean |activation|) entering o_proj (down_proj), times the norm of
  the outgoing weights. Collected with forward pre-hooks during training forwards.
"""

from __future__ import annotations

import torch

from pretrain.sparsity.architectures import decoder_layers, decoder_shape, unwrap
from pretrain.sparsity.structured import weight_parameter


class ImportanceAccumulator:
    def __init__(self, method: str = "taylor"):
        if method not in ("taylor", "activation"):
            raise ValueError(f"importance: must be taylor or activation, got {method!r}")
        self.method = method
        self.head_scores: torch.Tensor | None = None  # [layers, heads]
        self.neuron_scores: torch.Tensor | None = None  # [layers, neurons]
        self.steps = 0
        self._activation_sums: dict[str, torch.Tensor] = {}
        self._activation_counts: dict[str, int] = {}
        self._hooks: list = []
        self._head_dim = 0

    # -- collection ----------------------------------------------------------------------
    def reset(self) -> None:
        self.head_scores = self.neuron_scores = None
        self.steps = 0
        self._activation_sums.clear()
        self._activation_counts.clear()

    def attach(self, model) -> None:
        """Start listening to activations (activation method only; taylor needs no hooks)."""
        self._head_dim = decoder_shape(unwrap(model).config).head_dim
        if self.method != "activation" or self._hooks:
            return
        for index, layer in enumerate(decoder_layers(model)):
            self._hooks.append(layer.self_attn.o_proj.register_forward_pre_hook(self._recorder(f"head.{index}")))
            self._hooks.append(layer.mlp.down_proj.register_forward_pre_hook(self._recorder(f"neuron.{index}")))

    def detach(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    def _recorder(self, key: str):
        def record(module, inputs):
            if not module.training:
                return  # evaluation forwards do not count
            with torch.no_grad():
                x = inputs[0].detach().float().reshape(-1, inputs[0].shape[-1])
                self._activation_sums[key] = self._activation_sums.get(key, 0) + (
                    x.abs().sum(0) if key.startswith("neuron") else self._per_head_norms(module, x)
                )
                self._activation_counts[key] = self._activation_counts.get(key, 0) + x.shape[0]

        return record

    def _per_head_norms(self, o_proj, x: torch.Tensor) -> torch.Tensor:
        head_dim = self._head_dim
        return x.view(x.shape[0], -1, head_dim).norm(dim=-1).sum(0)

    def accumulate_step(self, model) -> None:
        """Add this optimizer step's contribution (call after backward, before the optimizer step)."""
        model = unwrap(model)
        shape = decoder_shape(model.config)
        if self.method == "activation":
            self.steps += 1
            return
        heads, neurons = [], []
        with torch.no_grad():
            for layer in decoder_layers(model):
                attention, mlp = layer.self_attn, layer.mlp
                q = _taylor(attention.q_proj)
                if q is None:
                    return  # no gradients this step (e.g. skipped by the loss scaler)
                per_head = q.view(shape.num_heads, -1).sum(1)
                per_head += _taylor(attention.o_proj).view(shape.hidden_size, shape.num_heads, -1).sum((0, 2))
                if shape.num_kv_heads == shape.num_heads:
                    per_head += _taylor(attention.k_proj).view(shape.num_heads, -1).sum(1)
                    per_head += _taylor(attention.v_proj).view(shape.num_heads, -1).sum(1)
                heads.append(per_head)
                per_neuron = (
                    _taylor(mlp.gate_proj).sum(1) + _taylor(mlp.up_proj).sum(1) + _taylor(mlp.down_proj).sum(0)
                )
                neurons.append(per_neuron)
        step_heads, step_neurons = torch.stack(heads).cpu(), torch.stack(neurons).cpu()
        self.head_scores = step_heads if self.head_scores is None else self.head_scores + step_heads
        self.neuron_scores = step_neurons if self.neuron_scores is None else self.neuron_scores + step_neurons
        self.steps += 1

    # -- results -------------------------------------------------------------------------
    def scores(self, model) -> tuple[torch.Tensor, torch.Tensor]:
        """(head scores [layers, heads], neuron scores [layers, neurons]); higher = more important."""
        if self.method == "taylor":
            if self.head_scores is None:
                raise RuntimeError("no importance accumulated yet")
            return self.head_scores, self.neuron_scores
        model = unwrap(model)
        shape = decoder_shape(model.config)
        heads, neurons = [], []
        with torch.no_grad():
            for index, layer in enumerate(decoder_layers(model)):
                count = max(self._activation_counts.get(f"head.{index}", 0), 1)
                if f"head.{index}" not in self._activation_sums:
                    raise RuntimeError("no activations recorded yet")
                head_norm = self._activation_sums[f"head.{index}"].cpu() / count
                o_weight = layer.self_attn.o_proj.weight.detach().float().cpu()
                heads.append(head_norm * o_weight.view(shape.hidden_size, shape.num_heads, -1).norm(dim=(0, 2)))
                neuron_mean = self._activation_sums[f"neuron.{index}"].cpu() / count
                neurons.append(neuron_mean * layer.mlp.down_proj.weight.detach().float().cpu().norm(dim=0))
        return torch.stack(heads), torch.stack(neurons)

    def state_dict(self) -> dict:
        return {
            "method": self.method,
            "steps": self.steps,
            "head_scores": self.head_scores,
            "neuron_scores": self.neuron_scores,
            "activation_sums": {k: v.cpu() for k, v in self._activation_sums.items()},
            "activation_counts": dict(self._activation_counts),
        }

    def load_state_dict(self, state: dict) -> None:
        self.method = state["method"]
        self.steps = state["steps"]
        self.head_scores = state["head_scores"]
        self.neuron_scores = state["neuron_scores"]
        self._activation_sums = dict(state["activation_sums"])
        self._activation_counts = dict(state["activation_counts"])


def _taylor(linear) -> torch.Tensor | None:
    weight = weight_parameter(linear)
    if weight.grad is None:
        return None
    return (weight.detach().float() * weight.grad.detach().float()).abs()


def keep_top(scores: torch.Tensor, count: int, groups: int = 1) -> list[torch.Tensor]:
    """Per layer, the sorted indices of the `count` highest scores (`count / groups` in each group)."""
    kept = []
    for row in scores:
        if groups == 1:
            kept.append(torch.sort(torch.topk(row, count).indices).values)
            continue
        per_group, width = count // groups, row.numel() // groups
        chosen = [g * width + torch.topk(row[g * width : (g + 1) * width], per_group).indices for g in range(groups)]
        kept.append(torch.sort(torch.cat(chosen)).values)
    return kept
