"""Verify a bundle: the signature for a given public key, every file against the manifest, and
the release policy (MIT LICENSE, MIT card, adapter → base chain).

Fails closed: any doubt is a reason, and `ok` is true only when there are none. Nothing that is
found in the bundle raises; only unusable *inputs* (no such bundle directory, no usable public
key) raise typed errors, which the CLI reports as usage errors (exit 2).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from release import archive, card, keys, license, provenance
from release.errors import ReleaseError
from release.hashing import HashJob, hash_files
from release.manifest import PAYLOAD_TYPE, Manifest, parse_statement
from release.serialization import SIGNATURE_NAME, is_ignored, list_files
from release.signing import BUNDLE_MEDIA_TYPE, ecdsa_hash, pae, public_key_hint

# Bigger than any honest model.sig (one line per file): refuse to parse a planted giant file.
MAX_SIGNATURE_BYTES = 64 << 20


@dataclass
class VerificationResult:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    manifest: Manifest | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("manifest", None)
        return data


def verify_bundle(
    bundle: str | os.PathLike,
    pubkey_path: str | os.PathLike,
    *,
    base: str | os.PathLike | None = None,
    base_pubkey_path: str | os.PathLike | None = None,
    allow_symlinks: bool = False,
    workers: int | None = None,
) -> VerificationResult:
    """Signature + files (see `verify_directory`), then the release policy and the base chain.

    `bundle` is a bundle directory or a tar of one (`archive.write_tar`).
    """
    if archive.is_tar(bundle):
        with archive.extracted(bundle) as (directory, problems):
            if directory is None:
                keys.load_public_key(pubkey_path)  # a usage error still wins over a bad tar
                return VerificationResult(ok=False, reasons=problems, figures={"bundle": os.fspath(bundle)})
            result = verify_bundle(
                directory,
                pubkey_path,
                base=base,
                base_pubkey_path=base_pubkey_path,
                allow_symlinks=allow_symlinks,
                workers=workers,
            )
            result.figures["bundle"] = os.fspath(bundle)
            return result
    result = verify_directory(bundle, pubkey_path, allow_symlinks=allow_symlinks, workers=workers)
    bundle = Path(bundle)
    result.reasons.extend(_policy_reasons(bundle, result))
    recorded_base = provenance.recorded_base_digest(_read_small(bundle / provenance.PROVENANCE_NAME) or "")
    if recorded_base:
        result.figures["base_manifest_digest_recorded"] = recorded_base
    if base is not None:
        base_result = verify_bundle(
            base, base_pubkey_path or pubkey_path, allow_symlinks=allow_symlinks, workers=workers
        )
        result.reasons.extend(f"base bundle: {reason}" for reason in base_result.reasons)
        actual = base_result.figures.get("manifest_digest")
        result.figures["base_manifest_digest"] = actual
        if recorded_base is None:
            result.reasons.append("--base given but this bundle records no base bundle (it is not an adapter bundle)")
        elif actual != recorded_base:
            result.reasons.append(
                f"base bundle mismatch: this adapter was built on {recorded_base}, the given base is {actual}"
            )
        result.figures["base_checked"] = True
    else:
        result.figures["base_checked"] = False
    result.ok = not result.reasons
    return result


def verify_directory(
    directory: str | os.PathLike,
    pubkey_path: str | os.PathLike,
    *,
    allow_symlinks: bool = False,
    workers: int | None = None,
    progress="verifying",
) -> VerificationResult:
    """Check `directory/model.sig` against the public key and every file against its manifest."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ReleaseError(f"{directory}: no such bundle directory")
    public_key = keys.load_public_key(pubkey_path)
    started = time.perf_counter()
    reasons: list[str] = []
    figures = {
        "bundle": os.fspath(directory),
        "key_fingerprint": keys.fingerprint(public_key),
        "key_algorithm": keys.algorithm_name(public_key),
    }
    payload, signatures, envelope_reasons = read_envelope(directory / SIGNATURE_NAME, public_key)
    reasons.extend(envelope_reasons)
    manifest = None
    if payload is not None:
        if not any(_signature_valid(public_key, pae(payload), sig) for sig in signatures):
            reasons.append(
                f"signature does not verify with this public key (fingerprint {figures['key_fingerprint'][:16]}…)"
            )
        manifest, manifest_reasons = parse_statement(payload)
        reasons.extend(manifest_reasons)
    if manifest is not None:
        figures["manifest_digest"] = "sha256:" + manifest.root_digest
        figures["model_name"] = manifest.model_name
        reasons.extend(_compare_files(directory, manifest, allow_symlinks, workers, progress, figures))
    figures["verify_seconds"] = round(time.perf_counter() - started, 3)
    return VerificationResult(ok=not reasons, reasons=reasons, figures=figures, manifest=manifest)


def read_envelope(path: Path, public_key) -> tuple[bytes | None, list[bytes], list[str]]:
    """(payload, signatures, problems) from a Sigstore-bundle `model.sig` (key hint checked if a key is given)."""
    try:
        size = path.lstat().st_size
        if path.is_symlink() or not path.is_file():
            return None, [], [f"{SIGNATURE_NAME} is not a regular file"]
        if size > MAX_SIGNATURE_BYTES:
            return None, [], [f"{SIGNATURE_NAME} is implausibly large ({size} bytes)"]
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [], [f"{SIGNATURE_NAME} is missing: the bundle is not signed"]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [], [f"cannot read {SIGNATURE_NAME}: {exc}"]
    try:
        bundle = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [], [f"{SIGNATURE_NAME} is not valid JSON (truncated or malformed: {exc.msg} at char {exc.pos})"]
    if not isinstance(bundle, dict):
        return None, [], [f"{SIGNATURE_NAME} is not a Sigstore bundle (not a JSON object)"]
    problems = []
    if bundle.get("mediaType") != BUNDLE_MEDIA_TYPE:
        problems.append(f"{SIGNATURE_NAME} media type is {bundle.get('mediaType')!r}, expected {BUNDLE_MEDIA_TYPE!r}")
    hint = (
        ((bundle.get("verificationMaterial") or {}).get("publicKey") or {}).get("hint")
        if isinstance(bundle.get("verificationMaterial"), dict)
        else None
    )
    if public_key is not None and hint and hint != public_key_hint(public_key):
        problems.append("signed with a different key: the signature's key hint does not match this public key")
    envelope = bundle.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        return None, [], problems + [f"{SIGNATURE_NAME} has no DSSE envelope"]
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        problems.append(f"DSSE payload type is {envelope.get('payloadType')!r}, expected {PAYLOAD_TYPE!r}")
    payload = _b64(envelope.get("payload"))
    if payload is None:
        return None, [], problems + ["DSSE payload is missing or not valid base64"]
    raw_signatures = envelope.get("signatures")
    signatures = []
    if isinstance(raw_signatures, list):
        for item in raw_signatures:
            decoded = _b64(item.get("sig")) if isinstance(item, dict) else None
            if decoded:
                signatures.append(decoded)
    if not signatures:
        problems.append("DSSE envelope holds no well-formed signature")
    return payload, signatures, problems


def _b64(value) -> bytes | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _signature_valid(public_key, message: bytes, signature: bytes) -> bool:
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, message)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, message, ec.ECDSA(ecdsa_hash(public_key)))
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def _compare_files(directory: Path, manifest: Manifest, allow_symlinks: bool, workers, progress, figures) -> list[str]:
    ignore = sorted(set(manifest.ignore_paths) | {SIGNATURE_NAME})
    listing = list_files(directory, allow_symlinks=allow_symlinks, ignore_paths=ignore)
    reasons = list(listing.problems)
    extra_ignored = [n for n in listing.ignored if n != SIGNATURE_NAME]
    if extra_ignored:
        figures["ignored_by_signature"] = extra_ignored
    report = hash_files(
        [HashJob(e.name, e.path, e.size) for e in listing.files],
        workers=workers,
        follow_symlinks=allow_symlinks,
        progress=progress,
    )
    reasons.extend(f"cannot read {name}: {why}" for name, why in sorted(report.errors.items()))
    expected = manifest.digests()
    actual = report.digests
    missing = [n for n in expected if n not in actual and n not in report.errors]
    extra = [n for n in actual if n not in expected and not is_ignored(n, ignore)]
    # A missing file whose exact bytes turn up under another name was renamed: say so.
    by_digest = {}
    for name in extra:
        by_digest.setdefault(actual[name], []).append(name)
    for name in missing:
        moved = by_digest.get(expected[name])
        if moved:
            reasons.append(f"renamed: {name} -> {moved.pop(0)}")
        else:
            reasons.append(f"missing file: {name}")
    reasons.extend(f"extra file not in the manifest: {n}" for names in by_digest.values() for n in names)
    reasons.extend(
        f"changed: {n} (sha256 differs from the manifest)"
        for n in expected
        if n in actual and actual[n] != expected[n]
    )
    figures.update(report.figures())
    figures["files_in_manifest"] = len(expected)
    return reasons


def _policy_reasons(bundle: Path, result: VerificationResult) -> list[str]:
    reasons = []
    license_text = _read_small(bundle / "LICENSE")
    if license_text is None:
        reasons.append("LICENSE is missing (a release must carry the MIT licence)")
    else:
        problem = license.mit_problem(license_text)
        if problem:
            reasons.append(problem)
        elif result.manifest is not None and "LICENSE" not in result.manifest.digests():
            reasons.append("LICENSE is not covered by the signature")
    card_text = _read_small(bundle / card.CARD_NAME)
    if card_text is None:
        reasons.append(f"{card.CARD_NAME} model card is missing")
    else:
        declared = card.card_license(card_text)
        if declared != license.SPDX_ID.lower():
            reasons.append(f"model card licence is {declared!r}, not 'mit'")
    return reasons


def _read_small(path: Path, limit: int = 4 << 20) -> str | None:
    """Text of a small regular file in the bundle; None if absent, a symlink or unreadable."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > limit:
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
