"""TensorBoard: one log directory per pretraining run, with the pruning events as scalars."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pretrain.config import PretrainArguments
from pretrain.engine import pretrain
from pretrain.sparsity.config import SparsityArguments


def test_one_log_directory_holds_training_eval_and_pruning_scalars(prepared_data, tmp_path):
    args = PretrainArguments(
        model="nano",
        data_dir=str(prepared_data["data"]),
        tokenizer=str(prepared_data["tokenizer"]),
        block_size=64,
        per_device_batch_size=4,
        max_steps=8,
        warmup_steps=1,
        eval_steps=4,
        eval_blocks=8,
        save_steps=100,
        logging_steps=1,
        precision="fp32",
        seed=3,
    )
    sparsity = SparsityArguments(
        prune_heads=0.5,
        prune_neurons=0.5,
        prune_start=0.25,
        prune_end=0.25,
        prune_events=1,
        importance_window=2,
        sparsity=0.5,
        sparsity_method="magnitude",
        sparsity_start=0.5,
        sparsity_end=0.75,
        sparsity_every=2,
        measure_throughput=False,
    )
    output_dir = tmp_path / "pretrain"
    figures = pretrain(args, output_dir, sparsity=sparsity)

    event_dirs = {path.parent for path in output_dir.rglob("events.out.tfevents*")}
    assert event_dirs == {output_dir / "tensorboard"}, sorted(map(str, event_dirs))
    assert not (output_dir / "runs").exists()

    events = EventAccumulator(str(output_dir / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "eval/loss", "pruning/heads_per_layer", "pruning/parameters"} <= scalars

    def steps_and_values(tag: str) -> list[tuple[int, float]]:
        return [(event.step, event.value) for event in events.Scalars(tag)]

    # the final evaluation (after train() returned) is in the same directory, once per step
    eval_steps = [step for step, _ in steps_and_values("eval/loss")]
    assert eval_steps == sorted(set(eval_steps)) and eval_steps[-1] == 8
    # before pruning, then the event at step 2: 4 → 2 heads, fewer parameters
    assert steps_and_values("pruning/heads_per_layer") == [(0, 4.0), (2, 2.0)]
    parameters = steps_and_values("pruning/parameters")
    assert parameters[0] == (0, float(figures["parameters"]))
    assert parameters[-1] == (2, float(figures["parameters_final"])) and parameters[-1][1] < parameters[0][1]
    neurons = steps_and_values("pruning/mlp_neurons_per_layer")
    assert neurons[-1][1] < neurons[0][1]
    # gradual magnitude pruning: the decoder's zero fraction at each mask update, up to the target
    sparsity_steps = steps_and_values("sparsity/decoder_sparsity")
    assert [step for step, _ in sparsity_steps][1:] == [4, 6]
    assert abs(sparsity_steps[-1][1] - 0.5) < 0.02


def test_a_plain_run_logs_no_pruning_scalars(prepared_data, tmp_path):
    args = PretrainArguments(
        model="nano",
        data_dir=str(prepared_data["data"]),
        tokenizer=str(prepared_data["tokenizer"]),
        block_size=64,
        per_device_batch_size=4,
        max_steps=3,
        warmup_steps=1,
        eval_steps=100,
        eval_blocks=4,
        save_steps=100,
        logging_steps=1,
        precision="fp32",
        seed=3,
    )
    output_dir = tmp_path / "pretrain"
    pretrain(args, output_dir)
    event_dirs = {path.parent for path in Path(output_dir).rglob("events.out.tfevents*")}
    assert event_dirs == {output_dir / "tensorboard"}
    events = EventAccumulator(str(output_dir / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert "eval/loss" in scalars and not any(tag.startswith(("pruning/", "sparsity/")) for tag in scalars)
