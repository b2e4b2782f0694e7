"""Verification fails closed: every way a bundle can be wrong is a listed reason, never a pass."""

from __future__ import annotations

import json
import os
import re

import pytest
from release_helpers import key_file, read_statement, resign, resign_files

from release.verifying import verify_bundle


def verify(bundle, keypairs, algorithm="ed25519", **kwargs):
    return verify_bundle(bundle, key_file(keypairs[algorithm], ".pub"), **kwargs)


def reasons_text(result) -> str:
    return "\n".join(result.reasons)


def test_pristine_bundle_verifies_with_both_key_types(pristine_bundles, keypairs):
    for algorithm, bundle in pristine_bundles.items():
        result = verify(bundle, keypairs, algorithm)
        assert result.ok, result.reasons
        assert result.reasons == []
        assert result.figures["files_in_manifest"] == result.figures["files_hashed"] >= 8
        assert result.figures["key_algorithm"] == algorithm


def test_one_changed_byte_in_the_weights(bundle_copy, keypairs):
    bundle = bundle_copy()
    weights = bundle / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    result = verify(bundle, keypairs)
    assert not result.ok
    assert result.reasons == ["changed: model.safetensors (sha256 differs from the manifest)"]


def test_missing_extra_and_renamed_files_are_all_listed(bundle_copy, keypairs):
    bundle = bundle_copy()
    (bundle / "generation_config.json").unlink()
    (bundle / "tokenizer.json").rename(bundle / "tokenizer2.json")
    (bundle / "notes.txt").write_text("added after signing")
    result = verify(bundle, keypairs)
    assert not result.ok
    text = reasons_text(result)
    assert "missing file: generation_config.json" in text
    assert "renamed: tokenizer.json -> tokenizer2.json" in text
    assert "extra file not in the manifest: notes.txt" in text
    assert len(result.reasons) == 3


def test_extra_file_in_a_subdirectory_and_hidden_files(bundle_copy, keypairs):
    bundle = bundle_copy()
    (bundle / ".git").mkdir()
    (bundle / ".git" / "config").write_text("[core]")
    result = verify(bundle, keypairs)
    assert not result.ok
    assert "extra file not in the manifest: .git/config" in reasons_text(result)


def test_symlink_refused_by_default_and_never_followed_outside(bundle_copy, keypairs, tmp_path):
    bundle = bundle_copy()
    outside = tmp_path / "outside.json"
    outside.write_bytes((bundle / "config.json").read_bytes())  # same bytes: only the link is wrong
    (bundle / "config.json").unlink()
    (bundle / "config.json").symlink_to(outside)
    refused = verify(bundle, keypairs)
    assert not refused.ok
    assert any("config.json is a symlink" in r and "refused unless allowed" in r for r in refused.reasons)
    allowed = verify(bundle, keypairs, allow_symlinks=True)
    assert not allowed.ok
    assert any("pointing outside the bundle" in r for r in allowed.reasons)


def test_symlink_inside_the_bundle_only_with_allow_symlinks(bundle_copy, keypairs):
    bundle = bundle_copy()
    (bundle / "real").mkdir()
    (bundle / "tokenizer_config.json").rename(bundle / "real" / "tokenizer_config.json")
    (bundle / "tokenizer_config.json").symlink_to(os.path.join("real", "tokenizer_config.json"))
    assert not verify(bundle, keypairs).ok
    allowed = verify(bundle, keypairs, allow_symlinks=True)
    # the link itself is followed (inside), but the moved file is still an extra file
    assert allowed.reasons == ["extra file not in the manifest: real/tokenizer_config.json"]


def test_fifo_is_refused_without_hanging(bundle_copy, keypairs):
    bundle = bundle_copy()
    os.mkfifo(bundle / "pipe")
    result = verify(bundle, keypairs)
    assert not result.ok and any("pipe is not a regular file" in r for r in result.reasons)


@pytest.mark.parametrize(
    "forged_name, expected",
    [
        ("../escape.json", "climbs out of the bundle"),
        ("/etc/passwd", "is an absolute path"),
        ("sub//x", "not a normalised path"),
        ("C:evil", "is an absolute path"),
        ("a\\..\\b", "backslash"),
    ],
)
def test_forged_manifest_names_are_refused_even_when_validly_signed(bundle_copy, keypairs, forged_name, expected):
    bundle = bundle_copy()
    statement = read_statement(bundle)
    statement["predicate"]["resources"].append({"name": forged_name, "algorithm": "sha256", "digest": "0" * 64})
    resign(bundle, key_file(keypairs["ed25519"], ".key"), statement)
    result = verify(bundle, keypairs)
    assert not result.ok
    assert any(expected in r for r in result.reasons), result.reasons


def test_duplicate_manifest_entries(bundle_copy, keypairs):
    bundle = bundle_copy()
    statement = read_statement(bundle)
    first = statement["predicate"]["resources"][0]
    statement["predicate"]["resources"].append(dict(first))
    resign(bundle, key_file(keypairs["ed25519"], ".key"), statement)
    result = verify(bundle, keypairs)
    assert not result.ok
    assert f"duplicate manifest entry {first['name']!r}" in result.reasons


@pytest.mark.parametrize("where", ["resource", "serialization"])
def test_unknown_hash_algorithm(bundle_copy, keypairs, where):
    bundle = bundle_copy()
    statement = read_statement(bundle)
    if where == "resource":
        statement["predicate"]["resources"][0]["algorithm"] = "md5"
    else:
        statement["predicate"]["serialization"]["hash_type"] = "blake2"
    resign(bundle, key_file(keypairs["ed25519"], ".key"), statement)
    result = verify(bundle, keypairs)
    assert not result.ok
    assert any("unknown" in r and ("md5" in r or "blake2" in r) for r in result.reasons), result.reasons


def test_wrong_key(pristine_bundles, keypairs):
    result = verify(pristine_bundles["ed25519"], keypairs, "other")
    assert not result.ok
    assert any("signature does not verify with this public key" in r for r in result.reasons)
    assert any("different key" in r for r in result.reasons)
    # a P-256 public key against an Ed25519-signed bundle: also a plain "not verified"
    assert not verify(pristine_bundles["ed25519"], keypairs, "ecdsa-p256").ok


def test_signature_over_a_different_payload(bundle_copy, keypairs):
    """A signer's valid signature moved onto a payload listing other digests."""
    bundle = bundle_copy()
    signature = json.loads((bundle / "model.sig").read_text())
    statement = read_statement(bundle)
    statement["predicate"]["resources"][0]["digest"] = "f" * 64
    import base64

    signature["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    (bundle / "model.sig").write_text(json.dumps(signature))
    result = verify(bundle, keypairs)
    assert not result.ok
    assert any("signature does not verify" in r for r in result.reasons)


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda text: text[: len(text) // 2], "not valid JSON"),
        (lambda text: "", "not valid JSON"),
        (lambda text: "[1, 2]", "not a Sigstore bundle"),
        (lambda text: text.replace('"payload":"', '"payload":"!!'), "not valid base64"),
        (
            lambda text: text.replace("application/vnd.dev.sigstore.bundle.v0.3+json", "application/x-other"),
            "media type",
        ),
        (lambda text: text.replace("application/vnd.in-toto+json", "text/plain"), "payload type"),
        (lambda text: text.replace('"sig":"', '"sig":"AAAA'), "signature does not verify"),
        (lambda text: re.sub(r'"signatures":\[.*?\]', '"signatures":[]', text), "no well-formed signature"),
        (lambda text: text.replace('"dsseEnvelope"', '"envelope"'), "no DSSE envelope"),
    ],
)
def test_truncated_or_malformed_signature(bundle_copy, keypairs, damage, expected):
    bundle = bundle_copy()
    path = bundle / "model.sig"
    path.write_text(damage(path.read_text()))
    result = verify(bundle, keypairs)
    assert not result.ok
    assert any(expected in r for r in result.reasons), result.reasons


def test_missing_signature(bundle_copy, keypairs):
    bundle = bundle_copy()
    (bundle / "model.sig").unlink()
    result = verify(bundle, keypairs)
    assert not result.ok and any("model.sig is missing" in r for r in result.reasons)


def test_license_that_is_not_mit_fails_even_when_signed(bundle_copy, keypairs):
    bundle = bundle_copy()
    text = (bundle / "LICENSE").read_text()
    (bundle / "LICENSE").write_text(text.replace("free of charge", "for a fee"))
    unsigned = verify(bundle, keypairs)
    assert "changed: LICENSE (sha256 differs from the manifest)" in unsigned.reasons
    assert any("not the exact MIT licence text" in r for r in unsigned.reasons)

    (bundle / "LICENSE").write_text("Apache License\nVersion 2.0, January 2004\n")
    resign_files(bundle, key_file(keypairs["ed25519"], ".key"))
    signed = verify(bundle, keypairs)
    assert not signed.ok
    assert signed.reasons == ["LICENSE does not start with 'MIT License'"]


def test_missing_license(bundle_copy, keypairs):
    bundle = bundle_copy()
    (bundle / "LICENSE").unlink()
    resign_files(bundle, key_file(keypairs["ed25519"], ".key"))
    result = verify(bundle, keypairs)
    assert result.reasons == ["LICENSE is missing (a release must carry the MIT licence)"]


def test_card_licence_must_say_mit(bundle_copy, keypairs):
    bundle = bundle_copy()
    card = (bundle / "README.md").read_text()
    assert card.startswith("---\nlicense: mit\n")
    (bundle / "README.md").write_text(card.replace("license: mit", "license: apache-2.0", 1))
    resign_files(bundle, key_file(keypairs["ed25519"], ".key"))
    result = verify(bundle, keypairs)
    assert result.reasons == ["model card licence is 'apache-2.0', not 'mit'"]


def test_every_reason_is_listed_at_once(bundle_copy, keypairs):
    bundle = bundle_copy()
    (bundle / "config.json").write_text("{}")
    (bundle / "generation_config.json").unlink()
    (bundle / "extra.bin").write_bytes(b"\x80\x04")
    (bundle / "LICENSE").write_text("All rights reserved.\n")
    result = verify(bundle, keypairs, "other")
    text = reasons_text(result)
    for expected in (
        "signature does not verify",
        "changed: config.json",
        "missing file: generation_config.json",
        "extra file not in the manifest: extra.bin",
        "changed: LICENSE",
        "LICENSE does not start with 'MIT License'",
    ):
        assert expected in text
