"""`thompson`: double Thompson sampling (Wu & Liu 2016; Dwaracherla et al. 2024) over a pair pool.

In the duelling-bandit form, two reward functions are drawn from the posterior and the
responses each one ranks best are compared. A pool of fixed pairs has no free choice of the
two responses, so for each slot of the batch the same two draws instead pick the pair they
disagree on most confidently — min(|m₁|, |m₂|) with opposite signs — falling back to the
smallest combined margin when no pair splits them. Fresh draws per slot spread a batch.
"""

from __future__ import annotations

import numpy as np

from alignment.acquisition.base import SelectionContext, Strategy


class ThompsonStrategy(Strategy):
    name = "thompson"

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        return self._slot_scores(ctx, ctx.rng)

    def _slot_scores(self, ctx: SelectionContext, rng: np.random.Generator) -> np.ndarray:
        if not ctx.model.fitted:
            return rng.random(len(ctx.candidates))
        draws = ctx.model.sample_weights(2, rng)
        margins = ctx.x[ctx.candidates] @ draws.T
        split = np.sign(margins[:, 0]) != np.sign(margins[:, 1])
        conviction = np.minimum(np.abs(margins[:, 0]), np.abs(margins[:, 1]))
        # Disagreeing pairs rank above all others; among the rest, the least decided first.
        return np.where(split, 1.0 + conviction, -np.abs(margins).sum(1) / (1.0 + np.abs(margins).sum(1)))

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        chosen: list[int] = []
        taken = np.zeros(len(ctx.candidates), dtype=bool)
        for _ in range(min(k, len(ctx.candidates))):
            scores = np.where(taken, -np.inf, self._slot_scores(ctx, ctx.rng))
            best = int(np.argmax(scores))
            taken[best] = True
            chosen.append(best)
        return ctx.candidates[np.asarray(chosen, dtype=int)]
