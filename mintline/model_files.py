"""Checks on a model directory the user names, made before torch is imported or weights are loaded."""

from __future__ import annotations

import os
from pathlib import Path

from mintline.errors import MintlineError


class WeightFileError(MintlineError):
    """A weights file that cannot be read: corrupt, truncated, or not safetensors at all."""


def check_weight_files(model_dir: str | os.PathLike, option: str = "model") -> None:
    """Read the header of every safetensors file in `model_dir` (cheap: no tensor is loaded).

    safetensors checks that the header parses and that its offsets cover the file exactly, so a
    corrupt or truncated download fails here, naming the file, instead of as a SafetensorError
    traceback from inside transformers after seconds of imports.
    """
    from safetensors import safe_open

    for path in sorted(Path(model_dir).glob("*.safetensors")):
        try:
            with safe_open(path, framework="np"):
                pass
        except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError: all mean "cannot use this file"
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise WeightFileError(f"{option}: {path} is not a readable safetensors file ({reason})") from None
