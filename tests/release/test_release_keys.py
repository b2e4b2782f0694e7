"""Signing keys: PEM files, 0600, fingerprint definition, passphrase encryption."""

from __future__ import annotations

import hashlib
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from release_helpers import key_file

from release.errors import KeyFileError
from release.keys import generate_keypair, load_private_key, load_public_key


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256"])
def test_keygen_writes_pem_pair_with_private_mode_0600(tmp_path, algorithm):
    fingerprint = generate_keypair(tmp_path / "k", algorithm)
    private, public = tmp_path / "k.key", tmp_path / "k.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    key = load_public_key(public)
    assert isinstance(key, ed25519.Ed25519PublicKey if algorithm == "ed25519" else ec.EllipticCurvePublicKey)
    if algorithm == "ecdsa-p256":
        assert key.curve.name == "secp256r1"
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert fingerprint == hashlib.sha256(der).hexdigest()
    assert not list(tmp_path.glob(".*tmp"))


def test_keygen_refuses_to_overwrite(tmp_path):
    generate_keypair(tmp_path / "k")
    before = (tmp_path / "k.key").read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        generate_keypair(tmp_path / "k")
    assert (tmp_path / "k.key").read_bytes() == before


def test_encrypted_key_needs_its_passphrase(tmp_path, nano_model_dir):
    generate_keypair(tmp_path / "k", "ed25519", passphrase="correct horse")
    pem = (tmp_path / "k.key").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in pem
    with pytest.raises(KeyFileError, match="encrypted; give its passphrase"):
        load_private_key(tmp_path / "k.key")
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_private_key(tmp_path / "k.key", "battery staple")
    assert load_private_key(tmp_path / "k.key", "correct horse") is not None

    from release.bundle import build_bundle

    with pytest.raises(KeyFileError, match="encrypted"):
        build_bundle(nano_model_dir, tmp_path / "bundle", tmp_path / "k.key")
    assert not (tmp_path / "bundle").exists()
    build_bundle(nano_model_dir, tmp_path / "bundle", tmp_path / "k.key", passphrase="correct horse")
    assert (tmp_path / "bundle" / "model.sig").is_file()


def test_key_file_errors_are_one_line_and_typed(tmp_path, keypairs):
    with pytest.raises(KeyFileError, match="no such private key file"):
        load_private_key(tmp_path / "missing.key")
    with pytest.raises(KeyFileError, match="not a PEM private key"):
        load_private_key(key_file(keypairs["ed25519"], ".pub"))
    with pytest.raises(KeyFileError, match="private key; verification needs only the .pub"):
        load_public_key(key_file(keypairs["ed25519"], ".key"))
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    with pytest.raises(KeyFileError, match="not a PEM public key"):
        load_public_key(garbage)


def test_unsupported_curve_is_refused(tmp_path):
    key = ec.generate_private_key(ec.SECP256K1())
    path = tmp_path / "k1.pub"
    path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(KeyFileError, match="unsupported key type secp256k1"):
        load_public_key(path)
