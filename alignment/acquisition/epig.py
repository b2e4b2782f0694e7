"""`epig`: expected predictive information gain (Bickford Smith et al. 2023).

BALD asks what a label tells us about the weights — including directions of weight space that
no pair we will ever be judged on depends on, and pairs that are merely odd. EPIG asks what a
label tells us about the predictions on the pairs that matter: the mutual information between
the candidate's label y and the label y* of a random target pair x*, averaged over targets,

    EPIG(x) = E_x* [ Σ_{y,y*} p(y, y*) log p(y, y*) / (p(y) p(y*)) ],
    p(y, y*) = E_w [ p(y | x, w) p(y* | x*, w) ],

estimated with posterior draws of w. The targets are a random sample of the unlabelled pool,
which stands in for the pairs the reward model will score (pool-based: inputs, never labels).
"""

from __future__ import annotations

import numpy as np

from alignment.acquisition.base import SelectionContext, Strategy
from alignment.bradley_terry import sigmoid

N_DRAWS = 64
N_TARGETS = 256


class EpigStrategy(Strategy):
    name = "epig"

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        if not ctx.model.fitted:
            return np.zeros(len(ctx.candidates))
        draws = ctx.model.sample_weights(N_DRAWS, ctx.rng)
        targets = ctx.rng.choice(ctx.candidates, size=min(N_TARGETS, len(ctx.candidates)), replace=False)
        candidate_p = sigmoid(ctx.x[ctx.candidates] @ draws.T)  # (candidates, draws): P(a ≻ b | w)
        target_p = sigmoid(ctx.x[targets] @ draws.T)  # (targets, draws)
        return expected_information(candidate_p, target_p)


def expected_information(candidate_p: np.ndarray, target_p: np.ndarray) -> np.ndarray:
    """Mean over targets of I(y; y*) for each candidate, from per-draw probabilities."""
    n_draws = candidate_p.shape[1]
    eps = 1e-12
    marginal_c = candidate_p.mean(1)[:, None]  # p(y = 1)
    marginal_t = target_p.mean(1)[None, :]  # p(y* = 1)
    information = np.zeros((len(candidate_p), len(target_p)))
    for c_side, c_marginal in ((candidate_p, marginal_c), (1 - candidate_p, 1 - marginal_c)):
        for t_side, t_marginal in ((target_p, marginal_t), (1 - target_p, 1 - marginal_t)):
            joint = c_side @ t_side.T / n_draws
            information += joint * (np.log(joint + eps) - np.log(c_marginal * t_marginal + eps))
    return information.mean(1)
