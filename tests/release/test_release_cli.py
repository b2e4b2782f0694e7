"""`mintline release keygen|build|verify`: exit codes 0/1/2, one-line errors, --json."""

from __future__ import annotations

import stat

from release_helpers import key_file


def test_keygen_build_verify_round_trip(cli, tmp_path, nano_model_dir, run_json, monkeypatch):
    monkeypatch.setenv("RELEASE_TEST_PASSPHRASE", "s3cret-pass")
    keygen = cli(
        "release",
        "keygen",
        "--out",
        tmp_path / "pub",
        "--algorithm",
        "ecdsa-p256",
        "--passphrase-env",
        "RELEASE_TEST_PASSPHRASE",
        "--json",
    )
    assert keygen.code == 0, keygen
    info = keygen.json()
    assert info["encrypted"] and info["algorithm"] == "ecdsa-p256" and len(info["fingerprint"]) == 64
    assert stat.S_IMODE((tmp_path / "pub.key").stat().st_mode) == 0o600

    build = cli(
        "release",
        "build",
        nano_model_dir,
        "--out",
        tmp_path / "bundle",
        "--key",
        tmp_path / "pub.key",
        "--name",
        "nano-cli",
        "--version",
        "2.0",
        "--holder",
        "CLI Holder",
        "--run_json",
        run_json,
        "--passphrase_env",
        "RELEASE_TEST_PASSPHRASE",
        "--json",
    )
    assert build.code == 0, build
    assert build.json()["key_fingerprint"] == info["fingerprint"]

    verify = cli("release", "verify", tmp_path / "bundle", "--pubkey", tmp_path / "pub.pub")
    assert verify.code == 0, verify
    assert verify.out.startswith("VERIFIED:") and info["fingerprint"] in verify.out

    as_json = cli("release", "verify", tmp_path / "bundle", "--pubkey", tmp_path / "pub.pub", "--json")
    assert as_json.code == 0 and as_json.json()["ok"] is True and as_json.json()["reasons"] == []


def test_verify_not_verified_is_exit_1_with_every_reason(cli, bundle_copy, keypairs):
    bundle = bundle_copy()
    (bundle / "config.json").write_text("{}")
    (bundle / "tokenizer.json").unlink()
    run = cli("release", "verify", bundle, "--pubkey", key_file(keypairs["ed25519"], ".pub"))
    assert run.code == 1
    assert run.out.startswith("NOT VERIFIED:")
    assert "changed: config.json" in run.out and "missing file: tokenizer.json" in run.out
    as_json = cli("release", "verify", bundle, "--pubkey", key_file(keypairs["ed25519"], ".pub"), "--json")
    assert as_json.code == 1
    data = as_json.json()
    assert data["ok"] is False and len(data["reasons"]) == 2


def test_usage_errors_are_exit_2_and_one_line(cli, tmp_path, pristine_bundles, keypairs, nano_model_dir):
    cases = [
        ("release", "verify", pristine_bundles["ed25519"]),  # no --pubkey
        ("release", "verify", tmp_path / "nope", "--pubkey", key_file(keypairs["ed25519"], ".pub")),
        ("release", "verify", pristine_bundles["ed25519"], "--pubkey", tmp_path / "missing.pub"),
        (
            "release",
            "verify",
            pristine_bundles["ed25519"],
            "--pubkey",
            key_file(keypairs["ed25519"], ".pub"),
            "--colour",
        ),
        ("release", "build", nano_model_dir, "--out", tmp_path / "b", "--key", tmp_path / "missing.key"),
        (
            "release",
            "build",
            nano_model_dir,
            "--out",
            tmp_path / "b",
            "--key",
            key_file(keypairs["ed25519"], ".key"),
            "--passphrase_env",
            "RELEASE_TEST_UNSET_VARIABLE",
        ),
        (
            "release",
            "build",
            nano_model_dir,
            "--out",
            pristine_bundles["ed25519"],
            "--key",
            key_file(keypairs["ed25519"], ".key"),
        ),
        ("release", "keygen", "--out", tmp_path / "k", "--algorithm", "rsa"),
        ("release", "sign"),
    ]
    for args in cases:
        run = cli(*args)
        assert run.code == 2, (args, run)
        assert run.err.strip().count("\n") == 0 and "Traceback" not in run.err, (args, run.err)
    assert not (tmp_path / "b").exists()


def test_help_states_the_fingerprint_definition(cli):
    run = cli("release", "keygen", "--help")
    assert run.code == 0 and "SHA-256 of the DER-encoded SubjectPublicKeyInfo" in run.out
