"""The argument parser every `mintline` sub-command uses.

It is TRL's own `TrlParser` (dataclass fields become `--flags`, `--config x.yaml` supplies
defaults, the command line overrides them), made strict in the ways DESIGN.md asks for:

* every key in the YAML file must be a known option, and its value is checked with the same
  type and choices as the flag, before any work starts;
* a bad value or a dataclass `__post_init__` that rejects the combination ends the program
  with one line on stderr and exit status 2, never a traceback;
* `-q/--quiet` and `--json` exist on every command.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from trl import TrlParser


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" only where the help does not already say its default, and not for None."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text.lower() or action.default is None:
            return text
        return super()._get_help_string(action)


class RepeatableOption(argparse.Action):
    """`--key A --key B FILE`: one value per flag, so the positional arguments after it stay positional.

    Values from the command line replace the default (which may come from --config) instead of adding to it.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        if current is None or current is self.default:
            current = []
        setattr(namespace, self.dest, [*current, values])


class MintlineParser(TrlParser):
    def __init__(self, dataclass_types=None, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        # --config files whose name the user never saw (the run's per-stage sections): path -> label or
        # label(key), so errors name the user's file and section instead
        self.config_labels: dict[str, Any] = {}
        # Config keys this parser leaves to a launcher (`accelerate launch` for TRL recipes): a function
        # returning their names, set by the sub-command; such keys come back as `options.launch_args`.
        self.launcher_keys: Callable[[], set[str]] | None = None
        self.launch_args: list[str] = []
        super().__init__(dataclass_types=dataclass_types, **kwargs)
        add_common_options(self)

    @staticmethod
    def _parse_dataclass_field(parser, field):
        """As HfArgumentParser, plus list fields with metadata {"action": "append"}: `--flag A --flag B`."""
        if field.metadata.get("action") != "append":
            return TrlParser._parse_dataclass_field(parser, field)
        kwargs = {k: v for k, v in field.metadata.items() if k != "action"}
        kwargs["type"] = getattr(field.type, "__args__", (str,))[0]
        kwargs["default"] = field.default_factory() if field.default_factory is not dataclasses.MISSING else None
        kwargs.setdefault("metavar", field.name.upper())
        names = [f"--{field.name}"] + ([f"--{field.name.replace('_', '-')}"] if "_" in field.name else [])
        parser.add_argument(*names, action=RepeatableOption, **kwargs)

    # argparse prints usage + message and exits 2; we keep exit 2 but print one line.
    def error(self, message: str):  # noqa: D401 - argparse API
        raise SystemExit(_one_line_error(self.prog, message))

    def parse_args_and_config(self, args: Sequence[str] | None = None):
        """Return (dataclass instances..., options namespace).

        The namespace holds everything that is not a dataclass field: positional
        arguments, `quiet`, `json`, and the handler set with `set_defaults`.
        """
        import yaml

        argv = list(sys.argv[1:] if args is None else args)
        given = list(argv)
        self.launch_args = []
        config_path = _pop_option(argv, "--config")
        if config_path is not None:
            try:
                with open(config_path, encoding="utf-8") as handle:
                    config = yaml.safe_load(handle)
            except FileNotFoundError:
                self.error(f"--config: no such file: {config_path}")
            except (OSError, yaml.YAMLError) as exc:
                self.error(f"--config {config_path}: cannot read YAML ({_first_line(exc)})")
            if config is None:
                config = {}
            if not isinstance(config, dict):
                self.error(f"--config {config_path}: the file must hold a YAML mapping of option: value")
            for key, value in (config.pop("env", None) or {}).items():
                os.environ[str(key)] = str(value)
            self.apply_config(config, source=self.config_labels.get(config_path, config_path))

        namespace, unknown = self.parse_known_args(argv)
        if unknown:
            self.error(_unknown_message(unknown[0], self.option_names()))
        if self.launcher_keys is not None:
            namespace.launch_args, namespace.argv = self.launch_args, given
        return (*self.build_dataclasses(namespace), namespace)

    def build_dataclasses(self, namespace: argparse.Namespace) -> list[Any]:
        instances = []
        for dtype in self.dataclass_types:
            names = {f.name for f in dataclasses.fields(dtype) if f.init}
            values = {name: getattr(namespace, name) for name in names if hasattr(namespace, name)}
            for name in values:
                delattr(namespace, name)
            try:
                instances.append(dtype(**values))
            except (ValueError, TypeError) as exc:
                self.error(_first_line(exc))
        return instances

    def apply_config(self, config: dict[str, Any], source: str | Callable[[str], str] = "config") -> None:
        """Validate `config` against this parser's options and make its values the defaults.

        `source` names where the values came from in errors: a string, or a function of the key.
        """
        for key, value in config.items():
            label = source(key) if callable(source) else source
            action = self._option_string_actions.get(f"--{key}")
            if action is None and self.launcher_keys is not None and key in self.launcher_keys():
                self.launch_args += [f"--{key}", str(value)]
                continue
            if action is None or action.dest in ("help", "config"):
                self.error(f"{label}: {_unknown_message(key, self.option_names())}")
            if isinstance(action, argparse._StoreFalseAction):  # `no_x: true` means x = False
                value = not value
                action = next(a for a in self._actions if a.dest == action.dest)
            value = _check_value(self, action, key, value, label)
            # `--x` and `--no_x` share a destination: both defaults must agree.
            for sibling in self._actions:
                if sibling.dest == action.dest:
                    sibling.default = value
                    sibling.required = False

    def option_names(self) -> list[str]:
        return sorted(a.dest for a in self._actions if a.option_strings and a.dest not in ("help", "config"))


def add_lazy_parser(subparsers: argparse._SubParsersAction, name: str, help: str, build: Callable):
    """A sub-command whose parser is built only when it is chosen (`find_leaf` calls `build_lazily`).

    For sub-commands whose dataclass types import heavy libraries (TRL's configs import torch and
    transformers): `mintline align --help` must not wait ~20 s for parsers it does not show.
    `build(subparsers)` adds the real parser under the same name and returns it.
    """
    placeholder = subparsers.add_parser(name, help=help)

    def build_lazily() -> argparse.ArgumentParser:
        del subparsers._name_parser_map[name]
        subparsers._choices_actions[:] = [a for a in subparsers._choices_actions if a.dest != name]
        return build(subparsers)

    placeholder.build_lazily = build_lazily
    return placeholder


def add_common_options(parser: argparse.ArgumentParser) -> None:
    existing = {s for a in parser._actions for s in a.option_strings}
    if "--quiet" not in existing:
        parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logs")
    if "--json" not in existing:
        parser.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    if "--config" not in existing:
        parser.add_argument("--config", help="YAML file whose keys are any of the options below")


def _check_value(parser, action, key, value, source):
    """Run a YAML value through the flag's own type and choices so both paths agree."""
    if value is None:
        return None
    many = action.nargs in ("+", "*") or isinstance(action.nargs, int) or isinstance(action, RepeatableOption)
    if many:
        items = value if isinstance(value, list) else [value]
        return [_convert_one(parser, action, key, item, source) for item in items]
    if isinstance(value, (list, dict)):
        parser.error(f"{source}: {key}: expected a single value, got {type(value).__name__}")
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreConstAction)):
        return bool(value)
    return _convert_one(parser, action, key, value, source)


def _convert_one(parser, action, key, value, source):
    converted = value
    if action.type is not None:
        try:
            # str() first so a YAML 1.5 is not silently truncated by int(), exactly as on the command line
            converted = action.type(value if isinstance(value, str) else str(value))
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            type_name = getattr(action.type, "__name__", "value")
            parser.error(f"{source}: {key}: invalid {type_name} value: {value!r}")
    if action.choices is not None and converted not in action.choices:
        allowed = ", ".join(repr(c) for c in action.choices)
        parser.error(f"{source}: {key}: invalid choice {value!r} (choose from {allowed})")
    return converted


def _pop_option(argv: list[str], flag: str) -> str | None:
    for index, token in enumerate(argv):
        if token == flag:
            if index + 1 >= len(argv):
                raise SystemExit(_one_line_error("mintline", f"{flag} needs a value"))
            value = argv[index + 1]
            del argv[index : index + 2]
            return value
        if token.startswith(flag + "="):
            del argv[index]
            return token.split("=", 1)[1]
    return None


def _unknown_message(key: str, allowed: Iterable[str]) -> str:
    allowed = list(allowed)
    bare = str(key).lstrip("-").replace("-", "_")
    close = difflib.get_close_matches(bare, allowed, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else f"known options: {', '.join(allowed)}"
    return f"unknown option {key!r}; {hint}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _one_line_error(prog: str, message: str) -> int:
    sys.stderr.write(f"{prog}: error: {message.strip().splitlines()[0] if message.strip() else message}\n")
    return 2
