"""`certainty`: the pairs whose predicted preference is furthest from a coin flip (largest |P(a ≻ b) − 0.5|).

The opposite of `uncertainty`, and no help to the reward model's own accuracy: it asks about pairs it already
ranks. It is for the policy's data. DPO learns from a label in proportion to how far apart the two responses
really are, and near-ties teach it little (measured on this project's pipeline pairs, stop 15); selecting
preference data by a reward model's margin is the data-selection rule of e.g. Deng et al. 2025 ("Less is More:
Improving LLM Alignment via Preference Data Selection"), and APL (Muldrew et al. 2024) asks about the pairs
its preference model is surest of, so that a label either confirms a clear preference or corrects a confident
mistake.
"""

from __future__ import annotations

import numpy as np

from alignment.acquisition.base import SelectionContext, Strategy


class CertaintyStrategy(Strategy):
    name = "certainty"

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        if not ctx.model.fitted:
            return np.zeros(len(ctx.candidates))
        return np.abs(ctx.model.prob(ctx.x[ctx.candidates]) - 0.5)
