"""Typed errors of the release package: bad user input, reported by the CLI as one line (exit 2)."""


class ReleaseError(Exception):
    exit_code = 2
