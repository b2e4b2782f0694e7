"""The manifest: every file's SHA-256, as an OpenSSF model-signing v1.0 in-toto statement.

The statement (the DSSE payload) is exactly what `model_signing` 1.1.1 writes and reads:

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": MODEL_NAME, "digest": {"sha256": ROOT}}],
     "predicateType": "https://model_signing/signature/v1.0",
     "predicate": {"serialization": {"method": "files", "hash_type": "sha256",
                                     "allow_symlinks": false, "ignore_paths": ["model.sig"]},
                   "resources": [{"name": "config.json", "algorithm": "sha256", "digest": HEX}, ...]}}

ROOT is SHA-256 over the raw bytes of the resource digests, concatenated in the order the
resources are listed, which is model-signing's canonical order (by path components). This
ROOT is also the bundle's identity: adapters record their base bundle by it.

`parse_statement` is strict and reports every problem instead of stopping at the first.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from release.serialization import SIGNATURE_NAME, is_ignored, name_problem, sort_key

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
METHOD = "files"
HASH_TYPE = "sha256"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Resource:
    name: str
    digest: str  # lowercase hex
    algorithm: str = HASH_TYPE


@dataclass
class Manifest:
    model_name: str
    resources: list[Resource]
    allow_symlinks: bool = False
    ignore_paths: list[str] = field(default_factory=lambda: [SIGNATURE_NAME])
    hash_type: str = HASH_TYPE

    @classmethod
    def from_digests(cls, model_name: str, digests: dict[str, str], **kwargs) -> Manifest:
        ordered = sorted(digests, key=sort_key)
        return cls(model_name, [Resource(name, digests[name]) for name in ordered], **kwargs)

    def digests(self) -> dict[str, str]:
        return {resource.name: resource.digest for resource in self.resources}

    @property
    def root_digest(self) -> str:
        return root_digest(self.resources)

    def statement(self) -> dict:
        serialization = {"method": METHOD, "hash_type": self.hash_type, "allow_symlinks": self.allow_symlinks}
        if self.ignore_paths:
            serialization["ignore_paths"] = list(self.ignore_paths)
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": self.model_name, "digest": {"sha256": self.root_digest}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "serialization": serialization,
                "resources": [{"name": r.name, "algorithm": r.algorithm, "digest": r.digest} for r in self.resources],
            },
        }

    def payload(self) -> bytes:
        return json.dumps(self.statement(), indent=2).encode("utf-8")


def root_digest(resources: list[Resource]) -> str:
    hasher = hashlib.sha256()
    for resource in resources:
        hasher.update(bytes.fromhex(resource.digest))
    return hasher.hexdigest()


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs):
    keys = [key for key, _ in pairs]
    duplicated = sorted({key for key in keys if keys.count(key) > 1})
    if duplicated:
        raise _DuplicateKey(f"duplicate JSON key(s) {', '.join(map(repr, duplicated))}")
    return dict(pairs)


def parse_statement(payload: bytes) -> tuple[Manifest | None, list[str]]:
    """The manifest a signed payload describes, and every reason it cannot be trusted."""
    try:
        document = json.loads(payload.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as exc:
        return None, [f"signed statement has {exc}"]
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [f"signed statement is not valid JSON ({exc})"]
    if not isinstance(document, dict):
        return None, ["signed statement is not a JSON object"]
    problems: list[str] = []
    if document.get("_type") != STATEMENT_TYPE:
        problems.append(f"statement type is {document.get('_type')!r}, expected {STATEMENT_TYPE!r}")
    if document.get("predicateType") != PREDICATE_TYPE:
        problems.append(f"predicate type is {document.get('predicateType')!r}, expected {PREDICATE_TYPE!r}")
    model_name, subject_digest = _subject(document.get("subject"), problems)
    predicate = document.get("predicate")
    if not isinstance(predicate, dict):
        problems.append("statement has no predicate object")
        return None, problems
    allow_symlinks, ignore_paths, hash_type = _serialization(predicate.get("serialization"), problems)
    resources = _resources(predicate.get("resources"), ignore_paths, problems)
    if resources is None:
        return None, problems
    if subject_digest is not None and root_digest(resources) != subject_digest:
        problems.append("subject digest does not match the listed file digests (manifest inconsistent)")
    manifest = Manifest(model_name or "", resources, allow_symlinks, ignore_paths, hash_type)
    return manifest, problems


def _subject(subjects, problems: list[str]) -> tuple[str | None, str | None]:
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        problems.append("statement must have exactly one subject")
        return None, None
    name = subjects[0].get("name")
    digest = (subjects[0].get("digest") or {}).get("sha256") if isinstance(subjects[0].get("digest"), dict) else None
    if not isinstance(name, str):
        problems.append("subject has no name")
        name = None
    if not isinstance(digest, str) or not _HEX64.match(digest):
        problems.append("subject has no valid sha256 digest")
        digest = None
    return name, digest


def _serialization(serialization, problems: list[str]) -> tuple[bool, list[str], str]:
    if not isinstance(serialization, dict):
        problems.append("predicate has no serialization description")
        return False, [SIGNATURE_NAME], HASH_TYPE
    method = serialization.get("method")
    if method != METHOD:
        problems.append(f"unsupported serialization method {method!r} (only {METHOD!r})")
    hash_type = serialization.get("hash_type")
    if hash_type != HASH_TYPE:
        problems.append(f"unknown hash algorithm {hash_type!r} in serialization (only {HASH_TYPE!r})")
    allow_symlinks = serialization.get("allow_symlinks")
    if not isinstance(allow_symlinks, bool):
        problems.append("serialization.allow_symlinks is not true/false")
        allow_symlinks = False
    ignore_paths = serialization.get("ignore_paths", [])
    if not isinstance(ignore_paths, list) or not all(isinstance(p, str) for p in ignore_paths):
        problems.append("serialization.ignore_paths is not a list of paths")
        ignore_paths = []
    clean = []
    for path in ignore_paths:
        problem = name_problem(path.rstrip("/") if path not in ("", "/") else path)
        if problem:
            problems.append(f"ignore_paths: {problem.replace('manifest entry', 'path')}")
        else:
            clean.append(path)
    return allow_symlinks, clean, hash_type if isinstance(hash_type, str) else HASH_TYPE


def _resources(resources, ignore_paths: list[str], problems: list[str]) -> list[Resource] | None:
    if not isinstance(resources, list):
        problems.append("predicate has no list of resources")
        return None
    if not resources:
        problems.append("manifest lists no files")
    parsed: list[Resource] = []
    seen: set[str] = set()
    for index, item in enumerate(resources):
        if not isinstance(item, dict):
            problems.append(f"resource #{index} is not an object")
            continue
        name, algorithm, digest = item.get("name"), item.get("algorithm"), item.get("digest")
        problem = name_problem(name)
        if problem:
            problems.append(problem)
            continue
        if name in seen:
            problems.append(f"duplicate manifest entry {name!r}")
            continue
        seen.add(name)
        if algorithm != HASH_TYPE:
            problems.append(f"unknown digest algorithm {algorithm!r} for {name!r} (only {HASH_TYPE!r})")
            continue
        if not isinstance(digest, str) or not _HEX64.match(digest):
            problems.append(f"malformed sha256 digest for {name!r}")
            continue
        if is_ignored(name, ignore_paths):
            problems.append(f"manifest entry {name!r} is also in ignore_paths")
            continue
        parsed.append(Resource(name, digest, algorithm))
    return parsed
