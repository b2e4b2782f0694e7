"""Post-training pruning: Wanda vs magnitude on a trained model, and `mintline prune` end to end."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pretrain.sparsity.evaluation import calibration_and_evaluation_blocks, evaluate_loss
from pretrain.sparsity.posttrain import prune_magnitude, prune_wanda


# The wanda_model fixture trains for ~30-60 s on 2 cores: whichever of these runs first pays it.
pytestmark = pytest.mark.slow


def test_wanda_beats_magnitude_at_half_sparsity(wanda_model):
    model_dir, validation = wanda_model
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    calibration, evaluation = calibration_and_evaluation_blocks(tokenizer, [validation], 128, 32, 64)
    dense = evaluate_loss(model, evaluation)

    magnitude = copy.deepcopy(model)
    prune_magnitude(magnitude, 0.5)
    wanda = copy.deepcopy(model)
    prune_wanda(wanda, calibration, 0.5)
    wanda_layer = copy.deepcopy(model)
    prune_wanda(wanda_layer, calibration, 0.5, group="layer")
    for pruned in (magnitude, wanda, wanda_layer):
        weights = torch.cat([layer.mlp.up_proj.weight.flatten() for layer in pruned.model.layers])
        assert (weights == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)

    magnitude_increase = evaluate_loss(magnitude, evaluation) - dense
    wanda_increase = evaluate_loss(wanda, evaluation) - dense
    assert magnitude_increase > 0.02  # half the weights gone must cost something measurable
    assert wanda_increase < magnitude_increase, (wanda_increase, magnitude_increase)  # measured: 0.021 vs 0.045
    # the activation norms help with magnitude's own comparison group too (measured: 0.030)
    assert evaluate_loss(wanda_layer, evaluation) - dense < magnitude_increase


def _run_with_validation(tmp_path, validation):
    run_dir = tmp_path / "run"
    (run_dir / "prepare" / "data").mkdir(parents=True)
    shutil.copy(validation, run_dir / "prepare" / "data" / "validation-00000-of-00001.jsonl")
    return run_dir


def test_prune_command_writes_a_sparse_model_plain_transformers_loads(cli, tmp_path, wanda_model):
    model_dir, validation = wanda_model
    run_dir = _run_with_validation(tmp_path, validation)
    args = ["prune", "--model", model_dir, "--method", "wanda", "--sparsity", "0.5", "--run_dir", run_dir,
            "--calibration_samples", "16", "--evaluation_samples", "16", "--block_size", "128"]
    result = cli(*args, "--json")
    assert result.code == 0, result
    figures = result.json()
    out = run_dir / "prune" / "model"  # the default --out
    assert figures["out"] == str(out) and figures["calibration_files"][0].endswith("validation-00000-of-00001.jsonl")
    assert figures["decoder_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert figures["nonzero_parameters_after"] < figures["nonzero_parameters_before"]
    assert figures["perplexity_after"] > figures["perplexity_before"]
    assert figures["inference_tokens_per_second_before"] > 0 and figures["inference_tokens_per_second_after"] > 0

    reloaded = AutoModelForCausalLM.from_pretrained(out)
    down = reloaded.model.layers[0].mlp.down_proj.weight
    assert (down == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    assert AutoTokenizer.from_pretrained(out)("def f(x):")["input_ids"]

    journal = json.loads((run_dir / "run.json").read_text())["stages"]["prune"]
    assert journal["status"] == "finished" and journal["figures"]["perplexity_after"] == figures["perplexity_after"]
    again = cli(*args)
    assert again.code == 0 and "finished earlier" in again.out


def test_two_four_pattern_and_a_clear_word_about_the_hardware(cli, tmp_path, wanda_model):
    model_dir, validation = wanda_model
    out = tmp_path / "two-four"
    result = cli("prune", "--model", model_dir, "--method", "magnitude", "--structured", "--calibration_data", validation,
                 "--out", out, "--run_dir", tmp_path / "run", "--evaluation_samples", "8", "--block_size", "128")
    assert result.code == 0, result
    assert "2:4" in result.out
    if not torch.cuda.is_available():
        assert "need a CUDA GPU of compute capability 8.0" in result.out
    weight = AutoModelForCausalLM.from_pretrained(out).model.layers[1].self_attn.q_proj.weight
    zeros_per_group = (weight.view(weight.shape[0], -1, 4) == 0).sum(-1)
    assert bool((zeros_per_group >= 2).all())
