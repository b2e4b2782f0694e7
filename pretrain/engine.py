"""The pretraining engine: transformers' Trainer over packed blocks, with exact resume.

`pretrain(args, output_dir)` builds a Llama-style model from a preset (or any HF causal-LM
config), trains it with the full `Trainer` (AdamW, warm-up + cosine, accumulation, clipping,
evaluation with perplexity, TensorBoard, checkpoints), and saves `output_dir/model` with
`save_pretrained` + the tokenizer. Runs the same under `torchrun` (DDP; gloo on CPU, NCCL on
GPU; FSDP on request).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, set_seed
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from pretrain import checkpoints
from pretrain.callbacks import InterruptCallback, ReadableProgressCallback, ThroughputCallback, tensorboard_callback
from pretrain.config import PretrainArguments
from pretrain.data import PackedBlocks, find_shards, shards_digest, tokenize_split, tokenizer_digest
from pretrain.errors import CheckpointError, ConfigError, CorpusError, PretrainError
from pretrain.figures import count_parameters, flops_per_token, perplexity
from pretrain.precision import PrecisionChoice, choose_precision
from pretrain.presets import build_config
from pretrain.recipes import Recipe, apply_recipe, build_scheduler, get_recipe
from pretrain.sparsity.callbacks import build_callbacks as build_sparsity_callbacks
from pretrain.sparsity.callbacks import sparsity_figures
from pretrain.sparsity.config import SparsityArguments
from pretrain.sparsity.structured import restore_pruned_shapes
from pretrain.throughput import ThroughputMeter, device_peak_flops
from pretrain.time_to_target import TRAINING_SECONDS, TrainingClock, load_baseline, loss_curve, time_to_target

log = logging.getLogger("pretrain")

IDENTITY_NAME = "mintline-run.json"


class TrainingInterrupted(PretrainError):
    """SIGINT/SIGTERM stopped training after a checkpoint; running again resumes."""

    exit_code = 130


class PretrainTrainer(Trainer):
    """The stock Trainer with four changes.

    * Mixed precision on CPU is plain `torch.autocast` around forward + loss, as a hand-written
      loop does it. Accelerate's own CPU autocast also converts every model output (the full
      logits tensor) back to fp32, a copy the loss does not need; that copy is where the
      Trainer lost most of its bf16 speed-up here (see benchmarks/pretrain.py).
    * Every checkpoint is sealed once complete (pretrain/checkpoints.py), so a partial one is
      never resumed from.
    * Evaluation logs perplexity next to the loss.
    * Resuming a model with tied embeddings says nothing about the tied copy the checkpoint
      does not store (`lm_head.weight`); any other missing key is still warned about.
    """

    def __init__(
        self,
        *args,
        precision: PrecisionChoice,
        own_autocast: bool,
        recipe: Recipe | None = None,
        clock: TrainingClock | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.precision = precision
        self.own_autocast = own_autocast
        self.recipe = recipe or get_recipe("dense")
        self.clock = clock
        if clock is not None:
            self.add_callback(clock)

    def create_optimizer(self, model=None):
        # the frugal recipe's Muon + AdamW (pretrain/optimizers.py); dense keeps the Trainer's own AdamW
        if self.optimizer is None and self.recipe.optimizer != "adamw":
            from pretrain.optimizers import build_optimizer

            betas = (self.args.adam_beta1, self.args.adam_beta2)
            model = self.model if model is None else model
            self.optimizer = build_optimizer(
                self.recipe.optimizer, model, self.args.learning_rate, self.args.weight_decay, betas
            )
        return super().create_optimizer(model)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None and (self.recipe.schedule != "cosine" or self.recipe.horizon != 1.0):
            self.lr_scheduler = build_scheduler(
                self.recipe,
                optimizer or self.optimizer,
                self.args.get_warmup_steps(num_training_steps),
                num_training_steps,
                self.args.lr_scheduler_kwargs["min_lr_rate"],
            )
        return super().create_scheduler(num_training_steps, optimizer)

    def autocast_smart_context_manager(self, cache_enabled: bool | None = True):
        if self.own_autocast and self.precision.autocast_dtype is not None:
            return torch.autocast(self.precision.device_type, dtype=self.precision.autocast_dtype)
        return contextlib.nullcontext()

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            checkpoints.seal(Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}")

    def _issue_warnings_after_load(self, load_result) -> None:
        tied = tied_copies(self.model, load_result.missing_keys)
        if tied:
            # safetensors stores a tied tensor once; loading its other name filled this one
            log.debug("checkpoint loaded; tied weights restored through their source: %s", tied)
            load_result.missing_keys[:] = [key for key in load_result.missing_keys if key not in tied]
        super()._issue_warnings_after_load(load_result)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "eval_loss" in logs:
            logs["eval_perplexity"] = round(perplexity(logs["eval_loss"]), 4)
            if self.clock is not None:  # the time axis of time-to-target (pretrain/time_to_target.py)
                logs[TRAINING_SECONDS] = round(self.clock.seconds, 3)
        super().log(logs, start_time)


def resolve_threads(args: PretrainArguments) -> int:
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    threads = args.num_threads or max(1, (os.cpu_count() or 1) // local_world)
    torch.set_num_threads(threads)
    return threads


def run_identity(
    args: PretrainArguments,
    tokenizer_key: str,
    data_key: str,
    world_size: int,
    sparsity: SparsityArguments | None = None,
) -> dict[str, Any]:
    """What makes two runs the same run (and a checkpoint of one resumable by the other)."""
    fields = {k: v for k, v in asdict(args).items() if k not in PretrainArguments.RESUMABLE_FIELDS}
    fields.pop("data_dir"), fields.pop("tokenizer")  # paths may move; their contents are below
    if fields.get("recipe") == "dense":
        fields.pop("recipe")  # a dense run's identity stays what it was before recipes existed
    else:  # a recipe's checkpoints resume only the same recipe: its levers, not just its name, can change
        fields["recipe"] = asdict(get_recipe(fields["recipe"]))
    if sparsity is not None and (sparsity.structured or sparsity.unstructured):
        # a dense run's identity stays as it was; a sparse run's checkpoints only resume the same schedule
        fields.update({f"sparsity.{k}": v for k, v in asdict(sparsity).items() if k != "measure_throughput"})
    return {
        "config": fields,
        "tokenizer_sha256": tokenizer_key,
        "train_data_sha256": data_key,
        "world_size": world_size,
    }


def check_output_dir(output_dir: Path, identity: dict[str, Any], overwrite: bool) -> None:
    marker = output_dir / IDENTITY_NAME
    if overwrite and output_dir.exists():
        log.warning("overwrite_output_dir: removing the earlier run in %s", output_dir)
        shutil.rmtree(output_dir)
    if marker.is_file():
        earlier = json.loads(marker.read_text())
        if earlier != identity:
            changed = sorted(
                k
                for k in set(earlier.get("config", {})) | set(identity["config"])
                if earlier.get("config", {}).get(k) != identity["config"].get(k)
            )
            changed += [
                k for k in ("tokenizer_sha256", "train_data_sha256", "world_size") if earlier.get(k) != identity[k]
            ]
            raise CheckpointError(
                f"{output_dir} holds a different run (differs in: {', '.join(changed)}); "
                "pass --overwrite_output_dir to discard it, or use another run directory"
            )
    elif any(output_dir.glob("checkpoint-*")):
        raise CheckpointError(
            f"{output_dir} holds checkpoints of an unknown run; pass --overwrite_output_dir to discard them"
        )


def build_training_arguments(args: PretrainArguments, output_dir: Path, precision: PrecisionChoice, on_cpu: bool):
    recipe = get_recipe(args.recipe)
    # On GPUs the Trainer's own mixed precision (accelerate) is used, fp16 with its loss scaler;
    # on CPUs we autocast ourselves (see PretrainTrainer).
    trainer_amp = not on_cpu
    return TrainingArguments(
        output_dir=str(output_dir),
        max_steps=args.max_steps,
        per_device_train_batch_size=args.per_device_batch_size,
        per_device_eval_batch_size=args.per_device_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate * recipe.lr_multiplier,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": args.min_lr_ratio},
        warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay,
        adam_beta1=0.9,
        adam_beta2=args.adam_beta2,
        max_grad_norm=args.max_grad_norm,
        optim="adamw_torch_fused" if on_cpu or torch.cuda.is_available() else "adamw_torch",
        bf16=trainer_amp and precision.dtype_name == "bf16",
        fp16=trainer_amp and precision.dtype_name == "fp16",
        torch_compile=args.compile,
        eval_strategy="steps",
        eval_steps=args.eval_steps,
        prediction_loss_only=True,
        save_strategy="steps",
        save_steps=args.save_steps,
        save_total_limit=args.save_total_limit,
        logging_strategy="steps",
        logging_steps=args.logging_steps,
        logging_first_step=True,
        report_to="none",  # the TensorBoard callback is added with our own log directory
        seed=args.seed,
        data_seed=args.seed,
        use_cpu=on_cpu,
        ddp_backend=("gloo" if on_cpu else "nccl") if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        ddp_find_unused_parameters=False,
        fsdp="full_shard auto_wrap" if args.distributed == "fsdp" else None,
        dataloader_num_workers=0,
        dataloader_pin_memory=not on_cpu,
        disable_tqdm=os.environ.get("TQDM_DISABLE") == "1",
        remove_unused_columns=False,
        include_num_input_tokens_seen="no",
    )


def load_tokenizer(path: str | Path):
    path = Path(path)
    if not (path / "tokenizer.json").is_file() and not (path / "tokenizer_config.json").is_file():
        raise ConfigError(f"tokenizer: {path} is not a tokenizer directory (run `mintline prepare` first)")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
        raise ConfigError(f"tokenizer: {path} has no eos/pad token")
    return tokenizer


def build_model_config(args: PretrainArguments, tokenizer):
    config = build_config(
        args.model, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    )
    if config.vocab_size != len(tokenizer):
        raise ConfigError(
            f"tokenizer: {len(tokenizer)} tokens but the model config has vocab_size {config.vocab_size}; they must match"
        )
    context = getattr(config, "max_position_embeddings", None)
    if context is not None and args.block_size > context:
        raise ConfigError(f"block_size: {args.block_size} is larger than the model's context ({context} positions)")
    return config


def pretrain(
    args: PretrainArguments,
    output_dir: str | Path,
    extra_callbacks: list | None = None,
    sparsity: SparsityArguments | None = None,
) -> dict[str, Any]:
    """Train (or resume) and save `output_dir/model`; returns the run's figures.

    `sparsity` switches on dynamic structured pruning and/or sparse training
    (pretrain/sparsity); its figures land under "sparsity".
    """
    started = time.time()
    args = apply_recipe(args)  # frugal_short re-sizes the batch (same tokens); dense, frugal: unchanged
    sparsity = sparsity or SparsityArguments()
    output_dir = Path(output_dir)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-file "Writing model shards" bars; the training bar stays
    if not args.data_dir or not args.tokenizer:
        raise ConfigError("data_dir and tokenizer: both are required")
    baseline = load_baseline(args.compare_to) if args.compare_to else None  # a typo fails before training
    threads = resolve_threads(args)
    tokenizer = load_tokenizer(args.tokenizer)
    model_config = build_model_config(args, tokenizer)
    train_shards = find_shards(args.data_dir, "train")
    validation_shards = find_shards(args.data_dir, "validation")

    on_cpu = not torch.cuda.is_available()
    precision = choose_precision(args.precision)
    training_args = build_training_arguments(args, output_dir, precision, on_cpu)
    world_size = training_args.world_size
    log.info("precision: %s (%s)", precision.dtype_name, precision.reason)

    identity = run_identity(args, tokenizer_digest(args.tokenizer), shards_digest(train_shards), world_size, sparsity)
    if training_args.process_index == 0:
        check_output_dir(output_dir, identity, args.overwrite_output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / IDENTITY_NAME).write_text(json.dumps(identity, indent=1))

    cache_dir = output_dir / "cache"
    with training_args.main_process_first(local=True, desc="tokenize"):
        train_tokens = tokenize_split(train_shards, tokenizer, args.tokenizer, cache_dir, "train")
        validation_tokens = tokenize_split(validation_shards, tokenizer, args.tokenizer, cache_dir, "validation")
    train_data = PackedBlocks(train_tokens, args.block_size, len(tokenizer))
    eval_data = PackedBlocks(validation_tokens, args.block_size, len(tokenizer), limit=args.eval_blocks)
    needed = args.per_device_batch_size * world_size * args.gradient_accumulation_steps
    if len(train_data) < needed:
        raise CorpusError(
            f"too little data: {len(train_data)} blocks of {args.block_size} tokens in the train split, "
            f"one optimizer step needs {needed}; add text or lower block_size / per_device_batch_size"
        )
    if len(eval_data) == 0:
        raise CorpusError(f"too little data: the validation split holds fewer than {args.block_size} tokens")

    resume_from = None
    if args.resume != "never":
        resume_from = checkpoints.latest_good_checkpoint(output_dir) if training_args.process_index == 0 else None
        resume_from = _broadcast_path(resume_from, training_args)
        if resume_from is None and args.resume == "always":
            raise CheckpointError(f"resume: no usable checkpoint in {output_dir}")
        if resume_from is not None:
            log.info("resuming from %s", resume_from)

    set_seed(args.seed)
    model = AutoModelForCausalLM.from_config(model_config)
    num_parameters = count_parameters(model)
    sparsity_callbacks = build_sparsity_callbacks(sparsity, model)  # checks the settings against the model first
    if resume_from is not None and sparsity.structured:
        # a checkpoint taken after a pruning event holds smaller matrices than the preset builds
        restore_pruned_shapes(model, resume_from)
    # every parameter counts as a matmul weight here, and attention is as wide as the hidden size
    training_flops = flops_per_token(
        num_parameters, model_config.num_hidden_layers, model_config.hidden_size, args.block_size
    )
    peak_flops, device_name = device_peak_flops()
    tokens_per_step = needed * args.block_size
    meter = ThroughputMeter(tokens_per_step, warmup_steps=5 if args.compile else 2)
    interrupt = InterruptCallback()

    if training_args.fsdp:
        # wrap each decoder layer as one FSDP unit (the accelerate plugin reads this at Trainer init)
        training_args.fsdp_config = dict(training_args.fsdp_config or {})
        training_args.fsdp_config["transformer_layer_cls_to_wrap"] = list(
            getattr(model, "_no_split_modules", None) or []
        )
    trainer = PretrainTrainer(
        model=model,
        args=training_args,
        train_dataset=train_data,
        eval_dataset=eval_data,
        processing_class=tokenizer,
        precision=precision,
        own_autocast=on_cpu,
        recipe=get_recipe(args.recipe),
        clock=TrainingClock(),
        callbacks=[
            ThroughputCallback(meter, training_flops, peak_flops, world_size, cpu_threads=threads if on_cpu else None),
            interrupt,
            *sparsity_callbacks,
            *(extra_callbacks or []),
        ],
    )
    # The Trainer prints raw log dicts (PrinterCallback) when tqdm is off; we print short lines or nothing.
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    if not training_args.disable_tqdm:
        trainer.add_callback(ReadableProgressCallback())
    tensorboard = None
    if training_args.process_index == 0:
        # the one log directory of the run (report_to="none" keeps the Trainer from adding its own)
        tensorboard = tensorboard_callback(
            output_dir / "tensorboard", [c for c in sparsity_callbacks if hasattr(c, "tensorboard_scalars")]
        )
        trainer.add_callback(tensorboard)

    # The first evaluation runs inside train() (eval_on_start): evaluating before train() would
    # register the bare model with accelerate and leave it unwrapped by DDP under torchrun.
    trainer.args.eval_on_start = resume_from is None
    interrupt.install()
    try:
        train_output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    finally:
        interrupt.uninstall()
    if interrupt.interrupted_at is not None and trainer.state.global_step < args.max_steps:
        raise TrainingInterrupted(
            f"interrupted at step {interrupt.interrupted_at}/{args.max_steps}; checkpoint saved in {output_dir}; "
            "run the same command again to resume"
        )

    final_eval = _evaluation_at(trainer.state.log_history, trainer.state.global_step) or trainer.evaluate()
    if tensorboard is not None:
        tensorboard.close()
    model_dir = output_dir / "model"
    if trainer.args.should_save:
        _save_final_model(trainer, tokenizer, model_dir)
        (output_dir / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    figures = {
        "model": args.model,
        "parameters": num_parameters,
        "layers": model_config.num_hidden_layers,
        "hidden_size": model_config.hidden_size,
        "steps": trainer.state.global_step,
        "tokens_trained": trainer.state.global_step * tokens_per_step,
        "train_tokens_available": train_data.num_tokens,
        "epochs": round(trainer.state.global_step * tokens_per_step / max(train_data.num_tokens, 1), 3),
        "train_loss": _last_logged(trainer.state.log_history, "loss"),
        "initial_eval_loss": _first_logged(trainer.state.log_history, "eval_loss") if resume_from is None else None,
        "eval_loss": final_eval["eval_loss"],
        "eval_perplexity": perplexity(final_eval["eval_loss"]),
        "tokens_per_second": meter.tokens_per_second,
        "tokens_per_cpu_second": meter.tokens_per_cpu_second,
        "flops_per_token": training_flops,
        "mfu": (meter.tokens_per_second * training_flops / (peak_flops * world_size))
        if peak_flops and meter.tokens_per_second
        else None,
        "device": device_name,
        "precision": precision.dtype_name,
        "precision_reason": precision.reason,
        "compile": args.compile,
        "recipe": args.recipe,
        "world_size": world_size,
        "threads_per_process": threads,
        "resumed_from_step": _step_of(resume_from),
        "train_runtime_seconds": round(train_output.metrics.get("train_runtime", 0.0), 2),
        "wall_seconds": round(time.time() - started, 2),
        "model_dir": str(model_dir),
        "loss_curve": loss_curve(trainer.state.log_history, tokens_per_step),
    }
    reached = time_to_target(figures["loss_curve"], args.target_loss, baseline)
    if reached is not None:
        figures["time_to_target"] = reached
    if sparsity_callbacks:
        figures["sparsity"] = sparsity_figures(sparsity_callbacks, trainer.model)
        figures["parameters_final"] = count_parameters(trainer.model)
        done = figures["sparsity"]
        if figures["mfu"] and done.get("tokens_trained"):
            # pruning shrank the model mid-run: utilisation counts the FLOPs actually done, not the dense ones
            figures["flops_per_token"] = done["train_flops"] / done["tokens_trained"]
            figures["mfu"] = meter.tokens_per_second * figures["flops_per_token"] / (peak_flops * world_size)
    return figures


def tied_copies(model, missing_keys: list[str]) -> list[str]:
    """The missing keys that name a parameter shared with a key that was loaded (tied embeddings)."""
    names_by_tensor: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        names_by_tensor.setdefault(id(parameter), []).append(name)
    missing = set(missing_keys)
    tied = []
    for names in names_by_tensor.values():
        if len(names) > 1 and any(name not in missing for name in names):
            tied += [name for name in names if name in missing]
    return tied


def _save_final_model(trainer: Trainer, tokenizer, model_dir: Path) -> None:
    """Save weights (safetensors), config, generation config and tokenizer; atomic via rename."""
    tmp = model_dir.with_name(model_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    trainer.save_model(str(tmp))
    tokenizer.save_pretrained(tmp)
    for leftover in ("training_args.bin",):  # a pickle; the release refuses pickles in a bundle
        (tmp / leftover).unlink(missing_ok=True)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    os.replace(tmp, model_dir)


def _broadcast_path(path: Path | None, training_args: TrainingArguments) -> Path | None:
    if training_args.world_size <= 1:
        return path
    import torch.distributed as dist

    holder = [str(path) if path else None]
    dist.broadcast_object_list(holder, src=0)
    return Path(holder[0]) if holder[0] else None


def _evaluation_at(history: list[dict], step: int) -> dict | None:
    """The evaluation logged at `step` (eval_steps divides max_steps): the final one, not run twice."""
    return next((entry for entry in reversed(history) if "eval_loss" in entry and entry.get("step") == step), None)


def _first_logged(history: list[dict], key: str) -> float | None:
    return next((entry[key] for entry in history if key in entry), None)


def _last_logged(history: list[dict], key: str) -> float | None:
    for entry in reversed(history):
        if key in entry:
            return entry[key]
    return None


def _step_of(checkpoint: Path | None) -> int | None:
    return int(checkpoint.name.split("-")[-1]) if checkpoint else None
