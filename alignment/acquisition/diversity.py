"""`+kcenter`: batch diversity for any strategy.

The base strategy shortlists `factor × k` candidates, best first; greedy k-center then takes,
one at a time, the shortlisted pair farthest (orientation-blind) from everything already
labelled or chosen — so a batch covers the shortlist instead of being ten near-copies of one
question (Sener & Savarese 2018's core-set step, restricted to what the strategy wants).
"""

from __future__ import annotations

import numpy as np

from alignment.acquisition.base import SelectionContext, Strategy, pair_distances


class KCenterDiversity(Strategy):
    def __init__(self, base: Strategy, factor: int = 4):
        self.base = base
        self.factor = factor
        self.name = f"{base.name}+kcenter"

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        return self.base.scores(ctx)

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        shortlist = self.base.select(ctx, min(len(ctx.candidates), self.factor * k))
        if len(shortlist) <= k:
            return shortlist
        points = ctx.x[shortlist]
        if len(ctx.labelled):
            nearest = pair_distances(points, ctx.x[ctx.labelled]).min(1)
        else:
            nearest = np.full(len(shortlist), np.inf)
        chosen: list[int] = []
        taken = np.zeros(len(shortlist), dtype=bool)
        rank_bonus = -np.arange(len(shortlist), dtype=float)  # ties (no labels yet): the base strategy's order
        for _ in range(k):
            unbounded = np.isposinf(nearest) & ~taken
            if unbounded.any():
                best = int(np.argmax(np.where(unbounded, rank_bonus, -np.inf)))
            else:
                best = int(np.argmax(np.where(taken, -np.inf, nearest)))
            chosen.append(best)
            taken[best] = True
            nearest = np.minimum(nearest, pair_distances(points, points[best : best + 1])[:, 0])
        return shortlist[np.asarray(chosen, dtype=int)]
