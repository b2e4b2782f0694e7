"""Signing keys: generate, load, fingerprint (with the `cryptography` library).

* Private keys are PKCS#8 PEM, created with mode 0600 (never readable by others, not even for
  an instant: the file is created with that mode), optionally encrypted with a passphrase.
* Public keys are SubjectPublicKeyInfo PEM.
* The **fingerprint** (the key id mintline prints and records) is the SHA-256 of the DER
  encoding of the SubjectPublicKeyInfo, as hex. The OpenSSF model-signing "hint" stored in a
  signature is a different digest (SHA-256 of the PEM text); see `signing.public_key_hint`.

Ed25519 is the default. ECDSA P-256 exists because the stock model-signing verifier accepts
only NIST curves; P-384 and P-521 keys made elsewhere are accepted too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from release.atomic import atomic_file
from release.errors import KeyFileError

log = logging.getLogger("release")

ALGORITHMS = ("ed25519", "ecdsa-p256")
SUPPORTED_CURVES = ("secp256r1", "secp384r1", "secp521r1")
PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"


def key_paths(prefix: str | os.PathLike) -> tuple[Path, Path]:
    prefix = os.fspath(prefix)
    return Path(prefix + PRIVATE_SUFFIX), Path(prefix + PUBLIC_SUFFIX)


def generate_keypair(
    prefix: str | os.PathLike,
    algorithm: str = "ed25519",
    passphrase: str | bytes | None = None,
    *,
    overwrite: bool = False,
) -> str:
    """Write PREFIX.key (0600) and PREFIX.pub; return the public key's fingerprint."""
    if algorithm not in ALGORITHMS:
        raise KeyFileError(f"algorithm: {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
    private_path, public_path = key_paths(prefix)
    if not overwrite:
        for path in (private_path, public_path):
            if path.exists() or path.is_symlink():
                raise KeyFileError(
                    f"{path} already exists; choose another prefix, or --overwrite to replace the key pair"
                )
    if not private_path.parent.is_dir():
        raise KeyFileError(f"{private_path.parent}: no such directory")

    private_key = (
        ed25519.Ed25519PrivateKey.generate() if algorithm == "ed25519" else ec.generate_private_key(ec.SECP256R1())
    )
    if passphrase:
        secret = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
        encryption = serialization.BestAvailableEncryption(secret)
    else:
        encryption = serialization.NoEncryption()
    private_pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_atomically(private_path, private_pem, 0o600)
    _write_atomically(public_path, public_pem, 0o644)
    return fingerprint(private_key.public_key())


def fingerprint(public_key) -> str:
    """SHA-256 over the DER SubjectPublicKeyInfo, hex (64 characters)."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def load_private_key(path: str | os.PathLike, passphrase: str | bytes | None = None):
    path = Path(path)
    data = _read_key_file(path, "private key")
    if b"PRIVATE KEY" not in data:
        raise KeyFileError(f"{path}: not a PEM private key (is it the .pub file?)")
    _warn_if_readable_by_others(path)
    secret = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
    try:
        key = serialization.load_pem_private_key(data, password=secret or None)
    except TypeError as exc:
        # cryptography raises TypeError both for "encrypted but no password" and the reverse.
        if "encrypted" in str(exc).lower() and not secret:
            raise KeyFileError(f"{path}: the key is encrypted; give its passphrase (--passphrase_env VAR)") from None
        raise KeyFileError(f"{path}: the key is not encrypted but a passphrase was given") from None
    except ValueError as exc:
        if secret and b"ENCRYPTED" in data:
            raise KeyFileError(f"{path}: wrong passphrase for the encrypted key") from None
        raise KeyFileError(f"{path}: cannot read the private key ({_first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - unsupported key types surface as various errors
        raise KeyFileError(f"{path}: cannot read the private key ({_first_line(exc)})") from None
    check_supported(key.public_key(), path)
    return key


def load_public_key(path: str | os.PathLike):
    path = Path(path)
    data = _read_key_file(path, "public key")
    if b"PRIVATE KEY" in data:
        raise KeyFileError(f"{path}: this is a private key; verification needs only the .pub file")
    try:
        key = serialization.load_pem_public_key(data)
    except Exception as exc:  # noqa: BLE001 - malformed PEM raises ValueError or others
        raise KeyFileError(f"{path}: not a PEM public key ({_first_line(exc)})") from None
    check_supported(key, path)
    return key


def algorithm_name(public_key) -> str:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384", "secp521r1": "ecdsa-p521"}[public_key.curve.name]
    raise KeyFileError(f"unsupported key type {type(public_key).__name__}")


def check_supported(public_key, where: Path | str) -> None:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name in SUPPORTED_CURVES:
        return
    kind = getattr(getattr(public_key, "curve", None), "name", None) or type(public_key).__name__
    raise KeyFileError(f"{where}: unsupported key type {kind} (use Ed25519 or ECDSA P-256)")


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        if path.is_dir():
            raise KeyFileError(f"{path}: is a directory, expected a {what} file")
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such {what} file") from None
    except PermissionError:
        raise KeyFileError(f"{path}: permission denied reading the {what}") from None


def _warn_if_readable_by_others(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s: private key is readable by group/others (mode %o); chmod 600 it", path, mode)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    # the final mode at creation (the secret is never on disk with a wider one), then exactly it:
    # the umask may have narrowed a public key's 0644
    with atomic_file(path, mode) as handle:
        handle.write(data)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
