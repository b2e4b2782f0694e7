"""Typed errors of the pretrain package: bad user input, reported by the CLI as one line (exit 2)."""


class PretrainError(Exception):
    exit_code = 2


class CorpusError(PretrainError):
    """A corpus path is missing, unreadable, empty, or filtered away entirely."""


class ConfigError(PretrainError):
    """A model preset, config file or training setting that cannot work."""


class CheckpointError(PretrainError):
    """No usable checkpoint to resume from, or an output directory that holds another run."""
