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
import os
import sys
from collections.abc import Sequence
from pathlib import Path

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
        if hasattr(parser, "build_lazily"):  # see argparsing.add_lazy_parser
            parser = parser.build_lazily()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = build_top_parser()
    if not argv or argv[0] in ("-h", "--help", "--version"):
        top.parse_args(argv or ["--help"])
        return 0
    name = argv[0]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; see 'mintline --help'"
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
    except Exception as exc:  # noqa: BLE001 - only user and environment errors are turned into one line
        message = one_line_message(exc)
        if message is None:
            raise
        logging.getLogger("mintline").debug("user error", exc_info=exc)
        sys.stderr.write(f"mintline {name}: error: {message}\n")
        return exit_code_of(exc)
    return print_result(result, as_json=getattr(options, "json", False))


def one_line_message(exc: BaseException) -> str | None:
    """The one line to print for an error the user can act on, or None for a bug (a traceback).

    Besides the stages' typed errors: an OSError about a path (an output directory that cannot be
    written, a parent that is a file, a full disk) and an unreadable safetensors file come from the
    user's files and machine, not from the code, and a traceback would only hide the path.
    """
    if is_user_error(exc):
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__
    if isinstance(exc, OSError) and exc.filename is not None:
        blocking = _file_in_the_way(exc)
        if blocking is not None:
            return f"cannot use {exc.filename}: {blocking} is a file, not a directory"
        where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else f"{exc.filename}"
        return f"{where}: {exc.strerror or type(exc).__name__}"
    if type(exc).__name__ == "SafetensorError":  # safetensors' own class; matched by name, as USER_ERRORS are
        reason = (str(exc).strip().splitlines() or [""])[0]
        return f"a safetensors weights file is corrupt or truncated ({reason})"
    return None


def _file_in_the_way(exc: OSError) -> str | None:
    """For "File exists" / "Not a directory" while making directories: the file that stands where one must go."""
    if not isinstance(exc, (FileExistsError, NotADirectoryError)):
        return None
    path = Path(os.fsdecode(exc.filename))
    for candidate in (path, *path.parents):
        if candidate.exists():
            return str(candidate) if not candidate.is_dir() else None
    return None


if __name__ == "__main__":
    raise SystemExit(main())
