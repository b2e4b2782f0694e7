"""`bald` and `disagreement`: where the posterior's members disagree, not where the data is noisy.

BALD scores I[y; w] = H[E_w p] − E_w H[p] (Houlsby et al. 2011): high when posterior draws are
each confident but contradict one another. `disagreement` is the variance of the members'
probabilities, the query-by-committee form. Both use the reward model's posterior draws
(bootstrapped heads for an ensemble, Gaussian draws for the Laplace posterior).
"""

from __future__ import annotations

import numpy as np

from alignment.acquisition.base import SelectionContext, Strategy
from alignment.bradley_terry import sigmoid

N_DRAWS = 32


def _entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def member_probs(ctx: SelectionContext) -> np.ndarray:
    draws = ctx.model.sample_weights(N_DRAWS, ctx.rng)
    return sigmoid(ctx.x[ctx.candidates] @ draws.T)  # (candidates, draws)


class BaldStrategy(Strategy):
    name = "bald"

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        if not ctx.model.fitted:
            return np.zeros(len(ctx.candidates))
        probs = member_probs(ctx)
        return _entropy(probs.mean(1)) - _entropy(probs).mean(1)


class DisagreementStrategy(Strategy):
    name = "disagreement"

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        if not ctx.model.fitted:
            return np.zeros(len(ctx.candidates))
        return member_probs(ctx).var(1)
