"""Issue 25 benchmark: does the weight mark (watermark embed, GaussMark) survive offline modification?

    python benchmarks/watermark_survival.py --quick   # < 5 minutes on 2 cores once the nano model is cached
    python benchmarks/watermark_survival.py           # the issue's full attack schedule, more texts
    python benchmarks/watermark_survival.py --model DIR

One key marks the model; the key holder's base weights are rebuilt from the release and the key. Then:
(a) quality: validation perplexity (human passages) of the marked vs the unmarked model;
(b) no false accusations: the text test on human passages and on texts of every unrelated model, and the
    white-box trace on >= 20 unrelated models of the same architecture (other seeds, other data):
    flags at 1% and 1e-4 with an exact binomial tail for the count;
(c) for every attack (full fine-tuning on clean text the model never saw, PEFT LoRA r=16 merged, int8
    dynamic quantization, 50% Wanda pruning, a 50/50 average with an independently trained model): the
    share of 200-token plain-generate texts detected at FPR 1e-4 and 1e-2 (also after text attacks applied on
    top, rows named WEIGHT+TEXT), their median statistic, the
    joint p-value of all texts (the black-box trace), and the white-box trace p-value (log10) and the share
    of the mark still in the weights; `fades` names the first fine-tuning checkpoint where the trace p-value
    rises above 1e-6 or where fewer than half the texts are detected at 1e-2.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

REPO = Path(__file__).resolve().parents[1]
if not __package__:  # `python benchmarks/watermark_survival.py`: use the repository root for the packages
    sys.path[0] = str(REPO)

QUICK_ATTACKS = ["none", "finetune:100:1e-4", "lora:100:1e-4", "int8", "wanda:0.5", "average:0.5"]
# text attacks applied on top of each weight attack's generations (watermark/attacks.py)
QUICK_TEXT_ATTACKS = ["word_substitution:0.2"]
FULL_TEXT_ATTACKS = ["word_substitution:0.2", "word_deletion:0.2", "crop:0.5"]
FULL_ATTACKS = [
    "none",
    "finetune:100:1e-4",
    "finetune:500:1e-4",
    "finetune:2000:1e-4",
    "finetune:500:1e-3",
    "lora:1000:1e-4",
    "int8",
    "wanda:0.5",
    "average:0.5",
]


def train_independent(config, tokenizer, texts, steps: int, seed: int, block: int = 128, batch_size: int = 16):
    """pretrain's reference nano recipe with another seed, on the marked model's `config` (its shape, pruned
    or not): an independently trained model of the same shape."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(copy.deepcopy(config))
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text)["input_ids"] + [tokenizer.eos_token_id])
    data = torch.tensor(ids[: (len(ids) // block) * block]).view(-1, block)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        rows = data[torch.randint(0, len(data), (batch_size,), generator=generator)]
        model(input_ids=rows, labels=rows).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    return model.eval()


def no_false_accusations(
    args, result, scorer, tokenizer, passages, model, key, mark, base, other_blocks, independent, prompts
) -> None:
    """(b): the text test on human passages and an independent model's texts; the white-box trace on
    unrelated models (random inits briefly trained on other text, the independent model, the unmarked base)."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from mintline.commands.watermark_weights import _plain_generate, measure_attack, text_statistics
    from watermark.stats import binomial_sf
    from watermark.trace import white_box
    from watermark.weight_attacks import finetune

    human_count = 200 if args.quick else 1000
    human_scores, human_joint = scorer.score_texts(tokenizer, passages[:human_count])
    human_p = np.array([s.p_value for s in human_scores])
    flagged_1e2, flagged_1e4 = int((human_p <= 1e-2).sum()), int((human_p <= 1e-4).sum())
    result["human_text"] = {
        "passages": len(human_p),
        "flagged_at_1e-2": flagged_1e2,
        "flagged_at_1e-4": flagged_1e4,
        "binomial_tail_at_1e-2": binomial_sf(flagged_1e2, len(human_p), 1e-2),
        "mean_statistic": float(np.mean([s.statistic for s in human_scores])),
        "sd_statistic": float(np.std([s.statistic for s in human_scores])),
        "joint_statistic": human_joint.statistic,
    }
    print(f"human text: {result['human_text']}")
    unrelated_p, unrelated_statistics = [], []
    unrelated_count = 20 if args.quick else 24
    per_model = prompts[: 2 if args.quick else 4]  # texts each unrelated model writes for the text test
    for seed in range(1, unrelated_count + 1):
        torch.manual_seed(seed)
        other = AutoModelForCausalLM.from_config(copy.deepcopy(model.config))
        other = finetune(other, other_blocks, steps=args.unrelated_steps, learning_rate=3e-3, batch_size=8, seed=seed)
        unrelated_p.append(white_box(other, key, mark, base=base)["p_value"])
        completions = _plain_generate(other, tokenizer, seed)(list(per_model), 200)
        unrelated_statistics += text_statistics(scorer, tokenizer, per_model, completions)
    unrelated_p.append(white_box(independent, key, mark, base=base)["p_value"])
    unrelated_p.append(white_box(model, key, mark, base=base)["p_value"])  # the unmarked base itself
    independent_text = measure_attack("independent", independent, scorer, tokenizer, key, mark, base, prompts[:16])[0]
    flagged = int(sum(p <= 1e-2 for p in unrelated_p))
    texts_flagged = int(sum(z >= 2.326347874 for z in unrelated_statistics))  # one-sided N(0,1) 1% quantile
    result["unrelated_models"] = {
        "models": len(unrelated_p),
        "flagged_at_1e-2": flagged,
        "flagged_at_1e-6": int(sum(p <= 1e-6 for p in unrelated_p)),
        "binomial_tail_at_1e-2": binomial_sf(flagged, len(unrelated_p), 1e-2),
        "min_p_value": float(min(unrelated_p)),
        "texts": len(unrelated_statistics),
        "texts_flagged_at_1e-2": texts_flagged,
        "texts_binomial_tail_at_1e-2": binomial_sf(texts_flagged, len(unrelated_statistics), 1e-2),
        "independent_model_texts_detected_at_1e-4": independent_text["detected_at_1e-4"],
        "independent_model_texts_joint_log10_p": independent_text["joint_log10_p"],
    }
    print(f"unrelated models: {result['unrelated_models']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", type=Path, help="model directory (default: the cached reference nano model)")
    parser.add_argument(
        "--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mintline"
    )
    parser.add_argument("--attacks", nargs="*", default=None, help="weight attacks (default: quick or full list)")
    parser.add_argument(
        "--text_attacks",
        nargs="*",
        default=None,
        help="text attacks applied on top of every weight attack's generations (default: quick or full list)",
    )
    parser.add_argument("--texts", type=int, default=None, help="200-token texts per attack (default 24 / 64)")
    parser.add_argument(
        "--relative_scale",
        type=float,
        default=None,
        help="noise scale (default: calibrated to embed's perplexity budget)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--skip_null", action="store_true", help="skip (b), the human-text and unrelated-model checks (attacks only)"
    )
    parser.add_argument("--unrelated_steps", type=int, default=3, help="training steps of each unrelated model")
    parser.add_argument("--independent_steps", type=int, default=None, help="steps of the averaged model (60 / 200)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    started = time.time()
    quick = args.quick
    from mintline.commands.watermark_weights import (
        embed_within_budget,
        measure_attack,
        text_attackers,
        validation_perplexity,
    )
    from mintline.pipeline.corpus import human_passages
    from pretrain.generation import load_model_and_tokenizer
    from pretrain.reference_model import save_reference_nano
    from pretrain.sparsity.posttrain import prune_wanda
    from watermark.evaluate import prompts_from
    from watermark.keys import generate_key, load_key
    from watermark.trace import calibrated_scorer
    from watermark.weight_attacks import (
        apply_weight_attack,
        dequantized,
        finetune_checkpoints,
        package_descriptions,
        parse_weight_attack,
        token_blocks,
    )
    from watermark.weights import EmbedConfig, restore_base

    model_dir = args.model or save_reference_nano(args.cache / "benchmark-watermark" / "nano-300", 300)
    model, tokenizer = load_model_and_tokenizer(model_dir)
    work = args.cache / "benchmark-watermark-survival"
    work.mkdir(parents=True, exist_ok=True)
    key_path = work / "key.json"
    generate_key(model_dir, key_path, overwrite=True)
    key = load_key(key_path)
    config = EmbedConfig(relative_scale=args.relative_scale)  # None: calibrated as `watermark embed` does
    passages = human_passages()
    marked = copy.deepcopy(model)
    mark, calibration = embed_within_budget(marked, tokenizer, key, config, passages[-300:-200])
    base = copy.deepcopy(marked)
    restore_base(base, key, mark)  # the key holder's view: release + key -> base
    result: dict = {
        "model": str(model_dir),
        "relative_scale": mark.relative_scale,
        "relative_scale_calibration": calibration and calibration["trials"],
        "weights_marked": mark.num_marked,
        "quick": quick,
    }

    validation = passages[-100:] if quick else passages[-200:]
    unmarked_ppl = validation_perplexity(model, tokenizer, validation)
    marked_ppl = validation_perplexity(marked, tokenizer, validation)
    result["quality"] = {
        "ppl_unmarked": unmarked_ppl,
        "ppl_marked": marked_ppl,
        "ppl_ratio": marked_ppl / unmarked_ppl,
    }
    print(f"quality: validation perplexity {unmarked_ppl:.1f} -> {marked_ppl:.1f} (x{marked_ppl / unmarked_ppl:.3f})")

    from mintline.commands.watermark_weights import _plain_generate

    scorer = calibrated_scorer(
        base,
        key,
        mark,
        tokenizer,
        prompts_from(passages[:400], 16),
        _plain_generate(base, tokenizer, 7),
        human_texts=passages[-432:-400],  # disjoint from the scored, validation and Wanda passages
    )

    clean = package_descriptions()
    split = len(clean) // 2
    blocks = token_blocks(tokenizer, clean[:split])  # the attacks' clean text; the rest trains unrelated models
    other_blocks = token_blocks(tokenizer, clean[split:])
    independent = train_independent(
        model.config,
        tokenizer,
        [*clean[split:], *passages[: len(passages) // 2]],
        args.independent_steps or (60 if quick else 200),
        1,
    )
    prompts = prompts_from(passages[400:], args.texts or (24 if quick else 48))
    if not args.skip_null:
        no_false_accusations(
            args, result, scorer, tokenizer, passages, model, key, mark, base, other_blocks, independent, prompts
        )

    # (c) attacks
    specs = args.attacks or (QUICK_ATTACKS if quick else FULL_ATTACKS)
    attacks = [parse_weight_attack(s) for s in specs]
    calibration = token_blocks(tokenizer, passages[-400:-200])[:32]
    rows = []

    on_top = text_attackers(
        args.text_attacks if args.text_attacks is not None else QUICK_TEXT_ATTACKS if quick else FULL_TEXT_ATTACKS,
        tokenizer,
        passages,
    )

    def measure(label: str, attacked, weights=None) -> None:
        t = time.time()
        measured = measure_attack(
            label, attacked, scorer, tokenizer, key, mark, base, prompts, weights, validation[:50], on_top
        )
        for row in measured:
            row["seconds"] = round(time.time() - t, 1)  # generation, trace and every text attack's scoring
            print(json.dumps(row), flush=True)
        rows.extend(measured)

    fine_lr = sorted({a.learning_rate for a in attacks if a.kind == "finetune"})
    for rate in fine_lr:
        points = sorted(a.steps for a in attacks if a.kind == "finetune" and a.learning_rate == rate)
        for steps, attacked in finetune_checkpoints(marked, blocks, points, rate):
            measure(f"finetune:{steps}:{rate:g}", attacked)
    for attack in attacks:
        if attack.kind == "finetune":
            continue
        other = independent if attack.kind == "average" else None
        prune = (lambda m, s: prune_wanda(m, calibration, s)) if attack.kind == "wanda" else None
        attacked = apply_weight_attack(attack, marked, blocks=blocks, prune=prune, other=other)
        weights = dequantized(attacked, marked) if attack.kind == "int8" else None
        measure(attack.label, attacked, weights)
    fades = {}
    for rate in fine_lr:
        curve = [  # the weight attack alone, not with a text attack on top (WEIGHT+TEXT)
            r
            for r in rows
            if r["attack"].startswith("finetune:") and "+" not in r["attack"] and r["attack"].endswith(f":{rate:g}")
        ]
        fades[f"finetune@{rate:g}"] = next(
            (r["attack"] for r in curve if r["trace_log10_p"] > -6 or r["detected_at_1e-2"] < 0.5), None
        )
    result["attacks"] = rows
    result["fades"] = fades
    result["seconds"] = round(time.time() - started, 1)
    print("\nattack                                  det@1e-4  median  joint log10p  trace log10p  retained  ppl")
    for r in rows:
        print(
            f"{r['attack']:<39} {r['detected_at_1e-4']:>8.2f} {r['median_statistic']:>7.2f} "
            f"{r['joint_log10_p']:>13.1f} {r['trace_log10_p']:>13.1f} {r['mark_retained']:>9.3f} {r['validation_ppl']:>6.1f}"
        )
    print(json.dumps(result, default=lambda v: None if isinstance(v, float) and not math.isfinite(v) else v))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
