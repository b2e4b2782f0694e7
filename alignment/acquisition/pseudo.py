"""`+pseudo`: ADPO-style pseudo-labels (Ji et al. 2024) for pairs the reward model is sure about.

After each round, unlabelled pairs whose predicted preference is at least `threshold` confident
are labelled by the model instead of a person, at most `cap` per round. They are counted
separately (never as human labels) and enter the reward model's fit with their confidence as
weight, so a wrong pseudo-label costs less than a wrong human one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PseudoLabels:
    indices: np.ndarray  # pool indices
    prefer_a: np.ndarray  # 1 where the model prefers a
    confidence: np.ndarray  # P(predicted is better), in [threshold, 1]


def pseudo_label(model, x: np.ndarray, candidates: np.ndarray, threshold: float, cap: int) -> PseudoLabels:
    empty = PseudoLabels(np.zeros(0, int), np.zeros(0), np.zeros(0))
    if not model.fitted or cap <= 0 or len(candidates) == 0:
        return empty
    p = model.prob(x[candidates])
    confidence = np.maximum(p, 1 - p)
    sure = np.flatnonzero(confidence >= threshold)
    if not len(sure):
        return empty
    sure = sure[np.argsort(-confidence[sure], kind="stable")[:cap]]
    return PseudoLabels(candidates[sure], (p[sure] > 0.5).astype(float), confidence[sure])
