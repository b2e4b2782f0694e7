"""Preference pairs: what annotators are asked to compare, and the JSONL file that carries them.

A pair file holds one JSON object per line with `prompt`, `response_a`, `response_b` and,
optionally, `pair_id`, `model`, `predicted`, `confidence` and `metadata`. TRL preference rows
(`prompt`, `chosen`, `rejected`) are read too: `chosen` becomes response A and the row's own
verdict is kept in `metadata["trl_chosen"]`, so a re-labelled TRL file is still traceable.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from annotation.atomic import atomic_text_writer
from annotation.errors import InvalidPairError, PairsFileError

PAIR_FIELDS = ("prompt", "response_a", "response_b", "pair_id", "model", "predicted", "confidence", "metadata")
SIDES = ("a", "b")
# Tolerance on confidence bounds: reward models compute sigmoid(x) in float32.
_EPS = 1e-6


def pair_digest(prompt: str, response_a: str, response_b: str) -> str:
    """Stable id of a pair: its content, so the same comparison always gets the same id."""
    blob = json.dumps([prompt, response_a, response_b], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


@dataclass
class PreferencePair:
    prompt: str
    response_a: str
    response_b: str
    pair_id: str = ""  # stable: if empty, sha256 of (prompt, response_a, response_b)[:16]
    model: str = ""  # id of the generating model
    predicted: str | None = None  # "a" | "b": the reward model's preferred response (original order)
    confidence: float | None = None  # the reward model's P(predicted is better), in [0.5, 1]
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("prompt", "response_a", "response_b"):
            if not isinstance(getattr(self, name), str):
                raise InvalidPairError(f"{name}: must be a string, got {type(getattr(self, name)).__name__}")
        if not self.pair_id:
            self.pair_id = pair_digest(self.prompt, self.response_a, self.response_b)
        self.pair_id = str(self.pair_id)
        self.model = "" if self.model is None else str(self.model)
        if self.predicted is not None:
            self.predicted = str(self.predicted).lower()
            if self.predicted not in SIDES:
                raise InvalidPairError(f"predicted: must be 'a' or 'b', got {self.predicted!r}")
        if self.confidence is not None:
            try:
                self.confidence = float(self.confidence)
            except (TypeError, ValueError):
                raise InvalidPairError(f"confidence: must be a number in [0.5, 1], got {self.confidence!r}") from None
            if not (0.5 - _EPS <= self.confidence <= 1 + _EPS):
                raise InvalidPairError(
                    f"confidence: must be in [0.5, 1] (P(predicted is better)), got {self.confidence}"
                )
            self.confidence = min(1.0, max(0.5, self.confidence))
            if self.predicted is None:
                raise InvalidPairError("confidence: given without 'predicted' (which response it is about)")
        if self.metadata is None:
            self.metadata = {}
        if not isinstance(self.metadata, dict):
            raise InvalidPairError(f"metadata: must be an object, got {type(self.metadata).__name__}")

    def to_dict(self) -> dict:
        return asdict(self)


def pair_from_row(row: dict) -> PreferencePair:
    """One JSON object (native or TRL layout) as a PreferencePair; raises InvalidPairError."""
    if not isinstance(row, dict):
        raise InvalidPairError(f"expected a JSON object, got {type(row).__name__}")
    if "response_a" in row or "response_b" in row:
        for name in ("prompt", "response_a", "response_b"):
            if name not in row:
                raise InvalidPairError(f"missing field {name!r}")
        known = {k: row[k] for k in PAIR_FIELDS if k in row}
        extra = {k: v for k, v in row.items() if k not in PAIR_FIELDS}
        metadata = dict(known.pop("metadata", None) or {})
        metadata.update(extra)  # unknown keys are kept as provenance, not dropped
        return PreferencePair(**known, metadata=metadata)
    if "chosen" in row or "rejected" in row:
        for name in ("prompt", "chosen", "rejected"):
            if name not in row:
                raise InvalidPairError(f"missing field {name!r} (TRL preference rows need prompt, chosen, rejected)")
        metadata = {k: v for k, v in row.items() if k not in ("prompt", "chosen", "rejected")}
        metadata["trl_chosen"] = "a"
        return PreferencePair(
            prompt=row["prompt"],
            response_a=row["chosen"],
            response_b=row["rejected"],
            pair_id=str(row.get("pair_id") or ""),
            model=str(row.get("model") or ""),
            metadata=metadata,
        )
    raise InvalidPairError("missing fields: need prompt, response_a, response_b (or TRL's prompt, chosen, rejected)")


def read_pairs_jsonl(path: str | os.PathLike) -> list[PreferencePair]:
    path = Path(path)
    try:
        handle = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise PairsFileError(f"no such pairs file: {path}") from None
    except OSError as exc:
        raise PairsFileError(f"cannot read pairs file {path}: {exc.strerror}") from None
    pairs: list[PreferencePair] = []
    first_line: dict[str, tuple[int, PreferencePair]] = {}
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    pair = pair_from_row(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise PairsFileError(f"{path} line {number}: not valid JSON ({exc.msg})") from None
                except InvalidPairError as exc:
                    raise PairsFileError(f"{path} line {number}: {exc}") from None
                seen = first_line.get(pair.pair_id)
                if seen is not None:
                    earlier_line, earlier = seen
                    if (earlier.prompt, earlier.response_a, earlier.response_b) != (
                        pair.prompt,
                        pair.response_a,
                        pair.response_b,
                    ):
                        raise PairsFileError(
                            f"{path} line {number}: pair_id {pair.pair_id!r} already names a different pair on line {earlier_line}"
                        )
                    continue  # the same pair twice: once is enough
                first_line[pair.pair_id] = (number, pair)
                pairs.append(pair)
        except UnicodeDecodeError:
            raise PairsFileError(f"{path} is not UTF-8 text") from None
    return pairs


def write_pairs_jsonl(path: str | os.PathLike, pairs) -> None:
    """Write pairs atomically (temp file + rename): a reader never sees half a file."""
    with atomic_text_writer(path) as handle:
        for pair in pairs:
            handle.write(json.dumps(pair.to_dict(), ensure_ascii=False) + "\n")
