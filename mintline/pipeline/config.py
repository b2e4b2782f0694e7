"""The whole-run configuration: one YAML section per stage, each exactly what that stage's
own command accepts with `--config`, plus dotted command-line overrides.

    run_dir: runs/default
    prepare:  {profile: auto}
    pretrain: {model: tiny, max_steps: 600}
    align:    {budget: 60, strategy: uncertainty+kcenter}
    watermark: {samples: 24}
    release:  {name: mintline-python-docs}

`mintline run --pretrain.max_steps 50 --align.budget 20` overrides single fields. Sections
are validated by the stage's own parser before any stage runs, so a typo in the last section
fails in the first second, not after pretraining.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mintline.errors import MintlineError

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")
STAGES = ("prepare", "pretrain", "align", "watermark", "release")


class RunConfigError(MintlineError):
    """The run config file or an override is malformed."""


@dataclass
class RunConfig:
    run_dir: str
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "built-in default"
    # (section, key) -> where its value came from: the user's file or a --STAGE.OPTION override
    origins: dict[tuple[str, str], str] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.sections.get(name) or {})

    def origin(self, section: str, key: str) -> str:
        """Where a section's key was set, for errors: "run.yaml, section 'align'" or "--align.budget"."""
        return self.origins.get((section, key), f"{DEFAULT_CONFIG}, section {section!r}")


def load_run_config(path: str | None, run_dir: str | None, overrides: list[str]) -> RunConfig:
    """The built-in default, overlaid section by section by the user's file, then by overrides."""
    document = _read_yaml(DEFAULT_CONFIG)
    source = "built-in default"
    origins: dict[tuple[str, str], str] = {}
    if path:
        user = _read_yaml(Path(path))
        unknown = sorted(set(user) - {"run_dir", *STAGES})
        if unknown:
            raise RunConfigError(f"{path}: unknown section {unknown[0]!r}; sections are run_dir, {', '.join(STAGES)}")
        for key, value in user.items():
            if key in STAGES:
                if value is not None and not isinstance(value, dict):
                    raise RunConfigError(f"{path}: section {key!r} must be a mapping of option: value")
                document.setdefault(key, {}).update(value or {})
                origins.update({(key, option): f"{path}, section {key!r}" for option in value or {}})
            else:
                document[key] = value
        source = str(path)
    config = RunConfig(
        run_dir=str(run_dir or document.get("run_dir") or "runs/default"), source=source, origins=origins
    )
    config.sections = {name: dict(document.get(name) or {}) for name in STAGES}
    for section, key, value in parse_overrides(overrides):
        config.sections[section][key] = value
        config.origins[(section, key)] = f"--{section}.{key}"
    return config


def is_option(token: str) -> bool:
    """An option (`--pretrain.max_steps`, `-q`), not a value: `-1` and `-1e-3` are values."""
    if not token.startswith("-") or token == "-":
        return False
    try:
        float(token)
    except ValueError:
        return True
    return False


def parse_overrides(tokens: list[str]) -> list[tuple[str, str, Any]]:
    """`--pretrain.max_steps 50` / `--pretrain.max_steps=50` → ("pretrain", "max_steps", 50)."""
    parsed, index = [], 0
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith("--") or "." not in token:
            raise RunConfigError(
                f"unrecognized argument {token!r}; stage options are given as --STAGE.OPTION VALUE "
                f"(stages: {', '.join(STAGES)})"
            )
        name, _, inline = token[2:].partition("=")
        section, _, key = name.partition(".")
        if section not in STAGES or not key:
            raise RunConfigError(f"{token}: unknown stage {section!r}; stages are {', '.join(STAGES)}")
        if inline:
            values = [inline]
            index += 1
        else:
            values = []
            index += 1
            while index < len(tokens) and not is_option(tokens[index]):
                values.append(tokens[index])
                index += 1
        value: Any
        if not values:
            value = True  # a bare boolean flag
        elif len(values) == 1:
            value = yaml.safe_load(values[0]) if values[0] else values[0]
        else:
            value = [yaml.safe_load(v) for v in values]
        parsed.append((section, key.replace("-", "_"), value))
    return parsed


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunConfigError(f"--config: no such file: {path}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise RunConfigError(f"--config {path}: cannot read YAML ({str(exc).splitlines()[0]})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise RunConfigError(f"--config {path}: the file must hold a mapping of section: options")
    return loaded
