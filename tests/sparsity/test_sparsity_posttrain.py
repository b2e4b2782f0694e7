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


def with_outlier_channels(model, channels: int = 4, scale: float = 16.0):
    """The same function, with a few residual channels carrying outsized activations.

    LLMs grow such channels with scale (the reason Wanda weighs |W| by ‖X‖): here the gain of
    the RMSNorm in front of q/k/v and gate/up is multiplied by `scale` on a few channels and the
    matching weight columns are divided by it, which leaves every output unchanged.
    """
    model = copy.deepcopy(model)
    with torch.no_grad():
        for layer in model.model.layers:
            for norm, projections in (
                (layer.input_layernorm, (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj)),
                (layer.post_attention_layernorm, (layer.mlp.gate_proj, layer.mlp.up_proj)),
            ):
                picked = torch.topk(norm.weight.abs(), channels).indices  # channels the model already leans on
                norm.weight[picked] *= scale
                for linear in projections:
                    linear.weight[:, picked] /= scale
    return model


def _zero_pattern(model) -> torch.Tensor:
    return torch.cat(
        [
            (linear.weight == 0).flatten()
            for layer in model.model.layers
            for linear in layer.mlp.children()
            if isinstance(linear, torch.nn.Linear)
        ]
    )


def test_wanda_beats_magnitude_at_half_sparsity(trained_model_dir, validation_file):
    model = AutoModelForCausalLM.from_pretrained(trained_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(trained_model_dir)
    calibration, evaluation = calibration_and_evaluation_blocks(tokenizer, [validation_file], 128, 32, 48)
    outliers = with_outlier_channels(model)
    dense = evaluate_loss(model, evaluation)
    assert evaluate_loss(outliers, evaluation) == pytest.approx(
        dense, abs=1e-4
    )  # nothing changed but the weights' scale

    pruned = {}
    for name, base in (("plain", model), ("outliers", outliers)):
        magnitude, wanda = copy.deepcopy(base), copy.deepcopy(base)
        prune_magnitude(magnitude, 0.5)
        prune_wanda(wanda, calibration, 0.5)
        pruned[name] = {"magnitude": magnitude, "wanda": wanda}
        for kind in (magnitude, wanda):
            assert _zero_pattern(kind).float().mean().item() == pytest.approx(0.5, abs=0.01)

    # Wanda chooses by |W|·‖X‖, which the rescale leaves alone: the same weights go either way ...
    same = (_zero_pattern(pruned["plain"]["wanda"]) == _zero_pattern(pruned["outliers"]["wanda"])).float().mean()
    assert same.item() > 0.999
    wanda_increase = evaluate_loss(pruned["outliers"]["wanda"], evaluation) - dense
    assert wanda_increase == pytest.approx(evaluate_loss(pruned["plain"]["wanda"], evaluation) - dense, abs=2e-3)
    # ... while magnitude, blind to activations, cuts the heavy channels' small weights first.
    magnitude_increase = evaluate_loss(pruned["outliers"]["magnitude"], evaluation) - dense
    assert wanda_increase < magnitude_increase, (wanda_increase, magnitude_increase)
    assert magnitude_increase > 2 * max(wanda_increase, 0.01)


def _run_with_validation(tmp_path, validation):
    run_dir = tmp_path / "run"
    (run_dir / "prepare" / "data").mkdir(parents=True)
    shutil.copy(validation, run_dir / "prepare" / "data" / "validation-00000-of-00001.jsonl")
    return run_dir


def test_prune_command_writes_a_sparse_model_plain_transformers_loads(
    cli, tmp_path, trained_model_dir, validation_file
):
    run_dir = _run_with_validation(tmp_path, validation_file)
    args = [
        "prune",
        "--model",
        trained_model_dir,
        "--method",
        "wanda",
        "--sparsity",
        "0.5",
        "--run_dir",
        run_dir,
        "--calibration_samples",
        "16",
        "--evaluation_samples",
        "16",
        "--block_size",
        "128",
    ]
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


def test_two_four_pattern_and_a_clear_word_about_the_hardware(cli, tmp_path, trained_model_dir, validation_file):
    out = tmp_path / "two-four"
    result = cli(
        "prune",
        "--model",
        trained_model_dir,
        "--method",
        "wanda",
        "--wanda_group",
        "layer",
        "--structured",
        "--calibration_data",
        validation_file,
        "--out",
        out,
        "--run_dir",
        tmp_path / "run",
        "--calibration_samples",
        "8",
        "--evaluation_samples",
        "8",
        "--block_size",
        "128",
    )
    assert result.code == 0, result
    assert "2:4" in result.out
    if not torch.cuda.is_available():
        assert "need a CUDA GPU of compute capability 8.0" in result.out
    weight = AutoModelForCausalLM.from_pretrained(out).model.layers[1].self_attn.q_proj.weight
    zeros_per_group = (weight.view(weight.shape[0], -1, 4) == 0).sum(-1)
    assert bool((zeros_per_group >= 2).all())
