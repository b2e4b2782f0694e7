"""Each acquisition strategy returns valid, distinct, unrequested pairs within the budget."""

from __future__ import annotations

import numpy as np
import pytest

from alignment.acquisition import BASE_STRATEGIES, SelectionContext, parse_strategies, parse_strategy, pseudo_label
from alignment.acquisition.epig import expected_information
from alignment.bradley_terry import BradleyTerryModel, RewardModelConfig, sigmoid
from alignment.errors import UnknownStrategyError

ALL = [*BASE_STRATEGIES, *(f"{name}+kcenter" for name in BASE_STRATEGIES), "adpo"]


def synthetic_pool(n=400, d=12, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=d)
    x = rng.normal(size=(n, d))
    y = (rng.random(n) < 1 / (1 + np.exp(-x @ truth))).astype(float)
    return x, y, truth


@pytest.mark.parametrize("posterior", ["laplace", "ensemble"])
@pytest.mark.parametrize("name", ALL)
def test_strategy_returns_distinct_unlabelled_pairs(name, posterior):
    x, y, _ = synthetic_pool()
    rng = np.random.default_rng(0)
    labelled = rng.choice(len(x), 40, replace=False)
    candidates = np.setdiff1d(np.arange(len(x)), labelled)
    model = BradleyTerryModel(RewardModelConfig(posterior=posterior, n_heads=4)).fit(x[labelled], y[labelled])
    strategy = parse_strategy(name).build()
    for fitted_model in (BradleyTerryModel(RewardModelConfig(posterior=posterior)), model):  # before and after labels
        ctx = SelectionContext(
            model=fitted_model,
            x=x,
            candidates=candidates,
            labelled=labelled if fitted_model.fitted else np.zeros(0, int),
            rng=rng,
        )
        batch = strategy.select(ctx, 25)
        assert len(batch) == 25
        assert len(set(batch.tolist())) == 25
        assert set(batch.tolist()) <= set(candidates.tolist())
    # asking for more than is left returns what is left, still distinct
    small = candidates[:7]
    ctx = SelectionContext(model=model, x=x, candidates=small, labelled=labelled, rng=rng)
    assert sorted(strategy.select(ctx, 25).tolist()) == sorted(small.tolist())


def select_after_half_the_pool(name: str, k: int = 20):
    """`name`'s batch of k from the second half of a synthetic pool, its reward model fitted on the first half."""
    x, y, truth = synthetic_pool()
    model = BradleyTerryModel().fit(x[:200], y[:200])
    candidates = np.arange(200, 400)
    ctx = SelectionContext(
        model=model, x=x, candidates=candidates, labelled=np.arange(200), rng=np.random.default_rng(0)
    )
    batch = parse_strategy(name).build().select(ctx, k)
    return batch, candidates, np.abs(model.prob(x) - 0.5), np.abs(x @ truth)


def test_uncertainty_prefers_pairs_near_a_coin_flip():
    batch, candidates, margins, _ = select_after_half_the_pool("uncertainty")
    assert margins[batch].mean() < margins[candidates].mean() / 2


def test_certainty_prefers_the_pairs_the_model_ranks_surely_and_those_are_further_apart():
    batch, candidates, margins, true_gap = select_after_half_the_pool("certainty")
    assert margins[batch].min() >= np.sort(margins[candidates])[-20]  # exactly the 20 surest
    # true_gap is what a label on the pair could teach: how far apart the two responses really are
    assert true_gap[batch].mean() > 1.5 * true_gap[candidates].mean()


def test_kcenter_spreads_a_batch_over_near_duplicates():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(10, 6))
    x = np.repeat(base, 20, axis=0) + rng.normal(scale=1e-3, size=(200, 6))  # 10 questions, 20 near-copies each
    ctx = SelectionContext(
        model=BradleyTerryModel(), x=x, candidates=np.arange(200), labelled=np.zeros(0, int), rng=rng
    )
    batch = parse_strategy("random+kcenter").build().select(ctx, 10)
    assert len({int(i) // 20 for i in batch}) >= 8  # nearly every question once, not copies of one


def test_fisher_batch_covers_new_directions():
    x = np.vstack([np.tile([1.0, 0, 0], (50, 1)), np.tile([0, 1.0, 0], (5, 1)), np.tile([0, 0, 1.0], (5, 1))])
    ctx = SelectionContext(
        model=BradleyTerryModel(RewardModelConfig(prior_precision=1.0)),
        x=x,
        candidates=np.arange(60),
        labelled=np.zeros(0, int),
        rng=np.random.default_rng(0),
    )
    batch = parse_strategy("fisher").build().select(ctx, 3)
    assert {int(np.argmax(x[i])) for i in batch} == {0, 1, 2}


def test_epig_values_what_a_label_says_about_the_target_pairs():
    """BALD rates any pair the posterior is unsure about; EPIG only those that inform the pairs in the pool."""
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(4000, 2)) * 3.0  # posterior draws of w: unsure in both directions
    targets = np.tile([1.0, 0.0], (64, 1))  # every pair to be scored varies along the first direction
    candidates = np.array([[1.0, 0.0], [0.0, 1.0]])  # one along it, one orthogonal
    info = expected_information(sigmoid(candidates @ draws.T), sigmoid(targets @ draws.T))
    assert info[0] > 0.1 and info[1] < 0.01
    # through the strategy: with a pool whose pairs vary along one direction, EPIG asks along it
    pool = np.vstack(
        [rng.normal(size=(200, 1)) * np.array([[1.0, 0.0]]), rng.normal(size=(10, 1)) * np.array([[0.0, 1.0]])]
    )
    model = BradleyTerryModel(RewardModelConfig(prior_precision=0.1)).fit(pool[:5], np.array([1.0, 0, 1, 0, 1]))
    ctx = SelectionContext(model=model, x=pool, candidates=np.arange(5, 210), labelled=np.arange(5), rng=rng)
    batch = parse_strategy("epig").build().select(ctx, 10)
    assert (batch < 200).all()


def test_pseudo_labels_respect_threshold_and_cap():
    x, y, _ = synthetic_pool()
    model = BradleyTerryModel().fit(x[:300], y[:300])
    pseudo = pseudo_label(model, x, np.arange(300, 400), threshold=0.9, cap=10)
    assert 0 < len(pseudo.indices) <= 10
    assert (pseudo.confidence >= 0.9).all()
    assert set(pseudo.indices.tolist()) <= set(range(300, 400))


def test_strategy_names_are_checked():
    assert [s.name for s in parse_strategies("random, fisher+kcenter,adpo")] == ["random", "fisher+kcenter", "adpo"]
    assert parse_strategy("adpo").pseudo and parse_strategy("adpo").base == "uncertainty"
    with pytest.raises(UnknownStrategyError, match="unknown strategy 'greedy'"):
        parse_strategy("greedy")
    with pytest.raises(UnknownStrategyError, match="unknown modifier"):
        parse_strategy("fisher+dropout")
