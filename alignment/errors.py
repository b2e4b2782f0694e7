"""Typed errors of the alignment package: bad user input, reported by the CLI as one line (exit 2)."""


class AlignmentError(Exception):
    exit_code = 2


class ConfigError(AlignmentError):
    """A config value is invalid or inconsistent (budget larger than the pool, unknown strategy...)."""


class PreferenceDataError(AlignmentError):
    """A preference file cannot be used at all (missing, unreadable, or no valid row left)."""


class UnknownStrategyError(ConfigError):
    """An acquisition strategy name that is not registered."""


class UnknownEncoderError(ConfigError):
    """A feature encoder that is neither a known name nor a model directory."""
