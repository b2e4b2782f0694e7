"""DPO with TRL: the scripts take TRL's own flags, LoRA adapters save on their own and reload, and
the whole stage (pairs → simulated labels → DPO) moves the policy the labels' way."""

from __future__ import annotations

import json

import torch

from alignment.gold import gold_score


def test_dpo_and_reward_scripts_parse_trl_flags(tmp_path):
    from alignment import dpo, reward

    config = tmp_path / "recipe.yaml"
    config.write_text("model_name_or_path: some/model\ndataset_name: prefs.jsonl\nbeta: 0.3\nlora_r: 4\n")
    script_args, training_args, model_args, _ = dpo.make_parser().parse_args_and_config(
        [
            "--config",
            str(config),
            "--output_dir",
            str(tmp_path / "o"),
            "--learning_rate",
            "3e-5",
            "--use_peft",
            "--lora_alpha",
            "8",
            "--max_length",
            "64",
            "--loss_type",
            "sigmoid",
        ]
    )
    assert training_args.learning_rate == 3e-5 and training_args.beta == 0.3 and training_args.max_length == 64
    assert model_args.use_peft and model_args.lora_r == 4 and model_args.lora_alpha == 8
    assert script_args.dataset_name == "prefs.jsonl"
    assert training_args.use_cpu == (
        not torch.cuda.is_available()
    )  # CPU default, so TRL's bf16 default is not refused
    _, reward_args, _, _ = reward.make_parser().parse_args_and_config(
        [
            "--model_name_or_path",
            "m",
            "--dataset_name",
            "d",
            "--output_dir",
            str(tmp_path / "r"),
            "--center_rewards_coefficient",
            "0.01",
        ]
    )
    assert reward_args.center_rewards_coefficient == 0.01


def test_mintline_align_dpo_uses_the_same_parser(cli, tmp_path):
    result = cli(
        "align",
        "dpo",
        "--model_name_or_path",
        tmp_path / "missing",
        "--dataset_name",
        tmp_path / "none.jsonl",
        "--output_dir",
        tmp_path / "out",
        "--beta",
        "0.2",
        "--no_such_flag",
        "1",
    )
    assert result.code == 2 and "unknown option" in result.err and result.err.count("\n") == 1


def _gold_preferences(pairs, path):
    rows = []
    for pair in pairs:
        a, b = gold_score(pair.prompt, pair.response_a), gold_score(pair.prompt, pair.response_b)
        if a != b:
            chosen, rejected = (pair.response_a, pair.response_b) if a > b else (pair.response_b, pair.response_a)
            rows.append({"prompt": pair.prompt, "chosen": chosen, "rejected": rejected})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_dpo_script_saves_a_lora_adapter_that_reloads_onto_its_base(cli, trained_model_dir, policy_pairs, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    data = _gold_preferences(policy_pairs[:24], tmp_path / "prefs.jsonl")
    out = tmp_path / "adapter"
    result = cli(
        "align",
        "dpo",
        "--model_name_or_path",
        trained_model_dir,
        "--dataset_name",
        data,
        "--output_dir",
        out,
        "--use_peft",
        "--lora_r",
        "4",
        "--max_steps",
        "3",
        "--per_device_train_batch_size",
        "4",
        "--learning_rate",
        "1e-2",
        "--max_length",
        "48",
        "--gradient_checkpointing",
        "false",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--json",
        "-q",
    )
    assert result.code == 0, result
    figures = result.json()
    assert figures["saved"] == "adapter" and figures["steps"] == 3
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()  # the adapter on its own, not a merged copy
    assert (out / "adapter_model.safetensors").stat().st_size < 200_000
    base = AutoModelForCausalLM.from_pretrained(trained_model_dir)
    plain = AutoModelForCausalLM.from_pretrained(trained_model_dir)
    tuned = PeftModel.from_pretrained(base, out).eval()
    ids = torch.tensor([[1, 40, 50, 60, 70]])
    with torch.inference_mode():
        moved = (tuned(input_ids=ids).logits - plain(input_ids=ids).logits).abs().max().item()
        with tuned.disable_adapter():
            restored = (tuned(input_ids=ids).logits - plain(input_ids=ids).logits).abs().max().item()
    assert moved > 1e-4 and restored < 1e-5


def test_rlhf_lite_stage_end_to_end_moves_the_policy(trained_model_dir, tmp_path):
    """pairs from the policy → active loop with simulated annotators over the ledger → DPO (LoRA) → measured.

    The judge here prefers concise answers, a preference a 1M-parameter policy can learn from 40 pairs;
    the pipeline's own gold judge and 25% label flips are measured by benchmarks/alignment.py.
    """
    from alignment.bradley_terry import RewardModelConfig
    from alignment.candidates import CandidateConfig
    from alignment.loop import ActiveLoopConfig
    from alignment.stage import AlignStageConfig, run_align_stage

    def concise_judge(prompt: str, response: str) -> float:
        return -len(response.split())

    prompts = tmp_path / "prompts.txt"
    prompts.write_text(
        "\n".join(
            f"The {w} function returns"
            for w in (
                "open",
                "sorted",
                "print",
                "len",
                "range",
                "zip",
                "map",
                "filter",
                "repr",
                "format",
                "iter",
                "next",
                "round",
                "sum",
                "min",
                "max",
                "abs",
                "hash",
                "id",
                "type",
            )
        )
    )
    stage = AlignStageConfig(
        policy_model=str(trained_model_dir),
        output_dir=str(tmp_path / "align"),
        prompts_file=str(prompts),
        flip_rate=0.0,
        eval_fraction=0.34,
        dpo_epochs=4,
        dpo_learning_rate=5e-3,
        dpo_max_length=48,
        reward_labelled_pairs=True,
        gold_eval_pairs=44,  # leaves ~16 pool pairs nobody is asked about, for the reward model to label
    )
    figures = run_align_stage(
        stage,
        CandidateConfig(samples_per_prompt=4, max_new_tokens=16),
        ActiveLoopConfig(budget=60, batch_size=20, strategy="fisher+kcenter"),
        # Whitened components pin the labels this test's DPO was calibrated on: which 60 pairs fisher+kcenter picks
        # moves the DPO'd policy's gold accuracy by ~0.2 on 40 training pairs, and that is not what it tests.
        RewardModelConfig(feature_dim=16, whiten=True),
        gold=concise_judge,
    )
    assert figures["state"] == "done" and figures["labels_requested"] == 60 and figures["rounds_this_call"] == 3
    # The final reward model labels one more pair per prompt (its best answer against its worst), never one a
    # person was asked about, and DPO trains on them beside the human labels.
    labelled = [json.loads(line) for line in (tmp_path / "align" / "reward_labelled.jsonl").read_text().splitlines()]
    assert figures["reward_labelled_pairs"] == len(labelled) >= 8
    assert figures["reward_labelled_gold_agreement"] > 0.7
    human_train = len((tmp_path / "align" / "preferences.jsonl").read_text().splitlines()) - figures["dpo"].get(
        "heldout_pairs", 0
    )
    assert figures["dpo"]["saved"] == "adapter" and figures["dpo"]["train_pairs"] == human_train + len(labelled)
    # Before DPO the policy equals its reference: every held-out pair is a tie and scores exactly 0.5.
    assert figures["dpo"]["heldout_implicit_reward_accuracy"] > 0.65
    # ... and on the gold-judged pairs kept out of both the labelling pool and DPO (39 of 44 decided here)
    assert figures["dpo"]["gold_eval_pairs"] == figures["gold_eval_pairs"] >= 35
    assert figures["dpo"]["gold_implicit_reward_accuracy"] > 0.7
    # The labels plot's baseline: random selection over the same pool, annotators and rounds, in a scratch ledger.
    assert [p["labels"] for p in figures["random_curve"]] == [p["labels"] for p in figures["curve"]] == [20, 40, 60]
    assert all(0 <= p["accuracy"] <= 1 for p in figures["random_curve"])
    assert (
        json.loads((tmp_path / "align" / "figures.json").read_text())["labels_received"] == figures["labels_received"]
    )


def test_dpo_verdict_flags_a_dpo_that_did_not_help():
    from alignment.stage import dpo_verdict

    flat = {"gold_win_rate": {"n": 64, "win_rate": 0.508, "margin_ci": [-0.0625, 0.0781], "answers_per_prompt": 2}}
    verdict = dpo_verdict(flat)
    assert verdict["helped"] is False and verdict["ci"] == [0.4375, 0.5781]
    assert verdict["text"].startswith("DPO did not measurably beat the pre-DPO policy")
    assert "64 held-out prompts (2 answers each)" in verdict["text"]

    better = {"gold_win_rate": {"n": 128, "win_rate": 0.594, "margin_ci": [0.0078, 0.1797], "answers_per_prompt": 8}}
    assert dpo_verdict(better)["helped"] is True and dpo_verdict(better)["text"].startswith("DPO beat")

    # without held-out prompts: the implicit-reward accuracy on the gold pairs, a Wilson interval around it
    chance = dpo_verdict({"gold_implicit_reward_accuracy": 0.4886, "gold_eval_pairs": 88})
    assert chance["helped"] is False and "chance" in chance["text"]
    assert dpo_verdict({})["helped"] is False


def test_dpo_loss_options_reach_trl_and_bad_values_are_refused(tmp_path):
    import pytest

    from alignment.errors import ConfigError
    from alignment.stage import AlignStageConfig, dpo_training_args

    base = {"policy_model": "policy", "output_dir": str(tmp_path)}
    plain = dpo_training_args(str(tmp_path), AlignStageConfig(**base))
    assert plain.ld_alpha is None and plain.loss_type == ["sigmoid"]
    length_desensitised = dpo_training_args(str(tmp_path), AlignStageConfig(**base, dpo_ld_alpha=0.5))
    assert length_desensitised.ld_alpha == 0.5
    rpo = dpo_training_args(str(tmp_path), AlignStageConfig(**base, dpo_rpo_alpha=0.2))
    assert rpo.loss_type == ["sigmoid", "sft"] and rpo.loss_weights == [1.0, 0.2]
    for bad in ({"dpo_ld_alpha": 1.5}, {"dpo_ld_alpha": -0.1}, {"dpo_rpo_alpha": -1.0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            AlignStageConfig(**base, **bad)
