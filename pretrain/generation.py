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
    do_sample: bool = field(
        default=True, metadata={"help": "sample (true) or decode greedily / by beam search (false)"}
    )
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


@dataclass
class ModelLocation:
    """Where a saved model's parts are: a full model directory, or a PEFT adapter and its base."""

    model_dir: Path
    base_dir: Path | None = None  # set for an adapter
    tokenizer_dir: Path | None = None

    @property
    def is_adapter(self) -> bool:
        return self.base_dir is not None


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def locate_model(model_dir: str | Path, base_model: str | Path | None = None) -> ModelLocation:
    """A model directory, or a PEFT adapter directory resolved to its base model.

    An adapter's base is `base_model` when given, else its adapter_config's
    `base_model_name_or_path`: a relative path is tried against the adapter directory first (a
    release bundle records its base bundle that way) and then against the working directory (the
    align stage records `runs/<name>/pretrain/model`). Nothing is fetched from a hub.
    """
    model_dir = Path(model_dir)
    if (model_dir / "config.json").is_file():
        if base_model is not None:
            raise ConfigError(f"base_model: {model_dir} is a full model (config.json), not an adapter")
        return ModelLocation(model_dir, tokenizer_dir=model_dir)
    adapter_config = model_dir / "adapter_config.json"
    if not adapter_config.is_file():
        raise ConfigError(
            f"{model_dir}: not a model directory (no config.json) nor a PEFT adapter (no adapter_config.json)"
        )
    if base_model is not None:
        base = Path(base_model)
        if not (base / "config.json").is_file():
            raise ConfigError(f"base_model: {base} is not a model directory (no config.json)")
    else:
        base = _adapter_base(model_dir, adapter_config)
    has_tokenizer = any((model_dir / name).is_file() for name in TOKENIZER_FILES)
    return ModelLocation(model_dir, base_dir=base, tokenizer_dir=model_dir if has_tokenizer else base)


def _adapter_base(model_dir: Path, adapter_config: Path) -> Path:
    import json

    try:
        recorded = json.loads(adapter_config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise ConfigError(f"{adapter_config}: not a readable adapter config ({exc})") from None
    if not isinstance(recorded, str) or not recorded:
        raise ConfigError(f"{adapter_config}: names no base model; pass --base_model DIR")
    path = Path(recorded).expanduser()
    candidates = [path] if path.is_absolute() else [model_dir / path, path]
    for candidate in candidates:
        if (candidate / "config.json").is_file():
            return candidate
    tried = " or ".join(str(c) for c in dict.fromkeys(candidates))
    raise ConfigError(
        f"{model_dir}: the adapter's base model {recorded!r} is not a model directory here "
        f"(tried {tried}); pass --base_model DIR"
    )


def load_model_and_tokenizer(model_dir: str | Path, dtype=None, base_model: str | Path | None = None):
    """Load a saved causal LM (or a PEFT adapter on its base, merged) and its tokenizer, with plain
    transformers and PEFT."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    location = locate_model(model_dir, base_model)
    tokenizer = AutoTokenizer.from_pretrained(location.tokenizer_dir)
    if location.is_adapter:
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(location.base_dir, dtype=dtype)
        # merged: generation runs as fast as on a plain model, and callers see a plain model
        model = PeftModel.from_pretrained(base, location.model_dir).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(location.model_dir, dtype=dtype)
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


def make_generate(model, tokenizer, generation: GenerationArguments):
    """generate(prompts, max_new_tokens, processor) -> token ids of exactly max_new_tokens each.

    EOS and padding are suppressed so every text reaches the lengths the evaluation measures;
    sampling settings come from GenerationArguments. The watermark processor goes through
    the one generation path (`generate_texts`).
    """
    import dataclasses

    from transformers import LogitsProcessorList, SuppressTokensLogitsProcessor

    suppressed = sorted({t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None})

    def generate(prompts, max_new_tokens, processor):
        processors = [SuppressTokensLogitsProcessor(suppressed)] + ([processor] if processor is not None else [])
        args = dataclasses.replace(generation, max_new_tokens=max_new_tokens)
        return generate_texts(
            model,
            tokenizer,
            list(prompts),
            args,
            logits_processor=LogitsProcessorList(processors),
            return_token_ids=True,
        )

    return generate
