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
from alignment.data import PreferenceRow, read_preference_file
from alignment.errors import ConfigError
from alignment.features import FeatureConfig, feature_blocks
from alignment.reward_model import BradleyTerryModel, PairFeatureSpace, RewardModelConfig

log = logging.getLogger("alignment")


@dataclass
class BenchmarkConfig:
    pairs: str = field(default=None, metadata={"help": "preference JSONL (.gz ok): prompt/chosen/rejected, or hh-rlhf dialogues"})
    strategies: str = field(
        default="random,uncertainty,bald,disagreement,fisher,thompson,uncertainty+kcenter,adpo",
        metadata={"help": "comma-separated strategies; random (the baseline) is always included"},
    )
    budget: int = field(default=400, metadata={"help": "human labels each strategy may ask for"})
    seeds: int = field(default=5, metadata={"help": "independent splits and runs; intervals are over these"})
    first_seed: int = field(
        default=0, metadata={"help": "seeds are first_seed .. first_seed+seeds-1 (tune on one range, report on another)"}
    )
    features: str = field(default="minilm", metadata={"help": "reward-model features, identical for every strategy"})
    baseline_features: str = field(
        default=None, metadata={"help": "also run random with these features and report the gain of --features over them"}
    )
    label_noise: float = field(default=0.0, metadata={"help": "probability that a revealed label is flipped"})
    test_size: int = field(default=0, metadata={"help": "held-out pairs (0 = min(2000, half the pairs))"})
    batch_size: int = field(default=0, metadata={"help": "labels per round (0 = budget / 20, at least 5)"})
    pseudo_threshold: float = field(default=0.9, metadata={"help": "+pseudo: confidence needed for a pseudo-label"})
    pseudo_cap: int = field(default=0, metadata={"help": "+pseudo: pseudo-labels per round at most (0 = batch_size)"})
    policy_model: str = field(default=None, metadata={"help": "causal-LM directory for 'policy' features"})
    cache_dir: str = field(default="~/.cache/mintline/features", metadata={"help": "cache of encoded texts ('' = none)"})
    plot: str = field(default="label_efficiency.png", metadata={"help": "PNG of the accuracy curves ('' = none)"})
    label_noise_seed: int = field(default=12345, metadata={"help": "offset for the flip draws, so noise differs from the split"})

    def __post_init__(self):
        if not self.pairs:
            raise ValueError("pairs: required (a preference JSONL file)")
        if self.budget < 2 or self.seeds < 1 or self.first_seed < 0:
            raise ValueError(f"budget >= 2, seeds >= 1 and first_seed >= 0 are required, got budget={self.budget}, "
                             f"seeds={self.seeds}, first_seed={self.first_seed}")
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
    """Rows with their responses' feature blocks: row i's chosen is response 2i, its rejected 2i+1."""

    rows: list[PreferenceRow]
    blocks: list[np.ndarray]
    skipped: dict[str, int]


def load_dataset(config: BenchmarkConfig, features: str, rows=None, skipped=None) -> Dataset:
    if rows is None:
        preference_file = read_preference_file(config.pairs)
        rows, skipped = preference_file.rows, preference_file.skipped_by_reason()
    prompts = [r.prompt for r in rows for _ in (0, 1)]
    responses = [t for r in rows for t in (r.chosen, r.rejected)]
    cache = str(Path(config.cache_dir).expanduser()) if config.cache_dir else None
    feature_config = FeatureConfig(encoder=features, policy_model=config.policy_model, cache_dir=cache)
    feature_config.parts()  # unknown encoders fail before any work
    return Dataset(rows=rows, blocks=feature_blocks(prompts, responses, feature_config), skipped=skipped or {})


@dataclass
class Split:
    test: np.ndarray         # row indices
    pool: np.ndarray         # row indices
    chosen_is_a: np.ndarray  # per row: was chosen shown as a?
    flipped: np.ndarray      # per row: would a noisy annotator flip this label?
    warm_start: np.ndarray   # positions in pool shared by every strategy


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
        raise ConfigError(f"budget: {config.budget} labels asked but the pool holds only {pool_size} pairs "
                          f"({n_rows} pairs minus a test split of {test_size})")
    noise_rng = np.random.default_rng(seed + config.label_noise_seed)
    warm = rng.choice(pool_size, size=min(config.round_size(), config.budget), replace=False)
    return Split(test=order[:test_size], pool=order[test_size:], chosen_is_a=rng.random(n_rows) < 0.5,
                 flipped=noise_rng.random(n_rows) < config.label_noise, warm_start=warm)


def pair_features(dataset: Dataset, split: Split, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair differences x = z_a − z_b for every row (in the split's a/b order), and labels y = [a preferred]."""
    n = len(dataset.rows)
    a = np.where(split.chosen_is_a, 2 * np.arange(n), 2 * np.arange(n) + 1)
    b = np.where(split.chosen_is_a, 2 * np.arange(n) + 1, 2 * np.arange(n))
    space = PairFeatureSpace(dim).fit(dataset.blocks, a[split.pool], b[split.pool])
    z = space.transform(dataset.blocks)
    return z[a] - z[b], split.chosen_is_a.astype(float)


@dataclass
class Curve:
    labels: list[int]
    accuracy: list[float]
    seconds: float
    pseudo_labels: int = 0


def run_strategy(spec: StrategySpec, x: np.ndarray, y_true: np.ndarray, split: Split, config: BenchmarkConfig,
                 rm_config: RewardModelConfig, seed: int) -> Curve:
    rng = np.random.default_rng(seed * 7919 + sum(map(ord, spec.name)))
    strategy = spec.build()
    pool_x, test_x = x[split.pool], x[split.test]
    revealed = np.where(split.flipped[split.pool], 1 - y_true[split.pool], y_true[split.pool])  # asked-for labels only
    test_y = y_true[split.test]
    model = BradleyTerryModel(rm_config, seed=seed)
    asked = list(split.warm_start)
    is_asked = np.zeros(len(split.pool), dtype=bool)
    is_asked[asked] = True
    labels, accuracy, pseudo_total, seconds = [], [], 0, 0.0
    cap = config.pseudo_cap or config.round_size()
    while True:
        started = time.perf_counter()
        train_x, train_y, weight = pool_x[asked], revealed[asked], np.ones(len(asked))
        if spec.pseudo and model.fitted:
            pseudo = pseudo_label(model, pool_x, np.flatnonzero(~is_asked), config.pseudo_threshold, cap)
            pseudo_total += len(pseudo.indices)
            train_x = np.concatenate([train_x, pool_x[pseudo.indices]])
            train_y = np.concatenate([train_y, pseudo.prefer_a])
            weight = np.concatenate([weight, pseudo.confidence])
        model.fit(train_x, train_y, weight)
        seconds += time.perf_counter() - started
        labels.append(len(asked))
        accuracy.append(model.accuracy(test_x, test_y))
        if len(asked) >= config.budget:
            break
        started = time.perf_counter()
        candidates = np.flatnonzero(~is_asked)
        ctx = SelectionContext(model=model, x=pool_x, candidates=candidates, labelled=np.asarray(asked), rng=rng)
        batch = strategy.select(ctx, min(config.round_size(), config.budget - len(asked)))
        seconds += time.perf_counter() - started
        if len(set(batch.tolist())) != len(batch) or is_asked[batch].any():
            raise AssertionError(f"{spec.name} asked for a pair twice")  # a bug, not user input
        asked.extend(batch.tolist())
        is_asked[batch] = True
    return Curve(labels=labels, accuracy=accuracy, seconds=seconds, pseudo_labels=pseudo_total)


def run_benchmark(config: BenchmarkConfig, rm_config: RewardModelConfig | None = None, dataset: Dataset | None = None,
                  baseline: Dataset | None = None) -> dict:
    """Curves for every strategy and seed (and random on the baseline features); see report.summarise."""
    from tqdm.auto import tqdm

    rm_config = rm_config or RewardModelConfig()
    specs = config.specs()  # unknown strategies, encoders and a budget beyond the pool fail before any encoding
    for encoder in filter(None, (config.features, config.baseline_features)):
        FeatureConfig(encoder=encoder, policy_model=config.policy_model).parts()
    if dataset is None:
        preference_file = read_preference_file(config.pairs)
        make_split(len(preference_file.rows), config, 0, [r.prompt for r in preference_file.rows])
        dataset = load_dataset(config, config.features, preference_file.rows, preference_file.skipped_by_reason())
    if config.baseline_features and baseline is None:
        baseline = load_dataset(config, config.baseline_features, dataset.rows, dataset.skipped)
    n_rows = len(dataset.rows)
    groups = [r.prompt for r in dataset.rows]
    make_split(n_rows, config, 0, groups)
    curves: dict[str, list[Curve]] = {s.name: [] for s in specs}
    baseline_curves: list[Curve] = []
    for seed in tqdm(range(config.first_seed, config.first_seed + config.seeds), desc="seeds", unit="seed"):
        split = make_split(n_rows, config, seed, groups)
        x, y = pair_features(dataset, split, rm_config.feature_dim)
        for spec in specs:
            curves[spec.name].append(run_strategy(spec, x, y, split, config, rm_config, seed))
        if baseline is not None:
            bx, by = pair_features(baseline, split, rm_config.feature_dim)
            baseline_curves.append(run_strategy(parse_strategy("random"), bx, by, split, config, rm_config, seed))
    split = make_split(n_rows, config, 0, groups)
    return {
        "curves": curves,
        "baseline_curves": baseline_curves,
        "rows": n_rows,
        "skipped_rows": dataset.skipped,
        "test_size": len(split.test),
        "pool_size": len(split.pool),
    }
