"""Robustness and quality of a key: TPR / AUC per attack and length, FPR on human text, quality cost.

`evaluate_watermark` generates N texts with and N without the mark (through a `generate`
callable the pipeline supplies, so this package never imports the model code), cuts them to
each length (32, 64, 128, 256 tokens by default), applies each attack to both sets, and
detects with the key and tokenizer only. Per (attack, length) it reports TPR at each FPR --
the fraction of marked texts whose exact p-value is <= the FPR -- and the ROC AUC of marked
vs unmarked z-scores, each with a percentile bootstrap interval. The FPR itself is measured
on human passages (>= 1,000 in the benchmark), where the exact test must hold its nominal
rate. Quality: perplexity of marked vs unmarked completions under a reference model, and
distinct-n. A PNG shows the score distributions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from watermark.attacks import Attacker, human_word_pool, parse_attack
from watermark.detect import DetectionConfig, Detector, TextTokenizer
from watermark.errors import ConfigError
from watermark.keys import WatermarkKey
from watermark.stats import binomial_sf
from watermark.weight_attacks import is_weight_spec, parse_modification

DEFAULT_ATTACKS = [
    "none",
    "word_deletion:0.3",
    "word_substitution:0.5",
    "word_insertion:0.3",
    "token_substitution:0.2",
    "copy_paste:0.5",
    "crop:0.5",
]

# generate(prompts, max_new_tokens, logits_processor or None) -> token ids of exactly max_new_tokens per prompt
GenerateFn = Callable[[Sequence[str], int, Any], list[list[int]]]
# perplexity(prompts, completion token ids) -> one perplexity per completion
PerplexityFn = Callable[[Sequence[str], Sequence[Sequence[int]]], list[float]]


@dataclass
class EvaluationConfig:
    num_samples: int = field(default=200, metadata={"help": "texts generated with and without the mark"})
    lengths: list[int] = field(
        default_factory=lambda: [32, 64, 128, 256], metadata={"help": "token lengths to evaluate"}
    )
    attacks: list[str] = field(
        default_factory=lambda: list(DEFAULT_ATTACKS),
        metadata={
            "help": "text attacks as name:rate; weight attacks (finetune:STEPS[:LR], lora:STEPS[:LR], int8, "
            "wanda:SPARSITY, average:WEIGHT, each optionally +TEXT_ATTACK on top) run the survival suite of the "
            "key's weight mark"
        },
    )
    fprs: list[float] = field(
        default_factory=lambda: [0.01, 0.0001], metadata={"help": "false-positive rates for TPR"}
    )
    bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples for the intervals"})
    confidence: float = field(default=0.95, metadata={"help": "coverage of the bootstrap intervals"})
    attack_seed: int = field(default=0, metadata={"help": "seed of the attacks and the bootstrap"})

    def __post_init__(self):
        if self.num_samples < 2:
            raise ValueError(f"num_samples: must be >= 2, got {self.num_samples}")
        if not self.lengths or min(self.lengths) < 8:
            raise ValueError(f"lengths: need at least one length >= 8 tokens, got {self.lengths}")
        if any(not 0 < f < 1 for f in self.fprs):
            raise ValueError(f"fprs: each must be in (0, 1), got {self.fprs}")
        if not 0 < self.confidence < 1 or self.bootstrap < 10:
            raise ValueError("confidence: must be in (0, 1); bootstrap: >= 10 resamples")
        for spec in self.attacks:
            try:
                parse_modification(spec) if is_weight_spec(spec) else parse_attack(spec)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None


def text_attack_specs(specs: Sequence[str]) -> list[str]:
    """The specs that edit text only; weight attacks (`int8`, `finetune:...+crop:0.5`) are the survival suite's."""
    return [spec for spec in specs if not is_weight_spec(spec)]


# -- inputs -------------------------------------------------------------------------------------
def split_passages(texts: Iterable[str], words: int = 120, limit: int | None = None) -> list[str]:
    """Cut texts into passages of `words` words, dropping near-duplicates.

    The built-in corpus repeats whole sections (pydoc topics overlap): a passage at least half
    of whose 8-word shingles were already seen would be the same evidence counted twice, and
    one unlucky text would look like several false positives.
    """
    passages: list[str] = []
    seen: set[int] = set()
    for text in texts:
        tokens = text.split(" ")
        for start in range(0, len(tokens) - words // 2, words):
            passage = " ".join(tokens[start : start + words])
            plain = passage.split()
            shingles = {hash(tuple(plain[i : i + 8])) for i in range(max(1, len(plain) - 7))}
            if len(shingles & seen) * 2 >= len(shingles):
                continue
            seen |= shingles
            passages.append(passage)
            if limit is not None and len(passages) >= limit:
                return passages
    return passages


def prompts_from(passages: Sequence[str], count: int, words: int = 6) -> list[str]:
    """`count` prompts, the opening words of passages spread over the whole list."""
    prompts = [" ".join(p.split()[:words]) for p in passages if len(p.split()) >= words]
    if not prompts:
        raise ConfigError("no passage is long enough to make a prompt")
    step = max(1, len(prompts) // max(1, count))
    return [prompts[(i * step) % len(prompts)] for i in range(count)]


# -- statistics ---------------------------------------------------------------------------------
def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(score of a marked text > score of an unmarked one), ties counted half (Mann-Whitney U)."""
    positive, negative = np.asarray(positive, float), np.asarray(negative, float)
    if len(positive) == 0 or len(negative) == 0:
        return math.nan
    scores = np.concatenate([positive, negative])
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    average_rank = (upper - (counts - 1) / 2.0)[inverse]  # 1-based ranks, ties averaged
    u = average_rank[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2.0
    return float(u / (len(positive) * len(negative)))


def bootstrap_interval(
    statistic: Callable, samples: Sequence[np.ndarray], resamples: int, confidence: float, rng
) -> list[float]:
    """Percentile bootstrap: resample each sample with replacement, recompute the statistic."""
    values = []
    for _ in range(resamples):
        values.append(statistic(*[s[rng.integers(0, len(s), len(s))] for s in samples]))
    values = np.asarray(values, dtype=float)
    tail = (1.0 - confidence) / 2.0 * 100.0
    return [float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100.0 - tail))]


def distinct_n(sequences: Sequence[Sequence[int]], n: int) -> float:
    """Distinct n-grams / all n-grams over all sequences (Li et al. 2016): 1.0 means no repetition."""
    grams, total = set(), 0
    for seq in sequences:
        seq = list(seq)
        for i in range(len(seq) - n + 1):
            grams.add(tuple(seq[i : i + n]))
            total += 1
    return len(grams) / total if total else math.nan


def false_positive_report(p_values: np.ndarray, fprs: Sequence[float]) -> dict[str, Any]:
    """Observed FPR on human text per nominal rate, with the exact chance of seeing that many."""
    n = len(p_values)
    report: dict[str, Any] = {"passages": n}
    for fpr in fprs:
        hits = int((p_values <= fpr).sum())
        report[f"fpr_at_{fpr:g}"] = {
            "false_positives": hits,
            "rate": hits / n if n else math.nan,
            # P(X >= hits) for X ~ Binomial(n, fpr): small means more false positives than nominal
            "p_value_vs_nominal": binomial_sf(hits, n, fpr) if n else math.nan,
        }
    return report


# -- the evaluation -----------------------------------------------------------------------------
def evaluate_watermark(
    key: WatermarkKey,
    tokenizer_dir: str | Path,
    prompts: Sequence[str],
    human_texts: Sequence[str],
    generate: GenerateFn,
    config: EvaluationConfig | None = None,
    out_dir: str | Path | None = None,
    perplexity: PerplexityFn | None = None,
    processor=None,
    pad_id: int = 0,
) -> dict[str, Any]:
    """Run the whole evaluation; writes evaluation.json and score_distributions.png to out_dir."""
    from watermark.processor import logits_processor_for

    config = config or EvaluationConfig()
    if not prompts:
        raise ConfigError("evaluation needs at least one prompt")
    if not human_texts:
        raise ConfigError("evaluation needs human texts (for the false-positive rate and the attacks)")
    tokenizer = TextTokenizer(tokenizer_dir)
    detector = Detector([key], tokenizer_dir, DetectionConfig(min_tokens=1))
    prompts = [prompts[i % len(prompts)] for i in range(config.num_samples)]
    longest = max(config.lengths)
    processor = processor or logits_processor_for(key, vocab_size=key.vocab_size)
    marked_ids = [list(row)[:longest] for row in generate(prompts, longest, processor)]
    plain_ids = [list(row)[:longest] for row in generate(prompts, longest, None)]

    def decode(ids):
        return tokenizer.tokenizer.decode(list(ids), skip_special_tokens=True)

    def encode(text):
        return tokenizer.tokenizer.encode(text, add_special_tokens=False).ids

    attacker = Attacker(
        human_word_pool(human_texts), human_texts, encode, decode, tokenizer.tokenizer.get_vocab_size()
    )
    attacks = [parse_attack(spec) for spec in text_attack_specs(config.attacks)]
    rng = np.random.default_rng(config.attack_seed)
    rows, distributions = [], {}
    for length in config.lengths:
        marked = [decode(ids[:length]) for ids in marked_ids]
        plain = [decode(ids[:length]) for ids in plain_ids]
        for index, attack in enumerate(attacks):
            attack_rng = np.random.default_rng([config.attack_seed, length, index])
            pos = detector.detect_texts([attacker.apply(attack, t, attack_rng) for t in marked])
            neg = detector.detect_texts([attacker.apply(attack, t, attack_rng) for t in plain])
            row = _row(attack.label, length, pos, neg, config, rng)
            rows.append(row)
            if length == longest:
                distributions[attack.label] = [r.z_score for r in pos]
                if attack.name == "none":
                    distributions["unmarked"] = [r.z_score for r in neg]

    human_results = detector.detect_texts(list(human_texts))
    human_p = np.array([r.p_value for r in human_results if r.num_tokens_scored > 0])
    distributions["human"] = [r.z_score for r in human_results if r.num_tokens_scored > 0]
    human = false_positive_report(human_p, config.fprs)
    quality = _quality(prompts, marked_ids, plain_ids, perplexity)
    bayesian = None
    if key.scheme == "synthid":  # its Bayesian detector is trained here, on these samples
        from watermark.synthid import train_bayesian_detector

        detector_dir = Path(out_dir) / "bayesian_detector" if out_dir is not None else None
        _, bayesian = train_bayesian_detector(
            key, marked_ids, plain_ids, pad_id, detector_dir, seed=config.attack_seed
        )
    report = {
        "key_id": key.key_id,
        "scheme": key.scheme,
        "params": key.params,
        "config": asdict(config),
        "table": rows,
        "human": human,
        "quality": quality,
        "summary": _summary(rows, human, quality, config),
    }
    if bayesian is not None:
        report["bayesian_detector"] = bayesian
        report["summary"]["auc_bayesian_posterior"] = bayesian["auc_bayesian_posterior"]
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        report["plot"] = str(plot_distributions(distributions, out / "score_distributions.png", key, longest))
        (out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        report["report"] = str(out / "evaluation.json")
    return report


def _row(label, length, pos, neg, config, rng) -> dict[str, Any]:
    pos_p = np.array([r.p_value for r in pos])
    pos_z, neg_z = np.array([r.z_score for r in pos]), np.array([r.z_score for r in neg])
    neg_p = np.array([r.p_value for r in neg])
    row: dict[str, Any] = {
        "attack": label,
        "length": length,
        "mean_tokens_scored": float(np.mean([r.num_tokens_scored for r in pos])),
    }
    for fpr in config.fprs:
        hits = (pos_p <= fpr).astype(float)
        row[f"tpr_at_{fpr:g}"] = float(hits.mean())
        row[f"tpr_at_{fpr:g}_ci"] = bootstrap_interval(np.mean, [hits], config.bootstrap, config.confidence, rng)
        row[f"unmarked_fpr_at_{fpr:g}"] = float((neg_p <= fpr).mean())
    row["auc"] = roc_auc(pos_z, neg_z)
    row["auc_ci"] = bootstrap_interval(roc_auc, [pos_z, neg_z], config.bootstrap, config.confidence, rng)
    row["median_z_marked"], row["median_z_unmarked"] = float(np.median(pos_z)), float(np.median(neg_z))
    return row


def _quality(prompts, marked_ids, plain_ids, perplexity) -> dict[str, Any]:
    quality: dict[str, Any] = {}
    for n in (1, 2, 3):
        quality[f"distinct_{n}_marked"] = distinct_n(marked_ids, n)
        quality[f"distinct_{n}_unmarked"] = distinct_n(plain_ids, n)
    if perplexity is not None:
        marked_ppl = np.array(perplexity(prompts, marked_ids))
        plain_ppl = np.array(perplexity(prompts, plain_ids))
        quality["perplexity_marked"] = float(np.exp(np.mean(np.log(marked_ppl))))
        quality["perplexity_unmarked"] = float(np.exp(np.mean(np.log(plain_ppl))))
        quality["perplexity_ratio"] = quality["perplexity_marked"] / quality["perplexity_unmarked"]
    return quality


def _summary(rows, human, quality, config) -> dict[str, Any]:
    """Flat headline figures for run.json and the benchmark's JSON line."""
    summary: dict[str, Any] = {}
    for row in rows:
        tag = row["attack"].replace(":", "_")
        summary[f"tpr_at_1pct_fpr_{tag}_{row['length']}"] = row.get("tpr_at_0.01")
        summary[f"auc_{tag}_{row['length']}"] = row["auc"]
    for fpr in config.fprs:
        summary[f"human_fpr_at_{fpr:g}"] = human[f"fpr_at_{fpr:g}"]["rate"]
    summary["human_passages"] = human["passages"]
    summary.update({k: v for k, v in quality.items() if k.startswith("perplexity") or k.startswith("distinct_2")})
    return summary


def plot_distributions(distributions: dict[str, list[float]], path: Path, key: WatermarkKey, length: int) -> Path:
    """Histograms of z-scores: human text, unmarked and marked samples, and marked under each attack."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    everything = [z for zs in distributions.values() for z in zs]
    bins = np.linspace(min(everything + [-4.0]), max(everything + [4.0]), 60)
    for label in ("human", "unmarked", "none"):
        if label in distributions:
            name = "marked (no attack)" if label == "none" else label
            axes[0].hist(distributions[label], bins=bins, alpha=0.55, density=True, label=name)
    axes[0].set_title(f"z-scores at {length} tokens")
    for label, zs in distributions.items():
        if label not in ("human", "unmarked"):
            axes[1].hist(zs, bins=bins, histtype="step", density=True, label=label)
    axes[1].set_title("marked text under attacks")
    for ax in axes:
        ax.axvline(3.72, color="grey", linestyle=":", linewidth=1)  # z of a 1e-4 one-sided normal tail
        ax.set_xlabel("z-score")
        ax.legend(fontsize=7)
    fig.suptitle(f"{key.key_id} ({key.scheme} {json.dumps(key.params)})", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def perplexity_scorer(model, tokenizer, batch_size: int = 16) -> PerplexityFn:
    """Perplexity of each completion given its prompt under `model` (a transformers causal LM)."""
    import torch

    def score(prompts: Sequence[str], completions: Sequence[Sequence[int]]) -> list[float]:
        out: list[float] = []
        model.eval()
        for start in range(0, len(prompts), batch_size):
            rows = []
            for prompt, completion in zip(
                prompts[start : start + batch_size], completions[start : start + batch_size]
            ):
                prompt_ids = tokenizer(prompt)["input_ids"]
                rows.append((prompt_ids + list(completion), len(prompt_ids)))
            width = max(len(ids) for ids, _ in rows)
            ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            labels = torch.full((len(rows), width), -100, dtype=torch.long)
            for i, (row, prompt_len) in enumerate(rows):
                ids[i, : len(row)] = torch.tensor(row)
                mask[i, : len(row)] = 1
                labels[i, prompt_len : len(row)] = torch.tensor(row[prompt_len:])
            with torch.inference_mode():
                logits = model(input_ids=ids, attention_mask=mask).logits.float()
            log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
            target = labels[:, 1:]
            valid = target != -100
            nll = -log_probs.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1) * valid
            per_text = nll.sum(1) / valid.sum(1).clamp(min=1)
            out.extend(float(math.exp(v)) for v in per_text)
        return out

    return score
