"""`uncertainty`: the pairs whose predicted preference is nearest a coin flip (P(a ≻ b) ≈ 0.5)."""

from __future__ import annotations

import numpy as np

from alignment.acquisition.base import SelectionContext, Strategy


class UncertaintyStrategy(Strategy):
    name = "uncertainty"

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        if not ctx.model.fitted:
            return np.zeros(len(ctx.candidates))
        return -np.abs(ctx.model.prob(ctx.x[ctx.candidates]) - 0.5)
