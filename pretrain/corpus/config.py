"""The configuration of `mintline prepare` / `prepare_corpus`, and threshold profiles.

Each block keeps its own dataclass (the fields are the command's flags); PrepareConfig
bundles them for the library. A profile is a YAML file of flag: value pairs applied on top of
the defaults (datatrove's), under `--config` and command-line flags:

* `datatrove`: the defaults, unchanged (what FineWeb-style web text was tuned for);
* `python-docs`: thresholds for the built-in corpus, see profiles/python-docs.yaml;
* `auto` (the default): python-docs for the built-in corpus, datatrove for your own inputs.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pretrain.corpus.shards import FORMATS
from pretrain.dedup import DedupConfig
from pretrain.filters import (
    FILTER_NAMES,
    C4Config,
    GopherQualityConfig,
    GopherRepetitionConfig,
    NormalizeConfig,
    PIIConfig,
    build_filters,
)
from pretrain.tokenizer import TokenizerConfig

PROFILES_DIR = Path(__file__).with_name("profiles")
DATATROVE_DEFAULTS_NOTE = (
    "Thresholds default to datatrove's values; the profile (auto: python-docs for the built-in corpus, "
    "datatrove for --inputs) is applied on top, then --config, then flags. The defaults printed above "
    "are the ones in effect for the command as typed."
)
PROFILES = ("auto", "datatrove", "python-docs")


@dataclass
class PrepareArguments:
    inputs: list[str] = field(
        default_factory=list,
        metadata={
            "help": "files, folders or globs: text, JSONL, Parquet, `datasets` save_to_disk dirs (none: the built-in corpus)"
        },
    )
    text_field: str = field(default="text", metadata={"help": "JSONL/Parquet/datasets field holding the text"})
    id_field: str = field(default="id", metadata={"help": "field holding a document id, if any (else file:line)"})
    profile: str = field(
        default="auto",
        metadata={
            "help": "threshold preset: auto = python-docs for the built-in corpus, datatrove otherwise",
            "choices": list(PROFILES),
        },
    )
    filters: list[str] = field(
        default_factory=lambda: list(FILTER_NAMES),
        metadata={
            "help": f"cleaning blocks to run, in order (from: {', '.join(FILTER_NAMES)}; 'none' for no filtering)"
        },
    )
    output_format: str = field(default="jsonl", metadata={"help": "shard format", "choices": list(FORMATS)})
    validation_fraction: float = field(
        default=0.05, metadata={"help": "share of documents held out for validation (0: none)"}
    )
    max_shard_bytes: int = field(
        default=100_000_000, metadata={"help": "start a new train shard beyond this many bytes of text"}
    )
    train_tokenizer: bool = field(default=True, metadata={"help": "train the BPE tokenizer on the train shards"})
    num_workers: int = field(
        default=0, metadata={"help": "worker processes (0: one per CPU core); output is the same for any number"}
    )
    explain: str = field(
        default=None, metadata={"help": "print why document ID was removed (reads the last run; runs nothing)"}
    )

    def __post_init__(self):
        if self.profile not in PROFILES:
            raise ValueError(f"profile: choose from {', '.join(PROFILES)}, got {self.profile!r}")
        if self.filters == ["none"]:
            self.filters = []
        unknown = [name for name in self.filters if name not in FILTER_NAMES]
        if unknown:
            raise ValueError(
                f"filters: unknown block {unknown[0]!r}; choose from {', '.join(FILTER_NAMES)} (or 'none')"
            )
        if len(set(self.filters)) != len(self.filters):
            raise ValueError(f"filters: a block is listed twice: {' '.join(self.filters)}")
        if self.output_format not in FORMATS:
            raise ValueError(f"output_format: choose from {', '.join(FORMATS)}, got {self.output_format!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction: must be in [0, 1), got {self.validation_fraction}")
        if self.max_shard_bytes < 1:
            raise ValueError(f"max_shard_bytes: must be >= 1, got {self.max_shard_bytes}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers: must be >= 0 (0: one per core), got {self.num_workers}")
        if not self.text_field:
            raise ValueError("text_field: must not be empty")

    def resolved_workers(self) -> int:
        if self.num_workers:
            return self.num_workers
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)


# the dataclasses of PrepareConfig, in the order the command parses them
PARTS: dict[str, type] = {
    "corpus": PrepareArguments,
    "normalize": NormalizeConfig,
    "gopher_repetition": GopherRepetitionConfig,
    "gopher_quality": GopherQualityConfig,
    "c4": C4Config,
    "pii": PIIConfig,
    "dedup": DedupConfig,
    "tokenizer": TokenizerConfig,
}
# fields that do not change the output, so changing them does not make a finished stage stale
_NOT_IN_IDENTITY = {"explain", "num_workers"}


@dataclass
class PrepareConfig:
    corpus: PrepareArguments = field(default_factory=PrepareArguments)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    gopher_repetition: GopherRepetitionConfig = field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = field(default_factory=GopherQualityConfig)
    c4: C4Config = field(default_factory=C4Config)
    pii: PIIConfig = field(default_factory=PIIConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)

    @classmethod
    def from_parts(cls, *parts: Any) -> PrepareConfig:
        """Bundle the dataclass instances the command line parsed (any order; missing ones default)."""
        by_type = {type(part): part for part in parts}
        return cls(**{name: by_type[kind] for name, kind in PARTS.items() if kind in by_type})

    @classmethod
    def from_profile(cls, profile: str = "auto", **overrides: Any) -> PrepareConfig:
        """Defaults, then the profile's values, then `overrides` (flat field names, e.g. min_doc_words=20)."""
        name = resolve_profile(profile, overrides.get("inputs") or [])
        values = {**load_profile(name), **overrides, "profile": name}
        owner = field_owners()
        unknown = sorted(set(values) - set(owner))
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r} for prepare")
        grouped: dict[str, dict[str, Any]] = {part: {} for part in PARTS}
        for key, value in values.items():
            grouped[owner[key]][key] = value
        return cls(**{part: PARTS[part](**kwargs) for part, kwargs in grouped.items()})

    def build_filters(self):
        return build_filters(
            self.corpus.filters,
            normalize=self.normalize,
            gopher_repetition=self.gopher_repetition,
            gopher_quality=self.gopher_quality,
            c4=self.c4,
            pii=self.pii,
        )

    def identity(self) -> dict[str, Any]:
        """The config as it decides the output (for the run journal)."""
        from dataclasses import asdict

        document = asdict(self)
        for name in _NOT_IN_IDENTITY:
            document["corpus"].pop(name, None)
        return document


def field_owners() -> dict[str, str]:
    """Flat field name -> the PrepareConfig part that holds it."""
    return {f.name: part for part, kind in PARTS.items() for f in dataclasses.fields(kind)}


def resolve_profile(profile: str, inputs: list[str]) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile: choose from {', '.join(PROFILES)}, got {profile!r}")
    if profile == "auto":
        return "datatrove" if inputs else "python-docs"
    return profile


def load_profile(name: str) -> dict[str, Any]:
    """The flag: value pairs of a profile (datatrove: none, the defaults are datatrove's)."""
    if name == "datatrove":
        return {}
    import yaml

    path = PROFILES_DIR / f"{name}.yaml"
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a profile must be a YAML mapping of option: value")
    return values
