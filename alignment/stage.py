"""RLHF-lite as one library call: candidate pairs → active labelling loop → DPO with TRL.

    figures = run_align_stage(AlignStageConfig(policy_model=..., output_dir=...), CandidateConfig(),
                              ActiveLoopConfig(), RewardModelConfig(), logits_processor=watermark)

What lands in `output_dir`: `pairs.jsonl` (every candidate), `ledger.sqlite` (unless another
ledger is named), `preferences.jsonl` (TRL export of the labels), `model/` (the DPO policy, or
only its LoRA adapter) and `figures.json`. Re-running resumes: the candidates are reused and the
loop reads its state back from the ledger. With Label Studio the stage returns
`state="waiting"` until the people have answered, and trains nothing until then.
"""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from alignment.bradley_terry import RewardModelConfig
from alignment.candidates import CandidateConfig, generate_candidate_pairs, prompts_from_documents, read_prompts
from alignment.errors import ConfigError, PreferenceDataError
from alignment.features import FeatureConfig
from alignment.gold import gold_components, gold_score
from alignment.loop import ActiveLoopConfig, pair_feature_matrix, run_active_loop
from alignment.reward_models import RewardFamilyConfig, new_reward_model, prepare_reward_inputs

log = logging.getLogger("alignment")
BACKENDS = ("simulated", "labelstudio")


@dataclass
class AlignStageConfig:
    policy_model: str = field(default=None, metadata={"help": "the policy: a causal-LM directory with its tokenizer"})
    output_dir: str = field(
        default=None, metadata={"help": "where pairs, labels and the aligned model go (default RUN_DIR/align)"}
    )
    prompts_file: str = field(default=None, metadata={"help": "prompts, one per line (or JSONL with 'prompt'/'text')"})
    corpus: str = field(
        default=None,
        metadata={"help": "held-out documents (JSONL with 'text', file or directory) to cut prompts from"},
    )
    num_prompts: int = field(default=64, metadata={"help": "prompts to draw from the corpus"})
    eval_corpus: str = field(
        default=None,
        metadata={
            "help": "documents to cut the gold win rate's held-out prompts from (default: the corpus; "
            "paragraphs that gave a candidate prompt are never used)"
        },
    )
    ledger: str = field(default=None, metadata={"help": "label ledger (SQLite); default OUTPUT_DIR/ledger.sqlite"})
    backend: str = field(default="simulated", metadata={"help": "who labels: 'simulated' or 'labelstudio'"})
    label_studio_url: str = field(default=None, metadata={"help": "Label Studio URL (default $LABEL_STUDIO_URL)"})
    annotators: int = field(default=1, metadata={"help": "simulated annotators"})
    annotators_per_pair: int = field(default=1, metadata={"help": "votes asked per pair"})
    flip_rate: float = field(default=0.25, metadata={"help": "simulated label flips (AlpacaFarm: 0.25)"})
    annotator_temperature: float = field(
        default=0.0, metadata={"help": "simulated Bradley-Terry choice noise on the gold score"}
    )
    features: str = field(default="policy+stats", metadata={"help": "reward-model features (see FeatureConfig)"})
    feature_cache: str = field(default=None, metadata={"help": "cache directory for encoded texts"})
    gold_eval_pairs: int = field(
        default=100,
        metadata={
            "help": "simulated backend: candidate pairs kept out of the pool and judged by the noise-free gold "
            "judge, to draw the reward model's label-efficiency curve (0 = off)"
        },
    )
    gold_win_prompts: int = field(
        default=64,
        metadata={
            "help": "simulated backend: held-out corpus prompts on which the gold judge compares "
            "the DPO'd policy's answers with the pre-DPO policy's (0 = off)"
        },
    )
    gold_win_samples: int = field(
        default=2,
        metadata={
            "help": "simulated backend: answers sampled per held-out prompt from each policy; the gold judge "
            "compares their mean scores (more samples, less sampling noise in each prompt's verdict)"
        },
    )
    include_pseudo: bool = field(default=False, metadata={"help": "train DPO on pseudo-labels too"})
    reward_labelled_pairs: bool = field(
        default=False,
        metadata={
            "help": "DPO also trains on pairs the final reward model labels: for every prompt, its unlabelled "
            "pair with the largest predicted margin (best vs worst of its answers); README: what it changed"
        },
    )
    eval_fraction: float = field(default=0.15, metadata={"help": "labelled pairs held out from DPO to measure it"})
    dpo_beta: float = field(default=0.1, metadata={"help": "DPO β"})
    dpo_learning_rate: float = field(default=5e-4, metadata={"help": "DPO learning rate"})
    dpo_epochs: float = field(default=2.0, metadata={"help": "DPO epochs"})
    dpo_batch_size: int = field(default=8, metadata={"help": "DPO per-device batch size"})
    dpo_max_length: int = field(default=128, metadata={"help": "tokens per prompt+response in DPO"})
    dpo_ld_alpha: float = field(
        default=None,
        metadata={
            "help": "LD-DPO (Liu et al., 2024): weight of the longer answer's tokens beyond the shorter one's length "
            "in both log-probabilities (1 = plain DPO), so DPO cannot win by length alone; unset: plain DPO"
        },
    )
    dpo_rpo_alpha: float = field(
        default=0.0,
        metadata={"help": "RPO: weight of an SFT (negative log-likelihood) term on the chosen answer (0 = off)"},
    )
    use_peft: bool = field(
        default=True, metadata={"help": "train a LoRA adapter (saved on its own) instead of all weights"}
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})

    def __post_init__(self):
        if not self.policy_model:
            raise ConfigError("policy_model: required (the causal-LM directory to align)")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend: must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if not 0 <= self.eval_fraction < 1 or not 0 <= self.flip_rate <= 1:
            raise ConfigError("eval_fraction in [0, 1) and flip_rate in [0, 1] are required")
        if self.dpo_ld_alpha is not None and not 0.0 <= self.dpo_ld_alpha <= 1.0:
            raise ConfigError(f"dpo_ld_alpha: must be in [0, 1], got {self.dpo_ld_alpha}")
        if self.dpo_rpo_alpha < 0:
            raise ConfigError(f"dpo_rpo_alpha: must be >= 0, got {self.dpo_rpo_alpha}")
        if self.gold_win_samples < 1:
            raise ConfigError(f"gold_win_samples: must be >= 1, got {self.gold_win_samples}")
        if self.backend == "simulated" and self.annotators < 1:
            raise ConfigError(f"annotators: must be >= 1, got {self.annotators}")
        if self.backend == "simulated" and not 1 <= self.annotators_per_pair <= self.annotators:
            # checked here, before any work: the backend would refuse it only after candidates were generated
            raise ConfigError(
                f"annotators_per_pair: must be in [1, annotators={self.annotators}], got {self.annotators_per_pair}"
            )


def load_prompts(config: AlignStageConfig, seed: int) -> list[str]:
    if config.prompts_file:
        return read_prompts(config.prompts_file)
    if not config.corpus:
        raise ConfigError("prompts_file or corpus: give prompts, or documents to cut them from")
    return prompts_from_documents(read_documents(config.corpus), config.num_prompts, seed=seed)


def read_documents(corpus: str) -> list[str]:
    """The 'text' of every JSONL row in a file, or in a directory's *.jsonl files."""
    path = Path(corpus)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    texts = []
    for file in files:
        try:
            texts.extend(
                json.loads(line)["text"] for line in file.read_text(encoding="utf-8").splitlines() if line.strip()
            )
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise PreferenceDataError(f"corpus: cannot read documents from {file}: {exc}") from None
    return texts


def make_backend(config: AlignStageConfig, ledger, seed: int, gold=None):
    from annotation.backends import LabelStudioBackend, SimulatedBackend
    from annotation.simulated import SimulatedAnnotators

    if config.backend == "labelstudio":
        return LabelStudioBackend(
            ledger,
            url=config.label_studio_url or os.environ.get("LABEL_STUDIO_URL"),
            api_key=os.environ.get("LABEL_STUDIO_API_KEY"),
        )
    annotators = SimulatedAnnotators(
        gold or gold_score,
        n_annotators=config.annotators,
        temperature=config.annotator_temperature,
        flip_rate=config.flip_rate,
        seed=seed,
    )
    return SimulatedBackend(ledger, annotators, annotators_per_pair=config.annotators_per_pair)


def candidate_pairs(config: AlignStageConfig, candidates: CandidateConfig, logits_processor=None):
    """Generate the candidates once; a re-run reads them back so the loop sees the same pool."""
    from annotation.pairs import read_pairs_jsonl, write_pairs_jsonl

    path = Path(config.output_dir) / "pairs.jsonl"
    if path.is_file():
        return read_pairs_jsonl(path)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.policy_model)
    model = AutoModelForCausalLM.from_pretrained(config.policy_model).eval()
    prompts = load_prompts(config, candidates.sample_seed)
    pairs = generate_candidate_pairs(
        model, tokenizer, prompts, candidates, logits_processor, model_id=Path(config.policy_model).name
    )
    write_pairs_jsonl(path, pairs)
    return pairs


def train_dpo(policy_model: str, preferences: str, output_dir: str, config: AlignStageConfig, seed: int = 0) -> dict:
    """DPO through the TRL script's own `main`, with the stage's handful of knobs."""
    from trl import ModelConfig, ScriptArguments

    from alignment.dpo import main as dpo_main

    script_args = ScriptArguments(dataset_name=preferences)
    model_args = ModelConfig(
        model_name_or_path=policy_model, use_peft=config.use_peft, lora_r=config.lora_r, lora_alpha=2 * config.lora_r
    )
    return dpo_main(script_args, dpo_training_args(output_dir, config, seed), model_args)


def dpo_training_args(output_dir: str, config: AlignStageConfig, seed: int = 0):
    """TRL's DPOConfig for the stage: plain sigmoid DPO, LD-DPO's length weighting, or RPO's SFT term."""
    from trl import DPOConfig

    # RPO is TRL's multi-loss form: DPO's sigmoid loss plus a weighted SFT loss on the chosen answer
    rpo = (
        {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, config.dpo_rpo_alpha]} if config.dpo_rpo_alpha else {}
    )
    return DPOConfig(
        output_dir=output_dir,
        beta=config.dpo_beta,
        learning_rate=config.dpo_learning_rate,
        num_train_epochs=config.dpo_epochs,
        per_device_train_batch_size=config.dpo_batch_size,
        max_length=config.dpo_max_length,
        ld_alpha=config.dpo_ld_alpha,
        **rpo,
        gradient_checkpointing=False,
        use_cpu=_no_gpu(),
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=10,
        seed=seed,
        disable_tqdm=True,
    )


def _no_gpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def split_preferences(path: Path, eval_fraction: float, seed: int) -> tuple[Path, Path | None]:
    """Hold out a share of the labelled pairs so DPO's effect is measured on pairs it never saw."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(seed).shuffle(lines)
    n_eval = int(len(lines) * eval_fraction)
    train, held = lines[n_eval:], lines[:n_eval]
    train_path = path.with_name("preferences.train.jsonl")
    train_path.write_text("\n".join(train) + "\n", encoding="utf-8")
    if not held:
        return train_path, None
    eval_path = path.with_name("preferences.eval.jsonl")
    eval_path.write_text("\n".join(held) + "\n", encoding="utf-8")
    return train_path, eval_path


def run_align_stage(
    config: AlignStageConfig,
    candidates: CandidateConfig | None = None,
    loop: ActiveLoopConfig | None = None,
    rm_config: RewardModelConfig | None = None,
    logits_processor=None,
    gold=None,
    family: RewardFamilyConfig | None = None,
) -> dict:
    """`gold`: the simulated annotators' judge (default `alignment.gold.gold_score`); unused with Label Studio."""
    from annotation.ledger import Ledger

    candidates, loop, rm_config = (
        candidates or CandidateConfig(),
        loop or ActiveLoopConfig(),
        rm_config or RewardModelConfig(),
    )
    family = family or RewardFamilyConfig()
    if not config.output_dir:
        raise ConfigError("output_dir: required (where pairs, labels and the aligned model go)")
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs = candidate_pairs(config, candidates, logits_processor)
    if loop.budget > len(pairs):
        raise ConfigError(f"budget: {loop.budget} labels asked but only {len(pairs)} candidate pairs were generated")
    pool, eval_index, eval_y = gold_held_out(pairs, config, loop, gold or gold_score)
    reward_model, eval_x = pool_reward_model(pairs, pool, eval_index, config, rm_config, family, loop.selection_seed)
    with Ledger(config.ledger or out / "ledger.sqlite") as ledger:
        backend = make_backend(config, ledger, loop.selection_seed, gold)
        figures = {
            "candidate_pairs": len(pairs),
            "gold_eval_pairs": 0 if eval_y is None else len(eval_y),
            **run_active_loop(
                [pairs[i] for i in pool],
                reward_model,
                backend,
                loop,
                rm_config,
                eval_x=eval_x,
                eval_y=eval_y,
                pool_margins=config.reward_labelled_pairs,
            ),
        }
        margins = figures.pop("pool_margins", None)
        if figures["state"] != "done":
            log.info("waiting for %d labels; run again when they are in", figures["waiting_for"])
            return figures
        if config.backend == "simulated" and loop.strategy != "random" and figures.get("curve"):
            figures["random_curve"] = random_selection_curve(
                [pairs[i] for i in pool], reward_model, config, loop, rm_config, eval_x, eval_y, gold
            )
        preferences = out / "preferences.jsonl"
        figures["exported_pairs"] = ledger.export_trl(preferences, include_pseudo=config.include_pseudo)
        asked = None if margins is None else {label.pair_id for label in ledger.labels()} | set(ledger.pending())
    if figures["exported_pairs"] < 2:
        raise PreferenceDataError(f"only {figures['exported_pairs']} usable labels: too few to train DPO")
    train_path, eval_path = split_preferences(preferences, config.eval_fraction, loop.selection_seed)
    if margins is not None:
        rows = reward_labelled_rows([pairs[i] for i in pool], margins, asked)
        figures["reward_labelled_pairs"] = len(rows)
        if config.backend == "simulated" and rows:
            judge = gold or gold_score
            scores = [(judge(p, c), judge(p, r)) for p, c, r, _ in rows]
            decided = [c > r for c, r in scores if c != r]
            figures["reward_labelled_gold_agreement"] = round(sum(decided) / max(len(decided), 1), 4)
        write_reward_labelled(rows, out / "reward_labelled.jsonl", train_path)
    dpo = train_dpo(config.policy_model, str(train_path), str(out / "model"), config, seed=loop.selection_seed)
    figures["dpo"] = dpo
    held_out = {}
    if eval_path is not None:
        held_out["heldout_implicit_reward_accuracy"] = preference_rows(eval_path)
    if eval_index is not None:
        # The gold-judged pairs are many more than the labels held out of DPO, and noise-free,
        # so they are the steadier measure of whether DPO moved the policy toward the judge.
        held_out["gold_implicit_reward_accuracy"] = [ordered(pairs[i], a_won) for i, a_won in zip(eval_index, eval_y)]
        figures["dpo"]["gold_eval_pairs"] = len(eval_index)
    figures["dpo"].update(implicit_reward_accuracies(config.policy_model, out / "model", held_out))
    if eval_path is not None:
        figures["dpo"]["heldout_pairs"] = len(held_out["heldout_implicit_reward_accuracy"])
    if config.backend == "simulated" and config.gold_win_prompts and (config.eval_corpus or config.corpus):
        figures["dpo"]["gold_win_rate"] = gold_win_rate(
            config, pairs, out / "model", gold or gold_score, candidates, loop.selection_seed
        )
    figures["dpo"]["verdict"] = dpo_verdict(figures["dpo"])
    if not figures["dpo"]["verdict"]["helped"]:
        log.warning("%s", figures["dpo"]["verdict"]["text"])
    figures["model_dir"] = str(out / "model")
    (out / "figures.json").write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
    return figures


def reward_labelled_rows(pool_pairs, margins, requested: set[str]) -> list[tuple[str, str, str, float]]:
    """(prompt, chosen, rejected, σ(margin)) for every prompt: of its within-prompt pairs that nobody
    was asked about, the one the reward model separates most. With all K(K-1)/2 pairs of a prompt present that
    is its best answer against its worst (margins are differences of one reward), the RLHF-lite step that turns
    a few human labels into a DPO pair for every prompt (as rejection-sampling DPO does with a reward model)."""
    import math

    best: dict[str, tuple[float, int]] = {}
    for i, pair in enumerate(pool_pairs):
        if pair.pair_id in requested or pair.metadata.get("kind", "within_prompt") != "within_prompt":
            continue
        if margins[i] != 0 and abs(margins[i]) > abs(best.get(pair.prompt, (0.0, -1))[0]):
            best[pair.prompt] = (float(margins[i]), i)
    rows = []
    for margin, i in best.values():
        prompt, chosen, rejected = ordered(pool_pairs[i], margin > 0)
        rows.append((prompt, chosen, rejected, round(1 / (1 + math.exp(-abs(margin))), 4)))
    return rows


def write_reward_labelled(rows, path: Path, train_path: Path) -> None:
    """The reward model's pairs on their own (with its confidence) and appended to DPO's training split."""
    lines = [json.dumps({"prompt": p, "chosen": c, "rejected": r, "confidence": conf}) for p, c, r, conf in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    with train_path.open("a", encoding="utf-8") as train:
        train.writelines(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n" for p, c, r, _ in rows)


def random_selection_curve(pool_pairs, reward_model, config, loop, rm_config, eval_x, eval_y, gold) -> list[dict]:
    """The same loop, budget and simulated annotators with random selection, in a scratch ledger: the baseline
    the run's label-efficiency curve is drawn against. Only where it is cheap: the linear family's fixed
    features (a trained family would train a second reward model; there the curve is left out).
    """
    import tempfile

    import numpy as np

    from annotation.ledger import Ledger

    if not isinstance(reward_model, np.ndarray):
        return []
    random_loop = ActiveLoopConfig(**{**asdict(loop), "strategy": "random"})
    with tempfile.TemporaryDirectory(prefix="mintline-random-") as scratch:
        with Ledger(Path(scratch) / "ledger.sqlite") as ledger:
            backend = make_backend(config, ledger, loop.selection_seed, gold)
            return run_active_loop(
                pool_pairs, reward_model, backend, random_loop, rm_config, eval_x=eval_x, eval_y=eval_y
            )["curve"]


def pool_reward_model(
    pairs,
    pool,
    eval_index,
    config: AlignStageConfig,
    rm_config: RewardModelConfig,
    family: RewardFamilyConfig,
    seed: int,
):
    """The loop's reward model over the pool (pair i = responses 2i, 2i+1) and the gold-judged pairs after it.

    The linear family keeps its fixed feature matrix (reduced on every candidate pair, unlabelled); a trained
    family reads the pool's and the held-out pairs' responses once through its frozen layers.
    """
    import numpy as np

    if family.reward_model == "linear":
        features = FeatureConfig(
            encoder=config.features, policy_model=config.policy_model, cache_dir=config.feature_cache
        )
        x = pair_feature_matrix(pairs, features, rm_config.feature_dim, rm_config.whiten)
        return x[pool], None if eval_index is None else x[eval_index]
    ordered_pairs = [pairs[i] for i in pool] + [pairs[i] for i in (eval_index or [])]
    prompts = [p.prompt for p in ordered_pairs for _ in (0, 1)]
    responses = [t for p in ordered_pairs for t in (p.response_a, p.response_b)]
    inputs = prepare_reward_inputs(family, prompts, responses, policy_model=config.policy_model)
    a, b = 2 * np.arange(len(ordered_pairs)), 2 * np.arange(len(ordered_pairs)) + 1
    model = new_reward_model(inputs, rm_config, a[: len(pool)], b[: len(pool)], seed=seed)
    eval_x = None if eval_index is None else (a[len(pool) :], b[len(pool) :])
    return model, eval_x


def gold_win_rate(
    config: AlignStageConfig, pairs, model_dir: Path, gold, candidates: CandidateConfig, seed: int
) -> dict:
    """The gold judge's win rate of the DPO'd policy's answers over the pre-DPO policy's, on prompts cut from
    paragraphs that no candidate pair's prompt came from (the same sampling seed for both, so they differ only
    in the weights)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignment.candidates import sample_responses
    from alignment.evaluation import win_rate

    try:
        prompts = prompts_from_documents(
            read_documents(config.eval_corpus or config.corpus),
            config.gold_win_prompts,
            seed=seed + 7,
            avoid=list({p.prompt for p in pairs}),
        )
    except PreferenceDataError:  # every paragraph gave a candidate prompt: nothing is held out
        return {"n": 0}
    tokenizer = AutoTokenizer.from_pretrained(config.policy_model)
    sampling = CandidateConfig(
        **{**asdict(candidates), "samples_per_prompt": config.gold_win_samples, "sample_seed": 1000 + seed}
    )
    scores, terms = {}, {}
    for name, model in (
        ("dpo", load_aligned(config.policy_model, model_dir)),
        ("pre_dpo", AutoModelForCausalLM.from_pretrained(config.policy_model).eval()),
    ):
        responses = sample_responses(model, tokenizer, prompts, sampling)
        scores[name] = [sum(gold(p, r) for r in rs) / len(rs) for p, rs in zip(prompts, responses)]
        if gold is gold_score:  # the rubric's terms: a DPO may trade one for another at no change in the sum
            terms[name] = mean_components([gold_components(p, r) for p, rs in zip(prompts, responses) for r in rs])
    result = win_rate(scores["dpo"], scores["pre_dpo"], seed=seed)
    result["mean_gold"] = {k: round(sum(v) / len(v), 4) for k, v in scores.items()}
    if terms:
        result["mean_gold_terms"] = terms
    result["answers_per_prompt"] = config.gold_win_samples
    return result


def mean_components(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(sum(row[key] for row in rows) / len(rows), 4) for key in rows[0]}


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (sound at small n and near 0 or 1)."""
    import math

    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def dpo_verdict(dpo: dict) -> dict:
    """Did DPO beat the pre-DPO policy? Only if a 95% interval lies above 0.5, measured (in this order of
    preference) as the gold judge's win rate of the DPO'd policy's answers over the pre-DPO policy's on held-out
    prompts; else the implicit-reward accuracy (the pre-DPO policy's is 0.5, every pair a tie) on the gold-judged
    pairs (noise-free, never labelled); else on the labelled pairs held out of DPO."""
    win = dpo.get("gold_win_rate")
    if win and win.get("n"):
        low, high = (round(0.5 + m, 4) for m in win["margin_ci"])
        helped = low > 0.5
        answers = win.get("answers_per_prompt")
        interval = f"{win['win_rate']:.3f} (95% CI {low:.3f} to {high:.3f}) on {win['n']} held-out prompts" + (
            f" ({answers} answers each)" if answers else ""
        )
        text = (
            f"DPO beat the pre-DPO policy on the gold judge: win rate {interval}"
            if helped
            else f"DPO did not measurably beat the pre-DPO policy on the gold judge: win rate {interval} "
            "(0.5 = no change); more labels, or a better reward model, are needed"
        )
        return {
            "helped": helped,
            "accuracy": win["win_rate"],
            "ci": [low, high],
            "pairs": win["n"],
            "measured_on": "held-out prompts (gold win rate vs pre-DPO)",
            "text": text,
        }
    if dpo.get("gold_implicit_reward_accuracy") is not None:
        accuracy, pairs, where = dpo["gold_implicit_reward_accuracy"], dpo.get("gold_eval_pairs") or 0, "gold pairs"
    elif dpo.get("heldout_implicit_reward_accuracy") is not None:
        accuracy, pairs, where = (
            dpo["heldout_implicit_reward_accuracy"],
            dpo.get("heldout_pairs") or 0,
            "held-out labels",
        )
    else:
        return {"helped": False, "text": "DPO's effect was not measured: no pairs were held out of it"}
    low, high = wilson_interval(accuracy * pairs, pairs)
    helped = low > 0.5
    interval = f"{accuracy:.3f} (95% CI {low:.3f} to {high:.3f}) on {pairs} {where}"
    text = (
        f"DPO moved the policy toward the preferred responses: implicit-reward accuracy {interval}"
        if helped
        else f"DPO did not measurably beat the pre-DPO policy: implicit-reward accuracy {interval}, and the "
        "pre-DPO policy scores 0.5 (chance); more labels, or a better reward model, are needed"
    )
    return {
        "helped": helped,
        "accuracy": accuracy,
        "ci": [round(low, 4), round(high, 4)],
        "pairs": pairs,
        "measured_on": where,
        "text": text,
    }


def gold_held_out(pairs, config: AlignStageConfig, loop: ActiveLoopConfig, gold):
    """(pool positions, eval positions, eval targets): with simulated annotators, a few pairs are judged by
    the gold judge without noise and kept out of the pool, so each round's reward model (and at the end
    the DPO'd policy) can be scored. Target 1 means response A is the better one."""
    import numpy as np

    everything = np.arange(len(pairs))
    spare = len(pairs) - loop.budget
    size = min(config.gold_eval_pairs, spare) if config.backend == "simulated" else 0
    if size < 10:
        return everything, None, None
    held = np.sort(np.random.default_rng(loop.selection_seed + 1).choice(everything, size=size, replace=False))
    scores = [(gold(pairs[i].prompt, pairs[i].response_a), gold(pairs[i].prompt, pairs[i].response_b)) for i in held]
    decided = [(i, float(a > b)) for i, (a, b) in zip(held, scores) if a != b]
    pool = np.setdiff1d(everything, held)
    if len(decided) < 10:
        return everything, None, None
    index, targets = zip(*decided)
    return pool, list(index), np.asarray(targets)


def load_aligned(policy_model: str, model_dir: str | Path):
    """The aligned policy: a LoRA adapter put back onto its base, or a full model directory."""
    from transformers import AutoModelForCausalLM

    model_dir = Path(model_dir)
    if (model_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(policy_model)
        return PeftModel.from_pretrained(base, model_dir).eval()
    return AutoModelForCausalLM.from_pretrained(model_dir).eval()


def ordered(pair, a_won: bool) -> tuple[str, str, str]:
    """(prompt, chosen, rejected) of a candidate pair, given which response won."""
    if a_won:
        return pair.prompt, pair.response_a, pair.response_b
    return pair.prompt, pair.response_b, pair.response_a


def preference_rows(path: Path) -> list[tuple[str, str, str]]:
    from alignment.data import read_preference_file

    return [(r.prompt, r.chosen, r.rejected) for r in read_preference_file(path).rows]


def implicit_reward_accuracies(policy_model: str, model_dir: Path, named_rows: dict) -> dict:
    """{name: implicit-reward accuracy of the aligned policy on that name's (prompt, chosen, rejected) rows}."""
    if not named_rows:
        return {}
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignment.evaluation import implicit_reward_accuracy

    tokenizer = AutoTokenizer.from_pretrained(policy_model)
    policy = load_aligned(policy_model, model_dir)
    reference = (
        None if hasattr(policy, "disable_adapter") else AutoModelForCausalLM.from_pretrained(policy_model).eval()
    )
    return {
        name: implicit_reward_accuracy(policy, reference, tokenizer, *map(list, zip(*rows)))
        for name, rows in named_rows.items()
    }


def config_dict(*configs) -> dict:
    return {type(c).__name__: asdict(c) for c in configs}
