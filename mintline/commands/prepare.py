"""`mintline prepare`: raw text -> clean, deduplicated shards -> tokenizer.

    mintline prepare                                    # the built-in corpus (Python's own docs)
    mintline prepare --inputs data/*.jsonl --text_field content --run_dir runs/mine
    mintline prepare --inputs notes/ --min_doc_words 20 --output_format parquet
    mintline prepare --explain stdlib:json/decoder.py   # why was it removed?
    mintline prepare --inputs data/ --executor ray --ray_address auto   # on a Ray cluster, same output

Thresholds start from datatrove's defaults, then the profile (`--profile`, by default
python-docs for the built-in corpus and datatrove for your own inputs), then `--config`,
then flags. Output lands in <run_dir>/prepare/; run.json records it, and a re-run with the
same inputs and config does nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mintline import layout
from mintline.console import CommandResult, format_table
from mintline.journal import Journal, RunArguments, atomic_write_text
from pretrain.corpus.config import PARTS, PrepareConfig, load_profile, resolve_profile
from pretrain.ray_executor import ExecutorArguments

IDENTITY_NAME = ".prepare-inputs.json"


def make_parser(subparsers: argparse._SubParsersAction | None = None):
    dataclass_types = (*PARTS.values(), ExecutorArguments, RunArguments)
    if subparsers is None:
        from mintline.argparsing import MintlineParser

        parser = MintlineParser(dataclass_types, prog="mintline prepare")
    else:
        parser = subparsers.add_parser(
            "prepare", help="clean raw text into shards and train a tokenizer", dataclass_types=dataclass_types
        )
    parser.set_defaults(handler=main)
    _note_profile_values(parser)
    _apply_profile_first(parser)
    return parser


def _note_profile_values(parser) -> None:
    """--help shows the defaults in effect for the command as typed (the python-docs profile
    when no --inputs); say next to each threshold the profile changes what it sets."""
    from pretrain.corpus.config import DATATROVE_DEFAULTS_NOTE

    profile = load_profile("python-docs")
    for action in parser._actions:
        if action.dest in profile and action.help:
            action.help += f" [datatrove: {action.default}; python-docs profile: {profile[action.dest]}]"
    parser.epilog = DATATROVE_DEFAULTS_NOTE


def _apply_profile_first(parser) -> None:
    """Make the chosen profile's values the parser's defaults before it reads --config and flags,
    so the order of precedence is: flags > --config file > profile > datatrove defaults."""
    parse = parser.parse_args_and_config

    def parse_with_profile(args=None):
        argv = list(sys.argv[1:] if args is None else args)
        profile, has_inputs = _peek_profile(argv)
        try:
            name = resolve_profile(profile, ["given"] if has_inputs else [])
        except ValueError as exc:
            parser.error(str(exc))
        parser.apply_config(load_profile(name), source=f"profile {name}")
        return parse(argv)

    parser.parse_args_and_config = parse_with_profile


def _peek_profile(argv: list[str]) -> tuple[str, bool]:
    """The --profile and whether inputs were given, from the flags or else the --config file."""
    profile, has_inputs = None, False
    for index, token in enumerate(argv):
        if token == "--profile" and index + 1 < len(argv):
            profile = argv[index + 1]
        elif token.startswith("--profile="):
            profile = token.split("=", 1)[1]
        elif token == "--inputs" and index + 1 < len(argv) and not argv[index + 1].startswith("--"):
            has_inputs = True
        elif token.startswith("--inputs="):
            has_inputs = True
    config = _peek_config(argv)
    profile = profile or config.get("profile") or "auto"
    return str(profile), has_inputs or bool(config.get("inputs"))


def _peek_config(argv: list[str]) -> dict:
    for index, token in enumerate(argv):
        path = argv[index + 1] if token == "--config" and index + 1 < len(argv) else None
        if token.startswith("--config="):
            path = token.split("=", 1)[1]
        if path:
            import yaml

            try:
                loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                return {}  # the parser reports it properly
            return loaded if isinstance(loaded, dict) else {}
    return {}


def main(*parts_and_options) -> CommandResult:
    *parts, options = parts_and_options
    run: RunArguments = next(p for p in parts if isinstance(p, RunArguments))
    config = PrepareConfig.from_parts(*parts)
    config.corpus.profile = resolve_profile(config.corpus.profile, config.corpus.inputs)
    out_dir = layout.stage_dir(run.run_dir, layout.PREPARE)
    if config.corpus.explain:
        from pretrain.prepare import explain_document

        found = explain_document(out_dir, config.corpus.explain)
        return CommandResult(data=found, text=found["explanation"])
    executor = next((p for p in parts if isinstance(p, ExecutorArguments)), ExecutorArguments())
    return run_prepare(config, run, executor)


def run_prepare(config: PrepareConfig, run: RunArguments, executor: ExecutorArguments | None = None) -> CommandResult:
    """The stage under the run journal: skipped when inputs and config are unchanged."""
    from pretrain.corpus.readers import input_identity, resolve_inputs
    from pretrain.prepare import prepare_corpus

    executor = executor or ExecutorArguments()
    if executor.executor == "ray":
        from pretrain.ray_executor import require_ray

        require_ray()  # before the journal records a start: without Ray nothing runs
    out_dir = layout.stage_dir(run.run_dir, layout.PREPARE)
    identity_file = Path(run.run_dir) / IDENTITY_NAME
    atomic_write_text(identity_file, json.dumps(input_identity(resolve_inputs(config.corpus.inputs)), indent=1) + "\n")
    journal = Journal(run.run_dir)
    with journal.stage(
        "prepare", config=config.identity(), inputs={"corpus": identity_file}, outputs=[out_dir], force=run.force
    ) as stage:
        if stage.skipped:
            data = {**stage.figures, "skipped": True, "output": str(out_dir)}
            text = (
                f"prepare: nothing to do: {out_dir} was made from the same inputs and config "
                f"(see {journal.path}); --force runs it again"
            )
            return CommandResult(data=data, text=text)
        if executor.executor == "ray":
            from pretrain.ray_executor import prepare_corpus_ray

            figures = prepare_corpus_ray(config, out_dir, executor.ray_address, executor.ray_work_dir)
        else:
            figures = prepare_corpus(config, out_dir)
        stage.figures.update(figures)
    return CommandResult(data={**figures, "skipped": False, "output": str(out_dir)}, text=summary(figures, out_dir))


def summary(figures: dict, out_dir: Path) -> str:
    mb = 1e6
    lines = [
        f"prepare: read {figures['docs_read']:,} documents ({figures['bytes_read'] / mb:.2f} MB), profile {figures['profile']}",
        f"  kept {figures['docs_kept']:,} documents ({figures['bytes_kept'] / mb:.2f} MB): "
        f"train {figures['train_docs']:,} in {figures['train_shards']} shard(s), validation {figures['validation_docs']:,}",
    ]
    removed = sorted(figures["removed_by_rule"].items(), key=lambda item: -item[1])
    if removed:
        lines.append(f"  removed {figures['docs_removed']:,} documents:")
        table = format_table([{"rule": rule, "documents": count} for rule, count in removed])
        lines.extend("    " + row for row in table.splitlines())
    if figures["read_warnings"]:
        lines.append(
            "  skipped or repaired while reading: "
            + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in figures["read_warnings"].items())
        )
    lines.append(f"  {figures['seconds']:.1f} s, {figures['docs_per_s']} docs/s -> {out_dir}")
    lines.append(
        f"  per-rule bytes in {out_dir / 'filter_report.json'}; 'mintline prepare --explain ID' says why a document went"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = make_parser()
    *configs, options = parser.parse_args_and_config()
    from mintline.console import configure_output, print_result

    configure_output(options.quiet)
    raise SystemExit(print_result(options.handler(*configs, options), options.json))
