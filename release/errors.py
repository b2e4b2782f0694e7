"""Typed errors of the release package: bad user input, reported by the CLI as one line (exit 2).

A bundle that fails verification is *not* an error: `verify_bundle` returns a
VerificationResult with every reason, and the CLI exits 1. These errors are for input that
cannot even be checked (no such key file, a key that is not a key, a destination that exists).
"""


class ReleaseError(Exception):
    exit_code = 2


class KeyFileError(ReleaseError):
    """A key file is missing, unreadable, malformed, of an unsupported type, or needs a passphrase."""


class ModelDirectoryError(ReleaseError):
    """The model directory cannot be released as is (pickle weights, no weights, a symlink...)."""


class BundleExistsError(ReleaseError):
    """The destination already holds something and overwriting was not asked for."""


class SignatureFormatError(ReleaseError):
    """A signature or manifest that cannot be parsed (raised only where a caller needs it parsed)."""


class LicenseConflictError(ReleaseError):
    """The model directory carries a licence that an MIT release would override, and relicensing was not allowed."""
