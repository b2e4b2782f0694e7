"""The `mintline run` summary gives the model's size before → after pruning."""

from __future__ import annotations

from mintline.commands.run import summary_row
from mintline.pipeline.stages import StageOutcome

FIGURES = {
    "parameters": 5_120_000,
    "steps": 1200,
    "eval_loss": 3.5,
    "eval_perplexity": 33.1,
    "tokens_per_second": 2000.0,
}


def test_pruned_model_shows_parameters_before_and_after():
    row = summary_row(StageOutcome("pretrain", {**FIGURES, "parameters_final": 2_870_000}), 300.0)
    assert row["key figures"].startswith("5.1M → 2.9M params, 1200 steps")


def test_unpruned_model_shows_one_count():
    assert summary_row(StageOutcome("pretrain", FIGURES), 300.0)["key figures"].startswith("5.1M params, 1200 steps")
