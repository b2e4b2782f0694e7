"""Which files of a model directory go into a release, and what they say about the model.

Only the files a user needs to load the model are released (an allowlist): safetensors
weights and their index, `config.json`, `generation_config.json`, tokenizer files, chat
templates, and PEFT adapter files, in any sub-directory. Pickle weights (`*.bin`, `*.pt`,
`*.pth`, `*.ckpt`, `*.pkl`) can run code when loaded and are refused outright, with the
command that converts them. Other files (trainer state, optimizer state, logs, key files) are
left out and reported. Each safetensors file's header is parsed, so a renamed pickle or a
truncated file is refused before it is signed.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

from release.errors import ModelDirectoryError

ALLOWED_NAMES = {
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "chat_template.jinja",
    "chat_template.json",
    "adapter_config.json",
    "model.safetensors.index.json",
}
ALLOWED_PATTERNS = (re.compile(r".+\.safetensors$"), re.compile(r".+\.safetensors\.index\.json$"))
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# Trainer's own pickles (not weights): left out like any other non-model file.
TRAINER_PICKLES = {"training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth"}
MAX_HEADER_BYTES = 100 << 20  # the safetensors format's own limit

CONVERT_HINT = (
    'convert it first: python -c "from transformers import AutoModelForCausalLM as M; '
    "M.from_pretrained('DIR').save_pretrained('DIR_safetensors')\" "
    "(for a PEFT adapter: PeftModel.from_pretrained(base, 'DIR').save_pretrained('OUT', safe_serialization=True))"
)


@dataclass
class ModelFiles:
    root: Path
    files: list[tuple[str, Path, int]] = field(default_factory=list)  # (relative name, path, size)
    skipped: list[str] = field(default_factory=list)
    parameters: int = 0
    is_adapter: bool = False
    config: dict = field(default_factory=dict)
    adapter_config: dict = field(default_factory=dict)
    dtypes: list[str] = field(default_factory=list)


def select_model_files(model_dir: str | os.PathLike, *, allow_symlinks: bool = False) -> ModelFiles:
    root = Path(model_dir)
    if not root.is_dir():
        raise ModelDirectoryError(f"{root}: no such model directory")
    selected = ModelFiles(root=root)
    pickles: list[str] = []
    for name, path in _walk(root, allow_symlinks):
        base = name.rsplit("/", 1)[-1]
        if base.endswith(PICKLE_SUFFIXES) and base not in TRAINER_PICKLES:
            pickles.append(name)
        elif base in ALLOWED_NAMES or any(p.match(base) for p in ALLOWED_PATTERNS):
            selected.files.append((name, path, path.stat().st_size))
        else:
            selected.skipped.append(name)
    if pickles:
        raise ModelDirectoryError(
            f"{root}: pickle weights are not released ({', '.join(pickles[:3])}): they can run code when loaded; {CONVERT_HINT}"
        )
    weights = [(n, p) for n, p, _ in selected.files if n.endswith(".safetensors")]
    if not weights:
        raise ModelDirectoryError(
            f"{root}: no safetensors weights found (expected model.safetensors or adapter_model.safetensors)"
        )
    dtypes = set()
    for name, path in weights:
        count, kinds = safetensors_parameters(path, name)
        selected.parameters += count
        dtypes |= kinds
    selected.dtypes = sorted(dtypes)
    selected.config = _json_file(root / "config.json")
    selected.adapter_config = _json_file(root / "adapter_config.json")
    selected.is_adapter = bool(selected.adapter_config)
    if not selected.config and not selected.is_adapter:
        raise ModelDirectoryError(
            f"{root}: neither config.json nor adapter_config.json: not a save_pretrained directory"
        )
    return selected


def safetensors_parameters(path: Path, name: str) -> tuple[int, set[str]]:
    """(number of elements, dtypes) from a safetensors header; refuses anything else."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise ModelDirectoryError(f"{name}: too short to be a safetensors file")
            (length,) = struct.unpack("<Q", prefix)
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise ModelDirectoryError(f"{name}: not a safetensors file (header length {length} is impossible)")
            header = json.loads(handle.read(length).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelDirectoryError(f"{name}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise ModelDirectoryError(f"{name}: not a safetensors file (header is not a JSON object)")
    count, kinds, end = 0, set(), 0
    for tensor, info in header.items():
        if tensor == "__metadata__":
            continue
        try:
            count += math.prod(int(d) for d in info["shape"])
            kinds.add(str(info["dtype"]))
            end = max(end, int(info["data_offsets"][1]))
        except (KeyError, TypeError, ValueError, IndexError):
            raise ModelDirectoryError(f"{name}: malformed safetensors header entry {tensor!r}") from None
    if 8 + length + end > size:
        raise ModelDirectoryError(f"{name}: truncated safetensors file (tensors end past the end of the file)")
    return count, kinds


def _walk(root: Path, allow_symlinks: bool):
    for directory, subdirs, files in os.walk(root, followlinks=False):
        subdirs.sort()
        rel_dir = Path(directory).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for sub in list(subdirs):
            if sub.startswith(".") or sub.startswith("checkpoint-"):
                subdirs.remove(sub)  # hidden dirs (.git, .cache) and Trainer checkpoints are never released
            elif os.path.islink(os.path.join(directory, sub)):
                raise ModelDirectoryError(f"{root}: {prefix}{sub} is a symlinked directory; copy the real files in")
        for base in sorted(files):
            path = Path(directory) / base
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                if not allow_symlinks:
                    raise ModelDirectoryError(
                        f"{root}: {prefix}{base} is a symlink; refused unless allow_symlinks (then its target's bytes are copied)"
                    )
                if not path.is_file():
                    raise ModelDirectoryError(f"{root}: {prefix}{base} is a symlink to something that is not a file")
            elif not stat.S_ISREG(mode):
                raise ModelDirectoryError(f"{root}: {prefix}{base} is not a regular file")
            yield prefix + base, path


def _json_file(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDirectoryError(f"{path}: not valid JSON ({exc})") from None
    return value if isinstance(value, dict) else {}
