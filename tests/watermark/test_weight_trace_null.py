"""The white-box trace's null for one fixed key: unrelated models must not score high together.

A key whose noise happens to point along the base weights is the case that broke the plain
difference statistic (suspect - base): every unrelated model shares -base, so all of them scored
the same fixed offset. The test picks such a key on purpose, so it does not depend on luck.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from watermark.stats import binomial_sf
from watermark.trace import white_box
from watermark.weights import WeightMark, noise_tensor

NAME, SHAPE, SIGMA = "layer.weight", (64, 64), 0.02


class OneMatrix(torch.nn.Module):
    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.config = SimpleNamespace(vocab_size=None, model_type="toy", num_hidden_layers=1)
        self.layer = torch.nn.Linear(SHAPE[1], SHAPE[0], bias=False)
        with torch.no_grad():
            self.layer.weight.copy_(weight)


def unlucky_key(base: torch.Tensor) -> tuple[SimpleNamespace, float]:
    """The first key whose noise has a standardised projection on -base above 2.5."""
    scaled = (base / SIGMA).double().flatten()
    for index in range(5000):
        secret = f"unlucky-{index}".encode()
        offset = float(-(noise_tensor(secret, NAME, SHAPE).double().flatten() @ scaled) / scaled.norm())
        if offset > 2.5:
            return SimpleNamespace(secret=secret), offset
    raise AssertionError("no key with a large offset among 5,000")


def one_matrix_mark() -> WeightMark:
    return WeightMark(1.0, {NAME: SIGMA}, {NAME: list(SHAPE)}, model_digest="", base_digest="", architecture={})


def plain_difference_statistic(suspect: torch.Tensor, base: torch.Tensor, key) -> float:
    difference = ((suspect - base) / SIGMA).double()
    noise = noise_tensor(key.secret, NAME, SHAPE).double()
    return float((noise * difference).sum() / difference.norm())


def test_unrelated_models_are_flagged_at_the_nominal_rate_for_an_unlucky_key():
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(SHAPE, generator=generator) * SIGMA
    key, offset = unlucky_key(base)
    mark = one_matrix_mark()
    reference = OneMatrix(base)
    unrelated = [torch.randn(SHAPE, generator=generator) * SIGMA for _ in range(60)]
    plain = [plain_difference_statistic(weights, base, key) for weights in unrelated]
    traced = [white_box(OneMatrix(weights), key, mark, base=reference) for weights in unrelated]

    # the failure mode: the plain difference shifts every unrelated model by about offset / sqrt(2)
    assert sum(z > 1.645 for z in plain) > 20 and sum(plain) / len(plain) > offset / 2
    flagged = sum(result["p_value"] <= 0.05 for result in traced)
    assert binomial_sf(flagged, len(traced), 0.05) > 1e-3, flagged
    assert abs(sum(result["statistic"] for result in traced) / len(traced)) < 0.5


def test_a_model_derived_from_the_release_is_still_traced():
    generator = torch.Generator().manual_seed(1)
    base = torch.randn(SHAPE, generator=generator) * SIGMA
    key, _ = unlucky_key(base)
    mark = one_matrix_mark()
    noise = noise_tensor(key.secret, NAME, SHAPE).float()
    # a tenth of the mark left, under changes as large as the weights themselves (fine-tuning, say)
    derived = base + 0.1 * SIGMA * noise + torch.randn(SHAPE, generator=generator) * SIGMA
    result = white_box(OneMatrix(derived), key, mark, base=OneMatrix(base))
    assert result["derived"] and result["log10_p_value"] < -6
    assert abs(result["retained"] - 0.1) < 0.05
