"""`mintline pretrain`: prepared shards + tokenizer → a causal LM checkpoint.

mintline pretrain --run_dir runs/demo --model tiny --max_steps 2000
OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 -m mintline pretrain --run_dir runs/demo
mintline pretrain --config pretrain.yaml --learning_rate 1e-3      # YAML + overrides
mintline pretrain --run_dir runs/demo --prune_heads 0.5 --prune_neurons 0.5   # dynamic pruning
mintline pretrain --run_dir runs/demo --recipe frugal      # Muon + WSD (pretrain/recipes.py); dense: as before
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from mintline import layout
from mintline.console import CommandResult, format_key_values
from mintline.journal import Journal, RunArguments
from pretrain.config import PretrainArguments
from pretrain.sparsity.config import SparsityArguments

SUMMARY_KEYS = (
    "model",
    "parameters",
    "steps",
    "tokens_trained",
    "initial_eval_loss",
    "eval_loss",
    "eval_perplexity",
    "tokens_per_second",
    "mfu",
    "recipe",
    "precision",
    "precision_reason",
    "world_size",
    "resumed_from_step",
    "wall_seconds",
    "model_dir",
)
# what pruning / sparse training did, when it was on (the rest is in run.json)
SPARSITY_SUMMARY_KEYS = (
    "parameters_before",
    "parameters_after",
    "train_flops_per_token_before",
    "train_flops_per_token_after",
    "train_flops_saved_fraction",
    "inference_tokens_per_second_before",
    "inference_tokens_per_second_after",
    "heads_per_layer_after",
    "intermediate_size_after",
    "decoder_sparsity",
    "eval_loss_before",
    "eval_loss_after",
    "energy_source",
)


def make_parser(subparsers: argparse._SubParsersAction | None = None):
    dataclass_types = (PretrainArguments, SparsityArguments, RunArguments)
    if subparsers is None:
        from mintline.argparsing import MintlineParser

        parser = MintlineParser(dataclass_types, prog="mintline pretrain")
    else:
        parser = subparsers.add_parser(
            "pretrain", help="pretrain a causal LM on prepared shards", dataclass_types=dataclass_types
        )
    parser.set_defaults(handler=main)
    return parser


def resolve_inputs(args: PretrainArguments, run_dir: Path) -> PretrainArguments:
    """Default data and tokenizer to what `mintline prepare` wrote into the same run directory."""
    from dataclasses import replace

    return replace(
        args,
        data_dir=args.data_dir or str(layout.prepared_data(run_dir)),
        tokenizer=args.tokenizer or str(layout.prepared_tokenizer(run_dir)),
    )


def run_pretrain_stage(
    args: PretrainArguments, run: RunArguments, sparsity: SparsityArguments | None = None, extra_callbacks=None
) -> tuple[dict, bool]:
    """Run (or skip) the pretrain stage under the journal; returns (figures, skipped)."""
    from pretrain.errors import CorpusError

    run_dir = Path(run.run_dir)
    args = resolve_inputs(args, run_dir)
    for label, path in (("data_dir", args.data_dir), ("tokenizer", args.tokenizer)):
        if not Path(path).exists():
            raise CorpusError(f"{label}: no such directory: {path} (run `mintline prepare --run_dir {run_dir}` first)")
    from pretrain.engine import pretrain  # torch and transformers: only once the inputs are known to exist

    output_dir = layout.stage_dir(run_dir, layout.PRETRAIN)
    sparsity = sparsity or SparsityArguments()
    journal = Journal(run_dir)
    with journal.stage(
        "pretrain",
        config=journal_config(args, sparsity),
        inputs={"data": args.data_dir, "tokenizer": args.tokenizer},
        outputs=[output_dir / "model"],
        force=run.force,
    ) as stage:
        if stage.skipped:
            return stage.figures, True
        stage.figures.update(pretrain(args, output_dir, extra_callbacks=extra_callbacks, sparsity=sparsity))
        return stage.figures, False


def journal_config(args: PretrainArguments, sparsity: SparsityArguments) -> dict:
    """The stage's recorded config: a dense run's stays what it was before sparsity and recipes existed
    (so a finished run is still recognised as finished)."""
    config = asdict(args)
    if config["recipe"] == "dense":
        config.pop("recipe")
    for reporting_only in ("target_loss", "compare_to"):  # unset: the config as before they existed
        if config[reporting_only] is None:
            config.pop(reporting_only)
    if sparsity.structured or sparsity.unstructured:
        config["sparsity"] = asdict(sparsity)
    return config


def describe_time_to_target(reached: dict) -> str:
    """One line: when the run reached its target loss, and against the baseline's time if there is one."""
    target = f"validation loss {reached['target_loss']}"
    if not reached["reached"]:
        return f"{target} not reached"
    text = f"{target} after {reached['training_seconds']} s of training (step {reached['step']})"
    if reached.get("time_ratio") is not None:
        text += f", {reached['time_ratio']}x the baseline's {reached['baseline_training_seconds']} s"
    return text


def leave_process_group() -> None:
    """Under torchrun, the end of the script: ranks wait for rank 0 (it saves the model last), then tear
    the process group down, as accelerate's end_training does. A rank that exits with gloo's threads still
    up can abort ("terminate called without an active exception") while the others finish."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main(
    args: PretrainArguments, sparsity: SparsityArguments, run: RunArguments, options: argparse.Namespace
) -> CommandResult:
    figures, skipped = run_pretrain_stage(args, run, sparsity)
    leave_process_group()
    summary = {key: figures.get(key) for key in SUMMARY_KEYS if figures.get(key) is not None}
    summary.update(
        {key: figures["sparsity"][key] for key in SPARSITY_SUMMARY_KEYS if key in figures.get("sparsity", {})}
    )
    if figures.get("time_to_target"):
        summary["time_to_target"] = describe_time_to_target(figures["time_to_target"])
    heading = "pretrain: already finished with these inputs and config (run.json); nothing to do\n" if skipped else ""
    return CommandResult(data={"skipped": skipped, **figures}, text=heading + format_key_values(summary))


if __name__ == "__main__":
    import sys

    from mintline.cli import main as cli_main

    raise SystemExit(cli_main(["pretrain", *sys.argv[1:]]))
