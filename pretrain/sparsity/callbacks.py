"""Trainer callbacks: dynamic structured pruning and unstructured sparse training.

They work with the stock transformers `Trainer` (and subclasses): everything they touch comes
in the callback kwargs (`model`, `optimizer`). Event order inside one optimizer step:

    on_step_begin → forward/backward → on_pre_optimizer_step (gradients present: Taylor scores)
    → optimizer.step → on_optimizer_step → zero_grad → on_step_end (prune / update masks)

Pruning at on_step_end means no gradient of the old shape is alive, and the next step
already runs on the smaller model.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time

import torch
from transformers import TrainerCallback

from pretrain.errors import CheckpointError, ConfigError
from pretrain.sparsity.accounting import PruningAccountingCallback, parameter_count
from pretrain.sparsity.architectures import check_supported, decoder_linears, decoder_shape, unwrap
from pretrain.sparsity.checkpointing import CheckpointedCallback
from pretrain.sparsity.config import SparsityArguments
from pretrain.sparsity.importance import ImportanceAccumulator, keep_top
from pretrain.sparsity.masking import (
    attach_masks,
    detach_masks,
    enforce_mask,
    magnitude_update,
    mask_of,
    masks_by_name,
    random_mask,
    rigl_update,
    sparsity_report,
)
from pretrain.sparsity.schedule import PruneEvent, check_prunable, cubic_sparsity, step_at, structured_plan
from pretrain.sparsity.structured import prune_heads, prune_neurons

log = logging.getLogger("pretrain")


def _refuse_multiprocess(world_size: int, what: str) -> None:
    # DDP's buckets and FSDP's flat shards are sized once, at wrap time.
    if world_size > 1:
        raise ConfigError(
            f"{what}: changes parameter shapes mid-run, which DDP/FSDP cannot follow; train on one process, "
            "or prune after training with `mintline prune`"
        )


class StructuredPruningCallback(CheckpointedCallback):
    """At scheduled steps, remove the least important heads and neurons from every layer."""

    state_file = "structured_pruning.pt"

    def __init__(self, args: SparsityArguments):
        self.args = args
        self.importance = ImportanceAccumulator(args.importance)
        self.initial_shape: dict | None = None
        self.plan: list[PruneEvent] = []
        self.events: list[dict] = []  # what was done: step, heads, neurons, seconds
        self._last_scored = 0

    def _pending(self) -> list[PruneEvent]:
        done = {e["step"] for e in self.events}
        return [e for e in self.plan if e.step not in done]

    def _collecting(self, step: int) -> bool:
        """Is the optimizer step numbered `step` (1-based) inside the window before the next event?"""
        pending = self._pending()
        return bool(pending) and pending[0].step - self.args.importance_window < step <= pending[0].step

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        _refuse_multiprocess(args.world_size, "prune_heads/prune_neurons")
        check_supported(model)
        config = unwrap(model).config
        restored = state.global_step > 0 and self.load_saved_state(args, state)
        if self.initial_shape is None:
            self.initial_shape = decoder_shape(config).as_dict()
        initial_config = copy.deepcopy(config)
        for key, value in self.initial_shape.items():
            setattr(initial_config, key, value)
        self.plan = structured_plan(self.args, initial_config, state.max_steps)
        if state.global_step > 0 and not restored:
            if any(e.step <= state.global_step for e in self.plan):
                raise CheckpointError(
                    f"resume at step {state.global_step}: the checkpoint has no {self.state_file}, so the pruning "
                    "already done cannot be known; resume from a checkpoint inside output_dir"
                )
        expected = self.events[-1] if self.events else None
        shape = decoder_shape(config)
        if expected and (shape.num_heads, shape.intermediate_size) != (expected["heads"], expected["neurons"]):
            raise CheckpointError(
                f"the model has {shape.num_heads} heads / {shape.intermediate_size} neurons per layer but the checkpoint "
                f"was pruned to {expected['heads']} / {expected['neurons']}; build the model from the checkpoint's "
                "config (pretrain.sparsity.structured.restore_pruned_shapes) before resuming"
            )
        log.info("structured pruning plan: %s", [e.as_dict() for e in self.plan])
        if self._collecting(state.global_step + 1):
            self.importance.attach(model)

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if self._collecting(state.global_step + 1):
            self.importance.attach(model)

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if self._collecting(state.global_step + 1):
            self.importance.accumulate_step(model)

    def step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        pending = self._pending()
        if not pending or pending[0].step != state.global_step:
            return
        event = pending[0]
        started = time.perf_counter()
        head_scores, neuron_scores = self._scores(model)
        shape = decoder_shape(unwrap(model).config)
        if event.heads < shape.num_heads:
            groups = 1 if shape.num_kv_heads == shape.num_heads else shape.num_kv_heads
            prune_heads(model, keep_top(head_scores, event.heads, groups), optimizer)
        if event.neurons < shape.intermediate_size:
            prune_neurons(model, keep_top(neuron_scores, event.neurons), optimizer)
        self.importance.reset()
        self.importance.detach()
        record = {
            **event.as_dict(),
            "seconds": round(time.perf_counter() - started, 4),
            "scored_steps": self._last_scored,
        }
        self.events.append(record)
        log.info(
            "step %d: pruned to %d heads and %d MLP neurons per layer (%.2fs)",
            state.global_step,
            event.heads,
            event.neurons,
            record["seconds"],
        )

    def _scores(self, model) -> tuple[torch.Tensor, torch.Tensor]:
        self._last_scored = self.importance.steps
        if self.importance.steps:
            return self.importance.scores(model)
        # Nothing accumulated (a window of steps before step 1, say): fall back to weight norms.
        log.warning("no importance accumulated before the pruning event; ranking by weight magnitude")
        shape = decoder_shape(unwrap(model).config)
        heads, neurons = [], []
        for layer in unwrap(model).model.layers:
            o = layer.self_attn.o_proj.weight.detach().float()
            heads.append(o.view(shape.hidden_size, shape.num_heads, -1).norm(dim=(0, 2)))
            neurons.append(layer.mlp.down_proj.weight.detach().float().norm(dim=0))
        return torch.stack(heads), torch.stack(neurons)

    def state_dict(self, model=None) -> dict:
        return {"initial_shape": self.initial_shape, "events": self.events, "importance": self.importance.state_dict()}

    def load_state_dict(self, saved: dict) -> None:
        self.initial_shape = saved["initial_shape"]
        self.events = list(saved["events"])
        self.importance.load_state_dict(saved["importance"])

    def figures(self) -> dict:
        return {"structured_plan": [e.as_dict() for e in self.plan], "structured_events": list(self.events)}

    # -- TensorBoard (pretrain.callbacks.tensorboard_callback): the model's size, at train begin and each event
    def event_at(self, step: int) -> bool:
        return any(event["step"] == step for event in self.events)

    def tensorboard_scalars(self, model) -> dict[str, float]:
        shape = decoder_shape(unwrap(model).config)
        return {
            "pruning/heads_per_layer": shape.num_heads,
            "pruning/mlp_neurons_per_layer": shape.intermediate_size,
            "pruning/parameters": parameter_count(model),
        }


class SparseTrainingCallback(CheckpointedCallback):
    """Unstructured masks on every decoder projection: gradual magnitude pruning or RigL."""

    state_file = "sparse_training.pt"

    def __init__(self, args: SparsityArguments):
        self.args = args
        self.masks: dict[str, torch.Tensor] | None = None  # restored from a checkpoint
        self.updates: list[dict] = []
        self.start_step = self.end_step = 0

    def _is_update_step(self, step: int) -> bool:
        if step < self.start_step or step > self.end_step:
            return False
        if self.args.sparsity_method == "rigl" and step == self.end_step:
            return False  # RigL stops rewiring at sparsity_end
        return (step - self.start_step) % self.args.sparsity_every == 0 or step == self.end_step

    def on_init_end(self, args, state, control, model=None, **kwargs):
        # Parametrize now, while the Trainer has not wrapped the model yet: DDP built around plain
        # weights loses track of them once a parametrization is registered (its reduction hangs).
        # All-ones masks change nothing until training begins.
        check_supported(model)
        if getattr(args, "fsdp", None):
            raise ConfigError("sparsity: unstructured masks are not supported with FSDP (sharded weights); use DDP")
        attach_masks(model)

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        check_supported(model)
        if mask_of(decoder_linears(model)[0][1]) is None:
            if args.world_size > 1:
                raise ConfigError(
                    "sparsity: under DDP the sparse-training callback must be given to Trainer(callbacks=...) "
                    "so it can set up its masks before the model is wrapped"
                )
            attach_masks(model)
        self.start_step = step_at(self.args.sparsity_start, state.max_steps) if self.args.sparsity_start > 0 else 0
        self.end_step = step_at(self.args.sparsity_end, state.max_steps)
        restored = state.global_step > 0 and self.load_saved_state(args, state)
        if restored:
            attach_masks(model, self.masks)
        elif state.global_step > 0:
            # A checkpoint without the mask file (resumed from elsewhere): the saved zeros are the mask.
            log.warning("no %s in the checkpoint; masks rebuilt from the zero weights", self.state_file)
            attach_masks(model, {name: linear.weight.detach() != 0 for name, linear in decoder_linears(model)})
        elif self.args.sparsity_method == "rigl":
            generator = torch.Generator().manual_seed(args.seed)
            masks = {
                name: random_mask(linear.weight.shape, self.args.sparsity, generator)
                for name, linear in decoder_linears(model)
            }
            attach_masks(model, masks)
            self.updates.append({"step": 0, "sparsity": self.args.sparsity, "moved": 0})
        for _, linear in decoder_linears(model):
            enforce_mask(linear, optimizer)

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if self.args.sparsity_method == "rigl" and self._is_update_step(state.global_step + 1):
            for _, linear in decoder_linears(model):
                mask_of(linear).capture_dense_grad = True

    def step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        step = state.global_step
        if not self._is_update_step(step):
            return
        if self.args.sparsity_method == "magnitude":
            target = cubic_sparsity(step, self.start_step, self.end_step, self.args.sparsity)
            for _, linear in decoder_linears(model):
                magnitude_update(linear, target, optimizer)
            self.updates.append({"step": step, "sparsity": round(target, 6), "moved": 0})
        else:
            # RigL's cosine decay of the drop fraction, from its full value at step 0 to 0 at sparsity_end
            fraction = self.args.rigl_drop_fraction / 2 * (1 + math.cos(math.pi * step / max(self.end_step, 1)))
            moved = 0
            for _, linear in decoder_linears(model):
                wrapper = mask_of(linear)
                wrapper.capture_dense_grad = False
                if wrapper.dense_grad is not None and _distributed():
                    # each rank saw its own batch: agree on one gradient so every rank grows the same mask
                    torch.distributed.all_reduce(wrapper.dense_grad)
                moved += rigl_update(linear, fraction, optimizer)
            self.updates.append({"step": step, "sparsity": self.args.sparsity, "moved": moved})

    def on_train_end(self, args, state, control, model=None, **kwargs):
        detach_masks(model)  # the final model is plain weights with zeros: standard save_pretrained

    def state_dict(self, model=None) -> dict:
        masks = masks_by_name(model) if model is not None else self.masks
        return {"masks": masks, "updates": self.updates}

    def load_state_dict(self, saved: dict) -> None:
        self.masks = saved["masks"]
        self.updates = list(saved["updates"])

    # -- TensorBoard (pretrain.callbacks.tensorboard_callback): each mask update
    def event_at(self, step: int) -> bool:
        return bool(self.updates) and self.updates[-1]["step"] == step

    def tensorboard_scalars(self, model) -> dict[str, float]:
        update = self.updates[-1] if self.updates else {"sparsity": 0.0, "moved": 0}
        scalars = {"sparsity/decoder_sparsity": sparsity_report(model)["decoder_sparsity"]}
        scalars["sparsity/target"] = update["sparsity"]
        if self.args.sparsity_method == "rigl":
            scalars["sparsity/rigl_moved_weights"] = update["moved"]
        return scalars

    def figures(self, model=None) -> dict:
        out = {"sparsity_method": self.args.sparsity_method, "sparsity_updates": len(self.updates)}
        if model is not None:
            out.update(sparsity_report(model))
        return out


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def build_callbacks(args: SparsityArguments, model) -> list[TrainerCallback]:
    """The callbacks `args` asks for (empty when everything is off), checked against `model` now."""
    callbacks: list[TrainerCallback] = []
    if not (args.structured or args.unstructured):
        return callbacks
    check_supported(model)
    if args.structured:
        # refused before any work under torchrun; on_train_begin checks the Trainer's view again
        _refuse_multiprocess(int(os.environ.get("WORLD_SIZE", "1")), "prune_heads/prune_neurons")
        check_prunable(args, unwrap(model).config)
        callbacks.append(StructuredPruningCallback(args))
    if args.unstructured:
        callbacks.append(SparseTrainingCallback(args))
    callbacks.append(PruningAccountingCallback(measure_throughput=args.measure_throughput))
    return callbacks


def sparsity_figures(callbacks: list[TrainerCallback], model=None) -> dict:
    """All figures of the callbacks build_callbacks made, for the run's journal."""
    figures: dict = {}
    for callback in callbacks:
        if isinstance(callback, SparseTrainingCallback):
            figures.update(callback.figures(model))
        elif hasattr(callback, "figures"):
            figures.update(callback.figures())
    return figures
