"""`mintline watermark`: keys, detection without the model, robustness evaluation, distillation.

    mintline watermark keygen --tokenizer DIR [--out KEYFILE] [--scheme kgw|synthid] [--gamma .. --delta ..]
    mintline watermark detect --key KEYFILE [--key KEY2 ...] --tokenizer DIR [--json] FILE... | -
    mintline watermark evaluate --model DIR --key KEYFILE [--num_samples 200] [--attacks ...]
    mintline watermark distill --model DIR --key KEYFILE --out DIR [--steps ...]

`detect` reads the key and the tokenizer only. `--json` prints one JSON object per input
(JSON Lines) with z_score, p_value, num_tokens_scored, green_count, watermarked (true, false,
or null for "insufficient evidence") and key_id. A FILE ending in .jsonl holds one text per
line as {"text": ...} or {"prompt": ..., "completion": ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mintline.console import CommandResult, format_key_values, format_table
from watermark.detect import DetectionConfig
from watermark.errors import InputTextError


@dataclass
class KeygenArguments:
    tokenizer: str = field(default=None, metadata={"help": "tokenizer (or model) directory the key is bound to"})
    out: str = field(default=None, metadata={"help": "key file to write (mode 0600); default RUN_DIR/watermark/key.json"})
    scheme: Literal["kgw", "synthid"] = field(default="kgw", metadata={"help": "kgw (green lists) or synthid (tournament)"})
    gamma: float = field(default=None, metadata={"help": "kgw: green-list fraction of the vocabulary (default 0.25)"})
    delta: float = field(default=None, metadata={"help": "kgw: logit bias added to green tokens (default 3.0)"})
    seeding: Literal["lefthash", "selfhash"] = field(default=None, metadata={"help": "kgw: lefthash (default) or selfhash"})
    context_width: int = field(default=None, metadata={"help": "kgw: context tokens that seed the green list (default 1)"})
    ngram_len: int = field(default=None, metadata={"help": "synthid: n-gram length (default 5)"})
    depth: int = field(default=None, metadata={"help": "synthid: tournament layers, <= 64 (default 30)"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing key file (its marks become undetectable)"})
    run_dir: str = field(default="runs/default", metadata={"help": "run directory; the key goes to RUN_DIR/watermark/key.json unless --out"})

    def __post_init__(self):
        if not self.tokenizer:
            raise ValueError("tokenizer: required (the tokenizer or model directory the key is for)")

    def scheme_params(self) -> dict:
        names = ("gamma", "delta", "seeding", "context_width") if self.scheme == "kgw" else ("ngram_len", "depth")
        other = ("ngram_len", "depth") if self.scheme == "kgw" else ("gamma", "delta", "seeding", "context_width")
        given = [n for n in other if getattr(self, n) is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: not a parameter of the {self.scheme} scheme")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


@dataclass
class DetectArguments:
    key: list[str] = field(default_factory=list, metadata={"help": "key file(s); several keys attribute a text to one of them"})
    tokenizer: str = field(default=None, metadata={"help": "tokenizer directory (a model directory works too; weights are never read)"})
    prompt: str = field(default=None, metadata={"help": "prompt that precedes every text: used as context, never scored"})

    def __post_init__(self):
        if not self.key:
            raise ValueError("key: required (a key file written by 'mintline watermark keygen')")
        if not self.tokenizer:
            raise ValueError("tokenizer: required (the directory holding tokenizer.json)")


def make_parser(subparsers: argparse._SubParsersAction | None = None):
    from mintline.argparsing import MintlineParser

    description = "Keyed watermarks: make keys, detect marked text without the model, evaluate robustness, distill the mark into weights."
    if subparsers is None:
        parser = MintlineParser(None, prog="mintline watermark", description=description)
    else:
        parser = subparsers.add_parser("watermark", help="watermark keys, detection, evaluation, distillation", description=description)
    verbs = parser.add_subparsers(parser_class=MintlineParser, title="verbs", metavar="{keygen,detect,evaluate,distill}")

    keygen = verbs.add_parser(
        "keygen",
        help="make a watermark key for a tokenizer",
        description="Write a key file (mode 0600): a 256-bit secret, the scheme and its parameters, and the tokenizer's digest. Prints the public key id.",
        dataclass_types=(KeygenArguments,),
    )
    keygen.set_defaults(handler=keygen_main)

    detect = verbs.add_parser(
        "detect",
        help="detect the watermark in text files (key + tokenizer only)",
        description="Score each FILE (or - for stdin): tokens scored, green count, z-score, exact binomial p-value, verdict at --fpr.",
        dataclass_types=(DetectArguments, DetectionConfig),
    )
    detect.add_argument("files", nargs="+", metavar="FILE", help="text files, .jsonl files of texts, or - for stdin")
    detect.set_defaults(handler=detect_main)

    return parser


def keygen_main(args: KeygenArguments, options: argparse.Namespace) -> CommandResult:
    from watermark.keys import generate_key, load_key

    try:
        params = args.scheme_params()
    except ValueError as exc:
        from watermark.errors import ConfigError

        raise ConfigError(str(exc)) from None
    out = Path(args.out) if args.out else Path(args.run_dir) / "watermark" / "key.json"
    key_id = generate_key(args.tokenizer, out, scheme=args.scheme, overwrite=args.overwrite, **params)
    info = load_key(out).public_info()
    data = {"key_id": key_id, "key_file": os.fspath(out), "scheme": info["scheme"], "params": info["params"],
            "tokenizer_digest": info["tokenizer"]["digest"]}
    text = format_key_values(data) + f"\n(publish the key id; keep {out} secret: anyone holding it can detect and forge the mark)"
    return CommandResult(data=data, text=text)


def read_inputs(paths: list[str]) -> list[tuple[str, str, str | None]]:
    """(source, text, prompt) for every input; empty, missing or non-UTF-8 input is an error naming it."""
    items: list[tuple[str, str, str | None]] = []
    for name in paths:
        if name == "-":
            raw = sys.stdin.buffer.read()
            source = "<stdin>"
        else:
            try:
                raw = Path(name).read_bytes()
            except FileNotFoundError:
                raise InputTextError(f"{name}: no such file") from None
            except IsADirectoryError:
                raise InputTextError(f"{name}: is a directory, not a text file") from None
            except OSError as exc:
                raise InputTextError(f"{name}: cannot read ({exc.strerror})") from None
            source = name
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputTextError(f"{source}: not UTF-8 text (invalid byte at offset {exc.start})") from None
        if not text.strip():
            raise InputTextError(f"{source}: empty input; nothing to detect")
        if name.endswith(".jsonl"):
            items.extend(_jsonl_items(source, text))
        else:
            items.append((source, text, None))
    return items


def _jsonl_items(source: str, text: str) -> list[tuple[str, str, str | None]]:
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputTextError(f"{source} line {number}: invalid JSON ({exc.msg})") from None
        body = record.get("text", record.get("completion")) if isinstance(record, dict) else None
        if not isinstance(body, str) or not body.strip():
            raise InputTextError(f"{source} line {number}: needs a non-empty 'text' or 'completion' string")
        prompt = record.get("prompt") if "completion" in record and "text" not in record else None
        items.append((f"{source}:{number}", body, prompt if isinstance(prompt, str) else None))
    if not items:
        raise InputTextError(f"{source}: empty input; no texts in the JSON Lines file")
    return items


def detect_main(args: DetectArguments, config: DetectionConfig, options: argparse.Namespace) -> CommandResult | None:
    from watermark.detect import Detector, summarize
    from watermark.keys import load_keys

    keys, _ = load_keys(args.key, args.tokenizer)  # key and tokenizer problems surface before reading input
    items = read_inputs(options.files)
    detector = Detector(keys, args.tokenizer, config)
    prompts = [prompt if prompt is not None else args.prompt for _, _, prompt in items]
    results = detector.detect_texts([t for _, t, _ in items], prompts=prompts, sources=[s for s, _, _ in items])
    if options.json:
        # one object per input (JSON Lines), so a stream of texts maps line for line
        for result in results:
            sys.stdout.write(json.dumps(result.to_dict()) + "\n")
        sys.stdout.flush()
        return None
    rows = [
        {
            "source": r.source,
            "verdict": r.verdict,
            "z": round(r.z_score, 2),
            "p_value": r.p_value,
            "scored": r.num_tokens_scored,
            "green": r.green_count,
            "key": r.key_id,
        }
        for r in results
    ]
    text = format_table(rows)
    for r in results:
        for span in r.spans:
            text += f"\n  {r.source}: marked span chars {span.get('start_char')}-{span.get('end_char')} (z {span['z_score']:.1f})"
    summary = summarize(results)
    text += f"\n{summary['watermarked']} watermarked, {summary['not watermarked']} not, {summary['insufficient evidence']} insufficient evidence (fpr {config.fpr:g}, {len(keys)} key(s))"
    return CommandResult(data={"results": [r.to_dict() for r in results], **summary}, text=text)


if __name__ == "__main__":
    from mintline.cli import main

    raise SystemExit(main(["watermark", *sys.argv[1:]]))
