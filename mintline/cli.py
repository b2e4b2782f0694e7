"""The `mintline` console command.

Only the chosen sub-command's module is imported (torch and transformers take seconds to
import). Each module follows TRL's script layout: `make_parser(subparsers=None)` adds a
MintlineParser whose dataclass types are the stage's configs and sets `handler` with
`set_defaults`; the handler receives the dataclass instances and the options namespace and
returns a CommandResult. Typed user errors from any stage become one line and exit 2 here,
and nowhere else.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import sys
from collections.abc import Sequence

from mintline import __version__
from mintline.argparsing import MintlineParser
from mintline.commands import COMMANDS
from mintline.console import configure_output, print_result
from mintline.errors import exit_code_of, is_user_error


def build_top_parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<10} {summary}" for name, (_, summary) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="mintline",
        description="From raw text to a signed, watermarked, aligned open model.",
        epilog=f"commands:\n{listing}\n\n'mintline COMMAND --help' lists a command's options and defaults.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="mintline [--version] COMMAND [options]",
    )
    parser.add_argument("--version", action="version", version=f"mintline {__version__}")
    return parser


def find_leaf(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """Walk nested sub-commands (`mintline release verify ...`) down to the parser that parses options."""
    while True:
        subactions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subactions:
            return parser, argv
        choices = subactions[0].choices
        if not argv or argv[0] in ("-h", "--help"):
            parser.print_help()
            raise SystemExit(0 if argv else 2)
        default = getattr(parser, "default_subcommand", None)
        if argv[0] not in choices and default is not None:
            # `mintline align --config recipe.yaml` means `mintline align run --config recipe.yaml`
            parser = choices[default]
            continue
        if argv[0] not in choices:
            close = difflib.get_close_matches(argv[0], list(choices), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; choose from {', '.join(choices)}"
            parser.error(f"unknown sub-command {argv[0]!r}{hint}")
        parser, argv = choices[argv[0]], argv[1:]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = build_top_parser()
    if not argv or argv[0] in ("-h", "--help", "--version"):
        top.parse_args(argv or ["--help"])
        return 0
    name = argv[0]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; see 'mintline --help'"
        sys.stderr.write(f"mintline: error: unknown command {name!r}{hint}\n")
        return 2

    module = importlib.import_module(COMMANDS[name][0])
    subparsers = top.add_subparsers(parser_class=MintlineParser, prog="mintline")
    command_parser = module.make_parser(subparsers)
    try:
        leaf, rest = find_leaf(command_parser, argv[1:])
        *configs, options = leaf.parse_args_and_config(rest)
    except SystemExit as stop:
        return int(stop.code or 0)

    configure_output(getattr(options, "quiet", False))
    handler = getattr(options, "handler", None)
    if handler is None:
        leaf.print_help()
        return 2
    try:
        result = handler(*configs, options)
    except KeyboardInterrupt:
        sys.stderr.write(f"mintline {name}: interrupted\n")
        return 130
    except Exception as exc:  # noqa: BLE001 - only typed user errors are turned into one line
        if not is_user_error(exc):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        logging.getLogger("mintline").debug("user error", exc_info=exc)
        sys.stderr.write(f"mintline {name}: error: {message}\n")
        return exit_code_of(exc)
    return print_result(result, as_json=getattr(options, "json", False))


if __name__ == "__main__":
    raise SystemExit(main())
