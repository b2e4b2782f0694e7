"""`mintline generate` on a PEFT adapter: the align stage's output and a released adapter bundle.

The adapter is loaded onto its base (the adapter config's `base_model_name_or_path`, relative to the
adapter directory or to the working directory, or `--base_model`) and generates what PEFT's own
`PeftModel.from_pretrained(base, adapter)` generates.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

PROMPTS = ["The return value", "A list of"]


@pytest.fixture(scope="module")
def base_and_adapter(tmp_path_factory, tokenizer_dir):
    """(base model dir, adapter dir with its tokenizer): a nano Llama and a LoRA adapter whose weights are not zero."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pretrain.presets import build_config

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = build_config(
        "nano", len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    )
    root = tmp_path_factory.mktemp("adapter-run")
    base_dir, adapter_dir = root / "base", root / "adapter"
    AutoModelForCausalLM.from_config(config).save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", init_lora_weights=False
    )  # random B: the adapter changes the output
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), lora)
    peft_model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)  # as the align stage saves it
    return base_dir, adapter_dir


def peft_greedy(base_dir: Path, adapter_dir: Path, max_new_tokens: int) -> list[str]:
    """What PEFT itself generates (unmerged adapter), greedily."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pretrain.generation import GenerationArguments, generate_texts

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter_dir).eval()
    greedy = GenerationArguments(max_new_tokens=max_new_tokens, do_sample=False)
    return generate_texts(model, tokenizer, PROMPTS, greedy)


def set_base(adapter_dir: Path, value: str) -> None:
    path = adapter_dir / "adapter_config.json"
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = value
    path.write_text(json.dumps(config))


def generate(cli, model: Path, *extra) -> list[str]:
    result = cli(
        "generate",
        "--model",
        model,
        "--do_sample",
        "false",
        "--max_new_tokens",
        "12",
        "--json",
        "--prompt",
        *PROMPTS,
        *extra,
    )
    assert result.code == 0, result
    return [sample["completion"] for sample in result.json()["samples"]]


def test_generate_loads_an_adapter_on_its_base(cli, tmp_path, monkeypatch, base_and_adapter):
    base_dir, adapter_dir = base_and_adapter
    expected = peft_greedy(base_dir, adapter_dir, 12)
    plain = generate(cli, base_dir)
    assert expected != plain  # the adapter matters

    # The align stage's layout: the base path is relative to the working directory (the run's parent).
    run = tmp_path / "work"
    shutil.copytree(adapter_dir.parent, run / "runs" / "r1")
    set_base(run / "runs" / "r1" / "adapter", "runs/r1/base")
    monkeypatch.chdir(run)
    assert generate(cli, Path("runs/r1/adapter")) == expected

    # A release's layout: the base is relative to the adapter directory, wherever the pair is copied.
    release = tmp_path / "release"
    shutil.copytree(base_dir, release / "base")
    shutil.copytree(adapter_dir, release / "bundle")
    set_base(release / "bundle", "../base")
    monkeypatch.chdir(tmp_path / "work" / "runs")  # neither the release nor its parent
    assert generate(cli, release / "bundle") == expected


def test_adapter_whose_base_is_elsewhere_needs_base_model(cli, tmp_path, base_and_adapter):
    base_dir, adapter_dir = base_and_adapter
    moved = tmp_path / "adapter"
    shutil.copytree(adapter_dir, moved)
    set_base(moved, "runs/gone/pretrain/model")
    missing = cli("generate", "--model", moved, "--prompt", "x")
    assert missing.code == 2 and missing.err.count("\n") == 1, missing
    assert "runs/gone/pretrain/model" in missing.err and "--base_model" in missing.err

    assert generate(cli, moved, "--base_model", base_dir) == peft_greedy(base_dir, adapter_dir, 12)
    not_adapter = cli("generate", "--model", base_dir, "--base_model", base_dir, "--prompt", "x")
    assert not_adapter.code == 2 and "not an adapter" in not_adapter.err


def test_watermarked_generation_from_an_adapter(cli, tmp_path, base_and_adapter):
    from watermark.keys import generate_key

    _, adapter_dir = base_and_adapter
    key = tmp_path / "key.json"
    generate_key(adapter_dir, key)
    result = cli(
        "generate",
        "--model",
        adapter_dir,
        "--prompt",
        "The return value",
        "--max_new_tokens",
        "8",
        "--watermark_key",
        key,
        "--json",
    )
    assert result.code == 0, result
    assert result.json()["watermark_key_id"].startswith("wmk")
