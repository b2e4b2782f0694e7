"""Building a bundle: contents, card, provenance, atomicity, pickle refusal, no key material, adapters."""

from __future__ import annotations

import base64
import json
import os
import shutil

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from release_helpers import key_file

from release import bundle as bundle_module
from release.bundle import build_bundle
from release.errors import BundleExistsError, ModelDirectoryError, ReleaseError
from release.license import mit_license
from release.verifying import verify_bundle


def test_round_trip_bundle_contents_and_the_model_loads(pristine_bundles, nano_model_dir, keypairs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    bundle = pristine_bundles["ed25519"]
    names = sorted(p.name for p in bundle.iterdir())
    assert {
        "LICENSE",
        "README.md",
        "provenance.json",
        "model.sig",
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    } <= set(names)
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        assert (bundle / name).read_bytes() == (nano_model_dir / name).read_bytes()
    assert (bundle / "LICENSE").read_text() == mit_license("Test Holder", 2026)
    model = AutoModelForCausalLM.from_pretrained(bundle)
    tokenizer = AutoTokenizer.from_pretrained(bundle)
    assert model.config.model_type == "llama" and len(tokenizer) == model.config.vocab_size
    assert verify_bundle(bundle, key_file(keypairs["ed25519"], ".pub")).ok


def test_model_card_front_matter_and_body(pristine_bundles):
    text = (pristine_bundles["ed25519"] / "README.md").read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["license"] == "mit"
    assert {"mintline", "llama", "dpo", "watermarked"} <= set(front["tags"])
    assert front["datasets"] == ["mintline-builtin-corpus"]
    assert set(front["metrics"]) == {"loss", "perplexity"}
    values = {m["type"]: m["value"] for m in front["model-index"][0]["results"][0]["metrics"]}
    assert values == {"loss": 4.51, "perplexity": 90.9}  # the final evaluation, not initial_eval_loss
    body = text.split("---\n", 2)[2]
    assert "| docs_kept | 870 |" in body and "| removed.near_duplicate | 50 |" in body  # cleaning figures
    assert (
        "| real (human) labels | 0 |" in body
        and "| simulated labels | 188 |" in body
        and "| pseudo labels | 40 |" in body
    )
    assert "kgw-selfhash" in body and "wmk-" + "ab" * 16 in body  # scheme + public key id
    assert "## Intended use" in body and "## Limitations" in body


def test_label_counts_explicit_or_attributed_by_backend():
    from release.card import label_counts
    from release.run_record import RunRecord, Stage

    explicit = RunRecord(
        stages={"align": Stage("align", figures={"human_labels": 12, "simulated_labels": 3, "pseudo_labels": 5})}
    )
    assert list(label_counts(explicit).values()) == [12, 3, 5]
    human = RunRecord(
        stages={"align": Stage("align", config={"backend": "labelstudio"}, figures={"labels_received": 7})}
    )
    assert list(label_counts(human).values()) == [7, 0, None]
    unknown = RunRecord(stages={"align": Stage("align", figures={"labels_received": 7})})
    assert list(label_counts(unknown).values()) == [None, None, None]


def test_no_secret_from_run_json_is_published(pristine_bundles):
    for bundle in pristine_bundles.values():
        blob = b"".join(p.read_bytes() for p in bundle.rglob("*") if p.is_file())
        for secret in (b"SHOULD-NOT-LEAK-1", b"SHOULD-NOT-LEAK-2", b"987654321123", b"/home/someone"):
            assert secret not in blob, secret


def test_private_key_material_is_absent_from_the_bundle(pristine_bundles, keypairs):
    from release.keys import load_private_key

    for algorithm, bundle in pristine_bundles.items():
        key_path = key_file(keypairs[algorithm], ".key")
        private_key = load_private_key(key_path)
        der = private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        if algorithm == "ed25519":
            raw = private_key.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
        else:
            raw = private_key.private_numbers().private_value.to_bytes(32, "big")
        needles = [key_path.read_bytes(), der, raw, raw.hex().encode(), base64.b64encode(der), base64.b64encode(raw)]
        for path in bundle.rglob("*"):
            data = path.read_bytes()
            for needle in needles:
                assert needle not in data, f"private key material found in {path}"


def test_provenance_is_an_in_toto_slsa_statement(pristine_bundles, nano_model_dir):
    document = json.loads((pristine_bundles["ed25519"] / "provenance.json").read_text())
    assert document["_type"] == "https://in-toto.io/Statement/v1"
    assert document["predicateType"] == "https://slsa.dev/provenance/v1"
    subjects = {s["name"]: s["digest"]["sha256"] for s in document["subject"]}
    import hashlib

    assert (
        subjects["model.safetensors"]
        == hashlib.sha256((nano_model_dir / "model.safetensors").read_bytes()).hexdigest()
    )
    build = document["predicate"]["buildDefinition"]
    assert build["externalParameters"]["run"]["pretrain"] == {
        "model": "nano",
        "max_steps": 300,
        "learning_rate": 0.003,
    }
    assert "secret" not in build["externalParameters"]["run"]["watermark"]
    dependencies = {d["name"]: d for d in build["resolvedDependencies"]}
    assert dependencies["prepare/input/corpus"]["digest"] == {"sha256": "1" * 64}
    assert dependencies["pretrain/output/pretrain/model"]["digest"] == {"sha256": "4" * 64}
    assert dependencies["mintline"]["annotations"]["version"]
    assert {"torch", "transformers", "cryptography"} <= set(build["internalParameters"]["packages"])
    details = document["predicate"]["runDetails"]
    assert details["metadata"]["startedOn"] == "2026-01-01T00:00:01+00:00"
    metrics = {b["name"]: b["annotations"]["metrics"] for b in details["byproducts"]}
    assert metrics["stage/pretrain"]["eval_loss"] == 4.51


def test_pickle_weights_are_refused_with_a_conversion_hint(tmp_path, nano_model_dir, keypairs):
    model = tmp_path / "model"
    shutil.copytree(nano_model_dir, model)
    (model / "pytorch_model.bin").write_bytes(b"\x80\x04\x95pickle")
    with pytest.raises(ModelDirectoryError, match=r"pickle weights.*pytorch_model\.bin.*save_pretrained"):
        build_bundle(model, tmp_path / "out", key_file(keypairs["ed25519"], ".key"))
    assert not (tmp_path / "out").exists()


def test_renamed_pickle_posing_as_safetensors_is_refused(tmp_path, nano_model_dir, keypairs):
    model = tmp_path / "model"
    shutil.copytree(nano_model_dir, model)
    (model / "model.safetensors").write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    with pytest.raises(ModelDirectoryError, match="not a safetensors file"):
        build_bundle(model, tmp_path / "out", key_file(keypairs["ed25519"], ".key"))


def test_only_model_files_are_copied(tmp_path, nano_model_dir, keypairs):
    model = tmp_path / "model"
    shutil.copytree(nano_model_dir, model)
    (model / "training_args.bin").write_bytes(b"\x80\x04")  # Trainer's pickle: left out, not refused
    (model / "watermark_key.json").write_text('{"secret": "x"}')
    shutil.copy(key_file(keypairs["ed25519"], ".key"), model / "publisher.key")
    figures = build_bundle(model, tmp_path / "out", key_file(keypairs["ed25519"], ".key"))
    assert sorted(figures["skipped_files"]) == ["publisher.key", "training_args.bin", "watermark_key.json"]
    assert not any((tmp_path / "out" / name).exists() for name in figures["skipped_files"])


def test_existing_destination_is_never_replaced_without_overwrite(tmp_path, nano_model_dir, keypairs):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(BundleExistsError):
        build_bundle(nano_model_dir, out, key_file(keypairs["ed25519"], ".key"))
    assert (out / "keep.txt").read_text() == "precious"
    build_bundle(nano_model_dir, out, key_file(keypairs["ed25519"], ".key"), overwrite=True)
    assert not (out / "keep.txt").exists() and verify_bundle(out, key_file(keypairs["ed25519"], ".pub")).ok
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temp or retired directories left


@pytest.mark.parametrize("crash", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_crash_leaves_nothing_at_the_destination(tmp_path, nano_model_dir, keypairs, monkeypatch, crash):
    def explode(*args, **kwargs):
        raise crash

    monkeypatch.setattr(bundle_module.signing, "sign_directory", explode)
    with pytest.raises(type(crash)):
        build_bundle(nano_model_dir, tmp_path / "out", key_file(keypairs["ed25519"], ".key"))
    assert list(tmp_path.iterdir()) == []


def test_crash_during_overwrite_keeps_the_old_bundle(
    tmp_path, pristine_bundles, nano_model_dir, keypairs, monkeypatch
):
    out = tmp_path / "out"
    shutil.copytree(pristine_bundles["ed25519"], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(
        bundle_module.signing, "sign_directory", lambda *a, **k: (_ for _ in ()).throw(OSError("boom"))
    )
    with pytest.raises(OSError):
        build_bundle(nano_model_dir, out, key_file(keypairs["ed25519"], ".key"), overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_run_json_errors_are_typed(tmp_path, nano_model_dir, keypairs):
    with pytest.raises(ReleaseError, match="no such file"):
        build_bundle(
            nano_model_dir, tmp_path / "out", key_file(keypairs["ed25519"], ".key"), run_json=tmp_path / "nope.json"
        )
    bad = tmp_path / "run.json"
    bad.write_text("{not json")
    with pytest.raises(ReleaseError, match="not readable JSON"):
        build_bundle(nano_model_dir, tmp_path / "out", key_file(keypairs["ed25519"], ".key"), run_json=bad)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"stages": {"pretrain": {"figures": ["not", "a", "dict"]}}}))
    build_bundle(nano_model_dir, tmp_path / "out", key_file(keypairs["ed25519"], ".key"), run_json=partial)
    card = (tmp_path / "out" / "README.md").read_text()
    assert "No data-preparation record" in card and "not aligned" in card


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, nano_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(nano_model_dir),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    out = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(out)
    return out


def test_adapter_bundle_records_and_checks_its_base(tmp_path, adapter_dir, pristine_bundles, keypairs):
    pub = key_file(keypairs["ed25519"], ".pub")
    base = pristine_bundles["ed25519"]
    figures = build_bundle(
        adapter_dir,
        tmp_path / "adapter",
        key_file(keypairs["ed25519"], ".key"),
        name="nano-lora",
        base_bundle=base,
        base_pubkey=pub,
    )
    base_digest = verify_bundle(base, pub).figures["manifest_digest"]
    assert figures["adapter"] and figures["base_manifest_digest"] == base_digest
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    front = yaml.safe_load((tmp_path / "adapter" / "README.md").read_text().split("---\n")[1])
    assert "base_model" not in front and "peft" in front["tags"]  # the base is a bundle, named in the body
    released_config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert released_config["base_model_name_or_path"] == os.path.relpath(base, tmp_path / "adapter")

    chained = verify_bundle(tmp_path / "adapter", pub, base=base)
    assert chained.ok, chained.reasons
    assert chained.figures["base_checked"] and chained.figures["base_manifest_digest"] == base_digest

    other_base = pristine_bundles["ecdsa-p256"]
    wrong = verify_bundle(
        tmp_path / "adapter", pub, base=other_base, base_pubkey_path=key_file(keypairs["ecdsa-p256"], ".pub")
    )
    assert not wrong.ok and any("base bundle mismatch" in r for r in wrong.reasons)

    tampered_base = tmp_path / "tampered-base"
    shutil.copytree(base, tampered_base)
    (tampered_base / "config.json").write_text("{}")
    broken_chain = verify_bundle(tmp_path / "adapter", pub, base=tampered_base)
    assert not broken_chain.ok and any(r.startswith("base bundle: changed: config.json") for r in broken_chain.reasons)

    not_adapter = verify_bundle(base, pub, base=base)
    assert any("records no base bundle" in r for r in not_adapter.reasons)
