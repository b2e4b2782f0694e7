"""`random`: the baseline every other strategy must beat — uniformly random unlabelled pairs."""

from __future__ import annotations

import numpy as np

from alignment.acquisition.base import SelectionContext, Strategy


class RandomStrategy(Strategy):
    name = "random"

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        return ctx.rng.random(len(ctx.candidates))
