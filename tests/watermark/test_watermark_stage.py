"""The pipeline's watermark stage: key bound to the model's tokenizer, reused, never replaced; figures out."""

from __future__ import annotations

import json

import pytest

from mintline.pipeline.watermark_stage import WatermarkStageConfig, ensure_key, evaluate_and_distill
from watermark.errors import KeyFileError
from watermark.keys import DEFAULT_SCHEME


def test_stage_makes_reuses_and_never_replaces_the_key(single_thread, tmp_path, trained_model_dir):
    stage = tmp_path / "watermark"
    first = ensure_key(trained_model_dir, stage, WatermarkStageConfig())
    assert first.key_id.startswith("wmk1-") and first.scheme == DEFAULT_SCHEME
    assert oct((stage / "key.json").stat().st_mode & 0o777) == "0o600"
    assert ensure_key(trained_model_dir, stage, WatermarkStageConfig()).key_id == first.key_id
    with pytest.raises(KeyFileError, match="other parameters"):
        ensure_key(trained_model_dir, stage, WatermarkStageConfig(delta=1.0))


def test_stage_evaluation_reports_figures_for_the_key(single_thread, tmp_path, trained_model_dir):
    from mintline.pipeline.corpus import human_passages
    from pretrain.generation import load_model_and_tokenizer

    stage = tmp_path / "watermark"
    key = ensure_key(trained_model_dir, stage, WatermarkStageConfig())
    model, tokenizer = load_model_and_tokenizer(trained_model_dir)
    config = WatermarkStageConfig(evaluate=True, eval_samples=8, eval_lengths=[48])
    figures = evaluate_and_distill(config, key, model, tokenizer, trained_model_dir, human_passages(limit=120), stage)
    assert figures["tpr_at_1pct_fpr_none_48"] == 1.0 and figures["human_passages"] == 120
    assert json.loads((stage / "evaluation" / "evaluation.json").read_text())["key_id"] == key.key_id
