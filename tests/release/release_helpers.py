"""Helpers shared by the release tests (imported as a plain module: tests/ is not a package)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path


def key_file(prefix: Path, suffix: str) -> Path:
    return Path(f"{prefix}{suffix}")


def read_statement(bundle: Path) -> dict:
    envelope = json.loads((bundle / "model.sig").read_text())["dsseEnvelope"]
    return json.loads(base64.b64decode(envelope["payload"]))


def resign(bundle: Path, key_path: Path, statement: dict, *, fix_subject: bool = True) -> None:
    """Sign a (possibly forged) statement with a real key, as a malicious or careless signer would."""
    from release import keys, signing

    if fix_subject:
        root = hashlib.sha256()
        for resource in statement["predicate"]["resources"]:
            try:
                root.update(bytes.fromhex(resource["digest"]))
            except (ValueError, KeyError):
                pass
        statement["subject"][0]["digest"]["sha256"] = root.hexdigest()
    private_key = keys.load_private_key(key_path)
    payload = json.dumps(statement, indent=2).encode()
    signing.write_signature(bundle / "model.sig", signing.signature_bundle(private_key, payload))


def resign_files(bundle: Path, key_path: Path) -> None:
    """Re-sign the bundle exactly as it is now on disk (a signer who approved the change)."""
    from release.signing import sign_directory

    sign_directory(bundle, key_path, model_name=read_statement(bundle)["subject"][0]["name"])
