"""Release governance: a model directory that carries another licence is not silently relicensed under MIT.

The input's licence is read from its LICENSE file and its card's `license:`; a conflict is one line and
exit 2 unless --allow_relicense, and the input's licence and digest are recorded in provenance.json.
"""

from __future__ import annotations

import json
import shutil

import pytest
from release_helpers import key_file

from release.bundle import build_bundle
from release.errors import LicenseConflictError
from release.input_license import identify_license_text
from release.license import mit_license
from release.manifest import Manifest
from release.verifying import verify_bundle

APACHE_HEADER = """
                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/

   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION
"""
GPL3_HEADER = """                    GNU GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007
"""


@pytest.fixture
def model_copy(tmp_path, nano_model_dir):
    def copy(**extra_files: str):
        target = tmp_path / "model"
        shutil.copytree(nano_model_dir, target)
        for name, text in extra_files.items():
            (target / name.replace("_", ".")).write_text(text)
        return target

    return copy


def dependencies(bundle) -> dict:
    provenance = json.loads((bundle / "provenance.json").read_text())
    return {d["name"]: d for d in provenance["predicate"]["buildDefinition"]["resolvedDependencies"]}


def release_parameters(bundle) -> dict:
    provenance = json.loads((bundle / "provenance.json").read_text())
    return provenance["predicate"]["buildDefinition"]["externalParameters"]["release"]


def test_licence_texts_are_told_apart():
    assert identify_license_text(mit_license("Jane Doe", 2024)) == "mit"
    assert identify_license_text(APACHE_HEADER) == "apache-2.0"
    assert identify_license_text(GPL3_HEADER) == "gpl-3.0"
    assert identify_license_text("GNU LESSER GENERAL PUBLIC LICENSE\nVersion 2.1, February 1999") == "lgpl-2.1"
    assert identify_license_text("Attribution-NonCommercial 4.0 International ... Creative Commons") == "cc-by-nc-4.0"
    assert identify_license_text("All rights reserved. Do not copy.") == "unknown"


def test_apache_model_is_refused_in_one_line_and_nothing_is_built(cli, tmp_path, model_copy, keypairs):
    model = model_copy(LICENSE=APACHE_HEADER)
    out = tmp_path / "bundle"
    result = cli("release", "build", model, "--out", out, "--key", key_file(keypairs["ed25519"], ".key"))
    assert result.code == 2 and result.err.count("\n") == 1 and "Traceback" not in result.err, result
    assert "apache-2.0 (LICENSE)" in result.err and "--allow_relicense" in result.err
    assert not out.exists() and not list(tmp_path.glob(".bundle.tmp-*"))


def test_card_licence_alone_is_enough_to_refuse(tmp_path, model_copy, keypairs):
    model = model_copy(README_md="---\nlicense: llama3\nlibrary_name: transformers\n---\n# A model\n")
    with pytest.raises(LicenseConflictError, match=r"llama3 \(README.md license:\)"):
        build_bundle(model, tmp_path / "bundle", key_file(keypairs["ed25519"], ".key"))


def test_allow_relicense_builds_and_records_it(cli, tmp_path, model_copy, keypairs):
    model = model_copy(LICENSE=APACHE_HEADER, README_md="---\nlicense: apache-2.0\n---\n")
    out = tmp_path / "bundle"
    result = cli(
        "release",
        "build",
        model,
        "--out",
        out,
        "--key",
        key_file(keypairs["ed25519"], ".key"),
        "--allow_relicense",
        "--json",
    )
    assert result.code == 0, result
    assert result.json()["input_license"] == "apache-2.0" and result.json()["relicensed_to_mit"] is True
    assert verify_bundle(out, key_file(keypairs["ed25519"], ".pub")).ok  # still a valid MIT bundle

    recorded = dependencies(out)["input_model"]
    assert recorded["annotations"]["license"] == "apache-2.0" and recorded["annotations"]["relicensed_to_mit"] is True
    assert recorded["annotations"]["sources"] == {"LICENSE": "apache-2.0", "README.md license:": "apache-2.0"}
    subject = json.loads((out / "provenance.json").read_text())["subject"]
    model_digests = {d["name"]: d["digest"]["sha256"] for d in subject}
    assert recorded["digest"]["sha256"] == Manifest.from_digests("input", model_digests).root_digest
    assert release_parameters(out)["allow_relicense"] is True
    assert "declared the **apache-2.0** licence" in (out / "README.md").read_text()


def test_mit_model_of_another_holder_keeps_its_notice(tmp_path, model_copy, keypairs):
    model = model_copy(LICENSE=mit_license("Original Authors", 2023))
    key = key_file(keypairs["ed25519"], ".key")
    with pytest.raises(LicenseConflictError, match="'Original Authors'"):
        build_bundle(model, tmp_path / "other-holder", key, holder="Someone Else")
    figures = build_bundle(model, tmp_path / "same-holder", key, holder="Original Authors")
    assert figures["input_license"] == "mit" and not figures["relicensed_to_mit"]
    annotations = dependencies(tmp_path / "same-holder")["input_model"]["annotations"]
    assert annotations["mit_copyright_holder"] == "Original Authors"


def test_model_without_a_licence_is_released_and_its_digest_recorded(pristine_bundles):
    bundle = pristine_bundles["ed25519"]
    recorded = dependencies(bundle)["input_model"]
    assert recorded["annotations"]["license"] is None and recorded["annotations"]["relicensed_to_mit"] is False
    assert len(recorded["digest"]["sha256"]) == 64
    assert release_parameters(bundle)["allow_relicense"] is False
