"""Issue 5 benchmark: watermark cost, detection speed, robustness, and a mark distilled into the weights.

    python benchmarks/watermark.py --quick        # < 5 minutes on 2 cores once the model is cached
    python benchmarks/watermark.py                # more samples, repeats, and a longer distillation
    python benchmarks/watermark.py --model DIR    # a model of your own (save_pretrained dir with tokenizer)

In one run, each figure against its baseline measured in the same run:
(a) generation tokens/s with the keyed KGW processor vs plain `generate`, interleaved A-B-B-A pairs, the
    slowdown being the median of the per-pair time ratios (also transformers' own integer-key KGW and our
    self-hash, for reference);
(b) detection tokens/s on CPU from token ids and from text (tokenisation included), key + tokenizer only,
    vs transformers' WatermarkDetector on a subset;
(c) TPR at 1% FPR at 200 tokens, after 30% word deletion and after 50% word substitution (exact p-value
    threshold), ROC AUC, the FPR measured on >= 1,000 human passages, and the quality cost
    (perplexity ratio under the model itself, distinct-2);
(d) distillation: plain generation from the distilled weights, detected with the key, and its fade under
    further clean fine-tuning.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

REPO = Path(__file__).resolve().parents[1]
if not __package__:  # `python benchmarks/watermark.py`: this folder would shadow the packages; use the repository root
    sys.path[0] = str(REPO)


def generation_speed(model, tokenizer, key, prompts, tokens: int, repeats: int) -> dict:
    """Interleaved A-B-B-A timing of plain vs watermarked generate; ratios per adjacent pair."""
    import torch
    from transformers import LogitsProcessorList, SuppressTokensLogitsProcessor, WatermarkingConfig

    from watermark.keys import WatermarkKey
    from watermark.processor import logits_processor_for

    encoded = tokenizer(prompts, return_tensors="pt", padding=True)
    suppress = SuppressTokensLogitsProcessor([tokenizer.eos_token_id, tokenizer.pad_token_id])
    selfhash = WatermarkKey(
        key.secret,
        "kgw",
        {**key.params, "seeding": "selfhash", "context_width": 3},
        key.tokenizer_digest,
        key.vocab_size,
    )
    variants = {
        "plain": {"logits_processor": LogitsProcessorList([suppress])},
        "keyed_kgw": {
            "logits_processor": LogitsProcessorList(
                [suppress, logits_processor_for(key, tokenizer, model.config.vocab_size)]
            )
        },
        "transformers_kgw": {
            "logits_processor": LogitsProcessorList([suppress]),
            "watermarking_config": WatermarkingConfig(greenlist_ratio=key.params["gamma"], bias=key.params["delta"]),
        },
        "keyed_kgw_selfhash3": {
            "logits_processor": LogitsProcessorList(
                [suppress, logits_processor_for(selfhash, tokenizer, model.config.vocab_size)]
            )
        },
    }

    def run(name: str) -> float:
        torch.manual_seed(0)
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                **encoded,
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=True,
                top_k=50,
                top_p=0.95,
                temperature=0.8,
                pad_token_id=tokenizer.pad_token_id,
                **variants[name],
            )
        assert out.shape[1] - encoded["input_ids"].shape[1] == tokens
        return time.perf_counter() - start

    for name in variants:  # warm-up: caches, allocator, lazy imports
        run(name)
    times = {name: [] for name in variants}
    ratios = {name: [] for name in variants if name != "plain"}
    for r in range(repeats):
        # the target's pair every round; the reference variants every other round (they only give context)
        for name in ratios if r % 2 == 0 else ["keyed_kgw"]:
            order = ("plain", name) if (r // 2) % 2 == 0 else (name, "plain")  # A-B then B-A: drift cancels
            measured = {n: run(n) for n in order}
            ratios[name].append(measured[name] / measured["plain"])
            for n, t in measured.items():
                times[n].append(t)
    generated = tokens * len(prompts)
    figures = {f"{name}_tokens_per_s": generated / statistics.median(ts) for name, ts in times.items()}
    figures.update({f"{name}_slowdown": statistics.median(rs) - 1.0 for name, rs in ratios.items()})
    figures["pairs"] = len(ratios["keyed_kgw"])
    # a second, low-noise estimate: the processor's own time per step against a plain step
    processor = variants["keyed_kgw"]["logits_processor"][1]
    spent = []

    def timed(input_ids, scores):
        start = time.perf_counter()
        out = processor(input_ids, scores)
        spent.append(time.perf_counter() - start)
        return out

    variants["timed"] = {"logits_processor": LogitsProcessorList([suppress, timed])}
    run("timed")
    figures["processor_time_fraction"] = sum(spent) / statistics.median(times["plain"])
    return figures


def detection_speed(key, tokenizer_dir: Path, texts: list[str], baseline_tokens: int) -> dict:
    """Tokens/s of detection from ids and from text (best of 3), vs transformers' WatermarkDetector."""
    import numpy as np

    from watermark.detect import Detector

    detector = Detector([key], tokenizer_dir)
    start = time.perf_counter()
    encoded = detector.tokenizer.encode(texts, offsets=False)
    tokenize_s = time.perf_counter() - start
    sequences = [ids for ids, _ in encoded]
    total = int(sum(len(s) for s in sequences))
    id_times, text_times = [], []
    for _ in range(3):
        start = time.perf_counter()
        detector.detect_token_ids(sequences)
        id_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        detector.detect_texts(texts)
        text_times.append(time.perf_counter() - start)
    figures = {
        "tokens": total,
        "texts": len(texts),
        "detect_tokens_per_s": total / min(id_times),
        "detect_text_tokens_per_s": total / min(text_times),
        "tokenize_tokens_per_s": total / tokenize_s,
    }
    # baseline: transformers' detector (one green-list draw per distinct n-gram, in Python) on a subset
    import torch
    from transformers import LlamaConfig, WatermarkDetector, WatermarkingConfig

    from watermark.processor import KeyedWatermarkLogitsProcessor

    subset, count = [], 0
    for ids in sequences:
        if len(ids) >= 64 and count < baseline_tokens:
            subset.append(ids[:64])
            count += 64
    config = LlamaConfig(vocab_size=key.vocab_size, bos_token_id=1)
    theirs = WatermarkDetector(
        config, "cpu", WatermarkingConfig(greenlist_ratio=key.params["gamma"]), ignore_repeated_ngrams=True
    )
    theirs.processor = KeyedWatermarkLogitsProcessor(key, key.vocab_size)
    batch = torch.tensor(np.stack(subset))
    start = time.perf_counter()
    theirs(batch, return_dict=True)
    figures["transformers_detector_tokens_per_s"] = count / (time.perf_counter() - start)
    figures["detect_speedup_vs_transformers"] = (
        figures["detect_tokens_per_s"] / figures["transformers_detector_tokens_per_s"]
    )
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--model", type=Path, help="model directory (default: train a nano model on the built-in corpus)"
    )
    parser.add_argument(
        "--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mintline"
    )
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "benchmarks" / "watermark")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: decoding a small model is latency-bound)"
    )
    parser.add_argument("--delta", type=float, default=None, help="KGW bias (default: the key default)")
    parser.add_argument("--gamma", type=float, default=None, help="KGW green fraction (default: the key default)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    quick = args.quick
    started = time.time()
    from mintline.pipeline.corpus import human_passages
    from pretrain.generation import GenerationArguments, load_model_and_tokenizer, make_generate
    from pretrain.reference_model import save_reference_nano
    from watermark.distill import DistillConfig, distill_watermark
    from watermark.evaluate import EvaluationConfig, evaluate_watermark, perplexity_scorer, prompts_from
    from watermark.keys import generate_key, load_key

    model_dir = args.model or save_reference_nano(args.cache / "benchmark-watermark" / "nano-300", 300)
    args.out.mkdir(parents=True, exist_ok=True)
    key_path = args.out / "key.json"
    if key_path.exists():
        key_path.unlink()
    params = {k: v for k, v in (("gamma", args.gamma), ("delta", args.delta)) if v is not None}
    generate_key(model_dir, key_path, scheme="kgw", **params)  # this benchmark measures KGW (issue 5)
    key = load_key(key_path)
    model, tokenizer = load_model_and_tokenizer(model_dir)
    passages = human_passages(limit=3000 if quick else 6000)
    print(f"model {model_dir}; key {key.key_id} {key.params}; {len(passages)} human passages", flush=True)

    speed = generation_speed(
        model, tokenizer, key, prompts_from(passages, 16), 128 if quick else 200, 8 if quick else 16
    )
    print("generation:", json.dumps({k: round(v, 4) for k, v in speed.items()}), flush=True)

    corpus = passages * (1 if quick else 2)
    detection = detection_speed(key, model_dir, corpus, 20_000 if quick else 60_000)
    print("detection:", json.dumps({k: round(v, 1) for k, v in detection.items()}), flush=True)

    samples = 100 if quick else 300
    generate = make_generate(model, tokenizer, GenerationArguments(batch_size=50))
    evaluation = evaluate_watermark(
        key,
        model_dir,
        prompts_from(passages, samples),
        passages[:2000] if quick else passages,
        generate,
        EvaluationConfig(
            num_samples=samples,
            lengths=[200],
            attacks=["none", "word_deletion:0.3", "word_substitution:0.5"],
            bootstrap=200 if quick else 1000,
        ),
        args.out / "evaluation",
        perplexity=perplexity_scorer(model, tokenizer),
        pad_id=tokenizer.pad_token_id,
    )
    table = {row["attack"]: row for row in evaluation["table"]}
    print(
        "robustness:",
        json.dumps(
            {
                a: {k: r[k] for k in ("tpr_at_0.01", "tpr_at_0.01_ci", "auc", "median_z_marked")}
                for a, r in table.items()
            }
        ),
        flush=True,
    )
    print("human:", json.dumps(evaluation["human"]), "quality:", json.dumps(evaluation["quality"]), flush=True)

    distill_config = (
        DistillConfig(
            num_samples=128,
            sample_tokens=64,
            steps=60,
            learning_rate=2e-3,
            eval_samples=16,
            eval_tokens=128,
            fade_steps=[0, 25, 50, 100],
            fade_block=128,
        )
        if quick
        else DistillConfig(
            num_samples=512,
            sample_tokens=128,
            steps=400,
            eval_samples=48,
            eval_tokens=200,
            fade_steps=[0, 25, 50, 100, 200, 400, 800],
        )
    )

    def generate_with(prompts, max_new_tokens, processor, model_now):
        return make_generate(model_now, tokenizer, GenerationArguments(batch_size=64))(
            prompts, max_new_tokens, processor
        )

    distilled = distill_watermark(
        model,
        tokenizer,
        key,
        model_dir,
        prompts_from(passages, 1000),
        passages,
        generate_with,
        distill_config,
        args.out / "distilled",
    )
    print(
        "distillation:",
        json.dumps({k: distilled[k] for k in ("before", "teacher", "after", "fade", "fades_at_step")}),
        flush=True,
    )

    human = evaluation["human"]
    result = {
        "generation_slowdown": round(speed["keyed_kgw_slowdown"], 4),
        "generation_processor_time_fraction": round(speed["processor_time_fraction"], 4),
        "generation_pairs": speed["pairs"],
        "generation_tokens_per_s_plain": round(speed["plain_tokens_per_s"], 1),
        "generation_tokens_per_s_marked": round(speed["keyed_kgw_tokens_per_s"], 1),
        "transformers_kgw_slowdown": round(speed["transformers_kgw_slowdown"], 4),
        "selfhash3_slowdown": round(speed["keyed_kgw_selfhash3_slowdown"], 4),
        "detect_tokens_per_s": round(detection["detect_tokens_per_s"]),
        "detect_text_tokens_per_s": round(detection["detect_text_tokens_per_s"]),
        "detect_speedup_vs_transformers": round(detection["detect_speedup_vs_transformers"], 1),
        "tpr_at_1pct_fpr_200": table["none"]["tpr_at_0.01"],
        "tpr_deletion_30": table["word_deletion:0.3"]["tpr_at_0.01"],
        "tpr_substitution_50": table["word_substitution:0.5"]["tpr_at_0.01"],
        "auc_substitution_50": round(table["word_substitution:0.5"]["auc"], 4),
        "human_passages": human["passages"],
        "human_fpr_at_1e-4": human["fpr_at_0.0001"]["rate"],
        "human_fpr_at_1e-2": human["fpr_at_0.01"]["rate"],
        "perplexity_ratio": round(evaluation["quality"]["perplexity_ratio"], 3),
        "distinct_2_marked_vs_plain": [
            round(evaluation["quality"]["distinct_2_marked"], 3),
            round(evaluation["quality"]["distinct_2_unmarked"], 3),
        ],
        "distill_detected_at_1e-4": distilled["after"]["detected_at_0.01pct_fpr"],
        "distill_median_z": round(distilled["after"]["median_z"], 2),
        "distill_before_median_z": round(distilled["before"]["median_z"], 2),
        "distill_fades_at_step": distilled["fades_at_step"],
        "gamma": key.params["gamma"],
        "delta": key.params["delta"],
        "quick": quick,
        "seconds": round(time.time() - started, 1),
    }
    (args.out / "summary.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
