"""The Bradley–Terry reward model learns a known preference and knows what it does not know."""

from __future__ import annotations

import numpy as np
import pytest

from alignment.bradley_terry import BradleyTerryModel, PairFeatureSpace, RewardModelConfig
from alignment.errors import ConfigError


def data(n, d=8, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=d) * 1.5
    x = rng.normal(size=(n, d))
    return x, (rng.random(n) < 1 / (1 + np.exp(-x @ truth))).astype(float), truth


@pytest.mark.parametrize("posterior", ["laplace", "ensemble"])
def test_learns_the_true_direction_and_uncertainty_shrinks(posterior):
    x, y, truth = data(2000)
    test_x, test_y, _ = data(1000, seed=1)
    small = BradleyTerryModel(RewardModelConfig(posterior=posterior)).fit(x[:30], y[:30])
    large = BradleyTerryModel(RewardModelConfig(posterior=posterior)).fit(x, y)
    bayes = np.mean((test_x @ truth > 0) == (test_y > 0.5))
    assert large.accuracy(test_x, test_y) > bayes - 0.03
    assert np.corrcoef(large.weights, truth)[0, 1] > 0.97
    assert np.trace(large.covariance) < np.trace(small.covariance) / 10
    draws = large.sample_weights(16, np.random.default_rng(0))
    assert draws.shape == (16, 8) and draws.std(0).max() > 0


def test_antisymmetric_in_the_order_of_a_pair():
    x, y, _ = data(300)
    model = BradleyTerryModel().fit(x, y)
    assert np.allclose(model.prob(x) + model.prob(-x), 1.0)


def test_evidence_maximisation_picks_a_stronger_prior_for_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    noise = BradleyTerryModel().fit(x, (rng.random(200) < 0.5).astype(float))
    signal = BradleyTerryModel().fit(*data(200)[:2])
    assert noise.prior_precision > 5 * signal.prior_precision


def test_feature_space_keeps_each_source_and_antisymmetry():
    rng = np.random.default_rng(0)
    blocks = [rng.normal(size=(100, 300)), rng.normal(size=(100, 3))]
    a, b = np.arange(0, 100, 2), np.arange(1, 100, 2)
    space = PairFeatureSpace(dim=16).fit(blocks, a, b)
    z = space.transform(blocks)
    assert z.shape == (100, 16 + 3)


def test_bad_config_is_refused():
    with pytest.raises(ConfigError):
        RewardModelConfig(posterior="dropout")
