"""SynthID-Text as the second scheme: transformers' tournament on the keyed PRF, exact test, Bayesian detector."""

from __future__ import annotations

import numpy as np
import pytest

from watermark.detect import Detector, detect_texts
from watermark.keys import generate_key, load_key


@pytest.fixture(scope="session")
def synthid_key(key_dir, tokenizer_dir):
    path = key_dir / "synthid.json"
    generate_key(tokenizer_dir, path, scheme="synthid", ngram_len=4, depth=20)
    return path


@pytest.fixture(scope="session")
def synthid_samples(trained_model_dir, synthid_key, sample_prompts, generate_samples):
    """16 marked and 16 unmarked generations of 96 tokens: (marked ids, unmarked ids, marked texts, unmarked texts).

    The marked ones come in two batches through one processor, which must restart its state per call."""
    prompts = (sample_prompts * 2)[:16]
    marked_texts, marked_ids = generate_samples(trained_model_dir, synthid_key, prompts, 96, batch_size=8)
    plain_texts, plain_ids = generate_samples(trained_model_dir, None, prompts, 96, seed=1)
    return marked_ids, plain_ids, marked_texts, plain_texts


def test_synthid_marked_text_is_detected_exactly(synthid_samples, synthid_key, other_kgw_key, tokenizer_dir):
    _, _, marked, plain = synthid_samples
    found = detect_texts(marked, synthid_key, tokenizer_dir)
    assert all(r.watermarked and r.p_value < 1e-4 and r.scheme == "synthid" for r in found), [r.p_value for r in found]
    assert found[0].num_trials == found[0].num_tokens_scored * 20  # depth g-values per token
    clean = detect_texts(plain, synthid_key, tokenizer_dir)
    assert not any(r.watermarked for r in clean)
    assert abs(np.mean([r.z_score for r in clean])) < 1.5
    wrong = detect_texts(marked, other_kgw_key, tokenizer_dir)
    assert not any(r.watermarked for r in wrong)


def test_bayesian_detector_trains_locally_and_agrees_with_transformers(
    single_thread, tmp_path, synthid_samples, synthid_key, trained_model_dir, tokenizer_dir
):
    import torch
    from transformers import AutoTokenizer, SynthIDTextWatermarkDetector

    from watermark.processor import KeyedSynthIDLogitsProcessor
    from watermark.synthid import train_bayesian_detector

    marked_ids, plain_ids, marked, plain = synthid_samples
    key = load_key(synthid_key)
    detector_dir = tmp_path / "bayesian"
    model, figures = train_bayesian_detector(key, marked_ids, plain_ids, pad_id=0, out_dir=detector_dir, steps=150)
    assert figures["auc_bayesian_posterior"] >= 0.9 and figures["auc_mean_g_value"] >= 0.9, figures
    # through our Detector (key + tokenizer + detector, no model)...
    ours = Detector([key], tokenizer_dir, synthid_detector=detector_dir).detect_token_ids(
        [np.array(r) for r in marked_ids[:4]]
    )
    # ...and through transformers' own SynthIDTextWatermarkDetector with the keyed processor
    tokenizer = AutoTokenizer.from_pretrained(trained_model_dir)
    theirs = SynthIDTextWatermarkDetector(model, KeyedSynthIDLogitsProcessor(key, len(tokenizer)), tokenizer)
    (posterior,) = theirs(torch.tensor(marked_ids[:4]))
    assert [r.bayesian_posterior for r in ours] == pytest.approx(posterior.tolist(), abs=1e-5)
    assert min(r.bayesian_posterior for r in ours) > 0.5
