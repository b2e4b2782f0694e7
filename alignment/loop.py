"""The RLHF-lite active-labelling loop: select a batch → request labels → refit the reward model.

State lives in the annotation ledger, not in this process: the pairs already requested, the
labels received and the skips are read back from it at every round. That makes the loop
resumable and lets it work with people who answer slowly — with a Label Studio backend it
pushes a batch and returns a "waiting for N labels" state instead of blocking; running it again
later collects what arrived and carries on. With simulated annotators it runs to the budget.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from alignment.acquisition import SelectionContext, parse_strategy, pseudo_label
from alignment.bradley_terry import BradleyTerryModel, PairFeatureSpace, RewardModelConfig
from alignment.errors import ConfigError
from alignment.features import FeatureConfig, feature_blocks
from alignment.reward_models import FixedPairFeatures
from annotation.pairs import PreferencePair

log = logging.getLogger("alignment")


@dataclass
class ActiveLoopConfig:
    budget: int = field(default=100, metadata={"help": "human labels to ask for in all"})
    batch_size: int = field(default=20, metadata={"help": "pairs asked per round"})
    strategy: str = field(
        default="uncertainty+kcenter", metadata={"help": "acquisition strategy (see `mintline align benchmark`)"}
    )
    pseudo_threshold: float = field(default=0.9, metadata={"help": "+pseudo: confidence needed for a pseudo-label"})
    pseudo_cap: int = field(default=0, metadata={"help": "+pseudo: pseudo-labels at most (0 = half the budget)"})
    selection_seed: int = field(default=0, metadata={"help": "seed of the acquisition's random choices"})

    def __post_init__(self):
        if self.budget < 1 or self.batch_size < 1:
            raise ConfigError(f"budget and batch_size: must be >= 1, got {self.budget} and {self.batch_size}")
        if self.budget < self.batch_size:
            raise ConfigError(
                f"budget: {self.budget} labels is below one round of batch_size {self.batch_size}; "
                "raise the budget or lower the batch size"
            )
        if not 0.5 < self.pseudo_threshold <= 1:
            raise ConfigError(f"pseudo_threshold: must be in (0.5, 1], got {self.pseudo_threshold}")
        parse_strategy(self.strategy)  # unknown names fail before any work


def pair_feature_matrix(
    pairs: list[PreferencePair], config: FeatureConfig, dim: int = 64, whiten: bool = False
) -> np.ndarray:
    """Reduced pair differences z_a − z_b for every pair (the reduction is fitted on these pairs, unlabelled)."""
    prompts = [p.prompt for p in pairs for _ in (0, 1)]
    responses = [t for p in pairs for t in (p.response_a, p.response_b)]
    blocks = feature_blocks(prompts, responses, config)
    a, b = 2 * np.arange(len(pairs)), 2 * np.arange(len(pairs)) + 1
    z = PairFeatureSpace(dim, whiten).fit(blocks, a, b).transform(blocks)
    return z[a] - z[b]


def training_set(ledger, ids: list[str], index: dict[str, int]):
    """Pool positions and targets (1 = a preferred) of every aggregated, non-tie label on these pairs."""
    positions, targets = [], []
    for label in ledger.labels(pair_ids=ids):
        if label.choice in ("a", "b") and label.pair_id in index:
            positions.append(index[label.pair_id])
            targets.append(1.0 if label.choice == "a" else 0.0)
    return np.asarray(positions, dtype=int), np.asarray(targets, dtype=float)


def run_active_loop(
    pairs: list[PreferencePair],
    x,
    backend,
    config: ActiveLoopConfig,
    rm_config: RewardModelConfig | None = None,
    model_id: str = "bt-reward-model",
    eval_x=None,
    eval_y: np.ndarray | None = None,
    pool_margins: bool = False,
) -> dict:
    """Run rounds until `budget` pairs have been requested and answered; returns figures and a state.

    `x`: the pool's fixed pair-difference features (n_pairs, d), or a reward model of any family
    (alignment.reward_models) over the pool's responses, pair i being responses 2i and 2i+1; `eval_x`: the
    held-out pairs' features, or with a reward model their (a, b) response indices.
    `state` is "done", or "waiting" with `waiting_for` = labels still outstanding at a backend
    that answers later (Label Studio). Nothing is lost by returning: call again to continue.
    `pool_margins`: when done, add the final reward model's predicted margin r(a) − r(b) of every pool pair
    (a numpy array under "pool_margins", for the caller to use, not to serialise).
    """
    if config.budget > len(pairs):
        raise ConfigError(f"budget: {config.budget} labels asked but only {len(pairs)} candidate pairs exist")
    spec = parse_strategy(config.strategy)
    strategy = spec.build()
    rm_config = rm_config or RewardModelConfig()
    if isinstance(x, np.ndarray):
        reward_model, pair_a, pair_b = (
            FixedPairFeatures(x, rm_config, seed=config.selection_seed),
            np.arange(len(x)),
            None,
        )
        evaluation = EvalSet(eval_y, features=eval_x)
    else:
        reward_model, pair_a, pair_b = x, 2 * np.arange(len(pairs)), 2 * np.arange(len(pairs)) + 1
        evaluation = EvalSet(eval_y, pairs=eval_x)
    ledger = backend.ledger
    ids = [p.pair_id for p in pairs]
    index = {pair_id: i for i, pair_id in enumerate(ids)}
    rng = np.random.default_rng(config.selection_seed)
    model = reward_model.head
    pool_x = reward_model.pair_features(pair_a, pair_b) if isinstance(x, np.ndarray) else None
    started, rounds_this_call = time.perf_counter(), 0
    curve: list[dict] = []  # the reward model after each round, scored on the held-out set if one is given
    backend.collect()
    while True:
        positions, targets = training_set(ledger, ids, index)
        pending = [pair_id for pair_id in ledger.pending() if pair_id in index]
        requested = set(pending) | {ids[i] for i in positions}
        # pairs every annotator skipped are requested (never asked again) but nothing is coming for them
        outstanding = [pair_id for pair_id in ledger.pending(include_skipped=False) if pair_id in index]
        if len(positions):
            reward_model.fit(pair_a[positions], None if pair_b is None else pair_b[positions], targets)
            pool_x = reward_model.pair_features(pair_a, pair_b)
            if evaluation:
                curve.append({"labels": int(len(positions)), "accuracy": evaluation.accuracy(reward_model)})
        elif pool_x is None:
            pool_x = reward_model.pair_features(pair_a, pair_b)
        if outstanding:
            return _figures(
                "waiting",
                ledger=ledger,
                reward_model=reward_model,
                positions=positions,
                targets=targets,
                pool_x=pool_x,
                config=config,
                rounds=rounds_this_call,
                started=started,
                waiting_for=len(outstanding),
                evaluation=evaluation,
                curve=curve,
            )
        if len(requested) >= config.budget:
            break
        candidates = np.asarray([i for i, pair_id in enumerate(ids) if pair_id not in requested], dtype=int)
        if not len(candidates):
            break
        labelled = np.asarray(sorted(index[p] for p in requested), dtype=int)
        ctx = SelectionContext(model=model, x=pool_x, candidates=candidates, labelled=labelled, rng=rng)
        batch = strategy.select(ctx, min(config.batch_size, config.budget - len(requested)))
        round_number = -(-len(requested) // config.batch_size)
        backend.request([_with_prediction(pairs[i], model, pool_x[i]) for i in batch], round=round_number)
        backend.collect()
        rounds_this_call += 1
        log.info(
            "round %d: asked %d pairs (%d of %d requested)",
            round_number,
            len(batch),
            len(requested) + len(batch),
            config.budget,
        )

    pseudo_count = 0
    if spec.pseudo and model.fitted:
        requested_positions = {index[p] for p in requested}
        unrequested = np.asarray([i for i in range(len(ids)) if i not in requested_positions], dtype=int)
        pseudo = pseudo_label(
            model, pool_x, unrequested, config.pseudo_threshold, config.pseudo_cap or max(1, config.budget // 2)
        )
        if len(pseudo.indices):
            pseudo_count = ledger.record_pseudo_labels(
                [
                    (ids[i], "a" if prefer else "b", float(c))
                    for i, prefer, c in zip(pseudo.indices, pseudo.prefer_a, pseudo.confidence)
                ],
                model=model_id,
                pairs=[
                    pairs[i] for i in pseudo.indices
                ],  # their text, so export_trl(include_pseudo=True) can write them
            )
    figures = _figures(
        "done",
        ledger=ledger,
        reward_model=reward_model,
        positions=positions,
        targets=targets,
        pool_x=pool_x,
        config=config,
        rounds=rounds_this_call,
        started=started,
        pseudo_recorded=pseudo_count,
        evaluation=evaluation,
        curve=curve,
    )
    if pool_margins and model.fitted:
        figures["pool_margins"] = model.margin(pool_x)
    return figures


class EvalSet:
    """Held-out pairs with known answers: fixed features, or (a, b) response indices into a trained reward model."""

    def __init__(self, targets, features=None, pairs=None):
        self.targets, self.features, self.pairs = targets, features, pairs

    def __bool__(self) -> bool:
        return (
            self.targets is not None
            and len(self.targets) > 0
            and (self.features is not None or self.pairs is not None)
        )

    def accuracy(self, reward_model) -> float:
        x = self.features if self.features is not None else reward_model.pair_features(*self.pairs)
        return round(reward_model.head.accuracy(x, self.targets), 4)


def _with_prediction(pair: PreferencePair, model: BradleyTerryModel, x_row: np.ndarray) -> PreferencePair:
    """The pair with the reward model's current guess, shown to annotators as a pre-annotation."""
    if not model.fitted:
        return pair
    p_a = float(model.prob(x_row[None, :])[0])
    predicted, confidence = ("a", p_a) if p_a >= 0.5 else ("b", 1.0 - p_a)
    return PreferencePair(
        prompt=pair.prompt,
        response_a=pair.response_a,
        response_b=pair.response_b,
        pair_id=pair.pair_id,
        model=pair.model,
        predicted=predicted,
        confidence=min(max(confidence, 0.5), 1.0),
        metadata=dict(pair.metadata),
    )


def _figures(
    state: str,
    *,
    ledger,
    reward_model,
    positions: np.ndarray,
    targets: np.ndarray,
    pool_x: np.ndarray,
    config: ActiveLoopConfig,
    rounds: int,
    started: float,
    waiting_for: int = 0,
    pseudo_recorded: int = 0,
    evaluation: EvalSet | None = None,
    curve: list[dict] | None = None,
) -> dict:
    """What a call of the loop did and where it stands (`state` "waiting" or "done"), for run.json and the CLI.

    `positions`/`targets`: the pool rows labelled so far and their answers; `pool_x`: the pool's current
    features; `rounds`/`started`: this call's rounds and start time (perf_counter).
    """
    counts = ledger.counts()
    model = reward_model.head
    figures = {
        "state": state,
        "waiting_for": waiting_for,
        "strategy": config.strategy,
        "reward_model": reward_model.family,
        "budget": config.budget,
        "rounds_this_call": rounds,
        "labels_requested": counts.get("requested", 0),
        "labels_received": counts.get("labelled", 0),
        "labels_skipped": counts.get("skipped", 0),
        "labels_pending": counts.get("pending", 0),
        "pseudo_labels": counts.get("pseudo", 0),
        "pseudo_labels_recorded_now": pseudo_recorded,
        "labels_used_for_reward_model": int(len(positions)),
        "ledger_counts": counts,
        "loop_seconds": round(time.perf_counter() - started, 3),
        "reward_model_seconds_per_round": round(float(np.mean(reward_model.fit_seconds)), 3)
        if reward_model.fit_seconds
        else None,
        "curve": curve or [],
    }
    if model.fitted:
        figures["reward_model_train_accuracy"] = round(model.accuracy(pool_x[positions], targets), 4)
        figures["reward_model_prior_precision"] = round(float(model.prior_precision), 5)
        if evaluation:
            figures["reward_model_eval_accuracy"] = evaluation.accuracy(reward_model)
    return figures
