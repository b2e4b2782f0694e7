"""`mintline annotate`: preference labelling with a real Label Studio server and the label ledger.

    mintline annotate init                        # create (or find by title) the project
    mintline annotate push pairs.jsonl --round 0  # tasks + predictions; same pair twice = one task
    mintline annotate pull                        # new and edited annotations into the ledger
    mintline annotate export --format trl         # <run_dir>/annotate/preferences.jsonl
    mintline annotate status                      # tasks, labels, pending, skips, agreement, budget

export and status read the run's ledger: <run_dir>/annotate/ledger.sqlite (Label Studio), else
<run_dir>/align/ledger.sqlite (the align stage's), or the file given with --ledger PATH.

The server comes from --url or $LABEL_STUDIO_URL, the key from --api_key_file or
$LABEL_STUDIO_API_KEY; the key is never printed, logged, or written to run.json or the ledger.
State lives in <run_dir>/annotate/ (ledger.sqlite, preferences.jsonl).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from pathlib import Path

from annotation.config import LabelStudioSettings
from annotation.stage import AnnotationConfig, AnnotationOptions
from mintline import layout
from mintline.console import CommandResult, format_key_values
from mintline.journal import Journal, RunArguments, now_iso, to_jsonable

STAGE = layout.ANNOTATE


@dataclass
class PushArguments:
    round: int | None = field(default=None, metadata={"help": "active-learning round the pairs belong to"})


@dataclass
class LedgerArguments:
    ledger: str | None = field(
        default=None,
        metadata={
            "help": "ledger file to read (default: <run_dir>/annotate/ledger.sqlite, else <run_dir>/align/ledger.sqlite)"
        },
    )


@dataclass
class ExportArguments:
    format: str = field(default="trl", metadata={"help": "export format", "choices": ["trl"]})
    output: str | None = field(
        default=None, metadata={"help": "output file (default: <run_dir>/annotate/preferences.jsonl)"}
    )
    include_ties: bool = field(
        default=False, metadata={"help": "also write tied pairs (marked label=tie in provenance)"}
    )
    include_pseudo: bool = field(default=False, metadata={"help": "also write model-made pseudo labels (kind=pseudo)"})


def make_parser(subparsers: argparse._SubParsersAction | None = None):
    from mintline.argparsing import MintlineParser

    if subparsers is None:
        parser = MintlineParser(None, prog="mintline annotate")
    else:
        parser = subparsers.add_parser(STAGE, help="preference labelling with Label Studio and the label ledger")
    group = parser.add_subparsers(parser_class=MintlineParser, dest="verb")
    server = (AnnotationOptions, LabelStudioSettings, RunArguments)
    verbs = {
        "init": ("create or find the Label Studio project", server, init_main),
        "push": ("push preference pairs as tasks with predictions", (PushArguments, *server), push_main),
        "pull": ("pull new and edited annotations into the ledger", server, pull_main),
        "export": (
            "export labels as TRL preference JSONL",
            (ExportArguments, LedgerArguments, RunArguments),
            export_main,
        ),
        "status": (
            "tasks, labels, pending, skips, agreement, budget used",
            (AnnotationOptions, LedgerArguments, RunArguments),
            status_main,
        ),
    }
    for verb, (summary, types, handler) in verbs.items():
        child = group.add_parser(verb, help=summary, dataclass_types=types)
        if verb == "push":
            child.add_argument("pairs", help="JSONL of pairs (prompt, response_a, response_b, ...) or TRL rows")
        child.set_defaults(handler=handler)
    return parser


def _config(options: AnnotationOptions, settings: LabelStudioSettings | None, run: RunArguments) -> AnnotationConfig:
    return AnnotationConfig(
        **asdict(options),
        workdir=str(layout.stage_dir(run.run_dir, STAGE)),
        labelstudio=settings or LabelStudioSettings(),
    )


def _run_ledger(run: RunArguments, given: str | None) -> str:
    """The ledger export and status read: --ledger, else the run's annotate ledger, else the align stage's."""
    from annotation.errors import LedgerError

    if given:
        if not Path(given).is_file():
            raise LedgerError(f"ledger: no such file: {given}")
        return given
    run_dir = Path(run.run_dir)
    candidates = layout.ledgers(run_dir)
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    raise LedgerError(
        f"no ledger at {candidates[0]} or {candidates[1]}: run `mintline annotate init` (or push) "
        "or the align stage first, or pass --ledger PATH"
    )


def _journal(run: RunArguments, verb: str, config: AnnotationConfig, figures: dict) -> None:
    """Record the command in run.json (config and figures hold URLs and counts, never the key)."""
    journal = Journal(run.run_dir)
    commands = dict((journal.stage_record(STAGE) or {}).get("commands") or {})
    commands[verb] = {"at": now_iso(), "figures": to_jsonable(figures)}
    journal.update_stage(STAGE, config=to_jsonable(config), commands=commands)


def init_main(options, settings, run, cli) -> CommandResult:
    from annotation.stage import init_project

    config = _config(options, settings, run)
    figures = init_project(config)
    _journal(run, "init", config, figures)
    verb = "created" if figures["created"] else "using"
    return CommandResult(
        figures,
        f"{verb} project {figures['project_id']} ({figures['project_title']!r}) at {figures['url']}\n"
        f"ledger: {figures['ledger']}",
    )


def push_main(push_args, options, settings, run, cli) -> CommandResult:
    from annotation.pairs import read_pairs_jsonl
    from annotation.stage import push

    config = _config(options, settings, run)
    pairs = read_pairs_jsonl(cli.pairs)
    figures = push(config, pairs, round=push_args.round)
    _journal(run, "push", config, {**figures, "pairs_file": cli.pairs})
    text = (
        f"pushed {figures['pushed']} tasks to project {figures['project_id']} at {figures['url']} "
        f"({figures['already_there']} of {figures['pairs']} pairs were already there; "
        f"{figures['predictions']} with predictions, model_version {figures['model_version']})"
    )
    return CommandResult(figures, text)


def pull_main(options, settings, run, cli) -> CommandResult:
    from annotation.stage import pull

    config = _config(options, settings, run)
    figures = pull(config)
    _journal(run, "pull", config, figures)
    totals = figures["totals"]
    text = (
        f"pulled from project {figures['project_id']} at {figures['url']}: {figures['new']} new, "
        f"{figures['edited']} edited, {figures['skips']} skips, {figures['rejected']} rejected, "
        f"{figures['deleted_tasks']} deleted tasks\n"
        f"ledger: {totals['labelled']} of {totals['requested']} pairs labelled, {totals['pending']} pending, "
        f"{totals['skipped']} skipped by every annotator who answered"
    )
    return CommandResult(figures, text)


def export_main(export_args, ledger_args, run, cli) -> CommandResult:
    from annotation.stage import export

    config = _config(AnnotationOptions(), None, run)
    config.ledger = _run_ledger(run, ledger_args.ledger)
    figures = export(
        config, export_args.output, include_pseudo=export_args.include_pseudo, include_ties=export_args.include_ties
    )
    _journal(run, "export", config, figures)
    return CommandResult(
        figures,
        f"wrote {figures['rows']} preference rows from {figures['ledger']} to {figures['path']} "
        "(TRL prompt/chosen/rejected)",
    )


def status_main(options, ledger_args, run, cli) -> CommandResult:
    from annotation.stage import status

    config = _config(options, None, run)
    config.ledger = _run_ledger(run, ledger_args.ledger)
    figures = status(config)
    return CommandResult(figures, format_key_values(figures))


if __name__ == "__main__":
    from mintline.cli import main

    raise SystemExit(main([STAGE, *__import__("sys").argv[1:]]))
