"""Batched text generation with transformers' own `generate` (sampling, top-k/top-p, beams).

Later stages pass extra logits processors (the watermark) through `logits_processor`; the
generation path stays this one function.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pretrain.errors import ConfigError


@dataclass
class GenerationArguments:
    max_new_tokens: int = field(default=64, metadata={"help": "tokens to generate per prompt"})
    min_new_tokens: int = field(default=0, metadata={"help": "no end-of-text before this many new tokens (0 = off)"})
    do_sample: bool = field(default=True, metadata={"help": "sample (true) or decode greedily / by beam search (false)"})
    temperature: float = field(default=0.8, metadata={"help": "softmax temperature when sampling"})
    top_k: int = field(default=50, metadata={"help": "sample from the k most likely tokens (0 = off)"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling mass (1.0 = off)"})
    num_beams: int = field(default=1, metadata={"help": "beam search width (1 = no beam search)"})
    repetition_penalty: float = field(default=1.0, metadata={"help": "penalise tokens already generated (1.0 = off)"})
    batch_size: int = field(default=8, metadata={"help": "prompts generated together"})
    seed: int = field(default=0, metadata={"help": "random seed for sampling"})

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: must be >= 1, got {self.max_new_tokens}")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ValueError(f"min_new_tokens: must be in [0, max_new_tokens], got {self.min_new_tokens}")
        if self.temperature <= 0:
            raise ValueError(f"temperature: must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p: must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k: must be >= 0, got {self.top_k}")
        if self.num_beams < 1 or self.batch_size < 1:
            raise ValueError("num_beams and batch_size: must be >= 1")


def load_model_and_tokenizer(model_dir: str | Path, dtype=None):
    """Load a saved causal LM and its tokenizer from one directory, with plain transformers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ConfigError(f"{model_dir}: not a model directory (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    model.eval()
    return model, tokenizer


def generate_texts(
    model,
    tokenizer,
    prompts: Sequence[str],
    args: GenerationArguments | None = None,
    logits_processor=None,
    return_token_ids: bool = False,
):
    """Generate one continuation per prompt; returns the continuations (without the prompts)."""
    import torch
    from tqdm.auto import tqdm

    args = args or GenerationArguments()
    torch.manual_seed(args.seed)
    tokenizer.padding_side = "left"
    outputs: list = []
    batches = range(0, len(prompts), args.batch_size)
    for start in tqdm(batches, desc="generate", unit="batch"):
        batch = list(prompts[start : start + args.batch_size])
        encoded = tokenizer(batch, return_tensors="pt", padding=True)
        with torch.inference_mode():
            generated = model.generate(
                **encoded,
                max_new_tokens=args.max_new_tokens,
                min_new_tokens=args.min_new_tokens or None,
                do_sample=args.do_sample,
                temperature=args.temperature if args.do_sample else None,
                top_k=(args.top_k or None) if args.do_sample else None,
                top_p=args.top_p if args.do_sample else None,
                num_beams=args.num_beams,
                repetition_penalty=args.repetition_penalty,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                logits_processor=logits_processor,
            )
        new_tokens = generated[:, encoded["input_ids"].shape[1] :]
        for row in new_tokens:
            ids = [t for t in row.tolist() if t != tokenizer.pad_token_id]
            if tokenizer.eos_token_id in ids:
                ids = ids[: ids.index(tokenizer.eos_token_id)]
            outputs.append(ids if return_token_ids else tokenizer.decode(ids, skip_special_tokens=True))
    return outputs
