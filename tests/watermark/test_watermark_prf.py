"""The keyed PRF: uniform, consistent between generation and detection, key-dependent."""

from __future__ import annotations

import numpy as np
import pytest

from watermark.prf import GreenListPRF, expand_table

SECRET = bytes(range(32))


@pytest.mark.parametrize("seeding,width", [("lefthash", 1), ("lefthash", 3), ("selfhash", 1), ("selfhash", 4)])
def test_generation_and_detection_draw_the_same_bits(seeding, width):
    prf = GreenListPRF(SECRET, 0.25, seeding, width, 4096)
    tokens = np.random.default_rng(0).integers(0, 4096, 3000)
    green, identity = prf.score_sequence(tokens)
    contexts = np.lib.stride_tricks.sliding_window_view(tokens[:-1], width)
    masks = prf.green_mask(contexts, 4096)
    assert np.array_equal(masks[np.arange(len(tokens) - width), tokens[width:]], green)
    assert len(identity) == len(green)


def test_green_fraction_is_gamma_and_rows_differ():
    prf = GreenListPRF(SECRET, 0.25, "lefthash", 1, 4096)
    masks = prf.green_mask(np.arange(512)[:, None], 4096)
    assert masks.mean() == pytest.approx(0.25, abs=0.003)
    # a row's green count is Binomial(4096, 0.25): sd ~27.7
    assert masks.sum(axis=1).std() == pytest.approx(np.sqrt(4096 * 0.25 * 0.75), rel=0.2)
    overlap = (masks[0] & masks[1]).mean()
    assert overlap == pytest.approx(0.25**2, abs=0.02)


def test_bits_sharing_contexts_and_tokens_are_independent():
    # the bits of (a, v), (a, v'), (a', v), (a', v') share table words; their XOR must still
    # behave like four independent Bernoulli(gamma) draws
    prf = GreenListPRF(SECRET, 0.25, "lefthash", 1, 4096)
    rng = np.random.default_rng(1)
    a, a2 = rng.integers(0, 4096, (2, 4000))
    v, v2 = rng.integers(0, 4096, (2, 4000))
    m1, m2 = prf.green_mask(a[:, None], 4096), prf.green_mask(a2[:, None], 4096)
    rows = np.arange(4000)
    xor = m1[rows, v] ^ m1[rows, v2] ^ m2[rows, v] ^ m2[rows, v2]
    expected = 0.5 * (1 - (1 - 2 * 0.25) ** 4)
    assert xor.mean() == pytest.approx(expected, abs=4 * np.sqrt(expected * (1 - expected) / 4000))


def test_tables_are_prefix_stable_and_key_dependent():
    small, large = expand_table(SECRET, "vocab", 100), expand_table(SECRET, "vocab", 1000)
    assert np.array_equal(small, large[:100])
    assert not np.array_equal(small, expand_table(bytes(32), "vocab", 100))
    prf = GreenListPRF(SECRET, 0.25, "lefthash", 1, 100)
    before = prf.green_mask(np.array([[5]]), 100)
    after = prf.green_mask(np.array([[5]]), 5000)  # logits wider than the tokenizer
    assert np.array_equal(before[0], after[0, :100])


def test_context_order_matters_for_lefthash():
    prf = GreenListPRF(SECRET, 0.25, "lefthash", 2, 4096)
    ab, ba = prf.green_mask(np.array([[1, 2], [2, 1]]), 4096)
    assert (ab != ba).mean() > 0.3
