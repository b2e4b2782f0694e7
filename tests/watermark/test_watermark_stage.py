"""The pipeline's entry point: key bound to the model's tokenizer, reused, never replaced; figures out."""

from __future__ import annotations

import json

import pytest

from mintline.commands.watermark import WatermarkStageConfig, run_watermark_stage
from watermark.errors import KeyFileError


def test_stage_makes_reuses_and_never_replaces_the_key(single_thread, tmp_path, trained_model_dir):
    stage = tmp_path / "watermark"
    quiet = WatermarkStageConfig(evaluate=False)
    first = run_watermark_stage(trained_model_dir, stage, quiet)
    assert first["key_id"].startswith("wmk1-") and first["params"]["delta"] == 2.5
    assert run_watermark_stage(trained_model_dir, stage, quiet)["key_id"] == first["key_id"]
    with pytest.raises(KeyFileError, match="other parameters"):
        run_watermark_stage(trained_model_dir, stage, WatermarkStageConfig(evaluate=False, delta=1.0))
    figures = run_watermark_stage(
        trained_model_dir, stage, WatermarkStageConfig(eval_samples=8, eval_lengths=[48], human_passages=120)
    )
    assert figures["key_id"] == first["key_id"]
    assert figures["tpr_at_1pct_fpr_none_48"] == 1.0 and figures["human_passages"] == 120
    assert json.loads((stage / "evaluation" / "evaluation.json").read_text())["key_id"] == first["key_id"]
