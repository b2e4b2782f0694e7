"""The `mintline serve` command line for a run directory's own keys and bundle (printed by `mintline run`)."""

from __future__ import annotations

import shlex
from pathlib import Path

from mintline import layout


def serve_hint(run_dir: str | Path) -> list[str]:
    """Lines to print after a run: the serve command, then how to check the run's bundle with it.

    Empty until the run has a watermark key and a release public key. The tokenizer is the
    pretrained model's, the one the watermark stage made the key for.
    """
    run = Path(run_dir)
    keys, tokenizer = layout.stage_dir(run, layout.WATERMARK), layout.pretrained_model(run)
    pubkeys = layout.release_keys(run)
    if not (keys / "key.json").is_file() or not list(pubkeys.glob("*.pub")):
        return []
    command = ["mintline", "serve", "--keys", keys, "--tokenizer", tokenizer, "--pubkeys", pubkeys]
    bundle = layout.release_bundle(run)
    tar = bundle.with_name(bundle.name + ".tar")
    upload = "@" + (shlex.quote(str(tar)) if tar.is_file() else "-")
    making = "" if tar.is_file() else f"tar -C {shlex.quote(str(bundle.parent))} -cf - {bundle.name} | "
    return [
        "serve verdicts: " + shlex.join(str(part) for part in command),
        f"  then open http://127.0.0.1:8000/ to check texts, and the bundle {bundle} with: {making}curl -s "
        f"-H 'Content-Type: application/x-tar' --data-binary {upload} http://127.0.0.1:8000/api/v1/verify",
    ]
