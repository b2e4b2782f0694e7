"""The stages `mintline run` chains, each through the same code path as its own command.

prepare, pretrain and align run their command's parser and handler (so a run section is
exactly what `mintline <stage> --config` accepts, and each keeps its own run.json journal
logic); watermark and release are assembled here from their packages' library calls, under
the journal, because in a run they do several things at once (key + samples + detection;
keys + bundles + verification).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from mintline.commands import COMMANDS
from mintline.console import CommandResult


@dataclass
class StageOutcome:
    name: str
    figures: dict[str, Any]
    skipped: bool = False
    waiting_for: int = 0  # labels still outstanding (Label Studio): the run stops here
    text: str = ""


@dataclass
class Stage:
    name: str
    prepare_argv: Callable[[Path], list[str]]  # the run-specific flags (paths from earlier stages)
    command: str | None = None  # a `mintline` command whose handler runs the stage
    verbs: tuple[str, ...] = ()
    runner: Callable | None = None  # or a pipeline function (config instances, run_dir) -> StageOutcome
    dataclass_types: tuple = ()


def section_parser(stage: Stage):
    """The parser that validates this stage's section (the command's own, or one for our dataclasses)."""
    from mintline.argparsing import MintlineParser
    from mintline.cli import find_leaf

    if stage.command:
        module = importlib.import_module(COMMANDS[stage.command][0])
        leaf, _ = find_leaf(module.make_parser(), list(stage.verbs))
        return leaf
    return MintlineParser(stage.dataclass_types, prog=f"mintline run [{stage.name}]")


def parse_section(stage: Stage, section: dict[str, Any], run_dir: Path, quiet: bool, origin: Callable | None = None):
    """(dataclass instances..., options) for a stage, from its run-config section.

    `origin(key)` says where a key was set (see RunConfig.origin), for errors.
    """
    parser = section_parser(stage)
    argv = stage.prepare_argv(run_dir) + (["-q"] if quiet else [])
    # Flags the pipeline sets (paths between stages) must not be overridden by the section,
    # unless the user set them there on purpose: the section wins, as a config file would.
    given = {f"--{key}" for key in section}
    argv = _drop_flags(argv, given)
    with _yaml_file(section) as path:
        # errors name the user's file and section (or the override), never this temporary copy
        parser.config_labels[path] = origin or f"run config, section {stage.name!r}"
        return parser.parse_args_and_config(["--config", path, *argv])


def run_stage(stage: Stage, section: dict[str, Any], run_dir: Path, quiet: bool) -> StageOutcome:
    *configs, options = parse_section(stage, section, run_dir, quiet)
    if stage.command:
        result: CommandResult = options.handler(*configs, options)
        figures = dict(result.data)
        return StageOutcome(
            stage.name,
            figures,
            skipped=bool(figures.get("skipped")),
            waiting_for=int(figures.get("waiting_for") or 0) if figures.get("state") == "waiting" else 0,
            text=result.text or "",
        )
    return stage.runner(*configs, options, run_dir=run_dir)


def _drop_flags(argv: list[str], flags: set[str]) -> list[str]:
    out, skip = [], False
    for index, token in enumerate(argv):
        if skip:
            skip = False
            continue
        if token in flags:
            skip = index + 1 < len(argv) and not argv[index + 1].startswith("--")
            continue
        out.append(token)
    return out


@contextlib.contextmanager
def _yaml_file(section: dict[str, Any]):
    handle = tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="mintline-section-", delete=False)
    try:
        yaml.safe_dump(section, handle)
        handle.close()
        yield handle.name
    finally:
        os.unlink(handle.name)


# -- the release stage ---------------------------------------------------------------------------
@dataclass
class ReleaseStageConfig:
    name: str = field(default="mintline-model", metadata={"help": "model name in the card and the signature"})
    version: str = field(default="0.1.0", metadata={"help": "release version"})
    holder: str = field(default="mintline contributors", metadata={"help": "copyright holder in LICENSE"})
    algorithm: str = field(
        default="ecdsa-p256",
        metadata={"help": "signing key algorithm: ecdsa-p256 (the stock model_signing tool verifies it) or ed25519"},
    )
    tar: bool = field(default=False, metadata={"help": "also write a deterministic tar of each bundle"})

    def __post_init__(self):
        if self.algorithm not in ("ed25519", "ecdsa-p256"):
            raise ValueError(f"algorithm: choose from ed25519, ecdsa-p256, got {self.algorithm!r}")


def jsonable(value: Any) -> Any:
    from mintline.journal import to_jsonable

    return to_jsonable(asdict(value) if hasattr(value, "__dataclass_fields__") else value)
