"""The pretraining engine's configuration: one dataclass, every field a `--flag` and a YAML key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pretrain.presets import PRESETS

Precision = Literal["auto", "bf16", "fp16", "fp32"]
RecipeName = Literal["dense", "frugal", "frugal_short"]  # pretrain/recipes.py
Distributed = Literal["ddp", "fsdp"]


@dataclass
class PretrainArguments:
    model: str = field(
        default="nano",
        metadata={"help": f"a preset ({', '.join(PRESETS)}) or a Hugging Face config.json (file or directory)"},
    )
    data_dir: str = field(
        default=None,
        metadata={"help": "prepared shards ({train,validation}-*.jsonl|parquet); default <run_dir>/prepare/data"},
    )
    tokenizer: str = field(default=None, metadata={"help": "tokenizer directory; default <run_dir>/prepare/tokenizer"})
    block_size: int = field(default=128, metadata={"help": "tokens per training sequence (documents are packed)"})
    per_device_batch_size: int = field(default=16, metadata={"help": "sequences per device per micro-batch"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    max_steps: int = field(default=1000, metadata={"help": "optimizer steps to train for"})
    learning_rate: float = field(default=3e-3, metadata={"help": "peak AdamW learning rate"})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "cosine decays to learning_rate × this"})
    warmup_steps: int = field(default=50, metadata={"help": "linear warm-up steps"})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay (not on norms and biases)"})
    adam_beta2: float = field(default=0.95, metadata={"help": "AdamW beta2"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm (0 = off)"})
    precision: Precision = field(
        default="auto",
        metadata={"help": "auto picks bf16 where the hardware runs it fast, else fp16 on GPUs, else fp32"},
    )
    recipe: RecipeName = field(
        default="dense",
        metadata={
            "help": "dense: AdamW + cosine, as before; frugal: Muon for the hidden matrices, warm-up/stable/decay "
            "ending at a third of max_steps, then the floor rate (what benchmarks/frugal.py kept at the pipeline's "
            "budget); frugal_short: Muon, decay at the end, half the batch for twice the steps, for budgets too "
            "short to reach dense's loss by a third (pretrain/recipes.py)"
        },
    )
    compile: bool = field(default=False, metadata={"help": "torch.compile the model (first steps pay 30-60 s)"})
    eval_steps: int = field(default=100, metadata={"help": "evaluate on the validation split every N steps"})
    eval_blocks: int = field(default=256, metadata={"help": "validation sequences per evaluation (0 = all)"})
    save_steps: int = field(default=200, metadata={"help": "checkpoint every N steps (and on SIGINT/SIGTERM)"})
    save_total_limit: int = field(default=2, metadata={"help": "checkpoints kept (older ones are deleted)"})
    logging_steps: int = field(default=10, metadata={"help": "log loss and throughput every N steps"})
    seed: int = field(default=42, metadata={"help": "seed for initialisation and data order"})
    resume: Literal["auto", "always", "never"] = field(
        default="auto",
        metadata={"help": "auto: continue from the last good checkpoint of the same run if any; always: require one"},
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "discard an earlier run's checkpoints in the output directory"}
    )
    distributed: Distributed = field(
        default="ddp",
        metadata={"help": "multi-process strategy under torchrun: ddp, or fsdp for models that do not fit"},
    )
    num_threads: int = field(default=0, metadata={"help": "torch CPU threads per process (0 = cores / processes)"})
    target_loss: float | None = field(
        default=None,
        metadata={"help": "state the training time to this validation loss (time_to_target in the figures)"},
    )
    compare_to: str | None = field(
        default=None,
        metadata={
            "help": "an earlier pretrain output (or run) directory, e.g. a --recipe dense run: its final validation "
            "loss is the target (unless --target_loss) and its own time to it the baseline of time_ratio"
        },
    )

    def __post_init__(self):
        positive = (
            "block_size",
            "per_device_batch_size",
            "gradient_accumulation_steps",
            "max_steps",
            "eval_steps",
            "save_steps",
            "logging_steps",
            "save_total_limit",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate: must be > 0, got {self.learning_rate}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio: must be in [0, 1], got {self.min_lr_ratio}")
        if self.warmup_steps < 0 or self.warmup_steps >= self.max_steps:
            raise ValueError(f"warmup_steps: must be in [0, max_steps), got {self.warmup_steps}")
        if self.eval_blocks < 0 or self.num_threads < 0 or self.max_grad_norm < 0 or self.weight_decay < 0:
            raise ValueError("eval_blocks, num_threads, max_grad_norm, weight_decay: must be >= 0")
        if not 0 < self.adam_beta2 < 1:
            raise ValueError(f"adam_beta2: must be in (0, 1), got {self.adam_beta2}")
        if self.target_loss is not None and not self.target_loss > 0:  # also refuses nan
            raise ValueError(f"target_loss: must be > 0 (a validation loss in nats/token), got {self.target_loss}")
        if self.compare_to is not None and not any(
            (Path(self.compare_to) / sub / "log_history.json").is_file() for sub in (".", "pretrain")
        ):
            raise ValueError(
                f"compare_to: {self.compare_to} holds no log_history.json (a finished `mintline pretrain` output)"
            )
        # here, not when the model is built: a typo fails before torch is imported and data is read
        config_file = Path(self.model) / "config.json" if Path(self.model).is_dir() else Path(self.model)
        if self.model not in PRESETS and not config_file.is_file():
            raise ValueError(
                f"model: {self.model!r} is neither a preset ({', '.join(PRESETS)}) nor a config.json file or directory"
            )

    # Fields that may change between an interrupted run and its resumption without making it a
    # different run (they do not change the trajectory of the weights).
    RESUMABLE_FIELDS = (
        "resume",
        "overwrite_output_dir",
        "eval_steps",
        "eval_blocks",
        "save_steps",
        "save_total_limit",
        "logging_steps",
        "num_threads",
        "compile",
        "target_loss",  # what the run reports, not how it trains
        "compare_to",
    )
