"""Typed errors of the watermark package: bad user input, reported by the CLI as one line (exit 2)."""


class WatermarkError(Exception):
    exit_code = 2
