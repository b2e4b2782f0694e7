"""Typed errors of the annotation package: bad user input or an unreachable server (one line, exit 2)."""


class AnnotationError(Exception):
    exit_code = 2
