"""Offline modifications of released weights, each with the field's own tools, to test the weight mark.

Spec strings name an attack: `finetune:STEPS:LR` (full fine-tuning, AdamW, batch 16 x 128 tokens of
clean text), `lora:STEPS:LR` (PEFT LoRA r=16 on every attention and MLP projection, then
`merge_and_unload`), `int8` (torch.ao `quantize_dynamic` of every Linear), `wanda:SPARSITY`
(mintline's own Wanda pruning, passed in by the caller: this package imports nothing in-project),
`average:WEIGHT` (a weight average with an independently trained model of the same shape, passed in).
`WEIGHT+TEXT` (e.g. `finetune:500:1e-4+word_substitution:0.2`) applies a text attack (watermark/attacks.py)
to the modified model's generations as well.

Every attack returns a new model and leaves its input untouched. `int8` returns the quantized
model (it generates as a user running it would) and `dequantized(model)` gives the float
weights it really computes with, for the white-box test.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from watermark.attacks import Attack, parse_attack
from watermark.errors import ConfigError

ATTACK_KINDS = ("none", "finetune", "lora", "int8", "wanda", "average")


@dataclass(frozen=True)
class WeightAttack:
    kind: str
    steps: int = 0
    learning_rate: float = 0.0
    amount: float = 0.0  # wanda: sparsity; average: the other model's weight

    @property
    def label(self) -> str:
        if self.kind in ("finetune", "lora"):
            return f"{self.kind}:{self.steps}:{self.learning_rate:g}"
        if self.kind in ("wanda", "average"):
            return f"{self.kind}:{self.amount:g}"
        return self.kind


def parse_weight_attack(spec: str) -> WeightAttack:
    kind, *rest = spec.strip().split(":")
    if kind not in ATTACK_KINDS:
        raise ConfigError(f"weight attack {spec!r}: unknown; choose from {', '.join(ATTACK_KINDS)}")
    try:
        if kind in ("finetune", "lora"):
            steps, rate = int(rest[0]), float(rest[1]) if len(rest) > 1 else 1e-4
            if steps < 1 or not rate > 0:
                raise ValueError
            return WeightAttack(kind, steps=steps, learning_rate=rate)
        if kind in ("wanda", "average"):
            amount = float(rest[0]) if rest else 0.5
            if not 0 < amount < 1:
                raise ValueError
            return WeightAttack(kind, amount=amount)
    except (IndexError, ValueError):
        raise ConfigError(
            f"weight attack {spec!r}: expected finetune:STEPS[:LR], lora:STEPS[:LR], wanda:SPARSITY or "
            "average:WEIGHT (0 < SPARSITY, WEIGHT < 1)"
        ) from None
    if rest:
        raise ConfigError(f"weight attack {spec!r}: {kind} takes no parameters")
    return WeightAttack(kind)


def is_weight_spec(spec: str) -> bool:
    """Does this attack spec modify the weights (`finetune:...`, `int8`, `WEIGHT+TEXT`) rather than only text?"""
    kind = spec.strip().split("+", 1)[0].split(":", 1)[0]
    return kind in ATTACK_KINDS and kind != "none"


def parse_modification(spec: str) -> tuple[WeightAttack, Attack]:
    """`WEIGHT[+TEXT]`: a weight attack, and a text attack applied on top of its generations (default none)."""
    weight_spec, plus, text_spec = spec.strip().partition("+")
    if plus and not text_spec:
        raise ConfigError(
            f"attack {spec!r}: nothing after '+' (expected WEIGHT+TEXT, e.g. int8+word_substitution:0.2)"
        )
    return parse_weight_attack(weight_spec), parse_attack(text_spec or "none")


def token_blocks(tokenizer, texts: Sequence[str], block: int = 128):
    """Clean text packed into (n, block) token blocks, each text ended by EOS."""
    import torch

    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text)["input_ids"] + [tokenizer.eos_token_id])
    count = len(ids) // block
    if count < 1:
        raise ConfigError(f"weight attack: clean text holds {len(ids)} tokens, fewer than one block of {block}")
    return torch.tensor(ids[: count * block]).view(count, block)


def _train(model, blocks, steps: int, learning_rate: float, batch_size: int, seed: int) -> list[float]:
    """A plain AdamW loop (as in pretrain's reference recipe); returns the losses."""
    import torch

    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for _ in range(steps):
        rows = blocks[torch.randint(0, len(blocks), (batch_size,), generator=generator)]
        loss = model(input_ids=rows, labels=rows).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    return losses


def finetune(model, blocks, steps: int, learning_rate: float, batch_size: int = 16, seed: int = 0):
    attacked = copy.deepcopy(model)
    for parameter in attacked.parameters():
        parameter.requires_grad_(True)
    _train(attacked, blocks, steps, learning_rate, batch_size, seed)
    return attacked


def finetune_checkpoints(
    model, blocks, checkpoints: Sequence[int], learning_rate: float, batch_size: int = 16, seed=0
):
    """One fine-tuning run (one optimizer) yielding (steps, model) at each checkpoint: a fade curve."""
    import torch

    attacked = copy.deepcopy(model)
    for parameter in attacked.parameters():
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(attacked.parameters(), lr=learning_rate, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    done = 0
    for target in sorted(checkpoints):
        attacked.train()
        while done < target:
            rows = blocks[torch.randint(0, len(blocks), (batch_size,), generator=generator)]
            attacked(input_ids=rows, labels=rows).loss.backward()
            torch.nn.utils.clip_grad_norm_(attacked.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done += 1
        attacked.eval()
        yield target, attacked


def lora(model, blocks, steps: int, learning_rate: float, rank: int = 16, batch_size: int = 16, seed: int = 0):
    from peft import LoraConfig, get_peft_model

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets)
    wrapped = get_peft_model(copy.deepcopy(model), config)
    _train(wrapped, blocks, steps, learning_rate, batch_size, seed)
    return wrapped.merge_and_unload().eval()


def int8(model):
    import torch

    return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).float(), {torch.nn.Linear}, dtype=torch.qint8)


def dequantized(model, template):
    """A float copy of `template` carrying the weights a dynamically quantized `model` computes with."""
    import torch

    restored = copy.deepcopy(template)
    quantized = dict(model.named_modules())
    with torch.no_grad():
        for name, module in restored.named_modules():
            source = quantized.get(name)
            if isinstance(module, torch.nn.Linear) and source is not None and hasattr(source, "weight"):
                weight = source.weight
                weight = weight() if callable(weight) else weight
                if hasattr(weight, "dequantize"):
                    module.weight.copy_(weight.dequantize())
    return restored


def average(model, other, weight: float = 0.5):
    """(1 - weight) * model + weight * other, tensor by tensor (shapes must match)."""
    import torch

    attacked = copy.deepcopy(model)
    others = dict(other.named_parameters())
    with torch.no_grad():
        for name, parameter in attacked.named_parameters():
            if name not in others or others[name].shape != parameter.shape:
                raise ConfigError(f"average: the other model has no tensor {name} of shape {list(parameter.shape)}")
            parameter.mul_(1 - weight).add_(others[name].to(parameter.dtype), alpha=weight)
    return attacked


def apply_weight_attack(
    attack: WeightAttack,
    model,
    blocks=None,
    prune: Callable[[Any, float], None] | None = None,
    other=None,
    seed: int = 0,
):
    """The attacked copy of `model`; `blocks` (clean text) for finetune/lora, `prune(model, sparsity)` for
    wanda, `other` (an independently trained model) for average."""
    if attack.kind == "none":
        return copy.deepcopy(model)
    if attack.kind in ("finetune", "lora"):
        if blocks is None:
            raise ConfigError(f"{attack.label}: needs clean text")
        run = finetune if attack.kind == "finetune" else lora
        return run(model, blocks, attack.steps, attack.learning_rate, seed=seed)
    if attack.kind == "int8":
        return int8(model)
    if attack.kind == "wanda":
        if prune is None:
            raise ConfigError("wanda: needs the pruning function (pretrain.sparsity.posttrain.prune_wanda)")
        attacked = copy.deepcopy(model)
        prune(attacked, attack.amount)
        return attacked
    if other is None:
        raise ConfigError("average: needs an independently trained model of the same shape")
    return average(model, other, attack.amount)


def package_descriptions(min_chars: int = 200) -> list[str]:
    """Clean English text the pipeline's models never saw: the long descriptions of installed packages.

    The built-in corpus is Python's own documentation; these READMEs (PyPI metadata) are other
    authors' prose about other software, on this machine without a download.
    """
    from importlib import metadata

    texts, seen = [], set()
    for distribution in metadata.distributions():
        name = (distribution.metadata.get("Name") or "").lower()
        body = distribution.metadata.get_payload() or distribution.metadata.get("Description") or ""
        if name in seen or len(body) < min_chars:
            continue
        seen.add(name)
        texts.append(body)
    return sorted(texts)
