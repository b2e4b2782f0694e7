"""Typed errors of the alignment package: bad user input, reported by the CLI as one line (exit 2)."""


class AlignmentError(Exception):
    exit_code = 2


class ConfigError(AlignmentError, ValueError):
    """A config value is invalid or inconsistent (budget larger than the pool, unknown strategy...).

    Also a ValueError, so a dataclass `__post_init__` raising it is reported by the argument
    parser as one line (exit 2) before any work starts, like every other bad value.
    """


class PreferenceDataError(AlignmentError):
    """A preference file cannot be used at all (missing, unreadable, or no valid row left)."""


class UnknownStrategyError(ConfigError):
    """An acquisition strategy name that is not registered."""


class UnknownEncoderError(ConfigError):
    """A feature encoder that is neither a known name nor a model directory."""
