"""Typed errors of the alignment package: bad user input, reported by the CLI as one line (exit 2)."""


class AlignmentError(Exception):
    exit_code = 2
