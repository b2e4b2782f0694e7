"""The pruning and sparsity callbacks inside a stock transformers Trainer: shapes, masks, resume."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file
from sparsity_helpers import TokenBlocks, tiny_llama, training_arguments
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback

from pretrain.sparsity.callbacks import build_callbacks, sparsity_figures
from pretrain.sparsity.config import SparsityArguments
from pretrain.sparsity.masking import mask_of
from pretrain.sparsity.structured import restore_pruned_shapes, weight_parameter

PRUNING = dict(
    prune_heads=0.5, prune_neurons=0.5, prune_start=0.25, prune_end=0.5, prune_events=2, importance_window=2
)


def _train(model, blocks, output_dir, sparsity: SparsityArguments, resume=None, extra=(), **overrides):
    callbacks = build_callbacks(sparsity, model)
    trainer = Trainer(
        model=model,
        args=training_arguments(output_dir, **overrides),
        train_dataset=TokenBlocks(blocks),
        callbacks=[*callbacks, *extra],
    )
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    return trainer, callbacks


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory, corpus_blocks):
    """One uninterrupted 12-step run that prunes at steps 3 and 6, checkpointing every 2 steps."""
    output_dir = tmp_path_factory.mktemp("pruned-run")
    model = tiny_llama(vocab_size=4096)
    trainer, callbacks = _train(model, corpus_blocks, output_dir, SparsityArguments(**PRUNING), save_steps=2)
    return output_dir, trainer, callbacks


def test_structured_pruning_shrinks_the_model_and_it_reloads_and_generates(pruned_run, tmp_path, tokenizer_dir):
    from pretrain.generation import GenerationArguments, generate_texts

    output_dir, trainer, callbacks = pruned_run
    figures = sparsity_figures(callbacks, trainer.model)
    assert [e["step"] for e in figures["structured_events"]] == [3, 6]
    assert figures["heads_per_layer_before"] == 4 and figures["heads_per_layer_after"] == 2
    assert figures["intermediate_size_before"] == 128 and figures["intermediate_size_after"] == 64
    # the 4096-token LM head dominates so small a model: pruning half the decoder saves ~13% here
    assert figures["train_flops_per_token_after"] < 0.9 * figures["train_flops_per_token_before"]
    assert 0 < figures["train_flops_saved_fraction"] < figures["train_flops_per_token_reduction"]
    assert figures["energy_source"]  # RAPL joules, or a statement that energy is an estimate

    trainer.save_model(tmp_path)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)  # plain transformers, no mintline code
    config = reloaded.config
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim, config.intermediate_size) == (
        2,
        2,
        16,
        64,
    )
    assert reloaded.model.layers[1].self_attn.q_proj.weight.shape == (32, 64)
    assert reloaded.model.layers[1].mlp.down_proj.weight.shape == (64, 64)
    assert figures["parameters_after"] == sum(p.numel() for p in reloaded.parameters())
    texts = generate_texts(
        reloaded, AutoTokenizer.from_pretrained(tmp_path), ["The return value"], GenerationArguments(max_new_tokens=8)
    )
    assert len(texts) == 1 and texts[0]


@pytest.mark.parametrize("resume_step", [2, 4], ids=["before-pruning", "between-pruning-events"])
def test_resume_across_a_pruning_step_matches_the_uninterrupted_run(pruned_run, tmp_path, corpus_blocks, resume_step):
    output_dir, trainer, _ = pruned_run
    checkpoint = tmp_path / f"checkpoint-{resume_step}"
    shutil.copytree(output_dir / f"checkpoint-{resume_step}", checkpoint)
    model = tiny_llama(vocab_size=4096, seed=123)  # a fresh model, as a restarted process builds it
    restore_pruned_shapes(model, checkpoint)  # the engine's one extra step (a no-op before any pruning)
    resumed, callbacks = _train(
        model, corpus_blocks, tmp_path, SparsityArguments(**PRUNING), resume=checkpoint, save_steps=2
    )
    expected = _state(trainer.model)
    got = _state(resumed.model)
    assert got.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6, msg=key)
    assert [e["step"] for e in callbacks[0].events] == [3, 6]


class MaskProbe(TrainerCallback):
    """After every step (and after the sparsity callback): pruned weights are exactly zero, stored and computed."""

    def __init__(self):
        self.sparsities: list[float] = []
        self.checked_steps = 0

    def on_step_end(self, args, state, control, model=None, **kwargs):
        zeros = total = 0
        for layer in model.model.layers:
            for linear in (layer.self_attn.q_proj, layer.mlp.down_proj):
                dead = ~mask_of(linear).mask.bool()
                assert not linear.weight[dead].any()  # what the forward uses
                assert not weight_parameter(linear)[dead].any()  # what the optimizer updates
                zeros += int(dead.sum())
                total += dead.numel()
        self.sparsities.append(zeros / total)
        self.checked_steps += 1


@pytest.mark.parametrize("method", ["magnitude", "rigl"])
def test_masks_stay_applied_through_optimizer_steps_and_checkpoints(tmp_path, corpus_blocks, method):
    sparsity = SparsityArguments(sparsity=0.5, sparsity_method=method, sparsity_end=0.75, sparsity_every=2)
    probe = MaskProbe()
    first_dir = tmp_path / "first"
    trainer, callbacks = _train(tiny_llama(vocab_size=4096), corpus_blocks, first_dir, sparsity, extra=[probe])
    assert probe.checked_steps == 12
    assert probe.sparsities[-1] == pytest.approx(0.5, abs=1e-3)
    if method == "magnitude":
        assert probe.sparsities[0] < 0.1 and probe.sparsities == sorted(probe.sparsities)  # gradual
    else:
        assert all(s == pytest.approx(0.5, abs=1e-3) for s in probe.sparsities)  # constant, rewired
        assert sum(u["moved"] for u in callbacks[0].updates) > 0

    # the checkpoint's weights are plain tensors whose zeros are exactly the saved mask's holes
    checkpoint = first_dir / "checkpoint-8"
    weights = load_file(checkpoint / "model.safetensors")
    saved = torch.load(checkpoint / "sparse_training.pt", weights_only=True)["state"]["masks"]
    name = "model.layers.1.mlp.up_proj"
    weight = weights[f"{name}.weight"]
    assert not any("parametrizations" in key for key in weights)
    assert not weight[~saved[name]].any()
    assert weight[saved[name]].count_nonzero() > 0.99 * saved[name].sum()

    # resume from step 8: the same masks come back and the run ends where the uninterrupted one did
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(checkpoint, resumed_dir / "checkpoint-8")
    probe_after = MaskProbe()
    resumed, _ = _train(
        tiny_llama(vocab_size=4096, seed=7),
        corpus_blocks,
        resumed_dir,
        sparsity,
        resume=resumed_dir / "checkpoint-8",
        extra=[probe_after],
    )
    assert probe_after.checked_steps == 4
    final, final_resumed = _state(trainer.model), _state(resumed.model)
    for key in final:
        torch.testing.assert_close(final_resumed[key], final[key], rtol=1e-5, atol=1e-6, msg=key)
    # training over, the masks are baked in: a plain model with zeros, no parametrizations left
    assert mask_of(trainer.model.model.layers[0].mlp.up_proj) is None
    assert sparsity_figures(callbacks, trainer.model)["decoder_sparsity"] == pytest.approx(0.5, abs=1e-3)


def test_nothing_on_means_no_callbacks():
    assert build_callbacks(SparsityArguments(), tiny_llama()) == []
