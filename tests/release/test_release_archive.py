"""The optional bundle tar: deterministic, verifiable, and never trusted when verified."""

from __future__ import annotations

import io
import tarfile

import pytest
from release_helpers import key_file

from release.archive import write_tar
from release.bundle import build_bundle
from release.errors import BundleExistsError
from release.verifying import verify_bundle


def test_build_with_tar_then_verify_the_tar(tmp_path, nano_model_dir, keypairs, cli):
    figures = build_bundle(nano_model_dir, tmp_path / "b", key_file(keypairs["ed25519"], ".key"), tar=True)
    tar_path = tmp_path / "b.tar"
    assert figures["tar"] == str(tar_path)
    result = verify_bundle(tar_path, key_file(keypairs["ed25519"], ".pub"))
    assert result.ok, result.reasons
    assert result.figures["bundle"] == str(tar_path) and result.figures["files_in_manifest"] >= 8
    run = cli("release", "verify", tar_path, "--pubkey", key_file(keypairs["ed25519"], ".pub"))
    assert run.code == 0 and run.out.startswith("VERIFIED")
    (tmp_path / "c.tar").write_text("an existing tar is never replaced without overwrite")
    with pytest.raises(BundleExistsError):
        build_bundle(nano_model_dir, tmp_path / "c", key_file(keypairs["ed25519"], ".key"), tar=True)
    assert not (tmp_path / "c").exists()


def test_tar_is_deterministic(tmp_path, pristine_bundles):
    first = write_tar(pristine_bundles["ed25519"], tmp_path / "one.tar").read_bytes()
    second = write_tar(pristine_bundles["ed25519"], tmp_path / "two.tar").read_bytes()
    assert first == second


def _rewrite(source, target, change):
    """Copy a tar member by member, letting `change(info, data)` return replacement members."""
    with tarfile.open(source) as old, tarfile.open(target, "w") as new:
        for info in old.getmembers():
            data = old.extractfile(info).read() if info.isfile() else None
            for new_info, new_data in change(info, data):
                new.addfile(new_info, io.BytesIO(new_data) if new_data is not None else None)


def _file(name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda i, d: [(i, d[:-1] + b"\x00" if i.name.endswith("config.json") else d)] if i.isfile() else [(i, d)],
            "changed: config.json",
        ),
        (lambda i, d: [(i, d)] + ([_file("../evil", b"x")] if i.name.endswith("LICENSE") else []), "climbs out"),
        (
            lambda i, d: [(i, d)] + ([_file(i.name, b"second copy")] if i.name.endswith("LICENSE") else []),
            "appears twice",
        ),
        (lambda i, d: [(i, d)] + ([_file("/abs/path", b"x")] if i.name.endswith("LICENSE") else []), "absolute path"),
    ],
)
def test_tampered_tar_fails_closed(tmp_path, pristine_bundles, keypairs, change, expected):
    original = write_tar(pristine_bundles["ed25519"], tmp_path / "ok.tar")
    _rewrite(original, tmp_path / "bad.tar", change)
    result = verify_bundle(tmp_path / "bad.tar", key_file(keypairs["ed25519"], ".pub"))
    assert not result.ok
    assert any(expected in r for r in result.reasons), result.reasons


def test_tar_with_a_symlink_member_is_refused(tmp_path, pristine_bundles, keypairs):
    original = write_tar(pristine_bundles["ed25519"], tmp_path / "ok.tar")

    def add_link(info, data):
        if not info.name.endswith("config.json"):
            return [(info, data)]
        link = tarfile.TarInfo(info.name)
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        return [(link, None)]

    _rewrite(original, tmp_path / "bad.tar", add_link)
    result = verify_bundle(tmp_path / "bad.tar", key_file(keypairs["ed25519"], ".pub"))
    assert not result.ok and any("link or special file" in r for r in result.reasons)
