"""The watermark stage of a run: a key for the model's tokenizer, marked samples, a detection check.

* The key (`watermark/key.json`, mode 0600) is made once per run directory and reused; it is
  never replaced silently (every text marked with it would become undetectable), so asking
  for other parameters in the same run directory is an error.
* Samples come from the aligned model through the same `generate_texts` path as
  `mintline generate --watermark_key`, with and without the mark, and are scored with the key
  and the tokenizer only, beside passages of held-out human text (the validation split).
* Optionally (`evaluate`, `distill`), the full robustness evaluation and the distillation of
  the mark into the weights run on the aligned model too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mintline import layout
from mintline.errors import MintlineError
from mintline.journal import Journal, atomic_write_text
from mintline.pipeline.corpus import human_passages_from_shards
from mintline.pipeline.stages import StageOutcome


class WatermarkCheckFailed(MintlineError):
    """The run's own marked samples were not detected: something in generation or keys is wrong."""

    exit_code = 1


@dataclass
class WatermarkStageConfig:
    scheme: Literal["kgw", "synthid", "gumbel"] = field(
        default=None,
        metadata={
            "help": "synthid, kgw or gumbel; unset: the run's existing key, else kgw when kgw parameters are "
            "given, else synthid (the default: README 'The text mark's price')"
        },
    )
    gamma: float = field(default=None, metadata={"help": "kgw green fraction (key default 0.25)"})
    delta: float = field(default=None, metadata={"help": "kgw bias (key default 2.5)"})
    seeding: Literal["lefthash", "selfhash"] = field(
        default=None, metadata={"help": "kgw seeding (key default lefthash)"}
    )
    context_width: int = field(default=None, metadata={"help": "kgw context width (key default 1)"})
    samples: int = field(default=16, metadata={"help": "watermarked samples generated from the aligned model"})
    max_new_tokens: int = field(default=200, metadata={"help": "tokens per sample"})
    # A sample the model ends after a handful of tokens carries too little evidence for any verdict
    # at a strict false-positive rate, so the run's demonstration samples hold off end-of-text.
    min_new_tokens: int = field(default=64, metadata={"help": "no sample ends before this many tokens"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the samples"})
    fpr: float = field(default=1e-4, metadata={"help": "false-positive rate of the detection verdict"})
    seed: int = field(default=0, metadata={"help": "seed for prompts and sampling"})
    evaluate: bool = field(default=False, metadata={"help": "also run the robustness/quality evaluation (minutes)"})
    eval_samples: int = field(default=100, metadata={"help": "evaluation: texts with and without the mark"})
    eval_lengths: list[int] = field(
        default_factory=lambda: [32, 64, 128, 256], metadata={"help": "evaluation: token lengths"}
    )
    distill: bool = field(default=False, metadata={"help": "also distil the mark into the weights (slow)"})
    distill_steps: int = field(default=400, metadata={"help": "distillation steps"})

    def __post_init__(self):
        if self.samples < 2 or self.max_new_tokens < 16:
            raise ValueError(
                f"samples and max_new_tokens: need >= 2 samples of >= 16 tokens, got {self.samples}, {self.max_new_tokens}"
            )
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ValueError(f"min_new_tokens: must be in [0, max_new_tokens], got {self.min_new_tokens}")

    def key_params(self) -> dict:
        names = {"kgw": ("gamma", "delta", "seeding", "context_width"), "gumbel": ("context_width",), "synthid": ()}
        chosen = names[self.scheme] if self.scheme else names["kgw"]  # unset: kgw's parameters imply kgw
        return {name: getattr(self, name) for name in chosen if getattr(self, name) is not None}


def ensure_key(tokenizer_dir: Path, stage_dir: Path, config: WatermarkStageConfig):
    """The run's key: made on first use, reused after, refused if the config now asks for another."""
    from watermark.errors import KeyFileError
    from watermark.keys import generate_key, load_key_for, scheme_for, validate_params

    key_path = stage_dir / "key.json"
    params = config.key_params()
    if not key_path.exists():
        generate_key(tokenizer_dir, key_path, scheme=config.scheme, **params)
    key = load_key_for(key_path, tokenizer_dir)
    # no scheme and no parameters named: the run's key as it is (a run made before the default changed
    # keeps its kgw key, so re-running it with the new default config never strands its marked text)
    scheme = config.scheme or (scheme_for(params) if params else key.scheme)
    if key.scheme != scheme or key.params != validate_params(scheme, params):
        raise KeyFileError(
            f"{key_path}: holds a {key.scheme} key with {key.params}; "
            "the stage asks for other parameters (use another run directory)"
        )
    return key


def run_watermark(config: WatermarkStageConfig, options, run_dir: Path) -> StageOutcome:
    base_model = layout.pretrained_model(run_dir)
    aligned = layout.aligned_model(run_dir)
    out = layout.stage_dir(run_dir, layout.WATERMARK)
    journal = Journal(run_dir)
    with journal.stage(
        "watermark",
        config=config,
        inputs={"aligned_model": aligned, "base_model": base_model},
        outputs=[out / "samples.jsonl", out / "detection.json"],
    ) as stage:
        if stage.skipped:
            return StageOutcome("watermark", stage.figures, skipped=True)
        out.mkdir(parents=True, exist_ok=True)
        key = ensure_key(base_model, out, config)
        figures = sample_and_detect(config, key, base_model, aligned, layout.prepared_data(run_dir), out)
        stage.figures.update(figures)
        if figures["marked"]["flagged"] == 0:
            raise WatermarkCheckFailed(
                f"watermark: none of {figures['marked']['texts']} marked samples was detected "
                f"(median z {figures['marked']['median_z']:.2f})"
            )
    text = (
        f"watermark: key {key.key_id} ({key.scheme}); detected {figures['marked']['flagged']}/{figures['marked']['texts']} "
        f"marked samples (median z {figures['marked']['median_z']:.1f}); flagged {figures['unmarked']['flagged']}/"
        f"{figures['unmarked']['texts']} unmarked and {figures['human']['flagged']}/{figures['human']['texts']} human texts"
    )
    return StageOutcome("watermark", stage.figures, text=text)


def sample_and_detect(
    config: WatermarkStageConfig, key, base_model: Path, aligned: Path, data_dir: Path, out: Path
) -> dict:
    from transformers import AutoTokenizer

    from alignment.stage import load_aligned
    from pretrain.generation import GenerationArguments, generate_texts
    from watermark.detect import DetectionConfig, detect_texts
    from watermark.processor import logits_processor_for

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    model = load_aligned(str(base_model), aligned)
    human = human_passages_from_shards(data_dir, words=150, limit=max(64, config.samples), seed=config.seed)
    if len(human) < 2:
        raise MintlineError("watermark: the validation split is too small to cut human passages from")
    prompts = [" ".join(human[i % len(human)].split()[:8]) for i in range(config.samples)]
    generation = GenerationArguments(
        max_new_tokens=config.max_new_tokens,
        min_new_tokens=config.min_new_tokens,
        temperature=config.temperature,
        top_k=0,
        top_p=1.0,
        seed=config.seed,
    )
    marked = generate_texts(
        model, tokenizer, prompts, generation, logits_processor=[logits_processor_for(key, tokenizer)]
    )
    plain = generate_texts(model, tokenizer, prompts, generation)

    detection = DetectionConfig(fpr=config.fpr)
    scores = {
        "marked": detect_texts(marked, key, base_model, detection, prompts=prompts),
        "unmarked": detect_texts(plain, key, base_model, detection, prompts=prompts),
        "human": detect_texts(human, key, base_model, detection),
    }
    atomic_write_text(
        out / "samples.jsonl",
        "".join(json.dumps({"prompt": p, "completion": t}) + "\n" for p, t in zip(prompts, marked)),
    )
    atomic_write_text(
        out / "detection.json",
        json.dumps({name: [r.to_dict() for r in results] for name, results in scores.items()}, indent=1),
    )
    figures = {"key_id": key.key_id, "scheme": key.scheme, "params": key.params, "fpr": config.fpr}
    for name, results in scores.items():
        figures[name] = {
            "texts": len(results),
            "flagged": sum(1 for r in results if r.watermarked),
            "insufficient_evidence": sum(1 for r in results if r.watermarked is None),
            "median_z": _median([r.z_score for r in results]),
            "median_tokens_scored": _median([r.num_tokens_scored for r in results]),
        }
    figures["detection_rate"] = figures["marked"]["flagged"] / max(1, figures["marked"]["texts"])
    figures["false_positives"] = figures["unmarked"]["flagged"] + figures["human"]["flagged"]
    if config.evaluate or config.distill:
        figures.update(evaluate_and_distill(config, key, model, tokenizer, base_model, human, out))
    return figures


def evaluate_and_distill(
    config: WatermarkStageConfig, key, model, tokenizer, tokenizer_dir: Path, passages, out: Path
) -> dict:
    """The full robustness/quality evaluation and the distillation, on the run's aligned model."""
    from pretrain.generation import GenerationArguments, make_generate
    from watermark.evaluate import EvaluationConfig, evaluate_watermark, perplexity_scorer, prompts_from

    generation = GenerationArguments(batch_size=50)
    figures: dict = {}
    if config.evaluate:
        report = evaluate_watermark(
            key,
            tokenizer_dir,
            prompts_from(passages, config.eval_samples),
            passages,
            make_generate(model, tokenizer, generation),
            EvaluationConfig(num_samples=config.eval_samples, lengths=config.eval_lengths),
            out / "evaluation",
            perplexity=perplexity_scorer(model, tokenizer),
            pad_id=tokenizer.pad_token_id or 0,
        )
        figures.update(report["summary"])
        figures["evaluation_report"], figures["evaluation_plot"] = report["report"], report["plot"]
    if config.distill:
        from watermark.distill import DistillConfig, distill_watermark

        if hasattr(model, "merge_and_unload"):  # a LoRA policy: distil into the merged weights
            model = model.merge_and_unload()

        def generate(prompts, max_new_tokens, processor, model_now):
            return make_generate(model_now, tokenizer, generation)(prompts, max_new_tokens, processor)

        distilled = distill_watermark(
            model,
            tokenizer,
            key,
            tokenizer_dir,
            prompts_from(passages, 512),
            passages,
            generate,
            # method auto: logit distillation needs KGW's green-list bias; other schemes learn from their samples
            DistillConfig(steps=config.distill_steps),
            out / "distilled",
        )
        figures.update(
            {
                "distill_median_z": distilled["after"]["median_z"],
                "distill_detected_at_0.01pct_fpr": distilled["after"]["detected_at_0.01pct_fpr"],
                "distill_fades_at_step": distilled["fades_at_step"],
                "distilled_model": distilled.get("model_dir"),
            }
        )
    return figures


def _median(values: list[float]) -> float:
    values = sorted(v for v in values if v == v)
    if not values:
        return float("nan")
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
