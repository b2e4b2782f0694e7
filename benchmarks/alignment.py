"""Issue 7 benchmark: does active selection halve the human labels, and does DPO on actively chosen labels win?

    python -m benchmarks.alignment --quick          # < 5 minutes on 2 cores (smaller pools, 3 seeds)
    python -m benchmarks.alignment                  # the full run: >= 10 seeds, every strategy
    python -m benchmarks.alignment --model DIR      # pipeline pairs from this policy instead of a freshly trained nano

(from the repository root; `python benchmarks/alignment.py` works too). This file holds the entry point and the
label-efficiency part (a, b); the DPO comparison (c) is `benchmarks/alignment_dpo.py`. Sizes (seeds, budgets,
batches, prompts) are flags whose defaults depend on `--quick`.

(a) pipeline pairs: K samples per prompt from the pipeline's own (nano) policy, ground truth = the gold judge
    (alignment/gold.py), revealed labels flipped with probability 0.25 (AlpacaFarm's simulated annotators);
(b) hh-rlhf harmless-base test (2,312 real human pairs), labels as people gave them.
For both: every strategy on identical features, label ratio to reach random's full-budget accuracy with a 95%
interval over seeds (refused where random's curve is flat), plus the gain of the richer features over plain
MiniLM features for random sampling, reported separately. Reward-model settings (features per source) were
chosen by random sampling's accuracy alone on tuning seeds (100 and up); the reported run uses seeds 0-9 (`--first_seed`).
(c) DPO (LoRA) on actively chosen human labels vs on as many random ones (1,000 per arm), both through the real
loop and ledger with 25%-flip simulated annotators; win rate of the first over the second on held-out prompts,
judged by the gold judge, with a bootstrap interval that resamples training seeds and prompts. The default design,
`--dpo_design reward-model-certainty`: after the random arm's first 200 labels, the reward model's loop asks people
about the pairs it is surest of (`certainty+kcenter`) and DPO trains on their labels. Other designs:
`reward-model` (each arm's reward model labels 1,000 pairs kept from the annotators, and DPO trains on those;
see `--dpo_pairs`), `policy-uncertainty` (ADPO: people label the pairs the DPO'd policy itself is least sure of)
and `policy-certainty` (APL: the pairs it is most sure of).
Ends with one JSON line; what it measured is in the README's alignment section and in the summary JSON it writes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

REPO = Path(__file__).resolve().parents[1]
if not __package__:  # `python benchmarks/alignment.py`: this folder would shadow the packages; use the repository root
    sys.path[0] = str(REPO)
HH_RLHF = REPO.parent / "shared" / "data" / "hh-rlhf-harmless-base-test.jsonl.gz"
ALL_STRATEGIES = "random,uncertainty,bald,disagreement,epig,fisher,thompson,uncertainty+kcenter,fisher+kcenter,adpo"


def pipeline_pairs(policy: Path, n_prompts: int, samples: int, cache: Path, seed: int = 1):
    """Candidate pairs from the policy (cached), and a TRL file whose `chosen` is the gold judge's pick."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignment.candidates import CandidateConfig, generate_candidate_pairs, prompts_from_documents
    from alignment.features import model_digest
    from alignment.gold import gold_score
    from annotation.pairs import read_pairs_jsonl, write_pairs_jsonl
    from pretrain.corpus.builtin import iter_builtin_corpus

    # Keyed by the policy's files: pairs cached from another (or a retrained) policy must not be reused.
    identity = model_digest(policy)[:12]
    candidates = cache / f"candidates-{identity}-{n_prompts}x{samples}.jsonl"
    gold = cache / f"gold-{identity}-{n_prompts}x{samples}.jsonl"
    if not candidates.is_file():
        prompts = prompts_from_documents([d.text for d in iter_builtin_corpus()], n_prompts, seed=seed)
        model, tokenizer = AutoModelForCausalLM.from_pretrained(policy).eval(), AutoTokenizer.from_pretrained(policy)
        config = CandidateConfig(
            samples_per_prompt=samples,
            max_pairs_per_prompt=samples * (samples - 1) // 2,
            max_new_tokens=32,
            generate_batch_size=32,
            sample_seed=seed,
        )
        write_pairs_jsonl(
            candidates, generate_candidate_pairs(model, tokenizer, prompts, config, model_id=policy.name)
        )
    pairs = read_pairs_jsonl(candidates)
    with open(gold, "w", encoding="utf-8") as handle:
        for pair in pairs:
            a, b = gold_score(pair.prompt, pair.response_a), gold_score(pair.prompt, pair.response_b)
            if a != b:  # a tie has no ground truth
                chosen, rejected = (pair.response_a, pair.response_b) if a > b else (pair.response_b, pair.response_a)
                handle.write(json.dumps({"prompt": pair.prompt, "chosen": chosen, "rejected": rejected}) + "\n")
    return pairs, gold


def label_efficiency(
    name: str,
    pairs_file: Path,
    args,
    features: str,
    plain: str,
    budget: int,
    seeds: int,
    noise: float,
    batch: int,
    policy: Path | None,
    dim: int,
    test_size: int = 0,
) -> dict:
    """Every strategy at `--reward_model`, its ceiling, and (for a trained family) random + `linear` on the plain
    encoder as the standard recipe the whole stage is measured against; with `linear`, the feature gain instead."""
    from alignment.benchmark import BenchmarkConfig, run_benchmark
    from alignment.bradley_terry import RewardModelConfig
    from alignment.report import plot_curves, summarise
    from alignment.reward_models import RewardFamilyConfig
    from mintline.commands.align import benchmark_text

    trained = args.reward_model != "linear"
    family = RewardFamilyConfig(
        reward_model=args.reward_model,
        trainable_layers=args.trainable_layers,
        rm_steps_per_round=args.rm_steps_per_round,
        stats=args.rm_stats,
        prior_pairs=str(args.prior_pairs) if args.prior_pairs and name != "hh-rlhf" else None,
    )
    config = BenchmarkConfig(
        pairs=str(pairs_file),
        strategies=args.strategies,
        budget=budget,
        seeds=seeds,
        features=plain if trained else features,
        baseline_features=None if trained else plain if plain != features else None,
        baseline_reward_model="linear" if trained else None,
        label_noise=noise,
        batch_size=batch,
        test_size=test_size,
        policy_model=str(policy) if policy else None,
        cache_dir=str(args.cache / "features"),
        plot=str(args.out / f"{name}.png"),
        first_seed=args.first_seed,
    )
    started = time.perf_counter()
    results = run_benchmark(config, RewardModelConfig(feature_dim=dim, whiten=args.whiten), family=family)
    summary = summarise(results, budget)
    plot_curves(summary, config.plot, f"{name}: {args.reward_model}, {seeds} seeds, flips {noise}")
    data = {
        **summary,
        "budget": budget,
        "seeds": seeds,
        "first_seed": args.first_seed,
        "features": config.features,
        "reward_model": args.reward_model,
        "length_matched_test_pairs": results["length_matched_test_pairs"],
        "feature_dim": dim,
        "whiten": args.whiten,
        "label_noise": noise,
        "test_size": results["test_size"],
        "pool_size": results["pool_size"],
        "skipped_rows": results["skipped_rows"],
        "plot": config.plot,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    print(f"\n== {name} ==\n" + benchmark_text(data), flush=True)
    return data


def best_strategy(summary: dict, fallback: str) -> str:
    ratios = {k: v for k, v in summary["label_ratio"].items() if k != "random" and v is not None}
    return min(ratios, key=ratios.get) if ratios else fallback


# Flags whose default depends on --quick: (with --quick, without).
SIZE_DEFAULTS = {
    "seeds": (3, 10),
    "pipeline_prompts": (100, 450),
    "pipeline_budget": (200, 1000),
    "pipeline_batch": (20, 50),
    "hh_budget": (200, 1000),
    "hh_batch": (20, 40),
    "dpo_seeds": (1, 10),
    "dpo_budget": (60, 1000),
    "dpo_pairs": (120, 1000),
    "dpo_batch": (20, 25),
    "dpo_round": (20, 200),
    "eval_prompts": (30, 150),
}


def _size_flag(parser: argparse.ArgumentParser, name: str, text: str) -> None:
    quick, full = SIZE_DEFAULTS[name]
    parser.add_argument(f"--{name}", type=int, help=f"{text} (default {full}; {quick} with --quick)")


def parse_args(argv=None) -> argparse.Namespace:
    """The command line, with every size resolved (the --quick or the full default where a flag is not given)."""
    from benchmarks.alignment_dpo import HUMAN_LABEL_DESIGNS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small sizes of SIZE_DEFAULTS: minutes, not hours")
    _size_flag(parser, "seeds", "label-efficiency seeds per strategy")
    _size_flag(parser, "pipeline_prompts", "prompts the policy answers for the pipeline pairs (6 samples each)")
    _size_flag(parser, "pipeline_budget", "label budget on the pipeline pairs")
    _size_flag(parser, "pipeline_batch", "labels per round on the pipeline pairs")
    _size_flag(parser, "hh_budget", "label budget on hh-rlhf")
    _size_flag(parser, "hh_batch", "labels per round on hh-rlhf")
    parser.add_argument(
        "--model", type=Path, help="policy directory for the pipeline pairs (default: train a nano one)"
    )
    parser.add_argument("--strategies", default=ALL_STRATEGIES)
    parser.add_argument(
        "--reward_model",
        default="linear",
        choices=("linear", "finetune", "policy"),
        help="the reward-model family every strategy uses (default: the align stage's); the whole stage "
        "(family, features, best strategy) is measured against random + linear on the plain encoder "
        "(the system gain)",
    )
    parser.add_argument("--trainable_layers", type=int, default=0, help="finetune/policy: top layers trained")
    parser.add_argument("--rm_steps_per_round", type=int, default=30, help="finetune/policy: optimiser steps a round")
    parser.add_argument("--rm_stats", action="store_true", help="finetune/policy: text statistics in the head")
    parser.add_argument(
        "--prior_pairs",
        type=Path,
        default=None,
        help="finetune/policy: pre-train on these preference pairs first (e.g. hh-rlhf for the "
        "pipeline pairs; never used on its own data set)",
    )
    parser.add_argument("--pipeline_features", default="minilm+stats")
    parser.add_argument("--hh_features", default="minilm+stats")
    parser.add_argument("--plain_features", default="minilm")
    # Principal components per feature source (unwhitened), chosen by random sampling's full-budget accuracy alone
    # (a rule blind to every active strategy): 16 of {8, 16, 64} on pipeline pairs (tuning seeds 100-104), 64 of
    # {64, 128, 384} on hh-rlhf (one tuning split). The reported run uses seeds 0-9.
    parser.add_argument("--pipeline_dim", type=int, default=16)
    parser.add_argument("--hh_dim", type=int, default=64)
    parser.add_argument(
        "--whiten", action="store_true", help="linear: unit variance per principal component (the old reduction)"
    )
    parser.add_argument(
        "--first_seed",
        type=int,
        default=0,
        help="seeds first_seed.. for every part, DPO included (100.. were used for tuning)",
    )
    parser.add_argument(
        "--dpo_strategy",
        default=None,
        help="--dpo_design reward-model: whose labels (default: the best strategy on pipeline pairs)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mintline",
        help="encoded texts (features/), the trained policy and its pairs (benchmark-alignment/)",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "runs" / "benchmarks" / "alignment", help="plots and summary.json"
    )
    parser.add_argument("--skip_dpo", action="store_true")
    _size_flag(parser, "dpo_budget", "human labels per DPO arm")
    _size_flag(
        parser,
        "dpo_pairs",
        "DPO on this many pairs kept from annotators and labelled by each arm's reward "
        "model; 0: DPO on the human labels plus the reward model's pseudo-labels of the pool",
    )
    parser.add_argument(
        "--dpo_pseudo_cap", type=int, default=0, help="with --dpo_pairs 0: pseudo-labels per arm (0: all)"
    )
    parser.add_argument(
        "--dpo_pseudo_threshold",
        type=float,
        default=0.501,
        help="with --dpo_pairs 0: pseudo-label confidence floor, just above 0.5 so the cap decides",
    )
    parser.add_argument("--dpo_epochs", type=float, default=2.0)
    parser.add_argument("--dpo_lr", type=float, default=2e-3, help="DPO (LoRA) learning rate (default 2e-3)")
    _size_flag(parser, "dpo_seeds", "DPO training seeds per arm")
    _size_flag(parser, "dpo_batch", "labels per round of the reward model's loop in the DPO arms")
    _size_flag(parser, "eval_prompts", "held-out prompts the DPO'd policies answer")
    parser.add_argument(
        "--eval_samples", type=int, default=4, help="responses the gold judge scores per prompt (default 4)"
    )
    parser.add_argument(
        "--dpo_design",
        choices=("reward-model", *HUMAN_LABEL_DESIGNS),
        default="reward-model-certainty",
        help="reward-model-certainty: DPO on the human labels of the pairs the reward model is surest "
        "of; reward-model: labels chosen by the best strategy's reward model, which labels DPO's "
        "pairs (see --dpo_pairs); policy-uncertainty / policy-certainty: DPO on the human labels of "
        "the pairs chosen by the DPO'd policy's own implicit-reward margin, nearest 0 (ADPO) or "
        "largest (APL)",
    )
    _size_flag(
        parser, "dpo_round", "designs on human labels: the first round (random) and the policy-* designs' rounds"
    )
    args = parser.parse_args(argv)
    for name, sizes in SIZE_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, sizes[0] if args.quick else sizes[1])
        if getattr(args, name) < (0 if name == "dpo_pairs" else 1):
            parser.error(f"--{name}: must be at least {0 if name == 'dpo_pairs' else 1}, got {getattr(args, name)}")
    if args.eval_samples < 1:
        parser.error(f"--eval_samples: must be at least 1, got {args.eval_samples}")
    return args


def main(argv=None) -> int:
    from benchmarks.alignment_dpo import HUMAN_LABEL_DESIGNS, dpo_win_rate, human_label_win_rate, print_dpo_summary

    args = parse_args(argv)
    quick = args.quick
    logging.basicConfig(level=logging.ERROR)
    args.cache.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    from pretrain.reference_model import save_reference_nano

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    started = time.perf_counter()
    work = args.cache / "benchmark-alignment"
    work.mkdir(parents=True, exist_ok=True)
    policy = args.model or save_reference_nano(
        work / ("policy-nano-300" if quick else "policy-nano-600"), 300 if quick else 600
    )
    pairs, gold_file = pipeline_pairs(policy, args.pipeline_prompts, 6, work)
    pipeline = label_efficiency(
        "pipeline",
        gold_file,
        args,
        args.pipeline_features,
        args.plain_features,
        budget=args.pipeline_budget,
        seeds=args.seeds,
        noise=0.25,
        batch=args.pipeline_batch,
        policy=policy,
        dim=args.pipeline_dim,
    )
    hh_file = HH_RLHF
    if quick:  # a smaller pool keeps --quick under five minutes; the full run uses every pair
        hh_file = work / "hh-quick.jsonl"
        import gzip

        with gzip.open(HH_RLHF, "rt", encoding="utf-8") as source:
            hh_file.write_text("".join(line for _, line in zip(range(800), source)), encoding="utf-8")
    # 2,303 usable pairs cannot give both a 2,000-pair test split and a pool with room to choose 1,000: 800 / 1,503.
    hh = label_efficiency(
        "hh-rlhf",
        hh_file,
        args,
        args.hh_features,
        args.plain_features,
        budget=args.hh_budget,
        seeds=args.seeds,
        noise=0.0,
        batch=args.hh_batch,
        policy=None,
        dim=args.hh_dim,
        test_size=0 if quick else 800,
    )
    dpo = None
    if not args.skip_dpo:
        if args.dpo_design in HUMAN_LABEL_DESIGNS:
            dpo = human_label_win_rate(policy, pairs, args)
        else:
            dpo = dpo_win_rate(
                policy, pairs, args.dpo_strategy or best_strategy(pipeline, "uncertainty+kcenter"), args
            )
        print_dpo_summary(dpo)
    final = {
        "label_ratio": {"pipeline": pipeline["label_ratio"], "hh_rlhf": hh["label_ratio"]},
        "label_ratio_ci": {"pipeline": pipeline["label_ratio_ci"], "hh_rlhf": hh["label_ratio_ci"]},
        "random_flat": {"pipeline": pipeline["flat"], "hh_rlhf": hh["flat"]},
        "target_accuracy": {"pipeline": pipeline["target_accuracy"], "hh_rlhf": hh["target_accuracy"]},
        "feature_gain": {"pipeline": pipeline.get("feature_gain"), "hh_rlhf": hh.get("feature_gain")},
        "reward_model": args.reward_model,
        "ceiling": {"pipeline": pipeline.get("ceiling"), "hh_rlhf": hh.get("ceiling")},
        "accuracy_at_budget": {
            "pipeline": pipeline["curves"]["random"]["accuracy_mean"][-1],
            "hh_rlhf": hh["curves"]["random"]["accuracy_mean"][-1],
        },
        "random_gain_half_to_full": {"pipeline": pipeline["flatness"], "hh_rlhf": hh["flatness"]},
        "system_gain": {"pipeline": pipeline.get("system_gain"), "hh_rlhf": hh.get("system_gain")},
        "seconds_per_label": {"pipeline": pipeline["seconds_per_label"], "hh_rlhf": hh["seconds_per_label"]},
        "seconds_per_round": {"pipeline": pipeline["seconds_per_round"], "hh_rlhf": hh["seconds_per_round"]},
        "length_matched_accuracy": {
            "pipeline": pipeline["length_matched_accuracy"],
            "hh_rlhf": hh["length_matched_accuracy"],
        },
        "dpo_win_rate_margin": dpo["margin"] if dpo else None,
        "dpo_win_rate_margin_ci": dpo["margin_ci"] if dpo else None,
        "dpo": dpo,
        "seeds": args.seeds,
        "first_seed": args.first_seed,
        "quick": quick,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    (args.out / ("summary-quick.json" if quick else "summary.json")).write_text(
        json.dumps({"final": final, "pipeline": pipeline, "hh_rlhf": hh}, indent=1, default=str)
    )
    print(json.dumps(final, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
