"""Issue 25 benchmark: the text mark's price, perplexity ratio vs detection at 200 tokens, per scheme and strength.

    python -m benchmarks.watermark_tradeoff --quick                 # nano reference model, < 5 minutes
    python -m benchmarks.watermark_tradeoff --preset tiny --steps 300   # a larger preset, same recipe
    python -m benchmarks.watermark_tradeoff --model DIR             # any save_pretrained model with its tokenizer

For every variant (KGW over delta and gamma, SynthID tournament over depth, Gumbel/EXP sampling) in one run:
the perplexity ratio -- the marked completions' perplexity under the unmarked model over the unmarked
completions' (geometric means, with a bootstrap interval) -- beside TPR at 1% and at 1e-4 FPR at 200
tokens (exact p-values, text decoded and re-tokenised as a user would detect it), the FPR on unmarked
samples and on human passages, and TPR after 50% word substitution. The baseline is the model's own
plain sampling with the same settings; a second plain set (another seed) gives the noise floor of the
ratio. Sampling is the pipeline's (temperature 1, no top-k/top-p) unless --sampling benchmark
(temperature 0.8, top-k 50, top-p 0.95, the robustness benchmark's). Writes tradeoff.json and
tradeoff.png; ends with one JSON line.
"""

from __future__ import annotations

import argparse
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
if not __package__:  # `python benchmarks/watermark_tradeoff.py`: this folder would shadow the packages
    sys.path[0] = str(REPO)

TARGET_RATIO, TARGET_TPR = 1.10, 0.98


def reference_model(out: Path, preset: str, steps: int) -> Path:
    """The reference recipe (pretrain/reference_model.py: packed blocks, AdamW 3e-3, one-cycle) for any preset.

    train_reference_nano fixes the preset to nano; the larger model here must differ only in size,
    so the recipe is repeated with `preset` instead. Kept in `out` once trained.
    """
    if (out / "config.json").is_file():
        return out
    if preset == "nano":
        from pretrain.reference_model import save_reference_nano

        return save_reference_nano(out, steps)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pretrain.corpus.builtin import iter_builtin_corpus
    from pretrain.presets import build_config
    from pretrain.tokenizer import TokenizerConfig, save_tokenizer, train_tokenizer

    documents = [d.text for d in iter_builtin_corpus()]
    save_tokenizer(train_tokenizer(documents, TokenizerConfig(vocab_size=4096)), out / "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer")
    torch.manual_seed(0)
    config = build_config(
        preset, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    )
    model = AutoModelForCausalLM.from_config(config)
    ids: list[int] = []
    for text in documents:
        ids.extend(tokenizer(text)["input_ids"] + [tokenizer.eos_token_id])
    block, batch_size = 128, 16
    data = torch.tensor(ids[: (len(ids) // block) * block]).view(-1, block)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for step in range(steps):
        rows = data[torch.randint(0, len(data), (batch_size,), generator=generator)]
        loss = model(input_ids=rows, labels=rows).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == steps - 1:
            print(f"train {preset} step {step}: loss {loss.item():.3f}", flush=True)
    model.eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def variants(quick: bool) -> list[tuple[str, dict]]:
    """(scheme, params) of every point on the curve; keys record all their parameters."""
    deltas = [0.5, 1.0, 1.5, 2.0, 2.5]
    points: list[tuple[str, dict]] = [("kgw", {"gamma": 0.25, "delta": d}) for d in deltas]
    if quick:
        return points + [("synthid", {"ngram_len": 5, "depth": d}) for d in [1, 4, 30]] + [("gumbel", {})]
    points += [("kgw", {"gamma": 0.5, "delta": d}) for d in [1.0, 2.0]]
    points += [("synthid", {"ngram_len": 5, "depth": d}) for d in [1, 2, 4, 8, 16, 30]]
    points += [("synthid", {"ngram_len": 3, "depth": 30})]
    points += [("gumbel", {"context_width": w}) for w in [2, 4]]
    return points


def label(scheme: str, params: dict) -> str:
    if scheme == "kgw":
        return f"kgw g{params['gamma']:g} d{params['delta']:g}"
    if scheme == "synthid":
        return f"synthid n{params['ngram_len']} m{params['depth']}"
    return f"{scheme} " + " ".join(f"{k}={v}" for k, v in params.items())


def log_ppl_ratio(marked, plain, rng, resamples: int = 1000) -> tuple[float, list[float]]:
    """exp(mean log ppl marked - mean log ppl plain), with a percentile bootstrap interval."""
    import numpy as np

    marked, plain = np.log(np.asarray(marked)), np.log(np.asarray(plain))
    point = float(np.exp(marked.mean() - plain.mean()))
    draws = [
        marked[rng.integers(0, len(marked), len(marked))].mean()
        - plain[rng.integers(0, len(plain), len(plain))].mean()
        for _ in range(resamples)
    ]
    return point, [float(np.exp(np.percentile(draws, 2.5))), float(np.exp(np.percentile(draws, 97.5)))]


def measure_model(model_dir: Path, args, out: Path) -> dict:
    """The whole curve for one model: every variant against the same plain samples."""
    import numpy as np

    from mintline.pipeline.corpus import human_passages
    from pretrain.generation import GenerationArguments, load_model_and_tokenizer, make_generate
    from watermark.attacks import Attacker, parse_attack
    from watermark.detect import DetectionConfig, Detector
    from watermark.evaluate import perplexity_scorer, prompts_from
    from watermark.keys import default_params, generate_key, load_key
    from watermark.processor import logits_processor_for

    model, tokenizer = load_model_and_tokenizer(model_dir)
    sampling = (
        {"temperature": 1.0, "top_k": 0, "top_p": 1.0}
        if args.sampling == "pipeline"
        else {"temperature": 0.8, "top_k": 50, "top_p": 0.95}
    )
    generate = make_generate(model, tokenizer, GenerationArguments(batch_size=args.batch_size, **sampling))
    perplexity = perplexity_scorer(model, tokenizer)
    passages = human_passages(limit=2000 if args.quick else 4000)
    prompts = prompts_from(passages, args.samples)
    tokens = args.tokens
    decode = lambda rows: [tokenizer.decode(r, skip_special_tokens=True) for r in rows]  # noqa: E731
    rng = np.random.default_rng(0)

    started = time.time()
    plain_ids = generate(prompts, tokens, None)
    plain_ppl = perplexity(prompts, plain_ids)
    plain_seconds = time.time() - started
    import torch

    torch.manual_seed(1)  # a second plain set from another seed: the ratio's noise floor
    from dataclasses import replace

    other = make_generate(
        model, tokenizer, replace(GenerationArguments(batch_size=args.batch_size, **sampling), seed=1)
    )
    floor, floor_ci = log_ppl_ratio(perplexity(prompts, other(prompts, tokens, None)), plain_ppl, rng)
    print(
        f"{model_dir.name}: {len(prompts)} plain samples of {tokens} tokens in {plain_seconds:.0f}s, "
        f"perplexity {math.exp(np.mean(np.log(plain_ppl))):.2f}; plain/plain ratio {floor:.3f} {floor_ci}",
        flush=True,
    )
    pool = sorted({w for text in passages for w in text.split() if w.isalpha() and len(w) < 16})
    keys_dir = out / "keys"
    keys_dir.mkdir(parents=True, exist_ok=True)
    attack = parse_attack("word_substitution:0.5")
    rows = []
    points = variants(args.quick)
    if args.variants:
        wanted = [w.strip() for w in args.variants.split(",")]
        points = [
            p for p in points if any(label(p[0], {**default_params(p[0]), **p[1]}).startswith(w) for w in wanted)
        ]
    from watermark.keys import DEFAULT_SCHEME

    default_point = (DEFAULT_SCHEME, default_params(DEFAULT_SCHEME))
    for scheme, params in points:
        full = {**default_params(scheme), **params}
        if (scheme, full) == default_point:
            break
    else:
        points.append((DEFAULT_SCHEME, {}))
    for index, (scheme, params) in enumerate(points):
        started = time.time()
        key_path = keys_dir / f"{index}.json"
        key_path.unlink(missing_ok=True)
        generate_key(model_dir, key_path, scheme=scheme, **params)
        key = load_key(key_path)
        processor = logits_processor_for(key, tokenizer, vocab_size=model.config.vocab_size)
        marked_ids = generate(prompts, tokens, processor)
        ratio, ratio_ci = log_ppl_ratio(perplexity(prompts, marked_ids), plain_ppl, rng)
        # diversity: 8 completions of one prompt through the same key (a deterministic sampler repeats itself)
        same = generate([prompts[0]] * 8, 48, processor)
        distinct_same_prompt = len({tuple(r) for r in same})
        detector = Detector([key], model_dir, DetectionConfig(min_tokens=1))
        marked_text, plain_text = decode(marked_ids), decode(plain_ids)
        pos = np.array([r.p_value for r in detector.detect_texts(marked_text)])
        neg = np.array([r.p_value for r in detector.detect_texts(plain_text)])
        human = np.array([r.p_value for r in detector.detect_texts(passages) if r.num_tokens_scored > 0])
        attacker = Attacker(
            pool, passages, lambda t: tokenizer(t)["input_ids"], lambda ids: decode([ids])[0], len(tokenizer)
        )
        attack_rng = np.random.default_rng([0, index])
        attacked = np.array(
            [r.p_value for r in detector.detect_texts([attacker.apply(attack, t, attack_rng) for t in marked_text])]
        )
        row = {
            "scheme": scheme,
            "params": key.params,
            "label": label(scheme, key.params),
            "default": (scheme, key.params) == default_point,
            "perplexity_ratio": round(ratio, 4),
            "perplexity_ratio_ci": [round(v, 4) for v in ratio_ci],
            "tpr_at_1pct_fpr": float((pos <= 1e-2).mean()),
            "tpr_at_1e-4_fpr": float((pos <= 1e-4).mean()),
            "median_log10_p": float(np.median(np.log10(np.maximum(pos, 1e-300)))),
            "unmarked_fpr_at_1pct": float((neg <= 1e-2).mean()),
            "human_fpr_at_1pct": float((human <= 1e-2).mean()),
            "human_passages": int(len(human)),
            "tpr_at_1pct_fpr_word_substitution_0.5": float((attacked <= 1e-2).mean()),
            "distinct_of_8_same_prompt": distinct_same_prompt,
            "seconds": round(time.time() - started, 1),
        }
        row["meets_target"] = row["perplexity_ratio"] <= TARGET_RATIO and row["tpr_at_1pct_fpr"] >= TARGET_TPR
        rows.append(row)
        print(
            f"  {row['label']:<24} ppl ratio {ratio:.3f} [{ratio_ci[0]:.3f}, {ratio_ci[1]:.3f}]  "
            f"TPR@1% {row['tpr_at_1pct_fpr']:.3f}  TPR@1e-4 {row['tpr_at_1e-4_fpr']:.3f}  "
            f"subst50 TPR@1% {row['tpr_at_1pct_fpr_word_substitution_0.5']:.3f}  "
            f"human FPR@1% {row['human_fpr_at_1pct']:.4f}  distinct/8 {distinct_same_prompt}  ({row['seconds']:.0f}s)",
            flush=True,
        )
    return {
        "model": str(model_dir),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "samples": len(prompts),
        "tokens": tokens,
        "sampling": sampling,
        "plain_perplexity": float(math.exp(np.mean(np.log(plain_ppl)))),
        "plain_vs_plain_ratio": round(floor, 4),
        "plain_vs_plain_ratio_ci": [round(v, 4) for v in floor_ci],
        "curve": rows,
    }


def plot(results: list[dict], path: Path) -> Path:
    """Per model: perplexity ratio (x, with its interval) against TPR at 1% and 1e-4 FPR (top) and
    against TPR at 1% after 50% word substitution (bottom), where the schemes differ most."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(6.5 * len(results), 9), squeeze=False)
    colours = {"kgw": "tab:red", "synthid": "tab:blue", "gumbel": "tab:green"}
    panels = [("tpr_at_1pct_fpr", "tpr_at_1e-4_fpr", "TPR at 200 tokens (o: 1% FPR, s: 1e-4 FPR)")]
    panels.append(("tpr_at_1pct_fpr_word_substitution_0.5", None, "TPR at 1% FPR after 50% word substitution"))
    for column, result in enumerate(results):
        for row, (metric, second, ylabel) in enumerate(panels):
            ax = axes[row][column]
            for r in result["curve"]:
                x, (low, high) = r["perplexity_ratio"], r["perplexity_ratio_ci"]
                colour = colours.get(r["scheme"], "black")
                ax.errorbar([x], [r[metric]], xerr=[[x - low], [high - x]], fmt="o", color=colour, alpha=0.8)
                if second:
                    ax.plot([x], [r[second]], "s", color=colour, alpha=0.4)
                if r["default"]:
                    ax.plot([x], [r[metric]], "*", color="gold", markersize=16, mec="k")
                ax.annotate(r["label"].split(" ", 1)[1], (x, r[metric]), fontsize=6, alpha=0.8, rotation=30)
            ax.axvline(TARGET_RATIO, color="grey", linestyle="--", linewidth=1)
            if row == 0:
                ax.axhline(TARGET_TPR, color="grey", linestyle="--", linewidth=1)
            ax.set_xlabel("perplexity ratio (marked / unmarked, under the unmarked model)")
            ax.set_ylabel(ylabel)
            ax.set_ylim(-0.02, 1.06)
            name = Path(result["model"]).name
            ax.set_title(
                f"{name} ({result['parameters'] / 1e6:.1f}M), {result['samples']} texts, T={result['sampling']['temperature']}"
            )
    handles = [plt.Line2D([], [], color=c, marker="o", linestyle="", label=s) for s, c in colours.items()]
    axes[0][0].legend(handles=handles, fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples and variants (< 5 minutes)")
    parser.add_argument("--model", type=Path, action="append", help="model directory (repeatable)")
    parser.add_argument("--preset", default="nano", help="preset of the reference model trained when no --model")
    parser.add_argument("--steps", type=int, default=300, help="training steps of the reference model")
    parser.add_argument("--samples", type=int, default=None, help="texts per variant (default 64 quick, 200)")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--sampling", choices=("pipeline", "benchmark"), default="pipeline")
    parser.add_argument(
        "--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mintline"
    )
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "benchmarks" / "watermark_tradeoff")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--variants", default="", help="only the variants whose label starts with one of these (comma list)"
    )
    args = parser.parse_args(argv)
    args.samples = args.samples or (64 if args.quick else 200)
    import torch

    torch.set_num_threads(args.threads)
    started = time.time()
    models = args.model or [
        reference_model(args.cache / "benchmark-watermark" / f"{args.preset}-{args.steps}", args.preset, args.steps)
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    results = [measure_model(m, args, args.out / f"model{i}") for i, m in enumerate(models)]
    report_path = args.out / "tradeoff.json"
    report_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    png = plot(results, args.out / "tradeoff.png")
    first = results[0]
    default = next(r for r in first["curve"] if r["default"])
    summary = {
        "default_scheme": default["scheme"],
        "default_params": default["params"],
        "default_perplexity_ratio": default["perplexity_ratio"],
        "default_perplexity_ratio_ci": default["perplexity_ratio_ci"],
        "default_tpr_at_1pct_fpr": default["tpr_at_1pct_fpr"],
        "default_tpr_at_1e-4_fpr": default["tpr_at_1e-4_fpr"],
        "default_meets_target": default["meets_target"],
        "plain_vs_plain_ratio": first["plain_vs_plain_ratio"],
        "models": [
            {
                "model": r["model"],
                "parameters": r["parameters"],
                "plain_perplexity": round(r["plain_perplexity"], 2),
                "curve": [
                    [c["label"], c["perplexity_ratio"], c["tpr_at_1pct_fpr"], c["tpr_at_1e-4_fpr"]] for c in r["curve"]
                ],
            }
            for r in results
        ],
        "samples": args.samples,
        "tokens": args.tokens,
        "sampling": args.sampling,
        "quick": args.quick,
        "plot": str(png),
        "report": str(report_path),
        "seconds": round(time.time() - started, 1),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
