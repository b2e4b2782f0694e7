"""The pool-based label-efficiency benchmark behind `mintline align benchmark`.

Per seed: shuffle the pairs, hold out a test split, give every pair a random a/b order (so the
label is balanced), and fix which pool labels a noisy annotator would flip (`label_noise`) —
the same flips for every strategy, so strategies differ only in what they ask. Every strategy
starts from the same random warm-start batch, then asks for one batch at a time; a label is
revealed only when asked. After each batch the Bradley–Terry reward model is refitted and its
accuracy on the (clean) test split is recorded. `report.py` turns the curves into label ratios.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alignment.acquisition import SelectionContext, StrategySpec, parse_strategies, parse_strategy, pseudo_label
from alignment.bradley_terry import RewardModelConfig
from alignment.data import PreferenceRow, read_preference_file
from alignment.errors import ConfigError
from alignment.features import FeatureConfig
from alignment.reward_models import RewardFamilyConfig, RewardInputs, new_reward_model, prepare_reward_inputs

log = logging.getLogger("alignment")


@dataclass
class BenchmarkConfig:
    pairs: str = field(
        default=None, metadata={"help": "preference JSONL (.gz ok): prompt/chosen/rejected, or hh-rlhf dialogues"}
    )
    strategies: str = field(
        default="random,uncertainty,bald,disagreement,fisher,thompson,uncertainty+kcenter,adpo",
        metadata={"help": "comma-separated strategies; random (the baseline) is always included"},
    )
    budget: int = field(default=400, metadata={"help": "human labels each strategy may ask for"})
    seeds: int = field(default=5, metadata={"help": "independent splits and runs; intervals are over these"})
    first_seed: int = field(
        default=0,
        metadata={"help": "seeds are first_seed .. first_seed+seeds-1 (tune on one range, report on another)"},
    )
    features: str = field(default="minilm", metadata={"help": "reward-model features, identical for every strategy"})
    baseline_features: str = field(
        default=None,
        metadata={"help": "also run random with these features and report the gain of --features over them"},
    )
    baseline_reward_model: str = field(
        default=None,
        metadata={
            "help": "also run random with this reward-model family (e.g. 'linear') on --features, "
            "and report the whole stage's gain over it (the system ratio)"
        },
    )
    ceiling: bool = field(default=True, metadata={"help": "also fit each seed's reward model on every pool label"})
    label_noise: float = field(default=0.0, metadata={"help": "probability that a revealed label is flipped"})
    test_size: int = field(default=0, metadata={"help": "held-out pairs (0 = min(2000, half the pairs))"})
    batch_size: int = field(default=0, metadata={"help": "labels per round (0 = budget / 20, at least 5)"})
    pseudo_threshold: float = field(default=0.9, metadata={"help": "+pseudo: confidence needed for a pseudo-label"})
    pseudo_cap: int = field(default=0, metadata={"help": "+pseudo: pseudo-labels per round at most (0 = batch_size)"})
    policy_model: str = field(default=None, metadata={"help": "causal-LM directory for 'policy' features"})
    cache_dir: str = field(
        default="~/.cache/mintline/features", metadata={"help": "cache of encoded texts ('' = none)"}
    )
    plot: str = field(default="label_efficiency.png", metadata={"help": "PNG of the accuracy curves ('' = none)"})
    label_noise_seed: int = field(
        default=12345, metadata={"help": "offset for the flip draws, so noise differs from the split"}
    )

    def __post_init__(self):
        if not self.pairs:
            raise ValueError("pairs: required (a preference JSONL file)")
        if self.budget < 2 or self.seeds < 1 or self.first_seed < 0:
            raise ValueError(
                f"budget >= 2, seeds >= 1 and first_seed >= 0 are required, got budget={self.budget}, "
                f"seeds={self.seeds}, first_seed={self.first_seed}"
            )
        if self.batch_size and self.budget < self.batch_size:
            raise ValueError(f"budget: {self.budget} labels is below one round of batch_size {self.batch_size}")
        if not 0 <= self.label_noise < 0.5:
            raise ValueError(f"label_noise: must be in [0, 0.5), got {self.label_noise}")
        if not 0.5 < self.pseudo_threshold <= 1:
            raise ValueError(f"pseudo_threshold: must be in (0.5, 1], got {self.pseudo_threshold}")

    def specs(self) -> list[StrategySpec]:
        specs = parse_strategies(self.strategies)
        if "random" not in [s.name for s in specs]:
            specs = parse_strategies("random") + specs
        return specs

    def round_size(self) -> int:
        return self.batch_size or max(5, self.budget // 20)


@dataclass
class Dataset:
    """Rows with their responses encoded for a reward-model family: row i's chosen is response 2i, its rejected 2i+1."""

    rows: list[PreferenceRow]
    inputs: RewardInputs
    skipped: dict[str, int]


def load_dataset(
    config: BenchmarkConfig, features: str, rows=None, skipped=None, family: RewardFamilyConfig | None = None
) -> Dataset:
    if rows is None:
        preference_file = read_preference_file(config.pairs)
        rows, skipped = preference_file.rows, preference_file.skipped_by_reason()
    prompts = [r.prompt for r in rows for _ in (0, 1)]
    responses = [t for r in rows for t in (r.chosen, r.rejected)]
    cache = str(Path(config.cache_dir).expanduser()) if config.cache_dir else None
    feature_config = FeatureConfig(encoder=features, policy_model=config.policy_model, cache_dir=cache)
    feature_config.parts()  # unknown encoders fail before any work
    family = family or RewardFamilyConfig()
    if cache and not family.rm_cache_dir:
        family = RewardFamilyConfig(**{**family.__dict__, "rm_cache_dir": cache})
    inputs = prepare_reward_inputs(family, prompts, responses, feature_config, policy_model=config.policy_model)
    return Dataset(rows=rows, inputs=inputs, skipped=skipped or {})


@dataclass
class Split:
    test: np.ndarray  # row indices
    pool: np.ndarray  # row indices
    chosen_is_a: np.ndarray  # per row: was chosen shown as a?
    flipped: np.ndarray  # per row: would a noisy annotator flip this label?
    warm_start: np.ndarray  # positions in pool shared by every strategy


def make_split(n_rows: int, config: BenchmarkConfig, seed: int, groups: list | None = None) -> Split:
    """Test and pool rows; rows sharing a prompt (`groups`) stay on one side, so no test response was seen in the pool."""
    rng = np.random.default_rng(seed)
    wanted = config.test_size or min(2000, n_rows // 2)
    order = rng.permutation(n_rows)
    if groups is not None:
        members: dict = {}
        for row in order:
            members.setdefault(groups[row], []).append(int(row))
        order = np.asarray([row for group in members.values() for row in group])
        sizes = np.cumsum([len(group) for group in members.values()])
        test_size = int(sizes[np.searchsorted(sizes, wanted)]) if wanted < n_rows else n_rows
    else:
        test_size = wanted
    pool_size = n_rows - test_size
    if config.budget > pool_size:
        raise ConfigError(
            f"budget: {config.budget} labels asked but the pool holds only {pool_size} pairs "
            f"({n_rows} pairs minus a test split of {test_size})"
        )
    noise_rng = np.random.default_rng(seed + config.label_noise_seed)
    warm = rng.choice(pool_size, size=min(config.round_size(), config.budget), replace=False)
    return Split(
        test=order[:test_size],
        pool=order[test_size:],
        chosen_is_a=rng.random(n_rows) < 0.5,
        flipped=noise_rng.random(n_rows) < config.label_noise,
        warm_start=warm,
    )


def oriented_pairs(split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Response indices a, b of every row in the split's a/b order, and labels y = [a preferred]."""
    n = len(split.chosen_is_a)
    a = np.where(split.chosen_is_a, 2 * np.arange(n), 2 * np.arange(n) + 1)
    b = np.where(split.chosen_is_a, 2 * np.arange(n) + 1, 2 * np.arange(n))
    return a, b, split.chosen_is_a.astype(float)


def length_matched(rows: list[PreferenceRow], tolerance: float = 0.1) -> np.ndarray:
    """Rows whose two responses differ in length by at most `tolerance` of the longer: length cannot decide them."""
    return np.asarray(
        [abs(len(r.chosen) - len(r.rejected)) <= tolerance * max(len(r.chosen), len(r.rejected), 1) for r in rows],
        dtype=bool,
    )


@dataclass
class Curve:
    labels: list[int]
    accuracy: list[float]
    seconds: float
    pseudo_labels: int = 0
    matched_accuracy: float | None = None  # at the full budget, on test pairs matched for length
    fit_seconds: list[float] = field(default_factory=list)  # the reward model's refit, per round


def run_strategy(
    spec: StrategySpec,
    dataset: Dataset,
    split: Split,
    config: BenchmarkConfig,
    rm_config: RewardModelConfig,
    seed: int,
    matched: np.ndarray | None = None,
) -> Curve:
    rng = np.random.default_rng(seed * 7919 + sum(map(ord, spec.name)))
    strategy = spec.build()
    a, b, y_true = oriented_pairs(split)
    pool_a, pool_b, test_a, test_b = a[split.pool], b[split.pool], a[split.test], b[split.test]
    revealed = np.where(split.flipped[split.pool], 1 - y_true[split.pool], y_true[split.pool])  # asked-for labels only
    test_y = y_true[split.test]
    model = new_reward_model(dataset.inputs, rm_config, pool_a, pool_b, seed=seed)
    asked = list(split.warm_start)
    is_asked = np.zeros(len(split.pool), dtype=bool)
    is_asked[asked] = True
    labels, accuracy, pseudo_total, seconds = [], [], 0, 0.0
    cap = config.pseudo_cap or config.round_size()
    pool_x = None
    while True:
        started = time.perf_counter()
        train_a, train_b, train_y, weight = pool_a[asked], pool_b[asked], revealed[asked], np.ones(len(asked))
        if spec.pseudo and model.head.fitted:
            pseudo = pseudo_label(model.head, pool_x, np.flatnonzero(~is_asked), config.pseudo_threshold, cap)
            pseudo_total += len(pseudo.indices)
            train_a = np.concatenate([train_a, pool_a[pseudo.indices]])
            train_b = np.concatenate([train_b, pool_b[pseudo.indices]])
            train_y = np.concatenate([train_y, pseudo.prefer_a])
            weight = np.concatenate([weight, pseudo.confidence])
        model.fit(train_a, train_b, train_y, weight)
        pool_x = model.pair_features(pool_a, pool_b)
        seconds += time.perf_counter() - started
        labels.append(len(asked))
        test_x = model.pair_features(test_a, test_b)
        accuracy.append(model.head.accuracy(test_x, test_y))
        if len(asked) >= config.budget:
            break
        started = time.perf_counter()
        candidates = np.flatnonzero(~is_asked)
        ctx = SelectionContext(model=model.head, x=pool_x, candidates=candidates, labelled=np.asarray(asked), rng=rng)
        batch = strategy.select(ctx, min(config.round_size(), config.budget - len(asked)))
        seconds += time.perf_counter() - started
        if len(set(batch.tolist())) != len(batch) or is_asked[batch].any():
            raise AssertionError(f"{spec.name} asked for a pair twice")  # a bug, not user input
        asked.extend(batch.tolist())
        is_asked[batch] = True
    matched_test = None if matched is None else matched[split.test]
    matched_accuracy = (
        model.head.accuracy(test_x[matched_test], test_y[matched_test])
        if matched_test is not None and matched_test.any()
        else None
    )
    return Curve(
        labels=labels,
        accuracy=accuracy,
        seconds=seconds,
        pseudo_labels=pseudo_total,
        matched_accuracy=matched_accuracy,
        fit_seconds=list(model.fit_seconds),
    )


def ceiling_accuracy(dataset: Dataset, split: Split, rm_config: RewardModelConfig, seed: int) -> float:
    """Held-out accuracy of the reward model fitted on every pool label (as annotators gave them, noise included).

    A trained family gets as many steps as a 20-round run, or three passes over the pool if that is more.
    """
    a, b, y_true = oriented_pairs(split)
    revealed = np.where(split.flipped[split.pool], 1 - y_true[split.pool], y_true[split.pool])
    model = new_reward_model(dataset.inputs, rm_config, a[split.pool], b[split.pool], seed=seed)
    family = dataset.inputs.family_config
    if dataset.inputs.encoding is not None:
        passes = -(-3 * len(split.pool) // family.rm_batch_size)
        model.family_config = RewardFamilyConfig(
            **{**family.__dict__, "rm_steps_per_round": max(20 * family.rm_steps_per_round, passes)}
        )
    model.fit(a[split.pool], b[split.pool], revealed)
    return model.head.accuracy(model.pair_features(a[split.test], b[split.test]), y_true[split.test])


def run_benchmark(
    config: BenchmarkConfig,
    rm_config: RewardModelConfig | None = None,
    dataset: Dataset | None = None,
    baseline: Dataset | None = None,
    family: RewardFamilyConfig | None = None,
) -> dict:
    """Curves for every strategy and seed, the ceiling, and random with the baseline features or family
    (see report.summarise)."""
    from tqdm.auto import tqdm

    rm_config = rm_config or RewardModelConfig()
    family = family or RewardFamilyConfig()
    specs = config.specs()  # unknown strategies, encoders and a budget beyond the pool fail before any encoding
    for encoder in filter(None, (config.features, config.baseline_features)):
        FeatureConfig(encoder=encoder, policy_model=config.policy_model).parts()
    baseline_family = (
        RewardFamilyConfig(**{**family.__dict__, "reward_model": config.baseline_reward_model})
        if config.baseline_reward_model
        else family
    )
    if dataset is None:
        preference_file = read_preference_file(config.pairs)
        make_split(len(preference_file.rows), config, 0, [r.prompt for r in preference_file.rows])
        dataset = load_dataset(
            config, config.features, preference_file.rows, preference_file.skipped_by_reason(), family=family
        )
    if (config.baseline_features or config.baseline_reward_model) and baseline is None:
        baseline = load_dataset(
            config, config.baseline_features or config.features, dataset.rows, dataset.skipped, family=baseline_family
        )
    n_rows = len(dataset.rows)
    groups = [r.prompt for r in dataset.rows]
    matched = length_matched(dataset.rows)
    make_split(n_rows, config, 0, groups)
    curves: dict[str, list[Curve]] = {s.name: [] for s in specs}
    baseline_curves: list[Curve] = []
    ceilings: list[float] = []
    for seed in tqdm(range(config.first_seed, config.first_seed + config.seeds), desc="seeds", unit="seed"):
        split = make_split(n_rows, config, seed, groups)
        for spec in specs:
            curves[spec.name].append(run_strategy(spec, dataset, split, config, rm_config, seed, matched))
        if baseline is not None:
            baseline_curves.append(
                run_strategy(parse_strategy("random"), baseline, split, config, rm_config, seed, matched)
            )
        if config.ceiling:
            ceilings.append(ceiling_accuracy(dataset, split, rm_config, seed))
    split = make_split(n_rows, config, 0, groups)
    return {
        "curves": curves,
        "baseline_curves": baseline_curves,
        "baseline": {
            "features": config.baseline_features or config.features,
            "reward_model": baseline_family.reward_model,
        }
        if baseline is not None
        else None,
        "reward_model": family.reward_model,
        "ceilings": ceilings,
        "length_matched_test_pairs": int(matched[split.test].sum()),
        "rows": n_rows,
        "skipped_rows": dataset.skipped,
        "test_size": len(split.test),
        "pool_size": len(split.pool),
    }
