"""`certainty`: the pairs whose predicted preference is furthest from a coin flip (largest |P(a ≻ b) − 0.5|).

The opposite of `uncertainty`, and no help to the reward model's own accuracy: it asks about pairs it already
ranks. It is for the policy's data: a label tells DPO only as much as the two responses really differ, and
near-ties tell it little (the README's alignment section gives what `benchmarks/alignment.py` measured for
`certainty+kcenter` against random labels and against uncertainty-chosen ones).
Selecting DPO's data by a reward model's margin is the rule of Deng et al. 2025 (arXiv 2502.14560, "Less is
More: Improving LLM Alignment via Preference Data Selection"), who argue that low-margin pairs are where noisy
labels shrink DPO's parameters; APL (Muldrew et al. 2024) asks about the pairs its preference model is surest of,
so that a label either confirms a clear preference or corrects a confident mistake.
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
