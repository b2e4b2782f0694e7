"""`mintline pretrain`: prepared shards + tokenizer → a causal LM checkpoint.

    mintline pretrain --run_dir runs/demo --model tiny --max_steps 2000
    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 -m mintline pretrain --run_dir runs/demo
    mintline pretrain --config pretrain.yaml --learning_rate 1e-3      # YAML + overrides
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mintline.console import CommandResult, format_key_values
from mintline.journal import Journal, RunArguments
from pretrain.config import PretrainArguments

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
    "precision",
    "precision_reason",
    "world_size",
    "resumed_from_step",
    "wall_seconds",
    "model_dir",
)


def make_parser(subparsers: argparse._SubParsersAction | None = None):
    dataclass_types = (PretrainArguments, RunArguments)
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
        data_dir=args.data_dir or str(run_dir / "prepare" / "data"),
        tokenizer=args.tokenizer or str(run_dir / "prepare" / "tokenizer"),
    )


def run_pretrain_stage(args: PretrainArguments, run: RunArguments, extra_callbacks=None) -> tuple[dict, bool]:
    """Run (or skip) the pretrain stage under the journal; returns (figures, skipped)."""
    from pretrain.engine import pretrain
    from pretrain.errors import CorpusError

    run_dir = Path(run.run_dir)
    args = resolve_inputs(args, run_dir)
    for label, path in (("data_dir", args.data_dir), ("tokenizer", args.tokenizer)):
        if not Path(path).exists():
            raise CorpusError(f"{label}: no such directory: {path} (run `mintline prepare --run_dir {run_dir}` first)")
    output_dir = run_dir / "pretrain"
    journal = Journal(run_dir)
    with journal.stage(
        "pretrain",
        config=args,
        inputs={"data": args.data_dir, "tokenizer": args.tokenizer},
        outputs=[output_dir / "model"],
        force=run.force,
    ) as stage:
        if stage.skipped:
            return stage.figures, True
        stage.figures.update(pretrain(args, output_dir, extra_callbacks=extra_callbacks))
        return stage.figures, False


def main(args: PretrainArguments, run: RunArguments, options: argparse.Namespace) -> CommandResult:
    figures, skipped = run_pretrain_stage(args, run)
    summary = {key: figures.get(key) for key in SUMMARY_KEYS if figures.get(key) is not None}
    heading = "pretrain: already finished with these inputs and config (run.json); nothing to do\n" if skipped else ""
    return CommandResult(data={"skipped": skipped, **figures}, text=heading + format_key_values(summary))


if __name__ == "__main__":
    import sys

    from mintline.cli import main as cli_main

    raise SystemExit(cli_main(["pretrain", *sys.argv[1:]]))
