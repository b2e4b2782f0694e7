"""Sign a manifest: DSSE envelope in a Sigstore bundle (`model.sig`), as OpenSSF model-signing does.

The bytes that are signed are the DSSE pre-authentication encoding (PAE) of the statement:

    "DSSEv1" SP len(type) SP type SP len(payload) SP payload

with lengths in bytes, as ASCII decimals (https://github.com/secure-systems-lab/dsse, v1.0.0).
ECDSA signatures are DER-encoded over SHA-256 (P-256; SHA-384 for P-384, SHA-512 for P-521),
which is what `model_signing verify key` checks; Ed25519 signs the PAE bytes directly.

The Sigstore bundle (media type v0.3) carries no certificate and no transparency-log entry,
only `verificationMaterial.publicKey.hint` = SHA-256 of the public key's SubjectPublicKeyInfo
PEM text, hex: model-signing compares it with the key it is given before checking the
signature. (mintline's own key *fingerprint* is SHA-256 of the DER form; both are printed.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from release import keys
from release.atomic import atomic_file
from release.errors import ModelDirectoryError
from release.hashing import HashJob, hash_files
from release.manifest import PAYLOAD_TYPE, Manifest
from release.serialization import SIGNATURE_NAME, list_files

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def pae(payload: bytes, payload_type: str = PAYLOAD_TYPE) -> bytes:
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def public_key_hint(public_key) -> str:
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def ecdsa_hash(public_key) -> hashes.HashAlgorithm:
    size = public_key.curve.key_size
    return {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[size]


def sign_bytes(private_key, message: bytes) -> bytes:
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(message)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return private_key.sign(message, ec.ECDSA(ecdsa_hash(private_key.public_key())))
    raise TypeError(f"unsupported private key type {type(private_key).__name__}")


def signature_bundle(private_key, payload: bytes) -> dict:
    """The Sigstore bundle (as a dict) holding `payload` signed with `private_key`."""
    signature = sign_bytes(private_key, pae(payload))
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": public_key_hint(private_key.public_key())}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": ""}],
        },
    }


def write_signature(path: Path, bundle: dict) -> None:
    text = json.dumps(bundle, separators=(",", ":"))
    with atomic_file(path) as handle:
        handle.write(text.encode("utf-8"))


def sign_manifest(manifest: Manifest, private_key, directory: Path) -> Path:
    path = Path(directory) / SIGNATURE_NAME
    write_signature(path, signature_bundle(private_key, manifest.payload()))
    return path


def sign_directory(
    directory: str | os.PathLike,
    key_path: str | os.PathLike,
    *,
    passphrase: str | bytes | None = None,
    model_name: str | None = None,
    allow_symlinks: bool = False,
    workers: int | None = None,
    known_digests: dict[str, str] | None = None,
    private_key=None,
    progress="signing",
) -> dict:
    """Hash every file under `directory` and write `directory/model.sig`; return the figures.

    `known_digests` lets a caller that has just written (and hashed) some files skip reading
    them again; every file on disk must still be either known or hashed here.
    """
    directory = Path(directory)
    started = time.perf_counter()
    if private_key is None:
        private_key = keys.load_private_key(key_path, passphrase)  # fail on a bad passphrase before hashing
    listing = list_files(directory, allow_symlinks=allow_symlinks)
    if listing.problems:
        raise ModelDirectoryError(f"{directory}: " + "; ".join(listing.problems[:3]))
    known = known_digests or {}
    jobs = [HashJob(e.name, e.path, e.size) for e in listing.files if e.name not in known]
    report = hash_files(jobs, workers=workers, follow_symlinks=allow_symlinks, progress=progress)
    if report.errors:
        name, why = next(iter(report.errors.items()))
        raise ModelDirectoryError(f"{directory}: cannot read {name}: {why}")
    digests = {e.name: known.get(e.name) or report.digests[e.name] for e in listing.files}
    name = model_name or directory.resolve().name
    manifest = Manifest.from_digests(name, digests, allow_symlinks=allow_symlinks)
    sign_manifest(manifest, private_key, directory)
    public_key = private_key.public_key()
    return {
        "files_signed": len(digests),
        "bytes_signed": sum(e.size for e in listing.files),
        **report.figures(),
        "manifest_digest": "sha256:" + manifest.root_digest,
        "key_fingerprint": keys.fingerprint(public_key),
        "key_algorithm": keys.algorithm_name(public_key),
        "sign_seconds": round(time.perf_counter() - started, 3),
    }
