"""Interop with the stock OpenSSF verifier (PyPI `model-signing` 1.1.1, sigstore/model-transparency)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from release_helpers import key_file

from release.verifying import verify_directory

pytest.importorskip("model_signing", reason="the dev extra installs model-signing; the interop claim needs it")
STOCK_CLI = Path(sys.executable).with_name("model_signing")


def stock_verify(bundle: Path, public_key: Path) -> subprocess.CompletedProcess:
    command = [str(STOCK_CLI)] if STOCK_CLI.exists() else [sys.executable, "-m", "model_signing"]
    return subprocess.run(
        [
            *command,
            "verify",
            "key",
            "--public_key",
            str(public_key),
            "--signature",
            str(bundle / "model.sig"),
            str(bundle),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_p256_bundle_verifies_with_stock_cli_and_tampering_is_rejected(bundle_copy, keypairs):
    bundle = bundle_copy("ecdsa-p256")
    public_key = key_file(keypairs["ecdsa-p256"], ".pub")
    accepted = stock_verify(bundle, public_key)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "Verification succeeded" in accepted.stdout

    weights = bundle / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    rejected = stock_verify(bundle, public_key)
    assert rejected.returncode != 0
    assert "Hash mismatch for 'model.safetensors'" in rejected.stderr + rejected.stdout


def test_stock_api_rejects_extra_file_and_wrong_key(bundle_copy, keypairs):
    from model_signing import hashing, verifying

    bundle = bundle_copy("ecdsa-p256")
    config = lambda pub: verifying.Config().use_elliptic_key_verifier(public_key=pub)  # noqa: E731
    config(key_file(keypairs["ecdsa-p256"], ".pub")).verify(bundle, bundle / "model.sig")  # passes

    other = bundle.parent / "other-p256"
    from release.keys import generate_keypair

    generate_keypair(other, "ecdsa-p256")
    with pytest.raises(ValueError, match="Key mismatch"):
        config(key_file(other, ".pub")).verify(bundle, bundle / "model.sig")

    (bundle / "extra.txt").write_text("x")
    with pytest.raises(ValueError, match="Extra files"):
        config(key_file(keypairs["ecdsa-p256"], ".pub")).set_hashing_config(
            hashing.Config().set_ignored_paths(paths=["model.sig"])
        ).verify(bundle, bundle / "model.sig")


def test_stock_tool_refuses_ed25519_as_documented(pristine_bundles, keypairs):
    from model_signing import verifying

    # 1.1.1 fails on the missing `.curve` (AttributeError); its CLI turns that into "Verification failed".
    with pytest.raises((ValueError, AttributeError)):
        verifying.Config().use_elliptic_key_verifier(public_key=key_file(keypairs["ed25519"], ".pub"))


def test_mintline_verifies_a_directory_signed_by_the_stock_tool(tmp_path, nano_model_dir, keypairs):
    from model_signing import hashing, signing

    model = tmp_path / "model"
    shutil.copytree(nano_model_dir, model)
    signing.Config().use_elliptic_key_signer(private_key=key_file(keypairs["ecdsa-p256"], ".key")).set_hashing_config(
        hashing.Config().set_ignored_paths(paths=["model.sig"])
    ).sign(model, model / "model.sig")
    result = verify_directory(model, key_file(keypairs["ecdsa-p256"], ".pub"))
    assert result.ok, result.reasons
    (model / "config.json").write_text("{}")
    assert verify_directory(model, key_file(keypairs["ecdsa-p256"], ".pub")).reasons == [
        "changed: config.json (sha256 differs from the manifest)"
    ]
