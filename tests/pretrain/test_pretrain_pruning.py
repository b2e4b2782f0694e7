"""Dynamic structured pruning through `mintline pretrain` (the engine, not a bare Trainer)."""

from __future__ import annotations

import json
import shutil

import pytest
from transformers import AutoModelForCausalLM

PRUNED = [
    "--model",
    "nano",
    "--block_size",
    "64",
    "--per_device_batch_size",
    "4",
    "--max_steps",
    "12",
    "--warmup_steps",
    "1",
    "--eval_blocks",
    "8",
    "--eval_steps",
    "6",
    "--save_steps",
    "6",
    "--precision",
    "fp32",
    "--prune_heads",
    "0.5",
    "--prune_neurons",
    "0.5",
    "--prune_start",
    "0.25",
    "--prune_end",
    "0.25",
    "--prune_events",
    "1",
    "--importance_window",
    "2",
    "-q",
]


def test_pruned_run_saves_a_smaller_plain_transformers_model_and_resumes_after_pruning(cli, run_dir):
    first = cli("pretrain", "--run_dir", run_dir, *PRUNED, "--json")
    assert first.code == 0, first
    figures = first.json()
    sparsity = figures["sparsity"]
    assert sparsity["pruning_steps"] == [3]
    assert sparsity["heads_per_layer_before"] == 4 and sparsity["heads_per_layer_after"] == 2
    assert sparsity["train_flops_per_token_after"] < sparsity["train_flops_per_token_before"]
    assert sparsity["parameters_after"] < sparsity["parameters_before"] == figures["parameters"]

    model_dir = run_dir / "pretrain" / "model"
    reloaded = AutoModelForCausalLM.from_pretrained(model_dir)  # plain transformers
    assert reloaded.config.num_attention_heads == 2
    assert reloaded.config.intermediate_size == sparsity["intermediate_size_after"]
    assert sum(p.numel() for p in reloaded.parameters()) == figures["parameters_final"]

    # resume from the checkpoint at step 6, taken after the pruning event at step 3: the preset
    # builds the dense shapes, the engine shrinks them to the checkpoint's before loading it
    shutil.rmtree(run_dir / "pretrain" / "checkpoint-12")
    shutil.rmtree(model_dir)
    resumed = cli("pretrain", "--run_dir", run_dir, *PRUNED, "--force", "--json")
    assert resumed.code == 0, resumed
    assert resumed.json()["resumed_from_step"] == 6
    assert resumed.json()["eval_loss"] == pytest.approx(figures["eval_loss"], rel=1e-5)
    assert AutoModelForCausalLM.from_pretrained(model_dir).config.num_attention_heads == 2


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--prune_heads", "1.0"], "prune_heads: must be in [0, 1)"),
        (["--sparsity", "-0.1"], "sparsity: must be in [0, 1)"),
    ],
)
def test_bad_pruning_settings_fail_before_training(cli, run_dir, extra, expected):
    run = cli("pretrain", "--run_dir", run_dir, *PRUNED, *extra)
    assert run.code == 2, run
    assert expected in run.err and run.err.strip().count("\n") == 0
    assert not (run_dir / "pretrain" / "model").exists()


def test_a_schedule_below_one_head_per_layer_is_refused(cli, run_dir, tmp_path):
    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(run_dir / "prepare" / "tokenizer"))
    config = {
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 1,
        "intermediate_size": 64,
        "max_position_embeddings": 128,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    run = cli("pretrain", "--run_dir", run_dir, *PRUNED, "--model", tmp_path / "config.json")
    assert run.code == 2, run
    assert "prune_heads" in run.err and "less than one head" in run.err and "Traceback" not in run.err
