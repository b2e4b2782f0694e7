"""`mintline watermark distill`: a mark in the weights that plain `generate` carries, and where it fades."""

from __future__ import annotations

import json


def test_distilled_weights_carry_the_mark_without_the_processor(
    cli, single_thread, tmp_path, trained_model_dir, kgw_key, tokenizer_dir
):
    run = cli(
        "watermark",
        "distill",
        "--model",
        trained_model_dir,
        "--key",
        kgw_key,
        "--run_dir",
        tmp_path,
        "--num_samples",
        "64",
        "--sample_tokens",
        "64",
        "--steps",
        "40",
        "--learning_rate",
        "3e-3",
        "--eval_samples",
        "8",
        "--eval_tokens",
        "100",
        "--fade_steps",
        "0",
        "30",
        "--fade_block",
        "64",
        "--batch_size",
        "64",
        "--human_passages",
        "600",
        "--json",
        "-q",
    )
    assert run.code == 0, run
    figures = run.json()
    assert figures["before"]["detected_at_1pct_fpr"] <= 0.25  # the original weights carry no mark
    assert figures["after"]["detected_at_0.01pct_fpr"] >= 0.75 and figures["after"]["median_z"] > 4
    assert [p["steps"] for p in figures["fade"]] == [0, 30]
    assert figures["fade"][1]["median_z"] < figures["fade"][0]["median_z"]  # clean fine-tuning erodes it
    # anyone with the released weights: plain `mintline generate`, no key, no processor
    model_dir = tmp_path / "watermark" / "distilled" / "model"
    generated = cli(
        "generate",
        "--model",
        model_dir,
        "--prompt",
        "The return value",
        "If the argument is",
        "This module provides",
        "--max_new_tokens",
        "120",
        "--json",
        "-q",
    )
    assert generated.code == 0, generated
    assert "watermark_key_id" not in generated.json()
    texts = tmp_path / "plain.jsonl"
    texts.write_text("\n".join(json.dumps(s) for s in generated.json()["samples"]) + "\n", encoding="utf-8")
    detected = cli(
        "watermark", "detect", "--key", kgw_key, "--tokenizer", tokenizer_dir, "--min_tokens", "16", "--json", texts
    )
    lines = [json.loads(line) for line in detected.out.strip().splitlines()]
    scored = [line for line in lines if line["watermarked"] is not None]
    assert scored and sum(line["p_value"] < 1e-2 for line in scored) >= len(scored) - 1, lines
