"""The watermark stage of a run: a key for the model's tokenizer, marked samples, a detection check.

The key (`watermark/key.json`, mode 0600) is made once per run directory and reused, so the
public key id written into the release's model card stays the same across re-runs. The
samples are generated from the aligned model through the same `generate_texts` path as
`mintline generate --watermark_key`, with and without the mark, and scored with the key and
the tokenizer only, beside passages of human text (the validation split): the figures say how
many marked samples are detected and how many unmarked or human texts are (falsely) flagged.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from mintline.errors import MintlineError
from mintline.journal import Journal, atomic_write_text
from mintline.pipeline.stages import StageOutcome, WatermarkStageConfig


class WatermarkCheckFailed(MintlineError):
    """The run's own marked samples were not detected: something in generation or keys is wrong."""

    exit_code = 1


def human_passages_from_shards(data_dir: Path, words: int, limit: int, seed: int) -> list[str]:
    passages = []
    for shard in sorted(data_dir.glob("validation-*.jsonl")):
        for line in shard.read_text(encoding="utf-8").splitlines():
            tokens = json.loads(line)["text"].split()
            passages.extend(" ".join(tokens[i : i + words]) for i in range(0, len(tokens) - words + 1, words))
    random.Random(seed).shuffle(passages)
    return passages[:limit]


def run_watermark(config: WatermarkStageConfig, options, run_dir: Path) -> StageOutcome:
    from alignment.stage import load_aligned
    from pretrain.generation import GenerationArguments, generate_texts
    from transformers import AutoTokenizer
    from watermark.detect import DetectionConfig, detect_texts
    from watermark.errors import WatermarkError
    from watermark.keys import generate_key, load_key
    from watermark.processor import logits_processor_for

    base_model = run_dir / "pretrain" / "model"
    aligned = run_dir / "align" / "model"
    out = run_dir / "watermark"
    key_path = out / "key.json"
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
        try:
            key = load_key(key_path)
            key.check_tokenizer(_tokenizer_digest(base_model), where=str(base_model))
            if key.scheme != config.scheme:
                raise WatermarkError("scheme changed")
        except WatermarkError:
            generate_key(base_model, key_path, scheme=config.scheme, overwrite=True)
            key = load_key(key_path)

        tokenizer = AutoTokenizer.from_pretrained(base_model)
        model = load_aligned(str(base_model), aligned)
        human = human_passages_from_shards(run_dir / "prepare" / "data", words=150, limit=max(64, config.samples), seed=config.seed)
        if len(human) < 2:
            raise MintlineError("watermark: the validation split is too small to cut human passages from")
        prompts = [" ".join(p.split()[:8]) for p in human[: config.samples]]
        prompts += [prompts[i % len(prompts)] for i in range(config.samples - len(prompts))]
        generation = GenerationArguments(
            max_new_tokens=config.max_new_tokens, temperature=config.temperature, top_k=0, top_p=1.0, seed=config.seed,
            repetition_penalty=1.0,
        )
        processor = logits_processor_for(key, tokenizer)
        marked = generate_texts(model, tokenizer, prompts, generation, logits_processor=[processor])
        plain = generate_texts(model, tokenizer, prompts, generation)

        detection = DetectionConfig(fpr=config.fpr)
        scores = {
            "marked": detect_texts(marked, key, base_model, detection, prompts=prompts),
            "unmarked": detect_texts(plain, key, base_model, detection, prompts=prompts),
            "human": detect_texts(human, key, base_model, detection),
        }
        with open(out / "samples.jsonl.tmp", "w", encoding="utf-8") as handle:
            for prompt, text in zip(prompts, marked):
                handle.write(json.dumps({"prompt": prompt, "completion": text}) + "\n")
        (out / "samples.jsonl.tmp").replace(out / "samples.jsonl")
        atomic_write_text(
            out / "detection.json",
            json.dumps({name: [r.to_dict() for r in results] for name, results in scores.items()}, indent=1),
        )
        figures = {"key_id": key.key_id, "scheme": key.scheme, "params": key.params, "fpr": config.fpr}
        for name, results in scores.items():
            decided = [r for r in results if r.watermarked is not None]
            figures[name] = {
                "texts": len(results),
                "flagged": sum(1 for r in results if r.watermarked),
                "insufficient_evidence": len(results) - len(decided),
                "median_z": _median([r.z_score for r in results]),
                "median_tokens_scored": _median([r.num_tokens_scored for r in results]),
            }
        figures["detection_rate"] = figures["marked"]["flagged"] / max(1, figures["marked"]["texts"])
        figures["false_positives"] = figures["unmarked"]["flagged"] + figures["human"]["flagged"]
        stage.figures.update(figures)
        if figures["marked"]["flagged"] == 0:
            raise WatermarkCheckFailed(
                f"watermark: none of {len(marked)} marked samples was detected (median z {figures['marked']['median_z']:.2f})"
            )
    text = (
        f"watermark: key {key.key_id} ({key.scheme}); detected {figures['marked']['flagged']}/{figures['marked']['texts']} "
        f"marked samples (median z {figures['marked']['median_z']:.1f}); flagged {figures['unmarked']['flagged']}/"
        f"{figures['unmarked']['texts']} unmarked and {figures['human']['flagged']}/{figures['human']['texts']} human texts"
    )
    return StageOutcome("watermark", stage.figures, text=text)


def _tokenizer_digest(directory: Path) -> str:
    from watermark.keys import tokenizer_digest

    return tokenizer_digest(directory)[0]


def _median(values: list[float]) -> float:
    values = sorted(v for v in values if v == v)
    if not values:
        return float("nan")
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
