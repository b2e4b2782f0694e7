"""Typed errors of the annotation package: bad user input or an unreachable server (one line, exit 2)."""


class AnnotationError(Exception):
    exit_code = 2


class PairsFileError(AnnotationError):
    """A preference-pairs file that is missing, unreadable or holds a malformed row."""


class LedgerError(AnnotationError):
    """The label ledger cannot be opened, is bound to another project, or lacks a requested pair."""


class CredentialsError(AnnotationError):
    """No Label Studio URL or API key could be found, or the key file is unusable."""


class LabelStudioError(AnnotationError):
    """Label Studio answered, but refused the request (bad key, missing project, invalid data)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status  # the HTTP status Label Studio answered with, when it did


class LabelStudioUnavailable(LabelStudioError):
    """Label Studio did not answer usefully (down, too slow, 5xx) even after retries with back-off."""


class InvalidPairError(PairsFileError, ValueError):
    """A PreferencePair whose fields cannot be right (a ValueError too, as dataclass checks usually are)."""
