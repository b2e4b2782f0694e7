"""`mintline run`: the whole line in one run directory, resumable, with a report.

    mintline run                                   # the built-in default (about 8 min on 2 free cores)
    mintline run --config run.yaml                 # sections: prepare, pretrain, align, watermark, release
    mintline run --pretrain.max_steps 100 --align.budget 30 --run_dir runs/quick

Kill it at any point and run the same command again: finished stages are skipped (their inputs
and outputs are checked by digest), the interrupted one resumes. With `align.backend:
labelstudio` the run pushes tasks and stops (exit status 3) saying how many labels it waits
for; run it again to pull them and continue. The report is written to RUN_DIR/report/.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mintline.console import CommandResult, format_table, format_value

WAITING_EXIT_CODE = 3


@dataclass
class RunCommandArguments:
    run_dir: str = field(
        default=None, metadata={"help": "run directory (default: the config's run_dir, else runs/default)"}
    )
    report_only: bool = field(default=False, metadata={"help": "only (re)write the report from what run.json holds"})


def make_parser(subparsers: argparse._SubParsersAction | None = None):
    from mintline.argparsing import MintlineParser

    dataclass_types = (RunCommandArguments,)
    description = "Options of a stage are given as --STAGE.OPTION VALUE (e.g. --pretrain.max_steps 100)."
    if subparsers is None:
        parser = MintlineParser(dataclass_types, prog="mintline run", description=description)
    else:
        parser = subparsers.add_parser(
            "run", help="run the whole line end to end", dataclass_types=dataclass_types, description=description
        )
    parser.set_defaults(handler=main)
    for action in parser._actions:
        if action.dest == "config":
            action.help = "YAML run config: a section per stage (prepare, pretrain, align, watermark, release)"
    parse = parser.parse_args_and_config

    def parse_with_stage_options(args=None):
        # `--config` is the whole-run file and `--STAGE.OPTION` belongs to a stage: set both aside
        # from the run command's own options, then validate them in main (before any work).
        from mintline.pipeline.config import is_option

        argv = list(sys.argv[1:] if args is None else args)
        config_path, own, staged = None, [], []
        index = 0
        while index < len(argv):
            token = argv[index]
            name = token[2:].partition("=")[0] if token.startswith("--") else ""
            if name == "config":
                if "=" in token:
                    config_path = token.split("=", 1)[1]
                elif index + 1 < len(argv):
                    config_path, index = argv[index + 1], index + 1
                else:
                    parser.error("--config needs a value")
            elif "." in name:
                staged.append(token)
                while index + 1 < len(argv) and not is_option(argv[index + 1]) and "=" not in token:
                    index += 1
                    staged.append(argv[index])
            else:
                own.append(token)
            index += 1
        *configs, options = parse(own)
        options.run_config, options.stage_options = config_path, staged
        return (*configs, options)

    parser.parse_args_and_config = parse_with_stage_options
    return parser


def main(args: RunCommandArguments, options: argparse.Namespace) -> CommandResult:
    from mintline.pipeline.config import load_run_config
    from mintline.pipeline.report import write_report
    from mintline.pipeline.runner import run_pipeline

    config = load_run_config(options.run_config, args.run_dir, options.stage_options)
    run_dir = Path(config.run_dir)
    if args.report_only:
        paths = write_report(run_dir)
        return CommandResult(data={"report": paths}, text=f"report: {paths['html']}")

    result = run_pipeline(config, quiet=options.quiet)
    paths = write_report(run_dir)
    rows = [summary_row(outcome, result.seconds.get(outcome.name)) for outcome in result.outcomes]
    data = {
        "run_dir": str(run_dir),
        "config": config.source,
        "finished": result.finished,
        "waiting_for_labels": result.waiting_for,
        "stages": {
            o.name: {"skipped": o.skipped, "seconds": result.seconds.get(o.name), **o.figures} for o in result.outcomes
        },
        "report": paths,
    }
    lines = ["", format_table(rows, ["stage", "status", "seconds", "key figures"]), ""]
    if result.waiting_for:
        lines.append(
            f"waiting for {result.waiting_for} labels in Label Studio; run `mintline run` again "
            "when annotators have answered (exit status 3)"
        )
    lines.append(f"report: {paths['html']} (and {Path(paths['markdown']).name})")
    if result.finished:
        from mintline.serve.hint import serve_hint

        data["serve"] = serve_hint(run_dir)
        lines += data["serve"]
    return CommandResult(data=data, text="\n".join(lines), exit_code=WAITING_EXIT_CODE if result.waiting_for else 0)


def summary_row(outcome, seconds) -> dict:
    from mintline.commands.align import dpo_accuracy_text

    figures = outcome.figures
    headline = {
        "prepare": lambda f: (
            f"kept {f.get('docs_kept')}/{f.get('docs_read')} docs, {f.get('bytes_kept', 0) / 1e6:.2f} MB"
        ),
        "pretrain": lambda f: (
            f"{parameters_text(f)}, {f.get('steps')} steps, val loss {format_value(f.get('eval_loss'))} "
            f"(ppl {format_value(f.get('eval_perplexity'))}), {format_value(f.get('tokens_per_second'))} tok/s"
        ),
        "align": lambda f: (
            f"{f.get('labels_received')} labels ({f.get('label_kind', 'simulated')}), {f.get('pseudo_labels', 0)} pseudo, "
            f"{dpo_accuracy_text(f.get('dpo') or {})}"
            if f.get("state", "done") == "done"
            else f"waiting for {f.get('waiting_for')} labels"
        ),
        "watermark": lambda f: (
            f"key {str(f.get('key_id', ''))[:13]}…, detected {f.get('marked', {}).get('flagged')}/{f.get('marked', {}).get('texts')}, "
            f"false positives {f.get('false_positives')}"
        ),
        "release": lambda f: (
            f"signed {str(f.get('fingerprint', ''))[:12]}…, verified {'OK' if f.get('verified') else 'NO'}"
        ),
    }[outcome.name]
    try:
        text = headline(figures)
    except (TypeError, ValueError, KeyError):
        text = ""
    status = "skipped" if outcome.skipped else ("waiting" if outcome.waiting_for else "done")
    return {"stage": outcome.name, "status": status, "seconds": seconds, "key figures": text}


def parameters_text(figures: dict) -> str:
    """The model's size for the summary: before → after when pruning shrank it during the run."""
    before, after = figures.get("parameters", 0), figures.get("parameters_final")
    if after is not None and after != before:
        return f"{before / 1e6:.1f}M → {after / 1e6:.1f}M params"
    return f"{before / 1e6:.1f}M params"


if __name__ == "__main__":
    from mintline.cli import main as cli_main

    raise SystemExit(cli_main(["run", *sys.argv[1:]]))
