"""The pretraining engine: it learns, resumes exactly, survives broken checkpoints, reloads."""

from __future__ import annotations

import json
import signal
from dataclasses import replace

import pytest
from transformers import TrainerCallback

from pretrain.config import PretrainArguments
from pretrain.engine import TrainingInterrupted, pretrain


def nano_args(prepared_data, **overrides) -> PretrainArguments:
    base = dict(
        model="nano",
        data_dir=str(prepared_data["data"]),
        tokenizer=str(prepared_data["tokenizer"]),
        block_size=64,
        per_device_batch_size=8,
        max_steps=24,
        warmup_steps=4,
        eval_steps=1000,
        eval_blocks=32,
        save_steps=6,
        logging_steps=1,
        precision="fp32",
        seed=7,
    )
    base.update(overrides)
    return PretrainArguments(**base)


def step_losses(output_dir) -> dict[int, float]:
    history = json.loads((output_dir / "log_history.json").read_text())
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}


class InterruptAt(TrainerCallback):
    """Sends the process a real SIGINT at a given step, as Ctrl-C would."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            signal.raise_signal(signal.SIGINT)


def test_nano_learns_and_reloads_with_plain_transformers(prepared_data, tmp_path):
    figures = pretrain(nano_args(prepared_data, max_steps=40, learning_rate=5e-3), tmp_path / "out")
    assert figures["eval_loss"] < figures["initial_eval_loss"] - 1.0
    assert figures["tokens_per_second"] > 0 and figures["steps"] == 40
    assert figures["precision"] == "fp32"

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = tmp_path / "out" / "model"
    assert (model_dir / "model.safetensors").is_file()
    assert not list(model_dir.glob("*.bin"))
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompt = tokenizer("Return the", return_tensors="pt")
    output = model.generate(**prompt, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert output.shape[1] > prompt["input_ids"].shape[1]
    assert any((tmp_path / "out" / "tensorboard").iterdir())


def test_interrupted_run_resumes_to_the_same_losses(prepared_data, tmp_path):
    args = nano_args(prepared_data)
    pretrain(args, tmp_path / "straight")
    with pytest.raises(TrainingInterrupted):
        pretrain(args, tmp_path / "resumed", extra_callbacks=[InterruptAt(9)])
    interrupted = step_losses_from_state(tmp_path / "resumed")
    assert max(interrupted) < args.max_steps
    figures = pretrain(args, tmp_path / "resumed")
    assert figures["resumed_from_step"] == max(interrupted)

    straight, resumed = step_losses(tmp_path / "straight"), step_losses(tmp_path / "resumed")
    for step in range(figures["resumed_from_step"] + 1, args.max_steps + 1):
        assert resumed[step] == pytest.approx(straight[step], rel=1e-4, abs=1e-5), step


def step_losses_from_state(output_dir) -> dict[int, float]:
    newest = max(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    history = json.loads((newest / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}


def test_corrupt_newest_checkpoint_falls_back_to_previous(prepared_data, tmp_path, caplog):
    args = nano_args(prepared_data, max_steps=12)
    with pytest.raises(TrainingInterrupted):
        pretrain(args, tmp_path / "out", extra_callbacks=[InterruptAt(8)])
    newest = tmp_path / "out" / "checkpoint-9"
    assert newest.is_dir()
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # a torn write
    with caplog.at_level("WARNING", logger="pretrain"):
        figures = pretrain(args, tmp_path / "out")
    assert figures["resumed_from_step"] == 6
    assert "checkpoint-9 is unusable" in caplog.text
    assert (tmp_path / "out" / "checkpoint-9.corrupt").is_dir()


def test_output_dir_of_a_different_run_is_refused(prepared_data, tmp_path):
    from pretrain.errors import CheckpointError

    args = nano_args(prepared_data, max_steps=6)
    pretrain(args, tmp_path / "out")
    with pytest.raises(CheckpointError, match="different run.*learning_rate"):
        pretrain(replace(args, learning_rate=1e-4), tmp_path / "out")
    figures = pretrain(replace(args, learning_rate=1e-4, overwrite_output_dir=True), tmp_path / "out")
    assert figures["resumed_from_step"] is None
