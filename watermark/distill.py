"""A mark that lives in the weights: distil the watermarked model into itself (Gu et al., 2024).

Anyone running the open weights calls plain `generate` without the processor, so a mark that
exists only in the processor is gone. Gu et al. ("On the Learnability of Watermarks for
Language Models", ICLR 2024) show a student can learn KGW's rule from a watermarked teacher.
Here the teacher is the model plus its own processor and the student starts as a copy of it:

* `logits` (default, KGW keys): on the teacher's own watermarked samples, the student is
  trained to match the teacher's *watermarked* next-token distribution at every position,
  softmax(logits + delta * green(context)), by KL divergence. Every position teaches the
  rule for its context, so far fewer samples are needed than by imitation.
* `samples`: plain language-model fine-tuning on the watermarked samples (works for any
  scheme, SynthID included; needs more data).

Then the student generates with no processor and the key detects it. To see how long the
mark survives "offline modification", the student is fine-tuned further on clean human text
and detection is measured after increasing numbers of steps; `fades_at_step` is the first
checkpoint where fewer than half the texts are detected at the 1% false-positive rate.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from watermark.detect import DetectionConfig, Detector
from watermark.errors import ConfigError
from watermark.keys import WatermarkKey

# generate(prompts, max_new_tokens, processor or None, model) -> token ids, exactly max_new_tokens each
GenerateWithModel = Callable[[Sequence[str], int, Any, Any], list[list[int]]]


@dataclass
class DistillConfig:
    method: Literal["auto", "logits", "samples"] = field(
        default="auto",
        metadata={
            "help": "logits (KL to the watermarked teacher; kgw keys), samples (LM loss on the teacher's "
            "marked samples; any scheme) or auto (logits for a kgw key, samples otherwise)"
        },
    )
    num_samples: int = field(default=512, metadata={"help": "watermarked teacher samples to train on"})
    sample_tokens: int = field(default=128, metadata={"help": "tokens per teacher sample"})
    steps: int = field(default=400, metadata={"help": "distillation optimiser steps"})
    train_batch_size: int = field(default=16, metadata={"help": "sequences per distillation step"})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate for distillation"})
    eval_samples: int = field(default=48, metadata={"help": "plain generations scored at each checkpoint"})
    eval_tokens: int = field(default=200, metadata={"help": "tokens per scored generation"})
    fade_steps: list[int] = field(
        default_factory=lambda: [0, 50, 100, 200, 400, 800], metadata={"help": "clean fine-tuning checkpoints"}
    )
    fade_learning_rate: float = field(default=1e-3, metadata={"help": "learning rate of the clean fine-tuning"})
    fade_block: int = field(default=128, metadata={"help": "tokens per clean training sequence"})
    train_seed: int = field(default=0, metadata={"help": "seed of the distillation and clean fine-tuning"})

    def __post_init__(self):
        for name in (
            "num_samples",
            "sample_tokens",
            "steps",
            "train_batch_size",
            "eval_samples",
            "eval_tokens",
            "fade_block",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0 or self.fade_learning_rate <= 0:
            raise ValueError("learning_rate and fade_learning_rate: must be > 0")
        if sorted(self.fade_steps) != list(self.fade_steps) or any(s < 0 for s in self.fade_steps):
            raise ValueError(f"fade_steps: must be increasing and >= 0, got {self.fade_steps}")


def _sequences(tokenizer, prompts: Sequence[str], completions: Sequence[Sequence[int]]):
    """(input ids, first completion position) per sample: the prompt is context, never a target."""
    rows = []
    for prompt, completion in zip(prompts, completions):
        prompt_ids = tokenizer(prompt)["input_ids"]
        rows.append((prompt_ids + list(completion), len(prompt_ids)))
    return rows


def _batch(rows, pad_id):
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    targets = torch.zeros((len(rows), width), dtype=torch.bool)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row, start) in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        attention[i, : len(row)] = 1
        targets[i, max(start, 1) : len(row)] = True  # positions whose token is learned
    return ids, attention, targets


def _green_bias(processor, ids, vocab: int):
    """delta * green(context) for every position's next token: (batch, length - 1, vocab)."""
    import torch

    h = processor.context_width
    batch, width = ids.shape
    padded = torch.cat([ids[:, :1].expand(batch, max(0, h - 1)), ids], dim=1).numpy()
    # context for predicting position t+1 is tokens t-h+1..t
    windows = np.lib.stride_tricks.sliding_window_view(padded[:, : width - 1 + h - 1], h, axis=1)
    bias = processor.bias_rows(np.ascontiguousarray(windows.reshape(-1, h)), vocab)
    return torch.from_numpy(bias).reshape(batch, width - 1, vocab)


def distill_step_loss(student, teacher, processor, ids, attention, targets, method: str):
    import torch
    import torch.nn.functional as F

    logits = student(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
    mask = targets[:, 1:]
    if method == "samples":
        nll = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
        return (nll * mask).sum() / mask.sum().clamp(min=1)
    with torch.no_grad():
        teacher_logits = teacher(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
        teacher_logits = teacher_logits + _green_bias(processor, ids, teacher_logits.shape[-1])
        target = torch.log_softmax(teacher_logits, dim=-1)
    kl = F.kl_div(torch.log_softmax(logits, dim=-1), target, log_target=True, reduction="none").sum(-1)
    return (kl * mask).sum() / mask.sum().clamp(min=1)


def detection_figures(detector: Detector, texts: Sequence[str]) -> dict[str, float]:
    results = detector.detect_texts(list(texts))
    p = np.array([r.p_value for r in results])
    z = np.array([r.z_score for r in results])
    return {
        "median_z": float(np.median(z)),
        "detected_at_1pct_fpr": float((p <= 1e-2).mean()),
        "detected_at_0.01pct_fpr": float((p <= 1e-4).mean()),
        "median_p_value": float(np.median(p)),
    }


def distill_watermark(
    model,
    tokenizer,
    key: WatermarkKey,
    tokenizer_dir: str | Path,
    prompts: Sequence[str],
    clean_texts: Sequence[str],
    generate: GenerateWithModel,
    config: DistillConfig | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Distil the mark into a copy of `model`, measure it, then measure its fade under clean fine-tuning."""
    import torch

    from watermark.processor import logits_processor_for

    config = config or DistillConfig()
    method = config.method if config.method != "auto" else ("logits" if key.scheme == "kgw" else "samples")
    if method == "logits" and key.scheme != "kgw":
        raise ConfigError(f"distill: method 'logits' needs a kgw key; use --method samples for {key.scheme}")
    if not prompts or not clean_texts:
        raise ConfigError("distill: needs prompts and clean texts")
    torch.manual_seed(config.train_seed)
    processor = logits_processor_for(key, tokenizer, vocab_size=model.config.vocab_size)
    detector = Detector([key], tokenizer_dir, DetectionConfig(min_tokens=1))
    decode = lambda rows: [tokenizer.decode(r, skip_special_tokens=True) for r in rows]  # noqa: E731
    eval_prompts = [prompts[i % len(prompts)] for i in range(config.eval_samples)]

    def measure(m) -> dict[str, float]:
        m.eval()
        return detection_figures(detector, decode(generate(eval_prompts, config.eval_tokens, None, m)))

    figures: dict[str, Any] = {"key_id": key.key_id, "method": method, "config": asdict(config)}
    figures["before"] = measure(model)
    teacher_prompts = [prompts[i % len(prompts)] for i in range(config.num_samples)]
    samples = generate(teacher_prompts, config.sample_tokens, processor, model)
    figures["teacher"] = detection_figures(detector, decode(samples[: config.eval_samples]))
    rows = _sequences(tokenizer, teacher_prompts, samples)

    student = copy.deepcopy(model)
    teacher = model.eval()
    student.train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 20) * max(0.05, 1 - s / config.steps)
    )
    generator = np.random.default_rng(config.train_seed)
    losses = []
    from tqdm.auto import tqdm

    for _ in tqdm(range(config.steps), desc="distill", unit="step"):
        chosen = generator.integers(0, len(rows), config.train_batch_size)
        ids, attention, targets = _batch([rows[i] for i in chosen], tokenizer.pad_token_id)
        loss = distill_step_loss(student, teacher, processor, ids, attention, targets, method)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    figures["distill_loss_first"], figures["distill_loss_last"] = (
        float(np.mean(losses[:10])),
        float(np.mean(losses[-10:])),
    )
    figures["after"] = measure(student)
    if out_dir is not None:
        model_dir = Path(out_dir) / "model"
        student.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        figures["model_dir"] = str(model_dir)
    figures["fade"] = fade_under_clean_finetuning(student, tokenizer, clean_texts, config, measure)
    figures["fades_at_step"] = next((p["steps"] for p in figures["fade"] if p["detected_at_1pct_fpr"] < 0.5), None)
    if out_dir is not None:
        (Path(out_dir) / "distillation.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return figures


def fade_under_clean_finetuning(
    student, tokenizer, clean_texts, config: DistillConfig, measure
) -> list[dict[str, Any]]:
    """Fine-tune a copy of the student on clean text; measure detection at each checkpoint."""
    import torch
    import torch.nn.functional as F

    ids: list[int] = []
    for text in clean_texts:
        ids.extend(tokenizer(text)["input_ids"] + [tokenizer.eos_token_id])
    blocks = len(ids) // config.fade_block
    if blocks < 1:
        raise ConfigError(f"distill: clean texts hold {len(ids)} tokens, fewer than one block of {config.fade_block}")
    data = torch.tensor(ids[: blocks * config.fade_block]).view(blocks, config.fade_block)
    model = copy.deepcopy(student)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.fade_learning_rate, weight_decay=0.0)
    generator = torch.Generator().manual_seed(config.train_seed)
    points, done = [], 0
    for target in config.fade_steps:
        model.train()
        losses = []
        while done < target:
            rows = data[torch.randint(0, blocks, (config.train_batch_size,), generator=generator)]
            logits = model(input_ids=rows).logits[:, :-1].float()
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            done += 1
        point = {"steps": target, **measure(model)}
        if losses:
            point["clean_loss"] = float(np.mean(losses[-10:]))
        points.append(point)
        if not math.isfinite(point["median_z"]):
            break
    return points
