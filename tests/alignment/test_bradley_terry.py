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


def test_feature_space_keeps_the_spectrum_unless_whitened():
    """Unwhitened, the kept components keep their relative variances, so the isotropic prior shrinks the weak
    (noise) directions hardest and keeping more of them costs little; whitened, every component weighs the same."""
    rng = np.random.default_rng(0)
    n, d = 600, 120
    scales = np.geomspace(5.0, 0.05, d)  # a decaying spectrum, like sentence embeddings'
    latent = rng.normal(size=(n, d)) * scales
    block = latent @ np.linalg.qr(rng.normal(size=(d, d)))[0]  # mixed, so no single column carries a direction
    a, b = np.arange(0, n, 2), np.arange(1, n, 2)
    truth = (latent[a] - latent[b])[:, :3] @ np.array([1.0, -1.0, 0.5])  # the preference lives in strong directions
    y = (rng.random(len(a)) < 1 / (1 + np.exp(-truth))).astype(float)
    kept = PairFeatureSpace(dim=d).fit([block], a, b)
    z = kept.transform([block])
    spread = (z[a] - z[b]).std(0)
    assert spread[0] > 20 * spread[-1] and np.mean(spread**2) == pytest.approx(1.0, rel=0.2)
    whitened = PairFeatureSpace(dim=d, whiten=True).fit([block], a, b).transform([block])
    assert (whitened[a] - whitened[b]).std(0) == pytest.approx(np.ones(d), rel=0.05)

    def held_out_accuracy(features):
        x = features[a] - features[b]
        model = BradleyTerryModel().fit(x[:60], y[:60])
        return model.accuracy(x[60:], (truth[60:] > 0).astype(float))

    assert held_out_accuracy(z) > held_out_accuracy(whitened) + 0.05  # 60 labels, 120 kept components


def test_bad_config_is_refused():
    with pytest.raises(ConfigError):
        RewardModelConfig(posterior="dropout")
