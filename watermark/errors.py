"""Typed errors of the watermark package: bad user input, reported by the CLI as one line (exit 2)."""


class WatermarkError(Exception):
    exit_code = 2


class KeyFileError(WatermarkError):
    """A key file that is missing, malformed, tampered with, or readable by others than its owner."""


class TokenizerMismatchError(WatermarkError):
    """The key was made for another tokenizer: its green lists would be noise on these token ids."""


class TokenizerError(WatermarkError):
    """A tokenizer directory that cannot be read (no tokenizer.json, unreadable file)."""


class InputTextError(WatermarkError):
    """Text to detect that is empty, not UTF-8, or missing."""


class ConfigError(WatermarkError):
    """Watermark parameters or evaluation settings that cannot work."""


class WeightMarkError(WatermarkError):
    """A weight mark that is missing from the key, or reference weights that are not the marked release."""


class IncompatibleModelError(WatermarkError):
    """A model whose architecture or vocabulary cannot be compared with the marked release."""
