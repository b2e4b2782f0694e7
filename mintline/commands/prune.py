"""`mintline prune`: post-training pruning of a saved model (magnitude or Wanda), measured.

    mintline prune --model runs/default/pretrain/model --method wanda --sparsity 0.5
    mintline prune --model DIR --method magnitude --sparsity 0.5 --structured --out DIR --json

Calibration text defaults to the run's `prepare/data/validation-*.jsonl`; the loss before and
after is measured on other blocks of the same split. The output is a save_pretrained
directory (safetensors + tokenizer) that plain transformers loads.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from mintline import layout
from mintline.console import CommandResult, format_table
from mintline.journal import Journal, RunArguments
from pretrain.sparsity.config import PostTrainingArguments


@dataclass
class PruneArguments:
    model: str = field(default=None, metadata={"help": "model directory to prune (default: <run_dir>/pretrain/model)"})
    out: str = field(
        default=None, metadata={"help": "where the pruned model is saved (default: <run_dir>/prune/model)"}
    )
    calibration_data: str = field(
        default=None,
        metadata={
            "help": "a .jsonl/.parquet file or a directory of validation-* shards (default: <run_dir>/prepare/data)"
        },
    )
    num_threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = torch's default)"})

    def __post_init__(self):
        if self.num_threads < 0:
            raise ValueError(f"num_threads: must be >= 0, got {self.num_threads}")


def make_parser(subparsers: argparse._SubParsersAction | None = None):
    dataclass_types = (PruneArguments, PostTrainingArguments, RunArguments)
    if subparsers is None:
        from mintline.argparsing import MintlineParser

        parser = MintlineParser(dataclass_types, prog="mintline prune")
    else:
        parser = subparsers.add_parser(
            "prune", help="post-training pruning (magnitude, Wanda)", dataclass_types=dataclass_types
        )
    parser.set_defaults(handler=main)
    return parser


def resolve_paths(args: PruneArguments, run: RunArguments) -> tuple[Path, Path, Path]:
    run_dir = Path(run.run_dir)
    model = Path(args.model) if args.model else layout.pretrained_model(run_dir)
    out = Path(args.out) if args.out else layout.pruned_model(run_dir)
    data = Path(args.calibration_data) if args.calibration_data else layout.prepared_data(run_dir)
    return model, out, data


def check_model_dir(model_dir: Path) -> None:
    """Refuse a missing or unknown-architecture model before loading any weights."""
    from pretrain.errors import ConfigError
    from pretrain.sparsity.architectures import SUPPORTED_MODEL_TYPES, UnsupportedArchitectureError

    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise ConfigError(f"model: {model_dir} is not a model directory (no config.json)")
    try:
        model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise ConfigError(f"model: cannot read {config_file} ({exc})") from exc
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedArchitectureError(
            f"model: architecture {model_type!r} in {config_file} is not supported for pruning; "
            f"known: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )


def prune(args: PruneArguments, post: PostTrainingArguments, run: RunArguments) -> dict:
    """The stage as a library call (the pipeline uses this); returns the figures."""
    import torch

    from mintline.model_files import check_weight_files
    from pretrain.generation import load_model_and_tokenizer
    from pretrain.sparsity.evaluation import calibration_and_evaluation_blocks, find_text_files
    from pretrain.sparsity.posttrain import prune_saved_model, save_pruned

    model_dir, out_dir, data_path = resolve_paths(args, run)
    check_model_dir(model_dir)
    check_weight_files(model_dir)  # a corrupt file fails naming itself, not deep inside transformers
    files = find_text_files(data_path)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    journal = Journal(run.run_dir)
    inputs = {"model": model_dir, **{f"calibration:{f.name}": f for f in files}}
    with journal.stage(
        "prune", config={"prune": args, "post_training": post}, inputs=inputs, outputs=[out_dir], force=run.force
    ) as stage:
        if stage.skipped:
            return {**stage.figures, "skipped": True}
        model, tokenizer = load_model_and_tokenizer(model_dir, dtype=torch.float32)
        calibration, evaluation = calibration_and_evaluation_blocks(
            tokenizer, files, post.block_size, post.calibration_samples, post.evaluation_samples, post.seed
        )
        figures = prune_saved_model(model, calibration, evaluation, post)
        save_pruned(model, tokenizer, out_dir)
        figures.update({"model": str(model_dir), "out": str(out_dir), "calibration_files": [str(f) for f in files]})
        stage.figures.update(figures)
    return figures


def render(figures: dict) -> str:
    rows = [
        {
            "": "nonzero parameters",
            "before": figures["nonzero_parameters_before"],
            "after": figures["nonzero_parameters_after"],
        },
        {"": "validation loss", "before": figures["eval_loss_before"], "after": figures["eval_loss_after"]},
        {"": "perplexity", "before": figures["perplexity_before"], "after": figures["perplexity_after"]},
        {
            "": "inference tokens/s",
            "before": figures["inference_tokens_per_second_before"],
            "after": figures["inference_tokens_per_second_after"],
        },
    ]
    lines = [
        f"{figures['method']} pruning, {figures['pattern']}, decoder sparsity {figures['decoder_sparsity']:.1%} "
        f"(perplexity {figures['perplexity_increase']:+.1%})",
        format_table(rows, ["", "before", "after"]),
    ]
    if "semi_structured_kernels" in figures:
        lines.append(f"note: {figures['semi_structured_kernels']}")
    lines.append(f"saved: {figures['out']}")
    return "\n".join(lines)


def main(
    args: PruneArguments, post: PostTrainingArguments, run: RunArguments, options: argparse.Namespace
) -> CommandResult:
    figures = prune(args, post, run)
    if figures.get("skipped"):
        return CommandResult(data=figures, text=f"prune: finished earlier with the same inputs; {figures.get('out')}")
    return CommandResult(data=figures, text=render(figures))


if __name__ == "__main__":
    parser = make_parser()
    *configs, options = parser.parse_args_and_config()
    from mintline.console import print_result

    raise SystemExit(print_result(options.handler(*configs, options), options.json))
