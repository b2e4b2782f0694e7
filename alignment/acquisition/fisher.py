"""`fisher`: greedy D-optimal design on the reward model's last layer.

Labelling pair x adds p(1−p)·xxᵀ to the posterior precision; the log-determinant gain is
log(1 + p(1−p)·xᵀΣx). Picks are greedy with a Sherman–Morrison update of Σ after each, so a
batch spreads over directions the model has not yet pinned down instead of repeating one.
"""

from __future__ import annotations

import numpy as np

from alignment.acquisition.base import SelectionContext, Strategy


def _prior_covariance(ctx: SelectionContext) -> np.ndarray:
    if ctx.model.fitted:
        return ctx.model.covariance.copy()
    return np.eye(ctx.x.shape[1]) / ctx.model.prior_precision


class FisherStrategy(Strategy):
    name = "fisher"

    def _weights(self, ctx: SelectionContext) -> np.ndarray:
        if not ctx.model.fitted:
            return np.full(len(ctx.candidates), 0.25)
        p = ctx.model.prob(ctx.x[ctx.candidates])
        return p * (1 - p)

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        x = ctx.x[ctx.candidates]
        sigma = _prior_covariance(ctx)
        return np.log1p(self._weights(ctx) * np.einsum("ij,jk,ik->i", x, sigma, x))

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        x = ctx.x[ctx.candidates]
        sigma = _prior_covariance(ctx)
        weight = self._weights(ctx)
        projected = x @ sigma  # rows: Σx for every candidate
        variance = np.einsum("ij,ij->i", projected, x)
        chosen: list[int] = []
        available = np.ones(len(x), dtype=bool)
        jitter = ctx.rng.random(len(x)) * 1e-12  # random tie-break before any label
        for _ in range(min(k, len(x))):
            gain = np.where(available, np.log1p(weight * variance) + jitter, -np.inf)
            best = int(np.argmax(gain))
            chosen.append(best)
            available[best] = False
            # Σ' = Σ − w Σx xᵀΣ / (1 + w xᵀΣx); only the candidates' variances are needed.
            u = projected[best]
            denominator = 1.0 + weight[best] * variance[best]
            coupling = x @ u
            variance = variance - weight[best] * coupling**2 / denominator
            projected = projected - np.outer(weight[best] * coupling / denominator, u)
        return ctx.candidates[np.asarray(chosen, dtype=int)]
