"""The one interface every acquisition strategy implements.

A strategy looks at the unlabelled candidates of a pool through the current reward model and
returns the k pair indices it wants labelled next. Most strategies only score candidates and
take the top k (`scores`); those whose picks interact within a batch (fisher, thompson)
override `select`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SelectionContext:
    model: object  # a fitted BradleyTerryModel (or unfitted before the first labels)
    x: np.ndarray  # pair-difference features of the whole pool, (n_pairs, d)
    candidates: np.ndarray  # pool indices not yet requested
    labelled: np.ndarray  # pool indices already requested
    rng: np.random.Generator


class Strategy:
    name = "base"

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        """One number per candidate; higher means more worth a human label."""
        raise NotImplementedError

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        """k distinct pool indices from ctx.candidates, best first."""
        scores = self.scores(ctx)
        # A random tie-break: before any label every score is equal and the order must not be the file's.
        order = np.lexsort((ctx.rng.random(len(scores)), -scores))
        return ctx.candidates[order[:k]]


def pair_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Distances between pairs, blind to orientation: (a, b) and (b, a) are the same question."""
    sq_x = (x * x).sum(1)[:, None]
    sq_y = (y * y).sum(1)[None, :]
    cross = x @ y.T
    same = np.maximum(sq_x + sq_y - 2 * cross, 0)
    flipped = np.maximum(sq_x + sq_y + 2 * cross, 0)
    return np.sqrt(np.minimum(same, flipped))
