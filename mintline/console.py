"""What a command shows people and machines: results, tables, and the -q switch."""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CommandResult:
    """What a command handler returns; the CLI prints it (as JSON with --json)."""

    data: dict[str, Any] = field(default_factory=dict)
    text: str | None = None  # the human form; None prints `data` as aligned key: value lines
    exit_code: int = 0


def configure_output(quiet: bool) -> None:
    """Progress bars and info logs on, or all off with -q.

    The stage packages may not import mintline, so the switch travels through the libraries'
    own environment variables (tqdm reads TQDM_DISABLE, datasets and transformers theirs).
    """
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
        os.environ["TRANSFORMERS_VERBOSITY"] = "error"
        os.environ["MINTLINE_QUIET"] = "1"
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    # Library chatter stays at WARNING even when we are verbose, and at ERROR with -q.
    library_level = logging.ERROR if quiet else logging.WARNING
    for noisy in ("httpx", "urllib3", "datasets", "transformers", "torch", "filelock", "trl", "peft", "accelerate"):
        logging.getLogger(noisy).setLevel(library_level)
    # Deprecation notices from inside the libraries (TRL still passes v4 names to transformers 5)
    # are for their maintainers; our users cannot act on them.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|trl|peft|accelerate)(\.|$)")
    if quiet and "transformers" in sys.modules:  # already imported: its own verbosity was read at import
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()


def print_result(result: CommandResult | dict | None, as_json: bool) -> int:
    if result is None:
        return 0
    if isinstance(result, dict):
        result = CommandResult(data=result)
    if as_json:
        sys.stdout.write(json.dumps(result.data, default=_json_default, sort_keys=False) + "\n")
    elif result.text is not None:
        sys.stdout.write(result.text.rstrip("\n") + "\n")
    elif result.data:
        sys.stdout.write(format_key_values(result.data) + "\n")
    sys.stdout.flush()
    return result.exit_code


def format_key_values(data: dict[str, Any], indent: int = 0) -> str:
    lines = []
    width = max((len(str(k)) for k in data), default=0)
    for key, value in data.items():
        pad = " " * indent
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            lines.append(format_key_values(value, indent + 2))
        else:
            lines.append(f"{pad}{str(key).ljust(width)}  {format_value(value)}")
    return "\n".join(lines)


def format_value(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:,.4g}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10000:
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def format_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """A plain-text table: one row per dict, columns in the given order."""
    if not rows:
        return ""
    columns = columns or list(rows[0])
    cells = [[format_value(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    header = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join([header, rule, *body])


def _json_default(value: Any):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "__fspath__"):
        return os.fspath(value)
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    return str(value)
