"""Resuming says nothing alarming about tied embeddings, and still warns about a truly missing weight."""

from __future__ import annotations

import logging
import shutil

import pytest
from safetensors.torch import load_file, save_file

from pretrain import checkpoints
from pretrain.config import PretrainArguments
from pretrain.engine import pretrain


class Collect(logging.Handler):
    """transformers' loggers do not propagate to the root logger (caplog), so listen on them directly."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def transformers_warnings():
    handler = Collect()
    logger = logging.getLogger("transformers")
    level = logger.level
    logger.setLevel(logging.WARNING)  # other tests (and libraries) lower transformers' verbosity to errors only
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)
    logger.setLevel(level)


def short_run(prepared_data) -> PretrainArguments:
    return PretrainArguments(
        model="nano",
        data_dir=str(prepared_data["data"]),
        tokenizer=str(prepared_data["tokenizer"]),
        block_size=64,
        per_device_batch_size=4,
        max_steps=4,
        warmup_steps=1,
        eval_steps=100,
        eval_blocks=4,
        save_steps=2,
        logging_steps=1,
        precision="fp32",
        seed=5,
    )


def resume_from_step_2(args, output_dir):
    shutil.rmtree(output_dir / "checkpoint-4")
    shutil.rmtree(output_dir / "model")
    return pretrain(args, output_dir)


def test_resume_with_tied_embeddings_is_quiet(prepared_data, tmp_path, transformers_warnings):
    args = short_run(prepared_data)
    output_dir = tmp_path / "pretrain"
    straight = pretrain(args, output_dir)
    # the checkpoint stores the tied embedding once: lm_head.weight is not in the file
    assert "lm_head.weight" not in load_file(output_dir / "checkpoint-2" / "model.safetensors")

    transformers_warnings.clear()
    resumed = resume_from_step_2(args, output_dir)
    assert resumed["resumed_from_step"] == 2
    assert resumed["eval_loss"] == pytest.approx(straight["eval_loss"], rel=1e-5)
    assert not [m for m in transformers_warnings if "missing keys" in m], transformers_warnings


def test_a_weight_really_missing_from_the_checkpoint_is_still_warned_about(
    prepared_data, tmp_path, transformers_warnings
):
    args = short_run(prepared_data)
    output_dir = tmp_path / "pretrain"
    pretrain(args, output_dir)
    weights_path = output_dir / "checkpoint-2" / "model.safetensors"
    weights = load_file(weights_path)
    del weights["model.norm.weight"]
    save_file(weights, weights_path, metadata={"format": "pt"})
    checkpoints.seal(output_dir / "checkpoint-2")  # intact as far as the seal knows: only the key is gone

    transformers_warnings.clear()
    resume_from_step_2(args, output_dir)
    missing = [m for m in transformers_warnings if "missing keys" in m]
    assert len(missing) == 1 and "model.norm.weight" in missing[0] and "lm_head" not in missing[0], missing
