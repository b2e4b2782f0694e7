"""The DPO comparison of `python -m benchmarks.alignment`: does DPO on actively chosen human labels win?

DPO (LoRA) on actively chosen human labels vs on as many random ones, both through the real loop and ledger
with 25%-flip simulated annotators; the gold judge compares the two arms' policies on held-out prompts, with a
bootstrap interval that resamples training seeds and prompts. `human_label_win_rate` runs the designs in which
DPO trains on the human labels themselves (`--dpo_design reward-model-certainty`, `policy-uncertainty`,
`policy-certainty`); `dpo_win_rate` the design in which each arm's reward model labels DPO's data
(`--dpo_design reward-model`). `args` is `benchmarks.alignment`'s parsed command line.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np


def dpo_win_rate(policy: Path, pairs, strategy: str, args) -> dict:
    """DPO on `strategy`'s labels vs on random labels at equal budget; gold judges generations on held-out prompts.

    Both arms get the same treatment (annotators, flips, budget, DPO settings) and differ only in which pairs
    people labelled. Two designs:
    - `--dpo_pairs N` (the default, N = 1,000): RLHF's division of labour. N pairs are drawn apart and never
      shown to annotators; each arm's human labels train its reward model, and that reward model labels the N
      pairs DPO trains on. The arms' DPO data are the same pairs and differ only in how often their labels are
      right. N is chosen small enough for DPO not to saturate, so that cleaner labels can still show.
    - `--dpo_pairs 0`: ADPO-style. DPO trains on the human labels plus the reward model's pseudo-labels of the
      pool (`+pseudo`, counted apart in the ledger): its `--dpo_pseudo_cap` most confident pairs (0: all of them).
      The threshold sits just above 0.5 so that the cap, not a probability, decides how many: a reward model
      fitted on near-ties (the active arm) ranks as well but is less sure in probability. With the whole pool
      as DPO data (cap 0), DPO saturates and cleaner labels have little left to win.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignment.acquisition import parse_strategy
    from alignment.evaluation import win_rate
    from alignment.gold import gold_score
    from alignment.loop import ActiveLoopConfig, run_active_loop
    from alignment.stage import AlignStageConfig, load_aligned, train_dpo
    from annotation.backends import SimulatedBackend
    from annotation.ledger import Ledger
    from annotation.simulated import SimulatedAnnotators

    held_out = _held_out_prompts(pairs, args.eval_prompts)
    x, rm_config = _pipeline_features(policy, pairs, args)
    tokenizer = AutoTokenizer.from_pretrained(policy)
    stage = AlignStageConfig(
        policy_model=str(policy),
        output_dir="unused",
        dpo_epochs=args.dpo_epochs,
        dpo_learning_rate=args.dpo_lr,
        dpo_max_length=96,
    )
    # With --dpo_pairs the reward model labels DPO's own pairs, so the arms need no pseudo-labels in the ledger.
    arms = {
        name: name if args.dpo_pairs or parse_strategy(name).pseudo else f"{name}+pseudo"
        for name in (strategy, "random")
    }

    scores: dict[str, list[float]] = {strategy: [], "random": []}
    base_scores: list[float] = []
    seed_of_prompt: list[int] = []
    label_accuracy: dict[str, list[float]] = {strategy: [], "random": []}
    # which rubric terms the DPO data pushes (chosen minus rejected) and which the DPO'd policy's text moved
    data_push: dict[str, list[dict]] = {strategy: [], "random": []}
    agreement_by_gap: dict[str, list[dict]] = {strategy: [], "random": []}
    components: dict[str, list[dict]] = {strategy: [], "random": [], "no_dpo": []}
    base_policy = AutoModelForCausalLM.from_pretrained(policy).eval()
    for seed in range(args.first_seed, args.first_seed + args.dpo_seeds):
        base_scores.extend(_judge(base_policy, tokenizer, held_out, args.eval_samples, seed, components["no_dpo"]))
        seed_of_prompt.extend([seed] * len(held_out))
        if args.dpo_pairs:
            # The policy's DPO pairs are drawn apart, once per seed for both arms, and never shown to people:
            # an arm's labels only train its reward model, which then labels these pairs — RLHF's division of labour.
            dpo_set = np.random.default_rng(10_000 + seed).choice(len(pairs), args.dpo_pairs, replace=False)
            pool = np.setdiff1d(np.arange(len(pairs)), dpo_set)
            annotator_pairs, held_apart = [pairs[i] for i in pool], [pairs[i] for i in dpo_set]
        for name, arm in arms.items():
            with tempfile.TemporaryDirectory() as work:
                work = Path(work)
                with Ledger(work / "ledger.sqlite") as ledger:
                    annotators = SimulatedAnnotators(gold_score, flip_rate=0.25, temperature=0.0, seed=seed)
                    loop = ActiveLoopConfig(
                        budget=args.dpo_budget,
                        batch_size=args.dpo_batch,
                        strategy=arm,
                        selection_seed=seed,
                        pseudo_threshold=args.dpo_pseudo_threshold,
                        pseudo_cap=args.dpo_pseudo_cap or len(pairs),
                    )
                    if args.dpo_pairs:
                        run_active_loop(
                            annotator_pairs, x[pool], SimulatedBackend(ledger, annotators), loop, rm_config
                        )
                        _write_reward_model_preferences(
                            ledger,
                            annotator_pairs,
                            x[pool],
                            held_apart,
                            x[dpo_set],
                            rm_config,
                            seed,
                            work / "prefs.jsonl",
                        )
                    else:
                        run_active_loop(pairs, x, SimulatedBackend(ledger, annotators), loop, rm_config)
                        ledger.export_trl(work / "prefs.jsonl", include_pseudo=True)
                agreement, push, by_gap = _dpo_data_profile(work / "prefs.jsonl")
                label_accuracy[name].append(agreement)
                data_push[name].append(push)
                agreement_by_gap[name].append(by_gap)
                train_dpo(str(policy), str(work / "prefs.jsonl"), str(work / "model"), stage, seed=seed)
                aligned = load_aligned(str(policy), work / "model")
                scores[name].extend(_judge(aligned, tokenizer, held_out, args.eval_samples, seed, components[name]))
        print(
            f"DPO seed {seed}: {strategy} gold {np.mean(scores[strategy]):.3f} (DPO labels {label_accuracy[strategy][-1]:.3f} "
            f"right) vs random {np.mean(scores['random']):.3f} ({label_accuracy['random'][-1]:.3f}); "
            f"no DPO {np.mean(base_scores):.3f}",
            flush=True,
        )
    result = win_rate(scores[strategy], scores["random"], groups=seed_of_prompt)  # the interval spans training seeds
    result.update(
        {
            "strategy": strategy,
            "arms": arms,
            "budget": args.dpo_budget,
            "seeds": args.dpo_seeds,
            "eval_prompts": len(held_out),
            "samples_per_prompt": args.eval_samples,
            "dpo_pairs": args.dpo_pairs or "human labels + pseudo-labels",
            "mean_gold_active": round(float(np.mean(scores[strategy])), 4),
            "mean_gold_random": round(float(np.mean(scores["random"])), 4),
            "mean_gold_no_dpo": round(float(np.mean(base_scores)), 4),
            "dpo_label_gold_agreement": {k: round(float(np.mean(v)), 4) for k, v in label_accuracy.items()},
            "dpo_label_gold_agreement_by_gap": {k: _mean_terms(v) for k, v in agreement_by_gap.items()},
            "dpo_data_gold_push": {k: _mean_terms(v) for k, v in data_push.items()},
            "generated_gold_terms": {k: _mean_terms(v) for k, v in components.items()},
            "win_rate_random_vs_no_dpo": win_rate(scores["random"], base_scores)["win_rate"],
        }
    )
    if not args.dpo_pairs:
        result.update({"pseudo_cap": args.dpo_pseudo_cap or "all", "pseudo_threshold": args.dpo_pseudo_threshold})
    return result


# How a policy-margin design ranks the unlabelled pairs for its next round: smallest key first.
POLICY_QUERY_KEYS = {
    "policy-uncertainty": np.abs,  # ADPO (Ji et al. 2024): the margins nearest 0, where the policy is least sure
    "policy-certainty": lambda margin: -np.abs(margin),  # APL (Muldrew et al. 2024): the policy is most sure
}
# Designs in which DPO trains on the human labels themselves, chosen by the reward model's loop with this strategy.
REWARD_MODEL_QUERY_STRATEGIES = {"reward-model-certainty": "certainty+kcenter"}
HUMAN_LABEL_DESIGNS = (*POLICY_QUERY_KEYS, *REWARD_MODEL_QUERY_STRATEGIES)


def human_label_win_rate(policy: Path, pairs, args) -> dict:
    """DPO on the human labels of pairs chosen by `args.dpo_design` vs on as many random pairs' labels.

    - policy-uncertainty / policy-certainty: the policy being aligned chooses. People label the pairs ranked first
      by the design's key on the DPO implicit-reward margin under the current policy (nearest 0 for ADPO's
      policy-uncertainty, largest for APL's policy-certainty). Rounds of `--dpo_round` labels; after each, DPO
      (LoRA, from the base, on the labels so far) and the margins of every unlabelled pair pick the next.
    - reward-model-certainty: the reward model chooses, through the real loop (`certainty+kcenter`, batches of
      the DPO batch size): the pairs whose Bradley-Terry preference is furthest from a coin flip, spread by
      k-center — the pairs that are really far apart (a label tells DPO only as much as its responses differ).
    In every design the first `--dpo_round` labels are the random arm's first (the base policy's margins are all 0,
    and a reward model needs labels to rank), and each arm's final policy is LoRA DPO from the base on all its
    labels, so the arms differ only in which pairs people labelled. Labels go through the ledger from the same
    simulated annotators (gold judge, 25% flips, keyed by pair and seed: a pair gets the same label in either arm).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignment.evaluation import win_rate
    from alignment.gold import gold_score
    from alignment.loop import training_set
    from alignment.stage import AlignStageConfig, load_aligned, train_dpo
    from annotation.backends import SimulatedBackend
    from annotation.ledger import Ledger
    from annotation.simulated import SimulatedAnnotators

    held_out = _held_out_prompts(pairs, args.eval_prompts)
    tokenizer = AutoTokenizer.from_pretrained(policy)
    base_policy = AutoModelForCausalLM.from_pretrained(policy).eval()
    stage = AlignStageConfig(
        policy_model=str(policy),
        output_dir="unused",
        dpo_epochs=args.dpo_epochs,
        dpo_learning_rate=args.dpo_lr,
        dpo_max_length=96,
    )
    n, ids = len(pairs), [p.pair_id for p in pairs]
    index = {pair_id: i for i, pair_id in enumerate(ids)}
    gold_gap = np.array([gold_score(p.prompt, p.response_a) - gold_score(p.prompt, p.response_b) for p in pairs])
    if args.dpo_design in POLICY_QUERY_KEYS:
        ask_more = _policy_margin_asker(
            policy, pairs, base_policy, tokenizer, stage, POLICY_QUERY_KEYS[args.dpo_design], args
        )
    else:
        ask_more = _reward_model_asker(policy, pairs, REWARD_MODEL_QUERY_STRATEGIES[args.dpo_design], args)
    arms = (args.dpo_design, "random")
    scores: dict[str, list[float]] = {arm: [] for arm in arms}
    profile: dict[str, list[dict]] = {arm: [] for arm in arms}
    base_scores: list[float] = []
    seed_of_prompt: list[int] = []
    components: dict[str, list[dict]] = {arm: [] for arm in (*arms, "no_dpo")}  # the rubric terms of the text
    for seed in range(args.first_seed, args.first_seed + args.dpo_seeds):
        base_scores.extend(_judge(base_policy, tokenizer, held_out, args.eval_samples, seed, components["no_dpo"]))
        seed_of_prompt.extend([seed] * len(held_out))
        order = np.random.default_rng(seed).permutation(n)
        for arm in arms:
            with tempfile.TemporaryDirectory() as work, Ledger(Path(work) / "ledger.sqlite") as ledger:
                work = Path(work)
                backend = SimulatedBackend(
                    ledger, SimulatedAnnotators(gold_score, flip_rate=0.25, temperature=0.0, seed=seed)
                )
                first_batch = args.dpo_budget if arm == "random" else min(args.dpo_round, args.dpo_budget)
                asked = [int(i) for i in order[:first_batch]]
                backend.request([pairs[i] for i in asked])
                if arm != "random":
                    ask_more(backend, asked, seed, work)
                ledger.export_trl(work / "prefs.jsonl")  # the human labels, in the order they were asked
                train_dpo(str(policy), str(work / "prefs.jsonl"), str(work / "model"), stage, seed=seed)
                positions, prefer_a = training_set(ledger, ids, index)
                right = (prefer_a > 0.5) == (gold_gap[positions] > 0)
                gap = np.abs(gold_gap[positions])
                profile[arm].append(
                    {
                        "labels_right": float(right.mean()),
                        "mean_abs_gold_gap": float(gap.mean()),
                        "gold_gap_taught": float(np.where(right, gap, -gap).mean()),
                    }
                )
                aligned = load_aligned(str(policy), work / "model")
                scores[arm].extend(_judge(aligned, tokenizer, held_out, args.eval_samples, seed, components[arm]))
        print(
            f"DPO seed {seed}: {arms[0]} gold {np.mean(scores[arms[0]]):.3f} vs random "
            f"{np.mean(scores['random']):.3f}; no DPO {np.mean(base_scores):.3f}",
            flush=True,
        )
    result = win_rate(scores[arms[0]], scores["random"], groups=seed_of_prompt)
    result.update(
        {
            "strategy": arms[0],
            "design": arms[0],
            "budget": args.dpo_budget,
            "round": args.dpo_round,
            "seeds": args.dpo_seeds,
            "eval_prompts": len(held_out),
            "samples_per_prompt": args.eval_samples,
            "dpo_pairs": "the human labels",
            "mean_gold_active": round(float(np.mean(scores[arms[0]])), 4),
            "mean_gold_random": round(float(np.mean(scores["random"])), 4),
            "mean_gold_no_dpo": round(float(np.mean(base_scores)), 4),
            "dpo_label_profile": {arm: _mean_terms(rows) for arm, rows in profile.items()},
            "generated_gold_terms": {arm: _mean_terms(rows) for arm, rows in components.items()},
            "win_rate_random_vs_no_dpo": win_rate(scores["random"], base_scores)["win_rate"],
        }
    )
    return result


def _policy_margin_asker(policy: Path, pairs, base_policy, tokenizer, stage, query_key, args):
    """Rounds of `--dpo_round`: DPO on the labels so far, then the unlabelled pairs first by `query_key(margin)`."""
    from alignment.evaluation import response_logprobs
    from alignment.stage import load_aligned, train_dpo

    n = len(pairs)
    texts = [(p.prompt, p.response_a) for p in pairs] + [(p.prompt, p.response_b) for p in pairs]
    reference = response_logprobs(base_policy, tokenizer, texts, max_length=stage.dpo_max_length)

    def ask_more(backend, asked: list[int], seed: int, work: Path) -> None:
        while len(asked) < args.dpo_budget:
            backend.ledger.export_trl(work / "prefs.jsonl")
            train_dpo(str(policy), str(work / "prefs.jsonl"), str(work / "model"), stage, seed=seed)
            logprobs = response_logprobs(
                load_aligned(str(policy), work / "model"), tokenizer, texts, max_length=stage.dpo_max_length
            )
            key = query_key((logprobs[:n] - reference[:n]) - (logprobs[n:] - reference[n:]))
            key[asked] = np.inf
            batch = np.argsort(key, kind="stable")[: min(args.dpo_round, args.dpo_budget - len(asked))]
            backend.request([pairs[i] for i in batch])
            asked.extend(int(i) for i in batch)

    return ask_more


def _reward_model_asker(policy: Path, pairs, strategy: str, args):
    """The real active loop, from the labels already asked to the budget, choosing with `strategy`."""
    from alignment.loop import ActiveLoopConfig, run_active_loop

    x, rm_config = _pipeline_features(policy, pairs, args)

    def ask_more(backend, asked: list[int], seed: int, work: Path) -> None:
        loop = ActiveLoopConfig(
            budget=args.dpo_budget, batch_size=args.dpo_batch, strategy=strategy, selection_seed=seed
        )
        run_active_loop(pairs, x, backend, loop, rm_config)

    return ask_more


def _pipeline_features(policy: Path, pairs, args):
    """The reward model's pair features on the pipeline pairs (`--pipeline_features`, `--pipeline_dim`) and its config."""
    from alignment.bradley_terry import RewardModelConfig
    from alignment.features import FeatureConfig
    from alignment.loop import pair_feature_matrix

    rm_config = RewardModelConfig(feature_dim=args.pipeline_dim, whiten=args.whiten)
    x = pair_feature_matrix(
        pairs,
        FeatureConfig(
            encoder=args.pipeline_features, policy_model=str(policy), cache_dir=str(args.cache / "features")
        ),
        dim=rm_config.feature_dim,
        whiten=rm_config.whiten,
    )
    return x, rm_config


def _held_out_prompts(pairs, n: int) -> list[str]:
    """`n` prompts from the built-in corpus that no candidate pair uses: the DPO'd policies answer these."""
    from alignment.candidates import prompts_from_documents
    from pretrain.corpus.builtin import iter_builtin_corpus

    used = {p.prompt for p in pairs}
    return [
        p for p in prompts_from_documents([d.text for d in iter_builtin_corpus()], 4 * n, seed=99) if p not in used
    ][:n]


def _gold_terms(model, tokenizer, prompts: list[str], samples: int, seed: int) -> list[list[dict]]:
    """The gold judge's rubric terms of `samples` responses per prompt; the sampling seed depends on `seed` only,
    so every arm of a seed is judged on the same draw."""
    from alignment.candidates import CandidateConfig, sample_responses
    from alignment.gold import gold_components

    generation = CandidateConfig(samples_per_prompt=samples, max_new_tokens=32, sample_seed=1000 + seed)
    responses = sample_responses(model, tokenizer, prompts, generation)
    return [[gold_components(p, r) for r in rs] for p, rs in zip(prompts, responses)]


def _judge(model, tokenizer, prompts: list[str], samples: int, seed: int, components: list[dict]) -> list[float]:
    """The gold score of `model` per prompt; the rubric terms of every response go to `components`."""
    terms = _gold_terms(model, tokenizer, prompts, samples, seed)
    components.extend(t for per_prompt in terms for t in per_prompt)
    return _per_prompt(terms)


def _per_prompt(terms: list[list[dict]]) -> list[float]:
    # several samples per prompt: their mean gold score is the policy's answer quality on that prompt
    return [float(np.mean([sum(t.values()) for t in per_prompt])) for per_prompt in terms]


def _write_reward_model_preferences(ledger, pool, pool_x, targets, target_x, rm_config, seed: int, path: Path) -> None:
    """Fit the reward model on the ledger's human labels of `pool`, and write its verdict on `targets` as TRL rows."""
    from alignment.bradley_terry import BradleyTerryModel
    from alignment.loop import training_set

    ids = [pair.pair_id for pair in pool]
    positions, prefer_a = training_set(ledger, ids, {pair_id: i for i, pair_id in enumerate(ids)})
    model = BradleyTerryModel(rm_config, seed=seed).fit(pool_x[positions], prefer_a)
    with open(path, "w", encoding="utf-8") as handle:
        for pair, p_a in zip(targets, model.prob(target_x)):
            chosen, rejected = (pair.response_a, pair.response_b) if p_a > 0.5 else (pair.response_b, pair.response_a)
            handle.write(json.dumps({"prompt": pair.prompt, "chosen": chosen, "rejected": rejected}) + "\n")


def _dpo_data_profile(preferences: Path) -> tuple[float, dict[str, float], dict[str, float]]:
    """What the DPO training pairs teach, judged by the noise-free gold judge: the share whose `chosen` it also
    prefers; the mean chosen-minus-rejected of each rubric term; and that share within thirds of the pairs by
    gold gap (near ties, middle, clear). Cleaner labels on near ties barely change what DPO learns, so where an
    arm's extra right labels fall says more than their number."""
    from alignment.gold import gold_components

    rows = [json.loads(line) for line in preferences.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        return 0.0, {}, {}
    chosen = [gold_components(r["prompt"], r["chosen"]) for r in rows]
    rejected = [gold_components(r["prompt"], r["rejected"]) for r in rows]
    gap = np.array([sum(c.values()) - sum(r.values()) for c, r in zip(chosen, rejected)])
    right = gap > 0
    third = np.empty(len(gap), dtype=int)  # 0: the third nearest a tie; by rank, so ties in |gap| split evenly
    third[np.argsort(np.abs(gap), kind="stable")] = np.arange(len(gap)) * 3 // len(gap)
    by_gap = {
        name: float(right[third == i].mean())
        for i, name in enumerate(("near_ties", "middle", "clear"))
        if np.any(third == i)
    }
    push = {term: float(np.mean([c[term] - r[term] for c, r in zip(chosen, rejected)])) for term in chosen[0]}
    return float(right.mean()), push, by_gap


def _mean_terms(rows: list[dict[str, float]]) -> dict[str, float]:
    return {term: round(float(np.mean([row[term] for row in rows])), 4) for term in rows[0]} if rows else {}


def print_dpo_summary(dpo: dict) -> None:
    print(
        f"\n== DPO win rate ({dpo['strategy']} vs random, {dpo['budget']} labels, {dpo['seeds']} seeds) ==\n"
        f"win rate {dpo['win_rate']} margin {dpo['margin']} 95% CI {dpo['margin_ci']} on {dpo['n']} prompt-seeds"
    )
    for arm, right in dpo.get("dpo_label_gold_agreement", {}).items():
        thirds = " / ".join(f"{k} {v}" for k, v in dpo["dpo_label_gold_agreement_by_gap"][arm].items())
        print(f"{arm}: DPO labels right {right} ({thirds})")
    for arm, figures in dpo.get("dpo_label_profile", {}).items():
        print(f"{arm}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    for arm, terms in dpo["generated_gold_terms"].items():
        print(f"{arm}'s text: " + ", ".join(f"{k} {v}" for k, v in terms.items()))
