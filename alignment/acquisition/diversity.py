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
        for _ in range(k):
            # Before any label all distances are infinite: start from the base strategy's favourite.
            best = int(np.argmax(np.where(np.isinf(nearest), 1e300 - np.arange(len(nearest)), nearest)))
            chosen.append(best)
            nearest = np.minimum(nearest, pair_distances(points, points[best : best + 1])[:, 0])
            nearest[chosen] = -np.inf
        return shortlist[np.asarray(chosen, dtype=int)]
